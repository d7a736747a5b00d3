"""`scripts/run --worker`: the page, served by the local host in front of the real Functions
worker, in demo mode with the built-in demo upstream, streams the Japanese example."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from playwright.async_api import Page, expect

from ..host_process import HostProcess
from .conftest import DONE, growth, send, watch_answer_growth


@pytest.fixture(scope="module")
def worker_site() -> Iterator[HostProcess]:
    host = HostProcess("--worker", environ={"OPENAI_ENDPOINT": "", "DEMO_DELTA_SECONDS": "0.01"})
    host.start()
    yield host
    host.stop()


@pytest.fixture
def site_url(worker_site: HostProcess) -> str:
    return worker_site.url


async def test_the_page_streams_the_japanese_example_through_the_real_worker(
    page: Page, worker_site: HostProcess
) -> None:
    await expect(page.locator("#demo-banner")).to_be_visible()
    await watch_answer_growth(page)
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_selector(DONE)
    answer = await page.inner_text(".turn.assistant .body")
    assert answer.startswith("滋賀県は")
    assert "琵琶湖" in answer
    assert await growth(page, len(answer)) >= 5  # seen growing
    executed = await asyncio.to_thread(worker_site.wait_for, lambda line: "Executed 'Functions.chat'" in line)
    assert "Succeeded" in executed
