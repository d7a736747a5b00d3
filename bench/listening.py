"""How the benchmark's own servers (the upstream emulator, the stand-in ingestion endpoint) start:
on 127.0.0.1, at the port `--port` names (0: a free one), saying "PORT <n>" once they listen, for
the runner to read."""

from __future__ import annotations

import argparse
import asyncio


def port_argument() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    return int(parser.parse_args().port)


async def serve_announced(server: asyncio.Server) -> None:
    """Say where `server` listens, then serve until stopped."""
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()
