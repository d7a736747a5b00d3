"""Exporting to Application Insights through the Azure Monitor OpenTelemetry distro: the
relay's log records (one per stream, with its figures as custom dimensions), its spans and
its metrics."""

from __future__ import annotations

from azure.monitor.opentelemetry import configure_azure_monitor

from ..settings import TelemetrySettings

LOGGER_NAME = "responses_relay"
# The libraries the distro would instrument. The relay's own spans cover its calls (the upstream's
# through httpx2 among them, which an instrumentation would start as traces of their own where the
# function runs apart from its server, as under the worker); FastAPI's own telemetry, not the
# distro's instrumentation of it, makes the worker's request spans, without a span per write.
_NOT_INSTRUMENTED = frozenset(
    {"azure_sdk", "django", "fastapi", "flask", "httpx", "httpx2", "psycopg2", "requests", "urllib", "urllib3"}
)


def start_exporting(settings: TelemetrySettings) -> None:
    assert settings.connection_string is not None
    configure_azure_monitor(
        connection_string=settings.connection_string,
        credential=_entra_credential(settings.authentication_string or ""),
        logger_name=LOGGER_NAME,
        instrumentation_options={name: {"enabled": False} for name in _NOT_INSTRUMENTED},
        **({"sampling_ratio": 1.0} if settings.keep_every_trace else {}),
    )


def _entra_credential(authentication: str) -> object | None:
    """The managed identity named by "ClientId=...;Authorization=AAD" (the Functions host's
    setting), for an Application Insights resource with local authentication off."""
    fields = dict(part.split("=", 1) for part in authentication.split(";") if "=" in part)
    if fields.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=fields.get("ClientId") or None)
