"""POST /api/feedback over real sockets, kept in the storage emulator (Azurite): the owner
check (someone else's response is 404), one row per user and response (a second vote replaces
the first), the comment's limit and where it may go, and the telemetry custom event, which the
Azure Monitor distro sends to an ingestion endpoint on 127.0.0.1 as a customEvent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from azure.data.tables.aio import TableClient

from responses_relay.access.owner import Owners
from responses_relay.service import ChatService
from responses_relay.settings import Settings, load_settings

from .azurite import Azurite
from .conftest import OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream
from .ingestion import Ingestion
from .sse_client import chat
from .test_telemetry import run_python

ALICE = {"x-functions-key": "alice-key"}
BOB = {"x-functions-key": "bob-key"}
OWNERS = Owners(OWNER_SECRET.encode())


@pytest.fixture
def keeping(upstream: FaultyUpstream, azurite: Azurite) -> Callable[..., ChatService]:
    """A relay that keeps feedback: in demo mode (the test's upstream, which keeps responses as
    Azure OpenAI does), with owners and the emulator's storage account."""

    def make(**environ: str) -> ChatService:
        storage = {"AzureWebJobsStorage": azurite.connection_string, "OWNER_HASH_SECRET": OWNER_SECRET}
        return ChatService(load_settings({**storage, **environ}), demo=upstream)

    return make


@pytest.fixture
async def relay(keeping: Callable[..., ChatService]) -> AsyncIterator[RelayServer]:
    async for server in serve(keeping()):
        yield server


async def answered(relay: RelayServer, headers: dict[str, str]) -> str:
    """A new answer's response id, asked as the caller of `headers`."""
    received = await chat(relay.client, {"input": "滋賀県について"}, headers=headers)
    return str(orjson.loads(received.events[-1].data)["response_id"])


async def row(azurite: Azurite, headers: dict[str, str], response_id: str) -> dict[str, Any] | None:
    owner = OWNERS.of("key:" + headers["x-functions-key"])
    async with TableClient.from_connection_string(azurite.connection_string, "feedback") as table:
        rows = [dict(entity) async for entity in table.query_entities(f"RowKey eq '{response_id}'")]
    assert all(found["PartitionKey"] == owner for found in rows)
    return rows[0] if rows else None


async def test_a_vote_is_kept_once_per_user_and_response_the_second_replacing_the_first(
    relay: RelayServer, azurite: Azurite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "responses_relay.feedback")
    response_id = await answered(relay, ALICE)
    first = await relay.client.post("/api/feedback", json={"response_id": response_id, "rating": "up"}, headers=ALICE)
    assert (first.status_code, first.content) == (204, b"")
    assert (await row(azurite, ALICE, response_id) or {})["rating"] == "up"
    vote = {"response_id": response_id, "rating": "down", "comment": "駅からの道順が違います"}
    second = await relay.client.post("/api/feedback", json=vote, headers=ALICE)
    assert second.status_code == 204
    kept = await row(azurite, ALICE, response_id)
    assert kept is not None
    assert (kept["rating"], kept["comment_chars"]) == ("down", 11)
    assert "comment" not in kept  # FEEDBACK_COMMENTS is not `store`
    events = [record for record in caplog.records if getattr(record, "microsoft.custom_event.name", None)]
    assert [event.__dict__["feedback_rating"] for event in events] == ["up", "down"]
    assert {event.__dict__["feedback_owner"] for event in events} == {OWNERS.of("key:alice-key")}
    assert "駅" not in caplog.text


async def test_someone_elses_response_is_not_found_and_nothing_is_kept(
    relay: RelayServer, azurite: Azurite, upstream: FaultyUpstream
) -> None:
    response_id = await answered(relay, ALICE)
    vote = {"response_id": response_id, "rating": "down"}
    stranger = await relay.client.post("/api/feedback", json=vote, headers=BOB)
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "response_not_found"
    unknown = await relay.client.post("/api/feedback", json={**vote, "response_id": "resp_nosuch"}, headers=ALICE)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "response_not_found")
    assert await row(azurite, BOB, response_id) is None
    assert await row(azurite, ALICE, response_id) is None


@pytest.mark.parametrize(
    ("vote", "param", "says"),
    [
        ({"response_id": "RESP", "rating": "up"}, None, "response id"),
        ({"rating": "up"}, "response_id", "response id"),
        ({"response_id": "resp_x", "rating": "meh"}, "rating", "'up' or 'down'"),
        ({"response_id": "resp_x", "rating": "up", "comment": "x" * 1001}, "comment", "at most 1000"),
        ({"response_id": "resp_x", "rating": "up", "comment": 5}, "comment", "a string"),
        ({"response_id": "resp_x", "rating": "up", "stars": 5}, None, "Unknown field 'stars'"),
    ],
)
async def test_bad_votes_are_refused_naming_the_field(
    relay: RelayServer, upstream: FaultyUpstream, vote: dict[str, Any], param: str | None, says: str
) -> None:
    response = await relay.client.post("/api/feedback", json=vote, headers=ALICE)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.get("param") == param
    assert says in error["message"]
    assert upstream.records == []  # nothing asked upstream


async def test_a_comment_of_1000_characters_is_kept_in_the_clear_when_asked(
    keeping: Callable[..., ChatService], azurite: Azurite
) -> None:
    async for server in serve(keeping(FEEDBACK_COMMENTS="store")):
        response_id = await answered(server, ALICE)
        vote = {"response_id": response_id, "rating": "up", "comment": "と" * 1000}
        response = await server.client.post("/api/feedback", json=vote, headers=ALICE)
    assert response.status_code == 204
    kept = await row(azurite, ALICE, response_id)
    assert kept is not None
    assert kept["comment"] == "と" * 1000


async def test_without_storage_or_owners_feedback_is_not_kept_and_health_says_so(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    async for server in serve(ChatService(make_settings(OPENAI_ENDPOINT=upstream.base_url))):
        health = (await server.client.get("/api/health")).json()
        response = await server.client.post("/api/feedback", json={"response_id": "resp_x", "rating": "up"})
    assert health["feedback"] is False
    assert (response.status_code, response.json()["error"]["code"]) == (409, "feedback_not_kept")


async def test_health_says_feedback_is_kept(relay: RelayServer) -> None:
    assert (await relay.client.get("/api/health")).json()["feedback"] is True


EMIT = """
from opentelemetry._logs import get_logger_provider
from responses_relay import telemetry
from responses_relay.feedback import Vote, report
from responses_relay.settings import load_settings
assert telemetry.configure(load_settings())
vote = Vote("resp_abc", "down", "the map is wrong")
report("owner-hash", vote, keep_comment=KEEP)
get_logger_provider().force_flush()
"""


@pytest.mark.parametrize("keep", [False, True])
async def test_the_vote_reaches_application_insights_as_a_custom_event(ingestion: Ingestion, keep: bool) -> None:
    result = await asyncio.to_thread(run_python, EMIT.replace("KEEP", str(keep)), ingestion.environ)
    assert result.returncode == 0, result.stderr
    items = [item.get("data", {}) for item in ingestion.received]
    events = [item["baseData"] for item in items if item.get("baseType") == "EventData"]
    assert len(events) == 1
    event = events[0]
    assert event["name"] == "relay.feedback"
    properties = event["properties"]
    assert properties["feedback_owner"] == "owner-hash"
    assert (properties["feedback_rating"], properties["feedback_response_id"]) == ("down", "resp_abc")
    assert properties["feedback_comment_chars"] == "16"
    assert properties.get("feedback_comment") == ("the map is wrong" if keep else None)
