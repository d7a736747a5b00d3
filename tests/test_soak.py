"""A short soak: many streams through one relay, some clients leaving at random points,
some reading slowly; afterwards nothing is left behind. And a reader that stops reading
cannot make the relay hold more than its bounded buffer: the upstream is paused."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import tracemalloc
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import orjson

from responses_relay import shutdown
from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario

QUESTION = orjson.dumps({"input": "滋賀県について教えてください。"})
HEADERS = {"content-type": "application/json"}


def open_fds(upstream: FaultyUpstream) -> int:
    """Open file descriptors of this process, but for the test upstream's server-side sockets
    (it runs in this process too, and closes its side on its own thread, in its own time)."""
    port = int(upstream.base_url.split(":")[2].split("/")[0])
    theirs = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                theirs.add(f"socket:[{fields[9]}]")
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with suppress(FileNotFoundError):  # the descriptor listdir itself used, closed by now
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return sum(link not in theirs for link in links)


def relay_memory() -> int:
    """Bytes allocated by the relay's own code and still alive. The process also runs the test
    client and the test upstream, whose pools and buffers come and go on their own."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*/responses_relay/*"), tracemalloc.Filter(False, "*/responses_relay/demo/*")]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def one_stream(server: RelayServer, kind: str, number: int, chance: random.Random) -> str:
    """Read one answer as a client of `kind` would; its outcome."""
    # Bytes: fewer than the 80 deltas before a leaver's answer stalls bring, however they merge.
    leave_after = chance.randint(100, 500)
    question = orjson.dumps({"input": f"滋賀県について教えてください。({kind} {number})"})
    async with server.client.stream("POST", "/api/chat", content=question, headers=HEADERS) as reply:
        received = 0
        async for chunk in reply.aiter_raw():
            received += len(chunk)
            if kind == "leaver" and received >= leave_after:
                return "left"
            if kind == "slow":
                await asyncio.sleep(0.002)  # a slow reader (behaviour under test, not synchronisation)
        return "completed" if b"response.completed" in chunk else "cut"


async def test_soak_leaves_nothing_behind(upstream: FaultyUpstream, make_settings: Callable[..., Settings]) -> None:
    # A leaver's answer stalls upstream after 80 deltas, past where it leaves: only the relay
    # closing that upstream call can end it.
    text = "琵琶湖は日本最大の湖です。" * 40
    upstream.set_scenario(Scenario(text=text, delta_seconds=0.003, stall_when="leaver", after_deltas=80))
    chance = random.Random(2026)
    kinds = [chance.choice(["leaver", "slow", "normal"]) for _ in range(150)]
    gc.collect()
    fds_before = open_fds(upstream)
    tracemalloc.start()
    async for server in serve(ChatService(make_settings())):
        # Warm at full concurrency: imports, caches, and both connection pools at their size.
        await asyncio.gather(*(one_stream(server, "normal", -1 - n, chance) for n in range(50)))
        upstream.records.clear()
        outcomes: list[str] = []
        memory = []
        cancelled_upstream = 0
        for start in range(0, len(kinds), 50):  # 50 concurrent at a time
            batch = kinds[start : start + 50]
            outcomes += await asyncio.gather(
                *(one_stream(server, kind, start + n, chance) for n, kind in enumerate(batch))
            )
            for record in upstream.records:  # each upstream call ended; a leaver's only by the relay closing it
                assert await asyncio.to_thread(record.ended.wait, 5)
                if "leaver" in record.request["input"]:
                    cancelled_upstream += record.client_left
            upstream.records.clear()  # the test upstream's own bookkeeping is not the relay's memory
            await server.service.aclose()  # an emptied pool each time: idle connections are no leak
            gc.collect()
            memory.append(relay_memory())
        assert shutdown.open_count() == 0, "every stream has ended"
    tracemalloc.stop()
    assert "cut" not in outcomes
    assert outcomes.count("left") == kinds.count("leaver")
    assert cancelled_upstream == kinds.count("leaver")
    assert open_fds(upstream) <= fds_before  # fewer when something of an earlier test closed meanwhile
    # Whatever one batch leaves (pools, caches, allocator slack), the next ones add nothing to it:
    # a leak would grow with every batch of 50 streams.
    assert memory[-1] < memory[0] * 1.05 + 64 * 1024, memory
