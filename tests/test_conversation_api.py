"""The relay's client of the Conversations API (conversations/api.py) over real sockets, against the
demo upstream and the independent scripted one: create with the owner, every item in order
across pages, a response's input items, deletes that do not mind what is gone already, and a
server without the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from responses_relay.conversations import api
from responses_relay.conversations.api import ConversationApi
from responses_relay.errors import HttpError
from responses_relay.settings import load_settings
from responses_relay.upstream import Upstream

from .conftest import FAKE_KEY
from .faulty_upstream import FaultyUpstream, Scenario
from .scripted_upstream import ScriptedUpstream, Text, reply


@asynccontextmanager
async def client_of(base_url: str) -> AsyncIterator[ConversationApi]:
    upstream = Upstream(load_settings({"OPENAI_ENDPOINT": base_url, "OPENAI_API_KEY": FAKE_KEY}), base_url)
    try:
        yield ConversationApi(upstream)
    finally:
        await upstream.aclose()


async def answer(base_url: str, conversation_id: str, question: str) -> None:
    """A response in the conversation, streamed to its end, as a chat makes one."""
    upstream = Upstream(load_settings({"OPENAI_ENDPOINT": base_url, "OPENAI_API_KEY": FAKE_KEY}), base_url)
    try:
        stream = await upstream.client.responses.create(
            model="gpt-4o-mini", input=question, conversation=conversation_id, stream=True
        )
        [event async for event in stream]
    finally:
        await upstream.aclose()


async def check_a_conversation_read_whole_and_deleted(base_url: str, script: Callable[[int], None]) -> str:
    """Its id."""
    async with client_of(base_url) as conversations:
        conversation_id = await conversations.create("owner-hash")
        assert conversation_id.startswith("conv_")
        for number in range(7):
            script(number)
            await answer(base_url, conversation_id, f"質問 {number}")
        items = await conversations.items(conversation_id)
        later = await conversations.items(conversation_id, after=items[3]["id"])
        await conversations.delete(conversation_id)
        await conversations.delete(conversation_id)  # gone already: no failure
        with pytest.raises(HttpError) as gone:
            await conversations.items(conversation_id)
    questions = [item["content"][0]["text"] for item in items if item.get("role") == "user"]
    assert questions == [f"質問 {number}" for number in range(7)]
    assert [item.get("role") for item in items] == ["user", "assistant"] * 7
    assert later == items[4:]
    assert (gone.value.status, gone.value.code) == (404, "conversation_not_found")
    return conversation_id


async def test_the_demos_conversation_is_read_across_pages_then_deleted(
    upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0, text="はい。"))
    monkeypatch.setattr(api, "PAGE_ITEMS", 3)
    conversation_id = await check_a_conversation_read_whole_and_deleted(upstream.base_url, lambda number: None)
    assert conversation_id not in upstream.conversations._conversations


async def test_the_scripted_conversation_is_read_across_pages_then_deleted(
    scripted: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "PAGE_ITEMS", 4)
    await check_a_conversation_read_whole_and_deleted(
        scripted.base_url, lambda number: scripted.script(reply(Text("はい。")))
    )
    assert scripted.conversations.metadata == {"conv_scripted1": {"owner": "owner-hash"}}
    assert scripted.conversations.items == {}


async def test_a_responses_input_items_and_its_deletion(scripted: ScriptedUpstream) -> None:
    async with client_of(scripted.base_url) as conversations:
        conversation_id = await conversations.create("owner-hash")
        scripted.script(reply(Text("はい。")))
        await answer(scripted.base_url, conversation_id, "質問")
        [response_id] = scripted.stored
        inputs = await conversations.input_items(response_id)
        await conversations.delete_response(response_id)
        await conversations.delete_response(response_id)
        with pytest.raises(HttpError) as gone:
            await conversations.input_items(response_id)
    assert [item["content"][0]["text"] for item in inputs] == ["質問"]
    assert scripted.stored == {}
    assert gone.value.code == "response_not_found"


@pytest.mark.parametrize("status", [404, 405])
async def test_a_server_without_the_api_is_conversations_disabled(scripted: ScriptedUpstream, status: int) -> None:
    scripted.conversations.missing = status
    async with client_of(scripted.base_url) as conversations:
        with pytest.raises(HttpError) as refused:
            await conversations.create("owner-hash")
    assert (refused.value.status, refused.value.code) == (404, "conversations_disabled")


async def check_the_last_exchange_deleted_and_its_question_put_back(base_url: str, answers: int) -> None:
    """Two questions asked (the last answered with `answers` items): the last exchange read newest first
    back to its question, across pages; its items deleted once each; the question put back."""
    async with client_of(base_url) as conversations:
        conversation_id = await conversations.create("owner-hash")
        for question in ("最初の質問", "次の質問"):
            await answer(base_url, conversation_id, question)
        everything = await conversations.items(conversation_id)
        exchange = await conversations.last_exchange(conversation_id)
        deleted = [await conversations.delete_item(conversation_id, item["id"]) for item in exchange]
        again = await conversations.delete_item(conversation_id, exchange[-1]["id"])
        await conversations.add_items(conversation_id, [{"role": "user", "content": exchange[-1]["content"]}])
        after = await conversations.items(conversation_id)
        with pytest.raises(HttpError) as gone:
            await conversations.add_items("conv_unknown", [{"role": "user", "content": "x"}])
    assert exchange == everything[::-1][: answers + 1]
    assert exchange[-1]["role"] == "user"
    assert (deleted, again) == ([True] * (answers + 1), False)
    assert after[:-1] == everything[: -answers - 1]
    assert (after[-1]["role"], after[-1]["content"]) == ("user", exchange[-1]["content"])
    assert after[-1]["id"] != exchange[-1]["id"]
    assert gone.value.code == "conversation_not_found"


async def test_the_demos_last_exchange(upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0, text="はい。"))
    monkeypatch.setattr(api, "PAGE_ITEMS", 1)
    await check_the_last_exchange_deleted_and_its_question_put_back(upstream.base_url, 1)


async def test_the_scripted_last_exchange(scripted: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted.script(reply(Text("はい。")), reply(Text("一つ。"), Text("二つ。"), Text("三つ。")))
    monkeypatch.setattr(api, "PAGE_ITEMS", 2)
    await check_the_last_exchange_deleted_and_its_question_put_back(scripted.base_url, 3)
