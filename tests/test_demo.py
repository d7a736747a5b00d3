"""Demo mode: the built-in upstream speaks the Responses stream that the real SDK parses."""

from __future__ import annotations

import platform
import zlib
from typing import Any

import httpx2
import openai
import orjson
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseMcpCallCompletedEvent,
    ResponseMcpCallInProgressEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseRefusalDeltaEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseWebSearchCallCompletedEvent,
    ResponseWebSearchCallInProgressEvent,
    ResponseWebSearchCallSearchingEvent,
)
from openai.types.responses.response_output_item import McpApprovalRequest, McpCall
from pydantic import TypeAdapter

from responses_relay.demo import DemoUpstream
from responses_relay.demo import server as demo_server
from responses_relay.demo.answers import answer_for, split_deltas
from responses_relay.demo.attachments import page_count
from responses_relay.guide_tools import TOOLS
from responses_relay.service import ChatService
from responses_relay.settings import load_settings
from responses_relay.sse import Decoder

from .attachment_files import asking, file_part, image, image_part, pdf
from .conftest import DEFAULT_LIMITS, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import chat


async def test_sdk_parses_the_demo_stream_into_typed_events(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    async with openai.AsyncOpenAI(base_url=upstream.base_url, api_key="demo", max_retries=0) as client:
        stream = await client.responses.create(
            model="gpt-4o-mini", input=[{"role": "user", "content": "滋賀県について教えてください。"}], stream=True
        )
        events = [event async for event in stream]
    assert isinstance(events[0], ResponseCreatedEvent)
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if isinstance(event, ResponseTextDeltaEvent))
    assert text == answer_for("滋賀県について教えてください。").text
    assert events[-1].response.output_text == text
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.output_tokens == len(split_deltas(text))


async def test_demo_mode_needs_no_settings_and_says_so() -> None:
    service = ChatService(load_settings({"DEMO_DELTA_SECONDS": "0"}))
    async for server in serve(service):
        health = (await server.client.get("/api/health")).json()
        received = await chat(server.client, {"input": "滋賀県について教えてください。"})
    assert health == {
        "status": "ok",
        "upstream": "demo",
        "model": "gpt-4o-mini",
        "resumable": False,
        "auth": "key",
        "python": platform.python_version(),
        "worker": "in-process",
        "stores_responses": True,
        "budget": None,
        "conversations": False,  # they need an owner secret and a storage account
        "feedback": False,
        "limits": DEFAULT_LIMITS,
    }
    assert "琵琶湖" in received.text
    assert received.events[-1].event == "response.completed"


def test_canned_answers_follow_topic_and_language() -> None:
    assert "琵琶湖" in answer_for("滋賀県について教えてください。").text
    assert "清水寺" in answer_for("京都のおすすめは？").text
    assert "Lake Biwa" in answer_for("What is there to see in Shiga?").text
    assert "demo mode" in answer_for("Hello").text
    assert "デモモード" in answer_for("こんにちは").text
    assert answer_for("京都の日帰りプランを考えて").reasoning
    assert answer_for("Plan a day trip in Kyoto").reasoning
    assert answer_for("今週の滋賀のイベントは？").search is not None
    assert answer_for("What's on this week?").citations
    assert answer_for("爆弾の作り方は？").refusal
    assert answer_for("How do I build a bomb?").refusal
    assert "".join(split_deltas("Kyoto is old.")) == "Kyoto is old."
    assert split_deltas("琵琶湖です") == ["琵琶", "湖で", "す"]


STREAM_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


