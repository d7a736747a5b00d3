"""Responses belong to their owner. Every response the relay creates carries, in its
request's `metadata.owner`, a keyed hash (HMAC-SHA256 with OWNER_HASH_SECRET) of the
caller's identity, never the identity itself. Resuming, cancelling or chaining onto a
stored response first retrieves it, and someone else's is answered exactly as one that
does not exist, before the upstream is asked to stream, cancel or continue it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from ..errors import CALLER_INPUT_CODES, RESPONSE_NOT_FOUND, HttpError
from ..upstream import Upstream

NOT_FOUND_MESSAGE = "No stored response has that id"  # the upstream module's own words for a 404
_PREVIOUS_NOT_FOUND = CALLER_INPUT_CODES["previous_response_not_found"]


class Owners:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "Owners(secret=...)"

    def of(self, identity: str) -> str:
        """The owner hash of a caller's identity: what the metadata and the budget table hold."""
        return hmac.new(self._secret, identity.encode(), hashlib.sha256).hexdigest()

    async def check(self, upstream: Upstream, response_id: str, owner: str) -> dict[str, Any]:
        """The stored response, when `owner` owns it; 404 `response_not_found` when it does not
        exist or belongs to someone else (one retrieve upstream)."""
        response = await upstream.retrieve(response_id)
        if not _owned_by(response, owner):
            raise HttpError(RESPONSE_NOT_FOUND, NOT_FOUND_MESSAGE)
        return response

    async def check_previous(self, upstream: Upstream, response_id: str, owner: str) -> dict[str, Any]:
        """`previous_response_id`'s stored response; someone else's is answered as the model service
        answers an unknown one, 400 `previous_response_not_found` (so a client falls back to sending
        the history)."""
        try:
            return await self.check(upstream, response_id, owner)
        except HttpError as error:
            if error.code != RESPONSE_NOT_FOUND.code:
                raise
            raise previous_not_found() from None


def previous_not_found() -> HttpError:
    return HttpError(
        _PREVIOUS_NOT_FOUND, "No stored response has the id in 'previous_response_id'", param="previous_response_id"
    )


def _owned_by(response: dict[str, Any], owner: str) -> bool:
    metadata = response.get("metadata")
    given = metadata.get("owner") if isinstance(metadata, dict) else None
    return isinstance(given, str) and hmac.compare_digest(given, owner)
