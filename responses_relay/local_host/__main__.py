"""`python -m responses_relay.local_host`: see the package's docstring."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from dotenv import load_dotenv

from ..settings import LocalHostSettings, SettingsError, load_local_host_settings
from .app import HttpFunction, build_asgi_app, route_prefix, starlette_path
from .backend import Backend, BackendError
from .in_process import InProcessBackend
from .server import DrainingServer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Functions app locally without Core Tools.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd())
    parser.add_argument("--worker", action="store_true", help="run the app on the real Azure Functions Python worker")
    parser.add_argument("--verbose", action="store_true", help="with --worker: print the worker's own logs too")
    parser.add_argument(
        "--request-limit",
        type=_positive_seconds,
        metavar="SECONDS",
        help="end any request still running after this long, as Azure's front end does after 230 s",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request, with internal addresses
    app_dir = args.app_dir.resolve()
    load_dotenv(app_dir / ".env", override=False)  # as `func start` reads local.settings.json
    try:
        settings = load_local_host_settings()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    serving = _serve(args, app_dir, settings)
    # The worker back end's gRPC server (grpc.aio) runs on asyncio's own loop, as the worker does.
    code = asyncio.run(serving) if args.worker else _run_fast(serving)
    if code < 0:
        signal.raise_signal(-code)  # stopped by a signal: end as its default handling would
    raise SystemExit(code)


async def _serve(args: argparse.Namespace, app_dir: Path, settings: LocalHostSettings) -> int:
    """Serve until stopped; the exit code, or minus the signal that stopped the host."""
    failure: list[str] = []
    server: DrainingServer | None = None

    def crashed(message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        failure.append(message)
        if server is not None:
            server.should_exit = True

    backend = _backend(args, app_dir, crashed)
    try:
        try:
            functions = await backend.start()
        except (SettingsError, BackendError) as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 1
        prefix = route_prefix(app_dir)
        app = build_asgi_app(
            functions,
            route_prefix=prefix,
            static_dir=app_dir / "static",
            cors_origins=settings.cors_origins,
            function_key=settings.function_key,
            diagnostics=settings.diagnostics,
            request_limit_seconds=args.request_limit,
        )
        grace = settings.shutdown_grace_seconds

        def ready(url: str) -> None:
            # As `func start` lists them; the last line says the app is ready.
            print("Functions:", *(_listing(function, url, prefix) for function in functions), sep="\n", flush=True)
            print(f"Functions app on {url}/  (back end: {backend.name})", flush=True)

        # Everything loaded so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise pause every stream for milliseconds under load.
        gc.collect()
        gc.freeze()
        config = uvicorn.Config(app, host=args.host, port=args.port, timeout_graceful_shutdown=math.ceil(grace) + 5)
        server = DrainingServer(config, grace, ready)
        await server.serve()
        if failure:
            return 1
        return -server.stopped_by if server.stopped_by else 0
    finally:
        await backend.aclose()


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds < 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, got {text}")
    return seconds


def _listing(function: HttpFunction, url: str, prefix: str) -> str:
    methods = ",".join(sorted(function.methods))
    return (
        f"    {function.name}: [{methods}] {url}{starlette_path(prefix, function.route)} (auth: {function.auth_level})"
    )


def _backend(args: argparse.Namespace, app_dir: Path, crashed: Callable[[str], None]) -> Backend:
    if not args.worker:
        return InProcessBackend(app_dir)
    from .worker import WorkerBackend  # grpc and the worker's protocol: only when asked for

    return WorkerBackend(app_dir, on_crash=crashed, verbose=args.verbose)


def _run_fast(coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


if __name__ == "__main__":
    main()
