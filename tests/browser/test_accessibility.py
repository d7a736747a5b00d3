"""The page with a screen reader and a keyboard: a busy answer announced once, whole; errors in an
alert outside the transcript; focus on Stop while an answer streams; axe-core finds nothing serious."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from responses_relay.demo.answers import answer_for

from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import DONE, answered, send

# axe-core, vendored for the tests only (tests/browser/vendor/VENDOR.json pins it).
AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
PLAN = "京都の日帰りプランを考えて"  # the demo thinks first
EVENTS = "今週の滋賀のイベントは？"  # the demo searches the web and cites


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings for the page as it is now."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE)  # through DevTools, so the page's CSP does not apply
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document)).violations
            .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
            .map((violation) => ({id: violation.id, nodes: violation.nodes.map((node) => node.target.join(' '))}))"""
    )
    return found


async def test_an_answer_is_busy_while_written_then_announced_once_whole(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(ending="stall", after_deltas=6, delta_seconds=0.001))
    await page.evaluate(
        """() => {
          window.announced = [];  // each thing put into the status region
          new MutationObserver((records) => {
            for (const record of records) {
              for (const node of record.addedNodes) window.announced.push(node.textContent);
              if (record.type === 'characterData') window.announced.push(record.target.data);
            }
          }).observe(document.querySelector('#announcer'), {childList: true, subtree: true, characterData: true});
        }"""
    )
    await send(page, "滋賀県について教えてください。")
    answer = page.locator(".turn.assistant")
    await expect(answer.locator(".body")).to_have_text(answer_for("滋賀県").text[:12])  # six deltas in
    await expect(answer).to_have_attribute("aria-busy", "true")
    await expect(page.locator("#stop")).to_be_focused()
    assert await page.evaluate("window.announced") == []
    assert await page.locator("#transcript").get_attribute("aria-live") is None  # no flood while it grows

    upstream.release()
    await page.wait_for_selector(DONE)
    assert await answer.get_attribute("aria-busy") is None
    assert await page.evaluate("window.announced") == [answer_for("滋賀県").text.replace("**", "")]
    await expect(page.locator("#announcer")).to_have_attribute("role", "status")
    await expect(page.locator("#alert")).to_be_empty()
    await expect(page.locator("#question")).to_be_focused()  # sent from the text box, on a wide screen


async def test_axe_finds_no_serious_or_critical_violations(page: Page, upstream: FaultyUpstream) -> None:
    assert await serious_violations(page) == []  # on load
    upstream.set_scenario(Scenario(ending="stall", after_deltas=2, delta_seconds=0.001))
    await send(page, PLAN)
    await expect(page.locator(".turn.assistant .body")).not_to_be_empty()
    assert await serious_violations(page) == []  # while an answer streams, its thinking block open
    upstream.release()
    await page.wait_for_selector(DONE)
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, EVENTS)
    await answered(page, 2)
    assert await serious_violations(page) == []  # answers, citations, metrics
    upstream.set_scenario(Scenario(status=429, retry_after="30"))
    await send(page, "奈良は？")
    await expect(page.locator(".turn.assistant .retry")).to_be_disabled()
    assert await serious_violations(page) == []  # an error, Retry counting down
    await page.emulate_media(color_scheme="dark")
    await page.set_viewport_size({"width": 390, "height": 760})
    assert await serious_violations(page) == []  # the phone layout, dark
    await expect(page.locator("body")).to_match_aria_snapshot(
        """
        - banner:
          - heading "観光ガイド チャット" [level=1]
          - combobox "言語"
          - button "新しい会話"
        - status: "デモモード: 本物のモデルではなく、組み込みのデモ応答を表示しています。"
        - main:
          - region "会話":
            - article:
              - heading "あなた" [level=2]
            - article:
              - heading "ガイド" [level=2]
              - group: 思考の要約
        - alert:
          - paragraph: /rate_limited/
        - form "質問する":
          - textbox "質問"
          - button "送信"
        """
    )


async def test_a_conversation_by_keyboard_alone(page: Page, upstream: FaultyUpstream) -> None:
    for _ in range(10):  # Tab from the top of the page to the text box
        if await page.evaluate("document.activeElement.id") == "question":
            break
        await page.keyboard.press("Tab")
    await expect(page.locator("#question")).to_be_focused()

    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await page.keyboard.type("滋賀県について教えてください。")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(DONE)
    await expect(page.locator("#question")).to_be_focused()

    upstream.set_scenario(Scenario(ending="stall", after_deltas=3, delta_seconds=0.001))
    await page.keyboard.type("京都は？")
    await page.keyboard.press("Enter")
    await expect(page.locator("#stop")).to_be_focused()
    await expect(page.locator(".turn.assistant .body").nth(1)).not_to_be_empty()
    await page.keyboard.press("Enter")  # Stop
    await expect(page.locator(".turn.assistant .status").nth(1)).to_have_text("停止しました。")
    await expect(page.locator("#question")).to_be_focused()

    upstream.set_scenario(Scenario(status=500))
    await page.keyboard.type("奈良は？")
    await page.keyboard.press("Enter")
    await expect(page.locator("#alert")).to_contain_text("upstream_error")
    await expect(page.locator("#question")).to_be_focused()
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await page.keyboard.press("Shift+Tab")  # back to the failed turn's Retry
    await expect(page.locator(".turn.assistant .retry")).to_be_focused()
    await page.keyboard.press("Enter")
    await answered(page, 2)
    await expect(page.locator(".turn.assistant .body").last).to_have_text(answer_for("奈良").text.replace("**", ""))
    await expect(page.locator("#question")).to_be_focused()


async def test_on_a_phone_a_tap_on_send_leaves_the_keyboard_closed(page: Page, upstream: FaultyUpstream) -> None:
    await page.set_viewport_size({"width": 390, "height": 760})
    upstream.set_scenario(Scenario(ending="stall", after_deltas=3, delta_seconds=0.001))
    await page.fill("#question", "滋賀県について教えてください。")
    await page.click("#send")
    await expect(page.locator("#stop")).to_be_focused()  # focus never falls to <body> as Send hides
    upstream.release()
    await page.wait_for_selector(DONE)
    await expect(page.locator("#send")).to_be_focused()  # not the text box: no keyboard popping up

    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, "京都は？")  # typed, sent with Enter: the user is typing
    await answered(page, 2)
    await expect(page.locator("#question")).to_be_focused()

    upstream.set_scenario(Scenario(ending="stall", after_deltas=3, delta_seconds=0.001))
    await page.fill("#question", "奈良は？")
    await page.click("#send")
    await expect(page.locator("#stop")).to_be_focused()
    await page.click("#question")  # the user starts on the next question while the answer streams
    await page.keyboard.type("次は")
    upstream.release()
    await answered(page, 3)
    await expect(page.locator("#question")).to_be_focused()  # left where the user put it
    assert await page.input_value("#question") == "次は"
