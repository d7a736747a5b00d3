"""What the routes call: request handling for /api/chat (and resuming and cancelling a
response), /api/conversations, /api/feedback and /api/health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import runtime_info
from .access.auth import Authenticator
from .access.estimate import estimate_tokens
from .access.owner import Owners, previous_not_found
from .answer import Answer, answer_of, new_answer_id
from .chat_request import (
    ChatRequest,
    check_approvals,
    check_content_type,
    check_response_id,
    cursor,
    parse_chat_request,
    question_of,
    read_body,
)
from .errors import (
    CONVERSATIONS_DISABLED,
    FEEDBACK_NOT_KEPT,
    INTERNAL_ERROR,
    NOT_RESUMABLE,
    RESPONSE_NOT_FOUND,
    UPSTREAM_REJECTED,
    HttpError,
    error_response,
)
from .events import Translator
from .feedback import MAX_BODY_BYTES as FEEDBACK_BODY_BYTES
from .feedback import parse_vote, report
from .guide_tools import TOOLS
from .invocation import invocation_id
from .live_streams import Cancellable, LiveStreams
from .protocols import Encoder
from .relay import RelayStream
from .relay import Upstream as RelayUpstream
from .round_views import Around
from .settings import AttachmentSettings, Settings
from .sse_response import SSEResponse
from .telemetry.observer import Observer, RequestObserver
from .tool_rounds import ToolRounds
from .tools import Tool, Toolbox
from .upstream import TRANSPORT_NAMES, Upstream, check_proxy_environment
from .upstream_events import HealBudget, UpstreamEvents

if TYPE_CHECKING:  # imported when used: a configuration with an endpoint never needs the demo upstream
    from azure.core.credentials_async import AsyncTokenCredential

    from .access.budget import Budget, Hold, StoredResponse
    from .conversations.answer import ConversationAnswer, ConversationChat
    from .conversations.regenerate import Regeneration
    from .conversations.routes import Conversations
    from .demo import DemoUpstream
    from .storage.answers import AnswerRecords
    from .storage.feedback import FeedbackRecords
    from .storage.tables import Tables

logger = logging.getLogger("responses_relay")

_PARSED_ON_THE_LOOP_BYTES = 256 * 1024  # a larger body is parsed and checked off the event loop

# What runs once an answer's stream has ended, with its translator (its outcome, usage, response id).
Ended = Callable[[Translator], Awaitable[None]]

_shared_demo: DemoUpstream | None = None


class ChatService:
    def __init__(
        self,
        settings: Settings,
        *,
        demo: DemoUpstream | None = None,
        credential: AsyncTokenCredential | None = None,
        tools: Sequence[Tool] | None = None,
        observer: Observer | None = None,
    ) -> None:
        """`tools`: the function tools offered to the model; by default those TOOLS names. `observer`:
        telemetry's (`telemetry.configure`), told of each request's model calls, tool calls and end."""
        self.settings = settings
        self._observer = observer or Observer()
        offered = tools if tools is not None else [TOOLS[name] for name in settings.tools]
        self._toolbox = Toolbox(offered, settings.tool_timeout_seconds, threads=settings.tool_threads)
        self._demo = demo
        self._credential = credential
        self._upstream: Upstream | None = None
        self._lock = asyncio.Lock()
        self._live = LiveStreams()  # this instance's streams, for a cancel
        self._auth = Authenticator(settings.access)
        secret = settings.access.owner_secret
        self._owners = Owners(secret) if secret is not None else None
        self._tables = _tables(settings)
        self._budget = _budget(settings, self._tables, self._stored_response)
        self._feedback = _feedback(settings, self._tables)  # None: feedback is not kept here
        self._answers = _answers(settings, self._tables)
        self._conversations = _conversations(settings, self._tables)
        check_proxy_environment(settings)
        transport = TRANSPORT_NAMES[settings.transport]
        logger.info("upstream: %s, model %s, transport %s", settings.upstream_kind, settings.model, transport)
        if settings.endpoint is None:
            logger.warning("DEMO MODE: OPENAI_ENDPOINT is not set, answers come from the built-in demo upstream")

    @property
    def tables(self) -> Tables | None:
        """The Function App's storage account's tables, where state with owners is kept."""
        return self._tables

    @property
    def tool_names(self) -> frozenset[str]:
        """The names of the function tools the relay runs."""
        return self._toolbox.names

    async def respond(
        self, route: str, request: Request, answering: Callable[[RequestObserver], Awaitable[Response]]
    ) -> Response:
        """The response `answering` makes, observed as a request to `route` (chat or resume, also for
        another protocol's routes), or the error known before any byte of it went out, as plain HTTP."""
        observed = self._observer.request(route, request)
        return await self._respond(observed, answering(observed))

    async def chat(self, request: Request) -> Response:
        """POST /api/chat: the answer's stream."""
        return await self.respond("chat", request, partial(self._chat, request))

    async def resume(self, request: Request, response_id: str) -> Response:
        """GET /api/chat/{response_id}: the response's stream after the caller's last event id."""
        return await self.respond("resume", request, partial(self._resume, request, response_id))

    async def cancel(self, request: Request, response_id: str) -> Response:
        """POST /api/chat/{response_id}/cancel: stop generating. In background mode the response is
        cancelled upstream (streams of it on other instances then end too); otherwise the
        response's live stream on this instance is ended, which closes its upstream call."""
        observed = self._observer.request("cancel", request)
        return await self._respond(observed, self._cancel(request, response_id))

    async def conversations(self, request: Request) -> Response:
        """POST /api/conversations (create) and GET (the caller's, newest first)."""
        observed = self._observer.request("conversations", request)
        return await self._respond(observed, self._conversation_call(request, None))

    async def conversation(self, request: Request, conversation_id: str) -> Response:
        """GET, PATCH (rename) and DELETE /api/conversations/{conversation_id}."""
        observed = self._observer.request("conversation", request)
        return await self._respond(observed, self._conversation_call(request, conversation_id))

    async def _conversation_call(self, request: Request, conversation_id: str | None) -> Response:
        owner = await self.owner(request)
        conversations = self._kept_conversations()
        assert owner is not None, "conversations are kept only with owners"
        if conversation_id is None:
            return await conversations.collection(request, owner, await self.upstream())
        return await conversations.item(request, owner, conversation_id, await self.upstream())

    def _kept_conversations(self) -> Conversations:
        if self._conversations is None or not self._conversations.available:
            raise HttpError(CONVERSATIONS_DISABLED, "Conversations are off here (see /api/health)")
        return self._conversations

    async def feedback(self, request: Request) -> Response:
        """POST /api/feedback: the caller's vote on one of their answers, kept once per user and
        response (a second vote replaces the first) and reported to telemetry; 204."""
        observed = self._observer.request("feedback", request)
        return await self._respond(observed, self._feedback_vote(request))

    @property
    def keeps_feedback(self) -> bool:
        return self._feedback is not None

    async def _feedback_vote(self, request: Request) -> Response:
        owner = await self.owner(request)
        if owner is None or self._feedback is None:
            raise HttpError(
                FEEDBACK_NOT_KEPT,
                "Feedback is not kept here: it needs the storage account (AzureWebJobsStorage), OWNER_HASH_SECRET"
                " and a model service that keeps responses",
            )
        check_content_type(request)
        vote = parse_vote(await read_body(request, FEEDBACK_BODY_BYTES))
        await self._check_owner(await self.upstream(), vote.response_id, owner)
        keep_comment = self.settings.feedback_comments
        await self._feedback.record(owner, vote, keep_comment=keep_comment)
        report(owner, vote, keep_comment=keep_comment)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})

    async def owner(self, request: Request) -> str | None:
        """The caller's owner hash (None when owners are not kept); 401 for a missing or bad token."""
        identity = await self._auth.identity(request)
        return self._owners.of(identity) if self._owners is not None else None

    async def _check_owner(self, upstream: Upstream, response_id: str, owner: str | None) -> dict[str, Any] | None:
        """The stored response, when owners are kept and `owner` owns it (404 otherwise)."""
        if self._owners is not None and owner is not None:
            return await self._owners.check(upstream, response_id, owner)
        return None

    def _answer_of(self, answer_id: str | None, owner: str | None) -> Answer:
        # A reader waits for another to continue a round as long as that can take.
        return Answer(answer_id, owner, self._answers, follow_seconds=self.settings.continuation_seconds + 5)

    async def _chat(self, request: Request, observed: RequestObserver) -> Response:
        owner = await self.owner(request)
        check_content_type(request)
        body = await read_body(request, self.settings.max_body_bytes)
        if len(body) > _PARSED_ON_THE_LOOP_BYTES:  # attachments: decoding and checking them takes a while
            chat_request = await asyncio.to_thread(parse_chat_request, body, self.settings)
        else:
            chat_request = parse_chat_request(body, self.settings)
        return await self.answer(request, chat_request, owner, observed)

    async def answer(
        self,
        request: Request,
        chat_request: ChatRequest,
        owner: str | None,
        observed: RequestObserver,
        *,
        encoder: Encoder | None = None,
        around: Around | None = None,
        ended: Ended | None = None,
    ) -> Response:
        """The stream of a new answer to `chat_request`, in the protocol `encoder` speaks (the native
        one by default). `around` wraps what the stream reads (see round_views.py); `ended` gets the
        stream's translator once the stream has ended."""
        upstream = await self.upstream()
        regeneration = await self._regeneration(chat_request, owner, upstream)
        conversation: ConversationChat | None = None
        if regeneration is not None:  # the conversation's last question, asked again from before its answer
            conversation, chat_request = regeneration.chat, regeneration.request(chat_request)
        else:
            conversation = await self._conversation_chat(chat_request, owner)
        if conversation is not None:  # its last response: what approvals answer, and its context (for a budget)
            last = conversation.last_response_id
            looked_at = chat_request.approvals or self._budget is not None
            previous = await upstream.retrieve(last) if looked_at and last is not None else None
        else:
            previous = await self._previous(upstream, chat_request, owner)
        if chat_request.approvals:
            check_approvals(chat_request.approvals, previous or {})
        answer = self._answer_of(new_answer_id() if owner is not None else None, owner)
        input_estimate = self._input_estimate(upstream, chat_request, previous)
        hold = await self._reserve(answer, input_estimate)
        call = observed.model_call(upstream.base_url, chat_request)
        try:
            if regeneration is not None:  # the old answer goes only now, when the new one is about to be asked
                await regeneration.clear()
            response = await upstream.open(chat_request, owner=owner, answer=answer.answer_id)
        except Exception as error:
            if regeneration is not None:
                await regeneration.put_back()  # the question is never lost
            if isinstance(error, HttpError) and hold is not None and self._budget is not None:
                await self._budget.settle(hold, 0 if error.status < 500 else input_estimate)  # nothing was generated
            raise
        first = UpstreamEvents(response, call=call, **self._healing(upstream))
        stored = self.settings.stores_responses or conversation is not None
        rounds = self._rounds(upstream, first, chat_request, answer, observed, stored=stored,
                              input_estimate=input_estimate, hold=hold)  # fmt: skip
        read: ToolRounds | ConversationAnswer = rounds
        if conversation is not None:
            read = conversation.answer(rounds, question_of(chat_request))
            if regeneration is not None:  # the question put back if the new answer does not come
                ended = regeneration.after(read, ended)
        translator = Translator(redact=upstream.redact)
        deployment = upstream.answered_by(response)
        return self._relay(
            request, upstream, read, translator, owner, observed,
            hold=hold, deployment=deployment, encoder=encoder, around=around, ended=ended,
        )  # fmt: skip

    async def _regeneration(
        self, chat_request: ChatRequest, owner: str | None, upstream: Upstream
    ) -> Regeneration | None:
        """The regenerate the chat asks for, if it does (see conversations/regenerate.py)."""
        if chat_request.regenerate is None or chat_request.conversation_id is None:
            return None
        conversations = self._kept_conversations()
        assert owner is not None, "conversations are kept only with owners"
        return await conversations.regeneration(owner, chat_request.conversation_id, chat_request.regenerate, upstream)

    async def _conversation_chat(self, chat_request: ChatRequest, owner: str | None) -> ConversationChat | None:
        """The conversation the chat goes on with, if it names one: 404 when it is not the caller's."""
        if chat_request.conversation_id is None:
            return None
        conversations = self._kept_conversations()
        assert owner is not None, "conversations are kept only with owners"
        return await conversations.chat(owner, chat_request.conversation_id)

    def _input_estimate(self, upstream: Upstream, request: ChatRequest, previous: dict[str, Any] | None) -> int:
        """The first round's input, estimated in tokens: what is sent (instructions, tools, input), and
        the context a `previous_response_id` brings (that response's input and output)."""
        usage = previous.get("usage") if previous is not None else None
        context = [usage.get(key) for key in ("input_tokens", "output_tokens")] if isinstance(usage, dict) else []
        tools = upstream.tool_definitions(request.client_tools)
        sent = estimate_tokens(self.settings.instructions, tools, request.upstream_input())
        return sent + sum(tokens for tokens in context if type(tokens) is int)

    async def _reserve(self, answer: Answer, input_estimate: int) -> Hold | None:
        """With a budget: reserve what the answer can cost, its input and each round's output at most
        (429 `budget_exceeded` when it does not fit)."""
        if self._budget is None or answer.owner is None or answer.answer_id is None:
            return None
        rounds = 1 + self.settings.max_tool_rounds
        bound = input_estimate + rounds * self.settings.max_output_tokens
        return await self._budget.reserve(answer.owner, answer.answer_id, bound)

    async def _previous(
        self, upstream: Upstream, chat_request: ChatRequest, owner: str | None
    ) -> dict[str, Any] | None:
        """The stored response the chat continues, when it must be looked at: its owner is checked,
        or approvals answer its requests. 400 `previous_response_not_found` when it is not there."""
        previous = chat_request.previous_response_id
        if previous is None:
            return None
        if self._owners is not None and owner is not None:
            return await self._owners.check_previous(upstream, previous, owner)
        if not chat_request.approvals:
            return None
        try:
            return await upstream.retrieve(previous)
        except HttpError as error:
            if error.code != RESPONSE_NOT_FOUND.code:
                raise
            raise previous_not_found() from None

    async def _resume(self, request: Request, response_id: str, observed: RequestObserver) -> Response:
        owner = await self.owner(request)
        check_response_id(response_id)
        return await self.resume_answer(request, response_id, cursor(request), owner, observed)

    async def resume_answer(
        self,
        request: Request,
        response_id: str,
        after: int | None,
        owner: str | None,
        observed: RequestObserver,
        *,
        encoder: Encoder | None = None,
        around: Around | None = None,
        ended: Ended | None = None,
    ) -> Response:
        """The stream of a stored response after sequence number `after` (None: from its start),
        going on into its answer's next rounds, in the protocol `encoder` speaks."""
        self._check_resumable()
        upstream = await self.upstream()
        stored = await self._check_owner(upstream, response_id, owner)
        answer = self._answer_of(answer_of(stored) if stored is not None else None, owner)
        conversation = await self._resumed_conversation(stored, owner)
        call = observed.model_call(upstream.base_url, None)
        response = await upstream.resume(response_id, after)
        events = UpstreamEvents(response, response_id=response_id, after=after, call=call, **self._healing(upstream))
        translator = Translator(redact=upstream.redact, response_id=response_id)
        # A round that ends asking for tools is continued here too: this stream has the caller now.
        client_tools = self._client_tools(stored)
        if conversation is None:
            continuation = ChatRequest([], previous_response_id=response_id, client_tools=client_tools)
        else:
            continuation = ChatRequest([], conversation_id=conversation.conversation_id, client_tools=client_tools)
        hold = self._budget.hold(owner, answer.answer_id) if self._budget and owner and answer.answer_id else None
        rounds = self._rounds(upstream, events, continuation, answer, observed, stored=True, hold=hold, resumed=True)
        read = rounds if conversation is None else conversation.answer(rounds, None)
        return self._relay(
            request, upstream, read, translator, owner, observed, hold=hold, encoder=encoder, around=around, ended=ended
        )

    async def _resumed_conversation(self, stored: dict[str, Any] | None, owner: str | None) -> ConversationChat | None:
        """The conversation of the owner's that a resumed response is part of, if any."""
        if self._conversations is None or stored is None or owner is None:
            return None
        return await self._conversations.of_response(owner, stored)

    async def _cancel(self, request: Request, response_id: str) -> Response:
        owner = await self.owner(request)
        check_response_id(response_id)
        stored = await self._stored_for_cancel(response_id, owner)
        live = [stream for stream in self._live.of_response(response_id) if stream.owner == owner]
        answer_id = answer_of(stored) if stored is not None else None
        row = None
        if self._answers is not None and owner is not None and answer_id is not None:
            row = await self._answers.cancel(owner, answer_id)  # no later round starts, on any instance
        if not self.settings.resumable and not live and row is None:
            raise HttpError(RESPONSE_NOT_FOUND, "No stream of that response is live on this instance")
        latest = row.rounds[-1] if row is not None and row.rounds else response_id  # the answer's last round
        status = "cancelled"
        try:
            if self.settings.resumable:
                status = await self._cancel_upstream(latest)
        finally:
            # The caller asked to stop: this instance's streams of the answer end even if the upstream
            # failed to say so; but one reading the answer's last round, which finished first, ends with
            # that round's own terminal event.
            stopping = [stream for stream in live if status == "cancelled" or _goes_on_after(stream, latest)]
            for stream in stopping:
                stream.cancel()
        between_rounds = row is not None and row.claimed == latest  # its calls ran; no round follows now
        status = "cancelled" if stopping or between_rounds else status
        return JSONResponse({"id": response_id, "status": status}, headers={"Cache-Control": "no-store"})

    async def _stored_for_cancel(self, response_id: str, owner: str | None) -> dict[str, Any] | None:
        """The response a cancel names, as stored, checked against its owner: in background mode
        always (someone else's is 404); otherwise only to find its answer across instances."""
        if self.settings.resumable:
            return await self._check_owner(await self.upstream(), response_id, owner)
        if self._answers is None or owner is None:
            return None
        try:
            return await self._check_owner(await self.upstream(), response_id, owner)
        except HttpError:
            return None  # not stored, or not the caller's: only this instance's live streams can be stopped

    async def _cancel_upstream(self, response_id: str) -> str:
        """Cancel a background response upstream; its status after that."""
        upstream = await self.upstream()
        try:
            response = await upstream.cancel(response_id)
        except HttpError as error:
            if error.code != UPSTREAM_REJECTED.code:
                raise
            response = await upstream.retrieve(response_id)  # refused: it had finished already, probably
        return _text(response, "status") or "cancelled"

    async def _respond(self, observed: RequestObserver, answering: Awaitable[Response]) -> Response:
        """The response, or the error known before any byte of it went out, as plain HTTP."""
        try:
            return observed.respond(await answering)
        except HttpError as error:
            logger.info("%s refused: %d %s", observed.route, error.status, error.code)
            observed.error(error.code)
            return observed.respond(error.to_response())
        except Exception:
            logger.exception("%s failed before the stream started", observed.route)
            observed.error(INTERNAL_ERROR.code)
            return observed.respond(error_response(INTERNAL_ERROR, "The relay failed; the failure is logged"))

    def _healing(self, upstream: Upstream) -> dict[str, Any]:
        """How an upstream stream heals: only a stored (background) response can."""
        settings = self.settings
        return {
            "stored": upstream if settings.resumable else None,
            "budget": HealBudget(settings.heal_attempts, settings.heal_seconds),
        }

    async def _open_round(
        self, upstream: Upstream, request: ChatRequest, answer: Answer, observed: RequestObserver
    ) -> UpstreamEvents:
        call = observed.model_call(upstream.base_url, request)
        response = await upstream.open(request, owner=answer.owner, answer=answer.answer_id)
        return UpstreamEvents(response, call=call, **self._healing(upstream))

    async def _follow_round(self, upstream: Upstream, response_id: str, observed: RequestObserver) -> UpstreamEvents:
        """A round another reader opened, from its start."""
        call = observed.model_call(upstream.base_url, None)
        response = await upstream.resume(response_id, None)
        return UpstreamEvents(response, response_id=response_id, call=call, **self._healing(upstream))

    def _rounds(
        self,
        upstream: Upstream,
        first: UpstreamEvents,
        request: ChatRequest,
        answer: Answer,
        observed: RequestObserver,
        *,
        stored: bool,
        input_estimate: int = 0,
        hold: Hold | None = None,
        resumed: bool = False,
    ) -> ToolRounds:
        """The answer's rounds from its first stream; `request` is what continuations are made from;
        `resumed`: the first stream is a round the caller named, not the answer's start."""
        budget = self._budget
        return ToolRounds(
            first,
            request=request,
            open_round=lambda next_request: self._open_round(upstream, next_request, answer, observed),
            toolbox=self._toolbox,
            max_rounds=self.settings.max_tool_rounds,
            stored=stored,
            answer=answer,
            follow_round=lambda response_id: self._follow_round(upstream, response_id, observed),
            cancel_round=upstream.cancel if self.settings.resumable else None,
            hand_off=self._hand_off(),
            resumed=resumed,
            input_estimate=input_estimate,
            reserve_round=None if budget is None or hold is None else lambda tokens: budget.grow(hold, tokens),
            observer=observed,
        )

    def _hand_off(self) -> tuple[float, float] | None:
        """When a stream starting now hands its caller off (resumable streams with a time limit), and
        the longest a round's continuation takes."""
        limit = self.settings.stream_time_limit_seconds
        if not self.settings.resumable or limit is None:
            return None
        return time.monotonic() + limit, self.settings.continuation_seconds

    def _relay(
        self,
        request: Request,
        upstream: Upstream,
        rounds: ToolRounds | ConversationAnswer,
        translator: Translator,
        owner: str | None,
        observed: RequestObserver,
        *,
        hold: Hold | None = None,
        deployment: str | None = None,
        encoder: Encoder | None = None,
        around: Around | None = None,
        ended: Ended | None = None,
    ) -> Response:
        """In background mode, a response the stream creates (the first, or a tool round's) goes on
        whoever is connected: one whose id never reached its caller is cancelled (see RelayStream).
        `deployment`: the one that answered, for the stream's record."""
        reads: RelayUpstream = around(rounds) if around is not None else rounds
        tool_rounds = rounds if isinstance(rounds, ToolRounds) else rounds.rounds
        stream = RelayStream(
            reads,
            translator,
            heartbeat_seconds=self.settings.heartbeat_seconds,
            buffer_bytes=self.settings.buffer_bytes,
            invocation_id=invocation_id(request),
            cancel_orphan=partial(_cancel_orphan, upstream, tool_rounds.answer) if self.settings.resumable else None,
            live=self._live,
            time_limit_seconds=self.settings.stream_time_limit_seconds,
            hands_off=self.settings.resumable,
            deployment=deployment,
            owner=owner,
            observer=observed,
            encoder=encoder,
        )
        answer = SSEResponse(stream)
        after_stream = BackgroundTasks()  # what needs the ended stream, once it has ended
        if self._budget is not None and hold is not None:  # what the answer cost
            after_stream.add_task(self._account, hold, translator, tool_rounds)
        if ended is not None:
            after_stream.add_task(ended, translator)
        answer.background = after_stream if after_stream.tasks else None
        return answer

    async def _account(self, hold: Hold, translator: Translator, rounds: ToolRounds) -> None:
        """Settle the answer's hold after one of its streams, or leave it to a round still running."""
        assert self._budget is not None
        usage = translator.usage if translator.finished and translator.outcome != "handed_off" else None
        total = usage.get("total_tokens") if usage is not None else None
        running = rounds.response_id if self.settings.resumable else None
        await self._budget.account(hold, total=total, spent=rounds.spent, running=running, unknown=rounds.unread_cost)

    async def _stored_response(self, response_id: str) -> dict[str, Any] | None:
        """A stored response, or None when it cannot be read (for the budget's settlements)."""
        try:
            return await (await self.upstream()).retrieve(response_id)
        except HttpError:
            return None

    def _client_tools(self, stored: dict[str, Any] | None) -> tuple[dict[str, Any], ...]:
        """The caller's own function tools a stored response was offered (those the relay does not run)."""
        tools = stored.get("tools") if stored is not None else None
        return tuple(
            tool
            for tool in (tools if isinstance(tools, list) else [])
            if isinstance(tool, dict) and tool.get("type") == "function" and tool.get("name") not in self.tool_names
        )

    def _check_resumable(self) -> None:
        if not self.settings.resumable:
            raise HttpError(
                NOT_RESUMABLE, "Responses are not resumable here: the relay runs with RESUMABLE_STREAMS off"
            )

    def health(self) -> Response:
        settings = self.settings
        daily = settings.access.daily_tokens
        return JSONResponse(
            {
                "status": "ok",
                "upstream": settings.upstream_kind,
                "model": settings.model,
                "resumable": settings.resumable,
                "auth": settings.access.mode,
                "python": runtime_info.python_version(),
                "worker": runtime_info.worker(),
                "stores_responses": settings.stores_responses,
                "conversations": self._conversations is not None and self._conversations.available,
                # A daily budget reserves what an answer can cost before the call and settles to what it cost.
                "budget": None if daily is None else {"daily_tokens": daily, "mode": "reserve_then_settle"},
                "feedback": self.keeps_feedback,
                "limits": {
                    "max_body_bytes": settings.max_body_bytes,
                    "max_messages": settings.max_messages,
                    "max_message_chars": settings.max_message_chars,
                    **_attachment_limits(settings.attachments),
                },
            }
        )

    async def upstream(self) -> Upstream:
        """The upstream client, made on first use inside the serving event loop."""
        if self._upstream is not None:
            return self._upstream
        async with self._lock:
            if self._upstream is None:
                if self.settings.endpoint is not None:
                    base_url = self.settings.endpoint
                else:
                    base_url = await asyncio.to_thread(self._demo_upstream().start)
                self._upstream = Upstream(
                    self.settings, base_url, credential=self._credential, function_tools=self._toolbox.definitions()
                )
            return self._upstream

    def _demo_upstream(self) -> DemoUpstream:
        global _shared_demo
        if self._demo is None:
            if _shared_demo is None:
                from .demo import DemoUpstream

                _shared_demo = DemoUpstream(self.settings.demo_delta_seconds)
            self._demo = _shared_demo
        return self._demo

    async def aclose(self) -> None:
        self._toolbox.close()
        await self._auth.aclose()
        if self._tables is not None:
            await self._tables.aclose()
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None


