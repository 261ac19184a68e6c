"""The whole-clip fit of the joints to the image (`mocapd.pipeline.image_fit`) on a known motion."""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.image_fit import ImageFitScales, fit_to_image
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from mocapd.pipeline.solve import rest_bone_lengths

FloatArray = NDArray[np.float64]
FOCAL = 1000.0
CENTRE = (640.0, 360.0)
FPS = 30.0


def _axis_angle_quat(axis: FloatArray, angle: FloatArray) -> FloatArray:
    axis = axis / np.linalg.norm(axis)
    return np.concatenate([np.cos(angle / 2)[:, None], np.sin(angle / 2)[:, None] * axis], axis=1)


def _truth(frames: int = 90) -> FloatArray:
    """Camera-frame joints (F, J, 3) of a rigid skeleton swinging its arms and legs, 3 m away."""
    sk = DEFAULT_SKELETON
    t = np.arange(frames) / FPS
    quat = np.zeros((frames, sk.num_joints, 4))
    quat[..., 0] = 1.0
    swing = {"upperarm_l": (np.array([0.0, 1.0, 0.3]), 0.9), "lowerarm_l": (np.array([0.0, 0.0, 1.0]), 0.7),
             "upperarm_r": (np.array([0.2, 1.0, 0.0]), -0.8), "lowerarm_r": (np.array([0.0, 0.0, 1.0]), -0.6),
             "thigh_l": (np.array([1.0, 0.0, 0.0]), 0.5), "calf_l": (np.array([1.0, 0.0, 0.0]), -0.6),
             "thigh_r": (np.array([1.0, 0.0, 0.2]), -0.4), "spine_02": (np.array([0.0, 0.0, 1.0]), 0.3)}
    for k, (name, (axis, amp)) in enumerate(swing.items()):
        quat[:, sk.index(name)] = _axis_angle_quat(axis, amp * np.sin(2 * np.pi * 0.7 * t + k))
    trans = np.broadcast_to(sk.rest_offsets_m, (frames, sk.num_joints, 3)).copy()
    trans[:, 0, 0] = 0.3 * np.sin(2 * np.pi * 0.2 * t)  # a slow walk sideways
    world = Motion(sk, FPS, trans, quat).world_positions_m()  # (F, J, 3), Z up, facing -Y
    cam = np.stack([world[..., 0], -world[..., 2] + 1.0, world[..., 1] + 3.0], axis=-1)
    cam[:, 0] = np.nan  # the root is not a body point
    return cam


def _project(p: FloatArray) -> FloatArray:
    return FOCAL * p[..., :2] / p[..., 2:] + np.asarray(CENTRE)


def _lengths(cam: FloatArray) -> FloatArray:
    return rest_bone_lengths(np.stack([cam[..., 0], cam[..., 2], -cam[..., 1]], axis=-1))


def _err(p: FloatArray, truth: FloatArray) -> float:
    return float(np.nanmean(np.linalg.norm(p[:, 1:] - truth[:, 1:], axis=-1)))


def _noisy_prior(truth: FloatArray, seed: int = 0, sigma_m: float = 0.05) -> FloatArray:
    rng = np.random.default_rng(seed)
    prior = truth + rng.normal(0.0, sigma_m, truth.shape) * np.array([0.6, 0.6, 1.5])  # depth the worst
    prior[:, 0] = np.nan
    return prior


def test_fit_to_precise_image_landmarks_beats_the_prior_and_keeps_bones() -> None:
    truth = _truth()
    prior = _noisy_prior(truth)
    px = _project(truth) + np.random.default_rng(1).normal(0.0, 2.0, truth.shape[:2] + (2,))
    weights = np.ones(truth.shape[:2])
    fitted, report = fit_to_image(prior, px, weights, _lengths(truth), FOCAL, CENTRE, FPS)
    assert _err(fitted, truth) < 0.5 * _err(prior, truth)
    assert report.image_error_after_px < 0.3 * report.image_error_before_px
    bones = [(j, p) for j, p in enumerate(DEFAULT_SKELETON.parents) if p > 0]
    spread = lambda q: max(float(np.std(np.linalg.norm(q[:, j] - q[:, p], axis=-1))) for j, p in bones)  # noqa: E731
    assert spread(fitted) < 0.3 * spread(prior)
    assert np.isnan(fitted[:, 0]).all()  # the root is left alone


