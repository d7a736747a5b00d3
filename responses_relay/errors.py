"""Every error code the relay can send, in one catalogue, and the HTTP form of those
answered before the first byte of a stream.

An error known before the stream starts is plain HTTP with a JSON body
`{"error": {"code", "message"[, "param"]}}`; one that happens after it is an `error`
event, the stream's terminal event. docs/api.md lists exactly this catalogue (a test
checks it). Besides these, an `error` event may carry the upstream's own code (for
example `server_error`) for its `error` events and `response.failed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from starlette.responses import Response


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int | None  # the HTTP status when it is answered before the stream; None: only in a stream
    in_stream: bool  # also (or only) sent as an `error` event after the stream started
    meaning: str


CATALOGUE: dict[str, ErrorCode] = {}


def _entry(code: str, status: int | None, meaning: str, *, in_stream: bool = False) -> ErrorCode:
    entry = CATALOGUE[code] = ErrorCode(code, status, in_stream or status is None, meaning)
    return entry


# The caller's request.
INVALID_JSON = _entry("invalid_json", 400, "the body is not UTF-8 JSON")
INVALID_REQUEST = _entry("invalid_request", 400, "a field is missing or wrong; `param` names it")
INVALID_RESPONSE_ID = _entry("invalid_response_id", 400, "resume or cancel: the response id is malformed")
UNKNOWN_APPROVAL = _entry(
    "unknown_approval", 400, "an `approval_request_id` is not one the `previous_response_id`'s response asked; `param`"
)
INVALID_CURSOR = _entry(
    "invalid_cursor",
    400,
    "resume: `after` or `Last-Event-ID` is not a whole number; the conversation list: `after` is not a `next` it gave",
)
BODY_TOO_LARGE = _entry("body_too_large", 413, "the body is over `MAX_BODY_BYTES`")
UNSUPPORTED_MEDIA_TYPE = _entry("unsupported_media_type", 415, "the body is not `application/json`")
RESPONSE_NOT_FOUND = _entry(
    "response_not_found",
    404,
    "resume, cancel or feedback: no such stored response of the caller's (or, for a cancel without background mode,"
    " none live here)",
)
NOT_RESUMABLE = _entry("not_resumable", 409, "resume with `RESUMABLE_STREAMS` off")
AMBIGUOUS_KEY = _entry(
    "ambiguous_key", 400, "two different function keys in one request (`x-functions-key` and `code`, or two `code`)"
)
# Conversations (`CONVERSATIONS`).
INVALID_CONVERSATION_ID = _entry(
    "invalid_conversation_id", 400, "a conversation route: the conversation id is malformed"
)
CONVERSATION_NOT_FOUND = _entry(
    "conversation_not_found", 404, "no such conversation of the caller's (someone else's is answered the same)"
)
CONVERSATIONS_DISABLED = _entry(
    "conversations_disabled",
    404,
    'conversations are off here: `CONVERSATIONS=off`, or what they need is missing (health: `"conversations": false`)',
)
CONVERSATIONS_UNAVAILABLE = _entry(
    "conversations_unavailable", 503, "the conversations' index in the storage account could not be reached"
)
ANSWER_IN_PROGRESS = _entry(
    "answer_in_progress",
    409,
    "`regenerate`: the conversation's answer is still being generated, or another regenerate of it is under way",
)
NOT_LAST_ANSWER = _entry(
    "not_last_answer", 409, "`regenerate`: the response named is not the one that ends the conversation's last answer"
)
# Photos and PDFs in a message; the message names the part (`input[i].content[j]`) and its filename.
UNSUPPORTED_ATTACHMENT = _entry(
    "unsupported_attachment",
    415,
    "an attachment's bytes are not a PNG, JPEG, WebP, GIF or PDF (or not the part's kind), it is not a `data:` URL,"
    " or `ATTACHMENTS=off`",
)
BAD_ATTACHMENT = _entry(
    "bad_attachment",
    400,
    "an attachment is broken: not base64, empty, not a whole image or PDF, or an image over `MAX_IMAGE_PIXELS`",
)
ATTACHMENT_TOO_LARGE = _entry(
    "attachment_too_large", 413, "more than `MAX_ATTACHMENTS` in a message, or one over `MAX_ATTACHMENT_BYTES`"
)
# Feedback on an answer (`POST /api/feedback`).
FEEDBACK_NOT_KEPT = _entry(
    "feedback_not_kept",
    409,
    "feedback without the storage account, `OWNER_HASH_SECRET`, or a model service that keeps responses",
)
FEEDBACK_UNAVAILABLE = _entry("feedback_unavailable", 503, "the feedback table could not be reached")
# Who may use it (`AUTH_MODE`, `USER_DAILY_TOKENS`).
UNAUTHENTICATED = _entry(
    "unauthenticated", 401, "`AUTH_MODE=entra`: no bearer token, or not a valid one; `WWW-Authenticate: Bearer`"
)
INSUFFICIENT_SCOPE = _entry(
    "insufficient_scope",
    403,
    "`AUTH_MODE=entra`: the token lacks the scope `AUTH_SCOPE` in `scp` (app-only: `AUTH_APP_ROLE` in `roles`)",
)
BUDGET_EXCEEDED = _entry(
    "budget_exceeded",
    429,
    "what the answer may cost does not fit in what is left of `USER_DAILY_TOKENS` today; `Retry-After`: the next"
    " UTC midnight; in a stream: a further round's did not",
    in_stream=True,
)
AUTH_KEYS_UNAVAILABLE = _entry(
    "auth_keys_unavailable",
    503,
    "`AUTH_MODE=entra`: the token issuer's keys could not be fetched; `Retry-After`: a few seconds",
)
BUDGET_UNAVAILABLE = _entry(
    "budget_unavailable", 503, "`USER_DAILY_TOKENS`: the budget table could not be reached", in_stream=True
)
# The upstream refused the caller's input: its own code, passed on as a 400.
CALLER_INPUT_CODES = {
    code: _entry(code, 400, f"the model service refused the input ({meaning})")
    for code, meaning in (
        ("content_filter", "its content filter"),
        ("context_length_exceeded", "too long for the model"),
        ("invalid_prompt", "a prompt it will not take"),
        ("previous_response_not_found", "`previous_response_id` is unknown to it"),
    )
}
# The upstream, before the stream.
RATE_LIMITED = _entry("rate_limited", 429, "the model service's rate limit, with its `Retry-After`; never retried")
UPSTREAM_UNAUTHORIZED = _entry("upstream_unauthorized", 502, "the model service answered 401: check the key or role")
UPSTREAM_FORBIDDEN = _entry("upstream_forbidden", 502, "the model service answered 403 (network rules, role)")
UPSTREAM_NOT_FOUND = _entry("upstream_not_found", 502, "the model service answered 404: no such deployment")
UPSTREAM_ERROR = _entry(
    "upstream_error",
    502,
    "the model service failed (5xx, after the retries for 500/502/503); in a stream: its `error` event had no code",
    in_stream=True,
)
UPSTREAM_REJECTED = _entry("upstream_rejected", 502, "the model service rejected the request (another 4xx)")
UPSTREAM_UNREACHABLE = _entry(
    "upstream_unreachable",
    502,
    "the model service could not be reached, or its connection broke before an answer, after the retries",
)
UPSTREAM_BAD_RESPONSE = _entry(
    "upstream_bad_response", 502, "the model service sent something that is not its API", in_stream=True
)
UPSTREAM_TIMEOUT = _entry(
    "upstream_timeout",
    504,
    "no answer within `UPSTREAM_READ_TIMEOUT_SECONDS` (also an upstream 408 or 504); in a stream: silent that long",
    in_stream=True,
)
# Only in a stream.
UPSTREAM_CONNECTION_LOST = _entry("upstream_connection_lost", None, "the connection to the model service broke")
UPSTREAM_INCOMPLETE = _entry("upstream_incomplete", None, "the model service ended the stream without a terminal event")
SERVER_SHUTTING_DOWN = _entry("server_shutting_down", None, "the instance stopped before the stream ended")
RESPONSE_FAILED = _entry("response_failed", None, "`response.failed` without a code of its own")
STREAM_TIME_LIMIT = _entry(
    "stream_time_limit",
    None,
    "the stream reached `STREAM_TIME_LIMIT_SECONDS` without resumable streams (with them: `stream.resume`)",
)
TOOL_ROUNDS_EXCEEDED = _entry(
    "tool_rounds_exceeded", None, "the model still asked for tools after `MAX_TOOL_ROUNDS` continuation requests"
)
# The relay itself.
INTERNAL_ERROR = _entry("internal_error", 500, "the relay failed; the failure is logged", in_stream=True)
# The local host (`scripts/run`); in Azure, the Functions host answers these itself.
UNAUTHORIZED = _entry("unauthorized", 401, "local host with `LOCAL_FUNCTION_KEY`: no or wrong function key")
NOT_FOUND = _entry("not_found", 404, "local host: no such route or file")
METHOD_NOT_ALLOWED = _entry("method_not_allowed", 405, "a method the route does not take; `Allow` lists those it does")
WORKER_UNAVAILABLE = _entry("worker_unavailable", 502, "local host `--worker`: the Functions worker did not answer")
FRONT_END_TIMEOUT = _entry(
    "front_end_timeout", 502, "local host `--request-limit`: no response within the limit (Azure's front end: 230 s)"
)


class HttpError(Exception):
    """An error the caller sees as `{"error": {"code", "message"[, "param"][, "retry_after"]}}`."""

    def __init__(
        self,
        error: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        assert error.status is not None, f"{error.code} is only sent in a stream"
        self.error = error
        self.status = error.status
        self.code = error.code
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)

    def to_response(self) -> Response:
        error: dict[str, str | int] = {"code": self.code, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.retry_after is not None:  # also in the body: a page on another origin cannot read the header
            error["retry_after"] = self.retry_after
        return Response(
            orjson.dumps({"error": error}),
            status_code=self.status,
            headers={"Cache-Control": "no-store", **self.headers},
            media_type="application/json",
        )


def error_response(
    error: ErrorCode, message: str, *, param: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    return HttpError(error, message, param=param, headers=headers).to_response()
