"""Conversations over real sockets: the relay under uvicorn (one instance or two), the storage
emulator (Azurite) for the index, and as the model service the demo upstream or the
independent scripted one, each with its Conversations API.

Create, chat, list, get (the messages exactly as the streams showed them), rename, delete
(upstream too); owners, on either instance; paging; retention; every bad input; a storage
account that cannot be reached; `CONVERSATIONS` auto, on and off."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from azure.data.tables import EdmType, EntityProperty, TableClient, UpdateMode

from responses_relay.access.budget import Budget, Hold
from responses_relay.access.owner import Owners
from responses_relay.demo.answers import answer_for
from responses_relay.service import ChatService
from responses_relay.settings import Settings, load_settings
from responses_relay.storage.chats import TABLE

from .attachment_files import asking, file_part, image, image_part, pdf
from .azurite import Azurite
from .conftest import FAKE_KEY, OWNER_SECRET, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .scripted_upstream import ApprovalRequest, FunctionCall, McpCall, ScriptedUpstream, Text, reply
from .sse_client import Received, chat
from .test_budget import Finished
from .test_resume import instances

EVENTS = "今週の滋賀のイベントは？"  # the demo searches the web and cites
PLAN = "京都の日帰りプランを考えて"  # the demo thinks first
TIME = "京都は今何時？"  # the demo calls local_time
WEATHER = "京都の天気は？"  # the demo asks to approve an MCP call
CITATION = {
    "type": "url_citation",
    "url": "https://example.com/biwa",
    "title": "琵琶湖",
    "start_index": 0,
    "end_index": 3,
}


def a_user() -> dict[str, str]:
    """A caller of their own: in key mode the function key names the owner."""
    return {"x-functions-key": "key-" + uuid.uuid4().hex}


async def create(server: RelayServer, user: dict[str, str]) -> str:
    created = await server.client.post("/api/conversations", headers=user)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def ask(server: RelayServer, user: dict[str, str], body: dict[str, Any]) -> Received:
    received = await chat(server.client, body, headers=user)
    assert received.status == 200, received.raw
    assert [event.event for event in received.terminals] == ["response.completed"]
    return received


async def get(server: RelayServer, user: dict[str, str], conversation_id: str) -> dict[str, Any]:
    got = await server.client.get(f"/api/conversations/{conversation_id}", headers=user)
    assert got.status_code == 200, got.text
    return dict(got.json())


def as_streamed(received: Received) -> dict[str, Any]:
    """The assistant message a stream showed: what GET /api/conversations/{id} must give back."""
    calls: list[dict[str, Any]] = []
    reasoning: dict[tuple[int, int], str] = {}
    for payload in received.payloads():
        kind = payload["type"]
        if kind == "tool.call":
            calls.append({"type": "function_call", **{key: payload[key] for key in ("call_id", "name", "arguments")},
                          "output": None})  # fmt: skip
        elif kind == "tool.result":
            next(call for call in calls if call.get("call_id") == payload["call_id"])["output"] = payload["output"]
        elif kind in ("response.mcp_call.completed", "response.mcp_call.failed"):
            calls.append({"type": "mcp_call", "item_id": payload["item_id"], "name": payload["name"],
                          "server_label": payload["server_label"], "status": kind.rsplit(".", 1)[1]})  # fmt: skip
        elif kind == "approval.request":
            fields = {key: payload[key] for key in ("approval_request_id", "server_label", "name", "arguments")}
            calls.append({"type": "approval_request", **fields, "approve": None})
        elif kind == "response.reasoning_summary_text.delta":
            part = (payload["output_index"], payload["summary_index"])
            reasoning[part] = reasoning.get(part, "") + payload["delta"]
    message: dict[str, Any] = {
        "role": "assistant",
        "response_id": received.payloads("response.completed")[-1]["response_id"],
        "text": received.text,
    }
    refusal = "".join(payload["delta"] for payload in received.payloads("response.refusal.delta"))
    if refusal:
        message["refusal"] = refusal
    citations = [payload["annotation"] for payload in received.payloads("response.output_text.annotation.added")]
    return {**message, "citations": citations, "reasoning": list(reasoning.values()), "calls": calls}


async def test_create_chat_list_get_rename_and_delete_on_the_demo_upstream(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    async with instances(kept(), 1) as [server]:
        health = (await server.client.get("/api/health")).json()
        conversation_id = await create(server, user)
        fresh = await get(server, user, conversation_id)
        streams = [await ask(server, user, {"input": question, "conversation_id": conversation_id})
                   for question in (EVENTS, PLAN, TIME, WEATHER)]  # fmt: skip
        [asked] = streams[-1].payloads("approval.request")
        approval = {"approval_request_id": asked["approval_request_id"], "approve": True}
        streams.append(await ask(server, user, {"approvals": [approval], "conversation_id": conversation_id}))
        listed = (await server.client.get("/api/conversations", headers=user)).json()
        got = await get(server, user, conversation_id)
        renamed = await server.client.patch(
            f"/api/conversations/{conversation_id}", json={"title": "  秋の京都  "}, headers=user
        )
        after_rename = (await server.client.get("/api/conversations", headers=user)).json()
        deleted = await server.client.delete(f"/api/conversations/{conversation_id}", headers=user)
        again = await server.client.delete(f"/api/conversations/{conversation_id}", headers=user)
        gone = await server.client.get(f"/api/conversations/{conversation_id}", headers=user)
        listed_after = (await server.client.get("/api/conversations", headers=user)).json()

    assert health["conversations"] is True
    assert (fresh["title"], fresh["active_response_id"], fresh["messages"]) == (None, None, [])
    requests = [record.request for record in upstream.records if record.method == "POST"]
    assert all(request["conversation"] == {"id": conversation_id} for request in requests)
    assert all("previous_response_id" not in request for request in requests)  # tool rounds and approvals too
    assert len(requests) == 6  # four questions, a tool round, the approvals
    [summary] = listed["data"]
    assert summary == {key: got[key] for key in ("id", "title", "created_at", "updated_at")}
    assert summary["title"] == EVENTS  # the first question names it
    assert (listed["has_more"], listed["next"]) == (False, None)
    assert got["active_response_id"] is None
    expected: list[dict[str, Any]] = []
    for question, streamed in zip([EVENTS, PLAN, TIME, WEATHER, None], streams, strict=True):
        expected += [{"role": "user", "text": question, "attachments": []}] if question else []
        expected.append(as_streamed(streamed))
    expected[-2]["calls"][0]["approve"] = True  # the decision, from the request that answered it
    assert got["messages"] == expected
    kinds = [bool(expected[index][kind]) for index, kind in ((1, "citations"), (3, "reasoning"), (5, "calls"))]
    assert kinds == [True] * 3  # each kind is there
    assert renamed.status_code == 200
    assert renamed.json()["title"] == after_rename["data"][0]["title"] == "秋の京都"
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert again.status_code == gone.status_code == 404
    assert gone.json()["error"]["code"] == "conversation_not_found"
    assert listed_after["data"] == []
    assert upstream.conversations._conversations.get(conversation_id) is None
    response_ids = [received.payloads("response.created")[index]["response_id"]
                    for received in streams for index in range(len(received.payloads("response.created")))]  # fmt: skip
    assert len(response_ids) == 6
    assert [upstream.stored(response_id) for response_id in response_ids] == [None] * 6


async def test_tool_rounds_and_approvals_continue_through_the_conversation_on_the_scripted_upstream(
    kept: Callable[..., Settings], scripted: ScriptedUpstream
) -> None:
    scripted.script(
        reply(FunctionCall("local_time", '{"timezone": "Asia/Tokyo"}')),
        reply(Text("琵琶湖 は 大きい。", annotations=(CITATION,))),
        reply(Text("Let me ask."), ApprovalRequest("weather", "get_forecast", '{"city": "Kyoto"}')),
        reply(McpCall("weather", "get_forecast", '{"city": "Kyoto"}', '{"sky": "clear"}'), Text("晴れです。")),
    )
    settings = kept(OPENAI_ENDPOINT=scripted.base_url, OPENAI_API_KEY=FAKE_KEY)
    user = a_user()
    async with instances(settings, 1) as [server]:
        conversation_id = await create(server, user)
        first = await ask(server, user, {"input": TIME, "conversation_id": conversation_id})
        second = await ask(
            server, user, {"input": [{"role": "user", "content": WEATHER}], "conversation_id": conversation_id}
        )
        [asked] = second.payloads("approval.request")
        approval = {"approval_request_id": asked["approval_request_id"], "approve": False}
        third = await ask(server, user, {"approvals": [approval], "conversation_id": conversation_id})
        got = await get(server, user, conversation_id)

    sent = scripted.requests
    assert [request.get("conversation") for request in sent] == [{"id": conversation_id}] * 4
    assert all("previous_response_id" not in request for request in sent)
    assert [item["type"] for item in sent[1]["input"]] == ["function_call_output"]
    assert sent[3]["input"] == [{"type": "mcp_approval_response", "approval_request_id": asked["approval_request_id"],
                                 "approve": False}]  # fmt: skip
    answered, asking, after = as_streamed(first), as_streamed(second), as_streamed(third)
    asking["calls"][0]["approve"] = False
    assert got["messages"] == [
        {"role": "user", "text": TIME, "attachments": []},
        answered,
        {"role": "user", "text": WEATHER, "attachments": []},
        asking,
        after,
    ]
    assert answered["citations"] == [CITATION]
    assert (answered["response_id"], asking["response_id"], after["response_id"]) == (
        "resp_scripted2", "resp_scripted3", "resp_scripted4"
    )  # fmt: skip
    assert got["title"] == TIME


async def test_approvals_in_a_conversation_answer_its_last_response(
    kept: Callable[..., Settings], scripted: ScriptedUpstream
) -> None:
    scripted.script(reply(Text("はい。")))
    settings = kept(OPENAI_ENDPOINT=scripted.base_url, OPENAI_API_KEY=FAKE_KEY)
    user = a_user()
    async with instances(settings, 1) as [server]:
        conversation_id = await create(server, user)
        unasked = {
            "approvals": [{"approval_request_id": "mcpr_x", "approve": True}],
            "conversation_id": conversation_id,
        }
        before_any = await server.client.post("/api/chat", json=unasked, headers=user)
        await ask(server, user, {"input": "こんにちは", "conversation_id": conversation_id})
        after_one = await server.client.post("/api/chat", json=unasked, headers=user)
    for refused in (before_any, after_one):
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "unknown_approval"
    assert len(scripted.requests) == 1


async def test_someone_elses_conversation_is_not_found_on_either_instance(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    owner, stranger = a_user(), a_user()
    async with instances(kept()) as servers:
        conversation_id = await create(servers[0], owner)
        await ask(servers[0], owner, {"input": EVENTS, "conversation_id": conversation_id})
        sent = len(upstream.records)
        tried = []
        for server in servers:
            client, path = server.client, f"/api/conversations/{conversation_id}"
            tried += [
                await client.get(path, headers=stranger),
                await client.patch(path, json={"title": "盗った"}, headers=stranger),
                await client.delete(path, headers=stranger),
                await client.post(
                    "/api/chat", json={"input": "x", "conversation_id": conversation_id}, headers=stranger
                ),
            ]
            listed = (await client.get("/api/conversations", headers=stranger)).json()
            assert listed == {"data": [], "has_more": False, "next": None}
        reached = len(upstream.records)
        unknown = await servers[1].client.get("/api/conversations/conv_unknown123", headers=owner)
        still = await get(servers[1], owner, conversation_id)
    assert [(answer.status_code, answer.json()) for answer in tried] == [(404, unknown.json())] * 8
    assert unknown.json()["error"]["code"] == "conversation_not_found"
    assert reached == sent  # nothing of theirs reached the model service
    assert still["title"] == EVENTS
    assert len(still["messages"]) == 2


async def test_two_hundred_and_fifty_conversations_come_in_pages_newest_first(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    user = a_user()
    async with instances(kept(), 1) as [server]:
        created = await asyncio.gather(*(create(server, user) for _ in range(250)))
        pages = []
        after: str | None = None
        while True:
            query = {"limit": "100"} | ({"after": after} if after else {})
            page = (await server.client.get("/api/conversations", params=query, headers=user)).json()
            pages.append(page)
            after = page["next"]
            if not page["has_more"]:
                break
        default = (await server.client.get("/api/conversations", headers=user)).json()
    listed = [summary for page in pages for summary in page["data"]]
    assert [len(page["data"]) for page in pages] == [100, 100, 50]
    assert sorted(summary["id"] for summary in listed) == sorted(created)
    order = [(summary["updated_at"], summary["id"]) for summary in listed]
    assert [entry[0] for entry in order] == sorted((entry[0] for entry in order), reverse=True)
    assert (pages[-1]["has_more"], pages[-1]["next"]) == (False, None)
    assert len(default["data"]) == 20
    assert default["data"] == listed[:20]


def last_updated(azurite: Azurite, user: dict[str, str], conversation_id: str, days_ago: float) -> None:
    """Make the conversation's row say it was last updated `days_ago` (as if that much time had passed)."""
    owner = Owners(OWNER_SECRET.encode()).of("key:" + user["x-functions-key"])
    then = int((time.time() - days_ago * 86_400) * 1000)
    with TableClient.from_connection_string(azurite.connection_string, TABLE) as table:
        entity = {"PartitionKey": owner, "RowKey": conversation_id, "updated_at": EntityProperty(then, EdmType.INT64)}
        table.update_entity(entity, mode=UpdateMode.MERGE)


