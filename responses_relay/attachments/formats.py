"""What a file's bytes are: PNG, JPEG, WebP, GIF or PDF by their magic numbers, an image's
pixel size from its header alone, and whether the file is whole, by walking its structure
(chunks, segments, blocks) without decompressing anything.

Nothing here decodes pixels, so a small file that claims a huge size (a decompression bomb)
costs no more than its header, and no image decoder's flaws are reachable from a request.
That is why the relay uses no image library (Pillow): decoding would cost memory in
proportion to the pixels (a 33-megapixel image is 132 MB as RGBA, per request), bring its
decoders' flaws (libwebp's CVE-2023-4863, for one) within any caller's reach, and add a
native package to the cold start, all to learn what the header and a walk of the structure
tell; the model service decodes the image anyway. Pure functions of bytes: a malformed file
raises `Malformed` with a short reason.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass


class Malformed(ValueError):
    """The bytes start as a known format but are not a whole, well-formed file of it."""


@dataclass(frozen=True)
class Format:
    name: str  # as people say it: PNG, JPEG, WebP, GIF, PDF
    media_type: str

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")


PNG = Format("PNG", "image/png")
JPEG = Format("JPEG", "image/jpeg")
WEBP = Format("WebP", "image/webp")
GIF = Format("GIF", "image/gif")
PDF = Format("PDF", "application/pdf")
FORMATS = (PNG, JPEG, WEBP, GIF, PDF)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PDF_TAIL_BYTES = 1024  # `%%EOF` must be within the last KiB, as PDF readers look for it
# The most chunks, segments or blocks a file's walk reads: a real 10 MiB file has a few thousand (a
# GIF's 255-byte sub-blocks about 41,000); a crafted one of tiny pieces would cost seconds of CPU.
MAX_PARTS = 100_000
_FILL = re.compile(rb"\xff+")


class _Walk:
    """Counts the parts a walk reads, refusing a file with more than MAX_PARTS."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise Malformed(f"it has more than {MAX_PARTS} {self.what}")


def sniff(data: bytes) -> Format | None:
    """The format the magic numbers say, or None."""
    if data.startswith(_PNG_SIGNATURE):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def dimensions(form: Format, data: bytes) -> tuple[int, int]:
    """An image's width and height in pixels, from its header only."""
    reader = {PNG: _png_size, JPEG: _jpeg_size, WEBP: _webp_size, GIF: _gif_size}.get(form)
    if reader is None:
        raise ValueError(f"{form.name} is not an image")
    width, height = reader(data)
    if width < 1 or height < 1:
        raise Malformed("its header gives it no pixels")
    return width, height


def verify(form: Format, data: bytes) -> None:
    """Raise Malformed unless the file is whole and well formed (linear in its size, nothing inflated)."""
    {PNG: _png_whole, JPEG: _jpeg_whole, WEBP: _webp_whole, GIF: _gif_whole, PDF: _pdf_whole}[form](data)


# PNG: the signature, then chunks (length, type, data, CRC): IHDR first, IDAT, IEND last.
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


def _png_chunk(data: bytes, at: int) -> tuple[bytes, memoryview, int]:
    """The chunk at `at`: its type, its data, and where the next starts; the CRC checked."""
    if at + 12 > len(data):
        raise Malformed("it ends inside a chunk")
    (length,) = struct.unpack_from(">I", data, at)
    end = at + 12 + length
    if length > 0x7FFFFFFF or end > len(data):
        raise Malformed("it ends inside a chunk")
    kind, body = data[at + 4 : at + 8], memoryview(data)[at + 8 : end - 4]
    if zlib.crc32(body, zlib.crc32(kind)) != struct.unpack_from(">I", data, end - 4)[0]:
        raise Malformed(f"its {kind.decode('latin-1')!r} chunk is damaged (CRC)")
    return kind, body, end


def _png_size(data: bytes) -> tuple[int, int]:
    kind, body, _ = _png_chunk(data, len(_PNG_SIGNATURE))
    if kind != b"IHDR" or len(body) != 13:
        raise Malformed("it does not start with an image header (IHDR)")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    if depth not in _PNG_DEPTHS.get(color, ()) or (compression, filtering) != (0, 0) or interlace > 1:
        raise Malformed("its image header (IHDR) is not valid")
    return width, height


def _png_whole(data: bytes) -> None:
    at, kinds, walk = len(_PNG_SIGNATURE), [], _Walk("chunks")
    while at < len(data):
        walk.step()
        kind, _, at = _png_chunk(data, at)
        kinds.append(kind)
        if kind == b"IEND":
            break
    if kinds[-1:] != [b"IEND"] or b"IDAT" not in kinds:
        raise Malformed("it has no image data, or no end (IEND)")


