"""Browser fixtures: Debian's Chromium driven by Playwright, against the local host in demo mode."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..conftest import RelayServer, serve
from ..faulty_upstream import FaultyUpstream

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Chromium's own background traffic would only be refused here: turn it off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def site(upstream: FaultyUpstream) -> AsyncIterator[RelayServer]:
    """The local host in demo mode (the test's upstream stands in for the built-in one), serving static/."""
    service = ChatService(load_settings({}), demo=upstream)
    async for server in serve(service, static_dir=ROOT / "static"):
        yield server


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
    return CHROMIUM


@pytest.fixture
def site_url(site: RelayServer) -> str:
    """Where the page is served; a test module can serve it from elsewhere by overriding this."""
    return site.base_url


@pytest.fixture
async def context(chromium: str, site_url: str) -> AsyncIterator[BrowserContext]:
    """A fresh Japanese browser context at a desktop width; script errors in any of its pages fail the test.
    (It needs `site_url` to close before the site does.)"""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # Self-signed certificates are accepted: the local sign-in issuer's (tests/oidc_issuer.py).
        context = await browser.new_context(
            locale="ja-JP", viewport={"width": 900, "height": 800}, ignore_https_errors=True
        )
        errors: list[str] = []
        context.on("weberror", lambda error: errors.append(str(error.error)))
        yield context
        await browser.close()
        assert not errors, f"errors in the page: {errors}"


@pytest.fixture
async def page(site_url: str, context: BrowserContext) -> Page:
    """The page, loaded and ready (its configuration and the health route read)."""
    page = await context.new_page()
    await page.goto(site_url + "/")
    await page.wait_for_selector("body[data-ready=true]")
    return page


# An answer has ended when the page is idle and the answer's metrics are shown.
DONE = "body[data-busy=false] .turn.assistant .metrics:not(:empty)"


async def send(page: Page, text: str) -> None:
    await page.fill("#question", text)
    await page.press("#question", "Enter")


async def answered(page: Page, count: int) -> None:
    """Wait until `count` answers have ended with their metrics."""
    await page.wait_for_function(
        "count => document.body.dataset.busy === 'false'"
        " && document.querySelectorAll('.turn.assistant .metrics:not(:empty)').length === count",
        arg=count,
    )


async def watch_statuses(page: Page) -> None:
    """Record the answer's status line each time the transcript changes; read them from `window.statuses`."""
    await page.evaluate(
        """() => {
          window.statuses = [];
          new MutationObserver(() => {
            const status = document.querySelector('.turn.assistant .status');
            if (status) window.statuses.push(status.textContent);
          }).observe(document.querySelector('#transcript'), {subtree: true, childList: true, characterData: true});
        }"""
    )


async def watch_answer_growth(page: Page) -> None:
    """Record the answer's length each time the transcript changes; `growth` reads them."""
    await page.evaluate(
        """() => {
          window.lengths = [];
          new MutationObserver(() => {
            const body = document.querySelector('.turn.assistant .body');
            if (body) window.lengths.push(body.textContent.length);
          }).observe(document.querySelector('#transcript'), {subtree: true, childList: true, characterData: true});
        }"""
    )


async def growth(page: Page, final: int) -> int:
    """How many lengths between empty and `final` the answer was seen at: more than one when it
    streamed in, rather than arriving at once."""
    lengths: list[int] = await page.evaluate("window.lengths")
    return len({length for length in lengths if 0 < length < final})
