"""Demo mode: the built-in upstream speaks the Responses stream that the real SDK parses."""

from __future__ import annotations

import openai
from openai.types.responses import ResponseCompletedEvent, ResponseCreatedEvent, ResponseTextDeltaEvent

from responses_relay.demo import DemoUpstream, Scenario
from responses_relay.demo.answers import answer_for, split_deltas
from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from .conftest import serve
from .sse_client import chat


async def test_sdk_parses_the_demo_stream_into_typed_events(upstream: DemoUpstream) -> None:
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
    assert text == answer_for("滋賀県について教えてください。")
    assert events[-1].response.output_text == text
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.output_tokens == len(split_deltas(text))


async def test_demo_mode_needs_no_settings_and_says_so() -> None:
    service = ChatService(load_settings({"DEMO_DELTA_SECONDS": "0"}))
    async for server in serve(service):
        health = (await server.client.get("/api/health")).json()
        received = await chat(server.client, {"input": "滋賀県について教えてください。"})
    assert health == {"status": "ok", "upstream": "demo", "model": "gpt-4o-mini"}
    assert "琵琶湖" in received.text
    assert received.events[-1].event == "response.completed"


def test_canned_answers_follow_topic_and_language() -> None:
    assert "琵琶湖" in answer_for("滋賀県について教えてください。")
    assert "清水寺" in answer_for("京都のおすすめは？")
    assert "Lake Biwa" in answer_for("What is there to see in Shiga?")
    assert "demo mode" in answer_for("Hello")
    assert "デモモード" in answer_for("こんにちは")
    assert "".join(split_deltas("Kyoto is old.")) == "Kyoto is old."
    assert split_deltas("琵琶湖です") == ["琵琶", "湖で", "す"]
