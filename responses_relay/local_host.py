"""Local host: runs the FunctionApp's own registered functions under uvicorn.

For machines without Azure Functions Core Tools. It reads each registered HTTP
function's route, methods and auth level, and host.json's route prefix, mounts
the same callables on 127.0.0.1:7071 (the port `func start` uses), and serves
`static/` at `/`. The Functions Python worker serves streaming functions the
same way: under uvicorn, with the host in front as a proxy.

    python -m responses_relay.local_host [--port 7071] [--app-dir .]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import importlib
import inspect
import json
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import FrameType

import azure.functions as func
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import relay
from .errors import error_response
from .settings import SettingsError

Endpoint = Callable[[Request], Awaitable[Response]]
_KEYED_LEVELS = (func.AuthLevel.FUNCTION, func.AuthLevel.ADMIN)
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def build_asgi_app(
    function_app: func.FunctionApp,
    *,
    route_prefix: str = "api",
    static_dir: Path | None = None,
    cors_origins: Sequence[str] = (),
    function_key: str | None = None,
    diagnostics: bool = False,
) -> Starlette:
    """An ASGI app serving every HTTP function of `function_app` as the Functions host would."""
    routes: list[BaseRoute] = []
    for function in function_app.get_functions():
        trigger = function.get_trigger()
        if not isinstance(trigger, func.decorators.http.HttpTrigger):
            continue
        path = "/" + "/".join(
            part for part in (route_prefix.strip("/"), trigger.route or function.get_function_name()) if part
        )
        methods = frozenset(str(method.value) for method in trigger.methods or func.HttpMethod)
        key = function_key if trigger.auth_level in _KEYED_LEVELS else None
        # Methods are checked in the endpoint, so a wrong one gets 405 rather than the static files' 404.
        endpoint = _endpoint(function.get_user_function(), trigger.name, methods, key)
        routes.append(Route(path, endpoint, methods=_ALL_METHODS))
    if diagnostics:
        routes.append(Route("/_diagnostics", _diagnostics))
    if static_dir is not None and static_dir.is_dir():
        routes.append(Mount("/", StaticFiles(directory=static_dir, html=True)))
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["content-type", "x-functions-key"],
                max_age=600,
            )
        )
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error})


def _endpoint(user_function: Callable[..., object], binding: str, methods: frozenset[str], key: str | None) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if request.method not in methods:
            allow = {"Allow": ", ".join(sorted(methods))}
            return error_response(405, "method_not_allowed", f"Use {' or '.join(sorted(methods))}", headers=allow)
        if key is not None and not _has_key(request, key):
            return error_response(401, "unauthorized", "A function key is required (x-functions-key header or ?code=)")
        result = user_function(**{binding: request})
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Response):
            raise TypeError(f"{binding}: the function returned {type(result).__name__}, not a Response")
        return result

    return endpoint


async def _diagnostics(request: Request) -> Response:
    """For soak runs (LOCAL_HOST_DIAGNOSTICS=1 only): what the process holds right now."""
    return JSONResponse(
        {
            "tasks": len(asyncio.all_tasks()),
            "live_streams": len(relay._live),
            "open_fds": _open_fds(),
        }
    )


def _open_fds() -> int | None:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


def _has_key(request: Request, key: str) -> bool:
    given = request.headers.get("x-functions-key") or request.query_params.get("code") or ""
    return hmac.compare_digest(given.encode(), key.encode())


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(error.status_code, "http_error")
    return error_response(error.status_code, code, str(error.detail), headers=error.headers)


def route_prefix(app_dir: Path) -> str:
    """host.json's extensions.http.routePrefix ("api" when absent)."""
    host_json = app_dir / "host.json"
    if not host_json.exists():
        return "api"
    document = json.loads(host_json.read_text(encoding="utf-8"))
    prefix = document.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return str(prefix)


def load_function_app(app_dir: Path) -> func.FunctionApp:
    sys.path.insert(0, str(app_dir))
    module = importlib.import_module("function_app")
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionApp)]
    if len(apps) != 1:
        raise SystemExit(f"error: {app_dir / 'function_app.py'} must define exactly one FunctionApp")
    return apps[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Functions app locally without Core Tools.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app_dir = args.app_dir.resolve()
    try:
        function_app = load_function_app(app_dir)
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    prefix = route_prefix(app_dir)
    origins = [origin.strip() for origin in os.environ.get("CORS_ALLOWED_ORIGINS", "").split(",") if origin.strip()]
    asgi_app = build_asgi_app(
        function_app,
        route_prefix=prefix,
        static_dir=app_dir / "static",
        cors_origins=origins,
        function_key=os.environ.get("LOCAL_FUNCTION_KEY") or None,
        diagnostics=os.environ.get("LOCAL_HOST_DIAGNOSTICS") == "1",
    )
    grace = float(os.environ.get("SHUTDOWN_GRACE_SECONDS") or 10)
    print(f"Functions app on http://{args.host}:{args.port}/  (chat: POST /{prefix}/chat)", flush=True)
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise pause every stream for milliseconds under load.
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(asgi_app, host=args.host, port=args.port, timeout_graceful_shutdown=math.ceil(grace) + 5)
    DrainingServer(config, grace).run()


class DrainingServer(uvicorn.Server):
    """On SIGTERM or Ctrl+C: stop accepting, let streams finish for `grace` seconds, then
    end the rest with an `error` event; uvicorn then exits once the connections close."""

    def __init__(self, config: uvicorn.Config, grace: float) -> None:
        super().__init__(config)
        self._grace = grace
        self._draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._draining is None:
            # A signal handler: hand the work to the loop the signal-safe way.
            asyncio.get_event_loop().call_soon_threadsafe(self._start_draining)

    def _start_draining(self) -> None:
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(relay.drain(self._grace))


if __name__ == "__main__":
    main()
