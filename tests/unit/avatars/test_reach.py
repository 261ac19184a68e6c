"""The avatar retargeter's two-bone reach (arms toward the source's hands, legs to the pinned feet):
lengths kept, the end on a reachable target, clamped smoothly where it is not, the bend plane kept (the
pole where the limb is straight), and neither bone turned past its limit."""

from __future__ import annotations

import numpy as np

from mocapd.avatars.retarget import _bend_to, _bounded_reach


def _chain(n: int, bend_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    root = np.zeros((n, 3))
    mid = np.tile([0.30, 0.0, -bend_m], (n, 1))
    end = np.tile([0.55, 0.0, 0.0], (n, 1))
    return root, mid, end


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_the_end_reaches_what_it_can_and_clamps_without_a_jump() -> None:
    n = 400
    root, mid, end = _chain(n, 0.05)
    a, b = np.linalg.norm(mid - root, axis=1), np.linalg.norm(end - mid, axis=1)
    target = np.stack([np.linspace(0.2, 0.9, n), np.full(n, 0.1), np.zeros(n)], axis=1)  # in and out of reach
    pole = np.tile([0.0, 1.0, 0.0], (n, 1))
    m, e = _bend_to(root, mid, end, target, pole)
    assert np.allclose(np.linalg.norm(m - root, axis=1), a) and np.allclose(np.linalg.norm(e - m, axis=1), b)
    dist = np.linalg.norm(target - root, axis=1)
    inside = dist < (a + b) * 0.999
    assert inside.any() and (~inside).any()
    assert np.abs(e - target)[inside].max() < 1e-6
    out = ~inside  # beyond reach: straight towards the target
    assert np.allclose(e[out], (target[out] / dist[out, None]) * (a + b)[out, None], atol=1e-5)
    step = np.linalg.norm(np.diff(e, axis=0), axis=1)
    assert step.max() < 3 * np.linalg.norm(np.diff(target, axis=0), axis=1).max()
    # the elbow stays in the plane of its bend (here x-z, the chain bent towards -z)
    assert np.all(m[:, 2] <= 1e-9)


def test_a_straight_limb_bends_towards_its_pole() -> None:
    n = 3
    root, mid, end = _chain(n, 0.0)
    target = np.tile([0.35, 0.0, 0.0], (n, 1))
    pole = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    m, e = _bend_to(root, mid, end, target, pole)
    assert np.abs(e - target).max() < 1e-6
    assert np.all(np.sum((m - root) * pole, axis=1) > 0.1)


def test_no_bone_turns_past_the_limit_and_the_end_only_comes_closer() -> None:
    rng = np.random.default_rng(7)
    n = 500
    root, mid, end = _chain(n, 0.08)
    target = end + rng.normal(scale=0.25, size=(n, 3))
    pole = np.tile([0.0, 0.0, -1.0], (n, 1))
    for limit in (5.0, 15.0, 40.0):
        t1, t2 = _bounded_reach(root, mid, end, target, pole, np.radians(limit))
        m = root + np.einsum("nij,nj->ni", t1, mid - root)
        e = m + np.einsum("nij,nj->ni", t2 @ t1, end - mid)
        assert _angle(m - root, mid - root).max() <= limit + 1e-6
        assert _angle(e - m, end - mid).max() <= limit + 1e-6
        assert np.all(np.linalg.norm(e - target, axis=1) <= np.linalg.norm(end - target, axis=1) + 1e-9)
    moved = np.linalg.norm(e - end, axis=1)
    assert np.median(moved) > 0.05  # with 40 degrees most ends get well on their way
