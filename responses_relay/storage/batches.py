"""Writes to one partition of a table, batched and conditional.

Each operation reads the partition's rows through a `Rows` view and says what to change. The
operations that arrive while a transaction is in flight go together in the next one (an entity
group transaction: all or nothing, each row once), computed on the rows as this writer last read
or wrote them, each row's change conditional on its ETag. When another writer (another instance)
changed a row first, the cache is dropped and the whole batch is computed again on fresh reads.
An operation that raises is left out of its batch, and its caller gets the exception.

So one instance's concurrent writes to a partition never contend with each other and cost one
request per batch, and writes of several instances never lose one another's changes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

MAX_OPERATIONS = 100  # a transaction's limit: rows changed at once
WRITE_SECONDS = 30.0  # how long a batch keeps being retried while other writers come first
_MAX_BACKOFF_SECONDS = 0.2

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class Row:
    fields: dict[str, Any]
    etag: str


class Conflict(Exception):
    """Another writer changed (or created) a row since it was read: that row's key, when known."""

    def __init__(self, key: str | None) -> None:
        super().__init__(key)
        self.key = key


class Rows:
    """The partition's rows as one batch sees them: as last read or written, with the batch's
    changes so far applied."""

    def __init__(self, writer: PartitionWriter) -> None:
        self._writer = writer
        self.changes: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        """The row's fields, or None when it does not exist (and this batch does not create it)."""
        known = await self._writer.known(key)
        if known is None and key not in self.changes:
            return None
        return {**(known.fields if known is not None else {}), **self.changes.get(key, {})}

    def set(self, key: str, fields: dict[str, Any]) -> None:
        """Change (or create) the row: these fields, merged into it."""
        self.changes[key] = {**self.changes.get(key, {}), **fields}


Operation = Callable[[Rows], Awaitable[_Result]]


class PartitionWriter:
    def __init__(self, table: TableClient, partition: str) -> None:
        self._table = table
        self._partition = partition
        self._known: dict[str, Row | None] = {}
        self._queue: list[tuple[Operation[Any], asyncio.Future[Any]]] = []
        self._writing: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._writing is not None

    async def run(self, operation: Operation[_Result]) -> _Result:
        """Run `operation` in the next batch; its result once the batch is written."""
        done: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        self._queue.append((operation, done))
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write_all())
        return await done

    async def known(self, key: str) -> Row | None:
        if key not in self._known:
            try:
                entity = await self._table.get_entity(self._partition, key)
                self._known[key] = Row(dict(entity), str(entity.metadata["etag"]))
            except ResourceNotFoundError:
                self._known[key] = None
        return self._known[key]

    async def _write_all(self) -> None:
        try:
            while self._queue:
                # Each operation changes at most two rows (a count and a row of its own).
                batch, self._queue = self._queue[: MAX_OPERATIONS // 2], self._queue[MAX_OPERATIONS // 2 :]
                await self._write(batch)
        finally:
            self._writing = None

    async def _write(self, batch: list[tuple[Operation[Any], asyncio.Future[Any]]]) -> None:
        deadline = time.monotonic() + WRITE_SECONDS
        attempt = 0
        while True:
            rows = Rows(self)
            outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            try:
                for operation, done in batch:
                    before = dict(rows.changes)
                    try:
                        outcomes.append((done, await operation(rows), None))
                    except (AzureError, Conflict):
                        raise
                    except Exception as error:  # the operation's own refusal: it is left out
                        rows.changes = before
                        outcomes.append((done, None, error))
                await self._submit(rows.changes)
            except Conflict as conflict:
                # Read again only the row another writer changed (usually a shared count); all of
                # them when it is not known which, or when the batch keeps conflicting.
                if conflict.key is None or attempt >= 3:
                    self._known.clear()
                else:
                    self._known.pop(conflict.key, None)
                if time.monotonic() > deadline:
                    _settle(batch, AzureError("the table stayed contended"))
                    return
                attempt += 1
                await asyncio.sleep(random.uniform(0, min(_MAX_BACKOFF_SECONDS, 0.005 * 2**attempt)))
                continue
            except Exception as failure:
                self._known.clear()
                _settle(batch, failure)
                return
            for done, result, refusal in outcomes:
                if done.done():
                    continue
                if refusal is not None:
                    done.set_exception(refusal)
                else:
                    done.set_result(result)
            return

    async def _submit(self, changes: dict[str, dict[str, Any]]) -> None:
        if not changes:
            return
        operations: list[Any] = []
        for key, fields in changes.items():
            entity = {"PartitionKey": self._partition, "RowKey": key, **fields}
            current = self._known.get(key)
            if current is None:
                operations.append(("create", entity))
            else:
                condition = {"mode": UpdateMode.MERGE, "etag": current.etag,
                             "match_condition": MatchConditions.IfNotModified}  # fmt: skip
                operations.append(("update", entity, condition))
        try:
            results = await self._table.submit_transaction(operations)
        except (TableTransactionError, ResourceModifiedError, ResourceExistsError) as error:
            if not isinstance(error, TableTransactionError):
                raise Conflict(None) from None
            if error.status_code not in (409, 412):
                raise  # not a row that changed (412) or appeared (409) since it was read
            keys = list(changes)
            raise Conflict(keys[error.index] if 0 <= error.index < len(keys) else None) from None
        for (key, fields), result in zip(changes.items(), results, strict=True):
            current = self._known.get(key)
            self._known[key] = Row({**(current.fields if current is not None else {}), **fields}, str(result["etag"]))


def _settle(batch: list[tuple[Operation[Any], asyncio.Future[Any]]], error: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(error)
