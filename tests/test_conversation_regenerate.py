"""Regenerate inside a kept conversation, over real sockets: the relay under uvicorn, the storage
emulator (Azurite) for the index, and as the model service the demo upstream or the independent
scripted one, each with the Conversations API's item routes.

After a regenerate the conversation shows its question once and only the new answer, with its new
response id; the old answer's items (every tool round's) and stored responses are gone, and so are
its entries in the index. Every refusal (the wrong answer named, an answer still being generated,
someone else's conversation, a bad body) changes nothing; a new answer that cannot be created, or
that fails, puts the question back; two regenerates at once make one answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responses_relay.conversations.regenerate import plan
from responses_relay.demo.answers import answer_for
from responses_relay.errors import HttpError
from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.storage.conversations import ResponseEntry

from .attachment_files import asking, file_part, image, image_part, pdf
from .azurite import Azurite
from .conftest import FAKE_KEY, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .scripted_upstream import FunctionCall, ScriptedUpstream, Text, refusal, reply
from .sse_client import Received, chat, read_sse
from .test_budget import Finished
from .test_conversations import EVENTS, PLAN, a_user, as_streamed, ask, create, get
from .test_resume import instances

TIME = "京都は今何時？"
JSON = {"content-type": "application/json"}
APPROVAL = {"approval_request_id": "mcpr_1", "approve": True}


def last_response(received: Received) -> str:
    return str(received.payloads("response.completed")[-1]["response_id"])


def regenerate(conversation_id: str, response_id: str) -> dict[str, str]:
    return {"conversation_id": conversation_id, "regenerate": response_id}


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "text": text, "attachments": []}


def posted(upstream: FaultyUpstream) -> list[dict[str, Any]]:
    """The requests that created responses."""
    return [record.request for record in upstream.records if record.method == "POST" and "model" in record.request]


async def test_a_regenerated_answer_replaces_the_old_one_for_good_on_the_demo_upstream(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    async with instances(kept(), 2) as [first, second]:
        conversation_id = await create(first, user)
        answered = await ask(first, user, {"input": EVENTS, "conversation_id": conversation_id})
        old = await ask(first, user, {"input": PLAN, "conversation_id": conversation_id})
        before = await get(first, user, conversation_id)
        new = await ask(second, user, regenerate(conversation_id, last_response(old)))  # on the other instance
        after = await get(first, user, conversation_id)
        old_kept = upstream.stored(last_response(old))
        deleted = await first.client.delete(f"/api/conversations/{conversation_id}", headers=user)

    assert before["messages"][2:] == [user_message(PLAN), as_streamed(old)]
    assert after["messages"] == [user_message(EVENTS), as_streamed(answered), user_message(PLAN), as_streamed(new)]
    assert last_response(new) != last_response(old)
    assert after["messages"][-1]["response_id"] == last_response(new)
    assert new.text == answer_for(PLAN).text
    *_, asked, again = posted(upstream)
    assert again["input"] == [{"role": "user", "content": [{"type": "input_text", "text": PLAN}]}]
    assert asked["input"] == PLAN  # as the caller sent it; asked again as the conversation kept it
    assert again["conversation"] == {"id": conversation_id}
    assert "previous_response_id" not in again
    assert old_kept is None  # deleted upstream by the regenerate
    assert deleted.status_code == 204
    assert [upstream.stored(last_response(received)) for received in (answered, new)] == [None, None]


async def test_a_regenerate_removes_every_round_of_the_old_answer_on_the_scripted_upstream(
    kept: Callable[..., Settings], scripted: ScriptedUpstream
) -> None:
    scripted.script(
        reply(Text("琵琶湖 です。")),
        reply(FunctionCall("local_time", '{"timezone": "Asia/Tokyo"}')),
        reply(FunctionCall("local_time", '{"timezone": "Asia/Tokyo"}')),
        reply(Text("9時 です。")),
        reply(FunctionCall("local_time", '{"timezone": "Asia/Tokyo"}')),
        reply(Text("9時半 です。")),
    )
    settings = kept(OPENAI_ENDPOINT=scripted.base_url, OPENAI_API_KEY=FAKE_KEY)
    user = a_user()
    async with instances(settings, 1) as [server]:
        conversation_id = await create(server, user)
        answered = await ask(server, user, {"input": "滋賀は？", "conversation_id": conversation_id})
        old = await ask(server, user, {"input": TIME, "conversation_id": conversation_id})
        old_items = [item["id"] for item in scripted.conversations.items[conversation_id][2:]]
        new = await ask(server, user, regenerate(conversation_id, last_response(old)))
        after = await get(server, user, conversation_id)

    old_rounds = [payload["response_id"] for payload in old.payloads("response.created")]
    assert old_rounds == ["resp_scripted2", "resp_scripted3", "resp_scripted4"]  # three rounds, two of them tools
    assert len(old_items) == 1 + 2 * 2 + 1  # the question, two calls and their outputs, the answer
    assert sorted(scripted.conversations.deleted_items) == sorted(old_items)
    assert scripted.conversations.deleted_items[-1] == old_items[0]  # the question last
    assert [response_id in scripted.stored for response_id in old_rounds] == [False] * 3
    assert after["messages"] == [user_message("滋賀は？"), as_streamed(answered), user_message(TIME), as_streamed(new)]
    assert [call["name"] for call in after["messages"][-1]["calls"]] == ["local_time"]
    assert after["messages"][-1]["text"] == "9時半 です。"
    kinds = [item.get("type") for item in scripted.conversations.items[conversation_id]]
    assert kinds == ["message", "message", "message", "function_call", "function_call_output", "message"]


async def test_a_question_with_a_photo_and_a_pdf_is_asked_again_with_them(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    photo, guide = image_part(image("PNG"), "image/png"), file_part(pdf(), "旅のしおり.pdf")
    async with instances(kept(), 1) as [server]:
        conversation_id = await create(server, user)
        old = await ask(server, user, {**asking(photo, guide, text="これは何？"), "conversation_id": conversation_id})
        await ask(server, user, regenerate(conversation_id, last_response(old)))
        after = await get(server, user, conversation_id)
    asked, again = posted(upstream)
    assert again["input"] == [{"role": "user", "content": asked["input"][0]["content"]}]  # the parts as sent
    assert [part["type"] for part in again["input"][0]["content"]] == ["input_text", "input_image", "input_file"]
    assert [message["role"] for message in after["messages"]] == ["user", "assistant"]
    assert [attachment["kind"] for attachment in after["messages"][0]["attachments"]] == ["image", "pdf"]


async def test_only_the_last_answer_can_be_regenerated(kept: Callable[..., Settings], upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    async with instances(kept(), 1) as [server]:
        conversation_id = await create(server, user)
        earlier = await ask(server, user, {"input": EVENTS, "conversation_id": conversation_id})
        last = await ask(server, user, {"input": TIME, "conversation_id": conversation_id})  # a tool round, then text
        before = await get(server, user, conversation_id)
        sent = len(upstream.records)
        first_round = last.payloads("response.created")[0]["response_id"]  # of the last answer, but not its end
        refused = [
            await server.client.post("/api/chat", json=regenerate(conversation_id, named), headers=user)
            for named in (last_response(earlier), first_round, "resp_unknown")
        ]
        reached = upstream.records[sent:]
        after = await get(server, user, conversation_id)
    for answer in refused:
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "not_last_answer")
    assert [record.method for record in reached if record.method != "GET"] == []  # nothing created or deleted
    assert after == before


async def test_someone_elses_conversation_is_not_found(kept: Callable[..., Settings], upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    owner, stranger = a_user(), a_user()
    async with instances(kept(), 2) as servers:
        conversation_id = await create(servers[0], owner)
        old = await ask(servers[0], owner, {"input": EVENTS, "conversation_id": conversation_id})
        sent = len(upstream.records)
        body = regenerate(conversation_id, last_response(old))
        tried = [await server.client.post("/api/chat", json=body, headers=stranger) for server in servers]
        reached = len(upstream.records)
        still = await get(servers[1], owner, conversation_id)
    for answer in tried:
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "conversation_not_found")
    assert reached == sent
    assert still["messages"] == [user_message(EVENTS), as_streamed(old)]


async def test_an_answer_being_generated_is_not_regenerated(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    async with instances(kept(), 1) as [server]:
        conversation_id = await create(server, user)
        old = await ask(server, user, {"input": EVENTS, "conversation_id": conversation_id})
        upstream.set_scenario(Scenario(ending="stall", after_deltas=2, delta_seconds=0))
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        body = orjson.dumps({"input": PLAN, "conversation_id": conversation_id})
        reading = asyncio.create_task(
            read_sse(server.client, "POST", "/api/chat", content=body, headers={**user, **JSON}, created=created)
        )
        active = await asyncio.wait_for(created, 10)  # recorded as the conversation's active answer
        refused = [
            await server.client.post("/api/chat", json=regenerate(conversation_id, named), headers=user)
            for named in (active, last_response(old))
        ]
        upstream.release()
        stalled = await asyncio.wait_for(reading, 10)
        after = await get(server, user, conversation_id)
    for answer in refused:
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "answer_in_progress")
    assert [message["role"] for message in after["messages"]] == ["user", "assistant"] * 2
    assert after["messages"][-1]["response_id"] == last_response(stalled)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"regenerate": "resp_1", "conversation_id": "conv_1", "input": "x"}, "input"),
        ({"regenerate": "resp_1", "conversation_id": "conv_1", "input": [{"role": "user", "content": "x"}]}, "input"),
        ({"regenerate": "resp_1"}, "conversation_id"),
        ({"regenerate": "resp_1", "previous_response_id": "resp_0"}, "previous_response_id"),
        ({"regenerate": "resp_1", "conversation_id": "conv_1", "approvals": [APPROVAL]}, "approvals"),
        ({"regenerate": "conv_1", "conversation_id": "conv_1"}, "regenerate"),
        ({"regenerate": 7, "conversation_id": "conv_1"}, "regenerate"),
    ],
)
async def test_a_regenerate_goes_with_conversation_id_alone(
    kept: Callable[..., Settings], upstream: FaultyUpstream, body: dict[str, Any], param: str
) -> None:
    async with instances(kept(), 1) as [server]:
        answer = await server.client.post("/api/chat", json=body, headers=a_user())
    assert answer.status_code == 400, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["param"]) == ("invalid_request", param)
    assert upstream.records == []


async def test_a_new_answer_that_cannot_be_created_puts_the_question_back(
    kept: Callable[..., Settings], scripted: ScriptedUpstream
) -> None:
    scripted.script(reply(Text("琵琶湖 です。")), refusal(429), reply(Text("湖 です。")))
    settings = kept(OPENAI_ENDPOINT=scripted.base_url, OPENAI_API_KEY=FAKE_KEY)
    user = a_user()
    async with instances(settings, 1) as [server]:
        conversation_id = await create(server, user)
        old = await ask(server, user, {"input": "滋賀は？", "conversation_id": conversation_id})
        body = regenerate(conversation_id, last_response(old))
        refused = await server.client.post("/api/chat", json=body, headers=user)
        in_between = await get(server, user, conversation_id)
        again = await ask(server, user, body)  # Retry: the same request
        after = await get(server, user, conversation_id)
        twice = await server.client.post("/api/chat", json=body, headers=user)

    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "rate_limited")
    assert in_between["messages"] == [user_message("滋賀は？")]  # the old answer is gone, its question is not
    assert after["messages"] == [user_message("滋賀は？"), as_streamed(again)]
    assert [message["text"] for message in after["messages"]] == ["滋賀は？", "湖 です。"]
    assert "resp_scripted1" not in scripted.stored
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "not_last_answer")  # that answer is gone


async def test_a_new_answer_that_fails_puts_the_question_back(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    finished = Finished()  # requests whose handling has ended, the work after their answer included
    async with asynccontextmanager(serve)(ChatService(kept()), wrap=finished.wrap) as server:
        conversation_id = await create(server, user)
        await ask(server, user, {"input": EVENTS, "conversation_id": conversation_id})
        old = await ask(server, user, {"input": PLAN, "conversation_id": conversation_id})
        upstream.set_scenario(Scenario(delta_seconds=0, ending="failed", after_deltas=3))
        failed = await chat(server.client, regenerate(conversation_id, last_response(old)), headers=user)
        await finished.wait_for(4, timeout=10)
        after = await get(server, user, conversation_id)
    assert [event.event for event in failed.terminals] == ["error"]
    assert [message["role"] for message in after["messages"]] == ["user", "assistant", "user"]
    assert after["messages"][-1] == user_message(PLAN)


async def test_two_regenerates_at_once_make_one_answer(kept: Callable[..., Settings], upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    async with instances(kept(), 2) as servers:
        conversation_id = await create(servers[0], user)
        old = await ask(servers[0], user, {"input": EVENTS, "conversation_id": conversation_id})
        body = regenerate(conversation_id, last_response(old))
        results = await asyncio.gather(*(chat(server.client, body, headers=user) for server in servers * 2))
        after = await get(servers[1], user, conversation_id)
    statuses = sorted(result.status for result in results)
    assert statuses == [200, 409, 409, 409]
    codes = {orjson.loads(result.raw)["error"]["code"] for result in results if result.status == 409}
    assert codes <= {"not_last_answer", "answer_in_progress"}
    [made] = [result for result in results if result.status == 200]
    assert after["messages"] == [user_message(EVENTS), as_streamed(made)]


async def test_a_stored_response_that_could_not_be_deleted_goes_with_the_conversation(
    kept: Callable[..., Settings], scripted: ScriptedUpstream, azurite: Azurite
) -> None:
    scripted.script(reply(Text("琵琶湖 です。")), reply(Text("湖 です。")))
    scripted.failing_deletes.add("resp_scripted1")
    settings = kept(OPENAI_ENDPOINT=scripted.base_url, OPENAI_API_KEY=FAKE_KEY)
    user = a_user()
    async with instances(settings, 1) as [server]:
        conversation_id = await create(server, user)
        old = await ask(server, user, {"input": "滋賀は？", "conversation_id": conversation_id})
        new = await ask(server, user, regenerate(conversation_id, last_response(old)))
        after = await get(server, user, conversation_id)
        kept_upstream = "resp_scripted1" in scripted.stored
        scripted.failing_deletes.clear()
        deleted = await server.client.delete(f"/api/conversations/{conversation_id}", headers=user)
    assert after["messages"] == [user_message("滋賀は？"), as_streamed(new)]
    assert kept_upstream  # its delete failed: the row keeps it to delete
    assert deleted.status_code == 204
    assert scripted.stored == {}


@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[ResponseEntry], list[dict[str, Any]], list[list[str]], bool]:
    """A conversation as the relay finds it: its responses (each with its first output item's id, ""
    for one that added none: it failed) and its items, oldest first; the responses of each answered
    exchange; and whether it ends with a question alone (one put back)."""
    entries: list[ResponseEntry] = []
    items: list[dict[str, Any]] = []
    answered: list[list[str]] = []
    numbers = iter(range(10_000))
    for kind in draw(st.lists(st.sampled_from(["answered", "failed"]), min_size=1, max_size=6)):
        if kind == "failed":  # a response whose items never joined: neither its question nor its output
            entries.append(ResponseEntry(f"resp_{next(numbers)}", ""))
            continue
        items.append({"id": f"msg_{next(numbers)}", "type": "message", "role": "user", "content": []})
        responses = []
        for round_number, outputs in enumerate(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))):
            if round_number:
                items.append({"id": f"fco_{next(numbers)}", "type": "function_call_output"})
            made = [{"id": f"item_{next(numbers)}", "type": draw(st.sampled_from(KINDS))} for _ in range(outputs)]
            responses.append(f"resp_{next(numbers)}")
            entries.append(ResponseEntry(responses[-1], str(made[0]["id"])))
            items += made
        answered.append(responses)
    alone = draw(st.booleans())
    if alone:
        items.append({"id": f"msg_{next(numbers)}", "type": "message", "role": "user", "content": []})
    return entries, items, answered, alone


KINDS = ["message", "function_call", "reasoning", "mcp_call", "mcp_approval_request"]


@settings(max_examples=300, derandomize=True)
@given(conversation=conversations(), named=st.integers(0, 40))
def test_a_plan_replaces_exactly_the_last_answer_and_only_when_named(
    conversation: tuple[list[ResponseEntry], list[dict[str, Any]], list[list[str]], bool], named: int
) -> None:
    entries, items, answered, alone = conversation
    newest_first = items[::-1]
    asked = next((place for place, item in enumerate(newest_first) if item.get("role") == "user"), None)
    exchange = newest_first[: asked + 1] if asked is not None else newest_first  # what last_exchange reads
    first_outputs = {entry.first_output: entry.response_id for entry in entries if entry.first_output}
    ids = [entry.response_id for entry in entries]
    last_is_answered = bool(answered) and bool(ids) and ids[-1] == answered[-1][-1] and not alone
    candidates = [*ids, "resp_gone"]
    response_id = candidates[named % len(candidates)]
    if not ((alone and response_id not in ids) or (last_is_answered and response_id == ids[-1])):
        with pytest.raises(HttpError) as refused:
            plan(entries, response_id, exchange, first_outputs)
        assert refused.value.code == "not_last_answer"
        return
    planned = plan(entries, response_id, exchange, first_outputs)
    if alone:
        assert (planned.question, planned.answer_items, planned.responses) == (items[-1], (), ())
        assert planned.before == (ids[-1] if ids else None)
        return
    assert planned.question == exchange[-1]
    assert list(planned.answer_items) == [item["id"] for item in exchange[:-1]]  # every item after the question
    assert list(planned.responses) == answered[-1]  # every round of the last answer, nothing before
    first = ids.index(answered[-1][0])
    assert planned.before == (ids[first - 1] if first else None)


async def test_a_new_answer_stopped_puts_the_question_back(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    finished = Finished()
    async with asynccontextmanager(serve)(ChatService(kept(RESUMABLE_STREAMS="true")), wrap=finished.wrap) as server:
        conversation_id = await create(server, user)
        old = await ask(server, user, {"input": EVENTS, "conversation_id": conversation_id})
        upstream.set_scenario(Scenario(ending="stall", after_deltas=2, delta_seconds=0))
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        body = orjson.dumps(regenerate(conversation_id, last_response(old)))
        reading = asyncio.create_task(
            read_sse(server.client, "POST", "/api/chat", content=body, headers={**user, **JSON}, created=created)
        )
        new_id = await asyncio.wait_for(created, 10)
        stopped = await server.client.post(f"/api/chat/{new_id}/cancel", headers=user)
        cancelled = await asyncio.wait_for(reading, 10)
        await finished.wait_for(4, timeout=10)  # create, ask, the regenerate (what follows its stream too), the cancel
        after = await get(server, user, conversation_id)
        upstream.release()
    assert stopped.json()["status"] == "cancelled"
    assert cancelled.payloads("response.completed")[-1]["status"] == "cancelled"
    assert after["messages"] == [user_message(EVENTS)]  # the old answer is gone; its question is not
