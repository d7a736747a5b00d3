"""Graceful shutdown of the streams this process is sending.

The relay registers each stream while its body is being sent; on shutdown, `drain`
lets them finish for a grace period and ends the rest: a stored response's stream hands its
caller off to another instance (`stream.resume`), any other ends with an `error` event
(`server_shutting_down`), so no client is left guessing and nothing is generated unread.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from .errors import SERVER_SHUTTING_DOWN, ErrorCode


class Stoppable(Protocol):
    def shut_down(self, error: ErrorCode, message: str) -> None: ...


_live: set[Stoppable] = set()
_drained: asyncio.Future[None] | None = None  # resolved when _live empties during a drain


def started(stream: Stoppable) -> None:
    _live.add(stream)


def ended(stream: Stoppable) -> None:
    _live.discard(stream)
    if not _live and _drained is not None and not _drained.done():
        _drained.set_result(None)


def open_count() -> int:
    """How many streams are being sent now."""
    return len(_live)


async def drain(grace_seconds: float) -> None:
    """Let running streams finish for `grace_seconds`, then stop the rest."""
    global _drained
    if not _live:
        return
    _drained = asyncio.get_running_loop().create_future()
    try:
        await asyncio.wait_for(asyncio.shield(_drained), grace_seconds)
    except TimeoutError:
        for stream in list(_live):
            stream.shut_down(SERVER_SHUTTING_DOWN, "The server is restarting; please ask again")
    finally:
        _drained = None
