"""Telemetry: off unless APPLICATIONINSIGHTS_CONNECTION_STRING is set (and then not even
imported); on, the per-stream record reaches an ingestion endpoint with its figures as
custom dimensions. The endpoint is a capture server on 127.0.0.1 speaking the
Application Insights ingestion protocol; each run is its own process (OpenTelemetry
state is process-wide)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from .ingestion import Ingestion

ROOT = Path(__file__).resolve().parent.parent
EMIT = """
import logging
from opentelemetry._logs import get_logger_provider
from responses_relay import telemetry
from responses_relay.settings import load_settings
assert telemetry.configure(load_settings())
logging.getLogger("responses_relay.relay").warning(
    "stream ended: outcome=upstream_timeout", extra={"stream_outcome": "upstream_timeout", "stream_deltas": 12}
)
get_logger_provider().force_flush()
"""


def run_python(code: str, environ: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("APPLICATIONINSIGHTS", "OTEL"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(ROOT), **environ},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_nothing_is_loaded_without_a_connection_string() -> None:
    result = run_python("import sys, function_app; print('azure.monitor' in ' '.join(sys.modules))", {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


async def test_stream_records_reach_application_insights(ingestion: Ingestion) -> None:
    result = await asyncio.to_thread(run_python, EMIT, ingestion.environ)
    assert result.returncode == 0, result.stderr
    messages = ingestion.messages()
    assert messages, ingestion.received
    data = messages[0]
    assert data["message"] == "stream ended: outcome=upstream_timeout"
    assert data["properties"]["stream_outcome"] == "upstream_timeout"
    assert data["properties"]["stream_deltas"] == "12"
