"""The index of each user's conversations (storage/conversations.py), on the real storage emulator
(Azurite): rows by owner, titles, the responses in order, and two instances writing at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responses_relay.settings import StorageSettings
from responses_relay.storage.chats import ChatRecords
from responses_relay.storage.conversations import ConversationIndex, ResponseEntry
from responses_relay.storage.tables import Tables

from .azurite import Azurite


def storage(azurite: Azurite) -> StorageSettings:
    return StorageSettings(connection_string=azurite.connection_string, table_endpoint=None, client_id=None)


@pytest.fixture
async def index(azurite: Azurite) -> AsyncIterator[ConversationIndex]:
    tables = Tables(storage(azurite))
    yield ConversationIndex(tables)
    await tables.aclose()


def new_ids() -> tuple[str, str]:
    return uuid.uuid4().hex, "conv_" + uuid.uuid4().hex


async def test_a_conversation_is_its_owners_alone(index: ConversationIndex) -> None:
    owner, conversation = new_ids()
    created = await index.create(owner, conversation, 1_700_000_000_123)
    assert created.summary() == {
        "id": conversation,
        "title": None,
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
    }
    assert await index.get(owner, conversation) == created
    assert await index.get("someone-else", conversation) is None
    assert await index.rename("someone-else", conversation, "盗む") is None
    assert await index.begin_response("someone-else", conversation, "resp_x", "質問", 1) is None
    assert [row.id for row in await index.all(owner)] == [conversation]
    assert await index.all("someone-else") == []
    await index.delete(owner, conversation)
    assert await index.get(owner, conversation) is None
    await index.delete(owner, conversation)  # a second delete finds nothing, and says nothing


async def test_the_first_question_names_it_unless_it_was_renamed(index: ConversationIndex) -> None:
    owner, named_by_question = new_ids()
    await index.create(owner, named_by_question, 1000)
    question = "  滋賀県の\n見どころを  " + "教えてください。" * 20
    first = await index.begin_response(owner, named_by_question, "resp_1", question, 2000)
    assert first is not None
    assert first.title == ("滋賀県の 見どころを " + "教えてください。" * 20)[:60]
    assert len(first.title) == 60
    assert (first.active_response_id, first.updated_ms) == ("resp_1", 2000)
    second = await index.begin_response(owner, named_by_question, "resp_2", "別の質問", 3000)
    assert second is not None
    assert second.title == first.title

    _, renamed = new_ids()
    await index.create(owner, renamed, 1000)
    assert (await index.rename(owner, renamed, "私の旅")) is not None
    asked = await index.begin_response(owner, renamed, "resp_3", "質問", 2000)
    assert asked is not None
    assert asked.title == "私の旅"


async def test_responses_are_kept_in_order_with_their_first_outputs(index: ConversationIndex) -> None:
    owner, conversation = new_ids()
    await index.create(owner, conversation, 1000)
    ids = [f"resp_{number:04d}_{uuid.uuid4().hex}" for number in range(1500)]  # more than one property holds
    for number, response_id in enumerate(ids):
        await index.begin_response(owner, conversation, response_id, None, 1000 + number)
    await index.begin_response(owner, conversation, ids[3], None, 99_999)  # recorded already: no change
    await index.note_first_outputs(owner, conversation, {ids[0]: "msg_a", ids[1]: "", ids[-1]: "fc_z"})
    row = await index.get(owner, conversation)
    assert row is not None
    assert [entry.response_id for entry in row.responses] == ids
    assert row.responses[:3] == (ResponseEntry(ids[0], "msg_a"), ResponseEntry(ids[1], ""), ResponseEntry(ids[2], None))
    assert row.responses[-1] == ResponseEntry(ids[-1], "fc_z")
    assert (row.active_response_id, row.updated_ms) == (ids[-1], 1000 + 1499)


async def test_the_end_of_the_active_answer_clears_it_only(index: ConversationIndex) -> None:
    owner, conversation = new_ids()
    await index.create(owner, conversation, 1000)
    await index.begin_response(owner, conversation, "resp_old", "質問", 2000)
    await index.begin_response(owner, conversation, "resp_new", None, 3000)
    await index.end_response(owner, conversation, "resp_old")
    row = await index.get(owner, conversation)
    assert row is not None
    assert row.active_response_id == "resp_new"
    await index.end_response(owner, conversation, "resp_new")
    row = await index.get(owner, conversation)
    assert row is not None
    assert row.active_response_id is None
    assert await ChatRecords(index._tables).active(owner, conversation) is None  # the one record


async def test_a_chat_row_of_the_same_id_is_not_a_conversation(index: ConversationIndex) -> None:
    owner, conversation = new_ids()
    await ChatRecords(index._tables).set_active(owner, conversation, "resp_chat")
    assert await index.get(owner, conversation) is None
    assert await index.rename(owner, conversation, "x") is None
    assert await index.all(owner) == []


async def test_an_update_never_brings_a_deleted_conversation_back(index: ConversationIndex) -> None:
    owner, conversation = new_ids()
    await index.create(owner, conversation, 1000)
    await index.delete(owner, conversation)
    assert await index.begin_response(owner, conversation, "resp_late", "質問", 2000) is None
    await index.end_response(owner, conversation, "resp_late")
    assert await index.get(owner, conversation) is None
    assert await ChatRecords(index._tables).get(owner, conversation) is None


@settings(max_examples=8, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(split=st.lists(st.booleans(), min_size=2, max_size=12))
def test_two_instances_recording_at_once_record_each_response_once(azurite: Azurite, split: list[bool]) -> None:
    # Each response starts on one of two instances (clients of their own, as two Function App
    # instances have), all at once: every id is kept exactly once, whatever the interleaving.
    owner, conversation = new_ids()
    ids = [f"resp_{number}" for number in range(len(split))]

    async def record() -> list[str]:
        instances = [Tables(storage(azurite)), Tables(storage(azurite))]
        try:
            indexes = [ConversationIndex(tables) for tables in instances]
            await indexes[0].create(owner, conversation, 1000)
            await asyncio.gather(
                *(indexes[on_second].begin_response(owner, conversation, response_id, None, 2000)
                  for response_id, on_second in zip(ids, split, strict=True))
            )  # fmt: skip
            row = await indexes[1].get(owner, conversation)
        finally:
            for tables in instances:
                await tables.aclose()
        assert row is not None
        assert row.active_response_id in ids
        return [entry.response_id for entry in row.responses]

    recorded = asyncio.run(asyncio.wait_for(record(), 30))
    assert sorted(recorded) == sorted(ids)


async def test_an_answer_regenerated_away_leaves_the_responses_for_its_deletion(index: ConversationIndex) -> None:
    owner, conversation = new_ids()
    await index.create(owner, conversation, 1000)
    ids = [f"resp_{number:04d}_{uuid.uuid4().hex}" for number in range(1500)]  # several properties' worth
    for response_id in ids:
        await index.begin_response(owner, conversation, response_id, None, 2000)
    await index.note_first_outputs(owner, conversation, dict.fromkeys(ids, "msg_" + "x" * 40))
    active = await index.drop_answer(owner, conversation, ids[-1], ids[100:])
    await index.end_response(owner, conversation, ids[-1])
    moved = await index.drop_answer(owner, conversation, ids[-2], ids[100:])  # not the last response
    dropped = await index.drop_answer(owner, conversation, ids[-1], ids[100:])
    row = await index.get(owner, conversation)
    assert row is not None
    twice = await index.drop_answer(owner, conversation, ids[-1], ids[100:])  # the last is another now
    await index.forget_dropped(owner, conversation, ids[100:1000])
    forgotten = await index.get(owner, conversation)
    assert forgotten is not None
    missing = await index.drop_answer("someone-else", conversation, ids[99], [])

    done = [None if result is None else result[0] for result in (active, moved, dropped, twice)]
    assert done == [False, False, True, False]  # refused while an answer is generated, or its last is another
    assert [entry.response_id for entry in row.responses] == ids[:100]  # no piece of the longer list left behind
    assert row.dropped == tuple(ids[100:])
    assert [entry.response_id for entry in forgotten.responses] == ids[:100]
    assert forgotten.dropped == tuple(ids[1000:])
    assert missing is None
