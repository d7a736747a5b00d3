"""The index of each user's conversations: a row of the chats' table (`relaychats`, see
chats.py) per conversation, PartitionKey the owner hash and RowKey the model service's
`conv_...` id. Beside the chat's `active_response_id` (the answer being generated) the row
holds the title, when the conversation was created and last updated, and the ids of its
responses in order, each with the id of its first output item once that is known (where its
items start among the conversation's), and the responses of answers regenerated away whose stored
responses are still to be deleted. The messages themselves stay with the model service.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty

from .chats import ACTIVE, TABLE, ChatRecords
from .tables import Tables

KIND = "conversation"  # the rows of conversations, among the table's chats
TITLE_CHARS = 60  # a title made from the first question
_PACKED = "responses"  # responses, responses1, ...: the packed response list, in pieces
_DROPPED = "dropped"  # dropped, dropped1, ...: responses regenerated away, their deletion upstream not yet known done
_PIECE_CHARS = 30_000  # a string property holds at most 32 K characters
_SUMMARY_FIELDS = ["RowKey", "kind", "title", "created_at", "updated_at", ACTIVE]

# What an update merges into a row, made from the row as read (None: leave it).
Change = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class ResponseEntry:
    response_id: str
    first_output: str | None  # the id of its first output item; "" when it has none; None: not known yet

    def packed(self) -> str:
        return self.response_id if self.first_output is None else f"{self.response_id}={self.first_output}"


@dataclass(frozen=True)
class ConversationRow:
    id: str
    title: str | None
    created_ms: int
    updated_ms: int
    active_response_id: str | None
    responses: tuple[ResponseEntry, ...] = ()  # in order; left out of a list's rows
    dropped: tuple[str, ...] = ()  # regenerated away: to delete upstream; left out of a list's rows

    def summary(self) -> dict[str, Any]:
        """The conversation as the API lists it (times in Unix seconds)."""
        return {
            "id": self.id,
            "title": self.title,
            "created_at": self.created_ms // 1000,
            "updated_at": self.updated_ms // 1000,
        }


class ConversationIndex:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._chats = ChatRecords(tables)

    async def create(self, owner: str, conversation_id: str, now_ms: int) -> ConversationRow:
        table = await self._tables.ensure(TABLE)
        entity = {"PartitionKey": owner, "RowKey": conversation_id, "kind": KIND, "title": "", "renamed": False}
        entity |= {"created_at": _milliseconds(now_ms), "updated_at": _milliseconds(now_ms), ACTIVE: ""}
        await table.create_entity(entity)
        return _row(entity)

    async def get(self, owner: str, conversation_id: str) -> ConversationRow | None:
        """The owner's conversation; None for an unknown one, or someone else's."""
        entity = await self._chats.get(owner, conversation_id)
        return _row(entity) if entity is not None and entity.get("kind") == KIND else None

    async def all(self, owner: str) -> list[ConversationRow]:
        """The owner's conversations, without their responses, in no particular order."""
        table = await self._tables.ensure(TABLE)
        entities = table.query_entities(
            "PartitionKey eq @owner and kind eq @kind",
            parameters={"owner": owner, "kind": KIND},
            select=_SUMMARY_FIELDS,
        )
        return [_row(entity) async for entity in entities]

    async def rename(self, owner: str, conversation_id: str, title: str) -> ConversationRow | None:
        return await self._update(owner, conversation_id, lambda row: {"title": title, "renamed": True})

    async def begin_response(
        self, owner: str, conversation_id: str, response_id: str, question: str | None, now_ms: int
    ) -> ConversationRow | None:
        """A response of the conversation started: it is the active one, after the others; the first
        question names a conversation nobody named. A response recorded already changes nothing."""

        def change(entity: dict[str, Any]) -> dict[str, Any] | None:
            responses = _responses(entity)
            if any(entry.response_id == response_id for entry in responses):
                return None
            fields = {ACTIVE: response_id, "updated_at": _milliseconds(now_ms)}
            fields |= _pack_responses([*responses, ResponseEntry(response_id, None)], entity)
            if question is not None and not entity.get("title") and not entity.get("renamed"):
                fields["title"] = title_from(question)
            return fields

        return await self._update(owner, conversation_id, change)

    async def end_response(self, owner: str, conversation_id: str, response_id: str) -> None:
        """The answer whose response `response_id` was the active one has ended."""
        await self._chats.clear_active(owner, conversation_id, response_id)

    async def note_first_outputs(self, owner: str, conversation_id: str, first_outputs: Mapping[str, str]) -> None:
        """Keep the first output item id (or "" for none) of responses that have ended."""

        def change(entity: dict[str, Any]) -> dict[str, Any] | None:
            known = [
                ResponseEntry(entry.response_id, first_outputs.get(entry.response_id, entry.first_output))
                for entry in _responses(entity)
            ]
            return _pack_responses(known, entity)

        await self._update(owner, conversation_id, change)

    async def drop_answer(
        self, owner: str, conversation_id: str, last: str | None, dropped: Collection[str]
    ) -> tuple[bool, ConversationRow] | None:
        """Take the responses `dropped` (an answer being regenerated) out of the conversation's, into
        its dropped ones, if nothing changed since the regeneration looked: no answer is active, and
        its last response is still `last`. Whether it did, and the row (as written, or as it was);
        None when there is no row."""
        done = False

        def change(entity: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal done
            responses = _responses(entity)
            done = not entity.get(ACTIVE) and (responses[-1].response_id if responses else None) == last
            if not done:
                return None
            kept = [entry for entry in responses if entry.response_id not in dropped]
            to_delete = [*_pieces(entity, _DROPPED).split(), *dropped]
            return _pack_responses(kept, entity) | _pack(_DROPPED, to_delete, entity)

        row = await self._update(owner, conversation_id, change)
        return None if row is None else (done, row)

    async def forget_dropped(self, owner: str, conversation_id: str, deleted: Collection[str]) -> None:
        """Dropped responses whose stored responses are deleted now: nothing is left to delete of them."""

        def change(entity: dict[str, Any]) -> dict[str, Any] | None:
            dropped = _pieces(entity, _DROPPED).split()
            kept = [response_id for response_id in dropped if response_id not in deleted]
            return _pack(_DROPPED, kept, entity) if len(kept) < len(dropped) else None

        await self._update(owner, conversation_id, change)

    async def delete(self, owner: str, conversation_id: str) -> None:
        table = await self._tables.ensure(TABLE)
        with suppress(ResourceNotFoundError):
            await table.delete_entity(owner, conversation_id)

    async def _update(self, owner: str, conversation_id: str, change: Change) -> ConversationRow | None:
        """chats.update on a conversation's row: None when there is none (or the row is a chat's)."""

        def guarded(entity: dict[str, Any]) -> dict[str, Any] | None:
            return change(entity) if entity.get("kind") == KIND else None

        entity = await self._chats.update(owner, conversation_id, guarded)
        return _row(entity) if entity is not None and entity.get("kind") == KIND else None


def title_from(question: str) -> str:
    """The first TITLE_CHARS characters of a question, its white space folded."""
    return " ".join(question.split())[:TITLE_CHARS]


def _row(entity: Mapping[str, Any]) -> ConversationRow:
    return ConversationRow(
        id=str(entity["RowKey"]),
        title=str(entity.get("title") or "") or None,
        created_ms=_integer(entity.get("created_at")),
        updated_ms=_integer(entity.get("updated_at")),
        active_response_id=str(entity.get(ACTIVE) or "") or None,
        responses=tuple(_responses(entity)),
        dropped=tuple(_pieces(entity, _DROPPED).split()),
    )


def _responses(entity: Mapping[str, Any]) -> list[ResponseEntry]:
    entries = []
    for packed in _pieces(entity, _PACKED).split():
        response_id, separator, first_output = packed.partition("=")
        entries.append(ResponseEntry(response_id, first_output if separator else None))
    return entries


def _pack_responses(entries: list[ResponseEntry], entity: Mapping[str, Any]) -> dict[str, str]:
    return _pack(_PACKED, [entry.packed() for entry in entries], entity)


def _piece_name(name: str, index: int) -> str:
    return name if index == 0 else f"{name}{index}"


def _pieces(entity: Mapping[str, Any], name: str) -> str:
    """A list packed in the string properties `name`, `name`1, ...: their text, joined."""
    pieces: list[str] = []
    while isinstance(piece := entity.get(_piece_name(name, len(pieces))), str):
        pieces.append(piece)
    return "".join(pieces)


def _pack(name: str, packed: list[str], entity: Mapping[str, Any]) -> dict[str, str]:
    """A list of space-free strings as the string properties `name`, `name`1, ... of at most
    _PIECE_CHARS characters each; the pieces of a longer list that `entity` holds are emptied."""
    text = " ".join(packed)
    pieces = [text[start : start + _PIECE_CHARS] for start in range(0, len(text), _PIECE_CHARS)] or [""]
    held = 0
    while isinstance(entity.get(_piece_name(name, held)), str):
        held += 1
    pieces += [""] * (held - len(pieces))
    return {_piece_name(name, index): piece for index, piece in enumerate(pieces)}


def _milliseconds(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def _integer(value: Any) -> int:
    value = value.value if isinstance(value, EntityProperty) else value
    return int(value) if isinstance(value, int) else 0
