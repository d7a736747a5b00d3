"""The AI SDK's own client against the relay over real sockets: `ai` 6's DefaultChatTransport and a
minimal AbstractChat (tests/clients/ai_sdk.mjs, run by node) read POST /api/ai-sdk/chat and
GET /api/ai-sdk/chat/{id}/stream as useChat does; every chunk must pass uiMessageChunkSchema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import orjson
import pytest
from starlette.types import ASGIApp

from responses_relay import protocol_service
from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .azurite import Azurite
from .clients import client
from .conftest import OWNER_SECRET, RESUMABLE, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import chat
from .test_budget import SMALL, Finished
from .test_time_limit import ANSWER, FITS, FRONT_END_SECONDS, LIMIT_SECONDS, SLOW
from .test_tool_calls import posts

KEY = "the-function-key-of-the-front-end"
FAST = Scenario(delta_seconds=0.001)


async def ai_sdk(server: RelayServer, scenario: str, question: str = "", **env: str) -> dict[str, Any]:
    """What the AI SDK's chat assembled; every chunk it read passed the SDK's own schema."""
    args = [scenario, question] if question else [scenario]
    result: dict[str, Any] = await client("ai_sdk.mjs", *args, env={"RELAY_URL": server.base_url, **env})
    assert result["invalid"] == []
    return result


def assembled(result: dict[str, Any]) -> dict[str, Any]:
    """The one answer the chat holds."""
    assert [message["role"] for message in result["messages"]] == ["user", "assistant"]
    return dict(result["messages"][1])


def text_of(message: dict[str, Any]) -> str:
    return "".join(part["text"] for part in message["parts"] if part["type"] == "text")


def kinds(message: dict[str, Any]) -> list[str]:
    return [part["type"] for part in message["parts"]]


@asynccontextmanager
async def relay_with(
    settings: Settings,
    *,
    function_key: str | None = None,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    request_limit_seconds: float | None = None,
) -> AsyncIterator[RelayServer]:
    serving = asynccontextmanager(serve)(
        ChatService(settings), wrap=wrap, function_key=function_key, request_limit_seconds=request_limit_seconds
    )
    async with serving as server:
        yield server


async def test_the_message_assembles_to_exactly_the_native_streams_text(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(FAST)
    native = await chat(relay.client, {"input": "滋賀県について教えてください。"})
    result = await ai_sdk(relay, "ask", "滋賀県について教えてください。")
    message = assembled(result)
    assert text_of(message) == native.text
    assert (result["status"], result["error"]) == ("ready", None)
    assert result["finishes"] == [{"isAbort": False, "isDisconnect": False, "isError": False, "finishReason": "stop"}]
    [terminal] = native.payloads("response.completed")
    assert message["metadata"]["usage"]["output_tokens"] == terminal["usage"]["output_tokens"]
    assert message["metadata"]["responseId"].startswith("resp_")
    assert message["id"] == message["metadata"]["responseId"]  # one round: the first response names it
    assert kinds(message) == ["step-start", "text"]


async def test_the_stream_says_its_protocol_and_ends_with_done(relay: RelayServer, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(FAST)
    body = {"id": "c1", "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "滋賀"}]}]}
    response = await relay.client.post("/api/ai-sdk/chat", json=body)
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content.endswith(b"data: [DONE]\n\n")


async def test_reasoning_and_sources_become_their_parts(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(FAST)
    async with relay_with(make_settings(REASONING_SUMMARY="auto")) as relay:
        result = await ai_sdk(relay, "ask", "今週のイベントを教えて")
    message = assembled(result)
    assert kinds(message)[:2] == ["step-start", "reasoning"]
    sources = [part for part in message["parts"] if part["type"] == "source-url"]
    assert sources[0]["url"] == "https://example.com/demo/shiga/events"
    assert sources[0]["title"] == "デモ: 滋賀の今週のイベント"
    assert len({source["url"] for source in sources}) == len(sources) > 1  # one part a cited page
    assert "びわ湖花火" in text_of(message)


async def test_the_local_time_call_reaches_output_available_in_its_own_step(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(FAST)
    message = assembled(await ai_sdk(relay, "ask", "京都は今何時？"))
    [call] = [part for part in message["parts"] if part["type"] == "dynamic-tool"]
    assert (call["toolName"], call["state"], call["providerExecuted"]) == ("local_time", "output-available", True)
    assert call["input"] == {"timezone": "Asia/Tokyo"}
    assert call["output"]["timezone"] == "Asia/Tokyo"
    assert kinds(message) == ["step-start", "dynamic-tool", "step-start", "text"]
    assert "京都" in text_of(message)


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_an_approval_answered_in_the_chat_continues_the_same_message(
    relay: RelayServer, upstream: FaultyUpstream, decision: str
) -> None:
    upstream.set_scenario(FAST)
    result = await ai_sdk(relay, decision, "京都の天気は？")
    message = assembled(result)
    [part] = [part for part in message["parts"] if part["type"] == "dynamic-tool"]
    assert part["toolName"] == "get_forecast"
    assert part["approval"]["approved"] is (decision == "approve")
    if decision == "approve":
        assert part["state"] == "output-available"
        assert "晴れ" in text_of(message)
    else:
        assert part["state"] == "output-denied"
        assert text_of(message).startswith("承知しました")
    [asked, continued] = result["responses"]
    assert asked["chunks"][-1]["finishReason"] == "tool-calls"
    assert continued["chunks"][0]["messageId"] == message["id"]  # the continuation writes into it
    mcp_approvals = [item for item in upstream.records[-1].request["input"] if item["type"] == "mcp_approval_response"]
    assert [item["approve"] for item in mcp_approvals] == [decision == "approve"]


async def test_an_upstream_failure_mid_stream_is_an_error_chunk_with_the_catalogues_code(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001, ending="cut", after_deltas=3))
    result = await ai_sdk(relay, "ask", "滋賀県について教えてください。")
    assert result["status"] == "error"
    assert orjson.loads(result["error"])["error"]["code"] == "upstream_connection_lost"
    [response] = result["responses"]
    assert response["chunks"][-1]["type"] == "error"


async def test_without_the_function_key_the_chat_shows_the_401(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(FAST)
    async with relay_with(make_settings(), function_key=KEY) as relay:
        refused = await ai_sdk(relay, "ask", "滋賀")
        allowed = await ai_sdk(relay, "ask", "滋賀", FUNCTION_KEY=KEY)
    assert refused["status"] == "error"
    assert orjson.loads(refused["error"])["error"]["code"] == "unauthorized"
    assert refused["messages"][-1]["role"] == "user"
    assert allowed["status"] == "ready"
    assert not upstream.records[1:], "only the allowed chat reached the model service"


async def test_over_its_budget_the_chat_shows_the_429(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖は日本で一番大きな湖です。" * 3, delta_seconds=0.001))
    budget = {"OWNER_HASH_SECRET": OWNER_SECRET, "AzureWebJobsStorage": azurite.connection_string, **SMALL}
    finished, key = Finished(), "key-" + uuid.uuid4().hex
    # A chat reserves about 90 tokens (its input, estimated, and 40 of output) and costs about 30: the
    # first fits in 110, the second no longer does.
    async with relay_with(make_settings(**budget, USER_DAILY_TOKENS="110"), wrap=finished.wrap) as relay:
        first = await ai_sdk(relay, "ask", "滋賀", FUNCTION_KEY=key)
        await finished.wait_for(1)  # settled once its stream has ended
        refused = await ai_sdk(relay, "ask", "滋賀", FUNCTION_KEY=key)
    assert first["status"] == "ready"
    assert refused["status"] == "error"
    assert orjson.loads(refused["error"])["error"]["code"] == "budget_exceeded"
    assert len(upstream.records) == 1


async def test_stop_aborts_the_fetch_and_the_relay_closes_the_upstream_call(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(text="滋賀" * 300, chunk_chars=2, delta_seconds=0.01))
    result = await ai_sdk(relay, "stop", "滋賀")
    assert result["finishes"] == [{"isAbort": True, "isDisconnect": False, "isError": False, "finishReason": None}]
    assert result["status"] == "ready"
    [record] = upstream.records
    assert await asyncio.to_thread(record.ended.wait, 5)
    assert record.client_left
    assert len(text_of(assembled(result))) < 600


async def test_the_stop_of_a_resumable_answer_cancels_it_upstream_and_a_reload_shows_it_stopped(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol_service, "ENDED_GRACE_SECONDS", 0.0)  # an answer that ended is not replayed
    upstream.set_scenario(Scenario(text="滋賀" * 300, chunk_chars=2, delta_seconds=0.01))
    chat_id = "chat-" + uuid.uuid4().hex
    async with relay_with(make_settings(**RESUMABLE)) as relay:
        stopped = await ai_sdk(relay, "stop-and-cancel", "滋賀", CHAT_ID=chat_id)
        reloaded = await ai_sdk(relay, "resume", CHAT_ID=chat_id)
        again = await ai_sdk(relay, "resume", CHAT_ID=chat_id)
    response_id = assembled(stopped)["metadata"]["responseId"]
    cancel = await asyncio.to_thread(upstream.wait_for_record, lambda record: record.path.endswith("/cancel"))
    assert cancel.path == f"/openai/v1/responses/{response_id}/cancel"
    [replayed] = reloaded["responses"]
    assert [chunk["type"] for chunk in replayed["chunks"]][-2:] == ["abort", "finish"]
    [message] = reloaded["messages"]
    assert message["id"] == response_id
    assert 0 < len(text_of(message)) < 600
    assert again["responses"] == [], "the replay ended the answer: past the grace, the chat has none active"


async def test_a_chat_with_no_active_answer_resumes_to_nothing(relay: RelayServer) -> None:
    result = await ai_sdk(relay, "resume", CHAT_ID="no-such-chat")
    assert (result["status"], result["messages"], result["responses"]) == ("ready", [], [])


# Resumable streams: two instances sharing the demo upstream in background mode and the storage emulator.


@asynccontextmanager
async def two_instances(settings: Settings) -> AsyncIterator[list[RelayServer]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(relay_with(settings)) for _ in range(2)]


async def test_a_stream_cut_mid_answer_resumes_on_the_other_instance_with_the_whole_text_once(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol_service, "ENDED_GRACE_SECONDS", 0.0)
    upstream.set_scenario(Scenario(text="びわ湖" * 60, chunk_chars=3, delta_seconds=0.005))
    chat_id = "chat-" + uuid.uuid4().hex
    async with two_instances(make_settings(**RESUMABLE)) as [a, b]:
        result = await ai_sdk(a, "ask", "滋賀", CUT_AFTER="3", RESUME_URL=b.base_url, CHAT_ID=chat_id)
        again = await ai_sdk(b, "resume", CHAT_ID=chat_id)
    message = assembled(result)
    assert text_of(message) == "びわ湖" * 60
    assert result["finishes"][0]["isDisconnect"] is True
    assert result["finishes"][-1]["finishReason"] == "stop"
    [cut, replayed] = result["responses"]
    assert cut["url"].startswith(a.base_url)
    assert replayed["url"] == f"{b.base_url}/api/ai-sdk/chat/{chat_id}/stream"
    assert replayed["chunks"][0]["messageId"] == message["id"]  # the replay rebuilds the same message
    assert again["responses"] == [], "once it ended (and the grace passed), the chat has no active answer"


async def test_at_its_time_limit_the_stream_ends_without_finish_and_the_client_resumes_the_whole_answer(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(SLOW)
    settings = make_settings(**RESUMABLE, **FITS, STREAM_TIME_LIMIT_SECONDS=LIMIT_SECONDS)
    async with relay_with(settings, request_limit_seconds=FRONT_END_SECONDS) as relay:
        result = await ai_sdk(relay, "ask", "滋賀", CHAT_ID="chat-" + uuid.uuid4().hex)
    assert text_of(assembled(result)) == ANSWER
    *handed_off, last = result["finishes"]
    assert len(handed_off) >= 2, "the answer outlasted the limit twice"
    assert all(finish["finishReason"] is None and not finish["isError"] for finish in handed_off)
    assert last["finishReason"] == "stop"
    assert all(
        not any(chunk["type"] == "finish" for chunk in response["chunks"]) for response in result["responses"][:-1]
    )
    assert [record.method for record in upstream.records].count("POST") == 1


async def test_a_cut_answer_with_a_tool_round_replays_whole_its_call_run_once(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(FAST)
    chat_id = "chat-" + uuid.uuid4().hex
    async with two_instances(make_settings(**RESUMABLE)) as [a, b]:
        cut = await ai_sdk(a, "ask", "京都は今何時？", CUT_AFTER="1", RESUME_URL=b.base_url, CHAT_ID=chat_id)
        assert cut["finishes"][-1]["finishReason"] == "stop"
    message = assembled(cut)
    assert [part["state"] for part in message["parts"] if part["type"] == "dynamic-tool"] == ["output-available"]
    assert "京都" in text_of(message)
    assert len(posts(upstream)) == 2, "the first round and one continuation: the replay followed the recorded one"


async def test_someone_elses_chat_has_no_answer_to_resume(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(text="滋賀" * 200, chunk_chars=2, delta_seconds=0.01))
    chat_id = "chat-" + uuid.uuid4().hex
    async with relay_with(make_settings(**RESUMABLE)) as relay:
        # The owner's answer is cut early and goes on upstream; its record says it is active.
        cut = await ai_sdk(relay, "ask", "滋賀", CUT_AFTER="2", RESUME_URL="http://127.0.0.1:9", CHAT_ID=chat_id,
                           FUNCTION_KEY="key-of-a")  # fmt: skip
        path = f"/api/ai-sdk/chat/{chat_id}/stream"
        theirs = await relay.client.get(path, headers={"x-functions-key": "key-of-b"})
        mine = await relay.client.get(path, headers={"x-functions-key": "key-of-a"})
        malformed = await relay.client.get("/api/ai-sdk/chat/a.b/stream", headers={"x-functions-key": "key-of-a"})
    assert cut["finishes"][0]["isDisconnect"] is True
    assert theirs.status_code == 204
    assert mine.status_code == 200
    assert b'"type":"finish"' in mine.content
    assert (malformed.status_code, malformed.json()["error"]["param"]) == (400, "id")


async def test_an_answer_that_ended_is_replayed_for_a_while_to_a_caller_that_may_not_have_it_all(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.set_scenario(FAST)
    chat_id = "chat-" + uuid.uuid4().hex
    async with relay_with(make_settings(**RESUMABLE)) as relay:
        whole = await ai_sdk(relay, "ask", "滋賀", CHAT_ID=chat_id)  # the stream sent it all
        soon = await ai_sdk(relay, "resume", CHAT_ID=chat_id)
        monkeypatch.setattr(protocol_service, "ENDED_GRACE_SECONDS", 0.0)  # the grace has passed
        later = await ai_sdk(relay, "resume", CHAT_ID=chat_id)
        after = await ai_sdk(relay, "resume", CHAT_ID=chat_id)
    assert whole["finishes"][-1]["finishReason"] == "stop"
    [replayed] = soon["messages"]
    assert (replayed["id"], text_of(replayed)) == (assembled(whole)["id"], text_of(assembled(whole)))
    assert later["responses"] == after["responses"] == []
