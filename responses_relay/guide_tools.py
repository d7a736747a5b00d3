"""The tools the tour guide may offer the model, registered in `TOOLS` (the TOOLS setting
picks among them by name). To add one, write a typed function here and name it in `TOOLS`;
see `tools.py` for the types a parameter may have."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .tools import ToolError, registry


def local_time(
    timezone: Annotated[str, "An IANA time zone name, such as Asia/Tokyo or Europe/Paris"],
) -> dict[str, str]:
    """The current date and time in a time zone, ISO 8601 with its UTC offset. Use it whenever
    the traveller asks what time or day it is somewhere."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Asia"
        raise ToolError(f"Unknown time zone {timezone[:100]!r}: use an IANA name such as Asia/Tokyo") from None
    return {"timezone": timezone, "local_time": datetime.now(zone).isoformat(timespec="seconds")}


TOOLS = registry(local_time)
