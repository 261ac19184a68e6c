"""Process hygiene shared by the service's child processes."""

from __future__ import annotations

import signal

__all__ = ["die_with_parent"]


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: ask the kernel to send ``sig`` to this process when its parent dies, so a SIGKILLed
    `mocapd serve` or `mocapd worker` never leaves orphan API or worker processes behind. Elsewhere a
    no-op."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
