"""Process hygiene: settle_heap moves the start-up heap out of the collector's reach; a thread can run at a lower priority."""

from __future__ import annotations

import subprocess
import sys

import pytest


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
