"""A storage account that cannot be reached: the conversations' routes, and a chat in a
conversation, answer 503 `conversations_unavailable` (the failure logged, never its details)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from azure.core.exceptions import AzureError

from ..errors import CONVERSATIONS_UNAVAILABLE, HttpError

logger = logging.getLogger("responses_relay.conversations")


@asynccontextmanager
async def reaching_the_index() -> AsyncIterator[None]:
    try:
        yield
    except AzureError as error:
        logger.warning("conversations' index unreachable: %s", type(error).__name__)
        raise HttpError(CONVERSATIONS_UNAVAILABLE, "Conversations cannot be reached right now; retry later") from None
