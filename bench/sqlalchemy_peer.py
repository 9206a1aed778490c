"""The SQLAlchemy peer of gosqla's benchmarks: the same fan-out and bulk workloads, on the same
server and data, in SQLAlchemy asyncio (asyncpg) and SQLAlchemy Core sync (psycopg2).

Usage: sqlalchemy_peer.py POSTGRES_URL ROWS BULK_ROWS CONNECTIONS LIMIT
Prints one JSON object: workload -> operations per second.
"""
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

url, rows, bulk_rows, connections, limit = sys.argv[1], *map(int, sys.argv[2:6])
base = url.split("://", 1)[1].split("?", 1)[0]
point = sa.text("SELECT name, price FROM items WHERE id = :id")
meta = sa.MetaData()
items = sa.Table("items", meta, sa.Column("id", sa.BigInteger, primary_key=True),
                 sa.Column("name", sa.Text), sa.Column("price", sa.Float))
bulk = [{"id": rows + i + 1, "name": "bulk %d" % i, "price": float(i)} for i in range(bulk_rows)]
results = {}


async def asyncio_workloads():
    engine = create_async_engine("postgresql+asyncpg://" + base, pool_size=connections, max_overflow=0)
    sem = asyncio.Semaphore(limit)

    async def one(i):
        async with sem:
            async with engine.connect() as conn:
                (await conn.execute(point, {"id": i % rows + 1})).one()

    await asyncio.gather(*(one(i) for i in range(connections * 4)))  # warm the pool
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(rows)))
    results["asyncio_fanout_queries_per_s"] = rows / (time.perf_counter() - start)

    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM items WHERE id > :n"), {"n": rows})
    start = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(items.insert(), bulk)
    results["asyncio_bulk_rows_per_s"] = bulk_rows / (time.perf_counter() - start)
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM items WHERE id > :n"), {"n": rows})
    await engine.dispose()


def sync_workloads():
    engine = sa.create_engine("postgresql+psycopg2://" + base, pool_size=connections, max_overflow=0)

    def one(i):
        with engine.connect() as conn:
            conn.execute(point, {"id": i % rows + 1}).one()

    with ThreadPoolExecutor(max_workers=connections) as pool:
        list(pool.map(one, range(connections * 4)))
        start = time.perf_counter()
        list(pool.map(one, range(rows)))
        results["core_sync_fanout_queries_per_s"] = rows / (time.perf_counter() - start)

    start = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(items.insert(), bulk)
    results["core_sync_bulk_rows_per_s"] = bulk_rows / (time.perf_counter() - start)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM items WHERE id > :n"), {"n": rows})
    engine.dispose()


asyncio.run(asyncio_workloads())
sync_workloads()
results["sqlalchemy_version"] = sa.__version__
print(json.dumps(results))
