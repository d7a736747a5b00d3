"""The Conversations API of the scripted upstream (scripted_upstream.py), written apart from the
demo's: conversations whose items are the input and output items of each response created in
them (joining when the response completes), read in either order and in pages, added (up to 20
at a time) and deleted one by one; a response's input items; deletions. `missing` plays a server
without the API (404 or 405 to its routes).
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import parse_qs

_CONVERSATIONS = re.compile(r"/v1/conversations(?:/(?P<id>[^/]+)(?P<items>/items)?(?:/(?P<item>[^/]+))?)?")
_RESPONSE = re.compile(r"/v1/responses/(?P<id>resp_[^/]+)(?P<input_items>/input_items)?")

Answer = tuple[int, dict[str, Any]]


class ScriptedConversations:
    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {}  # by conversation id, oldest first
        self.metadata: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, list[dict[str, Any]]] = {}  # each response's input items, by response id
        self.missing: int | None = None  # a server without the Conversations API answers this status
        self.deleted_items: list[str] = []  # every item deleted, in order
        self._numbers = itertools.count(1)

    def refusal(self, request: dict[str, Any]) -> Answer | None:
        """Why a response cannot be created in the conversation the request names."""
        conversation = _conversation(request)
        if conversation is None:
            return None
        if "previous_response_id" in request:
            return 400, _error("invalid_request_error", "'previous_response_id' and 'conversation' are exclusive")
        if conversation not in self.items:
            return 404, _error("not_found", f"Conversation '{conversation}' not found")
        return None

    def completed(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        """A response ended: its input items are kept, and join its conversation with its output."""
        given = request.get("input")
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
        inputs = [self._input_item(item) for item in messages]
        self.inputs[response["id"]] = inputs
        conversation = _conversation(request)
        if conversation is not None and conversation in self.items:
            self.items[conversation] += [*inputs, *response["output"]]

    def answer(self, method: str, path: str, query: bytes, body: dict[str, Any]) -> Answer | None:
        """A Conversations API call, or a response's input items or deletion; None: not one of these."""
        params = {name: values[-1] for name, values in parse_qs(query.decode()).items()}
        if route := _CONVERSATIONS.fullmatch(path):
            if self.missing is not None:
                return self.missing, _error("not_found", "Unknown route")
            if route["item"] is not None:
                return self._item(method, route["id"], route["item"]) if route["items"] else None
            return self._conversation(method, route["id"], route["items"] is not None, params, body)
        route = _RESPONSE.fullmatch(path)
        if route is None or (method, bool(route["input_items"])) not in (("GET", True), ("DELETE", False)):
            return None
        inputs = self.inputs.get(route["id"])
        if inputs is None:
            return 404, _error("not_found", f"Response '{route['id']}' not found")
        if method == "GET":
            return 200, _page(inputs, params)
        del self.inputs[route["id"]]
        return 200, {"id": route["id"], "object": "response", "deleted": True}

    def _conversation(
        self, method: str, conversation: str | None, items: bool, params: dict[str, str], body: dict[str, Any]
    ) -> Answer | None:
        if conversation is None and method == "POST":
            created = f"conv_scripted{next(self._numbers)}"
            self.items[created] = []
            self.metadata[created] = dict(body.get("metadata") or {})
            return 200, {"id": created, "object": "conversation", "created_at": 0, "metadata": self.metadata[created]}
        if conversation not in self.items:
            return 404, _error("not_found", f"Conversation '{conversation}' not found")
        if items and method == "GET":
            return 200, _page(self.items[conversation], params)
        if items and method == "POST":
            given = body.get("items")
            if not isinstance(given, list) or not 1 <= len(given) <= 20:
                return 400, _error("invalid_request_error", "'items' must hold 1 to 20 items")
            added = [self._input_item(item) for item in given]
            self.items[conversation] += added
            return 200, {"object": "list", "data": added, "first_id": added[0]["id"], "last_id": added[-1]["id"],
                         "has_more": False}  # fmt: skip
        if not items and method == "DELETE":
            del self.items[conversation]
            return 200, {"id": conversation, "object": "conversation.deleted", "deleted": True}
        return None

    def _item(self, method: str, conversation: str, item_id: str) -> Answer | None:
        """DELETE /conversations/{id}/items/{item_id}: the conversation object, as the API answers."""
        if method != "DELETE":
            return None
        items = self.items.get(conversation)
        if items is None or item_id not in [item["id"] for item in items]:
            return 404, _error("not_found", f"Item '{item_id}' not found")
        self.items[conversation] = [item for item in items if item["id"] != item_id]
        self.deleted_items.append(item_id)
        return 200, {"id": conversation, "object": "conversation", "created_at": 0,
                     "metadata": self.metadata[conversation]}  # fmt: skip

    def _input_item(self, item: dict[str, Any]) -> dict[str, Any]:
        number = next(self._numbers)
        if item.get("type", "message") != "message":
            return {"id": f"item_scripted{number}", **item}
        content = item["content"]
        if isinstance(content, str):
            content = [{"type": "input_text" if item["role"] == "user" else "output_text", "text": content}]
        return {"id": f"msg_in_scripted{number}", "type": "message", "role": item["role"], "content": content,
                "status": "completed"}  # fmt: skip


def _page(items: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    ordered = items if params.get("order") == "asc" else list(reversed(items))
    if "after" in params:
        ordered = ordered[[item["id"] for item in ordered].index(params["after"]) + 1 :]
    limit = int(params.get("limit", "20"))
    data = ordered[:limit]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": len(ordered) > limit}


def _conversation(request: dict[str, Any]) -> str | None:
    given = request.get("conversation")
    return given.get("id") if isinstance(given, dict) else given


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "type": "invalid_request_error", "param": None}}
