"""Queue benchmark: claim throughput and latency with N worker processes, on SQLite and PostgreSQL.

Two phases per database:

1. paced: a producer admits jobs at ``--rate`` jobs/s for ``--seconds`` (create, hold, ``queued``: what
   complete-upload does); ``--workers`` processes run the worker's queue cycle (claim -> heartbeat ->
   fenced finish with one artifact row, capturing the hold) and poll every 0.5-1.5 x ``--idle-poll`` s when idle
   (the worker's jitter).
   Reports the latency of claim calls that got a job, of empty polls, and the pickup latency from
   admission (``queued_at``) to ``processing`` (``started_at``).
2. saturated: ``--drain`` jobs are queued up front and the workers drain them without pausing;
   reports claims per second and claim latency.

Usage (from the repository root):
    .venv/bin/python bench/queue_load.py --db both --workers 8 --rate 50 --seconds 20 --drain 2000
PostgreSQL: a fresh database ``mocapd_bench_<random>`` on 127.0.0.1:5432 (user postgres), dropped after.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's ``queue``: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text  # noqa: E402
from tests.integration.queue.support import admit as admit_draft  # noqa: E402
from tests.integration.queue.support import create_draft, new_database, seed_account  # noqa: E402

from mocapd.db import queue  # noqa: E402
from mocapd.db.engine import Database  # noqa: E402
from mocapd.db.models import Job  # noqa: E402
from mocapd.db.queue import ArtifactRecord  # noqa: E402
from mocapd.proc import settle_heap  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LEASE_S = 30.0


def admit(db: Database, account_id: str) -> str:
    """What the API does for a job: the draft (create), then complete-upload's admission (hold, weight,
    ``queued``), each in its own transaction, as `tests.integration.queue.support` writes them."""
    job_id = create_draft(db, account_id)
    admit_draft(db, job_id, seconds=1)
    return job_id


def cycle(db: Database, c: queue.ClaimedJob) -> None:
    queue.heartbeat(db, c.id, c.lease_token, LEASE_S)
    art = ArtifactRecord(
        "motion.bvh", f"jobs/{c.id}/artifacts/motion.bvh", 1, "0" * 64, "text/plain", "default"
    )
    assert queue.finish(db, c.id, c.lease_token, [art])


def worker(url: str, account_id: str, stop: Any, out: Any, ready: Any, go: Any, idle_poll_s: float) -> None:
    """The worker's queue cycle, timed: claim, one heartbeat, fenced finish.

    Before it says ready, each worker runs one untimed cycle on a job it admits itself (SQLAlchemy
    compiles each statement once per process: about 20 ms for the first finish), then settles its
    heap as `mocapd worker` does (`mocapd.proc.settle_heap`)."""
    db = Database(url, pool_size=2)
    wid = f"bench:{os.getpid()}"
    got: list[float] = []
    empty: list[float] = []
    rng = random.Random(os.getpid())
    admit(db, account_id)
    while (c := queue.claim(db, wid, LEASE_S)) is None:
        time.sleep(0.01)
    cycle(db, c)
    settle_heap()
    ready.put(os.getpid())
    go.wait()  # no worker takes another's warm-up job
    cpu0 = time.process_time()
    while not stop.is_set():
        t0 = time.perf_counter()
        c = queue.claim(db, wid, LEASE_S)
        dt = time.perf_counter() - t0
        if c is None:
            empty.append(dt)
            if idle_poll_s:
                time.sleep(idle_poll_s * rng.uniform(0.5, 1.5))  # with jitter, as mocapd.worker.loop sleeps
            continue
        got.append(dt)
        queue.heartbeat(db, c.id, c.lease_token, LEASE_S)
        art = ArtifactRecord(
            "motion.bvh", f"jobs/{c.id}/artifacts/motion.bvh", 1, "0" * 64, "text/plain", "default"
        )
        assert queue.finish(db, c.id, c.lease_token, [art])
    out.put((got, empty, time.process_time() - cpu0))
    db.dispose()


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def run_phase(url: str, account_id: str, workers: int, idle_poll_s: float, produce: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    stop, go, out, ready = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(url, account_id, stop, out, ready, go, idle_poll_s))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # every worker has imported and connected
        ready.get(timeout=120)
    go.set()
    time.sleep(0.5)
    t_ready = time.perf_counter()
    t0 = time.perf_counter()
    job_ids = produce()
    db = Database(url)
    while True:
        with db.read() as s:
            left = s.scalar(select(Job.id).where(Job.id.in_(job_ids), Job.status != "completed").limit(1))
        if left is None:
            break
        time.sleep(0.05)
    wall_s = time.perf_counter() - t0
    stop.set()
    measured_s = time.perf_counter() - t_ready
    got: list[float] = []
    empty: list[float] = []
    cpu_s = 0.0
    for _ in procs:
        g, e, c = out.get()
        got += g
        empty += e
        cpu_s += c
    for p in procs:
        p.join()
    with db.read() as s:
        rows = s.execute(select(Job.queued_at, Job.started_at).where(Job.id.in_(job_ids))).all()
    db.dispose()
    pickup = [(st - q).total_seconds() for q, st in rows]
    return {
        "wall_s": wall_s, "got": got, "empty": empty, "pickup": pickup, "jobs": len(job_ids), "worker_cores": cpu_s / measured_s
    }  # fmt: skip


def bench(url: str, label: str, args: argparse.Namespace) -> list[str]:
    db = new_database(url)
    account_id = seed_account(db, "bench", credits=10_000_000)

    def paced() -> list[str]:
        ids, admit_s = [], []
        n = int(args.rate * args.seconds)
        t_start = time.perf_counter()
        for i in range(n):
            delay = t_start + i / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            ids.append(admit(db, account_id))
            admit_s.append(time.perf_counter() - t0)
        paced.admit_s = admit_s  # type: ignore[attr-defined]
        paced.rate = n / (time.perf_counter() - t_start)  # type: ignore[attr-defined]
        return ids

    def drain() -> list[str]:
        return pre

    a = run_phase(url, account_id, args.workers, args.idle_poll, paced)
    pre = [admit(db, account_id) for _ in range(args.drain)]
    b = run_phase(url, account_id, args.workers, 0.0, drain)
    db.dispose()
    lines = [
        f"| {label} | paced {paced.rate:.1f} jobs/s ({a['jobs']} jobs) | "  # type: ignore[attr-defined]
        f"{ms(pct(a['got'], 50))} / {ms(pct(a['got'], 99))} | {ms(pct(a['empty'], 50))} / {ms(pct(a['empty'], 99))} | "
        f"{ms(pct(a['pickup'], 50))} / {ms(pct(a['pickup'], 99))} / {ms(max(a['pickup']))} | "
        f"{ms(pct(paced.admit_s, 50))} / {ms(pct(paced.admit_s, 99))} | - | "  # type: ignore[attr-defined]
        f"{a['worker_cores']:.2f} |",
        f"| {label} | saturated, {b['jobs']} queued | {ms(pct(b['got'], 50))} / {ms(pct(b['got'], 99))} | "
        f"{ms(pct(b['empty'], 50))} / {ms(pct(b['empty'], 99))} | - | - | {b['jobs'] / b['wall_s']:.0f} | "
        f"{b['worker_cores']:.2f} |",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rate", type=float, default=50.0, help="paced phase: jobs admitted per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="paced phase: duration")
    ap.add_argument(
        "--idle-poll", type=float, default=0.2, help="worker poll interval when idle (the default)"
    )
    ap.add_argument("--drain", type=int, default=2000, help="saturated phase: jobs queued up front")
    args = ap.parse_args()
    header = [
        f"host: {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; python {platform.python_version()}; "
        f"{args.workers} worker processes, idle poll {args.idle_poll} s",
        "",
        "| db | phase | claim ms p50 / p99 (got a job) | empty poll ms p50 / p99 | pickup ms p50 / p99 / max "
        "| admit ms p50 / p99 | claim cycles/s | workers' CPU (cores) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows: list[str] = []
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            rows += bench(f"sqlite:///{tmp}/bench.sqlite3", "SQLite", args)
    if args.db in ("postgres", "both"):
        name = f"mocapd_bench_{secrets.token_hex(4)}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            with admin.connect() as c:
                version = c.execute(text("show server_version")).scalar()
            rows += bench(
                f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", f"PostgreSQL {version}", args
            )
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print("\n".join(header + rows))


if __name__ == "__main__":
    main()
