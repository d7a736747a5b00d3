"""The attachment checker as a pure function of a part: formats and sizes from the bytes, the
order of the checks (count and size before decoding, the pixel size before the structure), and
property tests: whatever the bytes, a clear refusal or a part to send, never a crash."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from responses_relay.attachments.formats import MAX_PARTS, dimensions, sniff
from responses_relay.attachments.parts import check_attachment
from responses_relay.errors import HttpError
from responses_relay.settings import AttachmentSettings

from .attachment_files import file_part, image, image_part, pdf, png_claiming

LIMITS = AttachmentSettings(max_attachments=4, max_attachment_bytes=10 * 1024 * 1024, max_image_pixels=7680 * 4320)
WHERE = "input[0].content[1]"
CODES = {"unsupported_attachment", "bad_attachment", "attachment_too_large", "invalid_request"}


def outcome(part: dict[str, Any]) -> HttpError | None:
    """The refusal of `part`, or None when it is taken; any other exception fails the test."""
    try:
        check_attachment(part, WHERE, LIMITS)
    except HttpError as error:
        return error
    return None


def refusal(part: dict[str, Any], limits: AttachmentSettings | None = LIMITS) -> HttpError:
    with pytest.raises(HttpError) as caught:
        check_attachment(part, WHERE, limits)
    return caught.value


@pytest.mark.parametrize(
    ("data", "name", "size"),
    [
        (image("PNG", 64, 48), "PNG", (64, 48)),
        (image("JPEG", 640, 480, exif=True), "JPEG", (640, 480)),
        (image("WEBP", 33, 17), "WebP", (33, 17)),  # lossy: VP8
        (image("GIF", 5, 300), "GIF", (5, 300)),
    ],
)
def test_an_images_format_and_size_come_from_its_bytes(data: bytes, name: str, size: tuple[int, int]) -> None:
    form = sniff(data)
    assert form is not None
    assert form.name == name
    assert dimensions(form, data) == size


def test_lossless_and_extended_webp_give_their_size() -> None:
    lossless, animated = io.BytesIO(), io.BytesIO()
    Image.new("RGBA", (70, 30)).save(lossless, format="WEBP", lossless=True)
    frames = [Image.new("RGB", (40, 20), color) for color in ("red", "blue")]
    frames[0].save(animated, format="WEBP", save_all=True, append_images=frames[1:])
    for data in (lossless.getvalue(), animated.getvalue()):
        checked = check_attachment(image_part(data, "image/webp"), WHERE, LIMITS)
        assert checked["image_url"].startswith("data:image/webp;base64,")
    assert dimensions(sniff(lossless.getvalue()), lossless.getvalue()) == (70, 30)  # type: ignore[arg-type]
    assert dimensions(sniff(animated.getvalue()), animated.getvalue()) == (40, 20)  # type: ignore[arg-type]


def test_a_png_declared_as_jpeg_is_sent_as_the_png_it_is() -> None:
    data = image("PNG")
    checked = check_attachment(image_part(data, "image/jpeg", detail="low"), WHERE, LIMITS)
    payload = base64.b64encode(data).decode()
    assert checked == {"type": "input_image", "image_url": f"data:image/png;base64,{payload}", "detail": "low"}


def test_detail_is_auto_when_left_out_and_a_pdf_keeps_its_filename() -> None:
    assert check_attachment(image_part(image("GIF")), WHERE, LIMITS)["detail"] == "auto"
    checked = check_attachment(file_part(pdf(2), "旅のしおり.pdf", "application/octet-stream"), WHERE, LIMITS)
    assert checked["filename"] == "旅のしおり.pdf"
    assert checked["file_data"].startswith("data:application/pdf;base64,JVBERi")


def test_a_bomb_is_refused_from_its_header_before_its_structure_is_read() -> None:
    bomb = png_claiming(16_000, 16_000)  # 256 megapixels in 60 bytes
    broken_bomb = bomb[:-12]  # no IEND either: the pixel size is what it is refused for
    for data in (bomb, broken_bomb):
        error = refusal(image_part(data))
        assert (error.status, error.code) == (400, "bad_attachment")
        assert "16000×16000 px" in error.message
        assert "MAX_IMAGE_PIXELS" in error.message


def test_the_size_is_checked_before_the_base64_is_decoded() -> None:
    small = AttachmentSettings(max_attachments=4, max_attachment_bytes=1024, max_image_pixels=LIMITS.max_image_pixels)
    not_base64 = {"type": "input_image", "image_url": "data:image/png;base64," + "*" * 1400}
    assert refusal(not_base64, small).code == "attachment_too_large"
    exactly = check_attachment(image_part(image("PNG", 4, 4)), WHERE, small)  # well under: taken
    assert exactly["type"] == "input_image"


def test_pixels_over_the_limit_are_refused() -> None:
    few = AttachmentSettings(max_attachments=4, max_attachment_bytes=1024 * 1024, max_image_pixels=1000)
    assert check_attachment(image_part(image("PNG", 40, 25)), WHERE, few)["type"] == "input_image"
    error = refusal(image_part(image("PNG", 40, 26)), few)
    assert (error.code, error.param) == ("bad_attachment", WHERE)
    assert "MAX_IMAGE_PIXELS" in error.message


@pytest.mark.parametrize(
    ("part", "code", "says"),
    [
        ({"type": "input_image", "image_url": "https://example.com/a.png"}, "unsupported_attachment", "data: URLs"),
        ({"type": "input_image", "file_id": "file_1"}, "unsupported_attachment", "data: URLs"),
        ({"type": "input_file", "filename": "a.pdf", "file_url": "https://x/a.pdf"}, "unsupported_attachment", "data"),
        (image_part(pdf()), "unsupported_attachment", "is a PDF: send it as an input_file"),
        (file_part(image("JPEG"), "a.jpg"), "unsupported_attachment", "(a.jpg) is a JPEG image"),
        (image_part(b"just some text, named photo.png"), "unsupported_attachment", "not a PNG, JPEG, WebP, GIF or PDF"),
        ({"type": "input_image", "image_url": "data:image/png;base64,iVBOR!!"}, "bad_attachment", "not valid base64"),
        ({"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo"}, "bad_attachment", "base64"),
        ({"type": "input_image", "image_url": "data:image/png,rawbytes"}, "bad_attachment", "not a base64 data: URL"),
        ({"type": "input_image", "image_url": "data:image/png;base64,"}, "bad_attachment", "is empty"),
        (image_part(png_claiming(1, 100_000)), "bad_attachment", "at most 16384 px"),
        (image_part(png_claiming(0, 10)), "bad_attachment", "no pixels"),
        (image_part(image("PNG"), detail="ultra"), "invalid_request", "auto, low or high"),
        (image_part(image("PNG"), name="x"), "invalid_request", "Unknown field 'name'"),
        ({"type": "input_image", "image_url": 5}, "invalid_request", "data: URL string"),
        ({"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0="}, "invalid_request", "filename"),
        (file_part(pdf(), "a\nb.pdf"), "invalid_request", "printable"),
        (file_part(pdf()[:-40], "menu.pdf"), "bad_attachment", "(menu.pdf) is not a whole PDF file"),
    ],
)
def test_refusals_name_the_part(part: dict[str, Any], code: str, says: str) -> None:
    error = refusal(part)
    assert error.code == code
    assert says in error.message
    assert error.param is not None
    assert error.param.startswith(WHERE)


def test_attachments_off_refuses_every_one() -> None:
    error = refusal(image_part(image("PNG")), None)
    assert (error.status, error.code) == (415, "unsupported_attachment")
    assert "ATTACHMENTS=off" in error.message


WHOLE = {
    "PNG": image("PNG", 30, 20),
    "JPEG": image("JPEG", 30, 20, exif=True),
    "WEBP": image("WEBP", 30, 20),
    "GIF": image("GIF", 30, 20),
    "PDF": pdf(2),
}


def _part(kind: str, data: bytes) -> dict[str, Any]:
    return file_part(data) if kind == "PDF" else image_part(data)


@pytest.mark.parametrize("kind", WHOLE)
def test_each_whole_file_is_taken(kind: str) -> None:
    assert check_attachment(_part(kind, WHOLE[kind]), WHERE, LIMITS)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(WHOLE)), cut=st.floats(0, 1, exclude_max=True))
def test_a_file_cut_short_is_refused(kind: str, cut: float) -> None:
    whole = WHOLE[kind]
    data = whole[: int(cut * (len(whole) - 8))]  # a PDF's last line after %%EOF may go
    with pytest.raises(HttpError) as caught:
        check_attachment(_part(kind, data), WHERE, LIMITS)
    assert caught.value.code in {"bad_attachment", "unsupported_attachment"}


@settings(max_examples=500, deadline=None)
@given(
    kind=st.sampled_from(sorted(WHOLE)),
    start=st.integers(0, 64),
    junk=st.binary(max_size=64),
    keep=st.integers(0, 400),
)
def test_any_damage_gets_a_clear_refusal_or_a_whole_file(kind: str, start: int, junk: bytes, keep: int) -> None:
    """Bytes of a real file overwritten and cut anywhere: either still a whole file, or a refusal
    with one of the catalogue's codes; never another exception."""
    whole = WHOLE[kind]
    data = (whole[:start] + junk + whole[start + len(junk) :])[: len(whole) - keep]
    error = outcome(_part(kind, data))
    assert error is None or (error.code in CODES and WHERE in error.message)


