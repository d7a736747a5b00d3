"""Photos and PDFs on the page, and the actions on an answer, in Chromium against the local host in
demo mode (with the storage emulator, so feedback is kept): attach by button, paste and drop; a
4000×3000 photo arrives scaled, without its EXIF; remove before sending; limits refused before
sending; Regenerate, Copy, feedback sent once; axe."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.data.tables.aio import TableClient
from PIL import Image, ImageDraw
from playwright.async_api import BrowserContext, FilePayload, Page, Request, expect

from responses_relay.demo.answers import answer_for
from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..attachment_files import GPS_IFD, image, pdf
from ..azurite import Azurite
from ..conftest import OWNER_SECRET, RelayServer, serve
from ..faulty_upstream import FaultyUpstream, Scenario
from .conftest import ARTIFACTS, ROOT, answered, send
from .test_accessibility import serious_violations

SHIGA = "滋賀県について教えてください。"


@pytest.fixture
async def site(upstream: FaultyUpstream, azurite: Azurite) -> AsyncIterator[RelayServer]:
    """Demo mode with owners and a storage account: feedback is kept. Conversations are not (they
    would be, by default), so that questions continue with previous_response_id, and Regenerate asks
    again from the response before the last (in a conversation: tests/browser/test_history.py)."""
    environ = {"AzureWebJobsStorage": azurite.connection_string, "OWNER_HASH_SECRET": OWNER_SECRET}
    settings = load_settings({**environ, "CONVERSATIONS": "off"})
    async for server in serve(ChatService(settings, demo=upstream), static_dir=ROOT / "static"):
        yield server


def photo(width: int, height: int) -> bytes:
    """A camera's JPEG: a lake under the sky and a red gate, with EXIF naming the camera and where it was taken."""
    picture = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(picture)
    for y in range(height):
        shade = int(200 * y / height)
        sky, lake = (120 + shade // 4, 180 + shade // 5, 240), (40, 90 + shade // 4, 140)
        draw.line([(0, y), (width, y)], fill=sky if y < height * 0.6 else lake)
    pillar, top = width // 20, int(height * 0.25)
    left, right = int(width * 0.35), int(width * 0.65)
    red = (200, 40, 30)
    draw.rectangle([left - pillar, top - pillar, right + pillar, top], fill=red)
    draw.rectangle([left, top + pillar, right, top + pillar * 3 // 2], fill=red)
    for x in (left, right - pillar):
        draw.rectangle([x, top, x + pillar, int(height * 0.8)], fill=red)
    tags = Image.Exif()
    tags[0x010F] = "TestCamera"
    tags[GPS_IFD] = {1: "N", 2: (35.0, 0.0, 36.0), 3: "E", 4: (135.0, 45.0, 0.0)}
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=92, exif=tags.tobytes())
    return buffer.getvalue()


async def choose(page: Page, *files: FilePayload) -> None:
    """Attach `files` with the attach button's file picker."""
    async with page.expect_file_chooser() as chosen:
        await page.click("#attach")
    await (await chosen.value).set_files(list(files))


def upload(name: str, mime_type: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": mime_type, "buffer": data}


async def give(page: Page, how: str, name: str, mime_type: str, data: bytes) -> None:
    """Paste `data` into the text box, or drop it onto the composer, as a file."""
    await page.evaluate(
        """([how, name, type, bytes]) => {
          const data = new DataTransfer();
          data.items.add(new File([Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0))], name, {type}));
          if (how === 'paste') {
            const event = new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true});
            document.querySelector('#question').dispatchEvent(event);
            return;
          }
          const form = document.querySelector('#ask');
          for (const kind of ['dragenter', 'dragover', 'drop']) {
            form.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
          }
        }""",
        [how, name, mime_type, base64.b64encode(data).decode()],
    )


def sent_parts(upstream: FaultyUpstream) -> list[dict[str, Any]]:
    """The content parts of the last question the upstream received."""
    content: list[dict[str, Any]] = upstream.records[-1].request["input"][-1]["content"]
    return content


def created(upstream: FaultyUpstream) -> list[dict[str, Any]]:
    """The requests that created a response (not the owner checks' retrievals)."""
    return [record.request for record in upstream.records if record.method == "POST"]


def decoded(url: str) -> bytes:
    return base64.b64decode(url.partition(",")[2])


async def test_attach_by_button_paste_and_drop_then_ask(page: Page, upstream: FaultyUpstream) -> None:
    await choose(page, upload("kyoto.jpg", "image/jpeg", image("JPEG", 640, 480)))
    await give(page, "paste", "menu.png", "image/png", image("PNG", 300, 200))
    await give(page, "drop", "guide.pdf", "application/pdf", pdf(3))
    composer = page.locator("#attachments")
    await expect(composer.locator("li")).to_have_count(3)
    await expect(composer.locator("img")).to_have_count(2)
    await expect(composer.locator(".pdf-name")).to_have_text("guide.pdf")
    await expect(page.locator("#announcer")).to_have_text("guide.pdf を添付しました。")
    await send(page, "これは何ですか？")
    await answered(page, 1)

    assert [part["type"] for part in sent_parts(upstream)] == ["input_text", "input_image", "input_image", "input_file"]
    answer = page.locator(".turn.assistant .body")
    await expect(answer).to_contain_text("640×480 の JPEG 写真を受け取りました。")
    await expect(answer).to_contain_text("300×200 の PNG 画像を受け取りました。")
    await expect(answer).to_contain_text("3 ページの PDF「guide.pdf」を受け取りました。")
    await expect(page.locator(".turn.user .thumbnails li")).to_have_count(3)
    await expect(composer).to_be_hidden()  # the composer is empty again


async def test_a_4000_by_3000_photo_arrives_scaled_without_its_exif(page: Page, upstream: FaultyUpstream) -> None:
    original = photo(4000, 3000)
    assert b"TestCamera" in original
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the GPS position is there
    await choose(page, upload("biwako.jpg", "image/jpeg", original))
    await expect(page.locator("#attachments img")).to_have_count(1)
    await send(page, "この場所はどこですか？")
    await answered(page, 1)

    [_, sent] = sent_parts(upstream)
    data = decoded(sent["image_url"])
    received = Image.open(io.BytesIO(data))
    assert (received.format, received.size) == ("JPEG", (1568, 1176))
    assert not received.getexif()
    assert b"Exif" not in data
    assert b"TestCamera" not in data
    await expect(page.locator(".turn.assistant .body")).to_contain_text("1568×1176 の JPEG 写真を受け取りました。")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "attachment.png")


async def test_remove_before_sending_with_the_keyboard(page: Page, upstream: FaultyUpstream) -> None:
    await choose(
        page,
        upload("first.png", "image/png", image("PNG", 40, 30)),
        upload("second.gif", "image/gif", image("GIF", 50, 20)),
    )
    await expect(page.locator("#attachments li")).to_have_count(2)
    await page.focus("#attachments .remove")
    await page.keyboard.press("Enter")
    await expect(page.locator("#attachments li")).to_have_count(1)
    await expect(page.locator("#announcer")).to_have_text("first.png を削除しました。")
    await expect(page.get_by_role("button", name="添付を削除: second.gif")).to_be_focused()
    await send(page, "これは？")
    await answered(page, 1)
    [_, sent] = sent_parts(upstream)
    assert Image.open(io.BytesIO(decoded(sent["image_url"]))).size == (50, 20)  # a GIF, sent as a PNG frame


async def test_limits_and_kinds_are_refused_before_sending(page: Page, upstream: FaultyUpstream) -> None:
    await choose(page, upload("notes.txt", "text/plain", b"just text"))
    await expect(page.locator("#alert")).to_have_text(
        "notes.txt は添付できません。PNG・JPEG・WebP・GIF の画像と PDF を添付できます。"
    )
    await choose(page, upload("fake.png", "image/png", b"not a picture"))
    await expect(page.locator("#alert")).to_contain_text("fake.png を読み込めませんでした。")
    files = [upload(f"{number}.png", "image/png", image("PNG", 20, 20)) for number in range(5)]
    await choose(page, *files)
    await expect(page.locator("#alert")).to_have_text("添付できるのは 1 つの質問に 4 個までです。")
    await expect(page.locator("#attachments li")).to_have_count(4)
    assert upstream.records == []


async def test_regenerate_replaces_the_last_answer_from_the_same_context(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, SHIGA)
    await answered(page, 1)
    await send(page, "京都について教えてください。")
    await answered(page, 2)
    await expect(page.locator(".turn.assistant").first.locator(".regenerate")).to_have_count(0)  # not the last
    asked = created(upstream)[-1]
    await page.locator(".turn.assistant").last.locator(".regenerate").click()
    await expect(page.locator(".turn.assistant")).to_have_count(2)
    await page.wait_for_function(
        "() => document.body.dataset.busy === 'false'"
        " && document.querySelectorAll('.turn.assistant .metrics:not(:empty)').length === 2"
    )
    *_, again = created(upstream)
    assert len(created(upstream)) == 3
    assert again["input"] == asked["input"]
    assert again["previous_response_id"] == asked["previous_response_id"]  # the same context: the first answer
    assert asked["previous_response_id"] is not None
    await expect(page.locator(".turn.user")).to_have_count(2)
    await expect(page.locator(".turn.assistant").last.locator(".body")).to_have_text(
        answer_for("京都").text.replace("**", "")
    )


async def test_copy_puts_the_answers_markdown_on_the_clipboard(
    context: BrowserContext, page: Page, upstream: FaultyUpstream
) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await send(page, SHIGA)
    await answered(page, 1)
    await page.locator(".turn.assistant .copy").click()
    await expect(page.locator("#announcer")).to_have_text("回答をコピーしました。")
    assert await page.evaluate("() => navigator.clipboard.readText()") == answer_for("滋賀").text  # with its **


async def test_feedback_is_sent_once_with_its_comment(page: Page, upstream: FaultyUpstream, azurite: Azurite) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    posted: list[Request] = []
    page.on("request", lambda request: posted.append(request) if request.url.endswith("/api/feedback") else None)
    await send(page, SHIGA)
    await answered(page, 1)
    helpful = page.get_by_role("button", name="役に立った")
    await helpful.click()
    await expect(helpful).to_have_attribute("aria-pressed", "true")
    comment = page.get_by_label("コメント（任意、1000 文字まで）")
    await expect(comment).to_be_focused()
    await comment.fill("琵琶湖の説明が分かりやすかった")
    await page.get_by_role("button", name="フィードバックを送信").dblclick()  # an impatient user
    await expect(page.locator(".turn.assistant .feedback-sent")).to_have_text(
        "フィードバックを送信しました。ありがとうございます。"
    )
    await expect(helpful).to_be_disabled()
    await expect(page.get_by_role("button", name="役に立たなかった")).to_be_disabled()
    assert len(posted) == 1
    vote: dict[str, Any] = posted[0].post_data_json or {}
    assert (vote["rating"], vote["comment"]) == ("up", "琵琶湖の説明が分かりやすかった")
    async with TableClient.from_connection_string(azurite.connection_string, "feedback") as table:
        rows = [row async for row in table.query_entities(f"RowKey eq '{vote['response_id']}'")]
    assert [(row["rating"], row["comment_chars"]) for row in rows] == [("up", 15)]


async def test_axe_with_attachments_and_answer_actions(page: Page, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await choose(
        page, upload("kyoto.jpg", "image/jpeg", image("JPEG", 64, 48)), upload("guide.pdf", "application/pdf", pdf())
    )
    await expect(page.locator("#attachments li")).to_have_count(2)
    assert await serious_violations(page) == []  # thumbnails in the composer
    await send(page, "これは何ですか？")
    await answered(page, 1)
    await page.get_by_role("button", name="役に立たなかった").click()
    assert await serious_violations(page) == []  # thumbnails in the question, actions and the comment form
    await page.select_option("#language", "en")
    await expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
    await expect(page.get_by_label("Comment (optional, at most 1000 characters)")).to_be_visible()
