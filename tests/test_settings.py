"""Settings: defaults, validation with one clear line, and failing at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from openai.types.responses.web_search_tool import WebSearchTool
from openai.types.shared import ReasoningEffort
from openai.types.shared.reasoning import Reasoning

from responses_relay.settings import (
    DEFAULT_INSTRUCTIONS,
    REASONING_EFFORTS,
    REASONING_SUMMARIES,
    LocalHostSettings,
    SettingsError,
    load_local_host_settings,
    load_settings,
)

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
    assert (settings.reasoning_effort, settings.reasoning_summary, settings.web_search) == (None, None, False)
    assert (settings.keepalive_seconds, settings.transport) == (60, "aiohttp")


@pytest.mark.parametrize(
    ("effort", "summary", "sent"),
    [
        ("low", None, ("low", "auto")),
        ("none", None, ("none", None)),
        ("HIGH", "Detailed", ("high", "detailed")),
        ("medium", "none", ("medium", None)),
        (None, "concise", (None, "concise")),
    ],
)
def test_reasoning_summary_is_auto_once_an_effort_is_set(
    effort: str | None, summary: str | None, sent: tuple[str | None, str | None]
) -> None:
    environ = {"REASONING_EFFORT": effort, "REASONING_SUMMARY": summary}
    settings = load_settings({name: value for name, value in environ.items() if value is not None})
    assert (settings.reasoning_effort, settings.reasoning_summary) == sent


def test_an_effort_leaves_out_the_sampling_parameters_unless_they_are_set() -> None:
    settings = load_settings({"REASONING_EFFORT": "low"})
    assert (settings.temperature, settings.top_p) == (None, None)
    settings = load_settings({"REASONING_EFFORT": "none"})
    assert (settings.temperature, settings.top_p) == (0.8, 0.95)
    settings = load_settings({"REASONING_EFFORT": "high", "TEMPERATURE": "1", "TOP_P": "none"})
    assert (settings.temperature, settings.top_p) == (1.0, None)


def test_reasoning_and_web_search_values_are_the_sdks() -> None:
    [efforts, _none] = typing.get_args(ReasoningEffort)
    assert typing.get_args(efforts) == REASONING_EFFORTS
    [summaries, _none] = typing.get_args(Reasoning.model_fields["summary"].annotation)
    assert typing.get_args(summaries) == REASONING_SUMMARIES
    assert "web_search" in typing.get_args(WebSearchTool.model_fields["type"].annotation)


@pytest.mark.parametrize(("value", "on"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False)])
def test_web_search_flag(value: str, on: bool) -> None:
    assert load_settings({"WEB_SEARCH": value}).web_search is on


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
        ("REASONING_EFFORT", "extreme", "REASONING_EFFORT must be one of none, minimal, low, medium, high"),
        ("REASONING_SUMMARY", "short", "REASONING_SUMMARY must be one of auto, concise, detailed, none, got 'short'"),
        ("WEB_SEARCH", "yes please", "WEB_SEARCH must be true or false, got 'yes please'"),
        ("UPSTREAM_KEEPALIVE_SECONDS", "-1", "UPSTREAM_KEEPALIVE_SECONDS must be between 0 and 3600"),
        ("UPSTREAM_TRANSPORT", "h2", "UPSTREAM_TRANSPORT must be one of aiohttp, httpx, got 'h2'"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)


def start_local_host(environ: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Start the local host as `scripts/run` does, with a setting that should stop it."""
    command = [sys.executable, "-m", "responses_relay.local_host", "--port", "0", "--app-dir", str(ROOT), *arguments]
    return subprocess.run(
        command, env={**os.environ, **environ}, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("OPENAI_ENDPOINT", "ftp://nowhere", "OPENAI_ENDPOINT must be an http(s) URL such as"),
        ("SHUTDOWN_GRACE_SECONDS", "soon", "SHUTDOWN_GRACE_SECONDS must be a number, got 'soon'"),
        ("CORS_ALLOWED_ORIGINS", "localhost:8000", "CORS_ALLOWED_ORIGINS must list origins such as"),
        ("LOCAL_HOST_DIAGNOSTICS", "maybe", "LOCAL_HOST_DIAGNOSTICS must be true or false, got 'maybe'"),
    ],
)
def test_bad_setting_stops_the_local_host_at_start_up_with_one_line(name: str, value: str, says: str) -> None:
    result = start_local_host({name: value})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {says}")


def test_a_bad_setting_under_the_real_worker_is_one_line_too() -> None:
    result = start_local_host({"MAX_BODY_BYTES": "lots"}, "--worker")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: the Functions worker could not index function_app.py:"
        " SettingsError: MAX_BODY_BYTES must be a whole number, got 'lots'"
    ], result.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, LocalHostSettings(None, (), False, 10.0)),
        (
            {
                "LOCAL_FUNCTION_KEY": "k",
                "CORS_ALLOWED_ORIGINS": "http://localhost:8000, https://app.example.com/",
                "LOCAL_HOST_DIAGNOSTICS": "1",
                "SHUTDOWN_GRACE_SECONDS": "2.5",
            },
            LocalHostSettings("k", ("http://localhost:8000", "https://app.example.com"), True, 2.5),
        ),
    ],
)
def test_local_host_settings(environ: dict[str, str], expected: LocalHostSettings) -> None:
    assert load_local_host_settings(environ) == expected
