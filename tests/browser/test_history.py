"""Conversations on the page, in Chromium against the local host with conversations kept (the demo
upstream, the storage emulator): the address names the conversation, a reload and a second
browser (the same user) show it as it was, citations and tool calls included; the list beside the
transcript (a drawer on a phone) opens, renames and deletes, deleting after asking; keyboard,
screen reader (axe), both languages, dark mode; an answer still being written is followed on the
second browser."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from responses_relay.demo.answers import answer_for
from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..attachment_files import image, pdf
from ..azurite import Azurite
from ..conftest import serve
from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import ARTIFACTS, ROOT, answered, send
from .test_accessibility import serious_violations
from .test_attachments import choose, upload

EVENTS = "今週の滋賀のイベントは？"  # the demo searches the web and cites
TIME = "京都は今何時？"  # the demo calls local_time
ADDRESS = re.compile(r".*#/c/(conv_[A-Za-z0-9_-]+)$")


@pytest.fixture
def environ(azurite: Azurite) -> dict[str, str]:
    """Conversations kept: the storage emulator, and an owner secret of the test's own, so its user
    (in key mode every caller without a key is the same one) has a list of its own."""
    return {"OWNER_HASH_SECRET": secrets.token_hex(24), "AzureWebJobsStorage": azurite.connection_string}


@pytest.fixture
async def site_url(upstream: FaultyUpstream, environ: dict[str, str]) -> AsyncIterator[str]:
    service = ChatService(load_settings(environ), demo=upstream)
    async for server in serve(service, static_dir=ROOT / "static"):
        assert (await server.client.get("/api/health")).json()["conversations"] is True
        yield server.base_url


async def opened(context: BrowserContext, url: str) -> Page:
    """A page of `url` in `context` (another device of the same user), ready, its list read."""
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_selector("body[data-ready=true][data-history=on]")
    return page


def conversation_of(page: Page) -> str:
    match = ADDRESS.fullmatch(page.url)
    assert match is not None, page.url
    return match[1]


async def drawn(page: Page) -> list[dict[str, Any]]:
    """What each turn shows: who, its text, its citations' links, its calls."""
    return list(
        await page.evaluate(
            """() => [...document.querySelectorAll('#transcript .turn')].map((turn) => ({
              who: turn.classList.contains('user') ? 'user' : 'assistant',
              text: turn.querySelector('.body').innerText,
              citations: [...turn.querySelectorAll('.citation a')].map((link) => link.href),
              calls: [...turn.querySelectorAll('.call summary')].map((summary) => summary.textContent),
            }))"""
        )
    )


async def test_a_conversation_survives_a_reload_and_shows_the_same_in_a_second_browser(
    page: Page, context: BrowserContext, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, EVENTS)
    await answered(page, 1)
    conversation_id = conversation_of(page)  # the first question started it
    await send(page, TIME)
    await answered(page, 2)
    live = await drawn(page)
    entry = page.locator(".history-entry")
    await expect(entry).to_have_count(1)
    await expect(entry.locator(".history-link")).to_have_text(EVENTS)
    await expect(entry.locator(".history-link")).to_have_attribute("aria-current", "page")

    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator("#transcript .turn")).to_have_count(4)
    reloaded = await drawn(page)
    other = await opened(context, page.url)  # a link opened on another device
    await expect(other.locator("#transcript .turn")).to_have_count(4)
    elsewhere = await drawn(other)

    assert live[1]["citations"] == [
        "https://example.com/demo/shiga/events",
        "https://example.org/demo/hikone-castle/night",
    ]
    assert [call.split(" ")[0] for call in live[3]["calls"]] == ["local_time"]
    assert reloaded == live
    assert elsewhere == live
    assert conversation_of(other) == conversation_id
    await expect(other.locator(".history-link")).to_have_text([EVENTS])


async def two_conversations(page: Page, first: str, second: str) -> tuple[str, str]:
    """Ask `first`, then `second` in a new conversation; their ids."""
    ids = []
    for number, question in enumerate((first, second)):
        if number:
            await page.click("#new-chat")
        await send(page, question)
        await answered(page, 1)
        ids.append(conversation_of(page))
    return ids[0], ids[1]


async def test_back_and_forward_go_between_conversations(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0, text="はい。"))
    first, second = await two_conversations(page, "一つ目の質問", "二つ目の質問")
    await expect(page.locator(".history-link")).to_have_text(["二つ目の質問", "一つ目の質問"])  # newest first

    await page.go_back()  # the new conversation, before its first question
    await page.go_back()
    await expect(page.locator(".turn.user .body")).to_have_text(["一つ目の質問"])
    assert conversation_of(page) == first
    await page.go_forward()
    await page.go_forward()
    await expect(page.locator(".turn.user .body")).to_have_text(["二つ目の質問"])
    assert conversation_of(page) == second
    await page.click(f".history-link[data-id={first}]")
    await expect(page.locator(".turn.user .body")).to_have_text(["一つ目の質問"])
    await expect(page.locator(f".history-link[data-id={first}]")).to_have_attribute("aria-current", "page")


