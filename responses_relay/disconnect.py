"""Noticing that an HTTP caller left, from the ASGI `receive` channel."""

from __future__ import annotations

from starlette.types import Receive


async def until_disconnected(receive: Receive) -> None:
    """Return once the caller has gone (`http.disconnect`); read the request body first."""
    while (await receive())["type"] != "http.disconnect":
        pass
