"""The local host's ASGI app: what the Functions host does in front of any back end.

Each HTTP function is served at host.json's route prefix plus its route, with its
methods (405 otherwise) and its auth level (a function key when `LOCAL_FUNCTION_KEY`
is set), CORS for the allowed origins, and `static/` at `/`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .. import shutdown
from ..access.auth import function_key
from ..errors import METHOD_NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED, HttpError, error_response
from .request_limit import RequestLimit

Endpoint = Callable[[Request], Awaitable[Response]]
_KEYED_LEVELS = frozenset({"function", "admin"})
_CALLER_HEADERS = ("content-type", "x-functions-key", "authorization", "last-event-id")
ALL_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
# Functions route templates: {name}, {name:constraint}, {*name} (catch-all). Optional parts ({name?}) are not served.
_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


@dataclass(frozen=True)
class HttpFunction:
    """One HTTP-triggered function as a back end serves it."""

    name: str
    route: str  # the Functions route template, without the prefix
    methods: frozenset[str]
    auth_level: str  # anonymous, function or admin
    endpoint: Endpoint


def build_asgi_app(
    functions: Sequence[HttpFunction],
    *,
    route_prefix: str = "api",
    static_dir: Path | None = None,
    cors_origins: Sequence[str] = (),
    function_key: str | None = None,
    diagnostics: bool = False,
    request_limit_seconds: float | None = None,
) -> Starlette:
    """An ASGI app serving `functions` as the Functions host would; with `request_limit_seconds`,
    cut as Azure's front end cuts a request at 230 s."""
    routes: list[BaseRoute] = []
    for function in functions:
        key = function_key if function.auth_level in _KEYED_LEVELS else None
        # Methods are checked in the endpoint, so a wrong one gets 405 rather than the static files' 404.
        endpoint = _guarded(function.endpoint, function.methods, key)
        routes.append(Route(starlette_path(route_prefix, function.route), endpoint, methods=list(ALL_METHODS)))
    if diagnostics:
        routes.append(Route("/_diagnostics", _diagnostics))
    if static_dir is not None and static_dir.is_dir():
        routes.append(Mount("/", StaticFiles(directory=static_dir, html=True)))
    middleware = []
    if request_limit_seconds is not None:
        middleware.append(Middleware(RequestLimit, seconds=request_limit_seconds))
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=[*_CALLER_HEADERS, "traceparent", "tracestate"],  # and the W3C trace context
                expose_headers=["retry-after", "www-authenticate"],
                max_age=600,
            )
        )
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error})


def starlette_path(route_prefix: str, route: str) -> str:
    """`api` + `chat/{response_id}` -> `/api/chat/{response_id}` (Starlette's path syntax)."""
    if "?" in route:
        raise ValueError(f"route {route!r}: optional route parameters are not supported by the local host")
    path = "/" + "/".join(part for part in (route_prefix.strip("/"), route.strip("/")) if part)
    return _PARAMETER.sub(lambda match: "{" + match[2] + (":path}" if match[1] else "}"), path)


def _guarded(endpoint: Endpoint, methods: frozenset[str], key: str | None) -> Endpoint:
    async def guarded(request: Request) -> Response:
        if request.method not in methods:
            allow = {"Allow": ", ".join(sorted(methods))}
            return error_response(METHOD_NOT_ALLOWED, f"Use {' or '.join(sorted(methods))}", headers=allow)
        refused = _key_refused(request, key) if key is not None else None
        return refused or await endpoint(request)

    return guarded


def _key_refused(request: Request, key: str) -> Response | None:
    """The answer to a request without the function key, as Azure's host reads the key (and the
    relay after it); None when it has the key."""
    try:
        given = function_key(request) or ""
    except HttpError as error:
        return error.to_response()
    if hmac.compare_digest(given.encode(), key.encode()):
        return None
    return error_response(UNAUTHORIZED, "A function key is required (x-functions-key header or ?code=)")


async def _diagnostics(request: Request) -> Response:
    """For soak runs (LOCAL_HOST_DIAGNOSTICS=1 only): what the host process holds right now."""
    return JSONResponse(
        {"tasks": len(asyncio.all_tasks()), "live_streams": shutdown.open_count(), "open_fds": _open_fds()}
    )


def _open_fds() -> int | None:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        return error_response(METHOD_NOT_ALLOWED, str(error.detail), headers=error.headers)
    return error_response(NOT_FOUND, str(error.detail), headers=error.headers)


def route_prefix(app_dir: Path) -> str:
    """host.json's extensions.http.routePrefix ("api" when absent)."""
    host_json = app_dir / "host.json"
    if not host_json.exists():
        return "api"
    document = json.loads(host_json.read_text(encoding="utf-8"))
    prefix = document.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return str(prefix)
