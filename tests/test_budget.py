"""USER_DAILY_TOKENS: a daily token budget per user in Azure Table Storage, played by the real
emulator (Azurite, started by the session fixture on 127.0.0.1). Each test's user is its own
(a function key of its own), so tests share the emulator without sharing counts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableClient
from starlette.types import ASGIApp, Receive, Scope, Send

from responses_relay.access.budget import TABLE, Budget
from responses_relay.access.owner import Owners
from responses_relay.events import Translator
from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.storage.tables import Tables

from .azurite import Azurite
from .conftest import OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, chat, read_sse


class Finished:
    """Wraps the relay's ASGI app and counts requests whose handling has ended, background
    work included (the budget is counted after the body's last byte)."""

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


def counted(azurite: Azurite, user: dict[str, str]) -> int:
    """The user's tokens in the table, on any day."""
    with TableClient.from_connection_string(azurite.connection_string, TABLE) as table:
        entities = table.query_entities("RowKey eq @owner", parameters={"owner": owner_of(user)})
        return sum(int(entity["tokens"].value) for entity in entities)


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
    async with instances(budgeted(USER_DAILY_TOKENS="20"), finished, 1) as [server]:
        first = await chat(server.client, {"input": "滋賀"}, headers=user)
        await finished.wait_for(1)
        sent = len(upstream.records)
        refused = await server.client.post("/api/chat", json={"input": "滋賀"}, headers=user)
        someone_else = await chat(server.client, {"input": "滋賀"}, headers={"x-functions-key": "another"})
    assert total_tokens(first) > 20
    assert counted(azurite, user) == total_tokens(first)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded"
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert abs(int(refused.headers["retry-after"]) - (midnight - now).total_seconds()) < 5
    assert error["retry_after"] == int(refused.headers["retry-after"])
    assert len(upstream.records) == sent + 1  # only the other user's chat went upstream
    assert someone_else.status == 200


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


def finished_stream(response_id: str, total_tokens: int) -> Translator:
    """What a stream that ended leaves for the budget: its response id and final usage."""
    translator = Translator(response_id=response_id)
    translator.usage = {"input_tokens": 1, "output_tokens": total_tokens - 1, "total_tokens": total_tokens}
    return translator


async def test_an_instance_that_lost_the_race_reads_again_and_loses_no_count(
    budgeted: Callable[..., Settings], user: dict[str, str], azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Instance A reads the count, instance B adds to it, then A writes: A's ETag is stale, so its
    # write is refused and it reads again. Deterministic: A's read waits for B's whole addition.
    settings = budgeted(USER_DAILY_TOKENS="1000")
    assert settings.storage is not None
    tables_a, tables_b = Tables(settings.storage), Tables(settings.storage)
    a, b = Budget(1000, tables_a), Budget(1000, tables_b)
    owner = owner_of(user)
    try:
        await b.spend(owner, finished_stream("resp_first", 10))
        read_by_a, b_added = asyncio.Event(), asyncio.Event()
        real_get = a._table.get_entity

        async def get_then_let_b_add(*args: object, **kwargs: object) -> object:
            entity = await real_get(*args, **kwargs)  # type: ignore[arg-type]
            if not read_by_a.is_set():
                read_by_a.set()
                await b_added.wait()
            return entity

        monkeypatch.setattr(a._table, "get_entity", get_then_let_b_add)
        adding = asyncio.create_task(a.spend(owner, finished_stream("resp_from_a", 5)))
        await read_by_a.wait()
        await b.spend(owner, finished_stream("resp_from_b", 7))
        b_added.set()
        await adding
    finally:
        await tables_a.aclose()
        await tables_b.aclose()
    assert counted(azurite, user) == 10 + 5 + 7
