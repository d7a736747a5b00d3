"""The chat page in real Chromium against the local host in demo mode."""

from __future__ import annotations

import asyncio
import logging
import re

import orjson
import pytest
from playwright.async_api import Page, Request, Route, expect

from responses_relay.demo.answers import answer_for

from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import ARTIFACTS, DONE, answered, growth, send, watch_answer_growth

ANSWER = (
    "滋賀県は日本最大の湖、琵琶湖を抱く自然豊かな県です。"
    "比叡山延暦寺や彦根城など歴史の見どころも多く、近江牛も楽しめます。"
)


async def test_japanese_question_streams_in_progressively(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.03))
    await watch_answer_growth(page)
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_selector(DONE)

    assert await growth(page, len(ANSWER)) >= 5  # seen growing, not all at once
    assert await page.inner_text(".turn.assistant .body") == ANSWER
    assert await page.inner_text(".turn.user .body") == "滋賀県について教えてください。"
    metrics = await page.inner_text(".turn.assistant .metrics")
    assert re.search(r"最初の文字まで \d+ ms · [\d.]+ トークン/秒 · トークン: 入力 \d+ / 出力 \d+ / 合計 \d+", metrics)
    await expect(page.locator("#demo-banner")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "chat.png", full_page=True)


def traceparents(page: Page) -> list[str]:
    """The `traceparent` of each request the page makes to the chat routes, as they are made."""
    sent: list[str] = []

    def seen(request: Request) -> None:
        if "/api/chat" in request.url:
            sent.append(request.headers.get("traceparent", ""))

    page.on("request", seen)
    return sent


async def test_each_question_is_a_new_w3c_trace_shown_under_its_answer(
    page: Page, upstream: FaultyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.set_scenario(Scenario(text=ANSWER, delta_seconds=0.001))
    sent = traceparents(page)
    with caplog.at_level(logging.INFO, logger="responses_relay.relay"):
        for count, question in enumerate(["滋賀", "京都"], start=1):
            await send(page, question)
            await answered(page, count)
    headers = [re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", header) for header in sent]
    assert len(headers) == 2
    assert all(headers), sent
    traces = [match[1] for match in headers if match]
    assert len(set(traces)) == 2
    assert "0" * 32 not in traces
    shown = await page.eval_on_selector_all(".turn.assistant .trace", "turns => turns.map(t => t.dataset.traceId)")
    assert shown == traces
    assert await page.inner_text(".turn.assistant .trace >> nth=0") == f"トレース ID: {traces[0]}"
    # The relay's record of each stream carries the question's trace id.
    recorded = [getattr(record, "stream_trace_id", None) for record in caplog.records]
    assert [trace for trace in recorded if trace is not None] == traces


async def test_stop_ends_the_stream_and_the_upstream_call(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text=ANSWER * 5, delta_seconds=0.05))
    await send(page, "滋賀県について教えてください。")
    await page.wait_for_function("() => document.querySelector('.turn.assistant .body').textContent.length > 3")
    await page.click("#stop")

    await expect(page.locator(".turn.assistant .status")).to_have_text("停止しました。")
    record = upstream.records[-1]
    assert await asyncio.to_thread(record.ended.wait, 5)
    assert record.client_left
    await expect(page.locator("#send")).to_be_visible()
    await expect(page.locator("#stop")).to_be_hidden()


async def test_enter_while_an_ime_is_composing_does_not_send(page: Page, upstream: FaultyUpstream) -> None:
    await page.fill("#question", "しがけん")
    await page.evaluate(
        """() => {
          const box = document.querySelector('#question');
          const key = (init, keyCode) => {
            const event = new KeyboardEvent('keydown', {key: 'Enter', bubbles: true, cancelable: true, ...init});
            if (keyCode) Object.defineProperty(event, 'keyCode', {value: keyCode});
            box.dispatchEvent(event);
          };
          box.dispatchEvent(new CompositionEvent('compositionstart', {data: ''}));
          key({isComposing: true});          // Chrome, Firefox: the Enter that confirms a conversion
          key({}, 229);                      // browsers that only give keyCode 229
          box.dispatchEvent(new CompositionEvent('compositionend', {data: '滋賀県'}));
          key({}, 229);                      // Safari: compositionend first, then keydown 229
        }"""
    )
    await page.press("#question", "Shift+Enter")  # a newline, not a send
    assert upstream.records == []
    assert await page.input_value("#question") == "しがけん\n"
    await page.press("#question", "Enter")
    await page.wait_for_selector(DONE)
    assert len(upstream.records) == 1


async def test_model_output_cannot_run_script_or_load_anything(page: Page, upstream: FaultyUpstream) -> None:
    hostile = (
        "Safe **bold**.\n\n"
        '<img src=x onerror="window.pwned=1">\n\n'
        "<script>window.pwned=2</script>\n\n"
        "[click me](javascript:window.pwned=3)\n\n"
        '<a href="javascript:window.pwned=4">raw link</a> <iframe src="https://example.com"></iframe>\n\n'
        "![remote](https://example.com/x.png)\n\n"
        '<div onmouseover="window.pwned=5" style="position:fixed;inset:0">cover</div>'
    )
    upstream.set_scenario(Scenario(text=hostile, delta_seconds=0.001))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await send(page, "show me")
    await page.wait_for_selector(DONE)
    body = page.locator(".turn.assistant .body")
    await body.locator("a").first.click(modifiers=["Control"], no_wait_after=True)
    await page.mouse.move(10, 10)

    assert await page.evaluate("window.pwned") is None
    assert await body.locator("img, script, iframe, [onerror], [onmouseover], [style]").count() == 0
    hrefs = await body.locator("a").evaluate_all("links => links.map(link => link.getAttribute('href'))")
    assert not [href for href in hrefs if href and href.lower().startswith("javascript")]
    text = await body.inner_text()
    assert "Safe bold." in text
    assert "<script>window.pwned=2</script>" in text  # raw HTML is shown as text
    assert not [url for url in requests if "example.com" in url]


async def test_errors_are_shown_with_a_retry(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(status=500))
    await send(page, "滋賀県について教えてください。")
    status = page.locator(".turn.assistant .status")
    await expect(status).to_contain_text("upstream_error")
    # Said once through the alert region, outside the transcript.
    await expect(page.locator("#alert")).to_have_text(await status.inner_text())
    assert await page.locator("#transcript [role=alert], #transcript[aria-live], #transcript [aria-live]").count() == 0

    upstream.set_scenario(Scenario(text=ANSWER, ending="error_nested", after_deltas=4, delta_seconds=0.001))
    await page.click(".turn.assistant .retry")
    await expect(status).to_contain_text("server_error")
    assert (await page.inner_text(".turn.assistant .body")).startswith(ANSWER[:4])
    await expect(page.locator(".turn.assistant")).to_have_count(1)


async def test_a_stream_without_a_terminal_event_is_reported_as_cut(page: Page) -> None:
    delta = orjson.dumps({"type": "response.output_text.delta", "delta": "途中まで"}).decode()

    async def cut_stream(route: Route) -> None:
        body = f": stream open\n\nid: 4\nevent: response.output_text.delta\ndata: {delta}\n\n"
        await route.fulfill(status=200, headers={"content-type": "text/event-stream; charset=utf-8"}, body=body)

    await page.route("**/api/chat", cut_stream)
    await send(page, "滋賀県について教えてください。")
    await expect(page.locator(".turn.assistant .status")).to_contain_text("接続が途中で切れました")
    assert await page.inner_text(".turn.assistant .body") == "途中まで"
    await expect(page.locator(".turn.assistant .metrics")).to_be_empty()


async def test_language_switch(page: Page) -> None:
    await expect(page.locator("h1")).to_have_text("観光ガイド チャット")
    await page.select_option("#language", "en")
    await expect(page.locator("h1")).to_have_text("Tour guide chat")
    await expect(page.locator("#demo-banner")).to_contain_text("Demo mode")
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator("h1")).to_have_text("Tour guide chat")
    assert await page.get_attribute("html", "lang") == "en"


