"""Telemetry: with APPLICATIONINSIGHTS_CONNECTION_STRING set, spans and metrics in OpenTelemetry's
GenAI semantic conventions and the relay's log records go to Application Insights through the
Azure Monitor OpenTelemetry distro. Without it, nothing of the distro or of OpenTelemetry is
loaded: the relay's hooks reach an observer that does nothing (`observer.py`)."""

from __future__ import annotations

from ..settings import Settings
from .observer import Observer


def configure(settings: Settings) -> Observer:
    """Start exporting if Application Insights is configured; the observer the relay reports to."""
    if settings.telemetry.connection_string is None:
        return Observer()
    from .azure_monitor import start_exporting
    from .recorder import Recorder

    start_exporting(settings.telemetry)
    return Recorder(settings)
