"""The request budget's cost per request, in-process: the limiter-off key lookup (one indexed read) against
the limiter-on token-bucket UPDATE ... RETURNING (`mocapd.db.ratelimit.spend`), on a SQLite file and on
PostgreSQL, from one process and from two processes spending from the same key at once (SQLite
serialises writers behind its write gate; PostgreSQL locks the one row). CPU time per call is given
beside wall time, since the machine is shared.

    .venv/bin/python bench/rate_limit.py --calls 5000 [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

from mocapd.db.accounts import create_account, create_key, hash_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant
from mocapd.db.migrate import upgrade
from mocapd.db.models import ApiKey
from mocapd.db.ratelimit import spend


def _read(db: Database, key: str) -> None:
    with db.connect() as conn:
        conn.execute(select(ApiKey.account_id, ApiKey.revoked_at).where(ApiKey.key_sha256 == key)).first()


def _loop(url: str, key: str, calls: int, mode: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    db = Database(url)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        if mode == "off":
            _read(db, key)
        else:
            assert spend(db, key, time.time(), 1e9, 2e9) is not None
    out.put((time.perf_counter() - t0, time.process_time() - c0))
    db.dispose()


def run(url: str, key: str, calls: int, procs: int, mode: str) -> tuple[float, float]:
    """(wall microseconds a call, CPU microseconds a call) with ``procs`` processes at once."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    ps = [ctx.Process(target=_loop, args=(url, key, calls, mode, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    res = [out.get() for _ in ps]
    for p in ps:
        p.join()
    wall = max(r[0] for r in res)  # the loops' own time (process start-up left out)
    cpu = sum(r[1] for r in res)
    n = calls * procs
    return 1e6 * wall / n, 1e6 * cpu / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--postgres", default=None, help="an admin URL: a scratch database is made there")
    args = ap.parse_args()
    targets: list[tuple[str, str]] = []
    tmp = tempfile.TemporaryDirectory(prefix="mocapd-rl-")
    targets.append(("SQLite", f"sqlite:///{Path(tmp.name) / 'db.sqlite3'}"))
    admin = None
    if args.postgres:
        name = "mocapd_rl_" + secrets.token_hex(4)
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        targets.append(("PostgreSQL", args.postgres.rsplit("/", 1)[0] + "/" + name))
    try:
        for label, url in targets:
            db = Database(url)
            upgrade(db)
            with db.write() as s:
                key = hash_key(create_key(s, create_account(s, "bench", "premium")))
            db.dispose()
            for procs in (1, 2):
                off = run(url, key, args.calls, procs, "off")
                on = run(url, key, args.calls, procs, "on")
                print(f"{label}, {procs} process(es), one key: limiter off {off[0]:.0f} us wall / {off[1]:.0f} us CPU "
                      f"a request; on {on[0]:.0f} us wall / {on[1]:.0f} us CPU (+{on[1] - off[1]:.0f} us CPU)")
    finally:
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        tmp.cleanup()




def poll_cost(calls: int) -> None:
    """CPU time of a whole status poll in-process (the app called through httpx's ASGI transport, one
    SQLite file), limiter off against on, alternating rounds: the share the budget adds to a poll."""
    import asyncio

    import httpx

    from mocapd.api.app import create_app
    from mocapd.config import Settings

    async def rounds(limit: float, data: Path, key: str, job: str) -> float:
        app = create_app(Settings(data_dir=data, secret="bench", rate_limit_rps=limit))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                         headers={"Authorization": f"Bearer {key}"}) as c:
                for _ in range(50):  # warm-up
                    await c.get(f"/api/v1/mocap/jobs/{job}")
                c0 = time.process_time()
                for _ in range(calls):
                    r = await c.get(f"/api/v1/mocap/jobs/{job}")
                    assert r.status_code == 200, r.text
                return 1e6 * (time.process_time() - c0) / calls

    with tempfile.TemporaryDirectory(prefix="mocapd-poll-") as tmp:
        data = Path(tmp) / "data"
        db = Database(Settings(data_dir=data).resolved_database_url)
        upgrade(db)
        with db.write() as s:
            acct = create_account(s, "bench", "premium")
            grant(s, acct.id, 100, "api")
            key = create_key(s, acct)
        db.dispose()
        app = create_app(Settings(data_dir=data, secret="bench", rate_limit_rps=0))

        async def make_job() -> str:
            async with app.router.lifespan_context(app):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
                    r = await c.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"]},
                                     headers={"Authorization": f"Bearer {key}"})
                    assert r.status_code == 201, r.text
                    return str(r.json()["data"]["jobId"])

        job = asyncio.run(make_job())
        offs, ons = [], []
        for _ in range(3):
            offs.append(asyncio.run(rounds(0, data, key, job)))
            ons.append(asyncio.run(rounds(1e9, data, key, job)))
        off, on = min(offs), min(ons)
        print(f"whole poll, in-process, SQLite: limiter off {off:.0f} us CPU, on {on:.0f} us CPU "
              f"(+{100 * (on - off) / off:.1f} %; best of 3 alternating rounds of {calls})")


if __name__ == "__main__":
    main()
    poll_cost(2000)
