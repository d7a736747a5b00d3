"""The page with resumable streams (RESUMABLE_STREAMS=true): a connection cut mid-answer is
resumed from the last event, a reload continues the answer, and Stop cancels it upstream.
The cut is real: a middleware in front of the relay drops the browser's connection."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator

import httpx2
import pytest
from playwright.async_api import Page, expect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..azurite import Azurite
from ..conftest import RESUMABLE, serve
from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import DONE, ROOT, send, watch_statuses

ANSWER = "".join(f"琵琶湖の見どころ{i}。" for i in range(60))


class DroppedConnection(Exception):
    """Raised while sending, so uvicorn drops the connection mid-body, as a lost network does."""


class CutFirstChat:
    """Lets through everything, but drops the first POST /api/chat's connection after `after` body
    messages; records the requests it saw, and their trace context."""

    def __init__(self, app: ASGIApp, after: int) -> None:
        self.app = app
        self.after = after
        self.cut = False
        self.requests: list[str] = []
        self.traceparents: list[str] = []

    def one_trace(self) -> str:
        """The one trace id of every request seen (each from a span of its own)."""
        matches = [re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", header) for header in self.traceparents]
        assert all(matches), self.traceparents
        traces = {match[1] for match in matches if match}
        assert len(traces) == 1, self.traceparents
        assert len({match[2] for match in matches if match}) == len(matches)
        return traces.pop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/chat"):
            await self.app(scope, receive, send)
            return
        self.requests.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")
        self.traceparents.append(dict(scope["headers"]).get(b"traceparent", b"").decode())
        if scope["method"] != "POST" or scope["path"] != "/api/chat" or self.cut:
            await self.app(scope, receive, send)
            return
        self.cut = True
        sent = 0

        async def dropping(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += 1
                if sent > self.after:
                    raise DroppedConnection
            await send(message)

        await self.app(scope, receive, dropping)


class _QuietDrop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


@pytest.fixture
def cutter() -> list[CutFirstChat]:
    return []


@pytest.fixture
async def site_url(upstream: FaultyUpstream, cutter: list[CutFirstChat], azurite: Azurite) -> AsyncIterator[str]:
    def wrap(app: ASGIApp) -> ASGIApp:
        cutter.append(CutFirstChat(app, after=6))
        return cutter[0]

    quiet = _QuietDrop()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    service = ChatService(load_settings({**RESUMABLE, "AzureWebJobsStorage": azurite.connection_string}), demo=upstream)
    try:
        async for server in serve(service, wrap=wrap, static_dir=ROOT / "static"):
            yield server.base_url
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)


async def test_a_cut_mid_answer_is_resumed_and_no_text_comes_twice(
    page: Page, upstream: FaultyUpstream, cutter: list[CutFirstChat]
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.01, chunk_chars=3))
    await watch_statuses(page)
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_selector(DONE)
    assert await page.inner_text(".turn.assistant .body") == ANSWER
    assert "接続が切れました。再接続しています…" in await page.evaluate("window.statuses")
    assert await page.inner_text(".turn.assistant .status") == ""
    resumes = [request for request in cutter[0].requests if request.startswith("GET /api/chat/resp_")]
    assert len(resumes) == 1
    assert "?after=" in resumes[0]
    # The question and its resume are one trace, the one shown under the answer.
    assert await page.get_attribute(".turn.assistant .trace", "data-trace-id") == cutter[0].one_trace()


async def test_a_reload_during_an_answer_continues_it(
    page: Page, upstream: FaultyUpstream, cutter: list[CutFirstChat]
) -> None:
    cutter[0].cut = True  # no cut here: the reload is what interrupts
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.02, chunk_chars=3))
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_function("() => document.querySelector('.turn.assistant .body').textContent.length > 10")
    await page.reload()
    await page.wait_for_selector(DONE)
    assert await page.inner_text(".turn.user .body") == "滋賀県について教えてください。"
    assert await page.inner_text(".turn.assistant .body") == ANSWER
    await expect(page.locator(".turn")).to_have_count(2)
    assert any(request.endswith("?") and request.startswith("GET /api/chat/resp_") for request in cutter[0].requests)
    assert await page.get_attribute(".turn.assistant .trace", "data-trace-id") == cutter[0].one_trace()


async def start_a_long_answer(page: Page, upstream: FaultyUpstream) -> None:
    """Ask, and return once the answer is being written."""
    upstream.set_scenario(Scenario(text=ANSWER * 3, delta_seconds=0.02))
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_function("() => document.querySelector('.turn.assistant .body').textContent.length > 3")


async def test_stop_cancels_the_response_upstream(
    page: Page, upstream: FaultyUpstream, cutter: list[CutFirstChat]
) -> None:
    cutter[0].cut = True
    await start_a_long_answer(page, upstream)
    async with page.expect_response(lambda response: response.url.endswith("/cancel")) as cancelled:
        await page.click("#stop")
    reply = await cancelled.value
    response_id = reply.url.split("/")[-2]
    assert reply.status == 200
    await expect(page.locator(".turn.assistant .status")).to_have_text("停止しました。")
    cancels = [record.path for record in upstream.records if record.path.endswith("/cancel")]
    assert cancels == [f"/openai/v1/responses/{response_id}/cancel"]
    assert cutter[0].requests[-1].startswith(f"POST /api/chat/{response_id}/cancel")
    cutter[0].one_trace()  # the cancel is in the question's trace
    async with httpx2.AsyncClient(timeout=5) as client:  # the model itself stopped, not only the page
        stored = (await client.get(f"{upstream.base_url}responses/{response_id}")).json()
    assert stored["status"] == "cancelled"
    await expect(page.locator("#send")).to_be_visible()


async def test_a_new_conversation_cancels_the_answer_being_written(
    page: Page, upstream: FaultyUpstream, cutter: list[CutFirstChat]
) -> None:
    cutter[0].cut = True
    await start_a_long_answer(page, upstream)
    async with page.expect_response(lambda response: response.url.endswith("/cancel")) as cancelled:
        await page.click("#new-chat")
    assert (await cancelled.value).status == 200
    await expect(page.locator(".turn")).to_have_count(0)
    assert [record.path for record in upstream.records if record.path.endswith("/cancel")]


async def test_stop_before_the_response_has_an_id_frees_the_page_at_once_and_the_relay_cancels_it(
    page: Page, upstream: FaultyUpstream, cutter: list[CutFirstChat]
) -> None:
    cutter[0].cut = True
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.01, queued_seconds=3))  # response.created in 3 s
    await send(page, "滋賀県について教えてください。")
    await asyncio.to_thread(upstream.wait_for_requests, 1)
    await expect(page.locator("#stop")).to_be_visible()
    pressed = time.monotonic()
    await page.click("#stop")
    await expect(page.locator(".turn.assistant .status")).to_have_text("停止しました。", timeout=1000)
    await expect(page.locator("#send")).to_be_visible(timeout=1000)
    assert time.monotonic() - pressed < 1
    # The page never learnt the response's id: the relay cancels it once it knows it.
    stored = await asyncio.to_thread(upstream.relay_cancelled_the_orphan)
    assert stored.status == "cancelled"


async def test_a_new_conversation_while_the_response_is_queued_leaves_the_page_ready(
    page: Page, upstream: FaultyUpstream, cutter: list[CutFirstChat]
) -> None:
    cutter[0].cut = True
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.01, queued_seconds=3))
    await send(page, "滋賀県について教えてください。")
    await asyncio.to_thread(upstream.wait_for_requests, 1)
    await page.click("#new-chat")
    upstream.set_scenario(Scenario(text="京都です。", delta_seconds=0.001))
    await send(page, "京都は？")
    await page.wait_for_selector(DONE)
    assert await page.inner_text(".turn.assistant .body") == "京都です。"
    await expect(page.locator(".turn")).to_have_count(2)
