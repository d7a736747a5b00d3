"""Conversations of any length: continued with previous_response_id when the upstream keeps responses,
else with the history trimmed to the API's limits, the oldest exchanges left out first."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, Request, Response, Route, expect

from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..conftest import FAKE_KEY, serve
from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import DONE, ROOT, answered, send

QUESTIONS = 40
KEEPS_RESPONSES = "demo"  # the health route says stores_responses: true
KEEPS_NONE = "openai-compatible"  # stores_responses: false: the page sends the history


@pytest.fixture
async def site_url(request: pytest.FixtureRequest, upstream: FaultyUpstream) -> AsyncIterator[str]:
    """The page and the relay, in front of the test's upstream as the demo or as an OpenAI-compatible server."""
    kind = getattr(request, "param", KEEPS_RESPONSES)
    environ = {"OPENAI_ENDPOINT": upstream.base_url, "OPENAI_API_KEY": FAKE_KEY} if kind == KEEPS_NONE else {}
    async for server in serve(ChatService(load_settings(environ), demo=upstream), static_dir=ROOT / "static"):
        health = (await server.client.get("/api/health")).json()
        assert (health["upstream"], health["stores_responses"]) == (kind, kind == KEEPS_RESPONSES)
        yield server.base_url


def sent(upstream: FaultyUpstream) -> list[dict[str, Any]]:
    return [record.request for record in upstream.records]


@pytest.mark.parametrize("site_url", [KEEPS_RESPONSES], indirect=True)
async def test_forty_questions_continue_from_the_last_response(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖は日本最大の湖です。", delta_seconds=0))
    streams: list[Response] = []
    page.on("response", lambda response: streams.append(response) if response.url.endswith("/api/chat") else None)
    for number in range(1, QUESTIONS + 1):
        await send(page, f"質問 {number}: 滋賀県について教えてください。")
        await answered(page, number)

    await expect(page.locator(".turn.assistant .status.error")).to_have_count(0)
    await expect(page.locator(".turn.assistant .body")).to_have_text(["琵琶湖は日本最大の湖です。"] * QUESTIONS)
    await expect(page.locator(".turn.assistant .note:not(:empty)")).to_have_count(0)
    requests = sent(upstream)
    answered_ids = [_completed_response_id(await stream.text()) for stream in streams]
    assert len(requests) == len(answered_ids) == QUESTIONS
    assert "previous_response_id" not in requests[0]
    for number, request in enumerate(requests, start=1):
        assert request["input"] == [{"role": "user", "content": f"質問 {number}: 滋賀県について教えてください。"}]
    assert [request.get("previous_response_id") for request in requests[1:]] == answered_ids[:-1]


@pytest.mark.parametrize("site_url", [KEEPS_NONE], indirect=True)
async def test_forty_questions_send_the_history_within_the_message_limit(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖です。", delta_seconds=0))
    for number in range(1, QUESTIONS + 1):
        await send(page, f"質問 {number}")
        await answered(page, number)

    await expect(page.locator(".turn.assistant .status.error")).to_have_count(0)
    requests = sent(upstream)
    assert len(requests) == QUESTIONS
    for number, request in enumerate(requests, start=1):
        assert "previous_response_id" not in request
        kept = min(number - 1, 31)  # 64 messages at most: 31 exchanges and the question
        expected = [
            message
            for earlier in range(number - kept, number)
            for message in (
                {"role": "user", "content": f"質問 {earlier}"},
                {"role": "assistant", "content": "琵琶湖です。"},
            )
        ]
        assert request["input"] == [*expected, {"role": "user", "content": f"質問 {number}"}], number
    notes = await page.locator(".turn.assistant .note").all_inner_texts()
    assert notes[:32] == [""] * 32  # quiet until something is left out
    assert notes[32] == "会話が長いため、古いやり取り 1 件を省いて質問しました。"
    assert notes[39] == "会話が長いため、古いやり取り 8 件を省いて質問しました。"


@pytest.mark.parametrize("site_url", [KEEPS_NONE], indirect=True)
async def test_history_goes_back_until_a_new_conversation(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖は**日本最大**の湖です。", delta_seconds=0.001))
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_selector(DONE)
    await send(page, "京都は？")
    await answered(page, 2)

    assert sent(upstream)[-1]["input"] == [
        {"role": "user", "content": "滋賀県について教えてください。"},
        {"role": "assistant", "content": "琵琶湖は**日本最大**の湖です。"},
        {"role": "user", "content": "京都は？"},
    ]
    await page.click("#new-chat")
    await expect(page.locator(".turn")).to_have_count(0)
    await send(page, "奈良は？")
    await page.wait_for_selector(DONE)
    assert sent(upstream)[-1]["input"] == [{"role": "user", "content": "奈良は？"}]


async def test_a_lost_response_is_resent_with_the_history(page: Page, upstream: FaultyUpstream) -> None:
    # An upstream that has lost every earlier response: it refuses previous_response_id.
    await page.route("**/api/chat", _upstream_refuses(upstream, "previous_response_not_found", _chained))
    for number, question in enumerate(["滋賀県について教えてください。", "京都は？", "奈良は？"], start=1):
        await send(page, question)
        await answered(page, number)

    await expect(page.locator(".turn.assistant .status.error")).to_have_count(0)
    requests = sent(upstream)
    assert [_chained(request) for request in requests] == [False, True, False, False]  # chains no more
    assert [len(request["input"]) for request in requests] == [1, 1, 3, 5]


async def test_a_conversation_too_long_for_the_model_sends_its_later_half(page: Page, upstream: FaultyUpstream) -> None:
    for number in range(1, 7):
        await send(page, f"質問 {number}")
        await answered(page, number)
    # Now the model's context window holds the question and one exchange at most.
    await page.route("**/api/chat", _upstream_refuses(upstream, "context_length_exceeded", _too_long))
    await send(page, "質問 7")
    await answered(page, 7)

    requests = sent(upstream)[6:]
    assert [(_chained(request), len(request["input"])) for request in requests] == [(True, 1), (False, 7), (False, 3)]
    assert requests[-1]["input"][0] == {"role": "user", "content": "質問 6"}
    await expect(page.locator(".turn.assistant .note").last).to_have_text(
        "会話が長いため、古いやり取り 5 件を省いて質問しました。"
    )
    await expect(page.locator(".turn.assistant .status.error")).to_have_count(0)


def _chained(request: dict[str, Any]) -> bool:
    return "previous_response_id" in request


def _too_long(request: dict[str, Any]) -> bool:
    return _chained(request) or len(request["input"]) > 3


def _upstream_refuses(upstream: FaultyUpstream, code: str, refuses: Any):  # type: ignore[no-untyped-def]
    """The upstream answers 400 `code` to the requests `refuses` picks (through the real relay), streams the rest."""

    async def handle(route: Route, request: Request) -> None:
        body = json.loads(request.post_data or "{}")
        if refuses(body):
            upstream.set_scenario(Scenario(status=400, error_code=code))
        else:
            upstream.set_scenario(Scenario(text="琵琶湖です。", delta_seconds=0))
        await route.continue_()

    return handle


def _completed_response_id(stream: str) -> str:
    for block in stream.split("\n\n"):
        if block.startswith("id:") and "event: response.completed" in block:
            data = next(line for line in block.splitlines() if line.startswith("data: "))
            response_id: str = json.loads(data.removeprefix("data: "))["response_id"]
            return response_id
    raise AssertionError(f"no response.completed in {stream!r}")
