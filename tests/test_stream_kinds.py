"""Everything the Responses stream says, relayed end to end over real sockets: reasoning
summaries, refusals, web search progress and url citations, alone and mixed in one read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import httpx2
import orjson
import pytest

from responses_relay.demo.answers import Answer, Citation, answer_for
from responses_relay.events import ANNOTATION_ADDED, DELTA_PARTS, TEXT_DELTA, WEB_SEARCH_EVENTS
from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.sse import Decoder, Event

from .conftest import RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, chat

REASONING = "response.reasoning_summary_text.delta"
REFUSAL = "response.refusal.delta"
SEARCH = [
    "response.web_search_call.in_progress",
    "response.web_search_call.searching",
    "response.web_search_call.completed",
]
RELAYED = {*DELTA_PARTS, ANNOTATION_ADDED, *WEB_SEARCH_EVENTS, "response.created", "response.completed"}


async def upstream_stream(upstream: FaultyUpstream, request: dict[str, Any]) -> list[dict[str, Any]]:
    """What the demo upstream sends for `request` (the same events, numbered the same, every time)."""
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.post(upstream.base_url + "responses", content=orjson.dumps(request))
    return [orjson.loads(event.data) for event in Decoder().feed(response.content)]


def assert_faithful(relayed: list[Event], sent: list[dict[str, Any]]) -> None:
    """Each upstream event the relay passes on is relayed once, in the upstream's order; an SSE event
    carries consecutive upstream events of one kind (and one part), under the last one's sequence number."""
    carried = [payload for payload in sent if payload["type"] in RELAYED]
    position = 0
    for event in relayed:
        payload = orjson.loads(event.data)
        assert event.id is not None
        group = []
        while position < len(carried) and carried[position]["sequence_number"] <= int(event.id):
            group.append(carried[position])
            position += 1
        assert group, event
        assert group[-1]["sequence_number"] == int(event.id)
        assert {member["type"] for member in group} == {event.event}
        if event.event in DELTA_PARTS:
            assert "".join(member["delta"] for member in group) == payload["delta"]
            for name in DELTA_PARTS[event.event]:
                assert {member[name] for member in group} == {payload[name]}
        else:
            assert len(group) == 1
        if event.event == ANNOTATION_ADDED:
            assert payload["annotation"] == group[0]["annotation"]
        if event.event in WEB_SEARCH_EVENTS:
            assert payload == {"type": event.event}
    assert position == len(carried)


async def relay_and_compare(server: RelayServer, upstream: FaultyUpstream, question: str) -> Received:
    received = await chat(server.client, {"input": question})
    assert received.terminals == [received.events[-1]]
    assert received.events[-1].event == "response.completed"
    assert_faithful(received.events, await upstream_stream(upstream, upstream.records[-1].request))
    return received


def joined(received: Received, kind: str) -> str:
    return "".join(payload["delta"] for payload in received.payloads(kind))


def kinds(received: Received) -> list[str | None]:
    return [event.event for event in received.events]


async def test_reasoning_summary_parts_stream_before_the_answer(relay: RelayServer, upstream: FaultyUpstream) -> None:
    question = "京都の日帰りプランを考えて"
    answer = answer_for(question)
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    received = await relay_and_compare(relay, upstream, question)

    parts: dict[int, str] = {}
    for payload in received.payloads(REASONING):
        assert set(payload) == {"type", "delta", "output_index", "summary_index"}
        parts[payload["summary_index"]] = parts.get(payload["summary_index"], "") + payload["delta"]
    assert list(parts.values()) == list(answer.reasoning)
    assert received.text == answer.text
    order = kinds(received)
    assert max(i for i, kind in enumerate(order) if kind == REASONING) < order.index(TEXT_DELTA)


async def test_refusal_is_relayed_as_refusal_deltas(relay: RelayServer, upstream: FaultyUpstream) -> None:
    question = "How do I build a bomb?"
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    received = await relay_and_compare(relay, upstream, question)

    assert joined(received, REFUSAL) == answer_for(question).text
    assert all(set(payload) == {"type", "delta"} for payload in received.payloads(REFUSAL))
    assert received.text == ""
    assert received.payloads("response.completed")[0]["status"] == "completed"


