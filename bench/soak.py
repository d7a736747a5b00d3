"""Soak: thousands of streams through one local host process, a share of clients leaving
at random points and a share reading slowly; then checks that the process is back where
it started: asyncio tasks, open file descriptors, memory, and no upstream stream in flight.

    python -m bench.soak [--streams 3000] [--concurrency 300]    # writes bench/SOAK.md
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .load import StreamResult, Target, run_stream
from .run import OUT, ROOT, free_port, process, rss_bytes


async def get_json(port: int, path: str) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 10)  # both servers close after answering
    writer.close()
    await writer.wait_closed()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


async def snapshot(relay_port: int, pid: int) -> dict[str, Any]:
    diagnostics = await get_json(relay_port, "/_diagnostics")
    return {**diagnostics, "rss_mib": rss_bytes(pid) / 2**20}


async def soak(relay_port: int, upstream_port: int, pid: int, streams: int, concurrency: int) -> dict[str, Any]:
    target = Target("project", "127.0.0.1", relay_port, "/api/chat")
    chance = random.Random(7)
    warm = [run_stream(target, "n=40 interval=0.01", f"warm-{index}") for index in range(concurrency)]
    await asyncio.gather(*warm)
    before = await snapshot(relay_port, pid)
    kinds = [chance.choices(["leaver", "slow", "normal"], weights=[3, 2, 5])[0] for _ in range(streams)]
    started = time.monotonic()
    results: list[StreamResult] = []
    for start in range(0, streams, concurrency):
        jobs = []
        for index, kind in enumerate(kinds[start : start + concurrency], start):
            leave_after = chance.randint(1, 39) if kind == "leaver" else None
            pause = 0.05 if kind == "slow" else 0.0
            jobs.append(run_stream(target, "n=40 interval=0.01", f"soak-{index}", leave_after, pause=pause))
        results += await asyncio.gather(*jobs)
    seconds = time.monotonic() - started
    deadline = time.monotonic() + 10
    # The streams end in another process: poll its diagnostics route.
    while (after := await snapshot(relay_port, pid))["live_streams"] and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    in_flight = (await get_json(upstream_port, "/in-flight"))["streams"]
    return {
        "streams": streams,
        "concurrency": concurrency,
        "seconds": round(seconds, 1),
        "leavers": kinds.count("leaver"),
        "slow_readers": kinds.count("slow"),
        "left": sum(result.left_at_ns is not None for result in results),
        "errors": sum(result.error is not None for result in results),
        "error_kinds": dict(Counter(result.error for result in results if result.error)),
        "before": before,
        "after": after,
        "upstream_streams_in_flight_after": in_flight,
    }


def report(figures: dict[str, Any]) -> str:
    before, after = figures["before"], figures["after"]
    rows = [
        ("asyncio tasks", before["tasks"], after["tasks"]),
        ("live streams", before["live_streams"], after["live_streams"]),
        ("open file descriptors", before["open_fds"], after["open_fds"]),
        ("RSS (MiB)", f"{before['rss_mib']:.1f}", f"{after['rss_mib']:.1f}"),
    ]
    lines = [
        "# Soak results",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} cores",
        f"- {figures['streams']} streams of 40 deltas at 10 ms, {figures['concurrency']} at a time, through one local"
        f" host process, in {figures['seconds']} s",
        f"- {figures['leavers']} clients left at a random delta ({figures['left']} did), {figures['slow_readers']}"
        f" read slowly (50 ms pause after every read); errors: {figures['errors']} {figures['error_kinds'] or ''}",
        f"- upstream streams still in flight afterwards: {figures['upstream_streams_in_flight_after']}"
        " (idle keep-alive connections stay pooled, by design)",
        "",
        "| measure | warm baseline | after the soak |",
        "| --- | --- | --- |",
        *[f"| {name} | {first} | {second} |" for name, first, second in rows],
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "SOAK.md")
    args = parser.parse_args()
    upstream_command = [sys.executable, "-m", "bench.upstream", "--port", "0"]
    with process(upstream_command, "PORT", {}, OUT / "soak-upstream.log") as upstream:
        upstream_port = int(upstream.lines[-1].split()[1])
        relay_port = free_port()
        environ = {
            "OPENAI_ENDPOINT": f"http://127.0.0.1:{upstream_port}/openai/v1/",
            "OPENAI_API_KEY": "soak",
            "LOCAL_HOST_DIAGNOSTICS": "1",
            "PYTHONPATH": str(ROOT),
        }
        command = [
            sys.executable,
            "-m",
            "responses_relay.local_host",
            "--port",
            str(relay_port),
            "--app-dir",
            str(ROOT),
        ]
        with process(command, "Uvicorn running on", environ, OUT / "soak-relay.log") as relay:
            figures = asyncio.run(soak(relay_port, upstream_port, relay.pid, args.streams, args.concurrency))
    text = report(figures)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
