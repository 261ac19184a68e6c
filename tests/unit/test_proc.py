"""Process hygiene: settle_heap moves the start-up heap out of the collector's reach; a thread can run at a lower priority."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import alive, kill_all, started_at


def test_settle_heap_freezes_what_is_alive_and_leaves_new_objects_collectable() -> None:
    code = (
        "import gc, sqlalchemy\n"
        "from mocapd.proc import settle_heap\n"
        "assert gc.get_freeze_count() == 0\n"
        "settle_heap()\n"
        "frozen = gc.get_freeze_count()\n"
        "assert frozen > 10_000, frozen\n"  # every imported module's objects
        "class Node: pass\n"
        "a, b = Node(), Node(); a.b, b.a = b, a\n"
        "del a, b\n"
        "assert gc.collect() >= 2\n"  # a new cycle is still found
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_lowered_thread_priority_holds_for_that_thread_and_the_threads_it_starts_only() -> None:
    import os
    import threading

    from mocapd.proc import lower_thread_priority

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int] = {}

    def child() -> None:
        seen["child"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def lowered() -> None:
        lower_thread_priority(3)
        seen["lowered"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        started = threading.Thread(target=child)
        started.start()
        started.join()

    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join()
    assert seen == {"lowered": min(19, base + 3), "child": min(19, base + 3)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller's own is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_whose_parent_died_before_it_asked_to_die_with_it_still_stops(tmp_path: Path) -> None:
    """The race of a starting child: its parent (a `mocapd serve` starting its API processes) is killed
    before the child gets to `die_with_parent`; the kernel would never signal it, so it must notice."""
    import time

    (tmp_path / "late_child.py").write_text(
        "import time\n"
        "from mocapd.proc import die_with_parent\n"
        "def main():\n"
        "    time.sleep(1.0)  # the parent is killed meanwhile\n"
        "    die_with_parent()\n"
        "    time.sleep(30)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import multiprocessing as mp, late_child, time\n"
         "p = mp.get_context('spawn').Process(target=late_child.main)\n"
         "p.start()\n"
         "print(p.pid, flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    started = started_at(child)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    try:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and alive(child, started):
            time.sleep(0.1)
        assert not alive(child, started)
    finally:
        kill_all([child])