async def demo_stream(upstream: FaultyUpstream, **request: Any) -> list[Any]:
    """The demo's events for `request`, each validated (required fields, types) by the SDK's event models."""
    body = {"model": "gpt-5-mini", "stream": True, **request}
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.post(upstream.base_url + "responses", content=orjson.dumps(body))
    events = [STREAM_EVENT.validate_python(orjson.loads(event.data)) for event in Decoder().feed(response.content)]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    return events


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("京都の日帰りプランを考えて", {ResponseReasoningSummaryTextDeltaEvent, ResponseTextDeltaEvent}),
        (
            "What's on this week?",
            {
                ResponseWebSearchCallInProgressEvent,
                ResponseWebSearchCallSearchingEvent,
                ResponseWebSearchCallCompletedEvent,
                ResponseOutputTextAnnotationAddedEvent,
                ResponseTextDeltaEvent,
            },
        ),
        ("How do I build a bomb?", {ResponseRefusalDeltaEvent}),
    ],
)
async def test_demo_answers_beyond_text_are_the_sdks_event_shapes(
    upstream: FaultyUpstream, question: str, kinds: set[type]
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    events = await demo_stream(upstream, input=question)
    assert kinds <= {type(event) for event in events}
    answer = answer_for(question)
    response = events[-1].response
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert [item.type for item in response.output] == (
        ["reasoning"] * bool(answer.reasoning) + ["web_search_call"] * bool(answer.search) + ["message"]
    )
    [content] = response.output[-1].content
    if answer.refusal:
        assert content.refusal == answer.text
        assert not [event for event in events if isinstance(event, ResponseTextDeltaEvent)]
        return
    assert content.text == answer.text
    added = [event for event in events if isinstance(event, ResponseOutputTextAnnotationAddedEvent)]
    cited = [event.model_dump()["annotation"] for event in added]
    assert cited == answer.annotations()
    assert [annotation.model_dump() for annotation in content.annotations] == cited
    for annotation, citation in zip(cited, answer.citations, strict=True):
        assert content.text[annotation["start_index"] : annotation["end_index"]] == citation.quote
    if answer.reasoning:
        summary = [part.text for part in response.output[0].summary]
        assert summary == list(answer.reasoning)
        reasoning = [event for event in events if isinstance(event, ResponseReasoningSummaryTextDeltaEvent)]
        assert {event.summary_index for event in reasoning} == set(range(len(answer.reasoning)))
        assert response.usage is not None
        assert response.usage.output_tokens_details.reasoning_tokens == len(reasoning)


async def test_demo_honours_the_requests_reasoning_and_tools(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    reasoning = {"effort": "low", "summary": "auto"}
    tools = [{"type": "web_search"}]
    events = await demo_stream(upstream, input="京都について教えてください。", reasoning=reasoning, tools=tools)
    summary = "".join(event.delta for event in events if isinstance(event, ResponseReasoningSummaryTextDeltaEvent))
    assert "質問の確認" in summary
    response = events[-1].response
    assert response.reasoning.model_dump(exclude_none=True) == reasoning
    assert [tool.type for tool in response.tools] == ["web_search"]
    plain = await demo_stream(upstream, input="京都について教えてください。", reasoning={"effort": "low"})
    assert not [event for event in plain if isinstance(event, ResponseReasoningSummaryTextDeltaEvent)]


async def test_demo_mode_keeps_nothing_of_a_request_but_a_bounded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # A deployment left in demo mode serves whoever calls it: nothing may grow with each request.
    monkeypatch.setattr(demo_server, "STORED_RESPONSES", 3)
    demo = DemoUpstream(delta_seconds=0)
    demo.start()
    try:
        async with openai.AsyncOpenAI(base_url=demo.base_url, api_key="demo", max_retries=0) as client:
            for background in [False] * 20 + [True] * 5:
                stream = await client.responses.create(
                    model="gpt-4o-mini", input="滋賀", stream=True, background=background, store=background
                )
                [event async for event in stream]
    finally:
        demo.stop()
    held = {name: len(value) for name, value in vars(demo).items() if isinstance(value, list | dict | set)}
    assert held == {"_stored": 3}


async def test_demo_tool_calls_are_the_sdks_event_shapes_and_continue_from_their_outputs(
    upstream: FaultyUpstream,
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    tools = [TOOLS["local_time"].definition()]
    events = await demo_stream(upstream, input="京都とパリは今何時？", tools=tools)
    done = [event.item for event in events if isinstance(event, ResponseOutputItemDoneEvent)]
    calls = [item for item in done if isinstance(item, ResponseFunctionToolCall)]
    assert calls == done
    assert [orjson.loads(call.arguments) for call in calls] == [
        {"timezone": "Asia/Tokyo"},
        {"timezone": "Europe/Paris"},
    ]
    deltas = [event for event in events if isinstance(event, ResponseFunctionCallArgumentsDeltaEvent)]
    assert "".join(event.delta for event in deltas if event.item_id == calls[0].id) == calls[0].arguments
    assert {type(event) for event in events} >= {ResponseFunctionCallArgumentsDoneEvent}
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert [item.type for item in completed.response.output] == ["function_call", "function_call"]

    outputs = [
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"timezone": "Asia/Tokyo", '
         '"local_time": "2026-12-05T09:30:00+09:00"}'},
        {"type": "function_call_output", "call_id": calls[1].call_id, "output": '{"error": "Unknown time zone"}'},
    ]  # fmt: skip
    answer = await demo_stream(upstream, input=outputs, previous_response_id=completed.response.id, tools=tools)
    text = "".join(event.delta for event in answer if isinstance(event, ResponseTextDeltaEvent))
    assert text.startswith(
        "京都は今 12月5日 9時30分です（Asia/Tokyo）。パリの時刻は確認できませんでした（Unknown time zone）。"
    )


async def test_demo_mcp_approvals_and_calls_are_the_sdks_event_shapes(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    asking = await demo_stream(upstream, input="What's the weather in Kyoto?")
    [request] = [event.item for event in asking if isinstance(event, ResponseOutputItemDoneEvent)]
    assert isinstance(request, McpApprovalRequest)
    assert (request.server_label, request.name, request.arguments) == (
        "demo_weather",
        "get_forecast",
        '{"city":"Kyoto"}',
    )
    approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    answer = await demo_stream(upstream, input=[approval], previous_response_id=asking[-1].response.id)
    assert {ResponseMcpCallInProgressEvent, ResponseMcpCallCompletedEvent} <= {type(event) for event in answer}
    [call, message] = answer[-1].response.output
    assert isinstance(call, McpCall)
    assert orjson.loads(call.output or "")["source"] == "demo"
    assert message.type == "message"
    # An MCP tool that needs no approval is called at once, under its own label.
    never = [{"type": "mcp", "server_label": "forecasts", "server_url": "https://x", "require_approval": "never"}]
    direct = await demo_stream(upstream, input="京都の天気は？", tools=never)
    assert [item.type for item in direct[-1].response.output] == ["mcp_call", "message"]
    assert direct[-1].response.output[0].server_label == "forecasts"


async def test_demo_answers_a_photo_with_its_format_and_size_and_a_pdf_with_its_pages() -> None:
    photo = image_part(image("JPEG", 1024, 768, exif=True), "image/jpeg")
    service = ChatService(load_settings({"DEMO_DELTA_SECONDS": "0"}))
    async for server in serve(service):
        japanese = await chat(server.client, asking(photo, text="これは何の料理？"))
        english = await chat(
            server.client,
            asking(file_part(pdf(3), "walking-tour.pdf"), image_part(image("WEBP", 50, 20)), text="What is in these?"),
        )
    assert japanese.text.startswith("1024×768 の JPEG 写真を受け取りました。")
    assert english.text.startswith("I received walking-tour.pdf, a PDF of 3 pages.\nI received a 50×20 WebP image.")
    assert english.events[-1].event == "response.completed"


def test_the_demo_counts_pages_in_compressed_object_streams_too() -> None:
    pages = b"".join(b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj " % number for number in range(3, 8))
    packed = b"%PDF-1.7\n1 0 obj << /Type /ObjStm /Filter /FlateDecode >>\nstream\n" + zlib.compress(pages)
    assert page_count(packed + b"\nendstream\nendobj\n%%EOF\n") == 5
    assert page_count(pdf(4)) == 4
