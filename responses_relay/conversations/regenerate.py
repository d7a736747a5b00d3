"""Regenerate: a conversation's last answer asked again from the same context, the new answer
replacing the old one for good.

The old answer is what follows the conversation's last question (a user's message) among its
items: messages, function calls and their outputs, reasoning, MCP items, approvals and the answer
after them. `plan` finds it, and refuses (409 `not_last_answer`) when the response the caller
names is not the conversation's last one, or not among those that made the old answer's items (a
last response that failed left none). A regeneration then, in this order:

1. takes the old answer's responses out of the conversation's index row, conditional on its ETag
   and only while no answer is active and the row's last response is still the one the plan saw
   (so two regenerations never both go on: the second is 409). They are kept in the row as
   dropped until their deletion upstream is known, so a delete of the conversation still finds
   them;
2. deletes those stored responses upstream;
3. deletes the old answer's items, then the question's (last: a failure before it leaves the
   question in the conversation);
4. and the chat asks the question again (its content as stored: text, images, files), as a new
   answer in the conversation, through the one path every chat takes.

When the new answer cannot be created after the question was deleted, or it ends (failed, or
stopped) before its first response added its items to the conversation, the question is put back:
appended again, where it was, as the conversation's last item. A conversation that so ends with a
question alone has it asked again by a regenerate that names the answer regenerated away (any
response no longer the conversation's); the question is then the only item deleted, and the delete
that finds it gone first (another regenerate took it) is 409 `answer_in_progress`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..chat_request import ChatRequest
from ..errors import ANSWER_IN_PROGRESS, CONVERSATION_NOT_FOUND, NOT_LAST_ANSWER, HttpError
from ..storage.conversations import ResponseEntry
from ..upstream import Upstream
from .answer import ConversationAnswer, ConversationChat
from .api import ConversationApi, bounded, is_question, settled
from .unreachable import reaching_the_index

if TYPE_CHECKING:
    from ..events import Translator

logger = logging.getLogger("responses_relay.conversations")

_LEFT_OUT = frozenset({"failed", "cancelled"})  # a response that ends so adds no items to its conversation

# What runs once an answer's stream has ended, with its translator.
Ended = Callable[["Translator"], Awaitable[None]]


@dataclass(frozen=True)
class Exchange:
    """The conversation's last exchange, which a regeneration replaces."""

    question: dict[str, Any]  # the question's item, as the conversation holds it
    answer_items: tuple[str, ...]  # the old answer's item ids, newest first
    responses: tuple[str, ...]  # the old answer's responses, in order
    before: str | None  # the conversation's last response before the old answer
    last: str | None  # the conversation's last response now


def plan(
    responses: Sequence[ResponseEntry], named: str, items: Sequence[dict[str, Any]], first_outputs: Mapping[str, str]
) -> Exchange:
    """The exchange a regenerate naming `named` replaces. `responses`: the conversation's, in order;
    `items`: its items newest first, back to its last question (ConversationApi.last_exchange);
    `first_outputs`: response ids by the id of their first output item. 409 when `named` does not
    end the conversation's last answer."""
    ids = [entry.response_id for entry in responses]
    last = ids[-1] if ids else None
    asked = next((place for place, item in enumerate(items) if is_question(item)), None)
    if asked is None:
        raise _not_last()
    answer_items = tuple(str(item.get("id")) for item in items[:asked])
    answering = {first_outputs[item_id] for item_id in answer_items if item_id in first_outputs}
    if answer_items and (named != last or named not in answering):
        raise _not_last()
    if not answer_items and named in ids:  # a question alone: asked again only for an answer that is gone
        raise _not_last()
    start = min((ids.index(response_id) for response_id in answering), default=len(ids))
    return Exchange(items[asked], answer_items, tuple(ids[start:]), ids[start - 1] if start else None, last)


def asked_again(question: dict[str, Any]) -> dict[str, Any]:
    """The question's item as a new request's input message: its content as stored, parts and all."""
    content = question.get("content")
    if isinstance(content, list):
        content = [
            {name: value for name, value in part.items() if value is not None}
            for part in content
            if isinstance(part, dict)
        ]
    return {"role": "user", "content": content}