def _tables(settings: Settings) -> Tables | None:
    """The storage account's tables, where there is one and what it keeps has owners (answers,
    budgets); azure-data-tables is imported only then."""
    if settings.storage is None or settings.access.owner_secret is None:
        return None
    from .storage.tables import Tables

    return Tables(settings.storage)


def _answers(settings: Settings, tables: Tables | None) -> AnswerRecords | None:
    """Answers recorded across instances: who continues each round, stops, each round's usage."""
    if tables is None:
        return None
    from .storage.answers import AnswerRecords

    return AnswerRecords(tables, claim_seconds=settings.continuation_seconds + 5)


def _budget(settings: Settings, tables: Tables | None, stored_response: StoredResponse) -> Budget | None:
    """USER_DAILY_TOKENS' keeper."""
    if settings.access.daily_tokens is None or tables is None:
        return None
    from .access.budget import Budget

    return Budget(settings.access.daily_tokens, tables, stored_response=stored_response)


def _feedback(settings: Settings, tables: Tables | None) -> FeedbackRecords | None:
    """Feedback's keeper: where there is storage with owners to key it by (the tables), and stored
    responses to check those owners against."""
    if tables is None or not settings.stores_responses:
        return None
    from .storage.feedback import FeedbackRecords

    return FeedbackRecords(tables)