@settings(max_examples=300, deadline=None)
@given(url=st.text(max_size=200))
def test_any_string_as_a_url_gets_a_clear_answer(url: str) -> None:
    error = outcome({"type": "input_image", "image_url": url})
    assert error is None or error.code in CODES


def test_a_file_of_countless_tiny_pieces_is_refused_after_a_bounded_walk() -> None:
    """Crafted to cost seconds of CPU in a walk of its structure (a chunk, segment or block every few
    bytes): refused once the walk has read MAX_PARTS of them."""
    bomb = png_claiming(10, 10)
    empty_chunk = struct.pack(">I", 0) + b"tEXt" + struct.pack(">I", zlib.crc32(b"tEXt"))
    pieces = {
        "chunks": image_part(bomb[:-12] + empty_chunk * (MAX_PARTS + 1) + bomb[-12:]),
        "segments": image_part(b"\xff\xd8" + b"\xff\xe0\x00\x02" * (MAX_PARTS + 1) + b"\xff\xd9"),
        "blocks": image_part(
            b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0) + b"\x21\xfe\x01x\x00" * MAX_PARTS + b"\x3b"
        ),
    }
    for what, part in pieces.items():
        error = refusal(part)
        assert error.code == "bad_attachment"
        assert f"more than {MAX_PARTS} {what}" in error.message
