"""Telemetry: with APPLICATIONINSIGHTS_CONNECTION_STRING set, the relay's log records
(one per stream, with its figures as custom dimensions) and traces go to Application
Insights through the Azure Monitor OpenTelemetry distro. Without it, nothing extra is
loaded: the distro is imported only here, only then."""

from __future__ import annotations

import os
from collections.abc import Mapping

LOGGER_NAME = "responses_relay"


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Start exporting if Application Insights is configured; True when it is."""
    environ = os.environ if environ is None else environ
    connection_string = environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection_string:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=connection_string,
        credential=_entra_credential(environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "")),
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
