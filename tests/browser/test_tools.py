"""Tool calls on the page, in Chromium against the local host in demo mode: a call shown as it
happens (name, arguments, a spinner, then the result collapsed), an MCP approval decided with the
keyboard alone and announced, both languages, and axe-core finding nothing serious."""

from __future__ import annotations

from playwright.async_api import Page, expect

from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import ARTIFACTS, answered, send
from .test_accessibility import serious_violations

TIME = "京都は今何時？"
WEATHER = "京都の天気は？"


async def watch_call_states(page: Page) -> None:
    """Record the state a call's entry had (none, running, done, failed) before each change:
    `window.states` then lists every state it took but its last. (The value before a change, not
    the current one: two changes can reach the observer in one batch.)"""
    await page.evaluate(
        """() => {
          window.states = [];
          new MutationObserver((records) => {
            for (const record of records) {
              if (record.attributeName === 'data-state') window.states.push(record.oldValue);
            }
          }).observe(document.querySelector('#transcript'), {subtree: true, attributeOldValue: true});
        }"""
    )


async def test_a_tool_call_is_shown_as_it_happens_then_its_result_collapsed(
    page: Page, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.01))
    await watch_call_states(page)
    await send(page, TIME)
    await answered(page, 1)

    call = page.locator(".turn.assistant .call")
    await expect(call).to_have_count(1)
    assert await page.evaluate("window.states") == [None, "running"]  # the spinner, then:
    await expect(call).to_have_attribute("data-state", "done")
    await expect(call.locator("summary")).to_have_text('local_time を実行しました {"timezone":"Asia/Tokyo"}')
    await expect(call.locator("details")).not_to_have_attribute("open", "")  # the result, collapsed
    await expect(call.locator(".output")).to_be_hidden()
    await expect(page.locator(".turn.assistant .body")).to_contain_text("京都は今 ")
    await expect(page.locator(".turn.assistant .metrics")).to_contain_text("トークン")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "tool-call.png", full_page=True)
    assert await serious_violations(page) == []
    await call.locator("summary").click()
    await expect(call.locator(".output")).to_contain_text('"timezone": "Asia/Tokyo"')
    await expect(call.locator(".output")).to_contain_text('"local_time": "20')
    await page.screenshot(path=ARTIFACTS / "tool-call-open.png", full_page=True)


async def test_an_approval_is_decided_with_the_keyboard_and_announced(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, WEATHER)
    approve = page.get_by_role("button", name="承認: demo_weather の get_forecast")
    deny = page.get_by_role("button", name="拒否: demo_weather の get_forecast")
    await expect(approve).to_be_focused()  # the stream asked and ended: the decision is next
    prompt = page.get_by_role("group", name="demo_weather の get_forecast を実行してもよいですか？")
    await expect(prompt).to_be_visible()
    await expect(prompt.locator("pre")).to_have_text('{\n  "city": "Kyoto"\n}')
    await expect(page.locator(".turn.assistant .status")).to_have_text(
        "続けるには、ツールの実行を承認するか拒否してください。"
    )
    await expect(page.locator("#announcer")).to_contain_text("demo_weather の get_forecast を実行してもよいですか？")
    assert await serious_violations(page) == []
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "approval.png", full_page=True)

    await page.keyboard.press("Tab")
    await expect(deny).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Enter")  # approve
    await answered(page, 2)
    await expect(page.get_by_role("group", name="demo_weather の get_forecast を承認しました。")).to_be_visible()
    await expect(approve).to_be_disabled()
    followed = page.locator(".turn.assistant").last
    await expect(followed.locator(".call summary")).to_have_text("demo_weather の get_forecast を呼び出しました")
    await expect(followed.locator(".body")).to_contain_text("晴れ")
    assert await page.locator(".turn.user").count() == 1  # the decision is no new question
    [posted] = [record.request for record in upstream.records[1:] if record.method == "POST"]  # not the retrieve
    assert posted["input"][0]["type"] == "mcp_approval_response"
    assert posted["input"][0]["approve"] is True
    assert await serious_violations(page) == []


async def test_a_denied_approval_goes_on_without_the_call_in_english(page: Page, upstream: FaultyUpstream) -> None:
    await page.select_option("#language", "en")
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, "What's the weather in Kyoto?")
    deny = page.get_by_role("button", name="Deny: get_forecast on demo_weather")
    await expect(page.get_by_role("button", name="Approve: get_forecast on demo_weather")).to_be_focused()
    await expect(page.locator(".approval p")).to_have_text("May the model run get_forecast on demo_weather?")
    await page.keyboard.press("Tab")
    await expect(deny).to_be_focused()
    await page.keyboard.press("Space")
    await answered(page, 2)
    await expect(page.locator(".approval p")).to_have_text("You denied get_forecast on demo_weather.")
    await expect(page.locator(".turn.assistant").last.locator(".body")).to_contain_text("All right")
    assert upstream.records[-1].request["input"][0]["approve"] is False


async def test_a_new_question_expires_an_unanswered_approval(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, WEATHER)
    approve = page.get_by_role("button", name="承認: demo_weather の get_forecast")
    await expect(approve).to_be_enabled()
    await send(page, "奈良は？")
    await answered(page, 2)
    await expect(approve).to_be_disabled()