async def test_delete_from_the_list_asks_first_and_deletes_for_good(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0, text="はい。"))
    kept, doomed = await two_conversations(page, "残す会話", "消す会話")
    entry = page.locator(f".history-entry[data-id={doomed}]")
    await expect(entry.locator(".delete")).to_have_attribute("aria-label", "削除: 消す会話")

    await entry.locator(".delete").click()
    dialog = page.locator("#delete-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#delete-help")).to_have_text("「消す会話」を完全に削除します。元に戻せません。")
    await expect(dialog.locator(".cancel")).to_be_focused()  # the safe choice first
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(entry).to_have_count(1)

    await entry.locator(".delete").click()
    await dialog.locator(".confirm-delete").click()
    await expect(entry).to_have_count(0)
    await expect(page.locator("#announcer")).to_have_text("「消す会話」を削除しました。")
    await expect(page.locator("#transcript .turn")).to_have_count(0)  # it was open: the page starts anew
    assert page.url.endswith("#/")
    await expect(page.locator(".history-link")).to_have_text(["残す会話"])
    gone = await page.evaluate(f"async () => (await fetch('/api/conversations/{doomed}')).status")
    assert gone == 404
    await page.click(f".history-link[data-id={kept}]")
    await expect(page.locator(".turn.user .body")).to_have_text(["残す会話"])


async def test_rename_with_the_keyboard_alone_in_english(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0, text="Yes."))
    await page.select_option("#language", "en")
    await send(page, "Tell me about Nara")
    await answered(page, 1)
    rename = page.locator(".history-entry .rename")
    await expect(rename).to_have_text("Rename")
    await expect(rename).to_have_attribute("aria-label", "Rename: Tell me about Nara")
    await rename.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#rename-input")).to_be_focused()
    await expect(page.locator("#rename-input")).to_have_value("Tell me about Nara")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("Nara in spring")
    await page.keyboard.press("Enter")
    await expect(page.locator(".history-link")).to_have_text(["Nara in spring"])
    await expect(page.locator("#announcer")).to_have_text("Renamed to “Nara in spring”.")
    await expect(rename).to_be_focused()
    await page.select_option("#language", "ja")
    await expect(rename).to_have_text("名前を変更")
    await expect(rename).to_have_attribute("aria-label", "名前を変更: Nara in spring")


