"""Settings: defaults, validation with one clear line, and failing at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses.web_search_tool import WebSearchTool
from openai.types.shared import ReasoningEffort
from openai.types.shared.reasoning import Reasoning

from responses_relay.settings import (
    DEFAULT_INSTRUCTIONS,
    REASONING_EFFORTS,
    REASONING_SUMMARIES,
    ConversationSettings,
    LocalHostSettings,
    SettingsError,
    load_local_host_settings,
    load_settings,
)

ROOT = Path(__file__).resolve().parent.parent
MCP = {"server_label": "wiki", "server_url": "https://mcp.example.com/mcp", "require_approval": "always"}


def mcp(*changes: dict[str, Any]) -> str:
    """MCP_SERVERS listing a server for each of `changes` (to MCP)."""
    return json.dumps([{**MCP, **change} for change in changes])


def test_defaults_are_the_notebooks() -> None:
    settings = load_settings({})
    assert settings.endpoint is None
    assert settings.upstream_kind == "demo"
    assert settings.model == "gpt-4o-mini"
    assert settings.instructions == DEFAULT_INSTRUCTIONS
    assert (settings.max_output_tokens, settings.temperature, settings.top_p) == (1000, 0.8, 0.95)
    assert settings.heartbeat_seconds == 5
    assert (settings.max_messages, settings.max_message_chars) == (64, 32000)
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
    ("value", "on"),
    [
        *[(None, False), ("false", False), ("no_content", False), ("event_only", False)],
        *[("true", True), ("True", True), ("SPAN_ONLY", True), ("span_and_event", True)],
    ],
)
def test_message_content_goes_on_spans_only_when_asked(value: str | None, on: bool) -> None:
    environ = {} if value is None else {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value}
    assert load_settings(environ).telemetry.capture_content is on


def test_every_trace_is_kept_whole_unless_a_sampler_is_chosen() -> None:
    assert load_settings({}).telemetry.keep_every_trace
    assert not load_settings({"OTEL_TRACES_SAMPLER": "microsoft.rate_limited"}).telemetry.keep_every_trace


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
        (
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            "yes",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT must be one of false, true, no_content, span_only",
        ),
        ("AUTH_MODE", "oauth", "AUTH_MODE must be one of key, entra, got 'oauth'"),
        ("AUTH_MODE", "entra", "AUTH_CLIENT_ID is required with AUTH_MODE=entra"),
        ("USER_DAILY_TOKENS", "0", "USER_DAILY_TOKENS must be between 1 and"),
        (
            "RESUMABLE_STREAMS",
            "true",
            "OWNER_HASH_SECRET is required with RESUMABLE_STREAMS: set it to a random string",
        ),
        ("TOOLS", "local_time,book_hotel", "TOOLS names 'book_hotel', which is not one of local_time"),
        ("MAX_TOOL_ROUNDS", "51", "MAX_TOOL_ROUNDS must be between 0 and 50"),
        ("TOOL_TIMEOUT_SECONDS", "0", "TOOL_TIMEOUT_SECONDS must be between 0.01 and 600"),
        ("MCP_SERVERS", "[{", "MCP_SERVERS must be JSON"),
        ("MCP_SERVERS", '{"server_label": "x"}', "MCP_SERVERS must be a JSON list of servers"),
        ("MCP_SERVERS", "[1]", "MCP_SERVERS[0] must be an object with server_label and server_url"),
        ("MCP_SERVERS", mcp({}, {"server_label": "wiki 2"}), "MCP_SERVERS[1].server_label must be a name"),
        ("MCP_SERVERS", mcp({}, {}), "MCP_SERVERS: each server_label must be different"),
        ("MCP_SERVERS", mcp({"server_url": "ftp://x"}), "MCP_SERVERS[0].server_url must be an https URL"),
        ("MCP_SERVERS", mcp({"server_url": "http://x.com"}), "MCP_SERVERS[0].server_url must use https"),
        ("MCP_SERVERS", mcp({"require_approval": "sometimes"}), "MCP_SERVERS[0].require_approval must be always"),
        ("MCP_SERVERS", mcp({"allowed_tools": "all"}), "MCP_SERVERS[0].allowed_tools must be a list"),
        ("MCP_SERVERS", mcp({"token": "x"}), "MCP_SERVERS[0] has an unknown field 'token'"),
        ("MCP_SERVERS", mcp({"headers": {"Authorization": "sk-inline"}}), "MCP_SERVERS[0].headers must map"),
        (
            "MCP_SERVERS",
            mcp({"headers": {"Authorization": "UNSET_TOKEN"}}),
            "MCP_SERVERS[0].headers.Authorization names the setting UNSET_TOKEN, which is not set",
        ),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)


RESUMABLE_HERE = {
    "RESUMABLE_STREAMS": "true",
    "OWNER_HASH_SECRET": "s" * 32,
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}
ENTRA = {"AUTH_MODE": "entra", "AUTH_CLIENT_ID": "api://6f1c2f4e", "OWNER_HASH_SECRET": "s" * 32}
TENANT = "0b9d7a55-1c2e-4f3a-8b6c-5d4e3f2a1b0c"


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({**ENTRA, "AUTH_TENANT_ID": "common"}, "AUTH_TENANT_ID must be the directory (tenant) id, a GUID"),
        (ENTRA, "AUTH_TENANT_ID is required with AUTH_MODE=entra (or both AUTH_ISSUER and AUTH_JWKS_URL)"),
        ({**ENTRA, "AUTH_ISSUER": "https://issuer.example.com"}, "AUTH_TENANT_ID is required with AUTH_MODE=entra"),
        (
            {**ENTRA, "AUTH_TENANT_ID": TENANT, "AUTH_JWKS_URL": "http://keys.example.com"},
            "AUTH_JWKS_URL must use https",
        ),
        (
            {**ENTRA, "AUTH_TENANT_ID": TENANT, "OWNER_HASH_SECRET": ""},
            "OWNER_HASH_SECRET is required with AUTH_MODE=entra:",
        ),
        ({**ENTRA, "AUTH_TENANT_ID": TENANT, "OWNER_HASH_SECRET": "short"}, "OWNER_HASH_SECRET must be 32 characters"),
        (
            {**ENTRA, "AUTH_TENANT_ID": TENANT, "AUTH_SCOPE": "api://6f1c2f4e/chat"},
            "AUTH_SCOPE must be one scope's value as tokens carry it in scp, such as chat",
        ),
        (
            {**ENTRA, "AUTH_TENANT_ID": TENANT, "AUTH_SCOPE": "chat read"},
            "AUTH_SCOPE must be one scope's value as tokens carry it in scp, such as chat",
        ),
        (
            {**ENTRA, "AUTH_TENANT_ID": TENANT, "AUTH_APP_ROLE": "Chat Use"},
            "AUTH_APP_ROLE must be one app role's value as tokens carry it in roles, such as Chat.Use",
        ),
        ({"USER_DAILY_TOKENS": "1000"}, "OWNER_HASH_SECRET is required with USER_DAILY_TOKENS:"),
        (
            {"USER_DAILY_TOKENS": "1000", "OWNER_HASH_SECRET": "s" * 32},
            "USER_DAILY_TOKENS needs the Function App's storage",
        ),
        (
            {"RESUMABLE_STREAMS": "true", "OWNER_HASH_SECRET": "s" * 32},
            "RESUMABLE_STREAMS needs the Function App's storage",
        ),
        (
            {**RESUMABLE_HERE, "STREAM_TIME_LIMIT_SECONDS": "3", "TOOL_TIMEOUT_SECONDS": "4"},
            "STREAM_TIME_LIMIT_SECONDS (3) must be longer than TOOL_TIMEOUT_SECONDS + UPSTREAM_CONNECT_TIMEOUT_SECONDS"
            " + UPSTREAM_READ_TIMEOUT_SECONDS (134)",
        ),
    ],
)
def test_bad_access_settings_are_one_line(environ: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)


def test_the_default_time_limit_fits_a_round_continuation_and_a_fitting_short_one_is_taken() -> None:
    assert load_settings(RESUMABLE_HERE).stream_time_limit_seconds == 220
    short = {"STREAM_TIME_LIMIT_SECONDS": "1", "TOOL_TIMEOUT_SECONDS": "0.2", "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.2",
             "UPSTREAM_READ_TIMEOUT_SECONDS": "0.5"}  # fmt: skip
    assert load_settings({**RESUMABLE_HERE, **short}).stream_time_limit_seconds == 1
    assert load_settings({"STREAM_TIME_LIMIT_SECONDS": "1"}).stream_time_limit_seconds == 1  # no hand-offs: no limit


def test_entra_defaults_are_entra_ids_endpoints_for_the_tenant() -> None:
    access = load_settings({**ENTRA, "AUTH_TENANT_ID": TENANT}).access
    assert access.mode == "entra"
    assert access.audiences == ("6f1c2f4e", "api://6f1c2f4e")
    assert access.issuer == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert access.jwks_url == f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    assert (access.scope, access.app_role) == ("chat", None)  # the README's registration; no app-only callers
    named = load_settings({**ENTRA, "AUTH_TENANT_ID": TENANT, "AUTH_SCOPE": "Tour.Ask", "AUTH_APP_ROLE": "Chat.Use"})
    assert (named.access.scope, named.access.app_role) == ("Tour.Ask", "Chat.Use")
    assert load_settings({}).access.mode == "key"


def test_the_budget_table_is_the_function_apps_storage() -> None:
    budget = {"USER_DAILY_TOKENS": "5000", "OWNER_HASH_SECRET": "s" * 32}
    by_identity = load_settings({**budget, "AzureWebJobsStorage__accountName": "stabc", "AZURE_CLIENT_ID": "mi"})
    assert by_identity.access.daily_tokens == 5000
    assert by_identity.storage is not None
    assert by_identity.storage.table_endpoint == "https://stabc.table.core.windows.net"
    assert by_identity.storage.client_id == "mi"
    local = load_settings({**budget, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}).storage
    assert local is not None
    assert local.connection_string == "UseDevelopmentStorage=true"


KEPT = {"OWNER_HASH_SECRET": "s" * 32, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}


@pytest.mark.parametrize(
    ("environ", "kept", "retention"),
    [
        pytest.param(KEPT, True, 30, id="auto, with the owner secret and storage: on, 30 days"),
        pytest.param({**KEPT, "CONVERSATION_RETENTION_DAYS": "0"}, True, None, id="retention 0: kept until deleted"),
        pytest.param({**KEPT, "CONVERSATIONS": "off"}, False, None, id="off"),
        pytest.param({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, False, None, id="auto, no owner secret"),
        pytest.param({"OWNER_HASH_SECRET": "s" * 32}, False, None, id="auto, no storage"),
    ],
)
def test_conversations_are_kept_when_auto_finds_what_they_need(
    environ: dict[str, str], kept: bool, retention: int | None
) -> None:
    conversations = load_settings(environ).conversations
    expected = ConversationSettings(required=False, retention_days=retention) if kept else None
    assert conversations == expected


def test_conversations_on_are_required() -> None:
    on = load_settings({**KEPT, "CONVERSATIONS": "on"}).conversations
    assert on == ConversationSettings(required=True, retention_days=30)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"CONVERSATIONS": "on"}, "CONVERSATIONS=on needs OWNER_HASH_SECRET and AzureWebJobsStorage: "),
        ({"CONVERSATIONS": "on", "OWNER_HASH_SECRET": "s" * 32}, "CONVERSATIONS=on needs AzureWebJobsStorage: "),
        ({"CONVERSATIONS": "sometimes"}, "CONVERSATIONS must be one of auto, on, off"),
        ({**KEPT, "CONVERSATION_RETENTION_DAYS": "-1"}, "CONVERSATION_RETENTION_DAYS must be between 0 and 36500"),
    ],
)
def test_conversations_on_without_what_they_need_stops_start_up_with_one_line(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)


def test_secrets_stay_out_of_the_settings_repr() -> None:
    secret, connection = "owner-secret-" + "x" * 32, "AccountName=a;AccountKey=SECRETKEY=="
    environ = {"OWNER_HASH_SECRET": secret, "USER_DAILY_TOKENS": "10", "AzureWebJobsStorage": connection}
    shown = repr(load_settings({**environ, "OPENAI_API_KEY": "sk-APIKEY"}))
    assert "x" * 32 not in shown
    assert "SECRETKEY" not in shown
    assert "APIKEY" not in shown


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
        ("MCP_SERVERS", "[{]", "MCP_SERVERS must be JSON"),
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


def test_no_secret_is_in_the_settings_repr() -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-test-SECRET0123456789",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=SECRET-ikey;IngestionEndpoint=https://x/",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=SECRET-client",
        "LOCAL_FUNCTION_KEY": "SECRET-function-key",
        "MCP_SERVERS": mcp({"headers": {"Authorization": "MCP_WIKI_AUTHORIZATION"}}),
        "MCP_WIKI_AUTHORIZATION": "Bearer SECRET-mcp-token",
    }
    shown = repr(load_settings(secrets)) + repr(load_local_host_settings(secrets))
    assert "SECRET" not in shown
    assert "gpt-4o-mini" in shown  # the rest is there, for debugging


def test_tools_default_to_local_time_and_can_be_none() -> None:
    assert load_settings({}).tools == ("local_time",)
    assert (load_settings({}).max_tool_rounds, load_settings({}).tool_timeout_seconds) == (5, 10.0)
    for empty in ("", " ", "none", ",,"):
        assert load_settings({"TOOLS": empty}).tools == ()
    assert load_settings({"TOOLS": " local_time , local_time"}).tools == ("local_time",)


def test_mcp_servers_become_the_apis_mcp_tools_with_their_secrets_from_settings() -> None:
    servers = load_settings(
        {
            "MCP_SERVERS": """[
              {"server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp", "require_approval": "never",
               "allowed_tools": ["ask_question"]},
              {"server_label": "tickets", "server_url": "http://127.0.0.1:9000/mcp",
               "headers": {"Authorization": "TICKETS_AUTHORIZATION"}}
            ]""",
            "TICKETS_AUTHORIZATION": "Bearer t0ken",
        }
    ).mcp_servers
    assert [server.definition() for server in servers] == [
        {
            "type": "mcp",
            "server_label": "deepwiki",
            "server_url": "https://mcp.deepwiki.com/mcp",
            "require_approval": "never",
            "allowed_tools": ["ask_question"],
        },
        {
            "type": "mcp",
            "server_label": "tickets",
            "server_url": "http://127.0.0.1:9000/mcp",
            "require_approval": "always",  # the safe default
            "headers": {"Authorization": "Bearer t0ken"},
        },
    ]
    assert load_settings({}).mcp_servers == ()
    assert load_settings({"MCP_SERVERS": "[]"}).mcp_servers == ()
