"""Real files for the attachment tests, made here: images and PDFs by Pillow, a photo with EXIF
and a GPS position, a decompression bomb (a small PNG whose header claims a huge size), and
the content parts that carry them."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

from PIL import Image

GPS_IFD = 0x8825  # EXIF's GPS tags
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def image(kind: str, width: int = 64, height: int = 48, *, exif: bool = False) -> bytes:
    """A `kind` (PNG, JPEG, WEBP, GIF) image of that size; `exif`: with a camera's EXIF and a GPS position."""
    picture = Image.new("RGB", (width, height), (200, 80, 40))
    for x in range(0, width, max(1, width // 8)):  # some detail, so re-encoding has something to keep
        picture.paste((20, 120, 200), (x, 0, min(width, x + max(1, width // 16)), height))
    options: dict[str, Any] = {}
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "TestCamera"  # Make
        tags[GPS_IFD] = {1: "N", 2: (35.0, 0.0, 36.0), 3: "E", 4: (135.0, 45.0, 0.0)}  # Kyoto
        options["exif"] = tags.tobytes()
    buffer = io.BytesIO()
    picture.save(buffer, format=kind, **options)
    return buffer.getvalue()


def pdf(pages: int = 1) -> bytes:
    """A PDF of `pages` pages."""
    sheets = [Image.new("RGB", (200, 280), (255, 255, 255 - 20 * index)) for index in range(pages)]
    buffer = io.BytesIO()
    sheets[0].save(buffer, format="PDF", save_all=True, append_images=sheets[1:])
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A few dozen bytes of PNG whose header claims `width`×`height` pixels (a decompression bomb's shape:
    its image data inflates to rows of zeros)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_part(data: bytes, media_type: str = "image/png", **fields: Any) -> dict[str, Any]:
    return {"type": "input_image", "image_url": data_url(data, media_type), **fields}


def file_part(data: bytes, filename: str = "guide.pdf", media_type: str = "application/pdf") -> dict[str, Any]:
    return {"type": "input_file", "filename": filename, "file_data": data_url(data, media_type)}


def asking(*parts: dict[str, Any], text: str = "これは何ですか？") -> dict[str, Any]:
    """A chat body whose one user message is `text` and `parts`."""
    return {"input": [{"role": "user", "content": [{"type": "input_text", "text": text}, *parts]}]}
