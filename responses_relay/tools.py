"""Function tools the relay runs for the model: a typed Python function becomes a tool whose
strict JSON schema comes from its signature; `Toolbox` runs the model's calls of them.

A parameter's type is `str`, `int`, `float`, `bool`, a `Literal` of strings, a `list` of one
of those, or one of those `| None` (strict schemas have no optional fields: the model sends
null). `Annotated[str, "what it is"]` describes a parameter; the docstring's first paragraph
describes the tool. A call whose arguments are not the declared JSON, a tool that raises or
runs past its timeout: each gives the model `{"error": "..."}` as the output, never an
exception for the stream; a `ToolError`'s message is meant for the model.

A plain function runs in the toolbox's own bounded pool of threads, never in the event loop's
default executor (which DNS lookups and file I/O share): a thread cannot be stopped, so a
tool past its timeout keeps its thread until it returns, and when every thread is taken a
call gets the model an error at once instead of waiting.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import orjson

logger = logging.getLogger("responses_relay.tools")

_JSON_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolError(Exception):
    """A tool cannot do what the model asked; the message goes to the model as the error."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # the strict JSON schema of the arguments
    function: Callable[..., object]
    hints: dict[str, Any]  # each parameter's type, for checking the model's arguments

    def definition(self) -> dict[str, Any]:
        """The Responses API's function tool."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": True,
        }


@dataclass(frozen=True)
class FunctionCall:
    """A call the model made: its `function_call` output item."""

    call_id: str
    name: str
    arguments: str  # JSON, as the model wrote it


@dataclass(frozen=True)
class ToolResult:
    """What a call gave, for the model (`function_call_output`) and the caller (`tool.result`)."""

    call_id: str
    name: str
    output: str
    error: str | None = None  # why the call failed (its output then says so to the model), for telemetry

    def input_item(self) -> dict[str, str]:
        return {"type": "function_call_output", "call_id": self.call_id, "output": self.output}


def function_tool(function: Callable[..., object]) -> Tool:
    """The tool `function` is, named after it; TypeError for a signature a strict schema cannot say."""
    hints = typing.get_type_hints(function, include_extras=True)
    properties: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{function.__name__}: parameter {name} must be a named parameter")
        if parameter.default is not parameter.empty:
            raise TypeError(f"{function.__name__}: {name} has a default; strict tools take `X | None` instead")
        if name not in hints:
            raise TypeError(f"{function.__name__}: parameter {name} has no type")
        plain[name], described = _described(hints[name])
        properties[name] = {**_schema(plain[name], f"{function.__name__}.{name}"), **described}
    description = (inspect.getdoc(function) or "").split("\n\n")[0].replace("\n", " ")
    if not description:
        raise TypeError(f"{function.__name__}: a tool needs a docstring, which tells the model what it does")
    parameters = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return Tool(function.__name__, description, parameters, function, plain)


def registry(*functions: Callable[..., object]) -> dict[str, Tool]:
    """The tools, by name."""
    tools = [function_tool(function) for function in functions]
    return {tool.name: tool for tool in tools}


class Toolbox:
    """The tools offered to the model, and how their calls run."""

    def __init__(self, tools: Iterable[Tool], timeout_seconds: float, *, threads: int = 4) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._timeout = timeout_seconds
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tool")
        # A thread is taken from a call's start until its function returns, timed out or not.
        self._free_threads = threading.BoundedSemaphore(threads)

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition() for tool in self._tools.values()]

    async def run(self, call: FunctionCall) -> ToolResult:
        """The call's output: the tool's JSON result, or `{"error": ...}`."""
        failure: str | None = None
        try:
            result = await self._result(call)
            output = result if isinstance(result, str) else orjson.dumps(result).decode()
        except ToolError as error:
            output, failure = _error(str(error)), "tool_error"
        except TimeoutError:
            logger.warning("tool %s ran past %g s", call.name, self._timeout)
            output, failure = _error(f"The tool {call.name} did not finish within {self._timeout:g} seconds"), "timeout"
        except TypeError:  # orjson: a result that is not JSON
            logger.warning("tool %s returned something that is not JSON", call.name)
            output, failure = _error(f"The tool {call.name} failed"), "not_json"
        except Exception as error:
            logger.exception("tool %s failed", call.name)
            output, failure = _error(f"The tool {call.name} failed"), type(error).__qualname__
        return ToolResult(call.call_id, call.name, output, failure)

    async def _result(self, call: FunctionCall) -> object:
        tool = self._tools.get(call.name)
        if tool is None:
            raise ToolError(f"There is no tool named {call.name[:100]!r}")
        arguments = _arguments(tool, call.arguments)
        async with asyncio.timeout(self._timeout):
            if inspect.iscoroutinefunction(tool.function):
                return await typing.cast(Awaitable[object], tool.function(**arguments))
            # A plain function may block (files, the network): off the event loop.
            return await self._in_thread(functools.partial(tool.function, **arguments), tool.name)

    async def _in_thread(self, function: Callable[[], object], name: str) -> object:
        if not self._free_threads.acquire(blocking=False):
            logger.warning("tool %s refused: all tool threads are busy", name)
            raise ToolError(f"The tool {name} cannot run now: too many tool calls are running; try again later")
        running = self._threads.submit(function)
        # Released when the function returns (in its thread), not when the call times out.
        running.add_done_callback(lambda _: self._free_threads.release())
        return await asyncio.wrap_future(running)

    def close(self) -> None:
        """Stop taking calls; threads still running finish on their own."""
        self._threads.shutdown(wait=False, cancel_futures=True)


def _arguments(tool: Tool, raw: str) -> dict[str, Any]:
    """The call's arguments, checked against the tool's parameters; ToolError when they are not."""
    try:
        arguments = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ToolError("The arguments are not JSON") from None
    if not isinstance(arguments, dict):
        raise ToolError("The arguments must be a JSON object")
    missing = [name for name in tool.hints if name not in arguments]
    unknown = [name for name in arguments if name not in tool.hints]
    if missing or unknown:
        raise ToolError(f"The arguments must be exactly {', '.join(tool.hints) or 'none'}")
    for name, value in arguments.items():
        if not _fits(value, tool.hints[name]):
            expected = orjson.dumps(_schema(tool.hints[name], name)).decode()
            raise ToolError(f"The argument {name} must be of the JSON schema {expected}")
    return arguments


def _described(hint: Any) -> tuple[Any, dict[str, str]]:
    """`Annotated[T, "description"]` as T and its schema's description."""
    if typing.get_origin(hint) is not Annotated:
        return hint, {}
    plain, *extras = typing.get_args(hint)
    texts = [extra for extra in extras if isinstance(extra, str)]
    return plain, {"description": texts[0]} if texts else {}


def _schema(hint: Any, where: str) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if origin is Literal and all(isinstance(arg, str) for arg in args):
        return {"type": "string", "enum": list(args)}
    if origin is list and len(args) == 1:
        return {"type": "array", "items": _schema(args[0], where)}
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        [inner] = [arg for arg in args if arg is not type(None)]
        schema = _schema(inner, where)
        return {**schema, "type": [schema["type"], "null"]}
    raise TypeError(f"{where}: a strict tool schema cannot say {hint!r}")


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value is of the declared type (JSON has no int/float split but Python's bool is an int)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return type(value) in (int, float)
    if hint in _JSON_TYPES:
        return type(value) is hint
    if origin is Literal:
        return value in args and isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_fits(item, args[0]) for item in value)
    return any(_fits(value, arg) for arg in args) if value is not None else type(None) in args


def _error(message: str) -> str:
    return orjson.dumps({"error": message}).decode()
