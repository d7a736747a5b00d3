"""What a new user meets: a clean load, Send waiting for the configuration, a 429's Retry-After,
the function-key dialog, the language switch, the view following an answer, bad event data."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request, Response, Route, expect

from responses_relay.demo.answers import answer_for

from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import ARTIFACTS, DONE, answered, send

# How far the view is from the end of the page, in pixels.
FROM_END = "((root) => root.scrollHeight - root.clientHeight - root.scrollTop)(document.scrollingElement)"


async def test_no_console_error_or_failed_request_on_load_and_after_a_turn(
    context: BrowserContext, site_url: str, upstream: FaultyUpstream
) -> None:
    page = await context.new_page()
    console: list[str] = []
    failed: list[str] = []
    loaded: list[str] = []
    page.on("console", lambda message: _keep_errors(message, console))
    page.on("requestfailed", lambda request: failed.append(f"{request.url} {request.failure}"))
    page.on("response", lambda response: _keep_response(response, failed, loaded))
    await page.goto(site_url + "/")
    await page.wait_for_selector("body[data-ready=true]")
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_selector(DONE)

    assert console == []
    assert failed == []
    assert {"/config.json", "/api/health", "/api/chat"} <= set(loaded)


def _keep_errors(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type in ("error", "warning"):
        errors.append(message.text)


def _keep_response(response: Response, failed: list[str], loaded: list[str]) -> None:
    path = re.sub(r"^https?://[^/]+", "", response.url)
    loaded.append(path)
    if response.status >= 400:
        failed.append(f"{response.status} {path}")


async def test_send_waits_until_the_configuration_is_read(
    context: BrowserContext, site_url: str, upstream: FaultyUpstream
) -> None:
    page = await context.new_page()
    chats: list[str] = []
    page.on("request", lambda request: chats.append(request.url) if "/chat" in request.url else None)
    configured = asyncio.Event()

    async def slow_config(route: Route) -> None:
        await configured.wait()
        await route.fulfill(content_type="application/json", body=json.dumps({"apiBase": site_url + "/api/"}))

    await page.route("**/config.json", slow_config)
    try:
        await page.goto(site_url + "/", wait_until="commit")
        await expect(page).to_have_title("観光ガイド チャット")  # the page's script runs, waiting for config.json
        await expect(page.locator("#send")).to_be_disabled()
        await page.fill("#question", "滋賀県について教えてください。")
        await page.press("#question", "Enter")
        await page.click("#send", force=True)  # a disabled button: nothing
        await expect(page.locator("#send")).to_be_disabled()
        assert await page.input_value("#question") == "滋賀県について教えてください。"  # kept, not sent
    finally:
        configured.set()
    await expect(page.locator("#send")).to_be_enabled()
    assert chats == []
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await page.press("#question", "Enter")
    await page.wait_for_selector(DONE)
    assert chats == [site_url + "/api/chat"]  # where config.json says, trailing slash or not


async def test_a_429_disables_retry_until_its_retry_after_has_passed(
    context: BrowserContext, site_url: str, upstream: FaultyUpstream
) -> None:
    page = await context.new_page()
    await page.clock.install()
    await page.goto(site_url + "/")
    await page.wait_for_selector("body[data-ready=true]")
    # The page's clock stands still from here: only run_for moves it.
    await page.clock.pause_at(await page.evaluate("Date.now()") + 1000)
    upstream.set_scenario(Scenario(status=429, retry_after="3"))
    await send(page, "滋賀県について教えてください。")

    retry = page.locator(".turn.assistant .retry")
    await expect(retry).to_have_text("再試行（あと 3 秒）")
    await expect(retry).to_be_disabled()
    await expect(page.locator("#alert")).to_contain_text("rate_limited")
    await page.clock.run_for(1000)
    await expect(retry).to_have_text("再試行（あと 2 秒）")
    await page.clock.run_for(1999)
    await expect(retry).to_have_text("再試行（あと 1 秒）")
    await expect(retry).to_be_disabled()
    await page.clock.run_for(1)  # 3 s after the answer
    await expect(retry).to_have_text("再試行")
    await expect(retry).to_be_enabled()

    await page.clock.resume()
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await retry.click()
    await page.wait_for_selector(DONE)
    await expect(page.locator(".turn.assistant")).to_have_count(1)
    assert len(upstream.records) == 2


async def test_closing_the_key_dialog_unsaved_never_saves_what_was_typed(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text="OK", delta_seconds=0.001))
    wanted = {"key": "first-key"}
    keys: list[str | None] = []

    async def functions_host(route: Route, request: Request) -> None:
        keys.append(request.headers.get("x-functions-key"))
        if request.headers.get("x-functions-key") == wanted["key"]:
            await route.continue_()
        else:
            body = '{"error":{"code":"unauthorized","message":"key"}}'
            await route.fulfill(status=401, content_type="application/json", body=body)

    await page.route("**/api/chat", functions_host)
    await send(page, "滋賀県について教えてください。")
    await page.fill("#key-input", "first-key")
    await page.click("#key-form button[value=save]")
    await page.wait_for_selector(DONE)

    wanted["key"] = "rotated-key"  # the saved key is refused now
    # A close request (the spec's Escape, Android's back gesture) closes without a return value:
    # the dialog's returnValue must not still say "save" from the first time.
    await send(page, "京都は？")
    await expect(page.locator("#key-dialog")).to_be_visible()
    await page.fill("#key-input", "typo")
    await page.evaluate("document.querySelector('#key-dialog').requestClose()")
    await expect(page.locator("#key-dialog")).to_be_hidden()
    await expect(page.locator(".turn.assistant .status").last).to_contain_text("unauthorized")
    assert await page.evaluate("sessionStorage.getItem('functionKey')") is None

    await send(page, "奈良は？")
    await page.fill("#key-input", "typo")
    await page.press("#key-input", "Escape")
    await expect(page.locator("#key-dialog")).to_be_hidden()
    await expect(page.locator(".turn.assistant .status").last).to_contain_text("unauthorized")
    assert await page.evaluate("sessionStorage.getItem('functionKey')") is None
    assert keys == [None, "first-key", "first-key", None]  # "typo" was never sent


async def test_switching_language_relabels_the_turns_already_there(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, "京都の日帰りプランを考えて")  # a reasoning summary
    await page.wait_for_selector(DONE)
    await send(page, "今週の滋賀のイベントは？")  # citations
    await answered(page, 2)
    await send(page, "爆弾の作り方は？")  # a refusal
    await answered(page, 3)
    upstream.set_scenario(Scenario(status=500))
    await send(page, "奈良は？")
    await expect(page.locator(".turn.assistant .retry")).to_have_text("再試行")

    await page.select_option("#language", "en")
    turns = page.locator(".turn")
    await expect(turns.locator(".who")).to_have_text(["You", "Guide"] * 4)
    await expect(turns.locator(".thinking:not([hidden]) summary")).to_have_text(["Reasoning summary"])
    await expect(page.locator(".turn.assistant .metrics").first).to_have_text(
        re.compile(r"first token after \d+ ms · [\d.]+ tokens/s · tokens: \d+ in / \d+ out / \d+ total")
    )
    await expect(turns.locator("sup.citation a").first).to_have_attribute(
        "aria-label", "Source 1: デモ: 滋賀の今週のイベント"
    )
    await expect(turns.locator(".refusal-label").nth(2)).to_have_text("The model declined:")
    await expect(turns.locator(".status").last).to_have_text(
        "Error: The model service failed (HTTP 500) (upstream_error)"
    )
    await expect(turns.locator(".retry")).to_have_text("Retry")
    await expect(page.locator("#transcript")).to_have_attribute("aria-label", "Conversation")
    assert await page.title() == "Tour guide chat"

    await page.select_option("#language", "ja")
    await expect(turns.locator(".who").first).to_have_text("あなた")
    await expect(turns.locator(".retry")).to_have_text("再試行")
    assert await page.title() == "観光ガイド チャット"


async def test_the_view_follows_a_growing_answer_until_the_user_scrolls_up(
    page: Page, upstream: FaultyUpstream
) -> None:
    await page.set_viewport_size({"width": 900, "height": 500})
    paragraphs = "\n\n".join(f"琵琶湖のほとりを歩きます（{number}）。" for number in range(1, 41))
    held = 120  # deltas sent before the stream is held: two-character deltas, so 240 characters
    await page.mouse.move(450, 200)
    scrolls_up: list[Callable[[], Awaitable[None]]] = [
        lambda: page.mouse.wheel(0, -300),
        lambda: page.keyboard.press("PageUp"),
    ]
    for answer, scroll_up in enumerate(scrolls_up):
        upstream.set_scenario(Scenario(text=paragraphs, ending="stall", after_deltas=held, delta_seconds=0.001))
        await send(page, f"質問 {answer + 1}")  # a new question is followed, even from up the page
        await _followed_while_written(page, answer)
        await scroll_up()  # the user goes back up to read, with the wheel, then the keyboard
        await page.wait_for_function(f"() => {FROM_END} > 200")
        upstream.release()  # the rest of the answer arrives
        await answered(page, answer + 1)
        assert await page.evaluate(FROM_END) > 1000  # left where the user was, far above the end now
    assert (await page.inner_text(".turn.assistant .body >> nth=1")).endswith("琵琶湖のほとりを歩きます（40）。")

    upstream.set_scenario(Scenario(text=paragraphs, ending="stall", after_deltas=held, delta_seconds=0.001))
    await send(page, "質問 3")
    await _followed_while_written(page, 2)
    await page.mouse.wheel(0, -300)
    await page.wait_for_function(f"() => {FROM_END} > 200")
    await page.mouse.wheel(0, 100_000)  # and back down to the end: followed again
    await page.wait_for_function(f"() => {FROM_END} <= 8")
    upstream.release()
    await answered(page, 3)
    assert await page.evaluate(FROM_END) <= 8  # the end of the answer, its metrics included


async def test_a_question_sent_while_the_page_still_scrolls_up_is_followed(
    page: Page, upstream: FaultyUpstream
) -> None:
    # A keyboard's scroll is animated and goes on after the page moved to the end for the new
    # answer: that is not the user leaving the end.
    await page.set_viewport_size({"width": 900, "height": 500})
    paragraphs = "\n\n".join(f"琵琶湖のほとりを歩きます（{number}）。" for number in range(1, 41))
    upstream.set_scenario(Scenario(text=paragraphs, delta_seconds=0))
    await send(page, "質問 1")
    await answered(page, 1)
    upstream.set_scenario(Scenario(text=paragraphs, ending="stall", after_deltas=120, delta_seconds=0.001))
    await page.keyboard.press("PageUp")
    await send(page, "質問 2")  # at once: the page is still scrolling up
    await _followed_while_written(page, 1)


async def _followed_while_written(page: Page, answer: int) -> None:
    """Wait until the answer has 200 characters and the view is at its end."""
    written = f"document.querySelectorAll('.turn.assistant .body')[{answer}].innerText.length > 200"
    await page.wait_for_function(f"() => {written} && {FROM_END} <= 8")


async def test_event_data_that_is_not_json_is_reported_as_such(page: Page) -> None:
    delta = json.dumps({"type": "response.output_text.delta", "delta": "途中まで"}, ensure_ascii=False)

    async def bad_stream(route: Route) -> None:
        body = f": stream open\n\nid: 4\nevent: response.output_text.delta\ndata: {delta}\n\ndata: {{not json\n\n"
        await route.fulfill(status=200, headers={"content-type": "text/event-stream; charset=utf-8"}, body=body)

    await page.route("**/api/chat", bad_stream)
    await send(page, "滋賀県について教えてください。")
    status = page.locator(".turn.assistant .status")
    await expect(status).to_have_text(
        "サーバーから読み取れないデータ（JSON ではないイベント）が届きました。回答は完全ではありません。"
    )
    await expect(page.locator("#alert")).to_have_text(await status.inner_text())
    assert await page.inner_text(".turn.assistant .body") == "途中まで"
    await expect(page.locator(".turn.assistant .retry")).to_be_enabled()


async def test_screenshots_at_desktop_and_phone_width(page: Page, upstream: FaultyUpstream) -> None:
    await page.set_viewport_size({"width": 1280, "height": 800})
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    questions = ["滋賀県について教えてください。", "京都の日帰りプランを考えて", "今週の滋賀のイベントは？"]
    for number, question in enumerate(questions, start=1):
        await send(page, question)
        await answered(page, number)
    await expect(page.locator(".turn.assistant .body").last).to_contain_text(answer_for("今週").text[:10])
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "desktop.png")

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight)")
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    await page.screenshot(path=ARTIFACTS / "phone.png")
