"""The Conversations API for the demo upstream, the parts the relay uses, as the Responses API
has them: a conversation (`POST /conversations`, `GET` and `DELETE /conversations/{id}`) holds
items (`GET /conversations/{id}/items`, newest first unless `order=asc`, 20 a page unless
`limit`, after the item `after`; `POST /conversations/{id}/items` appends up to 20, `DELETE
/conversations/{id}/items/{item_id}` deletes one). A response created with `conversation` adds its input items
and then its output items to it when it completes (or ends incomplete), and keeps its input
items (`GET /responses/{id}/input_items`) and its object (`GET /responses/{id}`) until it is
deleted (`DELETE /responses/{id}`). Both kinds are bounded, the oldest dropped first.

The demo model still answers each request from its own input: the conversation is kept for
whoever reads it, not fed back to the model.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import Message, Send

from .background import frame_payload
from .wire import conversation_of, error_body

STORED_CONVERSATIONS = 1000
KEPT_RESPONSES = 5000
_PAGE = 20
_MAX_PAGE = 100
_MAX_ADDED = 20  # items added at a time
_ITEM_PREFIXES = {"message": "msg", "function_call_output": "fco", "mcp_approval_response": "mcpa"}
_JOINING_STATUSES = frozenset({"completed", "incomplete"})  # a response that ends so adds its items
# /conversations[/{id}[/items[/{item_id}]]], /responses/{id}/input_items
CONVERSATION_ROUTE = re.compile(
    r"/conversations(?:/(?P<id>[A-Za-z0-9_-]+)(?P<items>/items(?:/(?P<item>[A-Za-z0-9_-]+))?)?)?$"
)
INPUT_ITEMS_ROUTE = re.compile(r"/responses/(?P<id>resp_[A-Za-z0-9_-]+)/input_items$")


@dataclass
class Conversation:
    id: str
    created_at: int
    metadata: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)

    def object(self) -> dict[str, Any]:
        return {"id": self.id, "object": "conversation", "created_at": self.created_at, "metadata": self.metadata}


@dataclass(frozen=True)
class KeptResponse:
    """A response of a conversation: its input items, with their ids."""

    conversation_id: str
    input_items: list[dict[str, Any]]


class ConversationStore:
    def __init__(self) -> None:
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._responses: OrderedDict[str, KeptResponse] = OrderedDict()

    def refusal(self, request: dict[str, Any]) -> tuple[int, bytes] | None:
        """Why `POST /responses` cannot be answered, as the Responses API says it (None: it can)."""
        conversation_id = conversation_of(request)
        if conversation_id is None:
            return None
        if request.get("previous_response_id") is not None:
            message = "Cannot use both 'previous_response_id' and 'conversation' parameters."
            return 400, error_body("invalid_request_error", message)
        if conversation_id not in self._conversations:
            return 404, _not_found("Conversation", conversation_id)
        return None

    def generation(self, request: dict[str, Any], send: Send) -> Send:
        """The `send` a response's generation writes its stream to: when the response belongs to a
        conversation, its items join the conversation as it ends, before the end is sent."""
        conversation_id = conversation_of(request)
        if conversation_id is None:
            return send
        return _Joining(self, conversation_id, _input_items(request.get("input")), send)

    def forget(self, response_id: str) -> bool:
        """A response deleted: True when it was kept here."""
        return self._responses.pop(response_id, None) is not None

    def answer(self, method: str, path: str, query: str, body: dict[str, Any]) -> tuple[int, bytes] | None:
        """The answer to a Conversations API call or to a response's input items (None: not one of those)."""
        params = parse_qs(query)
        if (route := CONVERSATION_ROUTE.search(path)) and route["item"] is not None:
            return self._item_call(method, route["id"], route["item"])
        if route:
            return self._conversation_call(method, route["id"], route["items"] is not None, params, body)
        route = INPUT_ITEMS_ROUTE.search(path)
        if route is None or method != "GET":
            return None
        kept = self._responses.get(route["id"])
        if kept is None:
            return 404, _not_found("Response", route["id"])
        return 200, _page(kept.input_items, params)

    def _conversation_call(
        self, method: str, conversation_id: str | None, items: bool, params: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, bytes] | None:
        if conversation_id is None:
            return self._create(body) if method == "POST" else None
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return 404, _not_found("Conversation", conversation_id)
        if items and method == "GET":
            return 200, _page(conversation.items, params)
        if items and method == "POST":
            return self._add(conversation, body)
        if not items and method == "GET":
            return 200, orjson.dumps(conversation.object())
        if not items and method == "DELETE":
            del self._conversations[conversation_id]
            return 200, orjson.dumps({"id": conversation_id, "object": "conversation.deleted", "deleted": True})
        return None

    def _add(self, conversation: Conversation, body: dict[str, Any]) -> tuple[int, bytes]:
        """Append `items` (1 to 20): the list of the items added, with their ids."""
        given = body.get("items")
        if not isinstance(given, list) or not 1 <= len(given) <= _MAX_ADDED:
            message = f"'items' must be a list of 1 to {_MAX_ADDED} items."
            return 400, error_body("invalid_request_error", message)
        added = _input_items(given)
        conversation.items += added
        return 200, _list(added, has_more=False)

    def _item_call(self, method: str, conversation_id: str, item_id: str) -> tuple[int, bytes] | None:
        """DELETE /conversations/{id}/items/{item_id}: the conversation, without the item."""
        if method != "DELETE":
            return None
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return 404, _not_found("Conversation", conversation_id)
        kept = [item for item in conversation.items if item["id"] != item_id]
        if len(kept) == len(conversation.items):
            return 404, _not_found("Item", item_id)
        conversation.items = kept
        return 200, orjson.dumps(conversation.object())

    def _create(self, body: dict[str, Any]) -> tuple[int, bytes]:
        metadata = body.get("metadata") or {}
        conversation = Conversation("conv_" + uuid.uuid4().hex, int(time.time()), dict(metadata))
        conversation.items += _input_items(body.get("items") or [])
        self._conversations[conversation.id] = conversation
        while len(self._conversations) > STORED_CONVERSATIONS:
            self._conversations.popitem(last=False)
        return 200, orjson.dumps(conversation.object())

    def started(self, response_id: str, conversation_id: str, input_items: list[dict[str, Any]]) -> KeptResponse:
        kept = self._responses[response_id] = KeptResponse(conversation_id, input_items)
        while len(self._responses) > KEPT_RESPONSES:
            self._responses.popitem(last=False)
        return kept

    def ended(self, kept: KeptResponse, response: dict[str, Any]) -> None:
        conversation = self._conversations.get(kept.conversation_id)
        if conversation is not None and response.get("status") in _JOINING_STATUSES:
            output = response.get("output")
            conversation.items += [*kept.input_items, *(output if isinstance(output, list) else [])]