# JPEG: markers with lengths up to the frame header (SOFn), which has the size, then the scan (SOS).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpeg_segments(data: bytes) -> tuple[int, int, int]:
    """Walk the segments: the frame's width and height, and where the first scan's data starts."""
    at, size, walk = 2, None, _Walk("segments")
    while True:
        walk.step()
        fill = _FILL.match(data, at)
        if fill is not None:
            at = fill.end() - 1  # fill bytes before a marker: its own 0xFF is the last of them
        if at + 2 > len(data) or data[at] != 0xFF:
            raise Malformed("it ends or breaks before its first scan")
        marker = data[at + 1]
        if marker in _STANDALONE:
            at += 2
            continue
        if marker == 0xD9 or at + 4 > len(data):
            raise Malformed("it ends before its first scan")
        (length,) = struct.unpack_from(">H", data, at + 2)
        end = at + 2 + length
        if length < 2 or end > len(data):
            raise Malformed("a segment runs past its end")
        if marker in _SOF:
            if length < 8:
                raise Malformed("its frame header is too short")
            height, width = struct.unpack_from(">HH", data, at + 5)
            size = (width, height)
        if marker == 0xDA:
            if size is None:
                raise Malformed("its scan comes before its frame header")
            return size[0], size[1], end
        at = end


def _jpeg_size(data: bytes) -> tuple[int, int]:
    width, height, _ = _jpeg_segments(data)
    return width, height


def _jpeg_whole(data: bytes) -> None:
    _, _, scan = _jpeg_segments(data)
    if data.find(b"\xff\xd9", scan) < 0:  # data may follow the end (a motion photo's video)
        raise Malformed("it has no end of image (EOI): it was cut short")


# WebP: a RIFF container of chunks; the first is VP8 (lossy), VP8L (lossless) or VP8X (extended).
def _webp_size(data: bytes) -> tuple[int, int]:
    if len(data) < 30:
        raise Malformed("it is too short for a WebP header")
    kind = data[12:16]
    if kind == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise Malformed("its VP8 frame header is not valid")
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":
        if data[20] != 0x2F:
            raise Malformed("its VP8L header is not valid")
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise Malformed("its first chunk is not an image header (VP8, VP8L or VP8X)")


def _webp_whole(data: bytes) -> None:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = 8 + riff_size
    if end > len(data):
        raise Malformed("it is shorter than its RIFF header says: it was cut short")
    at, kinds, walk = 12, set(), _Walk("chunks")
    while at < end:
        walk.step()
        if at + 8 > end:
            raise Malformed("it ends inside a chunk")
        kind = data[at : at + 4]
        (size,) = struct.unpack_from("<I", data, at + 4)
        if at + 8 + size > end:
            raise Malformed("a chunk runs past its end")
        at += 8 + size + (size & 1)  # chunks are padded to an even size
        kinds.add(kind)
    if not kinds & {b"VP8 ", b"VP8L", b"ANMF"}:
        raise Malformed("it has no image data")


# GIF: a header, the logical screen, then blocks: extensions and images (each in sub-blocks), a trailer.
def _gif_size(data: bytes) -> tuple[int, int]:
    if len(data) < 13:
        raise Malformed("it is too short for a GIF header")
    width, height = struct.unpack_from("<HH", data, 6)
    return width, height


def _gif_whole(data: bytes) -> None:
    screen_width, screen_height = _gif_size(data)
    at = 13 + _color_table(data[10])
    images, walk = 0, _Walk("blocks")
    while True:
        walk.step()
        if at >= len(data):
            raise Malformed("it has no trailer: it was cut short")
        block = data[at]
        if block == 0x3B:
            break
        if block == 0x21:  # extension: its label, then sub-blocks
            at = _sub_blocks(data, at + 2, walk)
        elif block == 0x2C:  # image: its descriptor, a local color table, the LZW code size, sub-blocks
            if at + 10 > len(data):
                raise Malformed("it ends inside an image descriptor")
            left, top, width, height = struct.unpack_from("<HHHH", data, at + 1)
            if left + width > screen_width or top + height > screen_height:
                raise Malformed("an image lies outside its logical screen")
            at = _sub_blocks(data, at + 11 + _color_table(data[at + 9]), walk)
            images += 1
        else:
            raise Malformed("it has a block of an unknown kind")
    if not images:
        raise Malformed("it has no image")


def _color_table(flags: int) -> int:
    return 3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0


def _sub_blocks(data: bytes, at: int, walk: _Walk) -> int:
    """Where the sub-blocks starting at `at` end (after their zero-length terminator)."""
    while True:
        walk.step()
        if at >= len(data):
            raise Malformed("it ends inside a block: it was cut short")
        size = data[at]
        at += 1 + size
        if size == 0:
            return at


# PDF: a header with its version, and the end-of-file marker at the end.
def _pdf_whole(data: bytes) -> None:
    version = data[5:8]
    if not (len(version) == 3 and version[:1].isdigit() and version[1:2] == b"." and version[2:].isdigit()):
        raise Malformed("its header has no PDF version")
    if b"%%EOF" not in data[-PDF_TAIL_BYTES:]:
        raise Malformed("it has no end-of-file marker (%%EOF): it was cut short")
