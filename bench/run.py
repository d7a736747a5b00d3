"""Benchmark runner: the project against the floor (direct) and the naive SDK relay.

Starts the upstream emulator and, one after the other, each relay as its own process
(all served by the project's local host, so only the function differs; `worker` runs the
project on the real Functions worker behind it), drives the scenarios with the load
client in this process, and writes bench/RESULTS.md. S0 (cold start) comes first: each
of its rounds starts every relay afresh, in turn, and sends it one chat.

    python -m bench.run             # the full run (a few minutes)
    python -m bench.run --smoke     # tiny counts, as the tests run it

`telemetry` is the project with telemetry off and on (Application Insights' ingestion stood in
for by bench/ingestion.py), the two relays alive side by side and S3 run on each in turn, a few
times, so the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import uvicorn

from .ingestion import connection_string
from .load import StreamResult, Target, run_stream, run_streams

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"  # the processes' logs (not committed)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    streams: int
    deltas: int
    interval: float
    repeat: int = 1  # sequential rounds (S1: one stream is one sample of time to first delta; S0: one start)
    leave: bool = False
    cold: bool = False  # each round starts a fresh relay process and sends it one chat


FULL = [
    Scenario("S0", "cold start: spawn to the first delta of a first chat (x9 starts)", 1, 5, 0.001, 9, cold=True),
    Scenario("S1", "1 stream x 200 deltas at 20 ms (x5 rounds)", 1, 200, 0.02, repeat=5),
    Scenario("S2", "100 streams x 100 deltas at 20 ms", 100, 100, 0.02),
    Scenario("S3", "20 streams x 2,000 deltas, as fast as possible", 20, 2000, 0.0),
    Scenario("S4", "1,000 streams x 50 deltas at 100 ms", 1000, 50, 0.1),
    Scenario("S5", "200 streams at 20 ms, clients leave at random points", 200, 100, 0.02, leave=True),
]
SMOKE = [
    Scenario("S0", "cold start (x2 starts)", 1, 5, 0.001, 2, cold=True),
    Scenario("S1", "1 stream x 10 deltas at 5 ms", 1, 10, 0.005),
    Scenario("S2", "5 streams x 10 deltas at 5 ms", 5, 10, 0.005),
    Scenario("S3", "2 streams x 50 deltas, as fast as possible", 2, 50, 0.0),
    Scenario("S4", "20 streams x 5 deltas at 10 ms", 20, 5, 0.01),
    Scenario("S5", "5 streams, clients leave at random points", 5, 20, 0.005, leave=True),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A child process and its output so far, one line at a time."""

    pid: int
    lines: list[str] = field(default_factory=list)

    def find(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return next((match for line in self.lines if (match := pattern.search(line))), None)


@contextmanager
def process(command: list[str], ready: str, env: dict[str, str], log: Path) -> Iterator[Child]:
    """A child process, once it printed a line containing `ready` (its last line so far). Output goes to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    output = Child(child.pid)
    is_ready = threading.Event()

    def drain() -> None:
        assert child.stdout is not None
        with log.open("w") as sink:
            for line in child.stdout:
                sink.write(line)
                if not is_ready.is_set():
                    output.lines.append(line)
                    if ready in line:
                        is_ready.set()
        is_ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        is_ready.wait(60)
        if not output.lines or ready not in output.lines[-1]:
            raise RuntimeError(f"{command} did not print {ready!r}; see {log}")
        yield output
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        reader.join(10)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def sample_peak_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_bytes(pid))
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def upstream_closes(port: int, expected: set[str], deadline: float) -> dict[str, int]:
    """Stream id -> when the upstream saw its connection close, collected until all came or the deadline."""
    closes: dict[str, int] = {}
    while time.monotonic() < deadline and not expected <= closes.keys():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        closes.update(json.loads(await reader.readexactly(length)))
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
    return closes


async def measure(
    target: Target,
    scenario: Scenario,
    pid: int | None,
    upstream_port: int,
    host_pid: int | None = None,
    settle: float = 0.0,
) -> dict[str, Any]:
    """One scenario's figures; the CPU and RSS are `pid`'s, the relay's own (with the real worker:
    the worker's), and `host_pid`'s CPU is the stand-in Functions host's (with the real worker).
    `settle`: seconds after the last stream that the CPU counts too (what a relay does after its
    streams, such as exporting their telemetry)."""
    results: list[StreamResult] = []
    cpu_before = cpu_seconds(pid) if pid else 0.0
    host_cpu_before = cpu_seconds(host_pid) if host_pid else 0.0
    rss_before = rss_bytes(pid) if pid else 0
    peak = [rss_before]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_peak_rss(pid, peak, stop)) if pid else None
    started = time.monotonic()
    for round_index in range(scenario.repeat):
        results += await run_streams(
            target,
            streams=scenario.streams,
            deltas=scenario.deltas,
            interval=scenario.interval,
            prefix=f"{target.name}-{scenario.name}-{round_index}",
            leave=scenario.leave,
        )
    wall = time.monotonic() - started
    await asyncio.sleep(settle)
    stop.set()
    if sampler:
        await sampler
    cpu = cpu_seconds(pid) - cpu_before if pid else None
    host_cpu = cpu_seconds(host_pid) - host_cpu_before if host_pid else None
    deltas = sum(result.deltas for result in results)
    latencies = [latency for result in results for latency in result.latencies_ms]
    first = [result.first_delta_ms for result in results if result.first_delta_ms is not None]
    figures: dict[str, Any] = {
        "streams": len(results),
        "deltas": deltas,
        "errors": sum(result.error is not None for result in results),
        "error_kinds": sorted({result.error for result in results if result.error}),
        "first_p50": percentile(first, 0.5),
        "first_p99": percentile(first, 0.99),
        "latency_p50": percentile(latencies, 0.5),
        "latency_p99": percentile(latencies, 0.99),
        "deltas_per_s": deltas / wall if wall else None,
        "cpu_us_per_delta": cpu / deltas * 1e6 if cpu is not None and deltas else None,
        "host_cpu_us_per_delta": host_cpu / deltas * 1e6 if host_cpu is not None and deltas else None,
        "peak_rss_mib": peak[0] / 2**20 if pid else None,
        "rss_kib_per_stream": (peak[0] - rss_before) / 1024 / scenario.streams if pid else None,
    }
    if scenario.leave:
        left = {result.stream_id: result.left_at_ns for result in results if result.left_at_ns is not None}
        closes = await upstream_closes(upstream_port, set(left), time.monotonic() + 3)
        waits = [(closes[stream] - at) / 1e6 for stream, at in left.items() if stream in closes]
        figures.update(
            left=len(left), closed=len(waits), cancel_p50=percentile(waits, 0.5), cancel_p99=percentile(waits, 0.99)
        )
    return figures


async def run_target(
    target: Target, scenarios: list[Scenario], pid: int | None, upstream_port: int, host_pid: int | None = None
) -> dict[str, Any]:
    await run_streams(target, streams=3, deltas=5, interval=0.001, prefix=f"{target.name}-warmup")
    return {scenario.name: await measure(target, scenario, pid, upstream_port, host_pid) for scenario in scenarios}


@dataclass(frozen=True)
class Relay:
    """A relay as the benchmark starts it: the function app the local host serves, extra
    environment, and whether the app runs on the real Functions worker behind the host."""

    app_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    worker: bool = False

    def command(self, port: int) -> list[str]:
        command = [sys.executable, "-m", "responses_relay.local_host", "--port", str(port)]
        return [*command, "--app-dir", str(self.app_dir), *(["--worker"] if self.worker else [])]


RELAYS: dict[str, Relay] = {
    "naive": Relay(ROOT / "bench" / "naive"),
    "project": Relay(ROOT),
    "project-httpx": Relay(ROOT, {"UPSTREAM_TRANSPORT": "httpx"}),
    "worker": Relay(ROOT, worker=True),
}
TARGETS = ("direct", *RELAYS, "telemetry")
# The telemetry comparison: S3 on the project with telemetry off and on, in turn, this many times each.
# Each run's CPU counts until its streams' spans and records have been exported (they leave 200 ms after
# they end, not the default 5 s); metrics keep their default interval (60 s): their export is a few
# points a minute, however many deltas, which a run this short would count whole.
TELEMETRY_SCENARIO = "S3"
TELEMETRY_ROUNDS = 8
EXPORT_SOON = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200"}
TELEMETRY_SETTLE_SECONDS = 1.0  # past the export delay above
# The project's relays that differ only in UPSTREAM_TRANSPORT, and what each one uses.
TRANSPORT_TARGETS = {"project": "aiohttp", "project-httpx": "httpx"}
# The local host's last start-up line, with either back end (the worker's own uvicorn prints
# "Uvicorn running on" for its internal port before the host is ready).
READY = "Functions app on"
WORKER_STARTED = re.compile(r"Functions worker started \(pid (\d+)\)")


def run(scenarios: list[Scenario], targets: list[str], smoke: bool = False) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {name: {} for name in targets}
    cold = [scenario for scenario in scenarios if scenario.cold]
    warm = [scenario for scenario in scenarios if not scenario.cold]
    upstream_cmd = [sys.executable, "-m", "bench.upstream", "--port", "0"]
    with process(upstream_cmd, "PORT", {}, OUT / "upstream.log") as upstream:
        upstream_port = int(upstream.lines[-1].split()[1])
        relay_env = {
            "OPENAI_ENDPOINT": f"http://127.0.0.1:{upstream_port}/openai/v1/",
            "OPENAI_API_KEY": "bench",
            "PYTHONPATH": str(ROOT),
        }
        relays = [name for name in targets if name in RELAYS]
        for scenario in cold:
            for name, figures in asyncio.run(cold_starts(scenario, relays, relay_env)).items():
                results[name][scenario.name] = figures
        for name in targets if warm else []:
            if name == "telemetry":
                compared = [scenario for scenario in warm if scenario.name == TELEMETRY_SCENARIO]
                rounds, settle = (1, 0.3) if smoke else (TELEMETRY_ROUNDS, TELEMETRY_SETTLE_SECONDS)
                results[name].update(compare_telemetry(compared, relay_env, upstream_port, rounds, settle))
                continue
            if name == "direct":
                target = Target("direct", "127.0.0.1", upstream_port, "/openai/v1/responses", direct=True)
                results[name].update(asyncio.run(run_target(target, warm, None, upstream_port)))
                continue
            port, relay = free_port(), RELAYS[name]
            with process(relay.command(port), READY, {**relay_env, **relay.env}, OUT / f"{name}.log") as host:
                worker = host.find(WORKER_STARTED)
                pid, host_pid = (int(worker[1]), host.pid) if worker else (host.pid, None)
                target = Target(name, "127.0.0.1", port, "/api/chat")
                results[name].update(asyncio.run(run_target(target, warm, pid, upstream_port, host_pid)))
    return {name: figures for name, figures in results.items() if figures}


def compare_telemetry(
    scenarios: list[Scenario], env: dict[str, str], upstream_port: int, rounds: int, settle: float
) -> dict[str, Any]:
    """Each scenario on the project with telemetry off and on, both relays alive, in turn, `rounds` times,
    each run's CPU counted until `settle` seconds after its last stream; the sum of each one's CPU over
    its deltas, and what the stand-in ingestion endpoint received."""
    if not scenarios:
        return {}
    with process([sys.executable, "-m", "bench.ingestion", "--port", "0"], "PORT", {}, OUT / "ingestion.log") as sink:
        sink_port = int(sink.lines[-1].split()[1])
        telemetry = {**env, **connection_string(sink_port), **EXPORT_SOON}
        off_port, on_port = free_port(), free_port()
        relay = RELAYS["project"]
        with (
            process(relay.command(off_port), READY, env, OUT / "telemetry-off.log") as off,
            process(relay.command(on_port), READY, telemetry, OUT / "telemetry-on.log") as on,
        ):
            targets = {
                "off": (Target("telemetry-off", "127.0.0.1", off_port, "/api/chat"), off.pid),
                "on": (Target("telemetry-on", "127.0.0.1", on_port, "/api/chat"), on.pid),
            }
            return asyncio.run(_compare(scenarios, targets, (rounds, settle), upstream_port, sink_port))


async def _compare(
    scenarios: list[Scenario],
    targets: dict[str, tuple[Target, int]],
    runs: tuple[int, float],
    upstream_port: int,
    sink_port: int,
) -> dict[str, Any]:
    rounds, settle = runs
    for target, _ in targets.values():
        await run_streams(target, streams=3, deltas=5, interval=0.001, prefix=f"{target.name}-warmup")
    compared: dict[str, Any] = {}
    for scenario in scenarios:
        measured: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (target, pid) in targets.items():
                figures = await measure(target, scenario, pid, upstream_port, settle=settle)
                measured[name].append(figures)
        compared[scenario.name] = {name: _summed(figures) for name, figures in measured.items()}
    compared["rounds"], compared["settle"] = rounds, settle
    compared["ingested"] = await _ingested(sink_port)
    return compared


def _summed(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one scenario on one relay: CPU per delta over all of them, the errors, each round's figure."""
    deltas = sum(figures["deltas"] for figures in rounds)
    cpu = sum(figures["cpu_us_per_delta"] * figures["deltas"] for figures in rounds if figures["cpu_us_per_delta"])
    return {
        "rounds": len(rounds),
        "deltas": deltas,
        "errors": sum(figures["errors"] for figures in rounds),
        "cpu_us_per_delta": cpu / deltas if deltas else None,
        "per_round": [figures["cpu_us_per_delta"] for figures in rounds],
    }


async def _ingested(port: int) -> dict[str, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    counted: dict[str, int] = json.loads(await reader.readexactly(length))
    writer.close()
    await writer.wait_closed()
    return counted


async def cold_starts(scenario: Scenario, names: list[str], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each round starts every relay once, one after the other, so the machine's load falls on all alike."""
    starts: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_index in range(scenario.repeat):
        for name in names:
            starts[name].append(await cold_start(name, scenario, round_index, env))
    return {name: cold_figures(runs) for name, runs in starts.items()}


async def cold_start(name: str, scenario: Scenario, round_index: int, env: dict[str, str]) -> dict[str, Any]:
    """Spawn a fresh relay, send one chat as soon as it serves; the times from the spawn (ms)."""
    relay, port = RELAYS[name], free_port()
    log = OUT / f"{name}-{scenario.name}-{round_index}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    spawned = time.monotonic_ns()
    child = await asyncio.create_subprocess_exec(
        *relay.command(port),
        env={**os.environ, **env, **relay.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    assert child.stdout is not None
    with log.open("wb") as sink:
        try:
            lines: list[str] = []
            async with asyncio.timeout(60):
                while READY not in (line := (await child.stdout.readline()).decode(errors="replace")):
                    if not line:
                        raise RuntimeError(f"{name} ended before it served; see {log}")
                    lines.append(line)
                    sink.write(line.encode())
            ready = time.monotonic_ns()
            target = Target(name, "127.0.0.1", port, "/api/chat")
            knobs = f"n={scenario.deltas} interval={scenario.interval}"
            result = await run_stream(target, knobs, f"{name}-{scenario.name}-{round_index}", timeout=60)
            worker = next((match for line in lines if (match := WORKER_STARTED.search(line))), None)
            pid, host_pid = (int(worker[1]), child.pid) if worker else (child.pid, None)
            cpu, host_cpu = cpu_seconds(pid), cpu_seconds(host_pid) if host_pid else None
        finally:
            if child.returncode is None:
                child.terminate()
            try:
                async with asyncio.timeout(30):
                    sink.write(await child.stdout.read())
                    await child.wait()
            except TimeoutError:
                child.kill()
                await child.wait()
    return {
        "ready_ms": (ready - spawned) / 1e6,
        "first_delta_ms": None if result.first_delta_ns is None else (result.first_delta_ns - spawned) / 1e6,
        "chat_first_delta_ms": result.first_delta_ms,
        "cpu_ms": cpu * 1000,
        "host_cpu_ms": None if host_cpu is None else host_cpu * 1000,
        "error": result.error,
    }


def cold_figures(starts: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the starts (one start is one sample)."""

    def median(key: str) -> float | None:
        values = [start[key] for start in starts if start[key] is not None]
        return statistics.median(values) if values else None

    totals = [start["first_delta_ms"] for start in starts if start["first_delta_ms"] is not None]
    return {
        "streams": len(starts),
        "errors": sum(start["error"] is not None for start in starts),
        "error_kinds": sorted({start["error"] for start in starts if start["error"]}),
        "cold_p50": median("first_delta_ms"),
        "cold_min": min(totals, default=None),
        "cold_max": max(totals, default=None),
        "ready_p50": median("ready_ms"),
        "chat_first_delta_p50": median("chat_first_delta_ms"),
        "cpu_ms_p50": median("cpu_ms"),
        "host_cpu_ms_p50": median("host_cpu_ms"),
        "starts": starts,
    }


def check_targets(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The issue's targets, each as (target, met, the figures behind it)."""
    project, naive, direct = results["project"], results["naive"], results["direct"]
    if any(
        figure is None
        for figure in (
            project["S3"]["cpu_us_per_delta"],
            naive["S3"]["cpu_us_per_delta"],
            project["S2"]["latency_p99"],
            direct["S2"]["latency_p99"],
            project["S1"]["first_p50"],
            direct["S1"]["first_p50"],
            project["S0"]["cold_p50"],
            naive["S0"]["cold_p50"],
        )
    ):
        return [("all targets", False, "a figure is missing: see the errors above")]
    checks = []
    cold, naive_cold = project["S0"]["cold_p50"], naive["S0"]["cold_p50"]
    checks.append(
        (
            "S0: cold start (spawn to first delta), median <= naive's, zero errors",
            cold <= naive_cold and project["S0"]["errors"] == 0,
            f"{cold:.0f} ms vs naive {naive_cold:.0f} ms ({cold - naive_cold:+.0f} ms, medians of the starts),"
            f" errors {project['S0']['errors']}",
        )
    )
    cpu, naive_cpu = project["S3"]["cpu_us_per_delta"], naive["S3"]["cpu_us_per_delta"]
    checks.append(
        (
            "S3: CPU per relayed delta <= naive / 8",
            cpu <= naive_cpu / 8,
            f"{cpu:.1f} us vs naive {naive_cpu:.1f} us" + (f" (ratio 1/{naive_cpu / cpu:.1f})" if cpu else ""),
        )
    )
    p99, floor = project["S2"]["latency_p99"], direct["S2"]["latency_p99"]
    checks.append(
        (
            "S2: latency p99 <= direct p99 + 5 ms, zero errors",
            p99 <= floor + 5 and project["S2"]["errors"] == 0,
            f"{p99:.2f} ms vs direct {floor:.2f} ms (+{p99 - floor:.2f} ms), errors {project['S2']['errors']}",
        )
    )
    first, first_floor = project["S1"]["first_p50"], direct["S1"]["first_p50"]
    checks.append(
        (
            "S1: time to first delta <= direct + 2 ms",
            first <= first_floor + 2,
            f"{first:.2f} ms vs direct {first_floor:.2f} ms (+{first - first_floor:.2f} ms, medians of the rounds)",
        )
    )
    s4 = project["S4"]
    checks.append(
        (
            "S4: all streams complete, zero errors, <= 30 KiB RSS per stream",
            s4["errors"] == 0 and s4["rss_kib_per_stream"] <= 30,
            f"errors {s4['errors']}, {s4['rss_kib_per_stream']:.1f} KiB per stream",
        )
    )
    s5 = project["S5"]
    met = s5["closed"] == s5["left"] and s5["cancel_p99"] is not None and s5["cancel_p99"] <= 50
    checks.append(
        (
            "S5: upstream closed within 50 ms p99 of the client leaving",
            met,
            f"p99 {_ms(s5['cancel_p99'])}, closed {s5['closed']}/{s5['left']}",
        )
    )
    compared = results.get("telemetry", {}).get(TELEMETRY_SCENARIO)
    if compared is not None:
        off, on = compared["off"]["cpu_us_per_delta"], compared["on"]["cpu_us_per_delta"]
        checks.append(
            (
                "S3: CPU per delta with telemetry on <= 1.15 x off, zero errors",
                bool(off and on and on <= 1.15 * off) and compared["on"]["errors"] == compared["off"]["errors"] == 0,
                f"{_number(on)} us on vs {_number(off)} us off" + _ratio(on, off),
            )
        )
    return checks


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, Any], scenarios: list[Scenario], smoke: bool) -> str:
    lines = [
        "# Benchmark results" + (" (smoke run: tiny counts, figures mean nothing)" if smoke else ""),
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()},"
        f" Python {platform.python_version()}",
        f"- versions: openai {openai.__version__}, uvicorn {uvicorn.__version__}",
        "- all processes on one machine, on loopback: upstream emulator, relay, load client",
        "- direct: the client reads the upstream itself (the floor); naive: the SDK relay users would otherwise",
        "  write (bench/naive); project: function_app.py (UPSTREAM_TRANSPORT=aiohttp, the default);",
        "  project-httpx: the same with UPSTREAM_TRANSPORT=httpx (httpx2's own transport). All relays run",
        "  under the same local host.",
        "- worker: function_app.py on the real Azure Functions Python worker, behind the local host as its",
        "  stand-in Functions host (gRPC, and each request proxied to the worker's own web server). Its relay CPU",
        "  and RSS are the worker process's, the function's own cost; the stand-in host's CPU (in Azure, the .NET",
        "  host's work) is reported apart, in its own section.",
    ]
    cold = [scenario for scenario in scenarios if scenario.cold]
    warm = [scenario for scenario in scenarios if not scenario.cold]
    for scenario in cold:
        lines += _cold_table(results, scenario)
    if warm:
        lines += _warm_table(results, warm)
    if {"direct", "naive", "project"} <= results.keys() and len(scenarios) == len(FULL):
        lines += ["", "## Targets", "", "| target | met | figures |", "| --- | --- | --- |"]
        lines += [f"| {name} | {'yes' if met else 'NO'} | {why} |" for name, met, why in check_targets(results)]
    transports = [name for name in TRANSPORT_TARGETS if name in results]
    if len(transports) > 1 and warm:
        lines += _transports_table(results, warm, transports)
    if {"project", "worker"} <= results.keys() and warm:
        lines += _worker_table(results, warm)
    if results.get("telemetry"):
        lines += _telemetry_table(results["telemetry"], warm)
    return "\n".join(lines) + "\n"


def _cold_table(results: dict[str, Any], scenario: Scenario) -> list[str]:
    lines = [
        "",
        f"## {scenario.name}: cold start",
        "",
        f"A fresh relay process per start, {scenario.repeat} starts per target, the targets in turn; one chat"
        f" ({scenario.deltas} deltas) as soon as the host prints that it serves. Times from the spawn;"
        " medians over the starts. CPU: the relay process's (with the real worker: the worker's), until the chat"
        " ended.",
        "",
        "| target | spawn to first delta: median (min to max) | spawn to serving | first chat: request to first delta"
        " | relay CPU | stand-in host CPU | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, by_scenario in results.items():
        if scenario.name not in by_scenario:
            continue
        figures = by_scenario[scenario.name]
        cells = [
            name,
            f"{_number(figures['cold_p50'], 0)} ms ({_number(figures['cold_min'], 0)} to"
            f" {_number(figures['cold_max'], 0)})",
            f"{_number(figures['ready_p50'], 0)} ms",
            _ms(figures["chat_first_delta_p50"]),
            f"{_number(figures['cpu_ms_p50'], 0)} ms",
            "-" if figures["host_cpu_ms_p50"] is None else f"{_number(figures['host_cpu_ms_p50'], 0)} ms",
            str(figures["errors"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _warm_table(results: dict[str, Any], scenarios: list[Scenario]) -> list[str]:
    lines = [
        "",
        "## S1 to S5",
        "",
        "| scenario | target | first delta p50 / p99 | delta latency p50 / p99 | deltas/s | relay CPU per delta"
        " | peak RSS | RSS per stream | errors | cancel p50 / p99 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        for name, by_scenario in results.items():
            if name == "telemetry":  # a table of its own
                continue
            if scenario.name not in by_scenario:
                continue
            figures = by_scenario[scenario.name]
            cancel = f"{_ms(figures.get('cancel_p50'))} / {_ms(figures.get('cancel_p99'))}" if scenario.leave else ""
            cells = [
                f"{scenario.name}: {scenario.title}",
                name,
                f"{_ms(figures['first_p50'])} / {_ms(figures['first_p99'])}",
                f"{_ms(figures['latency_p50'])} / {_ms(figures['latency_p99'])}",
                _number(figures["deltas_per_s"], 0),
                f"{_number(figures['cpu_us_per_delta'])} us",
                f"{_number(figures['peak_rss_mib'])} MiB",
                f"{_number(figures['rss_kib_per_stream'])} KiB",
                str(figures["errors"]),
                cancel,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _transports_table(results: dict[str, Any], scenarios: list[Scenario], transports: list[str]) -> list[str]:
    names = " / ".join(TRANSPORT_TARGETS[name] for name in transports)
    lines = [
        "",
        "## The upstream transports side by side",
        "",
        "The project with each UPSTREAM_TRANSPORT, in this run; ratios against the first.",
        "",
        f"| scenario | relay CPU per delta: {names} | first delta p50 | delta latency p99 | RSS per stream |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        figures = [results[name][scenario.name] for name in transports]
        cpu = [item["cpu_us_per_delta"] for item in figures]
        cells = [
            scenario.name,
            " / ".join(f"{_number(value)} us" for value in cpu) + _ratios(cpu),
            " / ".join(_ms(item["first_p50"]) for item in figures),
            " / ".join(_ms(item["latency_p99"]) for item in figures),
            " / ".join(f"{_number(item['rss_kib_per_stream'])} KiB" for item in figures),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratios(values: list[float | None]) -> str:
    first, *others = values
    if not first or any(value is None for value in others):
        return ""
    return " (" + ", ".join(f"{value / first:.2f}" for value in others if value is not None) + ")"


def _worker_table(results: dict[str, Any], scenarios: list[Scenario]) -> list[str]:
    lines = [
        "",
        "## The real Functions worker",
        "",
        "The project on the real worker against the project in-process (no target yet). The stand-in host's CPU is"
        " the local host's proxy (in Azure, the .NET Functions host), not the relay's.",
        "",
        "| scenario | relay CPU per delta: worker / in-process | stand-in host CPU per delta"
        " | first delta p50: worker / in-process | delta latency p99: worker / in-process | errors (worker) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        worker, project = results["worker"][scenario.name], results["project"][scenario.name]
        cells = [
            scenario.name,
            f"{_number(worker['cpu_us_per_delta'])} us / {_number(project['cpu_us_per_delta'])} us"
            + _ratio(worker["cpu_us_per_delta"], project["cpu_us_per_delta"]),
            f"{_number(worker['host_cpu_us_per_delta'])} us",
            f"{_ms(worker['first_p50'])} / {_ms(project['first_p50'])}",
            f"{_ms(worker['latency_p99'])} / {_ms(project['latency_p99'])}",
            str(worker["errors"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _telemetry_table(compared: dict[str, Any], scenarios: list[Scenario]) -> list[str]:
    ingested = compared["ingested"]
    lines = [
        "",
        "## Telemetry on and off",
        "",
        f"The project with telemetry off and on (APPLICATIONINSIGHTS_CONNECTION_STRING pointing at bench/ingestion.py"
        f" on 127.0.0.1, spans and records exported {EXPORT_SOON['OTEL_BSP_SCHEDULE_DELAY']} ms after they end, metrics"
        " at the default 60 s), both relays alive, each scenario"
        f" run on one then the other, {compared['rounds']} times; each run's CPU counted until"
        f" {compared['settle']:g} s after its last stream, so its telemetry's export is in it. The stand-in"
        f" ingestion endpoint took {ingested['items']:,} items in {ingested['requests']:,} requests.",
        "",
        "| scenario | relay CPU per delta: off / on | each run: off | each run: on | errors: off / on |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        if scenario.name not in compared:
            continue
        off, on = compared[scenario.name]["off"], compared[scenario.name]["on"]
        cells = [
            f"{scenario.name}: {scenario.title}",
            f"{_number(off['cpu_us_per_delta'])} us / {_number(on['cpu_us_per_delta'])} us"
            + _ratio(on["cpu_us_per_delta"], off["cpu_us_per_delta"]),
            ", ".join(_number(value) for value in off["per_round"]),
            ", ".join(_number(value) for value in on["per_round"]),
            f"{off['errors']} / {on['errors']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratio(value: float | None, other: float | None) -> str:
    return f" ({value / other:.2f})" if value and other else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, to check the benchmark still runs")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--scenarios", nargs="+", help="only these, e.g. S2 S3")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    scenarios = [item for item in (SMOKE if args.smoke else FULL) if not args.scenarios or item.name in args.scenarios]
    results = run(scenarios, args.targets, args.smoke)
    text = report(results, scenarios, args.smoke)
    args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(text)


if __name__ == "__main__":
    main()
