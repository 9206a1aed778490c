"""The SQLAlchemy asyncio peer of the TPC-B-like benchmark: pgbench's built-in transaction (three
UPDATEs, a SELECT and an INSERT between BEGIN and COMMIT) from CLIENTS tasks over a pool of
CLIENTS asyncpg connections, for SECONDS.

Usage: tpcb_sqlalchemy_peer.py POSTGRES_URL SCALE CLIENTS SECONDS
Prints one JSON object: {"asyncio_tps": transactions per second}.
"""
import asyncio
import json
import random
import sys
import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

url, scale, clients, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
base = url.split("://", 1)[1].split("?", 1)[0]
upd_acc = sa.text("UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid")
sel_acc = sa.text("SELECT abalance FROM pgbench_accounts WHERE aid = :aid")
upd_tel = sa.text("UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid")
upd_bra = sa.text("UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid")
ins_his = sa.text("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                  "VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP)")


async def main():
    engine = create_async_engine("postgresql+asyncpg://" + base, pool_size=clients, max_overflow=0)
    done = 0
    deadline = 0.0

    async def client():
        nonlocal done
        rnd = random.Random()
        while time.perf_counter() < deadline:
            p = {"aid": rnd.randint(1, 100000 * scale), "bid": rnd.randint(1, scale),
                 "tid": rnd.randint(1, 10 * scale), "delta": rnd.randint(-5000, 5000)}
            async with engine.begin() as conn:
                await conn.execute(upd_acc, p)
                (await conn.execute(sel_acc, p)).scalar_one()
                await conn.execute(upd_tel, p)
                await conn.execute(upd_bra, p)
                await conn.execute(ins_his, p)
            done += 1

    deadline = time.perf_counter() + 1.0  # warm the pool and the statement caches
    await asyncio.gather(*(client() for _ in range(clients)))
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(client() for _ in range(clients)))
    print(json.dumps({"asyncio_tps": done / (time.perf_counter() - start)}))
    await engine.dispose()


asyncio.run(main())