async def test_a_list_deletes_what_is_past_its_retention(
    kept: Callable[..., Settings], upstream: FaultyUpstream, azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0, text="はい。"))
    user = a_user()
    finished = Finished()  # requests whose handling has ended, the work after their answer included
    async with asynccontextmanager(serve)(
        ChatService(kept(CONVERSATION_RETENTION_DAYS="2")), wrap=finished.wrap
    ) as server:
        old, recent = await create(server, user), await create(server, user)
        await ask(server, user, {"input": "古い質問", "conversation_id": old})
        await ask(server, user, {"input": "新しい質問", "conversation_id": recent})
        old_response_id = next(
            str(stored.id) for stored in upstream._stored if stored.response()["conversation"] == {"id": old}
        )
        await finished.wait_for(4)  # the answers' records are ended: neither is active any more
        last_updated(azurite, user, old, days_ago=2.01)
        last_updated(azurite, user, recent, days_ago=1.99)
        listed = (await server.client.get("/api/conversations", headers=user)).json()  # deletes `old`, once answered
        await finished.wait_for(5)
        gone = await server.client.get(f"/api/conversations/{old}", headers=user)
    assert [summary["id"] for summary in listed["data"]] == [recent]
    assert gone.status_code == 404
    assert old not in upstream.conversations._conversations  # deleted upstream, with its responses
    assert upstream.stored(old_response_id) is None
    assert recent in upstream.conversations._conversations


