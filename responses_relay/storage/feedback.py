"""Feedback on answers, in table `feedback` (PartitionKey: the owner hash; RowKey: the
response id): one row per user and response, a second vote replacing the first. The comment
is kept only with FEEDBACK_COMMENTS=store; otherwise only its length is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from azure.core.exceptions import AzureError
from azure.data.tables import UpdateMode

from ..errors import FEEDBACK_UNAVAILABLE, HttpError
from ..feedback import Vote
from .tables import Tables

TABLE = "feedback"

logger = logging.getLogger("responses_relay.feedback")


class FeedbackRecords:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def record(self, owner: str, vote: Vote, *, keep_comment: bool) -> None:
        """Keep the vote (replacing the user's earlier one on that response); 503 when the table is unreachable."""
        entity = {
            "PartitionKey": owner,
            "RowKey": vote.response_id,
            "rating": vote.rating,
            "comment_chars": len(vote.comment),
            "at": datetime.now(UTC),
        }
        if keep_comment:
            entity["comment"] = vote.comment
        try:
            table = await self._tables.ensure(TABLE)
            await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as error:
            logger.warning("feedback table unreachable: %s", type(error).__name__)
            raise HttpError(FEEDBACK_UNAVAILABLE, "Feedback cannot be kept right now; retry later") from None
