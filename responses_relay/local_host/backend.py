"""What the local host needs of a back end: the app's HTTP functions, served somewhere."""

from __future__ import annotations

from typing import Protocol

from .app import HttpFunction


class BackendError(Exception):
    """The back end cannot serve the app; the message is one line saying why."""


class Backend(Protocol):
    name: str

    async def start(self) -> list[HttpFunction]:
        """Load the app; its HTTP functions, each with the endpoint that runs it."""
        ...

    async def aclose(self) -> None: ...
