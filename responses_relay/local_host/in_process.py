"""The in-process back end: the FunctionApp's own callables, called in the host's process.

Fast, and what the tests use by default. The real worker back end (`worker/`) runs the
same app the way Azure does; both give the function the same request, an invocation id
in `x-ms-invocation-id` included.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import azure.functions as func
from starlette.requests import Request
from starlette.responses import Response

from ..invocation import INVOCATION_ID_HEADER
from .app import Endpoint, HttpFunction
from .backend import BackendError


class InProcessBackend:
    name = "in-process"

    def __init__(self, app_dir: Path) -> None:
        self._app_dir = app_dir

    async def start(self) -> list[HttpFunction]:
        return http_functions(load_function_app(self._app_dir))

    async def aclose(self) -> None:
        return None


def load_function_app(app_dir: Path) -> func.FunctionApp:
    sys.path.insert(0, str(app_dir))
    module = importlib.import_module("function_app")
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionApp)]
    if len(apps) != 1:
        raise BackendError(f"{app_dir / 'function_app.py'} must define exactly one FunctionApp")
    return apps[0]


def http_functions(function_app: func.FunctionApp) -> list[HttpFunction]:
    """Every HTTP-triggered function registered on `function_app`, as the indexer sees it."""
    functions = []
    for function in function_app.get_functions():
        trigger = function.get_trigger()
        if not isinstance(trigger, func.decorators.http.HttpTrigger):
            continue
        name = str(function.get_function_name())
        methods = frozenset(str(method.value) for method in trigger.methods or func.HttpMethod)
        auth_level = str(trigger.auth_level.value if trigger.auth_level else "function").lower()
        endpoint = _endpoint(function.get_user_function(), trigger.name)
        functions.append(HttpFunction(name, trigger.route or name, methods, auth_level, endpoint))
    return functions


_INVOCATION_ID = INVOCATION_ID_HEADER.encode()


def _endpoint(user_function: Callable[..., object], binding: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        # The Functions host tags every request it passes on with its invocation id, in place of any the caller sent.
        headers = [(name, value) for name, value in request.scope["headers"] if name.lower() != _INVOCATION_ID]
        scope = {**request.scope, "headers": [*headers, (_INVOCATION_ID, str(uuid.uuid4()).encode())]}
        result = user_function(**{binding: Request(scope, request.receive)})
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Response):
            raise TypeError(f"{binding}: the function returned {type(result).__name__}, not a Response")
        return result

    return endpoint
