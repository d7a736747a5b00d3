"""Settings, read once from the environment and validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

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
    return Settings(
        endpoint=env.url("OPENAI_ENDPOINT"),
        api_key=env.text("OPENAI_API_KEY"),
        azure_client_id=env.text("AZURE_CLIENT_ID"),
        model=env.text("MODEL_DEPLOYMENT_NAME") or "gpt-4o-mini",
        instructions=env.text("MODEL_INSTRUCTIONS") or DEFAULT_INSTRUCTIONS,
        max_output_tokens=env.integer("MAX_OUTPUT_TOKENS", 1000, low=1, high=1_000_000),
        temperature=env.optional_number("TEMPERATURE", 0.8, low=0.0, high=2.0),
        top_p=env.optional_number("TOP_P", 0.95, low=0.0, high=1.0),
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
        transport=env.choice("UPSTREAM_TRANSPORT", ("lean", "httpx")),
    )


class _Reader:
    """Typed access to environment strings; every failure names the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

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

    def optional_number(self, name: str, default: float, *, low: float, high: float) -> float | None:
        # "none" omits the parameter, for models that reject it (reasoning models).
        if self._environ.get(name, "").strip().lower() == "none":
            return None
        return self.number(name, default, low=low, high=high)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of `choices`, case-insensitive; the first when unset."""
        raw = self.text(name)
        if raw is None:
            return choices[0]
        if raw.lower() not in choices:
            raise SettingsError(f"{name} must be {' or '.join(choices)}, got {raw!r}")
        return raw.lower()

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
