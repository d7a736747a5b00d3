"""An answer in a conversation, as the relay reads it: each response it reads (the first, or a
tool round's) is recorded in the conversation's index row before its first event goes on, as
the conversation's active answer, after its other responses; and the record is cleared once
the answer has ended (by itself, or with an error of its own). Not when its reader left: in
background mode the answer goes on, and another device resumes it from the record. A failing
index costs the record, not the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from ..round_views import RoundsView
from ..storage.conversations import ConversationIndex
from ..tool_rounds import ToolRounds
from ..tools import ToolResult
from ..upstream_events import Payload, StreamBroken

logger = logging.getLogger("responses_relay.conversations")


@dataclass(frozen=True)
class ConversationChat:
    """A chat in one of the owner's conversations (or a resume of an answer in one)."""

    index: ConversationIndex
    owner: str
    conversation_id: str
    last_response_id: str | None  # the conversation's last response when the chat came: approvals answer it

    def answer(self, rounds: ToolRounds, question: str | None) -> ConversationAnswer:
        """What the relay reads: `rounds`, recorded. `question` names a conversation nobody named yet."""
        return ConversationAnswer(rounds, self, question)

    async def begin(self, response_id: str, question: str | None) -> None:
        try:
            now = time.time_ns() // 1_000_000
            await self.index.begin_response(self.owner, self.conversation_id, response_id, question, now)
        except Exception as error:
            logger.warning("response %s not recorded in its conversation: %s", response_id, type(error).__name__)

    async def end(self, response_id: str) -> None:
        try:
            await self.index.end_response(self.owner, self.conversation_id, response_id)
        except Exception as error:
            logger.warning("the end of response %s not recorded: %s", response_id, type(error).__name__)


class ConversationAnswer(RoundsView):
    """`ToolRounds`, recorded (see the module); what the relay reads instead of them."""

    def __init__(self, rounds: ToolRounds, chat: ConversationChat, question: str | None) -> None:
        super().__init__(rounds)
        self._tool_rounds = rounds
        self._chat = chat
        self._question = question
        self.first_response_id: str | None = None  # the first response read, once its id is known

    @property
    def rounds(self) -> ToolRounds:
        return self._tool_rounds

    async def batches(self) -> AsyncGenerator[Sequence[Payload | ToolResult]]:
        recorded: str | None = None
        ended = False  # by itself, or with an error of its own: not cut short by its reader leaving
        try:
            async with aclosing(self._rounds.batches()) as batches:
                async for batch in batches:
                    reading = self._rounds.response_id
                    if reading is not None and reading != recorded:
                        await self._chat.begin(reading, self._question)
                        recorded = reading
                        self.first_response_id = self.first_response_id or reading
                    yield batch
            ended = True
        except StreamBroken:
            ended = True
            raise
        finally:
            if ended and recorded is not None:
                await self._chat.end(recorded)
