"""Worker rules that need no database: backoff, lease self-checks, artifact naming, processor plug-in."""

from __future__ import annotations

import os
import random
import sys
import types

import pytest

from mocapd.db.queue import retry_delay_s
from mocapd.domain.targets import describe_file
from mocapd.worker.processor import PROCESSOR_ENV, PipelineProcessor, load_processor
from mocapd.worker.runner import Abort, AbortReason, LeaseState


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 12])
def test_retry_delay_doubles_per_attempt_with_jitter_and_a_cap(attempt: int) -> None:
    rng = random.Random(attempt)
    full = min(600.0, 2.0 * 2 ** (attempt - 1))
    for _ in range(50):
        d = retry_delay_s(attempt, 2.0, rng)
        assert 0.5 * full <= d <= full


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_lease_state_stops_itself_before_the_lease_can_lapse() -> None:
    clock = _Clock()
    lease = LeaseState(clock=clock)
    lease.check(lease_s=10.0, allow_stop=False)
    clock.t += 7.9
    lease.check(lease_s=10.0, allow_stop=False)  # still inside 80 % of the lease
    clock.t += 0.2
    with pytest.raises(Abort) as e:
        lease.check(lease_s=10.0, allow_stop=False)
    assert e.value.reason is AbortReason.LOST and lease.lost


def test_a_good_heartbeat_renews_the_self_check() -> None:
    clock = _Clock()
    lease = LeaseState(clock=clock)
    clock.t += 7.0
    lease.beat_ok()
    clock.t += 7.0
    lease.check(lease_s=10.0, allow_stop=False)


def test_lease_state_reasons_in_priority_order() -> None:
    lease = LeaseState()
    lease.stopping.set()
    lease.check(lease_s=10.0, allow_stop=True)  # packaging: a stopping worker finishes the job
    with pytest.raises(Abort) as e:
        lease.check(lease_s=10.0, allow_stop=False)
    assert e.value.reason is AbortReason.STOPPING
    lease.mark_canceled()
    with pytest.raises(Abort) as e:
        lease.check(lease_s=10.0, allow_stop=True)
    assert e.value.reason is AbortReason.CANCELED
    lease.mark_lost()
    with pytest.raises(Abort) as e:
        lease.check(lease_s=10.0, allow_stop=True)
    assert e.value.reason is AbortReason.LOST


@pytest.mark.parametrize(
    ("name", "target", "ctype"),
    [
        ("motion.fbx", "default", "application/octet-stream"),
        ("motion.bvh", "default", "text/plain; charset=utf-8"),
        ("motion.glb", "default", "model/gltf-binary"),
        ("g1_motion.json", "unitree_g1", "application/json"),
        ("g1_motion.csv", "unitree_g1", "text/csv; charset=utf-8"),
        ("preview.mp4", None, "video/mp4"),
        ("quality.json", None, "application/json"),
        ("manifest.json", None, "application/json"),
    ],
)
def test_artifact_targets_and_content_types(name: str, target: str | None, ctype: str) -> None:
    """A processor that returns bare paths has them described by the catalogue."""
    assert describe_file(name, ("default", "unitree_g1")) == (target, ctype)


def test_default_processor_is_the_pipeline() -> None:
    assert isinstance(load_processor(None), PipelineProcessor)


def test_a_processor_is_plugged_by_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("mocapd_test_plugin")

    class Echo:
        def process(self, request: object, on_progress: object) -> object:
            return request

    mod.factory = Echo  # type: ignore[attr-defined]
    mod.broken = lambda: object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mocapd_test_plugin", mod)
    assert isinstance(load_processor("mocapd_test_plugin:factory"), Echo)
    monkeypatch.setenv(PROCESSOR_ENV, "mocapd_test_plugin:factory")
    assert isinstance(load_processor(), Echo)
    with pytest.raises(TypeError):
        load_processor("mocapd_test_plugin:broken")
    with pytest.raises(ValueError):
        load_processor("no_colon_here")
    with pytest.raises(ModuleNotFoundError):
        load_processor("mocapd_no_such_module:factory")


def test_heartbeat_must_be_well_inside_the_lease() -> None:
    from mocapd.worker.loop import Heartbeat

    with pytest.raises(ValueError):
        Heartbeat(None, types.SimpleNamespace(id="j"), LeaseState(), lease_s=3.0, interval_s=1.5)  # type: ignore[arg-type]


def test_worker_ids_are_unique_per_start() -> None:
    from mocapd.worker.loop import new_worker_id

    ids = {new_worker_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.split(":")[1] == str(os.getpid()) for i in ids)
