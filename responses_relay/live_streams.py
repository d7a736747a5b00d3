"""The relay streams an instance is sending, by the responses they carry (each round's of
their answer, once seen): what a cancel on that instance ends."""

from __future__ import annotations

from typing import Protocol


class Cancellable(Protocol):
    owner: str | None  # the owner hash of its caller, when owners are kept

    def cancel(self) -> None: ...

    @property
    def between_rounds(self) -> bool:
        """Its response ended, but the answer goes on with another (tool calls run)."""

    @property
    def reading(self) -> str | None:
        """The response it reads now (None while a round is being opened)."""


class LiveStreams:
    def __init__(self) -> None:
        self._by_response: dict[str, set[Cancellable]] = {}

    def add(self, response_id: str, stream: Cancellable) -> None:
        self._by_response.setdefault(response_id, set()).add(stream)

    def remove(self, response_id: str, stream: Cancellable) -> None:
        streams = self._by_response.get(response_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._by_response[response_id]

    def of_response(self, response_id: str) -> list[Cancellable]:
        return list(self._by_response.get(response_id, ()))
