"""Estimates of what an answer costs, in tokens, before the model service counts it: what a
budget reserves, and what it counts where the real count can never be known."""

from __future__ import annotations

import math

import orjson

BYTES_PER_TOKEN = 3  # a token per 3 bytes of UTF-8: at least the real count for most text


def estimate_tokens(*parts: object) -> int:
    """The tokens `parts` make as input (text, or anything JSON), at most overstated."""
    size = sum(len(part.encode()) if isinstance(part, str) else len(orjson.dumps(part)) for part in parts)
    return math.ceil(size / BYTES_PER_TOKEN)