async def test_kept_until_deleted_with_retention_zero(
    kept: Callable[..., Settings], upstream: FaultyUpstream, azurite: Azurite
) -> None:
    user = a_user()
    async with instances(kept(CONVERSATION_RETENTION_DAYS="0"), 1) as [server]:
        conversation_id = await create(server, user)
        last_updated(azurite, user, conversation_id, days_ago=10_000)
        listed = (await server.client.get("/api/conversations", headers=user)).json()
    assert [summary["id"] for summary in listed["data"]] == [conversation_id]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "param"),
    [
        ("GET", "/api/conversations/conv_bad!id", None, 400, "invalid_conversation_id", None),
        ("GET", "/api/conversations/resp_123", None, 400, "invalid_conversation_id", None),
        ("DELETE", "/api/conversations/" + "conv_" + "a" * 201, None, 400, "invalid_conversation_id", None),
        ("PATCH", "/api/conversations/{id}", {"title": "x" * 201}, 400, "invalid_request", "title"),
        ("PATCH", "/api/conversations/{id}", {"title": "   "}, 400, "invalid_request", "title"),
        ("PATCH", "/api/conversations/{id}", {"title": "一行目\n二行目"}, 400, "invalid_request", "title"),
        ("PATCH", "/api/conversations/{id}", {"title": "x", "pinned": True}, 400, "invalid_request", "title"),
        ("PATCH", "/api/conversations/{id}", b"{not json", 400, "invalid_json", None),
        ("GET", "/api/conversations?limit=0", None, 400, "invalid_request", "limit"),
        ("GET", "/api/conversations?limit=101", None, 400, "invalid_request", "limit"),
        ("GET", "/api/conversations?after=yesterday", None, 400, "invalid_cursor", None),
        (
            "POST",
            "/api/chat",
            {"input": "x", "conversation_id": "conv_1", "previous_response_id": "resp_1"},
            400,
            "invalid_request",
            "conversation_id",
        ),
        ("POST", "/api/chat", {"input": "x", "conversation_id": "resp_1"}, 400, "invalid_request", "conversation_id"),
        ("POST", "/api/chat", {"input": "x", "conversation_id": 7}, 400, "invalid_request", "conversation_id"),
        ("POST", "/api/chat", {"input": "x", "conversation_id": "conv_nobodys"}, 404, "conversation_not_found", None),
        ("PUT", "/api/conversations/{id}", None, 405, "method_not_allowed", None),
        ("DELETE", "/api/conversations", None, 405, "method_not_allowed", None),
    ],
)
async def test_every_bad_input_gets_a_clear_error_and_loses_nothing(
    kept: Callable[..., Settings],
    upstream: FaultyUpstream,
    method: str,
    path: str,
    body: object,
    status: int,
    code: str,
    param: str | None,
) -> None:
    user = a_user()
    async with instances(kept(), 1) as [server]:
        conversation_id = await create(server, user)
        content = body if isinstance(body, bytes) else None
        answer = await server.client.request(
            method,
            path.replace("{id}", conversation_id),
            json=body if not isinstance(body, bytes) else None,
            content=content,
            headers={**user, **({"content-type": "application/json"} if content else {})},
        )
        still = await get(server, user, conversation_id)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error.get("param")) == (code, param)
    assert still["title"] is None  # nothing changed
    assert [record for record in upstream.records if record.method == "POST"] == []


