"""Telemetry: with APPLICATIONINSIGHTS_CONNECTION_STRING set, the relay's log records
(one per stream, with its figures as custom dimensions) and traces go to Application
Insights through the Azure Monitor OpenTelemetry distro. Without it, nothing extra is
loaded: the distro is imported only here, only then."""

from __future__ import annotations

from .settings import Settings

LOGGER_NAME = "responses_relay"


def configure(settings: Settings) -> bool:
    """Start exporting if Application Insights is configured; True when it is."""
    connection_string = settings.appinsights_connection_string
    if connection_string is None:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=connection_string,
        credential=_entra_credential(settings.appinsights_authentication_string or ""),
        logger_name=LOGGER_NAME,
        instrumentation_options={"azure_sdk": {"enabled": False}},
    )
    return True


def _entra_credential(authentication: str) -> object | None:
    """The managed identity named by "ClientId=...;Authorization=AAD" (the Functions host's
    setting), for an Application Insights resource with local authentication off."""
    fields = dict(part.split("=", 1) for part in authentication.split(";") if "=" in part)
    if fields.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=fields.get("ClientId") or None)
