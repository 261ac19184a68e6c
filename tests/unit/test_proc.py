"""Process hygiene: settle_heap moves the start-up heap out of the collector's reach."""

from __future__ import annotations

import subprocess
import sys


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
