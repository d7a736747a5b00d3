"""The model service's Conversations API, as the relay uses it, and what it reads or deletes of a
conversation's responses: their input items, and the responses themselves.

A conversation's items are read oldest first (`order=asc`), 100 a page, following the pages; its
last exchange newest first, back to its last question. Items are deleted one by one, and added
(a question put back). An unknown conversation is `conversation_not_found`; a response,
conversation or item already gone is no failure to a delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..errors import (
    CONVERSATION_NOT_FOUND,
    CONVERSATIONS_DISABLED,
    RESPONSE_NOT_FOUND,
    UPSTREAM_BAD_RESPONSE,
    HttpError,
)
from ..upstream import Absent, Upstream

PAGE_ITEMS = 100  # the API's largest page
_CONCURRENT_CALLS = 8  # upstream calls at once for one conversation (retrieves, deletes)
_NO_API = (CONVERSATIONS_DISABLED, "The model service has no Conversations API: conversations are off")
_NO_CONVERSATION = (CONVERSATION_NOT_FOUND, "No conversation has that id")
_NO_RESPONSE = (RESPONSE_NOT_FOUND, "No stored response has that id")


class ConversationApi:
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def create(self, owner: str) -> str:
        """A new, empty conversation of `owner`'s; its id. 404 or 405: the service has none
        (`conversations_disabled`)."""
        created = await self._upstream.call_json(
            "POST", "/conversations", body={"metadata": {"owner": owner}}, absent={404: _NO_API, 405: _NO_API},
            creates=True,
        )  # fmt: skip
        conversation_id = (created or {}).get("id")
        if not isinstance(conversation_id, str) or not conversation_id:
            raise HttpError(UPSTREAM_BAD_RESPONSE, "The model service sent an invalid answer")
        return conversation_id

    async def items(self, conversation_id: str, after: str | None = None) -> list[dict[str, Any]]:
        """The conversation's items, oldest first (after the item `after`, when given)."""
        return await self._all(f"/conversations/{conversation_id}/items", after, _NO_CONVERSATION)

    async def last_exchange(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's items newest first, back to its last question (a user's message)
        included; all of them when it has none."""
        path = f"/conversations/{conversation_id}/items"
        return await self._all(path, None, _NO_CONVERSATION, order="desc", until=is_question)

    async def add_items(self, conversation_id: str, items: list[dict[str, Any]]) -> None:
        """Append input items (at most 20) to the conversation."""
        path = f"/conversations/{conversation_id}/items"
        await self._upstream.call_json(
            "POST", path, body={"items": items}, absent={404: _NO_CONVERSATION}, creates=True
        )

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        """Delete an item of the conversation; False when it was gone already."""
        return await self._delete(f"/conversations/{conversation_id}/items/{item_id}")

    async def input_items(self, response_id: str) -> list[dict[str, Any]]:
        """A stored response's input items, in order."""
        return await self._all(f"/responses/{response_id}/input_items", None, _NO_RESPONSE)

    async def delete(self, conversation_id: str) -> None:
        await self._delete(f"/conversations/{conversation_id}")

    async def delete_response(self, response_id: str) -> None:
        await self._delete(f"/responses/{response_id}")

    async def _all(
        self,
        path: str,
        after: str | None,
        missing: Absent,
        *,
        order: str = "asc",
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """A list's items in `order`, page after page; up to the page that holds one `until` names."""
        items: list[dict[str, Any]] = []
        while True:
            query: dict[str, str | int] = {"order": order, "limit": PAGE_ITEMS}
            if after is not None:
                query["after"] = after
            page = await self._upstream.call_json("GET", path, query=query, absent={404: missing}) or {}
            data = page.get("data")
            found = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
            items += found
            if until is not None and any(until(item) for item in found):
                return items
            last = page.get("last_id") or (found[-1].get("id") if found else None)
            if page.get("has_more") is not True or not isinstance(last, str) or last == after:
                return items
            after = last

    async def _delete(self, path: str) -> bool:
        try:
            await self._upstream.call_json("DELETE", path, absent={404: _NO_RESPONSE})
        except HttpError as error:
            if error.code != RESPONSE_NOT_FOUND.code:
                raise
            return False
        return True


def is_question(item: dict[str, Any]) -> bool:
    """A user's message: where an exchange of a conversation starts."""
    return item.get("type", "message") == "message" and item.get("role") == "user"


async def bounded(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    """The results of `calls`, at most _CONCURRENT_CALLS of them running at once; all of them
    finish before the first failure is raised."""
    results = await settled(calls)
    failure = next((result for result in results if isinstance(result, BaseException)), None)
    if failure is not None:
        raise failure
    return results


async def settled(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    """The result or the exception of each of `calls`, at most _CONCURRENT_CALLS running at once."""
    gate = asyncio.Semaphore(_CONCURRENT_CALLS)

    async def gated(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(gated(call) for call in calls), return_exceptions=True)
