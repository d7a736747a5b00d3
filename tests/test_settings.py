"""Settings: defaults, validation with one clear line, and failing at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from responses_relay.settings import DEFAULT_INSTRUCTIONS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_notebooks() -> None:
    settings = load_settings({})
    assert settings.endpoint is None
    assert settings.upstream_kind == "demo"
    assert settings.model == "gpt-4o-mini"
    assert settings.instructions == DEFAULT_INSTRUCTIONS
    assert (settings.max_output_tokens, settings.temperature, settings.top_p) == (1000, 0.8, 0.95)
    assert settings.heartbeat_seconds == 5
    assert (settings.max_body_bytes, settings.max_messages, settings.max_message_chars) == (262144, 64, 32000)
    assert (settings.keepalive_seconds, settings.transport) == (60, "lean")


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("https://project1.openai.azure.com/openai/v1/", "azure-openai"),
        ("https://x.cognitiveservices.azure.com/openai/v1", "azure-openai"),
        ("https://api.openai.com/v1", "openai-compatible"),
        ("http://127.0.0.1:11434/v1", "openai-compatible"),
    ],
)
def test_endpoint_kinds(endpoint: str, kind: str) -> None:
    settings = load_settings({"OPENAI_ENDPOINT": endpoint})
    assert settings.upstream_kind == kind
    assert settings.endpoint is not None
    assert settings.endpoint.endswith("/")


def test_none_omits_sampling_parameters() -> None:
    settings = load_settings({"TEMPERATURE": "none", "TOP_P": "None"})
    assert settings.temperature is None
    assert settings.top_p is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("OPENAI_ENDPOINT", "not a url", "OPENAI_ENDPOINT must be an http(s) URL"),
        ("OPENAI_ENDPOINT", "http://example.com/v1", "OPENAI_ENDPOINT must use https"),
        ("MAX_OUTPUT_TOKENS", "many", "MAX_OUTPUT_TOKENS must be a whole number, got 'many'"),
        ("MAX_OUTPUT_TOKENS", "0", "MAX_OUTPUT_TOKENS must be between 1 and"),
        ("TEMPERATURE", "hot", "TEMPERATURE must be a number"),
        ("TEMPERATURE", "3", "TEMPERATURE must be between 0 and 2"),
        ("TOP_P", "1.5", "TOP_P must be between 0 and 1"),
        ("HEARTBEAT_SECONDS", "0", "HEARTBEAT_SECONDS must be between"),
        ("MAX_BODY_BYTES", "1e9", "MAX_BODY_BYTES must be a whole number"),
        ("UPSTREAM_MAX_RETRIES", "99", "UPSTREAM_MAX_RETRIES must be between 0 and 5"),
        ("UPSTREAM_KEEPALIVE_SECONDS", "-1", "UPSTREAM_KEEPALIVE_SECONDS must be between 0 and 3600"),
        ("UPSTREAM_TRANSPORT", "h2", "UPSTREAM_TRANSPORT must be lean or httpx, got 'h2'"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)


def test_bad_setting_stops_the_local_host_at_start_up_with_one_line() -> None:
    environ = {**os.environ, "OPENAI_ENDPOINT": "ftp://nowhere", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "responses_relay.local_host", "--port", "0", "--app-dir", str(ROOT)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: OPENAI_ENDPOINT must be an http(s) URL such as https://NAME.openai.azure.com/openai/v1/"
    ]
