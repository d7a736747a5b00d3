"""The benchmark still runs end to end (tiny counts): emulator, the relays (the real worker
included), cold starts, load client, telemetry off and on (with its stand-in ingestion
endpoint), report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)  # the whole benchmark in small: its own run is bounded at 240 s
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
    assert "## S0: cold start" in report
    cold_rows = [line for line in report.split("## S1 to S5")[0].splitlines() if line.startswith("| ")][2:]
    assert [row.split("|")[1].strip() for row in cold_rows] == ["naive", "project", "project-httpx", "worker"]
    assert all(row.split("|")[-2].strip() == "0" for row in cold_rows), "a cold start failed:\n" + report
    for scenario in ("S1", "S2", "S3", "S4", "S5"):
        for target in ("direct", "naive", "project", "project-httpx", "worker"):
            assert f"| {scenario}: " in report
            assert f"| {target} |" in report
    for target in ("project", "project-httpx", "worker"):
        rows = [line for line in report.splitlines() if line.startswith("| S") and f"| {target} |" in line]
        assert len(rows) == 5
        assert all(line.split("|")[-3].strip() == "0" for line in rows), f"{target} had errors:\n" + report
    assert "## Targets" in report
    assert "| S0: cold start" in report.split("## Targets")[1]
    assert "## The upstream transports side by side" in report
    assert "## The real Functions worker" in report
    telemetry = report.split("## Telemetry on and off")[1]
    assert int(re.search(r"took ([\d,]+) items", telemetry)[1].replace(",", "")) > 0  # type: ignore[index]
    [row] = [line for line in telemetry.splitlines() if line.startswith("| S3: ")]
    assert row.split("|")[-2].strip() == "0 / 0", "telemetry on or off had errors:\n" + report