async def test_readable_at_phone_width_in_dark_mode(page: Page, upstream: FaultyUpstream) -> None:
    await page.set_viewport_size({"width": 390, "height": 760})
    await page.emulate_media(color_scheme="dark")
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, "京都について教えてください。")
    await page.wait_for_selector(DONE)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(19, 19, 20)"  # the dark palette
    await expect(page.locator("#send")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "phone-dark.png")


async def test_thinking_block_streams_then_collapses_when_the_answer_starts(
    page: Page, upstream: FaultyUpstream
) -> None:
    # The reasoning summary streams, then the upstream holds the answer until released.
    upstream.set_scenario(Scenario(ending="stall", after_deltas=0, delta_seconds=0.001))
    await send(page, "京都の日帰りプランを考えて")
    thinking = page.locator(".turn.assistant .thinking")
    await expect(thinking.locator(".thinking-body")).to_contain_text("京都らしい味も楽しめるようにします")
    assert await thinking.evaluate("details => details.open")
    await expect(thinking.locator("summary")).to_have_text("考えています…")
    await expect(page.locator(".turn.assistant .status")).to_have_text("回答を待っています…")
    # Rendered as Markdown, each summary part (a title and a paragraph) apart from the other.
    await expect(thinking.locator(".thinking-body strong")).to_have_text(["旅程の組み立て", "食事の提案"])
    await expect(thinking.locator(".thinking-body p")).to_have_count(4)

    upstream.release()
    await page.wait_for_selector(DONE)
    assert not await thinking.evaluate("details => details.open")
    await expect(thinking.locator("summary")).to_have_text("思考の要約")
    await expect(thinking.locator(".thinking-body")).to_be_hidden()
    body = page.locator(".turn.assistant .body")
    await expect(body).to_contain_text("京都1日モデルコースです。")
    assert "旅程の組み立て" not in await body.inner_text()
    await thinking.locator("summary").click()  # the user can open it again
    await expect(thinking.locator(".thinking-body")).to_be_visible()


