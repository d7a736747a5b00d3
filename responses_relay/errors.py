"""Errors answered before the first byte of a stream: plain HTTP with a JSON body."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response


class HttpError(Exception):
    """An error the caller sees as `{"error": {"code", "message"[, "param"]}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = dict(headers or {})

    def to_response(self) -> Response:
        return error_response(self.status, self.code, self.message, param=self.param, headers=self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    error: dict[str, str] = {"code": code, "message": message}
    if param is not None:
        error["param"] = param
    return Response(
        orjson.dumps({"error": error}),
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type="application/json",
    )
