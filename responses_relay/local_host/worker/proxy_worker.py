"""The proxy worker for Python 3.13, the project's own: runs in the worker's process (started by
`launcher.py`) and drives the real `azure_functions_runtime` (from PyPI, pinned in
requirements-worker.txt), as the Functions host's proxy worker does in Azure.

Why ours: on Python 3.13 the Functions host starts a small proxy worker that ships with the
host (built from the Azure Functions Python worker's repository) and is not on PyPI; only the
runtime it loads is, and the project copies no code it cannot install. So this file plays
that proxy: a gRPC client of the host's `FunctionRpc.EventStream` that hands each request to
the runtime and sends back the runtime's answers. What it does, as that proxy does:

- opens the stream with `StartStream`, and from then on sends log records as `RpcLog`
  (the runtime's, the SDK's and its own as `System`, the app's as `User`);
- on `WorkerInitRequest`, puts the app's folder on `sys.path` (after the installed packages),
  imports the runtime, starts its thread pool and passes the request on with the protocol's
  modules and the host's address, where the runtime starts its web server for HTTP streaming
  (its address comes back as the `HttpUri` capability); the runtime indexes the app here;
- passes `FunctionsMetadataRequest`, `FunctionLoadRequest` and `InvocationRequest` on, each
  answered by the runtime's handler of the same name.

Not reproduced: Azure keeps the proxy's and the runtime's packages apart from the app's
(dependency isolation); here one venv per interpreter holds them all.

    python proxy_worker.py --host H --port P --workerId W --requestId R --grpcMaxMessageLength N
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import importlib
import logging
import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
from azure_functions_worker import protos  # put together by launcher.py

logger = logging.getLogger("proxy_worker")
_SYSTEM_LOGGERS = ("proxy_worker", "azure_functions_runtime", "azure.functions")
_CONNECT_TIMEOUT = 5.0
# Requests the runtime answers, with the field of the answer; its handlers have the requests' names.
_ANSWERS = {
    "worker_init_request": "worker_init_response",
    "functions_metadata_request": "function_metadata_response",
    "function_load_request": "function_load_response",
    "invocation_request": "invocation_response",
}
_invocation_id: contextvars.ContextVar[str] = contextvars.ContextVar("invocation_id", default="")


@dataclass
class RuntimeRequest:
    """What the runtime's handlers take: they read these three attributes."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


class ProxyWorker:
    def __init__(self, arguments: argparse.Namespace) -> None:
        self._host = str(arguments.host)
        self._target = f"{arguments.host}:{arguments.port}"
        self._worker_id = str(arguments.workerId)
        self._request_id = str(arguments.requestId)
        self._max_message_length = int(arguments.grpcMaxMessageLength)
        self._outbox: queue.Queue[Any] = queue.Queue()  # to the host; None ends the stream
        self._runtime: ModuleType | None = None

    async def serve(self) -> None:
        """Until the host ends the stream."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        connected: asyncio.Future[None] = loop.create_future()
        threading.Thread(target=self._stream, args=(loop, connected, ended), name="grpc-stream", daemon=True).start()
        await connected
        self.send(start_stream=protos.StartStream(worker_id=self._worker_id))
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        root.addHandler(RpcLogHandler(self))
        try:
            await ended
        finally:
            self._outbox.put(None)

    def send(self, **content: Any) -> None:
        self._outbox.put(protos.StreamingMessage(request_id=self._request_id, **content))

    def _stream(
        self, loop: asyncio.AbstractEventLoop, connected: asyncio.Future[None], ended: asyncio.Future[None]
    ) -> None:
        """The gRPC stream, on its own thread: each request goes to the event loop."""
        limits = [("grpc.max_receive_message_length", self._max_message_length)]
        limits.append(("grpc.max_send_message_length", self._max_message_length))
        with grpc.insecure_channel(self._target, options=limits) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=_CONNECT_TIMEOUT)
            except grpc.FutureTimeoutError:
                loop.call_soon_threadsafe(connected.set_exception, ConnectionError(f"no host at {self._target}"))
                return
            loop.call_soon_threadsafe(connected.set_result, None)
            try:
                for message in protos.FunctionRpcStub(channel).EventStream(iter(self._outbox.get, None)):
                    loop.call_soon_threadsafe(loop.create_task, self._answer(message))
            except grpc.RpcError as error:
                logger.info("the host ended the stream: %s", error.code())
            finally:
                loop.call_soon_threadsafe(ended.set_result, None)

    async def _answer(self, message: Any) -> None:
        kind = message.WhichOneof("content")
        if kind not in _ANSWERS:
            logger.warning("no handler for %s", kind)
            return
        properties: dict[str, Any] = {}
        if kind == "worker_init_request":
            self._runtime = _load_runtime(message.worker_init_request.function_app_directory)
            properties = {"protos": protos, "host": self._host}
        elif kind == "invocation_request":
            _invocation_id.set(message.invocation_request.invocation_id)
        assert self._runtime is not None, f"{kind} before WorkerInitRequest"
        answer = await getattr(self._runtime, kind)(RuntimeRequest(kind, message, properties))
        self.send(**{_ANSWERS[kind]: answer})


def _load_runtime(app_dir: str) -> ModuleType:
    """The app's folder after the installed packages, as the proxy worker orders them; this
    file's folder no more, so nothing in it shadows a module of the app's."""
    own_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [path for path in sys.path if path != own_dir] + [app_dir]
    runtime = importlib.import_module("azure_functions_runtime")
    runtime.start_threadpool_executor()
    return runtime


class RpcLogHandler(logging.Handler):
    """Every log record of the process, to the host as an `RpcLog`."""

    def __init__(self, worker: ProxyWorker) -> None:
        super().__init__()
        self._worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        system = record.name.startswith(_SYSTEM_LOGGERS)
        log = protos.RpcLog(
            level=_rpc_level(record.levelno),
            message=self.format(record),
            category=record.name,
            log_category=protos.RpcLog.System if system else protos.RpcLog.User,
            invocation_id=_invocation_id.get(),
        )
        self._worker.send(rpc_log=log)


def _rpc_level(level: int) -> int:
    for threshold, rpc_level in (
        (logging.CRITICAL, protos.RpcLog.Critical),
        (logging.ERROR, protos.RpcLog.Error),
        (logging.WARNING, protos.RpcLog.Warning),
        (logging.INFO, protos.RpcLog.Information),
    ):
        if level >= threshold:
            return int(rpc_level)
    return int(protos.RpcLog.Debug)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The project's proxy worker for azure-functions-runtime.")
    for name in ("--host", "--workerId", "--requestId"):
        parser.add_argument(name, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grpcMaxMessageLength", type=int, default=2**31 - 1)
    return parser.parse_args()


def main() -> None:
    worker = ProxyWorker(_arguments())
    try:
        import uvloop  # as Azure's proxy worker runs it
    except ImportError:
        asyncio.run(worker.serve())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(worker.serve())


if __name__ == "__main__":
    main()
