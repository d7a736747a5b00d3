"""A message's attachments as Responses content parts, checked by their bytes before anything
goes upstream: `input_image` (`image_url`) and `input_file` (`filename`, `file_data`), each a
base64 `data:` URL.

The bytes decide, not the declared type: an image must be a whole PNG, JPEG, WebP or GIF of at
most MAX_IMAGE_PIXELS (read from its header, before anything else is looked at), a file a whole
PDF; a PNG declared as JPEG is taken as the PNG it is, and sent upstream labelled so. Only
`data:` URLs are taken, so nobody can make the model service fetch an address through the
relay. Every refusal names the part (`input[0].content[1]`) and, for a file, its filename.

Callable on any parsed part, so every protocol's request decoder maps its own attachments
onto these parts and these checks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ..errors import ATTACHMENT_TOO_LARGE, BAD_ATTACHMENT, INVALID_REQUEST, UNSUPPORTED_ATTACHMENT, ErrorCode, HttpError
from ..settings import AttachmentSettings
from .formats import Format, Malformed, dimensions, sniff, verify

ATTACHMENT_TYPES = ("input_image", "input_file")
DETAILS = ("auto", "low", "high")
MAX_IMAGE_SIDE = 16_384  # pixels on either side: WebP's own limit, far past any camera's frame
MAX_FILENAME_CHARS = 255
_IMAGE_FIELDS = {"type", "image_url", "detail"}
_FILE_FIELDS = {"type", "filename", "file_data"}
_REFERENCES = {"file_id", "file_url"}  # what the model service would look up or fetch itself
_KINDS = "a PNG, JPEG, WebP, GIF or PDF"


def check_count(count: int, where: str, settings: AttachmentSettings | None) -> None:
    """A message's number of attachments, checked before any of them is decoded; `where`: the
    message's content, such as `input[0].content`."""
    if count and settings is None:
        raise HttpError(
            UNSUPPORTED_ATTACHMENT, "This relay takes no attachments (ATTACHMENTS=off): send text only", param=where
        )
    if settings is not None and count > settings.max_attachments:
        message = f"'{where}' has {count} attachments; at most {settings.max_attachments} are allowed in a message"
        raise HttpError(ATTACHMENT_TOO_LARGE, message, param=where)


def check_attachment(part: Mapping[str, Any], where: str, settings: AttachmentSettings | None) -> dict[str, Any]:
    """An `input_image` or `input_file` part as it goes upstream, its `data:` URL labelled with
    the type its bytes are; `where`: the part, such as `input[0].content[1]`."""
    check_count(1, where, settings)  # ATTACHMENTS=off refuses it
    assert settings is not None
    if part.get("type") == "input_image":
        return _image(part, where, settings)
    if part.get("type") == "input_file":
        return _file(part, where, settings)
    raise ValueError(f"{part.get('type')!r} is not an attachment's type")


def _image(part: Mapping[str, Any], where: str, settings: AttachmentSettings) -> dict[str, Any]:
    label = f"'{where}' (an image)"
    _check_fields(part, _IMAGE_FIELDS, where, label)
    detail = part.get("detail", "auto")
    if detail not in DETAILS:
        raise _error(INVALID_REQUEST, f"'{where}.detail' must be auto, low or high", f"{where}.detail")
    form, data, payload = _decode(part.get("image_url"), f"{where}.image_url", label, settings)
    if not form.is_image:
        raise _error(UNSUPPORTED_ATTACHMENT, f"{label} is a {form.name}: send it as an input_file part", where)
    _check_image(form, data, label, where, settings)
    return {"type": "input_image", "image_url": _data_url(form, payload), "detail": detail}