def unreachable(make_settings: Callable[..., Settings], azurite: Azurite) -> Settings:
    """Settings whose storage account cannot be reached (the discard port)."""
    closed = azurite.connection_string.replace(f"127.0.0.1:{azurite.port}", "127.0.0.1:9")
    return make_settings(OWNER_HASH_SECRET=OWNER_SECRET, AzureWebJobsStorage=closed)


async def test_an_unreachable_storage_account_is_503(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, azurite: Azurite
) -> None:
    user = a_user()
    kept_upstream = set(upstream.conversations._conversations)
    async with instances(unreachable(make_settings, azurite), 1) as [server]:
        health = (await server.client.get("/api/health")).json()
        refused = [
            await server.client.post("/api/conversations", headers=user),
            await server.client.get("/api/conversations", headers=user),
            await server.client.get("/api/conversations/conv_abc", headers=user),
            await server.client.patch("/api/conversations/conv_abc", json={"title": "x"}, headers=user),
            await server.client.delete("/api/conversations/conv_abc", headers=user),
            await server.client.post("/api/chat", json={"input": "x", "conversation_id": "conv_abc"}, headers=user),
        ]
    assert health["conversations"] is True  # what it can do, were the account there
    for answer in refused:
        assert (answer.status_code, answer.json()["error"]["code"]) == (503, "conversations_unavailable")
        assert "AccountKey" not in answer.text
    assert [record for record in upstream.records if record.method == "POST"] == []  # the chat went nowhere
    assert set(upstream.conversations._conversations) == kept_upstream  # the one created was deleted again


