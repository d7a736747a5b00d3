"""Settings, read once from the environment and validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# The values of openai.types.shared.ReasoningEffort and of Reasoning.summary.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
REASONING_SUMMARIES = ("auto", "concise", "detailed")

DEFAULT_INSTRUCTIONS = (
    "あなたは親しみやすい観光ガイドです。\n提示された観光地の特徴や魅力を100文字程度で説明してください。"
)


class SettingsError(ValueError):
    """A setting is missing or invalid; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    endpoint: str | None
    api_key: str | None
    azure_client_id: str | None
    model: str
    instructions: str
    max_output_tokens: int
    temperature: float | None
    top_p: float | None
    reasoning_effort: str | None
    reasoning_summary: str | None
    web_search: bool
    heartbeat_seconds: float
    max_body_bytes: int
    max_messages: int
    max_message_chars: int
    connect_timeout_seconds: float
    read_timeout_seconds: float
    max_retries: int
    buffer_bytes: int
    demo_delta_seconds: float
    keepalive_seconds: float
    transport: str
    resumable: bool
    appinsights_connection_string: str | None
    appinsights_authentication_string: str | None

    @property
    def upstream_kind(self) -> str:
        """What the health route reports: azure-openai, openai-compatible or demo."""
        if self.endpoint is None:
            return "demo"
        host = urlsplit(self.endpoint).hostname or ""
        azure_hosts = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
        return "azure-openai" if host.endswith(azure_hosts) else "openai-compatible"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `environ` (default: os.environ, after loading `.env`)."""
    if environ is None:
        from dotenv import load_dotenv

        load_dotenv(override=False)
        environ = os.environ
    env = _Reader(environ)
    reasoning_effort = env.choice("REASONING_EFFORT", REASONING_EFFORTS)
    # Reasoning models reject sampling parameters: with an effort set, they are sent only when set.
    sampling = reasoning_effort in (None, "none")
    return Settings(
        endpoint=env.url("OPENAI_ENDPOINT"),
        api_key=env.text("OPENAI_API_KEY"),
        azure_client_id=env.text("AZURE_CLIENT_ID"),
        model=env.text("MODEL_DEPLOYMENT_NAME") or "gpt-4o-mini",
        instructions=env.text("MODEL_INSTRUCTIONS") or DEFAULT_INSTRUCTIONS,
        max_output_tokens=env.integer("MAX_OUTPUT_TOKENS", 1000, low=1, high=1_000_000),
        temperature=env.optional_number("TEMPERATURE", 0.8 if sampling else None, low=0.0, high=2.0),
        top_p=env.optional_number("TOP_P", 0.95 if sampling else None, low=0.0, high=1.0),
        reasoning_effort=reasoning_effort,
        reasoning_summary=_reasoning_summary(
            env.choice("REASONING_SUMMARY", (*REASONING_SUMMARIES, "none")), reasoning_effort
        ),
        web_search=env.flag("WEB_SEARCH", default=False),
        heartbeat_seconds=env.number("HEARTBEAT_SECONDS", 5.0, low=0.05, high=230.0),
        max_body_bytes=env.integer("MAX_BODY_BYTES", 256 * 1024, low=1024, high=64 * 1024 * 1024),
        max_messages=env.integer("MAX_MESSAGES", 64, low=1, high=10_000),
        max_message_chars=env.integer("MAX_MESSAGE_CHARS", 32_000, low=1, high=10_000_000),
        connect_timeout_seconds=env.number("UPSTREAM_CONNECT_TIMEOUT_SECONDS", 10.0, low=0.01, high=600.0),
        read_timeout_seconds=env.number("UPSTREAM_READ_TIMEOUT_SECONDS", 120.0, low=0.01, high=3600.0),
        max_retries=env.integer("UPSTREAM_MAX_RETRIES", 1, low=0, high=5),
        buffer_bytes=env.integer("STREAM_BUFFER_BYTES", 256 * 1024, low=1024, high=64 * 1024 * 1024),
        demo_delta_seconds=env.number("DEMO_DELTA_SECONDS", 0.03, low=0.0, high=10.0),
        keepalive_seconds=env.number("UPSTREAM_KEEPALIVE_SECONDS", 60.0, low=0.0, high=3600.0),
        transport=env.choice("UPSTREAM_TRANSPORT", ("aiohttp", "httpx")) or "aiohttp",
        resumable=env.flag("RESUMABLE_STREAMS", default=False),
        appinsights_connection_string=env.text("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        appinsights_authentication_string=env.text("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
    )


@dataclass(frozen=True)
class LocalHostSettings:
    """The local host's own settings (`scripts/run`); the Functions host in Azure ignores them."""

    function_key: str | None
    cors_origins: tuple[str, ...]
    diagnostics: bool
    shutdown_grace_seconds: float


def load_local_host_settings(environ: Mapping[str, str] | None = None) -> LocalHostSettings:
    env = _Reader(os.environ if environ is None else environ)
    return LocalHostSettings(
        function_key=env.text("LOCAL_FUNCTION_KEY"),
        cors_origins=env.origins("CORS_ALLOWED_ORIGINS"),
        diagnostics=env.flag("LOCAL_HOST_DIAGNOSTICS", default=False),
        shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 10.0, low=0.0, high=3600.0),
    )


def _reasoning_summary(summary: str | None, effort: str | None) -> str | None:
    """`auto` when an effort is set (and is not `none`); `none` sends no summary request."""
    if summary is None:
        return "auto" if effort not in (None, "none") else None
    return None if summary == "none" else summary


class _Reader:
    """Typed access to environment strings; every failure names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        if raw.lower() not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw.lower()

    def flag(self, name: str, *, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        value = raw.lower()
        if value not in ("true", "false", "1", "0"):
            raise SettingsError(f"{name} must be true or false, got {raw!r}")
        return value in ("true", "1")

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"{name} must be an http(s) URL such as https://NAME.openai.azure.com/openai/v1/")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SettingsError(f"{name} must use https (plain http is allowed only for localhost)")
        return value if value.endswith("/") else value + "/"

    def origins(self, name: str) -> tuple[str, ...]:
        origins = tuple(origin.strip().rstrip("/") for origin in (self.text(name) or "").split(",") if origin.strip())
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path):
                raise SettingsError(f"{name} must list origins such as https://example.com, got {origin!r}")
        return origins

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {raw}")
        return value

    def optional_number(self, name: str, default: float | None, *, low: float, high: float) -> float | None:
        # "none" omits the parameter, for models that reject it (reasoning models).
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() == "none":
            return None
        return self.number(name, low, low=low, high=high)  # set: the default is not used

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {raw}")
        return value
