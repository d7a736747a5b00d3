"""The benchmark still runs end to end (tiny counts): emulator, the relays, load client, report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = out.read_text()
    for scenario in ("S1", "S2", "S3", "S4", "S5"):
        for target in ("direct", "naive", "project", "project-httpx"):
            assert f"| {scenario}: " in report
            assert f"| {target} |" in report
    for target in ("project", "project-httpx"):
        rows = [line for line in report.splitlines() if line.startswith("| S") and f"| {target} |" in line]
        assert len(rows) == 5
        assert all(line.split("|")[-3].strip() == "0" for line in rows), f"{target} had errors:\n" + report
    assert "## Targets" in report
    assert "## The lean transport's own gain" in report
