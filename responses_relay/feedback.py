"""Feedback on an answer (POST /api/feedback): the caller's vote, read and checked, and the
custom event that reports it to telemetry.

`{"response_id", "rating": "up"|"down", "comment"?}`; the comment is at most 1,000
characters and leaves the relay in the clear only with FEEDBACK_COMMENTS=store (otherwise
only its length does). The user appears only as the owner hash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from .chat_request import check_response_id
from .errors import INVALID_JSON, INVALID_REQUEST, HttpError

MAX_COMMENT_CHARS = 1000
MAX_BODY_BYTES = 16 * 1024
RATINGS = ("up", "down")
EVENT_NAME = "relay.feedback"
# What the Azure Monitor distro turns into a customEvent (Application Insights `customEvents`).
CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name"
_FIELDS = {"response_id", "rating", "comment"}

logger = logging.getLogger("responses_relay.feedback")
logger.setLevel(logging.INFO)  # an event, not a diagnostic: sent whatever the log level


@dataclass(frozen=True)
class Vote:
    response_id: str
    rating: str
    comment: str  # empty: none


def parse_vote(body: bytes) -> Vote:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HttpError(INVALID_JSON, "The body is not valid UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise _invalid("The body must be a JSON object: {response_id, rating, comment}", None)
    for name in document:
        if name not in _FIELDS:
            raise _invalid(f"Unknown field {str(name)[:40]!r}: only response_id, rating and comment", None)
    response_id = document.get("response_id")
    if not isinstance(response_id, str):
        raise _invalid("'response_id' must be a response id such as 'resp_abc123'", "response_id")
    check_response_id(response_id)
    rating = document.get("rating")
    if rating not in RATINGS:
        raise _invalid("'rating' must be 'up' or 'down'", "rating")
    comment = document.get("comment") or ""
    if not isinstance(comment, str):
        raise _invalid("'comment' must be a string", "comment")
    if len(comment) > MAX_COMMENT_CHARS:
        raise _invalid(f"'comment' has {len(comment)} characters; at most {MAX_COMMENT_CHARS} are allowed", "comment")
    return Vote(response_id, rating, comment.strip())


def report(owner: str, vote: Vote, *, keep_comment: bool) -> None:
    """The vote as a telemetry custom event (and a log line), the comment only if kept."""
    dimensions: dict[str, Any] = {
        CUSTOM_EVENT_ATTRIBUTE: EVENT_NAME,
        "feedback_owner": owner,
        "feedback_response_id": vote.response_id,
        "feedback_rating": vote.rating,
        "feedback_comment_chars": len(vote.comment),
    }
    if keep_comment and vote.comment:
        dimensions["feedback_comment"] = vote.comment
    logger.info("feedback: %s on %s", vote.rating, vote.response_id, extra=dimensions)


def _invalid(message: str, param: str | None) -> HttpError:
    return HttpError(INVALID_REQUEST, message, param=param)