def test_without_image_landmarks_the_prior_holds_and_is_smoothed() -> None:
    truth = _truth()
    prior = _noisy_prior(truth, seed=2)
    px = np.full(truth.shape[:2] + (2,), np.nan)
    fitted, _ = fit_to_image(prior, px, np.ones(truth.shape[:2]), _lengths(truth), FOCAL, CENTRE, FPS)
    assert np.isfinite(fitted[:, 1:]).all()
    assert _err(fitted, truth) < _err(prior, truth)  # bones and smoothness only remove noise
    assert float(np.mean(np.abs(fitted[:, 1:, 2] - prior[:, 1:, 2]).mean())) < 0.1


def test_a_wrong_landmark_pulls_with_a_bounded_force() -> None:
    truth = _truth()
    prior = _noisy_prior(truth, seed=3, sigma_m=0.02)
    px = _project(truth)
    hand = DEFAULT_SKELETON.index("hand_l")
    px[30:40, hand] += 150.0  # the detector jumps to the other hand for a third of a second
    fitted, _ = fit_to_image(prior, px, np.ones(truth.shape[:2]), _lengths(truth), FOCAL, CENTRE, FPS)
    err_hand = np.linalg.norm(fitted[30:40, hand] - truth[30:40, hand], axis=-1)
    plain = dataclasses.replace(ImageFitScales())
    assert plain.image_m > 0
    # 150 px at 3 m is 0.45 m: the robust loss keeps the hand within a fraction of that
    assert float(err_hand.mean()) < 0.2
    assert _err(fitted[:30], truth[:30]) < _err(prior[:30], truth[:30])


def test_windows_join_without_a_seam() -> None:
    truth = _truth(frames=150)
    prior = _noisy_prior(truth, seed=4)
    px = _project(truth) + np.random.default_rng(5).normal(0.0, 2.0, truth.shape[:2] + (2,))
    w = np.ones(truth.shape[:2])
    whole, one = fit_to_image(prior, px, w, _lengths(truth), FOCAL, CENTRE, FPS,
                              scales=ImageFitScales(window_frames=1000))
    split, many = fit_to_image(prior, px, w, _lengths(truth), FOCAL, CENTRE, FPS,
                               scales=ImageFitScales(window_frames=60, overlap_frames=20))
    assert one.windows == 1 and many.windows > 2
    assert float(np.nanmax(np.linalg.norm(split - whole, axis=-1))) < 0.03
    accel = np.linalg.norm(split[2:, 1:] - 2 * split[1:-1, 1:] + split[:-2, 1:], axis=-1)
    accel_whole = np.linalg.norm(whole[2:, 1:] - 2 * whole[1:-1, 1:] + whole[:-2, 1:], axis=-1)
    assert float(accel.max()) < 2.0 * float(accel_whole.max()) + 1e-3


def test_frames_without_a_prior_are_left_alone_and_short_clips_work() -> None:
    truth = _truth()
    prior = _noisy_prior(truth, seed=6)
    prior[40:45] = np.nan  # no camera fit there
    fitted, report = fit_to_image(prior, _project(truth), np.ones(truth.shape[:2]), _lengths(truth), FOCAL,
                                  CENTRE, FPS)  # fmt: skip
    assert np.isnan(fitted[40:45]).all() and np.isfinite(fitted[:40, 1:]).all() and np.isfinite(fitted[45:, 1:]).all()
    assert report.windows == 2  # the runs on either side, each its own problem
    for n in (1, 2):
        out, _ = fit_to_image(prior[:n], _project(truth[:n]), np.ones((n, truth.shape[1])), _lengths(truth), FOCAL,
                              CENTRE, FPS)  # fmt: skip
        assert np.isfinite(out[:, 1:]).all()
