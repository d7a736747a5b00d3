"""The chat → active answer record, on the real storage emulator (Azurite)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from responses_relay.settings import StorageSettings
from responses_relay.storage.chats import ChatRecords
from responses_relay.storage.tables import Tables

from .azurite import Azurite


@pytest.fixture
async def chats(azurite: Azurite) -> AsyncIterator[ChatRecords]:
    tables = Tables(StorageSettings(connection_string=azurite.connection_string, table_endpoint=None, client_id=None))
    yield ChatRecords(tables)
    await tables.aclose()


async def test_an_answer_is_active_from_its_start_to_its_end(chats: ChatRecords) -> None:
    owner, chat = uuid.uuid4().hex, "chat-" + uuid.uuid4().hex
    assert await chats.active(owner, chat) is None
    await chats.set_active(owner, chat, "resp_one")
    assert await chats.active(owner, chat) == "resp_one"
    assert await chats.active("someone-else", chat) is None
    await chats.clear_active(owner, chat, "resp_one")
    assert await chats.active(owner, chat) is None


async def test_the_end_of_an_older_answer_leaves_a_newer_one_active(chats: ChatRecords) -> None:
    owner, chat = uuid.uuid4().hex, "chat-" + uuid.uuid4().hex
    await chats.set_active(owner, chat, "resp_old")
    await chats.set_active(owner, chat, "resp_new")
    await chats.clear_active(owner, chat, "resp_old")
    assert await chats.active(owner, chat) == "resp_new"


async def test_fields_of_the_row_beside_the_record_are_kept(chats: ChatRecords) -> None:
    owner, chat = uuid.uuid4().hex, "conv_" + uuid.uuid4().hex
    table = await chats._tables.ensure("relaychats")
    await table.create_entity({"PartitionKey": owner, "RowKey": chat, "title": "滋賀"})
    await chats.set_active(owner, chat, "resp_x")
    await chats.clear_active(owner, chat, "resp_x")
    row = await chats.get(owner, chat)
    assert row is not None
    assert row["title"] == "滋賀"


async def test_an_answers_end_is_noted_once_and_only_while_it_is_active(chats: ChatRecords) -> None:
    owner, chat = uuid.uuid4().hex, "chat-" + uuid.uuid4().hex
    await chats.set_active(owner, chat, "resp_one", message_id="msg_1")
    await chats.end_active(owner, chat, "resp_one")
    first = await chats.get(owner, chat)
    await chats.end_active(owner, chat, "resp_one")
    assert first is not None
    assert first["active_ended_at"] > 0
    assert (await chats.get(owner, chat) or {})["active_ended_at"] == first["active_ended_at"]
    assert first["active_message_id"] == "msg_1"
    await chats.set_active(owner, chat, "resp_two")
    await chats.end_active(owner, chat, "resp_one")  # an older answer's end changes nothing
    row = await chats.get(owner, chat)
    assert row is not None
    assert (row["active_response_id"], row["active_ended_at"]) == ("resp_two", 0.0)