async def test_the_list_beside_the_transcript_and_as_a_drawer_on_a_phone(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    await page.set_viewport_size({"width": 1280, "height": 800})
    for number, question in enumerate(["滋賀県について教えてください。", "京都の日帰りプランを考えて", EVENTS]):
        if number:
            await page.click("#new-chat")
        await send(page, question)
        await answered(page, 1)
    await expect(page.locator(".history-entry")).to_have_count(3)
    await expect(page.locator("#history")).to_be_visible()
    await expect(page.locator("#history-toggle")).to_be_hidden()
    assert await serious_violations(page) == []
    ARTIFACTS.mkdir(exist_ok=True)  # the README's docs/screenshots/conversations*.png are copies
    await page.screenshot(path=ARTIFACTS / "conversations.png")

    await page.set_viewport_size({"width": 390, "height": 844})
    toggle = page.locator("#history-toggle")
    await expect(page.locator("#history")).to_be_hidden()  # a drawer, closed
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#history")).to_be_visible()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(page.locator(".history-link[aria-current=page]")).to_be_focused()
    assert await page.evaluate("() => document.querySelector('main').inert") is True  # the page behind is inert
    assert await serious_violations(page) == []
    await page.screenshot(path=ARTIFACTS / "conversations-phone.png")
    await page.keyboard.press("Escape")
    await expect(page.locator("#history")).to_be_hidden()
    await expect(toggle).to_be_focused()
    await expect(toggle).to_have_attribute("aria-expanded", "false")

    await toggle.click()
    await page.locator(".history-link").last.click()  # choosing closes the drawer
    await expect(page.locator("#history")).to_be_hidden()
    await expect(page.locator(".turn.user .body")).to_have_text(["滋賀県について教えてください。"])
    await page.emulate_media(color_scheme="dark")
    await toggle.click()
    assert await serious_violations(page) == []
    await page.screenshot(path=ARTIFACTS / "conversations-phone-dark.png")


async def test_an_answer_still_written_is_followed_in_a_second_browser(
    upstream: FaultyUpstream, context: BrowserContext, azurite: Azurite, environ: dict[str, str]
) -> None:
    upstream.set_scenario(Scenario(ending="stall", after_deltas=6, delta_seconds=0.001))
    settings = load_settings({**environ, "RESUMABLE_STREAMS": "true"})
    async for server in serve(ChatService(settings, demo=upstream), static_dir=ROOT / "static"):
        phone = await opened(context, server.base_url + "/")
        question = "滋賀県について教えてください。"
        await send(phone, question)
        whole = answer_for(question).text
        await expect(phone.locator(".turn.assistant .body")).to_have_text(whole[:12])  # six deltas, then it stalls
        laptop = await opened(context, phone.url)
        await expect(laptop.locator(".turn.user .body")).to_have_text([question])  # the question, while it is answered
        await expect(laptop.locator(".turn.assistant .body")).to_have_text(whole[:12])
        upstream.release()
        await answered(phone, 1)
        await answered(laptop, 1)
        await expect(laptop.locator(".turn.assistant .body")).to_have_text(whole.replace("**", ""))
        await expect(phone.locator(".turn.assistant .body")).to_have_text(whole.replace("**", ""))
        await laptop.reload()
        await laptop.wait_for_selector("body[data-ready=true]")
        await expect(laptop.locator(".turn")).to_have_count(2)
        await expect(laptop.locator(".turn.assistant .status")).to_be_empty()  # nothing left to follow
        await phone.close()
        await laptop.close()


async def test_a_question_with_a_photo_and_a_pdf_is_shown_with_them_again(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    await choose(
        page, upload("kyoto.jpg", "image/jpeg", image("JPEG", 320, 240)), upload("guide.pdf", "application/pdf", pdf(2))
    )
    await send(page, "これは何ですか？")
    await answered(page, 1)
    sent = await page.locator(".turn.user .thumbnails img").get_attribute("src")
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    thumbnails = page.locator(".turn.user .thumbnails li")
    await expect(thumbnails).to_have_count(2)
    await expect(page.locator(".turn.user .thumbnails img")).to_have_attribute("src", sent or "")
    await expect(page.locator(".turn.user .thumbnails img")).to_have_attribute("alt", "添付された画像")
    await expect(page.locator(".turn.user .thumbnails .pdf-name")).to_have_text("guide.pdf")
    await expect(page.locator(".turn.user .body")).to_have_text("これは何ですか？")
    assert await serious_violations(page) == []


async def test_regenerate_in_a_conversation_replaces_the_answer_for_good(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001, text="琵琶湖は日本最大の湖です。"))
    await send(page, "滋賀県について教えてください。")
    await answered(page, 1)
    await send(page, "京都は？")
    await answered(page, 2)
    conversation_id = conversation_of(page)
    answers = page.locator(".turn.assistant")
    await expect(answers.first.locator(".regenerate")).to_have_count(0)  # not the last
    old = await page.evaluate(f"async () => (await (await fetch('/api/conversations/{conversation_id}')).json())")
    upstream.set_scenario(Scenario(delta_seconds=0.001, text="金閣寺と清水寺があります。"))
    regenerate = answers.last.get_by_role("button", name="再生成")
    await regenerate.focus()
    await page.keyboard.press("Enter")  # with the keyboard alone
    await answered(page, 2)
    await expect(answers.last.locator(".body")).to_have_text("金閣寺と清水寺があります。")
    await expect(page.locator("#announcer")).to_contain_text("金閣寺と清水寺があります。")
    await expect(page.locator(".turn.user .body")).to_have_text(["滋賀県について教えてください。", "京都は？"])
    live = await drawn(page)
    await expect(answers.last.get_by_role("button", name="再生成")).to_be_visible()  # the new answer is the last
    assert await serious_violations(page) == []

    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator("#transcript .turn")).to_have_count(4)
    assert await drawn(page) == live  # the question once, and the new answer only
    kept = await page.evaluate(f"async () => (await (await fetch('/api/conversations/{conversation_id}')).json())")
    new_id, old_id = kept["messages"][-1]["response_id"], old["messages"][-1]["response_id"]
    assert new_id != old_id
    assert upstream.stored(old_id) is None  # deleted upstream
    await expect(answers.first.locator(".regenerate")).to_have_count(0)
    await answers.last.get_by_role("button", name="再生成").click()  # offered again after the reload
    await answered(page, 1)  # the answers drawn from the conversation show no metrics
    again = await page.evaluate(f"async () => (await (await fetch('/api/conversations/{conversation_id}')).json())")
    assert [message["role"] for message in again["messages"]] == ["user", "assistant"] * 2
    assert again["messages"][-1]["response_id"] not in (new_id, old_id)
    await expect(page.locator("#transcript .turn")).to_have_count(4)