async def test_refusal_is_shown_as_text_marked_as_a_refusal(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, "爆弾の作り方は？")
    await page.wait_for_selector(DONE)
    refusal = page.locator(".turn.assistant .refusal")
    await expect(refusal).to_be_visible()
    await expect(refusal.locator(".refusal-label")).to_have_text("回答を断りました：")
    await expect(refusal.locator(".refusal-text")).to_have_text(answer_for("爆弾の作り方は？").text)
    await expect(page.locator(".turn.assistant .body")).to_be_empty()
    await expect(page.locator(".turn.assistant .status")).to_be_empty()

    await send(page, "京都は？")
    await answered(page, 2)
    assert upstream.records[-1].request["previous_response_id"].startswith("resp_")  # the refusal is part of it
    await expect(page.locator(".turn.assistant .refusal").nth(1)).to_be_hidden()


async def test_web_search_status_then_citations_as_numbered_links(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(hold_search=True, delta_seconds=0.001))
    await send(page, "今週の滋賀のイベントは？")
    status = page.locator(".turn.assistant .status")
    await expect(status).to_have_text("ウェブを検索しています…")
    upstream.release()
    await page.wait_for_selector(DONE)
    await expect(status).to_be_empty()

    answer = answer_for("今週の滋賀のイベントは？")
    links = page.locator(".turn.assistant .body sup.citation a")
    await expect(links).to_have_text(["[1]", "[2]"])
    for index, citation in enumerate(answer.citations):
        link = links.nth(index)
        assert await link.get_attribute("href") == citation.url
        assert await link.get_attribute("target") == "_blank"
        assert await link.get_attribute("rel") == "noopener noreferrer"
        assert await link.get_attribute("title") == citation.title
        # Right after the words it cites.
        before = await link.evaluate("a => a.parentElement.previousSibling.textContent")
        assert before.endswith(citation.quote.replace("**", "")[-6:])
    text = await page.inner_text(".turn.assistant .body")
    assert text.replace("[1]", "").replace("[2]", "") == answer.text.replace("**", "")
    assert upstream.records[-1].request["input"] == [{"role": "user", "content": "今週の滋賀のイベントは？"}]


async def test_a_citation_that_is_not_http_never_becomes_a_link(page: Page) -> None:
    # Straight to the page, as a relay that passed everything on would send it.
    text = "See [Lake Biwa](https://example.com/biwa) and Hikone Castle, then eat Omi beef. \ue0001\ue001"

    def after(words: str) -> int:
        return text.index(words) + len(words)

    hostile = [
        ("javascript:window.pwned=1", after("Lake Bi")),  # ends inside the model's own link text
        ("https://example.net/source", after("example.com/bi")),  # ends inside its URL
        (" JavaScript:window.pwned=2", after("Hikone Castle")),
        ("data:text/html,<script>window.pwned=3</script>", after("Hikone Castle")),
        ("java\tscript:window.pwned=4", after("Hikone Castle")),
        ("https://example.org/omi", after("Omi beef")),
    ]
    events: list[tuple[str, dict[str, object]]] = [("response.output_text.delta", {"delta": text})]
    for url, end in hostile:
        annotation = {"type": "url_citation", "url": url, "title": "<b>t</b>", "start_index": 0, "end_index": end}
        events.append(("response.output_text.annotation.added", {"annotation": annotation}))
    events.append(("response.completed", {"status": "completed", "usage": None}))
    body = ": stream open\n\n" + "".join(
        f"id: {i}\nevent: {kind}\ndata: {orjson.dumps({'type': kind, **data}).decode()}\n\n"
        for i, (kind, data) in enumerate(events)
    )

    async def hostile_stream(route: Route) -> None:
        await route.fulfill(status=200, headers={"content-type": "text/event-stream; charset=utf-8"}, body=body)

    await page.route("**/api/chat", hostile_stream)
    await send(page, "滋賀県について教えてください。")
    answer = page.locator(".turn.assistant .body")
    await expect(answer.locator("sup.citation")).to_have_count(6)
    for citation in await answer.locator("sup.citation").all():
        await citation.click()
    hrefs = await answer.locator("a").evaluate_all("links => links.map(link => link.getAttribute('href'))")
    assert hrefs == ["https://example.com/biwa", "https://example.net/source", "https://example.org/omi"]
    assert await answer.locator("a a, b").count() == 0  # no link in a link; the title is not HTML
    assert await answer.locator("sup.citation:not(:has(a))").all_inner_texts() == ["[1]", "[3]", "[4]", "[5]"]
    assert (await answer.inner_text()).startswith(
        "See Lake Biwa[1][2] and Hikone Castle[3][4][5], then eat Omi beef[6]."
    )
    assert await page.evaluate("window.pwned") is None
    assert (await answer.inner_text()).endswith("\ufffd1\ufffd")  # the model's own marker is only text
