"""The demo upstream's Conversations API, read by the real openai SDK (its types check the shapes):
a response created with `conversation` adds its items when it ends; items read in either
order, paged; input items; deletion; bounded like the rest of the demo."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.conversations import Message
from openai.types.responses import Response, ResponseCompletedEvent, ResponseFunctionToolCall

from responses_relay.demo import DemoUpstream
from responses_relay.demo import conversations as demo_conversations
from responses_relay.demo.answers import answer_for
from responses_relay.guide_tools import TOOLS

from .faulty_upstream import FaultyUpstream, Scenario

QUESTION = "滋賀県について教えてください。"


def sdk(upstream: DemoUpstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=upstream.base_url, api_key="demo", max_retries=0)


async def answered(client: openai.AsyncOpenAI, **request: Any) -> Response:
    """A response the demo streams (it always does), as it ended."""
    stream = await client.responses.create(model="gpt-4o-mini", stream=True, **request)
    events = [event async for event in stream]
    assert isinstance(events[-1], ResponseCompletedEvent)
    return events[-1].response


async def test_a_response_in_a_conversation_adds_its_input_and_output_when_it_ends(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    async with sdk(upstream) as client:
        conversation = await client.conversations.create(metadata={"owner": "o1"})
        assert conversation.id.startswith("conv_")
        assert (await client.conversations.retrieve(conversation.id)).metadata == {"owner": "o1"}
        response = await answered(client, input=QUESTION, conversation={"id": conversation.id})
        assert response.conversation is not None
        assert response.conversation.id == conversation.id
        items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
        inputs = [item async for item in client.responses.input_items.list(response.id, order="asc")]
    question, answer = items
    assert isinstance(question, Message)
    assert (question.role, question.content[0].type, question.content[0].text) == ("user", "input_text", QUESTION)  # type: ignore[union-attr]
    assert isinstance(answer, Message)
    assert answer.role == "assistant"
    assert answer.id == response.output[0].id
    assert answer.content[0].text == answer_for(QUESTION).text  # type: ignore[union-attr]
    assert [item.id for item in inputs] == [question.id]  # the same item, by its id


async def test_tool_rounds_add_each_rounds_items_in_order(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    tools = [TOOLS["local_time"].definition()]
    async with sdk(upstream) as client:
        conversation = await client.conversations.create()
        first = await answered(client, input="京都は今何時？", conversation=conversation.id, tools=tools)
        call = first.output[0]
        assert isinstance(call, ResponseFunctionToolCall)
        output = {"type": "function_call_output", "call_id": call.call_id, "output": '{"local_time": "x"}'}
        await answered(client, input=[output], conversation=conversation.id, tools=tools)
        kinds = [item.type async for item in client.conversations.items.list(conversation.id, order="asc")]
        newest_first = [item.type async for item in client.conversations.items.list(conversation.id)]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    assert newest_first == kinds[::-1]


async def test_items_come_in_pages_after_an_item(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0, text="はい。"))
    async with sdk(upstream) as client:
        conversation = await client.conversations.create()
        for number in range(13):
            await answered(client, input=f"質問 {number}", conversation=conversation.id)
        first = await client.conversations.items.list(conversation.id, order="asc", limit=10)
        later = await client.conversations.items.list(
            conversation.id, order="asc", limit=10, after=str(first.data[-1].id)
        )
        everything = [item async for item in client.conversations.items.list(conversation.id, order="asc", limit=7)]
    assert (len(first.data), first.has_more, len(later.data), later.has_more) == (10, True, 10, True)
    assert [item.id for item in everything[:20]] == [item.id for item in [*first.data, *later.data]]
    assert len(everything) == 26


async def test_the_api_refuses_what_the_responses_api_refuses(upstream: FaultyUpstream) -> None:
    async with sdk(upstream) as client:
        conversation = await client.conversations.create()
        with pytest.raises(openai.BadRequestError):
            await answered(client, input="x", conversation=conversation.id, previous_response_id="resp_1")
        with pytest.raises(openai.NotFoundError):
            await answered(client, input="x", conversation="conv_unknown")
        with pytest.raises(openai.NotFoundError):
            await client.conversations.items.list("conv_unknown")


async def test_deleted_conversations_and_responses_are_gone(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    async with sdk(upstream) as client:
        conversation = await client.conversations.create()
        response = await answered(client, input=QUESTION, conversation=conversation.id)
        deleted = await client.conversations.delete(conversation.id)
        assert deleted.deleted
        await client.responses.delete(response.id)
        for gone in (
            client.conversations.retrieve(conversation.id),
            client.conversations.delete(conversation.id),
            client.responses.retrieve(response.id),
            client.responses.delete(response.id),
        ):
            with pytest.raises(openai.NotFoundError):
                await gone
        with pytest.raises(openai.NotFoundError):
            await client.responses.input_items.list(response.id)


async def test_the_demo_keeps_a_bounded_number_of_conversations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_conversations, "STORED_CONVERSATIONS", 3)
    monkeypatch.setattr(demo_conversations, "KEPT_RESPONSES", 2)
    demo = DemoUpstream(delta_seconds=0)
    demo.start()
    try:
        async with sdk(demo) as client:
            for _ in range(6):
                conversation = await client.conversations.create()
                await answered(client, input="滋賀", conversation=conversation.id)
    finally:
        demo.stop()
    held = {name: len(value) for name, value in vars(demo.conversations).items()}
    assert held == {"_conversations": 3, "_responses": 2}


async def test_items_are_added_and_deleted_one_by_one(upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    async with sdk(upstream) as client:
        conversation = await client.conversations.create()
        await answered(client, input=QUESTION, conversation=conversation.id)
        question, answer = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
        left = await client.conversations.items.delete(str(answer.id), conversation_id=conversation.id)
        again = await client.conversations.items.delete(str(question.id), conversation_id=conversation.id)
        with pytest.raises(openai.NotFoundError):
            await client.conversations.items.delete(str(question.id), conversation_id=conversation.id)
        added = await client.conversations.items.create(conversation.id, items=[{"role": "user", "content": QUESTION}])
        with pytest.raises(openai.BadRequestError):
            await client.conversations.items.create(conversation.id, items=[])
        with pytest.raises(openai.NotFoundError):
            await client.conversations.items.create("conv_unknown", items=[{"role": "user", "content": "x"}])
        items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert (left.id, again.id) == (conversation.id, conversation.id)
    [put] = added.data
    assert isinstance(put, Message)
    assert (added.first_id, added.last_id, added.has_more) == (put.id, put.id, False)
    assert put.id != question.id
    assert [(item.id, item.role, item.content[0].text) for item in items if isinstance(item, Message)] == [  # type: ignore[union-attr]
        (put.id, "user", QUESTION)
    ]
