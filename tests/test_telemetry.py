"""Telemetry: off unless APPLICATIONINSIGHTS_CONNECTION_STRING is set (and then not even
imported); on, the per-stream record reaches an ingestion endpoint with its figures as
custom dimensions. The endpoint is a capture server on 127.0.0.1 speaking the
Application Insights ingestion protocol; each run is its own process (OpenTelemetry
state is process-wide)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EMIT = """
import logging
from opentelemetry._logs import get_logger_provider
from responses_relay import telemetry
assert telemetry.configure()
logging.getLogger("responses_relay.relay").warning(
    "stream ended: outcome=upstream_timeout", extra={"stream_outcome": "upstream_timeout", "stream_deltas": 12}
)
get_logger_provider().force_flush()
"""


def run_python(code: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("APPLICATIONINSIGHTS", "OTEL"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(ROOT), **environ},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_nothing_is_loaded_without_a_connection_string() -> None:
    result = run_python("import sys, function_app; print('azure.monitor' in ' '.join(sys.modules))", {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.fixture
async def ingestion() -> AsyncIterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        if b"content-encoding: gzip" in head.lower():
            body = gzip.decompress(body)
        items = json.loads(body) if body.strip().startswith((b"[", b"{")) else []
        received.extend(items if isinstance(items, list) else [items])
        answer = json.dumps({"itemsReceived": len(received), "itemsAccepted": len(received), "errors": []}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", received
    server.close()
    await server.wait_closed()


async def test_stream_records_reach_application_insights(ingestion: tuple[str, list[Any]]) -> None:
    endpoint, received = ingestion
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
        ),
        # Keep every byte on 127.0.0.1: no usage beacons, no cloud metadata lookups.
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
    }
    result = await asyncio.to_thread(run_python, EMIT, environ)
    assert result.returncode == 0, result.stderr
    messages = [item for item in received if item.get("data", {}).get("baseType") == "MessageData"]
    assert messages, received
    data = messages[0]["data"]["baseData"]
    assert data["message"] == "stream ended: outcome=upstream_timeout"
    assert data["properties"]["stream_outcome"] == "upstream_timeout"
    assert data["properties"]["stream_deltas"] == "12"