async def test_a_chat_without_a_conversation_still_works_when_the_storage_account_is_down(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, azurite: Azurite
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    async with instances(unreachable(make_settings, azurite), 1) as [server]:
        plain = await chat(server.client, {"input": EVENTS}, headers=a_user())
    assert plain.status == 200
    assert plain.text == answer_for(EVENTS).text
    assert [event.event for event in plain.terminals] == ["response.completed"]


@pytest.mark.parametrize("missing", [404, 405])
async def test_auto_turns_them_off_for_an_upstream_without_the_api(
    kept: Callable[..., Settings], scripted: ScriptedUpstream, missing: int
) -> None:
    scripted.conversations.missing = missing
    scripted.script(reply(Text("はい。")))
    user = a_user()
    async with instances(kept(OPENAI_ENDPOINT=scripted.base_url, OPENAI_API_KEY=FAKE_KEY), 1) as [server]:
        before = (await server.client.get("/api/health")).json()
        refused = await server.client.post("/api/conversations", headers=user)
        after = (await server.client.get("/api/health")).json()
        listed = await server.client.get("/api/conversations", headers=user)
        plain = await chat(server.client, {"input": "こんにちは"}, headers=user)
    assert (before["conversations"], after["conversations"]) == (True, False)
    for answer in (refused, listed):
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "conversations_disabled")
    assert plain.text == "はい。"


