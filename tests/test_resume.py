"""Resumable streams (RESUMABLE_STREAMS=true: the Responses API's background mode), over real
sockets with two relay instances sharing one upstream, as Flex Consumption's instances
share Azure OpenAI: a stream dropped on one instance continues on the other, an upstream
cut heals invisibly, a cancel on one instance ends a live stream on the other, and bad
input is refused before anything reaches the upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import orjson
import pytest

from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import RESUMABLE, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, chat, read_sse

ANSWER = "".join(f"琵琶湖の{i}番目の見どころです。" for i in range(40))


@asynccontextmanager
async def instances(settings: Settings, count: int = 2) -> AsyncIterator[list[RelayServer]]:
    """`count` relay instances, each its own ChatService on its own socket."""
    async with AsyncExitStack() as stack:
        servers = []
        for _ in range(count):
            servers.append(await stack.enter_async_context(asynccontextmanager(serve)(ChatService(settings))))
        yield servers


@pytest.fixture
def resumable(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**RESUMABLE)


def ids(received: Received) -> list[int]:
    return [int(event.id) for event in received.events if event.id is not None]


def response_id(received: Received) -> str:
    return str(received.payloads("response.created")[0]["response_id"])


async def resume(server: RelayServer, response: str, **options: Any) -> Received:
    return await read_sse(server.client, "GET", f"/api/chat/{response}", **options)


async def test_background_mode_reaches_the_upstream_and_the_health_route(
    upstream: FaultyUpstream, resumable: Settings, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖", delta_seconds=0.001))
    async with instances(resumable, 1) as [server]:
        await chat(server.client, {"input": "hi"})
        health = (await server.client.get("/api/health")).json()
    assert (upstream.records[-1].request["background"], upstream.records[-1].request["store"]) == (True, True)
    assert health["resumable"] is True
    async with instances(make_settings(), 1) as [server]:
        await chat(server.client, {"input": "hi"})
        health = (await server.client.get("/api/health")).json()
    assert "background" not in upstream.records[-1].request
    assert health["resumable"] is False


async def test_a_stream_dropped_on_one_instance_continues_on_another_exactly_once(
    upstream: FaultyUpstream, resumable: Settings
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.005, chunk_chars=4))
    async with instances(resumable) as [a, b]:
        first = await chat(a.client, {"input": "滋賀"}, stop_after=5)
        last_id = ids(first)[-1]
        rest = await resume(b, response_id(first), headers={"last-event-id": str(last_id)})
    assert rest.status == 200
    assert rest.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert rest.raw.startswith(b": stream open\n\n")
    assert first.text + rest.text == ANSWER
    assert not first.terminals
    assert [event.event for event in rest.terminals] == ["response.completed"]
    assert rest.payloads("response.completed")[0]["status"] == "completed"
    assert min(ids(rest)) > last_id
    assert ids(first) + ids(rest) == sorted(set(ids(first) + ids(rest)))


async def test_resume_from_the_start_or_after_a_query_cursor(upstream: FaultyUpstream, resumable: Settings) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, chunk_chars=8))
    async with instances(resumable) as [a, b]:
        whole = await chat(a.client, {"input": "滋賀"})
        again = await resume(b, response_id(whole))
        cursor = ids(whole)[3]
        after = await resume(b, response_id(whole), params={"after": str(cursor)})
    assert again.text == whole.text == ANSWER
    kinds = [event.event for event in whole.events if event.event != "response.output_text.delta"]
    assert [event.event for event in again.events if event.event != "response.output_text.delta"] == kinds
    assert again.payloads("response.created") == whole.payloads("response.created")
    later = [event for event in whole.events if event.id is not None and int(event.id) > cursor]
    deltas = [orjson.loads(event.data)["delta"] for event in later if event.event == "response.output_text.delta"]
    assert after.text == "".join(deltas)
    assert min(ids(after)) > cursor
    assert ids(after)[-1] == ids(whole)[-1]


async def test_the_later_of_after_and_last_event_id_wins(upstream: FaultyUpstream, resumable: Settings) -> None:
    # An EventSource opened at ?after=N keeps its URL and sends Last-Event-ID when it reconnects.
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, chunk_chars=8))
    async with instances(resumable) as [a, b]:
        whole = await chat(a.client, {"input": "滋賀"})
        early, late = ids(whole)[2], ids(whole)[6]
        path = f"/api/chat/{response_id(whole)}"
        header_ahead = await resume(
            b, path.rsplit("/", 1)[1], params={"after": early}, headers={"last-event-id": str(late)}
        )
        query_ahead = await resume(
            b, path.rsplit("/", 1)[1], params={"after": late}, headers={"last-event-id": str(early)}
        )
    assert min(ids(header_ahead)) > int(late)
    assert min(ids(query_ahead)) > int(late)
    assert header_ahead.text == query_ahead.text


@pytest.mark.parametrize("delta_seconds", [0.0, 0.002], ids=["instant model", "paced model"])
async def test_an_upstream_cut_mid_stream_is_healed_invisibly(
    upstream: FaultyUpstream, resumable: Settings, delta_seconds: float
) -> None:
    # An instant model has finished before the relay reconnects: the heal still continues the
    # stored stream after the cut (its tail and terminal event), never trusting the finished status.
    scenario = Scenario(text=ANSWER, delta_seconds=delta_seconds, chunk_chars=4, ending="cut", after_deltas=6)
    upstream.set_scenario(scenario)
    async with instances(resumable, 1) as [server]:
        received = await chat(server.client, {"input": "滋賀"})
    assert received.text == ANSWER
    assert [event.event for event in received.terminals] == ["response.completed"]
    assert received.payloads("response.completed")[0]["status"] == "completed"
    assert ids(received) == sorted(set(ids(received)))
    [continued] = [record for record in upstream.records if record.method == "GET"]
    assert continued.path.endswith(f"/responses/{response_id(received)}")
    assert continued.query.startswith("stream=true&starting_after=")
    after = int(continued.query.rsplit("=", 1)[1])
    assert after in ids(received)  # the last event relayed before the cut
    assert after < ids(received)[-1]


async def test_a_failed_background_request_is_not_sent_twice(
    upstream: FaultyUpstream, resumable: Settings, make_settings: Callable[..., Settings]
) -> None:
    # A 5xx may come from a gateway after the response was created, and a background response
    # goes on to the end whoever hears of it: a second request would start a second, billed one.
    upstream.set_scenario(Scenario(status=503))
    async with instances(resumable, 1) as [server]:
        reply = await server.client.post("/api/chat", json={"input": "滋賀"})
    assert (reply.status_code, reply.json()["error"]["code"]) == (502, "upstream_error")
    assert len(upstream.records) == 1
    async with instances(make_settings(), 1) as [server]:
        await server.client.post("/api/chat", json={"input": "滋賀"})
    assert len(upstream.records) == 3  # without background mode, retried once


async def test_heals_are_bounded(upstream: FaultyUpstream, make_settings: Callable[..., Settings]) -> None:
    # The stored response stalls: every stream of it falls silent past the read timeout.
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, ending="stall", after_deltas=3))
    settings = make_settings(**RESUMABLE, UPSTREAM_READ_TIMEOUT_SECONDS="0.2")
    async with instances(settings, 1) as [server]:
        received = await chat(server.client, {"input": "滋賀"})
    assert received.payloads("error") == [
        {"type": "error", "code": "upstream_timeout", "message": "The model service stopped sending"}
    ]
    streams = [record for record in upstream.records if "stream=true" in record.query]
    assert len(streams) == 3


async def test_a_cancel_on_one_instance_ends_a_live_stream_on_another(
    upstream: FaultyUpstream, resumable: Settings
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER * 3, delta_seconds=0.01))
    async with instances(resumable) as [a, b]:
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        live = asyncio.create_task(read_sse(b.client, "POST", "/api/chat", json={"input": "滋賀"}, created=created))
        cancelled = await a.client.post(f"/api/chat/{await asyncio.wait_for(created, 10)}/cancel")
        received = await asyncio.wait_for(live, 5)
    assert (cancelled.status_code, cancelled.json()) == (200, {"id": await created, "status": "cancelled"})
    assert [event.event for event in received.terminals] == ["response.completed"]
    assert received.payloads("response.completed")[0]["status"] == "cancelled"
    assert len(received.text) < len(ANSWER * 3)


async def test_cancelling_a_finished_response_says_how_it_finished(
    upstream: FaultyUpstream, resumable: Settings
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖", delta_seconds=0.001))
    async with instances(resumable, 1) as [server]:
        finished = await chat(server.client, {"input": "滋賀"})
        reply = await server.client.post(f"/api/chat/{response_id(finished)}/cancel")
    assert (reply.status_code, reply.json()) == (200, {"id": response_id(finished), "status": "completed"})


async def test_without_background_mode_a_cancel_stops_the_live_stream_here_only(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER * 3, delta_seconds=0.01))
    async with instances(make_settings()) as [a, b]:
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        live = asyncio.create_task(read_sse(a.client, "POST", "/api/chat", json={"input": "滋賀"}, created=created))
        elsewhere = await b.client.post(f"/api/chat/{await asyncio.wait_for(created, 10)}/cancel")
        here = await a.client.post(f"/api/chat/{await created}/cancel")
        received = await asyncio.wait_for(live, 5)
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (404, "response_not_found")
    assert (here.status_code, here.json()) == (200, {"id": await created, "status": "cancelled"})
    assert received.payloads("response.completed")[0]["status"] == "cancelled"
    record = upstream.records[0]
    assert await asyncio.to_thread(record.ended.wait, 5)
    assert record.client_left  # the upstream call was closed: the model stops


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", "/api/chat/resp_abc!", {}, 400, "invalid_response_id"),
        ("GET", "/api/chat/notaresponse", {}, 400, "invalid_response_id"),
        ("GET", "/api/chat/resp_" + "a" * 201, {}, 400, "invalid_response_id"),
        ("POST", "/api/chat/resp_abc%20def/cancel", {}, 400, "invalid_response_id"),
        ("GET", "/api/chat/resp_abc?after=-1", {}, 400, "invalid_cursor"),
        ("GET", "/api/chat/resp_abc?after=x", {}, 400, "invalid_cursor"),
        ("GET", "/api/chat/resp_abc", {"last-event-id": "1.5"}, 400, "invalid_cursor"),
        ("GET", "/api/chat/resp_unknown", {}, 404, "response_not_found"),
        ("POST", "/api/chat/resp_unknown/cancel", {}, 404, "response_not_found"),
    ],
)
async def test_bad_resume_and_cancel_requests(
    upstream: FaultyUpstream,
    resumable: Settings,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    async with instances(resumable, 1) as [server]:
        reply = await server.client.request(method, path, headers=headers)
    assert (reply.status_code, reply.json()["error"]["code"]) == (status, code)
    assert reply.headers["content-type"] == "application/json"
    if status == 400:
        assert upstream.records == [], "nothing reaches the upstream for a bad id or cursor"


async def test_resume_is_refused_without_background_mode(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    async with instances(make_settings(), 1) as [server]:
        reply = await server.client.get("/api/chat/resp_abc")
    assert (reply.status_code, reply.json()["error"]["code"]) == (409, "not_resumable")
    assert upstream.records == []


async def test_a_resume_stream_cut_before_its_first_event_heals_from_the_callers_cursor(
    upstream: FaultyUpstream, resumable: Settings
) -> None:
    # The creating stream is whole; the first resume stream breaks before it sends anything.
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, chunk_chars=8, stream_cuts=(None, 0)))
    async with instances(resumable) as [a, b]:
        whole = await chat(a.client, {"input": "滋賀"})
        cursor = ids(whole)[len(ids(whole)) // 2]
        rest = await resume(b, response_id(whole), headers={"last-event-id": str(cursor)})
    assert rest.payloads("response.completed")[0]["status"] == "completed"
    assert min(ids(rest)) > cursor
    assert ids(rest)[-1] == ids(whole)[-1]
    streams = [record.query for record in upstream.records if "stream=true" in record.query]
    assert streams == [f"stream=true&starting_after={cursor}"] * 2  # the cut one, then the heal


async def test_a_long_answer_over_a_flaky_path_heals_every_cut_that_brings_progress(
    upstream: FaultyUpstream, resumable: Settings
) -> None:
    # Each stream, the creating one and every continuation, breaks after 3 events: far more cuts
    # than UPSTREAM_HEAL_ATTEMPTS, each bringing something.
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, chunk_chars=40, stream_cuts=(3,) * 40))
    async with instances(resumable, 1) as [server]:
        received = await chat(server.client, {"input": "滋賀"})
    assert received.text == ANSWER
    assert received.payloads("response.completed")[0]["status"] == "completed"
    assert ids(received) == sorted(set(ids(received)))
    assert len([record for record in upstream.records if "stream=true" in record.query]) > 4


@pytest.mark.parametrize("leave_when", ["before the upstream's headers", "before response.created"])
async def test_a_caller_who_leaves_before_the_response_id_reached_it_leaves_no_orphan(
    upstream: FaultyUpstream, resumable: Settings, leave_when: str
) -> None:
    held = leave_when == "before the upstream's headers"
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001, hold_headers=held, queued_seconds=0.2))
    async with instances(resumable, 1) as [server]:
        asking = asyncio.create_task(chat(server.client, {"input": "滋賀"}))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        asking.cancel()  # the page's Stop: the fetch is aborted, the connection closed
        with pytest.raises(asyncio.CancelledError):
            await asking
        upstream.release()
        stored = await asyncio.to_thread(upstream.relay_cancelled_the_orphan)
    assert stored.status == "cancelled"
    assert [record.method for record in upstream.records].count("POST") == 2  # created once, cancelled once


async def test_a_caller_who_received_the_response_id_may_leave_and_come_back(
    upstream: FaultyUpstream, resumable: Settings
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.002, chunk_chars=4))
    async with instances(resumable) as [a, b]:
        first = await chat(a.client, {"input": "滋賀"}, stop_after=2)
        rest = await resume(b, response_id(first), headers={"last-event-id": str(ids(first)[-1])})
    assert first.text + rest.text == ANSWER
    assert not any(record.path.endswith("/cancel") for record in upstream.records)


async def test_a_server_stopping_while_the_relay_reads_on_for_an_orphans_id_leaves_no_task_behind(
    upstream: FaultyUpstream, resumable: Settings
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, queued_seconds=30))  # no id for longer than the shutdown's grace
    async with instances(resumable, 1) as [server]:  # serve() fails on a task left running
        async with server.client.stream("POST", "/api/chat", json={"input": "滋賀"}) as response:
            assert await anext(response.aiter_raw()) == b": stream open\n\n"
        await asyncio.to_thread(upstream.wait_for_requests, 1)
