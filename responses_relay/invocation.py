"""The Functions invocation a request belongs to.

The Functions host passes each HTTP request on to the worker's web server with the
invocation's id in a header; the local host does the same with either back end.
"""

from __future__ import annotations

import re

from starlette.requests import Request

INVOCATION_ID_HEADER = "x-ms-invocation-id"
_INVOCATION_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def invocation_id(request: Request) -> str | None:
    """The invocation's id, when the header holds one (a GUID): it goes into logs, so nothing else does."""
    value = request.headers.get(INVOCATION_ID_HEADER, "")
    return value if _INVOCATION_ID.fullmatch(value) else None
