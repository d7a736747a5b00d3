"""Demo mode: an offline upstream that speaks the Responses streaming wire format."""

from .server import DemoUpstream

__all__ = ["DemoUpstream"]
