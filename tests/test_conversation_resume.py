"""An answer in a conversation, followed on another device: two relay instances over real sockets,
resumable streams (background mode), the storage emulator, the demo upstream. While the answer
is generated the conversation names it (`active_response_id`) and shows its question; a second
client on the other instance resumes it whole, exactly once; the record clears when it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from responses_relay.demo.answers import answer_for
from responses_relay.settings import Settings

from .conftest import RESUMABLE
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import chat, read_sse
from .test_conversations import TIME, a_user, create, get
from .test_resume import instances

QUESTION = "滋賀県について教えてください。"
JSON = {"content-type": "application/json"}


async def test_an_answer_in_progress_is_resumed_from_a_second_client_on_the_other_instance(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(ending="stall", after_deltas=5, delta_seconds=0.001))
    user = a_user()  # the same user on both devices
    async with instances(make_settings(**RESUMABLE)) as [first, second]:
        conversation_id = await create(first, user)
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        body = orjson.dumps({"input": QUESTION, "conversation_id": conversation_id})
        phone = asyncio.create_task(  # reads on until the end
            read_sse(first.client, "POST", "/api/chat", content=body, headers={**user, **JSON}, created=created)
        )
        await asyncio.wait_for(created, 10)  # recorded before its first event went out
        opened = await get(second, user, conversation_id)
        laptop = asyncio.create_task(
            read_sse(second.client, "GET", f"/api/chat/{opened['active_response_id']}", headers=user, stop_after=1)
        )
        partly = await asyncio.wait_for(laptop, 10)  # the laptop has the first deltas, generated before it came
        resumed = asyncio.create_task(
            read_sse(second.client, "GET", f"/api/chat/{opened['active_response_id']}", headers=user)
        )
        upstream.release()
        on_phone, on_laptop = await asyncio.wait_for(asyncio.gather(phone, resumed), 20)
        ended = await get(second, user, conversation_id)
        from_first = await get(first, user, conversation_id)

    whole = answer_for(QUESTION).text
    # Its question, from the response's input items:
    assert opened["messages"] == [{"role": "user", "text": QUESTION, "attachments": []}]
    assert opened["title"] == QUESTION
    assert partly.text == whole[: len(partly.text)]
    assert on_phone.text == on_laptop.text == whole  # each delta once, on each device
    assert [event.event for event in on_laptop.terminals] == ["response.completed"]
    assert ended["active_response_id"] is None
    assert [message["role"] for message in ended["messages"]] == ["user", "assistant"]
    assert ended["messages"][1]["text"] == whole
    assert ended["messages"][1]["response_id"] == opened["active_response_id"]
    assert from_first == ended


async def test_an_answer_whose_reader_left_before_its_tool_round_goes_on_from_the_other_instance(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    user = a_user()
    async with instances(make_settings(**RESUMABLE)) as [first, second]:
        conversation_id = await create(first, user)
        left = await chat(first.client, {"input": TIME, "conversation_id": conversation_id}, headers=user,
                          stop_at="response.created")  # fmt: skip
        first_round = left.payloads("response.created")[0]["response_id"]
        asked = await asyncio.to_thread(upstream.wait_until_ended, first_round)  # nobody reads it: it asks, and waits
        opened = await get(second, user, conversation_id)
        active = opened["active_response_id"]
        resumed = await read_sse(second.client, "GET", f"/api/chat/{active}", headers=user)
        ended = await get(first, user, conversation_id)

    assert asked.status == "completed"
    assert active == first_round  # asking for a call its reader never ran: the answer goes on
    assert [event.event for event in resumed.terminals] == ["response.completed"]
    assert [payload["name"] for payload in resumed.payloads("tool.result")] == ["local_time"]
    rounds = [record.request for record in upstream.records if record.method == "POST" and record.request.get("input")]
    assert [request.get("conversation") for request in rounds] == [{"id": conversation_id}] * 2
    assert all("previous_response_id" not in request for request in rounds)
    assert [item["type"] for item in rounds[1]["input"]] == ["function_call_output"]
    assert ended["active_response_id"] is None
    [question, answer] = ended["messages"]
    assert question == {"role": "user", "text": TIME, "attachments": []}
    assert answer["text"] == resumed.text
    assert [call["name"] for call in answer["calls"]] == ["local_time"]
    assert answer["calls"][0]["output"] == resumed.payloads("tool.result")[0]["output"]