class _Joining:
    """A generation's `send` that follows its events: the response is kept from `response.created`
    on, and its end adds its items to the conversation before the end goes out."""

    def __init__(
        self, store: ConversationStore, conversation_id: str, input_items: list[dict[str, Any]], send: Send
    ) -> None:
        self._store = store
        self._conversation_id = conversation_id
        self._input_items = input_items
        self._send = send
        self._kept: KeptResponse | None = None
        self._partial = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self._partial += message.get("body", b"")
            *frames, self._partial = self._partial.split(b"\n\n")
            for frame in frames:
                self._see(frame)
        await self._send(message)

    def _see(self, frame: bytes) -> None:
        payload = frame_payload(frame)
        response = payload.get("response") if payload is not None else None
        if not isinstance(response, dict) or not isinstance(response.get("id"), str):
            return
        if self._kept is None:
            self._kept = self._store.started(response["id"], self._conversation_id, self._input_items)
        if response.get("status") not in ("in_progress", "queued"):
            self._store.ended(self._kept, response)


def _input_items(value: Any) -> list[dict[str, Any]]:
    """A request's `input` as the items a conversation lists, each with an id of its own."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = []
    for given in value if isinstance(value, list) else []:
        if not isinstance(given, dict):
            continue
        item = {**given, "type": given.get("type", "message")}
        if item["type"] == "message":
            item = _message(item)
        prefix = _ITEM_PREFIXES.get(item["type"], "item")
        items.append({"id": f"{prefix}_{uuid.uuid4().hex}", **item, "status": "completed"})
    return items


def _message(item: dict[str, Any]) -> dict[str, Any]:
    content = item.get("content")
    if isinstance(content, str):
        part = "input_text" if item.get("role") != "assistant" else "output_text"
        content = [{"type": part, "text": content, **({"annotations": []} if part == "output_text" else {})}]
    return {"type": "message", "role": item.get("role"), "content": content}


def _page(items: list[dict[str, Any]], params: dict[str, list[str]]) -> bytes:
    """A list page: `order` (desc by default), `limit` (20 by default, at most 100), `after` an item id."""
    ordered = items if params.get("order", ["desc"])[0] == "asc" else items[::-1]
    after = params.get("after", [None])[0]
    ids = [item["id"] for item in ordered]
    start = ids.index(after) + 1 if after in ids else 0
    given = params.get("limit", [""])[0]
    limit = min(_MAX_PAGE, max(1, int(given))) if given.isdigit() else _PAGE
    return _list(ordered[start : start + limit], has_more=start + limit < len(ordered))


def _list(data: list[dict[str, Any]], *, has_more: bool) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


def _not_found(kind: str, given: str) -> bytes:
    return error_body("not_found", f"{kind} with id '{given}' not found.")
