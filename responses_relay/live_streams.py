"""The relay streams this process is sending, by the response they carry: what a cancel
on this instance ends."""

from __future__ import annotations

from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


_by_response: dict[str, set[Cancellable]] = {}


def add(response_id: str, stream: Cancellable) -> None:
    _by_response.setdefault(response_id, set()).add(stream)


def remove(response_id: str, stream: Cancellable) -> None:
    streams = _by_response.get(response_id)
    if streams is not None:
        streams.discard(stream)
        if not streams:
            del _by_response[response_id]


def of_response(response_id: str) -> list[Cancellable]:
    return list(_by_response.get(response_id, ()))