class Regeneration:
    """One regenerate of a conversation's last answer (see the module): what the chat asks, and
    what it clears before, and puts back if the new answer does not come."""

    def __init__(self, chat: ConversationChat, exchange: Exchange, upstream: Upstream) -> None:
        self.chat = chat  # its last response: the one before the old answer (the new answer's context)
        self.exchange = exchange
        self._upstream = upstream
        self._api = ConversationApi(upstream)
        self._question_deleted = False
        self._put_back = False

    def request(self, asked: ChatRequest) -> ChatRequest:
        """The chat request that asks the question again in the conversation."""
        return replace(asked, input=[asked_again(self.exchange.question)], regenerate=None)

    async def clear(self) -> None:
        """Take the old answer out of the conversation: from its index row, its stored responses,
        its items and its question (see the module). 409 when the conversation changed since the
        plan; an upstream failure before the question was deleted leaves the question in."""
        chat, exchange = self.chat, self.exchange
        async with reaching_the_index():
            dropped = await chat.index.drop_answer(chat.owner, chat.conversation_id, exchange.last, exchange.responses)
        if dropped is None:
            raise HttpError(CONVERSATION_NOT_FOUND, "No conversation has that id")
        done, row = dropped
        if not done and row.active_response_id is not None:
            raise HttpError(ANSWER_IN_PROGRESS, "The conversation's answer is still being generated")
        if not done:
            raise _not_last()
        await self._delete_responses()
        await bounded(self._api.delete_item(chat.conversation_id, item_id) for item_id in exchange.answer_items)
        took = await self._api.delete_item(chat.conversation_id, str(exchange.question.get("id")))
        if not took and not exchange.answer_items:
            raise HttpError(ANSWER_IN_PROGRESS, "The question is being asked again already")
        self._question_deleted = True

    async def _delete_responses(self) -> None:
        """Delete the old answer's stored responses; those whose deletion failed stay dropped in the
        row, for the conversation's delete to try again."""
        chat, responses = self.chat, self.exchange.responses
        results = await settled(self._api.delete_response(response_id) for response_id in responses)
        deleted = [response_id for response_id, result in zip(responses, results, strict=True)
                   if not isinstance(result, BaseException)]  # fmt: skip
        if len(deleted) < len(responses):
            logger.warning("%d stored responses of a regenerated answer not deleted", len(responses) - len(deleted))
        if deleted:
            try:
                await chat.index.forget_dropped(chat.owner, chat.conversation_id, deleted)
            except Exception as error:  # they stay dropped: the conversation's delete deletes them again
                logger.info("deleted responses still listed as dropped: %s", type(error).__name__)

    async def put_back(self) -> None:
        """Put the question back into the conversation, if it was taken out (once). Never raises:
        a failure is logged."""
        if not self._question_deleted or self._put_back:
            return
        self._put_back = True
        try:
            await self._api.add_items(self.chat.conversation_id, [asked_again(self.exchange.question)])
        except Exception as error:
            logger.error("a regenerated question could not be put back: %s", type(error).__name__)

    def after(self, answer: ConversationAnswer, ended: Ended | None) -> Ended:
        """What runs once the new answer's stream has ended, `ended` (if any) and before it a check:
        when the answer's first response added nothing to the conversation (it failed, or was
        stopped), the question is put back. The check never raises."""

        async def checked(translator: Translator) -> None:
            first = answer.first_response_id
            if first is not None:
                await self._put_back_unless_answered(first)
            if ended is not None:
                await ended(translator)

        return checked

    async def _put_back_unless_answered(self, first_response_id: str) -> None:
        try:
            response = await self._upstream.retrieve(first_response_id)
        except Exception as error:
            logger.info("a regenerated answer's first response could not be read: %s", type(error).__name__)
            return
        if response.get("status") in _LEFT_OUT:
            await self.put_back()


def _not_last() -> HttpError:
    return HttpError(NOT_LAST_ANSWER, "'regenerate' must name the response that ends the conversation's last answer")