async def test_on_keeps_them_on_and_says_the_upstream_has_no_api(
    kept: Callable[..., Settings], scripted: ScriptedUpstream
) -> None:
    scripted.conversations.missing = 404
    settings = kept(OPENAI_ENDPOINT=scripted.base_url, OPENAI_API_KEY=FAKE_KEY, CONVERSATIONS="on")
    async with instances(settings, 1) as [server]:
        refused = await server.client.post("/api/conversations", headers=a_user())
        health = (await server.client.get("/api/health")).json()
    assert (refused.status_code, refused.json()["error"]["code"]) == (502, "upstream_not_found")
    assert health["conversations"] is True


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"CONVERSATIONS": "off", "OWNER_HASH_SECRET": OWNER_SECRET}, id="off"),
        pytest.param({}, id="auto without the owner secret or storage"),
    ],
)
async def test_off_says_so_in_health_and_on_every_route(
    make_settings: Callable[..., Settings], upstream: FaultyUpstream, azurite: Azurite, environ: dict[str, str]
) -> None:
    settings = make_settings(AzureWebJobsStorage=azurite.connection_string, **environ)
    async with instances(settings, 1) as [server]:
        health = (await server.client.get("/api/health")).json()
        answers = [
            await server.client.post("/api/conversations"),
            await server.client.get("/api/conversations"),
            await server.client.delete("/api/conversations/conv_abc"),
            await server.client.post("/api/chat", json={"input": "x", "conversation_id": "conv_abc"}),
        ]
    assert health["conversations"] is False
    assert {(answer.status_code, answer.json()["error"]["code"]) for answer in answers} == {
        (404, "conversations_disabled")
    }


def test_on_without_what_it_needs_stops_the_app_at_start_up() -> None:
    with pytest.raises(ValueError, match="CONVERSATIONS=on needs OWNER_HASH_SECRET and AzureWebJobsStorage"):
        load_settings({"CONVERSATIONS": "on"})


async def test_a_budget_counts_the_conversation_so_far_as_the_next_questions_context(
    kept: Callable[..., Settings], upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget reserves the upper bound of what an answer costs before it is asked for: within a
    # conversation that includes the conversation so far, which the last response's usage counts.
    upstream.set_scenario(Scenario(delta_seconds=0, text="はい、そうです。"))
    reserved: list[int] = []
    real_reserve = Budget.reserve

    async def reserve(budget: Budget, owner: str, answer_id: str, tokens: int) -> Hold:
        reserved.append(tokens)
        return await real_reserve(budget, owner, answer_id, tokens)

    monkeypatch.setattr(Budget, "reserve", reserve)
    user = a_user()
    async with instances(kept(USER_DAILY_TOKENS="1000000"), 1) as [server]:
        conversation_id = await create(server, user)
        first = await ask(server, user, {"input": "同じ質問", "conversation_id": conversation_id})
        await ask(server, user, {"input": "同じ質問", "conversation_id": conversation_id})
    usage = first.payloads("response.completed")[0]["usage"]
    assert reserved[1] - reserved[0] == usage["input_tokens"] + usage["output_tokens"]


async def test_a_question_with_a_photo_and_a_pdf_comes_back_with_them(
    kept: Callable[..., Settings], upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0))
    user = a_user()
    photo, guide = image_part(image("JPEG"), "image/jpeg"), file_part(pdf(), "旅のしおり.pdf")
    async with instances(kept(), 1) as [server]:
        conversation_id = await create(server, user)
        await ask(server, user, {**asking(photo, guide, text="これは何ですか？"), "conversation_id": conversation_id})
        got = await get(server, user, conversation_id)
    [posted] = [record.request for record in upstream.records if record.method == "POST"]
    sent = [part for part in posted["input"][0]["content"] if part["type"] == "input_image"]
    assert got["messages"][0] == {
        "role": "user",
        "text": "これは何ですか？",
        "attachments": [{"kind": "image", "url": sent[0]["image_url"]}, {"kind": "pdf", "name": "旅のしおり.pdf"}],
    }
    assert got["title"] == "これは何ですか？"