def _file(part: Mapping[str, Any], where: str, settings: AttachmentSettings) -> dict[str, Any]:
    filename = part.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        raise _error(INVALID_REQUEST, f"'{where}.filename' must name the file, such as menu.pdf", f"{where}.filename")
    if len(filename) > MAX_FILENAME_CHARS or not filename.isprintable():
        message = f"'{where}.filename' must be at most {MAX_FILENAME_CHARS} printable characters"
        raise _error(INVALID_REQUEST, message, f"{where}.filename")
    label = f"'{where}' ({filename[:80]})"
    _check_fields(part, _FILE_FIELDS, where, label)
    form, data, payload = _decode(part.get("file_data"), f"{where}.file_data", label, settings)
    if form.is_image:
        raise _error(UNSUPPORTED_ATTACHMENT, f"{label} is a {form.name} image: send it as an input_image part", where)
    _check_whole(form, data, label, where)
    return {"type": "input_file", "filename": filename, "file_data": _data_url(form, payload)}


def _check_fields(part: Mapping[str, Any], allowed: set[str], where: str, label: str) -> None:
    for name in part:
        if name in _REFERENCES:
            message = f"{label}: only data: URLs are taken (the relay looks up and fetches nothing)"
            raise _error(UNSUPPORTED_ATTACHMENT, message, f"{where}.{name}")
        if name not in allowed:
            raise _error(INVALID_REQUEST, f"Unknown field {name[:40]!r} in '{where}'", f"{where}.{name}")


def _decode(url: Any, param: str, label: str, settings: AttachmentSettings) -> tuple[Format, bytes, str]:
    """The bytes of a base64 `data:` URL, their format, and the base64 itself; the size is checked
    from the base64's length before it is decoded."""
    if not isinstance(url, str):
        raise _error(INVALID_REQUEST, f"'{param}' must be a data: URL string", param)
    if url[:5].lower() != "data:":
        message = f"{label}: only data: URLs are taken, such as data:image/jpeg;base64,... (the relay fetches nothing)"
        raise _error(UNSUPPORTED_ATTACHMENT, message, param)
    header, comma, payload = url[5:].partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise _error(BAD_ATTACHMENT, f"{label} is not a base64 data: URL (data:<type>;base64,<data>)", param)
    size = len(payload) * 3 // 4 - payload[-2:].count("=")
    if size > settings.max_attachment_bytes:
        message = f"{label} is over {settings.max_attachment_bytes} bytes (MAX_ATTACHMENT_BYTES)"
        raise _error(ATTACHMENT_TOO_LARGE, message, param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _error(BAD_ATTACHMENT, f"{label} is not valid base64", param) from None
    if not data:
        raise _error(BAD_ATTACHMENT, f"{label} is empty", param)
    form = sniff(data)
    if form is None:
        raise _error(UNSUPPORTED_ATTACHMENT, f"{label}: its bytes are not {_KINDS}", param)
    return form, data, payload


def _check_image(form: Format, data: bytes, label: str, where: str, settings: AttachmentSettings) -> None:
    """Its size from its header first (a bomb is refused there), then the whole file."""
    try:
        width, height = dimensions(form, data)
    except Malformed as error:
        raise _error(BAD_ATTACHMENT, f"{label} is not a whole {form.name} image: {error}", where) from None
    if max(width, height) > MAX_IMAGE_SIDE:
        message = f"{label} is {width}×{height} px: its sides must be at most {MAX_IMAGE_SIDE} px"
        raise _error(BAD_ATTACHMENT, message, where)
    if width * height > settings.max_image_pixels:
        message = f"{label} is {width}×{height} px: at most {settings.max_image_pixels} pixels (MAX_IMAGE_PIXELS)"
        raise _error(BAD_ATTACHMENT, message, where)
    _check_whole(form, data, label, where)


def _check_whole(form: Format, data: bytes, label: str, where: str) -> None:
    try:
        verify(form, data)
    except Malformed as error:
        raise _error(BAD_ATTACHMENT, f"{label} is not a whole {form.name} {_noun(form)}: {error}", where) from None


def _noun(form: Format) -> str:
    return "image" if form.is_image else "file"


def _data_url(form: Format, payload: str) -> str:
    return f"data:{form.media_type};base64,{payload}"


def _error(code: ErrorCode, message: str, param: str) -> HttpError:
    return HttpError(code, message, param=param if param.isprintable() else None)
