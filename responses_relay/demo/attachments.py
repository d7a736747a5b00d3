"""The demo model's answer to photos and PDFs: what it can know offline, in the question's
language. An image is its format and pixel size (read from its header, as the relay checks
it), a PDF its page count, so the whole flow of an attachment runs without a model."""

from __future__ import annotations

import base64
import re
import zlib
from typing import Any

from ..attachments.formats import PDF, dimensions, sniff
from .answers import Answer, is_japanese

_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_STREAM = re.compile(rb"stream\r?\n")
_INFLATED_BYTES = 16 * 1024 * 1024  # at most this much of a PDF's compressed streams is looked into

_CLOSING = {
    "ja": "デモモードなので中身までは見えませんが、本物のモデルなら写っている料理や場所、看板の文字について答えます。",
    "en": "Demo mode cannot look inside it, but a real model would tell you about the dish, the place or the sign.",
}


def attachment_answer(request: dict[str, Any]) -> Answer | None:
    """The answer to the last user message's attachments, or None when it has none."""
    parts = _last_user_parts(request)
    attachments = [part for part in parts if part.get("type") in ("input_image", "input_file")]
    if not attachments:
        return None
    text = " ".join(str(part.get("text", "")) for part in parts if part.get("type") == "input_text")
    language = "ja" if is_japanese(text) else "en"
    lines = [_describe(part, language) for part in attachments]
    return Answer("\n".join([*lines, "", _CLOSING[language]]))


def _last_user_parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    value = request.get("input")
    for message in reversed(value if isinstance(value, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return [part for part in content if isinstance(part, dict)] if isinstance(content, list) else []
    return []


def _describe(part: dict[str, Any], language: str) -> str:
    url = part.get("image_url") or part.get("file_data") or ""
    data = base64.b64decode(str(url).partition(",")[2])  # the relay checked it
    form = sniff(data)
    if form == PDF:
        pages, name = page_count(data), str(part.get("filename", ""))
        if language == "ja":
            return f"{pages} ページの PDF「{name}」を受け取りました。"
        return f"I received {name}, a PDF of {pages} page{'s' if pages != 1 else ''}."
    if form is None:
        return "添付ファイルを受け取りました。" if language == "ja" else "I received an attachment."
    width, height = dimensions(form, data)
    if language == "ja":
        return f"{width}×{height} の {form.name} {'写真' if form.name == 'JPEG' else '画像'}を受け取りました。"
    return f"I received a {width}×{height} {form.name} {'photo' if form.name == 'JPEG' else 'image'}."


def page_count(pdf: bytes) -> int:
    """The pages of a PDF: its page objects, also those in compressed object streams (as far as
    `_INFLATED_BYTES` of them)."""
    pages = len(_PAGE.findall(pdf))
    if pages:
        return pages
    budget = _INFLATED_BYTES
    for found in _STREAM.finditer(pdf):
        if budget <= 0:
            break
        try:
            inflated = zlib.decompressobj().decompress(pdf[found.end() :], budget)
        except zlib.error:
            continue
        budget -= len(inflated)
        pages += len(_PAGE.findall(inflated))
    return pages