async def test_web_search_progress_then_text_with_url_citations(relay: RelayServer, upstream: FaultyUpstream) -> None:
    question = "What's on this week?"
    answer = answer_for(question)
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    received = await relay_and_compare(relay, upstream, question)

    order = kinds(received)
    assert [kind for kind in order if kind in WEB_SEARCH_EVENTS] == SEARCH
    assert order.index(SEARCH[-1]) < order.index(TEXT_DELTA)
    assert received.text == answer.text
    annotations = received.payloads(ANNOTATION_ADDED)
    assert [payload["annotation"] for payload in annotations] == answer.annotations()
    text = ""
    for event in received.events:  # a citation comes once the text it cites is out
        payload = orjson.loads(event.data)
        if event.event == TEXT_DELTA:
            text += payload["delta"]
        elif event.event == ANNOTATION_ADDED:
            assert len(text) >= payload["annotation"]["end_index"]


async def test_kinds_arriving_in_one_network_read_keep_their_order_and_never_merge_across_kinds(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    # Two reasoning parts, a web search, text with citations: the whole stream in one write.
    search = answer_for("What's on this week?")
    answer = dataclasses.replace(search, reasoning=answer_for("Plan a day trip in Kyoto").reasoning)
    upstream.set_scenario(Scenario(answer=answer, burst=True))
    received = await relay_and_compare(relay, upstream, "What's on this week?")

    sent = await upstream_stream(upstream, upstream.records[-1].request)
    for kind in (REASONING, TEXT_DELTA):  # deltas that arrived together left together
        assert len(received.payloads(kind)) < len([payload for payload in sent if payload["type"] == kind])
    assert [payload["summary_index"] for payload in received.payloads(REASONING)] == [0, 1]
    assert received.text == answer.text
    assert len(received.payloads(ANNOTATION_ADDED)) == len(answer.citations)


@pytest.mark.parametrize(
    ("environ", "reasoning", "tools"),
    [
        ({}, None, None),
        ({"REASONING_EFFORT": "low"}, {"effort": "low", "summary": "auto"}, None),
        (
            {"REASONING_EFFORT": "High", "REASONING_SUMMARY": "detailed"},
            {"effort": "high", "summary": "detailed"},
            None,
        ),
        ({"REASONING_EFFORT": "minimal", "REASONING_SUMMARY": "none"}, {"effort": "minimal"}, None),
        ({"REASONING_SUMMARY": "concise", "WEB_SEARCH": "true"}, {"summary": "concise"}, [{"type": "web_search"}]),
        ({"WEB_SEARCH": "false"}, None, None),
    ],
)
async def test_reasoning_and_web_search_settings_reach_the_upstream_body(
    upstream: FaultyUpstream,
    make_settings: Callable[..., Settings],
    environ: dict[str, str],
    reasoning: dict[str, str] | None,
    tools: list[dict[str, str]] | None,
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    async for server in serve(ChatService(make_settings(TOOLS="none", **environ))):  # function tools: test_tool_rounds
        received = await chat(server.client, {"input": "京都について教えてください。"})
    sent = upstream.records[-1].request
    assert sent.get("reasoning") == reasoning
    assert sent.get("tools") == tools
    # The demo answers a request for a summary with one, and the relay passes it on.
    assert bool(received.payloads(REASONING)) == ("summary" in (reasoning or {}))


async def test_citation_urls_that_are_not_http_never_reach_the_caller(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    text = "Visit Lake Biwa, see Hikone Castle, and taste Omi beef."
    citations = (
        Citation("Lake Biwa", "javascript:alert(document.cookie)", "click me"),
        Citation("Hikone Castle", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "data"),
        Citation("Omi beef", "https://example.com/omi-beef", "Omi beef"),
    )
    upstream.set_scenario(Scenario(answer=Answer(text, citations=citations), delta_seconds=0.001))
    received = await chat(relay.client, {"input": "Shiga?"})

    [annotation] = [payload["annotation"] for payload in received.payloads(ANNOTATION_ADDED)]
    assert annotation["url"] == "https://example.com/omi-beef"
    assert b"javascript:" not in received.raw
    assert b"data:text" not in received.raw
    assert received.text == text
    assert received.events[-1].event == "response.completed"
