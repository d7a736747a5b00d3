"""Photos and PDFs in POST /api/chat, over real sockets: what is taken (and exactly what reaches
the upstream, seen by the scripted upstream), what is refused with which code, before anything
is sent upstream, and the limits (too many, too big, a Content-Length over MAX_BODY_BYTES)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .attachment_files import asking, file_part, image, image_part, pdf, png_claiming
from .conftest import RelayServer, serve
from .faulty_upstream import FaultyUpstream
from .scripted_upstream import ScriptedUpstream, Text, reply
from .sse_client import chat, status_line
from .test_tool_calls import relay_to

JSON = {"content-type": "application/json"}
WHERE = "input[0].content[1]"


@pytest.mark.parametrize(
    ("part", "sent"),
    [
        (image_part(image("PNG"), detail="high"), {"image_url": "data:image/png", "detail": "high"}),
        (image_part(image("JPEG", exif=True), "image/jpeg"), {"image_url": "data:image/jpeg", "detail": "auto"}),
        (image_part(image("WEBP"), "image/webp"), {"image_url": "data:image/webp", "detail": "auto"}),
        (image_part(image("GIF"), "image/gif", detail="low"), {"image_url": "data:image/gif", "detail": "low"}),
        # Taken by its bytes, and sent as what it is:
        (image_part(image("PNG"), "image/jpeg"), {"image_url": "data:image/png", "detail": "auto"}),
        (file_part(pdf(3), "旅のしおり.pdf"), {"filename": "旅のしおり.pdf", "file_data": "data:application/pdf"}),
    ],
)
async def test_each_kind_reaches_the_upstream_as_its_bytes_say(
    scripted: ScriptedUpstream, part: dict[str, Any], sent: dict[str, str]
) -> None:
    scripted.script(reply(Text("It is a test picture.")))
    async with relay_to(scripted) as relay:
        received = await chat(relay.client, asking(part))
    assert received.status == 200
    assert received.text == "It is a test picture."
    [message] = scripted.requests[0]["input"]
    assert message["role"] == "user"
    text, attachment = message["content"]
    assert text == {"type": "input_text", "text": "これは何ですか？"}
    assert attachment["type"] == part["type"]
    assert set(attachment) == {"type", *sent}
    data = part.get("image_url") or part["file_data"]
    for name, prefix in sent.items():
        assert attachment[name].startswith(prefix)
    if "image_url" in sent or "file_data" in sent:
        url = attachment.get("image_url") or attachment["file_data"]
        assert url.split(";base64,")[1] == data.split(";base64,")[1]  # the bytes, untouched


async def test_a_message_of_attachments_alone_and_a_history_with_them(scripted: ScriptedUpstream) -> None:
    photo = image_part(image("JPEG"), "image/jpeg")
    body = {
        "input": [
            {"role": "user", "content": [photo]},
            {"role": "assistant", "content": "A photo of a test pattern."},
            {"role": "user", "content": [{"type": "input_text", "text": "And this?"}, file_part(pdf())]},
        ]
    }
    scripted.script(reply(Text("A PDF.")))
    async with relay_to(scripted) as relay:
        received = await chat(relay.client, body)
    assert received.status == 200
    first, answer, last = scripted.requests[0]["input"]
    assert first["content"] == [{**photo, "detail": "auto"}]
    assert answer == {"role": "assistant", "content": "A photo of a test pattern."}
    assert [part["type"] for part in last["content"]] == ["input_text", "input_file"]


REFUSED = [
    ("a text file named .png", image_part(b"Not a picture at all.\n"), 415, "unsupported_attachment"),
    ("broken base64", {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0K%%%"}, 400, "bad_attachment"),
    ("zero bytes", {"type": "input_image", "image_url": "data:image/jpeg;base64,"}, 400, "bad_attachment"),
    ("a 1×100,000 image", image_part(png_claiming(1, 100_000)), 400, "bad_attachment"),
    ("a decompression bomb", image_part(png_claiming(16_000, 16_000)), 400, "bad_attachment"),
    ("a cut PDF", file_part(pdf(2)[:-64], "menu.pdf"), 400, "bad_attachment"),
    (
        "a remote URL",
        {"type": "input_image", "image_url": "https://example.com/sign.jpg"},
        415,
        "unsupported_attachment",
    ),
    ("a PDF as an image", image_part(pdf(), "application/pdf"), 415, "unsupported_attachment"),
]


@pytest.mark.parametrize(("part", "status", "code"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
async def test_bad_attachments_are_refused_before_anything_goes_upstream(
    relay: RelayServer, upstream: FaultyUpstream, part: dict[str, Any], status: int, code: str
) -> None:
    response = await relay.client.post("/api/chat", json=asking(part))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"].startswith(WHERE)
    assert WHERE in error["message"]
    if part["type"] == "input_file":
        assert "(menu.pdf)" in error["message"]
    assert upstream.records == []


async def test_too_many_attachments_are_refused_before_any_is_decoded(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    broken = {"type": "input_image", "image_url": "data:image/png;base64,%%%"}
    response = await relay.client.post("/api/chat", json=asking(*[broken] * 5))
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("attachment_too_large", "input[0].content")
    assert "at most 4" in error["message"]
    assert upstream.records == []


@pytest.fixture
async def small_attachments(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> AsyncIterator[RelayServer]:
    async for server in serve(ChatService(make_settings(MAX_ATTACHMENT_BYTES="4096", MAX_ATTACHMENTS="2"))):
        yield server


async def test_an_attachment_over_its_limit_is_413_and_the_body_limit_grew_to_fit_them(
    small_attachments: RelayServer, upstream: FaultyUpstream
) -> None:
    big = image("JPEG", 600, 600)
    assert len(big) > 4096
    response = await small_attachments.client.post("/api/chat", json=asking(image_part(big)))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "attachment_too_large"
    limits = (await small_attachments.client.get("/api/health")).json()["limits"]
    assert limits["max_body_bytes"] == 256 * 1024 + 2 * (4 * -(-4096 // 3) + 64)
    assert (limits["max_attachments"], limits["max_attachment_bytes"]) == (2, 4096)
    assert upstream.records == []


async def test_a_content_length_over_the_limit_is_answered_before_the_body_is_sent(relay: RelayServer) -> None:
    limit = (await relay.client.get("/api/health")).json()["limits"]["max_body_bytes"]
    head = f"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {limit + 1}"
    assert (await status_line(relay.base_url, head.encode() + b"\r\n\r\n")).startswith(b"HTTP/1.1 413")  # no body sent


async def test_attachments_off_refuses_them_and_says_so_in_health(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    async for server in serve(ChatService(make_settings(ATTACHMENTS="off"))):
        response = await server.client.post("/api/chat", json=asking(image_part(image("PNG"))))
        limits = (await server.client.get("/api/health")).json()["limits"]
        text_only = await chat(server.client, asking(text="滋賀県について"))
    assert response.status_code == 415
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_attachment", "input[0].content")
    assert "ATTACHMENTS=off" in error["message"]
    assert limits["max_attachments"] == 0
    assert limits["max_body_bytes"] == 256 * 1024
    assert text_only.status == 200  # content parts of text alone are still taken
    assert len(upstream.records) == 1


@pytest.mark.parametrize(
    ("content", "param", "says"),
    [
        ([], "input[0].content", "empty"),
        (["hi"], "input[0].content[0]", "object"),
        ([{"type": "input_audio", "data": "x"}], "input[0].content[0].type", "input_text, input_image or input_file"),
        ([{"type": "input_text", "text": " "}], "input[0].content[0].text", "empty"),
        ([{"type": "input_text", "text": "x", "lang": "ja"}], "input[0].content[0].lang", "lang"),
    ],
)
async def test_malformed_parts_are_invalid_requests_naming_the_field(
    relay: RelayServer, content: list[Any], param: str, says: str
) -> None:
    response = await relay.client.post("/api/chat", json={"input": [{"role": "user", "content": content}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert says in error["message"]


async def test_an_assistant_message_stays_text(relay: RelayServer) -> None:
    parts = [{"type": "input_text", "text": "x"}]
    body = {"input": [{"role": "assistant", "content": parts}, {"role": "user", "content": "y"}]}
    response = await relay.client.post("/api/chat", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input[0].content"


async def test_texts_of_a_message_count_together(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    async for server in serve(ChatService(make_settings(MAX_MESSAGE_CHARS="10"))):
        parts = [{"type": "input_text", "text": "123456"}, {"type": "input_text", "text": "78901"}]
        response = await server.client.post("/api/chat", json={"input": [{"role": "user", "content": parts}]})
    assert response.status_code == 400
    assert "11 characters" in response.json()["error"]["message"]
