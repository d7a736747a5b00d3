"""The function key, against the local host's real key check (LOCAL_FUNCTION_KEY), as Azure's
Functions host checks it: asked once, kept in sessionStorage only, sent as a header."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..conftest import serve
from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import DONE, ROOT, answered, send

KEY = "secret-key"


@pytest.fixture
async def site_url(upstream: FaultyUpstream) -> AsyncIterator[str]:
    service = ChatService(load_settings({}), demo=upstream)
    async for server in serve(service, function_key=KEY, static_dir=ROOT / "static"):
        yield server.base_url


async def test_the_function_key_is_asked_once_and_kept_in_session_storage(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text="OK", delta_seconds=0.001))
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    await send(page, "滋賀県について教えてください。")
    await expect(page.locator("#key-dialog")).to_be_visible()
    await page.fill("#key-input", KEY)
    await page.click("#key-form button[value=save]")
    await page.wait_for_selector(DONE)

    assert await page.evaluate("sessionStorage.getItem('functionKey')") == KEY
    assert await page.evaluate("localStorage.getItem('functionKey')") is None
    assert not [url for url in urls if KEY in url]
    await send(page, "京都は？")
    await answered(page, 2)
    await expect(page.locator("#key-dialog")).to_be_hidden()
    assert len(upstream.records) == 2  # the unkeyed first try never reached the model


async def test_a_wrong_key_is_asked_for_again(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text="OK", delta_seconds=0.001))
    await send(page, "滋賀県について教えてください。")
    await page.fill("#key-input", "wrong-key")
    await page.click("#key-form button[value=save]")
    await expect(page.locator("#key-dialog")).to_be_visible()
    await page.fill("#key-input", KEY)
    await page.click("#key-form button[value=save]")
    await page.wait_for_selector(DONE)
    assert await page.evaluate("sessionStorage.getItem('functionKey')") == KEY
