"""Where a stream's memory goes: the project relaying S4's 1,000 concurrent streams, counted
inside its own process.

The relay runs here, in-process under uvicorn with tracemalloc on; the upstream emulator and
the load client run as processes of their own, so nothing of theirs is counted. Once every
stream is live (each relay producer task started and the first deltas through), it takes:

- tracemalloc's snapshot, each allocation put down to the package whose code asked for it
  (the innermost frame outside the standard library's asyncio, or the standard module);
- a census of the objects the garbage collector tracks, by type, against the one before;
- the process's RSS, against the one before.

    .venv/bin/python -m bench.memory                     # aiohttp; writes bench/MEMORY.md
    .venv/bin/python -m bench.memory --transport httpx --out /tmp/m.md
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import socket
import sys
import sysconfig
import tracemalloc
from pathlib import Path

import uvicorn
import uvloop

ROOT = Path(__file__).resolve().parent.parent
STREAMS, DELTAS, INTERVAL = 1000, 90, 1.0
FRAMES = 4
STDLIB = sysconfig.get_paths()["stdlib"]
_LOAD = (
    "import asyncio, sys\n"
    "from bench.load import Target, run_streams\n"
    "target = Target('relay', '127.0.0.1', int(sys.argv[1]), '/api/chat')\n"
    "results = asyncio.run(run_streams(target, streams=int(sys.argv[2]), deltas=int(sys.argv[3]),"
    " interval=float(sys.argv[4]), prefix='memory'))\n"
    "print(sum(1 for result in results if result.error or not result.completed), 'errors')\n"
)


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def owner(traceback: tracemalloc.Traceback) -> str:
    """The package whose code made the allocation: its innermost frame that is not asyncio's."""
    for frame in traceback:  # most recent first
        path = frame.filename
        if path == __file__:  # nothing between this script's loop and the allocation: uvloop's C code
            break
        if "site-packages/" in path:
            return path.split("site-packages/")[1].split("/")[0].removesuffix(".py")
        if "/responses_relay/" in path:
            return "responses_relay." + path.split("/responses_relay/")[1].split("/")[0].removesuffix(".py")
        if path.startswith(STDLIB) and "/asyncio/" not in path:
            return "stdlib " + Path(path).stem
        if not path.startswith((STDLIB, "<frozen")):
            return Path(path).stem  # function_app
    return "the event loop (uvloop's C code: transports, handles, reads; asyncio)"


def census() -> collections.Counter[str]:
    return collections.Counter(f"{type(item).__module__}.{type(item).__qualname__}" for item in gc.get_objects())


def producers() -> int:
    names = (getattr(task.get_coro(), "__qualname__", "") for task in asyncio.all_tasks())
    return sum(1 for name in names if name == "RelayStream._produce")


async def account(transport: str, streams: int) -> str:
    upstream = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.upstream", "--port", "0", cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert upstream.stdout is not None
    port = (await upstream.stdout.readline()).split()[1].decode()  # "PORT <n>"
    os.environ.update(
        OPENAI_ENDPOINT=f"http://127.0.0.1:{port}/openai/v1/",
        OPENAI_API_KEY="bench",
        UPSTREAM_TRANSPORT=transport,
        # tracemalloc slows every allocation: the start burst must not time out.
        UPSTREAM_CONNECT_TIMEOUT_SECONDS="120",
        UPSTREAM_READ_TIMEOUT_SECONDS="120",
    )
    import function_app
    from responses_relay.local_host import build_asgi_app, http_functions
    from responses_relay.service import ChatService
    from responses_relay.settings import load_settings

    service = ChatService(load_settings())
    app = build_asgi_app(http_functions(function_app.create_app(service)))
    sock = socket.create_server(("127.0.0.1", 0), backlog=4096)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", backlog=4096))
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        await run_load(sock.getsockname()[1], 3, 5, 0.001)  # a first chat: the upstream client is made
        gc.collect()
        before_objects, before_rss = census(), rss_bytes()
        before = tracemalloc.take_snapshot()
        load = asyncio.get_running_loop().create_task(run_load(sock.getsockname()[1], streams, DELTAS, INTERVAL))
        for _ in range(2400):  # 120 s at most
            if producers() >= streams:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a few deltas into every stream: past the start burst
        during_rss = rss_bytes()
        snapshot = tracemalloc.take_snapshot()
        during_objects = census()
        errors = await load
    finally:
        server.should_exit = True
        await serving
        await service.aclose()
        upstream.terminate()
        await upstream.wait()
    objects = during_objects - before_objects
    return report(transport, streams, errors, before, snapshot, during_rss - before_rss, objects)


async def run_load(port: int, streams: int, deltas: int, interval: float) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LOAD, str(port), str(streams), str(deltas), str(interval),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.decode().strip()


def report(
    transport: str,
    streams: int,
    errors: str,
    before: tracemalloc.Snapshot,
    during: tracemalloc.Snapshot,
    rss: int,
    objects: collections.Counter[str],
) -> str:
    # Not counted: the first snapshot, which this script keeps.
    mine = [tracemalloc.Filter(False, tracemalloc.__file__, all_frames=True), tracemalloc.Filter(False, __file__)]
    sizes: collections.Counter[str] = collections.Counter()
    for difference in during.filter_traces(mine).compare_to(before.filter_traces(mine), "traceback"):
        sizes[owner(difference.traceback)] += difference.size_diff
    traced = sum(sizes.values())
    lines = [
        f"## UPSTREAM_TRANSPORT={transport}: {streams:,} streams live ({errors})",
        "",
        f"- Python's allocations (tracemalloc) per stream: {traced / streams / 1024:.1f} KiB; RSS per stream"
        f" {rss / streams / 1024:.1f} KiB, tracemalloc's own records included (bench/RESULTS.md's S4 has the RSS"
        " without them)",
        "",
        "| whose code allocated it | bytes per stream |",
        "| --- | --- |",
    ]
    for name, size in sizes.most_common():
        if size / streams >= 64:
            lines.append(f"| {name} | {size / streams:,.0f} |")
    lines += ["", "| type (objects the collector tracks) | per stream |", "| --- | --- |"]
    for name, count in objects.most_common(40):
        if count / streams >= 0.5:
            lines.append(f"| {name} | {count / streams:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=["aiohttp", "httpx"], default="aiohttp")
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "MEMORY.md")
    args = parser.parse_args()
    tracemalloc.start(FRAMES)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as the local host serves
        text = runner.run(account(args.transport, args.streams))
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
