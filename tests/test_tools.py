"""Function tools: strict schemas from typed signatures, the built-in local_time, and calls that
always give the model an output (its result, or `{"error": ...}`), whatever the arguments or
the tool do."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
import pytest

from responses_relay.guide_tools import TOOLS, local_time
from responses_relay.tools import FunctionCall, Toolbox, ToolError, function_tool


def trip(
    city: Annotated[str, "Where to"],
    days: int,
    budget: float,
    pace: Literal["slow", "fast"],
    sights: list[str],
    note: str | None,
    with_children: bool,
) -> dict[str, Any]:
    """Plan a trip.

    More about it, not sent to the model."""
    return {"city": city, "days": days}


async def run(toolbox: Toolbox, name: str, arguments: object) -> Any:
    raw = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    result = await toolbox.run(FunctionCall("call_1", name, raw))
    assert (result.call_id, result.name) == ("call_1", name)
    return orjson.loads(result.output)


def test_the_schema_is_strict_and_comes_from_the_signature() -> None:
    definition = function_tool(trip).definition()
    assert definition == {
        "type": "function",
        "name": "trip",
        "description": "Plan a trip.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "Where to"},
                "days": {"type": "integer"},
                "budget": {"type": "number"},
                "pace": {"type": "string", "enum": ["slow", "fast"]},
                "sights": {"type": "array", "items": {"type": "string"}},
                "note": {"type": ["string", "null"]},
                "with_children": {"type": "boolean"},
            },
            "required": ["city", "days", "budget", "pace", "sights", "note", "with_children"],
            "additionalProperties": False,
        },
    }


def test_local_time_is_registered_with_its_schema() -> None:
    definition = TOOLS["local_time"].definition()
    assert definition["parameters"]["properties"] == {
        "timezone": {"type": "string", "description": "An IANA time zone name, such as Asia/Tokyo or Europe/Paris"}
    }
    assert definition["parameters"]["required"] == ["timezone"]
    assert definition["strict"] is True


def optional(city: str = "Kyoto") -> str:
    """Has a default."""
    return city


def untyped(city) -> str:  # type: ignore[no-untyped-def]
    """No type."""
    return str(city)


def a_dict(options: dict[str, str]) -> str:
    """A type a strict schema here does not say."""
    return ""


def undocumented(city: str) -> str:
    return city


def variadic(*cities: str) -> str:
    """Positional only."""
    return ""


@pytest.mark.parametrize(
    ("function", "says"),
    [
        (optional, "has a default"),
        (untyped, "has no type"),
        (a_dict, "cannot say"),
        (undocumented, "needs a docstring"),
        (variadic, "must be a named parameter"),
    ],
)
def test_a_signature_a_strict_schema_cannot_say_is_refused_at_registration(function: Any, says: str) -> None:
    with pytest.raises(TypeError, match=says):
        function_tool(function)


def test_local_time_gives_the_time_with_its_offset() -> None:
    result = local_time("Asia/Tokyo")
    assert result["timezone"] == "Asia/Tokyo"
    moment = datetime.fromisoformat(result["local_time"])
    assert moment.utcoffset() == timedelta(hours=9)
    assert result["local_time"].endswith("+09:00")
    assert abs((moment - datetime.now(moment.tzinfo)).total_seconds()) < 5


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "Asia", "../../etc/passwd", "", "/etc/localtime"])
def test_local_time_refuses_what_is_not_an_iana_name(timezone: str) -> None:
    with pytest.raises(ToolError, match="Unknown time zone"):
        local_time(timezone)


async def test_a_call_gives_the_tools_json_result() -> None:
    toolbox = Toolbox(TOOLS.values(), timeout_seconds=5)
    output = await run(toolbox, "local_time", {"timezone": "Europe/Paris"})
    assert output["timezone"] == "Europe/Paris"
    assert datetime.fromisoformat(output["local_time"]).tzinfo is not None


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "Unknown time zone 'Mars/Olympus_Mons'"),
        ('{"timezone": "Asia/Tok', "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({}, "must be exactly timezone"),
        ({"timezone": "Asia/Tokyo", "city": "Kyoto"}, "must be exactly timezone"),
        ({"timezone": 9}, 'The argument timezone must be of the JSON schema {"type":"string"}'),
    ],
)
async def test_bad_arguments_give_the_model_an_error(arguments: object, says: str) -> None:
    output = await run(Toolbox(TOOLS.values(), timeout_seconds=5), "local_time", arguments)
    assert list(output) == ["error"]
    assert says in output["error"]


async def test_arguments_are_checked_against_every_declared_type() -> None:
    toolbox = Toolbox([function_tool(trip)], timeout_seconds=5)
    good = {"city": "Kyoto", "days": 2, "budget": 300, "pace": "slow", "sights": ["Gion"], "note": None}
    assert await run(toolbox, "trip", {**good, "with_children": False}) == {"city": "Kyoto", "days": 2}
    for name, bad in [("days", 2.5), ("days", True), ("budget", "300"), ("pace", "medium"), ("sights", [1]),
                      ("note", 5), ("with_children", 0)]:  # fmt: skip
        output = await run(toolbox, "trip", {**good, "with_children": False, name: bad})
        assert output["error"].startswith(f"The argument {name} must be"), (name, bad)


async def test_an_unknown_tool_is_an_error_for_the_model() -> None:
    output = await run(Toolbox(TOOLS.values(), timeout_seconds=5), "book_hotel", {})
    assert output == {"error": "There is no tool named 'book_hotel'"}


async def test_a_tool_that_raises_gives_an_error_without_its_message(caplog: pytest.LogCaptureFixture) -> None:
    def broken(city: str) -> str:
        """Fails."""
        raise RuntimeError("secret internals of " + city)

    output = await run(Toolbox([function_tool(broken)], timeout_seconds=5), "broken", {"city": "Kyoto"})
    assert output == {"error": "The tool broken failed"}
    assert "secret internals of Kyoto" in caplog.text  # logged for the operator, not sent


async def test_a_tool_past_its_timeout_is_an_error_and_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def hangs(city: str) -> str:
        """Never answers."""
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return city

    started = asyncio.get_running_loop().time()
    output = await run(Toolbox([function_tool(hangs)], timeout_seconds=0.1), "hangs", {"city": "Kyoto"})
    assert output == {"error": "The tool hangs did not finish within 0.1 seconds"}
    assert cancelled.is_set()
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_plain_function_runs_off_the_event_loop() -> None:
    threads: list[threading.Thread] = []

    def where(city: str) -> str:
        """Says where it ran."""
        threads.append(threading.current_thread())
        return city

    output = await (Toolbox([function_tool(where)], timeout_seconds=5)).run(FunctionCall("c", "where", '{"city":"x"}'))
    assert output.output == "x"  # a string result is the output as it is
    assert threads[0] is not threading.main_thread()


async def test_a_result_that_is_not_json_is_an_error() -> None:
    def opaque(city: str) -> object:
        """Returns an object JSON cannot hold."""
        return object()

    output = await run(Toolbox([function_tool(opaque)], timeout_seconds=5), "opaque", {"city": "Kyoto"})
    assert output == {"error": "The tool opaque failed"}


async def test_slow_plain_tools_take_only_their_own_threads_and_a_full_pool_refuses_at_once() -> None:
    release = threading.Event()

    def stuck(city: str) -> str:
        """Blocks until the test lets it go."""
        release.wait(30)
        return city

    toolbox = Toolbox([function_tool(stuck)], timeout_seconds=0.05, threads=2)
    loop = asyncio.get_running_loop()
    try:
        # Six calls that run past their timeout: their threads stay taken, but only the toolbox's two.
        outputs = [await run(toolbox, "stuck", {"city": "Kyoto"}) for _ in range(6)]
        assert outputs[:2] == [{"error": "The tool stuck did not finish within 0.05 seconds"}] * 2
        assert all("too many tool calls are running" in output["error"] for output in outputs[2:])
        # The event loop's default executor is free: a DNS lookup answers at once.
        async with asyncio.timeout(5):
            assert await loop.getaddrinfo("localhost", 80)
        release.set()
        # Each thread finishes its stuck call before it takes the next task: once these ran, both are free.
        drained = [asyncio.wrap_future(toolbox._threads.submit(lambda: None)) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*drained), 5)
        assert (await toolbox.run(FunctionCall("c", "stuck", '{"city": "Nara"}'))).output == "Nara"
    finally:
        release.set()
        toolbox.close()
