"""Demo mode: an offline upstream that speaks the Responses streaming wire format."""

from .server import DemoUpstream, Scenario, StreamRecord

__all__ = ["DemoUpstream", "Scenario", "StreamRecord"]
