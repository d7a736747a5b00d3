"""The local host's uvicorn server, with a graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from uvicorn.server import HANDLED_SIGNALS

from .. import shutdown


class DrainingServer(uvicorn.Server):
    """On SIGTERM or Ctrl+C: stop accepting, let streams finish for `grace` seconds, then end
    the rest (see `shutdown.drain`); uvicorn then exits once the connections close."""

    def __init__(self, config: uvicorn.Config, grace: float, on_ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self._grace = grace
        self._on_ready = on_ready
        self._draining: asyncio.Task[None] | None = None
        self.stopped_by: int | None = None  # the signal that stopped the server

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_ready(f"http://{host}:{port}")

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """As uvicorn's, except that the signal is not raised again on the way out: the back end
        still has to close (the worker to stop). `stopped_by` keeps it for the caller to raise."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.stopped_by = self.stopped_by or sig
        if self._draining is None:
            # A signal handler: hand the work to the loop the signal-safe way.
            asyncio.get_event_loop().call_soon_threadsafe(self._start_draining)

    def _start_draining(self) -> None:
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(shutdown.drain(self._grace))
