"""USER_DAILY_TOKENS: a daily token budget per user that caps, in Azure Table Storage, played by
the real emulator (Azurite, started by the session fixture on 127.0.0.1). Each test's user is its
own (a function key of its own), so tests share the emulator without sharing counts.

An answer reserves what it can cost before anything goes upstream and settles to what it cost
after: these tests try to get around that as a caller would (many chats at once on two
instances, hang-ups, Stops, hand-offs, background responses left running)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from azure.data.tables import TableClient
from starlette.types import ASGIApp, Receive, Scope, Send

from responses_relay.access.budget import TABLE, Budget
from responses_relay.access.estimate import estimate_tokens
from responses_relay.access.owner import Owners
from responses_relay.demo.background import StoredResponse
from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.storage.tables import Tables

from .azurite import Azurite
from .conftest import OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, chat, read_sse

SMALL = {"MAX_OUTPUT_TOKENS": "40", "MAX_TOOL_ROUNDS": "0", "TOOLS": "none"}  # a small reservation per chat


class Finished:
    """Wraps the relay's ASGI app and counts requests whose handling has ended, background
    work included (an answer is settled after the body's last byte)."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Condition()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            finally:
                async with self._changed:
                    self.count += 1
                    self._changed.notify_all()

        return counted

    async def wait_for(self, count: int, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.count >= count)


@pytest.fixture
def user() -> dict[str, str]:
    return {"x-functions-key": "key-" + uuid.uuid4().hex}


def owner_of(user: dict[str, str]) -> str:
    return Owners(OWNER_SECRET.encode()).of("key:" + user["x-functions-key"])


def rows(azurite: Azurite, user: dict[str, str], prefix: str) -> list[dict[str, Any]]:
    with TableClient.from_connection_string(azurite.connection_string, TABLE) as table:
        found = table.query_entities("PartitionKey eq @owner", parameters={"owner": owner_of(user)})
        return [dict(entity) for entity in found if str(entity["RowKey"]).startswith(prefix)]


def counted(azurite: Azurite, user: dict[str, str]) -> int:
    """The user's tokens charged in the table, on any day."""
    return sum(int(row["charged"].value) for row in rows(azurite, user, "day-"))


def open_holds(azurite: Azurite, user: dict[str, str]) -> list[dict[str, Any]]:
    return [row for row in rows(azurite, user, "hold-") if row["state"] == "open"]


def total_tokens(received: Received) -> int:
    return int(received.payloads("response.completed")[0]["usage"]["total_tokens"])


@pytest.fixture
def budgeted(azurite: Azurite, make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        budget = {"OWNER_HASH_SECRET": OWNER_SECRET, "AzureWebJobsStorage": azurite.connection_string}
        return make_settings(**{**budget, **overrides})

    return make


@asynccontextmanager
async def instances(settings: Settings, finished: Finished, count: int) -> AsyncIterator[list[RelayServer]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(asynccontextmanager(serve)(ChatService(settings), wrap=finished.wrap))
            for _ in range(count)
        ]


async def test_over_budget_is_429_until_the_next_utc_midnight(
    budgeted: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖は日本で一番大きな湖です。" * 3, delta_seconds=0.001))
    finished = Finished()
    # Each chat reserves 91 tokens (its input, estimated, and 40 of output) and costs 26: three fit in 150
    # one after the other (52 + 91), a fourth does not (78 + 91).
    async with instances(budgeted(USER_DAILY_TOKENS="150", **SMALL), finished, 1) as [server]:
        answers = []
        for count in range(1, 4):
            answers.append(await chat(server.client, {"input": "滋賀"}, headers=user))
            await finished.wait_for(count)  # settled
        sent = len(upstream.records)
        refused = await server.client.post("/api/chat", json={"input": "滋賀"}, headers=user)
        someone_else = await chat(server.client, {"input": "滋賀"}, headers={"x-functions-key": "another"})
    assert [answer.status for answer in answers] == [200, 200, 200]
    assert counted(azurite, user) == sum(total_tokens(answer) for answer in answers)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "this answer may need" in error["message"]
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert abs(int(refused.headers["retry-after"]) - (midnight - now).total_seconds()) < 5
    assert error["retry_after"] == int(refused.headers["retry-after"])
    assert len(upstream.records) == sent + 1  # only the other user's chat went upstream
    assert someone_else.status == 200


async def test_ten_chats_at_once_on_two_instances_cannot_pass_the_budget_together(
    budgeted: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    # Each chat reserves about 110 tokens (its input and 40 of output): three fit in 350, not four.
    upstream.set_scenario(Scenario(text="近江八幡の水郷めぐり。", delta_seconds=0.02, chunk_chars=1))
    finished = Finished()
    async with instances(budgeted(USER_DAILY_TOKENS="350", **SMALL), finished, 2) as servers:
        chats = [chat(servers[i % 2].client, {"input": "質問"}, headers=user) for i in range(10)]
        answers = await asyncio.gather(*chats)
        await finished.wait_for(10)
    admitted = [answer for answer in answers if answer.status == 200]
    assert 1 <= len(admitted) <= 3
    assert all(answer.status == 429 for answer in answers if answer.status != 200)
    assert counted(azurite, user) == sum(total_tokens(answer) for answer in admitted) <= 350
    assert open_holds(azurite, user) == []


async def test_two_instances_count_fifty_concurrent_chats_each_of_one_user_exactly(
    budgeted: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(text="近江八幡の水郷めぐり。", delta_seconds=0.001))
    finished = Finished()
    async with instances(budgeted(USER_DAILY_TOKENS="100000000"), finished, 2) as servers:
        chats = [chat(server.client, {"input": f"質問{i}"}, headers=user) for server in servers for i in range(50)]
        answers = await asyncio.gather(*chats)
        await finished.wait_for(100)
    assert [answer.status for answer in answers] == [200] * 100
    assert counted(azurite, user) == sum(total_tokens(answer) for answer in answers)
    assert open_holds(azurite, user) == []


async def test_a_resumed_or_replayed_response_is_counted_once(
    budgeted: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(text="彦根城の天守。" * 4, delta_seconds=0.001))
    finished = Finished()
    settings = budgeted(USER_DAILY_TOKENS="100000", RESUMABLE_STREAMS="true")
    async with instances(settings, finished, 1) as [server]:
        whole = await chat(server.client, {"input": "滋賀"}, headers=user)
        response_id = whole.payloads("response.created")[0]["response_id"]
        replayed = await read_sse(server.client, "GET", f"/api/chat/{response_id}", headers=user)
        await finished.wait_for(2)
    assert total_tokens(replayed) == total_tokens(whole)
    assert counted(azurite, user) == total_tokens(whole)


def demo_input_tokens(request: dict[str, Any]) -> int:
    """What the demo upstream bills for a request's input (responses_relay/demo/wire.py)."""
    return max(1, len(orjson.dumps(request.get("input"))) // 3)


def output_sent(stored: StoredResponse) -> int:
    """The output deltas the upstream sent of a response (each a token of its billing)."""
    return sum(b'"response.output_text.delta"' in frame for _, frame in stored.frames)


async def test_a_caller_who_leaves_is_counted_for_what_the_answer_used(
    budgeted: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(text="湖" * 400, chunk_chars=1, delta_seconds=0.002))
    finished = Finished()
    big = "琵琶湖について。" * 3900  # about 94 KB of question, then an immediate hang-up
    settings = budgeted(USER_DAILY_TOKENS="10000000")
    earlier = set(upstream.stored_responses())
    async with instances(settings, finished, 1) as [server]:
        left = [await chat(server.client, {"input": f"滋賀{i}"}, headers=user, stop_after=20) for i in range(3)]
        await chat(server.client, {"input": big}, headers=user, stop_at="response.created")
        await finished.wait_for(4)
    assert all(not received.terminals for received in left)
    requests = [record.request for record in upstream.records]
    sent = sum(output_sent(stored) for stored in upstream.stored_responses() if stored not in earlier)
    billed = sum(demo_input_tokens(request) for request in requests) + sent
    # Each counts its input, estimated (with the instructions and tools the demo does not bill), and
    # the output the relay read: not its reservation (six rounds of 1,000 tokens).
    estimated = sum(estimate_tokens(settings.instructions, request["tools"], request["input"]) for request in requests)
    assert billed <= counted(azurite, user) <= estimated + sent
    assert open_holds(azurite, user) == []


async def test_a_background_response_left_running_is_settled_from_its_stored_usage_by_the_next_chat(
    budgeted: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(text="湖" * 60, chunk_chars=1, delta_seconds=0.002))
    finished = Finished()
    settings = budgeted(USER_DAILY_TOKENS="10000000", RESUMABLE_STREAMS="true")
    async with instances(settings, finished, 1) as [server]:
        left = await chat(server.client, {"input": "滋賀"}, headers=user, stop_after=5)
        await finished.wait_for(1)
        stored = upstream.stored(left.payloads("response.created")[0]["response_id"])
        assert stored is not None
        assert stored.generation is not None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_finished(stored), upstream_loop(upstream)))
        [deferred] = open_holds(azurite, user)  # waiting for the response it left running
        upstream.set_scenario(Scenario(text="湖", delta_seconds=0.001))
        following = await chat(server.client, {"input": "次"}, headers=user)  # settles it first
        await finished.wait_for(2)
    usage = stored.response()["usage"]
    assert deferred["pending"] == stored.id
    assert counted(azurite, user) == usage["total_tokens"] + total_tokens(following)
    assert open_holds(azurite, user) == []


def upstream_loop(upstream: FaultyUpstream) -> asyncio.AbstractEventLoop:
    assert upstream._loop is not None
    return upstream._loop


async def _finished(stored: StoredResponse) -> None:
    assert stored.generation is not None
    await asyncio.gather(stored.generation, return_exceptions=True)


async def test_a_stopped_answer_counts_what_it_used_not_its_reservation(
    budgeted: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(text="湖" * 400, chunk_chars=1, delta_seconds=0.002))
    finished = Finished()
    async with instances(budgeted(USER_DAILY_TOKENS="10000000", MAX_OUTPUT_TOKENS="1000"), finished, 1) as [server]:
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        body, headers = orjson.dumps({"input": "滋賀"}), {"content-type": "application/json", **user}
        reading = asyncio.ensure_future(
            read_sse(server.client, "POST", "/api/chat", content=body, headers=headers, created=created)
        )
        stopped = await server.client.post(f"/api/chat/{await created}/cancel", headers=user)
        received = await reading
        await finished.wait_for(2)
    assert stopped.json()["status"] == "cancelled"
    assert received.payloads("response.completed")[0]["status"] == "cancelled"
    assert 0 < counted(azurite, user) < 1000  # its input and the output it streamed, not 6 rounds of 1000


async def test_an_unreachable_budget_table_refuses_with_503(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, user: dict[str, str], azurite: Azurite
) -> None:
    closed = azurite.connection_string.replace(f"127.0.0.1:{azurite.port}", "127.0.0.1:9")  # the discard port
    settings = make_settings(OWNER_HASH_SECRET=OWNER_SECRET, AzureWebJobsStorage=closed, USER_DAILY_TOKENS="10")
    async for server in serve(ChatService(settings)):
        refused = await server.client.post("/api/chat", json={"input": "滋賀"}, headers=user)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "budget_unavailable"
    assert "AccountKey" not in refused.text
    assert upstream.records == []


async def test_an_instance_that_lost_the_race_reads_again_and_loses_no_reservation(
    budgeted: Callable[..., Settings], user: dict[str, str], azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Instance A reads the day's count, instance B reserves, then A writes: A's ETag is stale, so its
    # transaction is refused and it reads again. Deterministic: A's read waits for B's whole reservation.
    settings = budgeted(USER_DAILY_TOKENS="1000")
    assert settings.storage is not None
    tables_a, tables_b = Tables(settings.storage), Tables(settings.storage)

    async def nothing_stored(response_id: str) -> None:
        return None

    a, b = (
        Budget(1000, tables_a, stored_response=nothing_stored),
        Budget(1000, tables_b, stored_response=nothing_stored),
    )
    owner = owner_of(user)
    try:
        await b.reserve(owner, "ans_first", 10)
        read_by_a, b_reserved = asyncio.Event(), asyncio.Event()
        table_a = tables_a.client(TABLE)
        real_get = table_a.get_entity

        async def get_then_let_b_reserve(*args: Any, **kwargs: Any) -> Any:
            entity = await real_get(*args, **kwargs)
            if not read_by_a.is_set() and str(args[1]).startswith("day-"):
                read_by_a.set()
                await b_reserved.wait()
            return entity

        monkeypatch.setattr(table_a, "get_entity", get_then_let_b_reserve)
        reserving = asyncio.create_task(a.reserve(owner, "ans_from_a", 5))
        await read_by_a.wait()
        await b.reserve(owner, "ans_from_b", 7)
        b_reserved.set()
        await reserving
    finally:
        await tables_a.aclose()
        await tables_b.aclose()
    assert counted(azurite, user) == 10 + 5 + 7
    assert len(open_holds(azurite, user)) == 3


async def test_health_says_the_budget_and_how_it_counts(budgeted: Callable[..., Settings]) -> None:
    async for server in serve(ChatService(budgeted(USER_DAILY_TOKENS="5000"))):
        health = (await server.client.get("/api/health")).json()
    assert health["budget"] == {"daily_tokens": 5000, "mode": "reserve_then_settle"}
