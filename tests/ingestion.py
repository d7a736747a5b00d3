"""A capture server on 127.0.0.1 speaking the Application Insights ingestion protocol
(`POST /v2.1/track`, JSON or gzipped JSON lines), for telemetry tests."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .http_server import OneRequestEndpoint, answer_json


@dataclass(frozen=True)
class Envelope:
    """One telemetry item: its context tags (operation id, parent id, user) and its baseData."""

    item: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.item["data"]["baseData"])

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.item.get("tags", {}))

    @property
    def operation(self) -> str | None:
        return self.tags.get("ai.operation.id")

    @property
    def parent(self) -> str | None:
        return self.tags.get("ai.operation.parentId")

    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.data.get("message") or "")

    @property
    def properties(self) -> dict[str, str]:
        return dict(self.data.get("properties") or {})


class Ingestion(OneRequestEndpoint):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []
        self._arrived = asyncio.Condition()

    @property
    def environ(self) -> dict[str, str]:
        """The settings that point the Azure Monitor distro here and keep every byte on 127.0.0.1."""
        endpoint = self.base_url + "/"
        return {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                f"IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
            ),
            # No usage beacons, no cloud metadata lookups.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
        }

    def messages(self) -> list[dict[str, Any]]:
        """The log records received: each one's baseData (message, properties)."""
        items = [item for item in self.received if item.get("data", {}).get("baseType") == "MessageData"]
        return [item["data"]["baseData"] for item in items]

    def envelopes(self, base_type: str, operation: str | None = None) -> list[Envelope]:
        """The items of a type (RequestData, RemoteDependencyData, MessageData, MetricData), in one
        operation (trace id) when given."""
        found = [Envelope(item) for item in self.received if item.get("data", {}).get("baseType") == base_type]
        return [envelope for envelope in found if operation is None or envelope.operation == operation]

    def metric_points(self, name: str) -> list[Envelope]:
        """The points received of one metric (each interval's, for each set of dimensions)."""
        return [point for point in self.envelopes("MetricData") if point.data["metrics"][0]["name"] == name]

    async def wait_for_message(self, matches: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((message for message in self.messages() if matches(message)), None)

        await self.wait_until(lambda: found() is not None, timeout)
        message = found()
        assert message is not None
        return message

    async def wait_until(self, condition: Callable[[], object], timeout: float) -> None:
        """Until what has arrived meets `condition` (checked as items arrive); TimeoutError after `timeout`."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(condition), timeout)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        if b"content-encoding: gzip" in head.lower():
            body = gzip.decompress(body)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()] if body.strip() else []
        items = [item for line in lines for item in (line if isinstance(line, list) else [line])]
        async with self._arrived:
            self.received.extend(items)
            self._arrived.notify_all()
        await answer_json(writer, {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})
