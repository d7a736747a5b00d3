"""Responses belong to their owner: every created response carries `metadata.owner` (a keyed
hash of the caller, never the id itself), and user B resuming, cancelling or chaining onto
user A's response is answered exactly as for a response that does not exist, with nothing
sent upstream but the one retrieve. A's own works, on any instance. Two relay instances
(entra mode, background mode) share one upstream and the local OpenID Connect issuer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import FAKE_KEY, OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario, StreamRecord
from .oidc_issuer import ALICE, BOB, OidcIssuer, User, serving
from .sse_client import Received, chat, read_sse

ANSWER = "".join(f"竹生島の{i}番目の話です。" for i in range(30))


@pytest.fixture
async def issuer() -> AsyncIterator[OidcIssuer]:
    async with serving(OidcIssuer()) as running:
        yield running


@pytest.fixture
def settings(issuer: OidcIssuer, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**issuer.environ, OWNER_HASH_SECRET=OWNER_SECRET, RESUMABLE_STREAMS="true")


@asynccontextmanager
async def instances(settings: Settings) -> AsyncIterator[tuple[RelayServer, RelayServer]]:
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(asynccontextmanager(serve)(ChatService(settings)))
        two = await stack.enter_async_context(asynccontextmanager(serve)(ChatService(settings)))
        yield one, two


def as_user(issuer: OidcIssuer, user: User) -> dict[str, str]:
    return {"authorization": f"Bearer {issuer.token(user)}"}


def response_id(received: Received) -> str:
    return str(received.payloads("response.created")[0]["response_id"])


def sent_since(upstream: FaultyUpstream, mark: int) -> list[tuple[str, str, str]]:
    """What reached the upstream after `mark` records: (method, last path segment, query)."""
    return [_request(record) for record in upstream.records[mark:]]


def _request(record: StreamRecord) -> tuple[str, str, str]:
    return (record.method, record.path.rsplit("/", 1)[-1], record.query)


async def test_a_created_response_carries_its_owners_hash_never_the_id(
    issuer: OidcIssuer, settings: Settings, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖", delta_seconds=0.001))
    async with instances(settings) as (one, two):
        await chat(one.client, {"input": "滋賀"}, headers=as_user(issuer, ALICE))
        await chat(two.client, {"input": "滋賀"}, headers=as_user(issuer, ALICE))
        await chat(one.client, {"input": "滋賀"}, headers=as_user(issuer, BOB))
    owners = [record.request["metadata"]["owner"] for record in upstream.records]
    assert owners[0] == owners[1] != owners[2]  # the same user on any instance, another user apart
    assert all(len(owner) == 64 for owner in owners)
    sent = str([record.request for record in upstream.records])
    assert ALICE.oid not in sent
    assert BOB.oid not in sent


async def test_someone_elses_response_is_not_found_with_nothing_upstream_but_one_retrieve(
    issuer: OidcIssuer, settings: Settings, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, chunk_chars=8))
    async with instances(settings) as (one, two):
        alices = response_id(await chat(one.client, {"input": "滋賀"}, headers=as_user(issuer, ALICE)))
        unknown = "resp_" + "0" * 32
        bob = as_user(issuer, BOB)
        answers = {}
        for name, response in (("alice's", alices), ("unknown", unknown)):
            mark = len(upstream.records)
            resumed = await two.client.get(f"/api/chat/{response}", headers=bob)
            cancelled = await two.client.post(f"/api/chat/{response}/cancel", headers=bob)
            chained = await two.client.post(
                "/api/chat", json={"input": "続きを", "previous_response_id": response}, headers=bob
            )
            answers[name] = [(answer.status_code, answer.json()) for answer in (resumed, cancelled, chained)]
            assert sent_since(upstream, mark) == [("GET", response, "")] * 3  # one retrieve each
    assert answers["alice's"] == answers["unknown"]
    resume, cancel, chain = answers["alice's"]
    assert (
        resume
        == cancel
        == (404, {"error": {"code": "response_not_found", "message": "No stored response has that id"}})
    )
    # Chaining onto an unknown response is what the model service answers 400 for: a client then sends the history.
    assert chain[0] == 400
    assert chain[1]["error"]["code"] == "previous_response_not_found"


async def test_the_owner_resumes_cancels_and_chains_on_another_instance(
    issuer: OidcIssuer, settings: Settings, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, chunk_chars=8))
    alice = as_user(issuer, ALICE)
    async with instances(settings) as (one, two):
        whole = await chat(one.client, {"input": "滋賀"}, headers=alice)
        again = await read_sse(two.client, "GET", f"/api/chat/{response_id(whole)}", headers=alice)
        chained = await chat(two.client, {"input": "続きを", "previous_response_id": response_id(whole)}, headers=alice)
        upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.01, chunk_chars=2))
        started = await chat(one.client, {"input": "湖東"}, headers=alice, stop_after=2)
        cancelled = await two.client.post(f"/api/chat/{response_id(started)}/cancel", headers=alice)
    assert again.status == chained.status == 200
    assert again.text == whole.text == ANSWER
    assert chained.payloads("response.completed")[0]["status"] == "completed"
    created = [record.request for record in upstream.records if record.path.endswith("/responses")]
    assert created[1]["previous_response_id"] == response_id(whole)
    assert cancelled.status_code == 200
    assert cancelled.json() == {"id": response_id(started), "status": "cancelled"}


async def test_without_background_mode_only_the_owner_stops_a_live_stream(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    # Key mode: the function key names the caller (the host has checked it).
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.01, chunk_chars=2))
    async for server in serve(ChatService(make_settings(OWNER_HASH_SECRET=OWNER_SECRET))):
        mine, theirs = {"x-functions-key": "key-of-alice"}, {"x-functions-key": "key-of-bob"}
        async with server.client.stream(
            "POST", "/api/chat", json={"input": "滋賀"}, headers={**mine, "accept": "text/event-stream"}
        ) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("data:") and "response.created" in line:
                    live = line.split('"response_id":"', 1)[1].split('"', 1)[0]
                    break
            refused = await server.client.post(f"/api/chat/{live}/cancel", headers=theirs)
            stopped = await server.client.post(f"/api/chat/{live}/cancel", headers=mine)
            rest = [line async for line in lines]
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "response_not_found"
    assert stopped.status_code == 200
    assert any('"status":"cancelled"' in line for line in rest)


async def test_the_stream_record_names_the_user_only_by_the_hash(
    issuer: OidcIssuer, settings: Settings, upstream: FaultyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖", delta_seconds=0.001))
    token = issuer.token(ALICE)
    with caplog.at_level(logging.DEBUG, logger="responses_relay"):
        async with instances(settings) as (one, _):
            await chat(one.client, {"input": "滋賀"}, headers={"authorization": f"Bearer {token}"})
    [record] = [record for record in caplog.records if hasattr(record, "stream_owner")]
    assert record.stream_owner == upstream.records[0].request["metadata"]["owner"]
    for secret in (ALICE.oid, token, OWNER_SECRET, FAKE_KEY):
        assert secret not in caplog.text
