"""The Functions invocation a request belongs to.

The Functions host passes each HTTP request on to the worker's web server with the
invocation's id in a header; the local host does the same with either back end.
"""

from __future__ import annotations

INVOCATION_ID_HEADER = "x-ms-invocation-id"
