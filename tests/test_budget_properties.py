"""Budgets that cap, whatever a caller does: a property-based test of USER_DAILY_TOKENS.

Hypothesis generates what one user does on two relay instances at once, sharing the storage
emulator (Azurite) and the test upstream: several chats together, each read whole (following
hand-offs on the other instance), left after some deltas, or stopped; with or without
background mode (where a response left behind runs on upstream), time-limit hand-offs, upstream
streams cut mid-answer, answers of any length and budgets of any size. After every example,
once the responses left running have ended and the user's next chat has come:

- every reservation is settled;
- what the table charges the user is never above `USER_DAILY_TOKENS`;
- and it is at least what the upstream billed for that user (the demo's billing: its input
  formula, and each output delta it sent).

CI runs a fixed, bounded set of examples (derandomized); `BUDGET_EXAMPLES=N` runs more, with
new random ones each run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responses_relay.demo.background import StoredResponse
from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .azurite import Azurite
from .conftest import OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, read_sse
from .test_budget import Finished, counted, demo_input_tokens, open_holds, output_sent

CI_EXAMPLES = 20
EXAMPLES = int(os.environ.get("BUDGET_EXAMPLES", str(CI_EXAMPLES)))
MAX_OUTPUT_TOKENS = 40
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Chat:
    instance: int  # which instance it asks
    action: str  # whole: read to the end; leave: hang up after `after` deltas; stop: cancel after them
    after: int


@dataclass(frozen=True)
class Plan:
    resumable: bool  # background mode: a response left behind runs on upstream
    hand_offs: bool  # (background mode) a time limit answers outlast: they are handed off
    daily_tokens: int
    deltas: int  # the answer's length in output tokens (the model stops at MAX_OUTPUT_TOKENS)
    cut_after: int | None  # every answer's upstream stream is cut after this many deltas
    chats: tuple[Chat, ...]


chats = st.builds(Chat, st.integers(0, 1), st.sampled_from(["whole", "leave", "stop"]), st.integers(0, 30))


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    resumable = draw(st.booleans())
    return Plan(
        resumable=resumable,
        hand_offs=resumable and draw(st.booleans()),
        daily_tokens=draw(st.integers(120, 800)),
        deltas=draw(st.integers(1, 60)),
        cut_after=draw(st.one_of(st.none(), st.integers(0, 30))),
        chats=tuple(draw(st.lists(chats, min_size=1, max_size=6))),
    )


def relay_settings(plan: Plan, azurite: Azurite, make_settings: Callable[..., Settings]) -> Settings:
    environ = {
        "OWNER_HASH_SECRET": OWNER_SECRET,
        "AzureWebJobsStorage": azurite.connection_string,
        "USER_DAILY_TOKENS": str(plan.daily_tokens),
        "MAX_OUTPUT_TOKENS": str(MAX_OUTPUT_TOKENS),
        "TOOLS": "none",
        "MAX_TOOL_ROUNDS": "0",
        "RESUMABLE_STREAMS": str(plan.resumable).lower(),
    }
    if plan.hand_offs:  # a round's continuation (no tools here) fits in the limit
        environ |= {"STREAM_TIME_LIMIT_SECONDS": "0.3", "TOOL_TIMEOUT_SECONDS": "0.05",
                    "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.05", "UPSTREAM_READ_TIMEOUT_SECONDS": "0.15"}  # fmt: skip
    return make_settings(**environ)


def scenario(plan: Plan) -> Scenario:
    pace = 0.01 if plan.hand_offs else 0.002
    answer = Scenario(text="湖" * plan.deltas, chunk_chars=1, delta_seconds=pace)
    if plan.cut_after is None:
        return answer
    if plan.resumable:  # the creating POST's stream is cut; the relay heals it from the stored response
        return Scenario(text=answer.text, chunk_chars=1, delta_seconds=pace, stream_cuts=(plan.cut_after + 3,))
    return Scenario(text=answer.text, chunk_chars=1, delta_seconds=pace, ending="cut", after_deltas=plan.cut_after)


class Caller:
    """One user's chats, counting the requests it makes (each handled in full before the checks)."""

    def __init__(self, servers: list[RelayServer]) -> None:
        self.servers = servers
        self.key = {"x-functions-key": "key-" + uuid.uuid4().hex}
        self.requests = 0

    async def chat(self, chat: Chat) -> None:
        server = self.servers[chat.instance]
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        stop = None if chat.action == "whole" else chat.after
        self.requests += 1
        received = await read_sse(
            server.client, "POST", "/api/chat", content=orjson.dumps({"input": "滋賀"}),
            headers={**JSON, **self.key}, stop_after=stop, created=created,
        )  # fmt: skip
        if chat.action == "stop" and created.done():
            self.requests += 1
            await self.servers[1 - chat.instance].client.post(f"/api/chat/{created.result()}/cancel", headers=self.key)
        if chat.action == "whole":
            await self.follow(received, chat.instance)

    async def follow(self, received: Received, instance: int) -> None:
        """Follow hand-offs, each on the other instance, as the page does."""
        for _ in range(20):
            handed_off = received.payloads("stream.resume")
            if not handed_off:
                return
            instance = 1 - instance
            path, after = f"/api/chat/{handed_off[0]['response_id']}", handed_off[0]["after"]
            self.requests += 1
            received = await read_sse(
                self.servers[instance].client, "GET", path, params={"after": after}, headers=self.key
            )