def _attachment_limits(attachments: AttachmentSettings | None) -> dict[str, int]:
    """What a page checks before it sends attachments; `max_attachments` 0: none are taken."""
    if attachments is None:
        return {"max_attachments": 0}
    return {
        "max_attachments": attachments.max_attachments,
        "max_attachment_bytes": attachments.max_attachment_bytes,
        "max_image_pixels": attachments.max_image_pixels,
    }


def _goes_on_after(stream: Cancellable, response_id: str) -> bool:
    """The stream will read more than `response_id`: it runs its calls, opens or reads another round."""
    return stream.between_rounds or stream.reading != response_id


def _conversations(settings: Settings, tables: Tables | None) -> Conversations | None:
    """CONVERSATIONS' keeper; or None, logged, when they are off."""
    if settings.conversations is None or tables is None:
        logger.info("conversations: off (CONVERSATIONS=off, or OWNER_HASH_SECRET or the storage account is not set)")
        return None
    from .conversations.routes import Conversations

    return Conversations(settings.conversations, tables, resumable=settings.resumable)


def _text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


async def _cancel_orphan(upstream: Upstream, answer: Answer, response_id: str) -> bool:
    """Cancel a response whose id never reached its caller; not a round the answer's record names,
    which a resume of the round before it reaches (False then)."""
    if answer.recorded(response_id):
        return False
    await upstream.cancel(response_id)
    return True
