"""The Function App's storage account's Table service: one client per table, made on first
use (the table created if missing), sharing one managed identity credential.

azure-data-tables is imported only here, and this module only when a configuration uses a
table (budgets, ...), so the others start without it.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient

from ..settings import StorageSettings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

# azure-core logs every storage request, with its URL and headers, at INFO: none of that goes to logs.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


class Tables:
    def __init__(self, storage: StorageSettings) -> None:
        self._storage = storage
        self._credential: AsyncTokenCredential | None = None
        self._clients: dict[str, TableClient] = {}
        self._ready: set[str] = set()

    def client(self, name: str) -> TableClient:
        """The table's client; `ensure` it before the first read or write."""
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._new_client(name)
        return client

    async def ensure(self, name: str) -> TableClient:
        """The table's client, the table created first if this instance has not seen it yet."""
        client = self.client(name)
        if name not in self._ready:
            with suppress(ResourceExistsError):  # another instance made it
                await client.create_table()
            self._ready.add(name)
        return client

    def _new_client(self, name: str) -> TableClient:
        storage = self._storage
        if storage.connection_string is not None:
            # The SDK reads `UseDevelopmentStorage=true` (the emulator) only without a trailing `;`.
            return TableClient.from_connection_string(storage.connection_string.strip().rstrip(";"), name)
        assert storage.table_endpoint is not None, "settings name a connection string or an endpoint"
        if self._credential is None:
            self._credential = _managed_identity(storage.client_id)
        return TableClient(storage.table_endpoint, name, credential=self._credential)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        if self._credential is not None:
            await self._credential.close()
            self._credential = None


def _managed_identity(client_id: str | None) -> AsyncTokenCredential:
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)
