"""Settings, read once from the environment and validated at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .guide_tools import TOOLS
from .mcp_servers import McpServer, parse_mcp_servers

# The values of openai.types.shared.ReasoningEffort and of Reasoning.summary.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
AUTH_MODES = ("key", "entra")
CONVERSATION_MODES = ("auto", "on", "off")
ENTRA_LOGIN = "https://login.microsoftonline.com"
MIN_OWNER_SECRET_CHARS = 32
# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: `true` (the older form) and the newer
# values; those that put content on spans turn capture on (the relay records no GenAI events).
CAPTURE_CONTENT_VALUES = ("false", "true", "no_content", "span_only", "event_only", "span_and_event")
_CAPTURE_ON_SPANS = ("true", "span_only", "span_and_event")
BASE_BODY_BYTES = 256 * 1024  # MAX_BODY_BYTES' default for text alone
MAX_BODY_BYTES_LIMIT = 256 * 1024 * 1024

DEFAULT_INSTRUCTIONS = (
    "あなたは親しみやすい観光ガイドです。\n提示された観光地の特徴や魅力を100文字程度で説明してください。"
)


_DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    endpoint: str | None
    api_key: str | None = field(repr=False)
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
    heal_attempts: int
    heal_seconds: float
    stream_time_limit_seconds: float | None
    spillover_deployment: str | None
    tools: tuple[str, ...]  # the names of the function tools offered to the model
    max_tool_rounds: int
    tool_timeout_seconds: float
    tool_threads: int
    mcp_servers: tuple[McpServer, ...]
    telemetry: TelemetrySettings
    access: AccessSettings
    storage: StorageSettings | None  # the Function App's own storage account, when one is named
    conversations: ConversationSettings | None  # None: off (CONVERSATIONS, or what they need is missing)
    attachments: AttachmentSettings | None  # None: ATTACHMENTS=off, messages are text only
    feedback_comments: bool  # FEEDBACK_COMMENTS=store: a feedback's comment is kept in the clear

    @property
    def upstream_kind(self) -> str:
        """What the health route reports: azure-openai, openai-compatible or demo."""
        if self.endpoint is None:
            return "demo"
        host = urlsplit(self.endpoint).hostname or ""
        azure_hosts = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
        return "azure-openai" if host.endswith(azure_hosts) else "openai-compatible"

    @property
    def continuation_seconds(self) -> float:
        """The longest a round's continuation takes: its tool calls, then the next round's opening
        (connecting, then waiting for the response's headers)."""
        return self.tool_timeout_seconds + self.connect_timeout_seconds + self.read_timeout_seconds

    @property
    def stores_responses(self) -> bool:
        """Whether a response can be continued with `previous_response_id`. Azure OpenAI keeps
        responses by default (the relay never sends `store: false`; in background mode it sends
        `store: true`), and the demo answers a follow-up from its question alone. An
        OpenAI-compatible server may keep none (vLLM and Ollama do not by default): the history
        goes back instead."""
        return self.resumable or self.upstream_kind != "openai-compatible"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `environ` (default: os.environ, after loading `.env`)."""
    if environ is None:
        from dotenv import load_dotenv

        load_dotenv(override=False)
        environ = os.environ
    env = _Reader(environ)
    access = _access_settings(env, resumable=env.flag("RESUMABLE_STREAMS", default=False))
    storage = _storage_settings(env)
    needing_storage = {"USER_DAILY_TOKENS": access.daily_tokens is not None}
    needing_storage["RESUMABLE_STREAMS"] = env.flag("RESUMABLE_STREAMS", default=False)
    needing = [name for name, needs in needing_storage.items() if needs]
    if storage is None and needing:
        raise SettingsError(
            f"{' and '.join(needing)} {'need' if len(needing) > 1 else 'needs'} the Function App's storage:"
            " AzureWebJobsStorage__accountName"
            " (reached with the managed identity) or AzureWebJobsStorage (a connection string; locally Azurite's)"
        )
    conversations = _conversation_settings(env, storage, access)
    attachments = _attachment_settings(env)
    reasoning_effort = env.choice("REASONING_EFFORT", REASONING_EFFORTS)
    # Reasoning models reject sampling parameters: with an effort set, they are sent only when set.
    sampling = reasoning_effort in (None, "none")
    settings = Settings(
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
        max_body_bytes=env.integer(
            "MAX_BODY_BYTES", _default_body_bytes(attachments), low=1024, high=MAX_BODY_BYTES_LIMIT
        ),
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
        heal_attempts=env.integer("UPSTREAM_HEAL_ATTEMPTS", 3, low=0, high=100),
        heal_seconds=env.number("UPSTREAM_HEAL_SECONDS", 30.0, low=0.0, high=3600.0),
        # Azure's front end cuts an HTTP request at 230 s; 0 turns the limit off.
        stream_time_limit_seconds=env.number("STREAM_TIME_LIMIT_SECONDS", 220.0, low=0.0, high=86400.0) or None,
        spillover_deployment=env.name("SPILLOVER_DEPLOYMENT"),
        tools=env.names("TOOLS", ("local_time",), allowed=tuple(TOOLS)),
        max_tool_rounds=env.integer("MAX_TOOL_ROUNDS", 5, low=0, high=50),
        tool_timeout_seconds=env.number("TOOL_TIMEOUT_SECONDS", 10.0, low=0.01, high=600.0),
        tool_threads=env.integer("TOOL_THREADS", 4, low=1, high=64),
        mcp_servers=env.mcp_servers("MCP_SERVERS"),
        telemetry=TelemetrySettings(
            connection_string=env.text("APPLICATIONINSIGHTS_CONNECTION_STRING"),
            authentication_string=env.text("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
            capture_content=env.choice("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", CAPTURE_CONTENT_VALUES)
            in _CAPTURE_ON_SPANS,
            keep_every_trace=env.text("OTEL_TRACES_SAMPLER") is None,
        ),
        access=access,
        storage=storage,
        conversations=conversations,
        attachments=attachments,
        feedback_comments=env.choice("FEEDBACK_COMMENTS", ("drop", "store")) == "store",
    )
    _check_hand_offs(settings)
    return settings


def _check_hand_offs(settings: Settings) -> None:
    """With resumable streams a stream at its time limit hands its caller off only where the
    resume can go on with a later event, so a round's continuation (its calls, then the next
    round's opening) must fit within one stream's time."""
    limit = settings.stream_time_limit_seconds
    if settings.resumable and limit is not None and settings.continuation_seconds >= limit:
        raise SettingsError(
            f"STREAM_TIME_LIMIT_SECONDS ({limit:g}) must be longer than TOOL_TIMEOUT_SECONDS"
            " + UPSTREAM_CONNECT_TIMEOUT_SECONDS + UPSTREAM_READ_TIMEOUT_SECONDS"
            f" ({settings.continuation_seconds:g}): a tool call and the next round's opening must fit in one stream"
        )


@dataclass(frozen=True)
class TelemetrySettings:
    """Application Insights (nothing is sent without its connection string), and whether the text of
    questions and answers may go with the spans."""

    connection_string: str | None = field(repr=False)
    authentication_string: str | None = field(repr=False)  # ClientId=<id>;Authorization=AAD: ingest with that identity
    capture_content: bool
    # Every trace is kept whole, unless OTEL_TRACES_SAMPLER chooses a sampler (then the distro reads it):
    # the distro's default samples spans at a rate, which can keep part of a trace and drop the rest.
    keep_every_trace: bool


@dataclass(frozen=True)
class AttachmentSettings:
    """Photos and PDFs in a user message (ATTACHMENTS=on, the default): how many, how large."""

    max_attachments: int  # in one message
    max_attachment_bytes: int  # each, decoded
    max_image_pixels: int  # width × height of each image


def _attachment_settings(env: _Reader) -> AttachmentSettings | None:
    if not env.flag("ATTACHMENTS", default=True):
        return None
    return AttachmentSettings(
        max_attachments=env.integer("MAX_ATTACHMENTS", 4, low=1, high=16),
        max_attachment_bytes=env.integer("MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024, low=1024, high=32 * 1024 * 1024),
        max_image_pixels=env.integer("MAX_IMAGE_PIXELS", 7680 * 4320, low=1, high=200_000_000),
    )


def data_url_bytes(decoded_bytes: int) -> int:
    """The size of a base64 `data:` URL holding `decoded_bytes`, with room for its prefix."""
    return 4 * -(-decoded_bytes // 3) + 64


def _default_body_bytes(attachments: AttachmentSettings | None) -> int:
    """MAX_BODY_BYTES' default: room for the text, and for a message's attachments at their limits
    (at most MAX_BODY_BYTES' own limit)."""
    if attachments is None:
        return BASE_BODY_BYTES
    room = attachments.max_attachments * data_url_bytes(attachments.max_attachment_bytes)
    return min(BASE_BODY_BYTES + room, MAX_BODY_BYTES_LIMIT)


@dataclass(frozen=True)
class AccessSettings:
    """Who may use the relay (AUTH_MODE and the token's issuer and audience), the key of the
    owner hash, and the daily token budget per user."""

    mode: str  # key: the Functions host checks a function key; entra: the function checks a bearer token
    client_id: str | None  # the API's application id, bare: tokens for it or for api://<it> are accepted
    issuer: str | None
    jwks_url: str | None
    scope: str | None  # entra: the scope a user's (delegated) token must carry in `scp`
    app_role: str | None  # entra: the app role an app-only token must carry in `roles`; None: none is let in
    owner_secret: bytes | None = field(repr=False)
    daily_tokens: int | None

    @property
    def audiences(self) -> tuple[str, ...]:
        return () if self.client_id is None else (self.client_id, f"api://{self.client_id}")


def _access_settings(env: _Reader, *, resumable: bool) -> AccessSettings:
    mode = env.choice("AUTH_MODE", AUTH_MODES) or "key"
    daily_tokens = env.optional_integer("USER_DAILY_TOKENS", low=1, high=10**12)
    client_id, issuer, jwks_url = _token_issuer(env) if mode == "entra" else (None, None, None)
    scope, app_role = _token_permissions(env) if mode == "entra" else (None, None)
    secret = env.text("OWNER_HASH_SECRET")
    owners_needed_by = {"AUTH_MODE=entra": mode == "entra", "RESUMABLE_STREAMS": resumable}
    owners_needed_by["USER_DAILY_TOKENS"] = daily_tokens is not None
    needing = [name for name, needs in owners_needed_by.items() if needs]
    if secret is None and needing:
        raise SettingsError(
            f"OWNER_HASH_SECRET is required with {' and '.join(needing)}: set it to a random string of"
            f" {MIN_OWNER_SECRET_CHARS} characters or more, kept per environment (openssl rand -base64 32)"
        )
    if secret is not None and len(secret) < MIN_OWNER_SECRET_CHARS:
        raise SettingsError(f"OWNER_HASH_SECRET must be {MIN_OWNER_SECRET_CHARS} characters or more")
    return AccessSettings(
        mode=mode,
        client_id=client_id,
        issuer=issuer,
        jwks_url=jwks_url,
        scope=scope,
        app_role=app_role,
        owner_secret=None if secret is None else secret.encode(),
        daily_tokens=daily_tokens,
    )


@dataclass(frozen=True)
class StorageSettings:
    """The Function App's own storage account, by the names the Functions host reads: a
    connection string (locally Azurite's), or the account's table endpoint reached with a
    managed identity. Its Table service keeps what must outlive one instance (budgets, ...)."""

    connection_string: str | None = field(repr=False)
    table_endpoint: str | None
    client_id: str | None  # the user-assigned identity for the table endpoint


def _storage_settings(env: _Reader) -> StorageSettings | None:
    connection_string = env.text("AzureWebJobsStorage")
    table_endpoint = env.plain_url("AzureWebJobsStorage__tableServiceUri", "https://ACCOUNT.table.core.windows.net")
    account = env.text("AzureWebJobsStorage__accountName")
    if table_endpoint is None and account is not None:
        table_endpoint = f"https://{account}.table.core.windows.net"
    if connection_string is None and table_endpoint is None:
        return None
    client_id = env.text("AzureWebJobsStorage__clientId") or env.text("AZURE_CLIENT_ID")
    return StorageSettings(connection_string=connection_string, table_endpoint=table_endpoint, client_id=client_id)


@dataclass(frozen=True)
class ConversationSettings:
    """Conversations kept for each user (CONVERSATIONS): the messages in the model service's
    Conversations API, the index of each user's conversations in the storage account."""

    required: bool  # CONVERSATIONS=on; auto: an upstream without the Conversations API turns them off
    retention_days: int | None  # CONVERSATION_RETENTION_DAYS; None: kept until deleted


def _conversation_settings(
    env: _Reader, storage: StorageSettings | None, access: AccessSettings
) -> ConversationSettings | None:
    """`auto` (the default) keeps conversations when the storage account and the owner secret are
    set, and is off otherwise; `on` requires both."""
    mode = env.choice("CONVERSATIONS", CONVERSATION_MODES) or "auto"
    retention = env.integer("CONVERSATION_RETENTION_DAYS", 30, low=0, high=36500)
    needs = {"OWNER_HASH_SECRET": access.owner_secret is not None, "AzureWebJobsStorage": storage is not None}
    missing = [name for name, present in needs.items() if not present]
    if mode == "on" and missing:
        raise SettingsError(
            f"CONVERSATIONS=on needs {' and '.join(missing)}: the owner hash names each user's conversations,"
            " and the Function App's storage account keeps their index (AzureWebJobsStorage__accountName,"
            " or AzureWebJobsStorage; locally Azurite's)"
        )
    if mode == "off" or missing:
        return None
    return ConversationSettings(required=mode == "on", retention_days=retention or None)


def _token_issuer(env: _Reader) -> tuple[str, str, str]:
    """AUTH_MODE=entra: the API's client id, and the issuer and JWKS URL (Entra ID's for the
    tenant unless AUTH_ISSUER and AUTH_JWKS_URL say otherwise)."""
    client_id = (env.text("AUTH_CLIENT_ID") or "").removeprefix("api://").strip("/")
    if not client_id:
        raise SettingsError("AUTH_CLIENT_ID is required with AUTH_MODE=entra: the API's application (client) id")
    tenant = env.text("AUTH_TENANT_ID")
    if tenant is not None and not _GUID.fullmatch(tenant):  # the tokens' issuer names the tenant by its id
        raise SettingsError(f"AUTH_TENANT_ID must be the directory (tenant) id, a GUID, got {tenant!r}")
    issuer = env.plain_url("AUTH_ISSUER", "https://login.microsoftonline.com/TENANT/v2.0")
    jwks_url = env.plain_url("AUTH_JWKS_URL", "https://login.microsoftonline.com/TENANT/discovery/v2.0/keys")
    if tenant is None and (issuer is None or jwks_url is None):
        raise SettingsError("AUTH_TENANT_ID is required with AUTH_MODE=entra (or both AUTH_ISSUER and AUTH_JWKS_URL)")
    return (
        client_id,
        issuer or f"{ENTRA_LOGIN}/{tenant}/v2.0",
        jwks_url or f"{ENTRA_LOGIN}/{tenant}/discovery/v2.0/keys",
    )


def _token_permissions(env: _Reader) -> tuple[str, str | None]:
    """AUTH_MODE=entra: the scope a user's token must carry (default `chat`, the one the README's
    registration creates) and the app role an app-only token must carry (default: none let in)."""
    scope = env.text("AUTH_SCOPE") or "chat"
    if not _CLAIM_VALUE.fullmatch(scope) or "/" in scope:
        raise SettingsError(
            f"AUTH_SCOPE must be one scope's value as tokens carry it in scp, such as chat (not api://<id>/chat),"
            f" got {scope!r}"
        )
    role = env.text("AUTH_APP_ROLE")
    if role is not None and not _CLAIM_VALUE.fullmatch(role):
        raise SettingsError(
            f"AUTH_APP_ROLE must be one app role's value as tokens carry it in roles, such as Chat.Use, got {role!r}"
        )
    return scope, role


_CLAIM_VALUE = re.compile(r"[!-~]+")  # printable ASCII without spaces, as scope and app role values are
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class LocalHostSettings:
    """The local host's own settings (`scripts/run`); the Functions host in Azure ignores them."""

    function_key: str | None = field(repr=False)
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
        if value not in ("true", "false", "1", "0", "on", "off"):
            raise SettingsError(f"{name} must be true or false, got {raw!r}")
        return value in ("true", "1", "on")

    def name(self, name: str) -> str | None:
        """A deployment's name: letters, digits, `.`, `_` and `-`."""
        value = self.text(name)
        if value is not None and not _DEPLOYMENT_NAME.fullmatch(value):
            raise SettingsError(f"{name} must be a deployment name (letters, digits, '.', '_', '-'), got {value!r}")
        return value

    def url(self, name: str) -> str | None:
        value = self.plain_url(name, "https://NAME.openai.azure.com/openai/v1/")
        if value is None:
            return None
        return value if value.endswith("/") else value + "/"

    def plain_url(self, name: str, example: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"{name} must be an http(s) URL such as {example}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SettingsError(f"{name} must use https (plain http is allowed only for localhost)")
        return value

    def names(self, name: str, default: tuple[str, ...], *, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """Comma-separated names among `allowed`; unset: `default`; empty or `none`: none."""
        raw = self._environ.get(name)
        if raw is None:
            return default
        names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
        if names == ("none",):
            return ()
        unknown = [given for given in names if given not in allowed]
        if unknown:
            raise SettingsError(f"{name} names {unknown[0][:40]!r}, which is not one of {', '.join(allowed)}")
        return names

    def mcp_servers(self, name: str) -> tuple[McpServer, ...]:
        try:
            return parse_mcp_servers(self.text(name), self._environ)
        except ValueError as error:
            raise SettingsError(str(error)) from None

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

    def optional_integer(self, name: str, *, low: int, high: int) -> int | None:
        return None if self.text(name) is None else self.integer(name, low, low=low, high=high)

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
