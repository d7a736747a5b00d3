"""Application Insights' ingestion endpoint, stood in for on 127.0.0.1: takes what the Azure
Monitor exporter sends (`POST /v2.1/track`, gzipped JSON lines), counts the items and says
each was accepted, as Azure does; keeps nothing else. What the relay spends on telemetry is
then all in the relay's process, and nothing leaves the machine.

GET /stats returns {"requests": n, "items": n} so far.

    python -m bench.ingestion --port 0    # prints "PORT <n>" once listening
"""

from __future__ import annotations

import asyncio
import gzip

import orjson

from .listening import port_argument, serve_announced

counted = {"requests": 0, "items": 0}


def connection_string(port: int) -> dict[str, str]:
    """The settings that point a relay's telemetry here, with no usage beacons or cloud lookups."""
    endpoint = f"http://127.0.0.1:{port}/"
    return {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
        ),
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
    }


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            lowered = head.lower()
            length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in lowered else 0
            body = await reader.readexactly(length)
            if head.startswith(b"GET /stats"):
                answer = orjson.dumps(counted)
            else:
                if b"content-encoding: gzip" in lowered:
                    body = gzip.decompress(body)
                lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
                items = sum(len(line) if isinstance(line, list) else 1 for line in lines)
                counted["requests"] += 1
                counted["items"] += items
                answer = orjson.dumps({"itemsReceived": items, "itemsAccepted": items, "errors": []})
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(answer), answer)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    await serve_announced(await asyncio.start_server(handle, "127.0.0.1", port))


def main() -> None:
    asyncio.run(serve(port_argument()))


if __name__ == "__main__":
    main()
