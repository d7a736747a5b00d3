"""What the host prints, as Core Tools' `func start` prints it: invocations starting and
ending, and the worker's logs (the app's always; the worker's own with `verbose`)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_LEVELS = {3: "Warning", 4: "Error", 5: "Critical"}
_SYSTEM = 1  # RpcLog.RpcLogCategory.System


class Console:
    def __init__(self, *, verbose: bool = False, out: TextIO = sys.stdout) -> None:
        self._verbose = verbose
        self._out = out

    def log(self, record: Any) -> None:
        """One `RpcLog` from the worker."""
        if record.log_category == _SYSTEM and not self._verbose:
            return
        level = _LEVELS.get(record.level)
        self.line(f"{level}: {record.message}" if level else record.message)

    def executing(self, function: str, invocation_id: str) -> None:
        reason = "This function was programmatically called via the host APIs."
        self.line(f"Executing 'Functions.{function}' (Reason='{reason}', Id={invocation_id})")

    def executed(self, function: str, invocation_id: str, duration_ms: float, failure: str | None) -> None:
        outcome = "Succeeded" if failure is None else "Failed"
        self.line(f"Executed 'Functions.{function}' ({outcome}, Id={invocation_id}, Duration={duration_ms:.0f}ms)")
        if failure is not None:
            self.line(f"Error: Functions.{function}: {failure}")

    def line(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        print(f"[{stamp}] {text}", file=self._out, flush=True)
