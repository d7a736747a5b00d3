"""Stop on the page, in Chromium: pressed while the guide runs a tool, it leaves nothing generating
upstream, in background mode (where the model goes on whoever reads) as in the default one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from responses_relay.service import ChatService
from responses_relay.settings import load_settings
from responses_relay.tools import function_tool

from ..azurite import Azurite
from ..conftest import RESUMABLE, serve
from ..faulty_upstream import FaultyUpstream, Scenario
from ..test_tool_calls import posts
from .conftest import ROOT, send


class StuckTool:
    """local_time that never answers, saying when it started and when it was stopped."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def local_time(self, timezone: str) -> str:
        """The time in a time zone."""
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped.set()
        return timezone


@pytest.fixture
def stuck() -> StuckTool:
    return StuckTool()


@pytest.fixture(params=["resumable", "default"])
async def site_url(
    request: pytest.FixtureRequest, upstream: FaultyUpstream, stuck: StuckTool, azurite: Azurite
) -> AsyncIterator[str]:
    environ = {} if request.param == "default" else {**RESUMABLE, "AzureWebJobsStorage": azurite.connection_string}
    service = ChatService(load_settings({**environ, "TOOL_TIMEOUT_SECONDS": "30"}), demo=upstream,
                          tools=[function_tool(stuck.local_time)])  # fmt: skip
    async for server in serve(service, static_dir=ROOT / "static"):
        yield server.base_url


async def test_stop_during_a_tool_call_leaves_no_response_generating_upstream(
    page: Page, upstream: FaultyUpstream, stuck: StuckTool
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    earlier = set(upstream.stored_responses())  # the upstream is shared by the session's tests
    await send(page, "京都は今何時？")
    await asyncio.wait_for(stuck.started.wait(), 10)
    await expect(page.locator(".turn.assistant .call")).to_have_attribute("data-state", "running")
    await page.get_by_role("button", name="停止").click()
    await expect(page.locator(".turn.assistant .status")).to_have_text("停止しました。")
    await asyncio.wait_for(stuck.stopped.wait(), 10)  # the relay gave up on the call: no round follows it
    assert len(posts(upstream)) == 1
    assert all(response.done for response in upstream.stored_responses() if response not in earlier)