def billed(requests: list[dict[str, Any]], responses: list[StoredResponse]) -> int:
    """What the upstream billed: each request's input, each response's output (its usage once it
    ended with one, else the deltas it sent)."""
    output = 0
    for stored in responses:
        usage = stored.response().get("usage") if stored.done else None
        output += usage["output_tokens"] if isinstance(usage, dict) else output_sent(stored)
    return sum(demo_input_tokens(request) for request in requests) + output


async def ended(upstream: FaultyUpstream, responses: list[StoredResponse]) -> None:
    """Until every response left running upstream has ended."""
    loop = upstream._loop
    assert loop is not None
    generations = [stored.generation for stored in responses if stored.generation is not None]

    async def all_ended() -> None:
        await asyncio.gather(*generations, return_exceptions=True)

    await asyncio.wait_for(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(all_ended(), loop)), 30)


@asynccontextmanager
async def two_instances(settings: Settings, finished: Finished) -> AsyncIterator[list[RelayServer]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(asynccontextmanager(serve)(ChatService(settings), wrap=finished.wrap))
            for _ in range(2)
        ]


async def run(plan: Plan, upstream: FaultyUpstream, settings: Settings, azurite: Azurite) -> None:
    upstream.set_scenario(scenario(plan))
    upstream.records.clear()
    earlier = set(upstream.stored_responses())
    finished = Finished()
    async with two_instances(settings, finished) as servers:
        caller = Caller(servers)
        await asyncio.gather(*(caller.chat(chat) for chat in plan.chats))
        await finished.wait_for(caller.requests)
        await ended(upstream, [stored for stored in upstream.stored_responses() if stored not in earlier])
        upstream.set_scenario(Scenario(text="湖", delta_seconds=0.0))
        await caller.chat(Chat(0, "whole", 0))  # the user's next chat: it settles what was left running
        await finished.wait_for(caller.requests)
    user = caller.key
    creations = [
        record.request
        for record in upstream.records
        if (record.method, record.path.endswith("/responses")) == ("POST", True)
    ]
    responses = [stored for stored in upstream.stored_responses() if stored not in earlier]
    assert open_holds(azurite, user) == [], "every reservation is settled"
    charged = counted(azurite, user)
    assert charged <= plan.daily_tokens
    assert charged >= billed(creations, responses)


@settings(
    max_examples=EXAMPLES,
    derandomize=EXAMPLES <= CI_EXAMPLES,  # CI's examples are the same every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans())
def test_a_budget_caps_and_counts_what_was_used_whatever_the_caller_does(
    plan: Plan, upstream: FaultyUpstream, azurite: Azurite, make_settings: Callable[..., Settings]
) -> None:
    settings = relay_settings(plan, azurite, make_settings)
    asyncio.run(asyncio.wait_for(run(plan, upstream, settings, azurite), 90))
