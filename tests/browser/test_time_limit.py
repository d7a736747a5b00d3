"""The page across the relay's time limit (STREAM_TIME_LIMIT_SECONDS, here 1 s, with the local
host cutting requests at 1.5 s as Azure's front end does at 230 s): with resumable streams the
page continues each handed-off stream at once, and the answer arrives whole, exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page
from starlette.types import ASGIApp, Receive, Scope, Send

from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..azurite import Azurite
from ..conftest import RESUMABLE, serve
from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import DONE, ROOT, send, watch_statuses

ANSWER = "".join(f"琵琶湖の見どころ{i}。" for i in range(40))


@pytest.fixture
def requests() -> list[str]:
    """The chat requests the page sent, as `METHOD /path?query`."""
    return []


@pytest.fixture
async def site_url(upstream: FaultyUpstream, requests: list[str], azurite: Azurite) -> AsyncIterator[str]:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/api/chat"):
                requests.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")
            await app(scope, receive, send)

        return recording

    storage = {"AzureWebJobsStorage": azurite.connection_string}
    fits = {
        "TOOL_TIMEOUT_SECONDS": "0.2",
        "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.2",
        "UPSTREAM_READ_TIMEOUT_SECONDS": "0.5",
    }
    settings = load_settings({**RESUMABLE, **storage, **fits, "STREAM_TIME_LIMIT_SECONDS": "1"})
    service = ChatService(settings, demo=upstream)
    async for server in serve(service, wrap=wrap, static_dir=ROOT / "static", request_limit_seconds=1.5):
        yield server.base_url


async def test_the_page_continues_an_answer_handed_off_at_the_time_limit(
    page: Page, upstream: FaultyUpstream, requests: list[str]
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.01, chunk_chars=2))  # about 2.5 s
    await watch_statuses(page)
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_selector(DONE)
    assert await page.inner_text(".turn.assistant .body") == ANSWER
    resumes = [seen for seen in requests if seen.startswith("GET /api/chat/resp_")]
    assert len(resumes) >= 2
    assert all("?after=" in seen for seen in resumes)
    assert "接続が切れました。再接続しています…" not in await page.evaluate("window.statuses")
