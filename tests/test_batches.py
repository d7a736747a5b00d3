"""Batched, conditional writes to one partition (responses_relay/storage/batches.py), on the real
storage emulator: two writers (two instances) adding to one count at once lose nothing, each
writer batches its own operations, and an operation that refuses is left out of its batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.data.tables import EdmType, EntityProperty

from responses_relay.settings import StorageSettings
from responses_relay.storage.batches import PartitionWriter, Rows
from responses_relay.storage.tables import Tables

from .azurite import Azurite

TABLE = "batchtests"


@pytest.fixture
async def tables(azurite: Azurite) -> AsyncIterator[list[Tables]]:
    """Two instances' table clients on the emulator's account."""
    storage = StorageSettings(connection_string=azurite.connection_string, table_endpoint=None, client_id=None)
    made = [Tables(storage), Tables(storage)]
    yield made
    for each in made:
        await each.aclose()


def add(amount: int, limit: int | None = None) -> Any:
    async def operation(rows: Rows) -> int:
        count = await rows.get("count") or {}
        value = count.get("n", 0)
        now = int(value.value if isinstance(value, EntityProperty) else value)
        if limit is not None and now + amount > limit:
            raise ValueError("over the limit")
        rows.set("count", {"n": EntityProperty(now + amount, EdmType.INT64)})
        rows.set(f"item-{uuid.uuid4().hex}", {"amount": amount})
        return now + amount

    return operation


async def test_two_writers_adding_at_once_lose_nothing(tables: list[Tables]) -> None:
    partition = uuid.uuid4().hex
    writers = [PartitionWriter(await each.ensure(TABLE), partition) for each in tables]
    for _ in range(30):  # each round, both write from what they last knew: one of them is stale
        await asyncio.gather(*(writer.run(add(1)) for writer in writers))
    count = await tables[0].client(TABLE).get_entity(partition, "count")
    assert count["n"].value == 60


async def test_a_writer_batches_the_operations_that_arrive_while_it_writes(tables: list[Tables]) -> None:
    partition = uuid.uuid4().hex
    table = tables[0].client(TABLE)
    writer = PartitionWriter(await tables[0].ensure(TABLE), partition)
    requests = 0
    real_submit = table.submit_transaction

    async def counting_submit(*args: Any, **kwargs: Any) -> Any:
        nonlocal requests
        requests += 1
        return await real_submit(*args, **kwargs)

    table.submit_transaction = counting_submit  # type: ignore[method-assign]
    await asyncio.gather(*(writer.run(add(1)) for _ in range(120)))
    items = [entity async for entity in table.query_entities("PartitionKey eq @p", parameters={"p": partition})]
    assert len(items) == 121  # the count and one row per operation
    assert (await table.get_entity(partition, "count"))["n"].value == 120
    assert requests <= 4, "120 operations in a few transactions (at most 50 in one)"


async def test_an_operation_that_refuses_is_left_out_and_its_caller_gets_the_error(tables: list[Tables]) -> None:
    partition = uuid.uuid4().hex
    writer = PartitionWriter(await tables[0].ensure(TABLE), partition)
    results = await asyncio.gather(*(writer.run(add(1, limit=3)) for _ in range(5)), return_exceptions=True)
    assert sorted(result for result in results if isinstance(result, int)) == [1, 2, 3]
    assert [str(result) for result in results if isinstance(result, Exception)] == ["over the limit"] * 2
    count = await tables[0].client(TABLE).get_entity(partition, "count")
    assert count["n"].value == 3
