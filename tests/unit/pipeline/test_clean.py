"""Clean: Hampel outliers, gap filling, zero-phase smoothing, gating and counts on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, filtfilt

from mocapd.pipeline.clean import (
    butterworth_zero_phase,
    clean_track,
    fill_gaps,
    hampel_outliers,
    resample_uniform,
)


def _sine(fps: float = 30.0, seconds: float = 4.0, hz: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(fps * seconds)) / fps
    return t, 0.3 * np.sin(2 * np.pi * hz * t) + 1.0


def test_hampel_finds_the_planted_outliers_only() -> None:
    rng = np.random.default_rng(3)
    _, x = _sine()
    x = x + rng.normal(0, 0.003, x.shape)
    spikes = [10, 47, 48, 90]
    x[spikes] += np.array([0.4, -0.5, 0.45, 0.7])  # 90 sits on the steepest slope
    flagged = hampel_outliers(x[:, None])[:, 0]
    assert set(np.flatnonzero(flagged)) == set(spikes)


def test_hampel_on_a_flat_window_flags_the_spike() -> None:
    x = np.ones((20, 1))
    x[9] = 1.5
    assert np.flatnonzero(hampel_outliers(x)[:, 0]).tolist() == [9]


def test_fill_gaps_interpolates_short_and_holds_long() -> None:
    x = np.arange(30, dtype=float)[:, None].copy()
    x[5:8] = np.nan  # 3 frames: short
    x[12:25] = np.nan  # 13 frames: long
    x[:2] = np.nan  # leading: held from the first known sample
    out, interp, held = fill_gaps(x, max_gap_frames=10)
    np.testing.assert_allclose(out[5:8, 0], [5, 6, 7])
    np.testing.assert_allclose(out[12:25, 0], 11.0)
    np.testing.assert_allclose(out[:2, 0], 2.0)
    assert interp[:, 0].sum() == 3 and held[:, 0].sum() == 15
    assert not (interp & held).any()


def test_butterworth_is_zero_phase_and_matches_scipy() -> None:
    fps = 60.0
    t, x = _sine(fps=fps, hz=1.0)
    rng = np.random.default_rng(0)
    noisy = x + rng.normal(0, 0.02, x.shape)
    out = butterworth_zero_phase(noisy[:, None], fps, 6.0)[:, 0]
    b, a = butter(4, 6.0 / 30.0)
    np.testing.assert_allclose(out, filtfilt(b, a, noisy, padlen=15), atol=1e-12)
    # zero phase: the clean 1 Hz component is not delayed
    lag = np.argmax(np.correlate(out - out.mean(), x - x.mean(), mode="full")) - (x.size - 1)
    assert lag == 0
    assert np.std(out - x) < 0.5 * np.std(noisy - x)


def test_clean_track_gates_fills_and_counts() -> None:
    fps = 30.0
    _, base = _sine(fps=fps)
    f = base.size
    values = np.stack([base, 2 * base, -base], axis=1)[:, None, :].repeat(2, axis=1)  # (F, 2, 3)
    vis = np.ones((f, 2))
    vis[20:24, 0] = 0.2  # 4 low-visibility frames on point 0: interpolated
    valid = np.ones(f, dtype=bool)
    valid[60:80] = False  # 20 invalid frames (> 0.33 s): held
    truth = values.copy()
    values[40, 1, 2] += 2.0  # one outlier on point 1
    out = clean_track(values, vis, valid, fps)
    assert out.report.outlier_points == 1
    assert out.report.interpolated_frames == 4 + 1
    assert out.report.held_frames == 20
    assert out.held[60:80].all() and not out.held[:60].any()
    assert not out.known[40, 1] and out.interpolated[40, 1]
    good = np.r_[0:55, 85:f]
    np.testing.assert_allclose(out.values[good], truth[good], atol=0.03)
    assert np.ptp(out.values[60:74], axis=0).max() < 0.02  # held, hence flat (smoothing touches the edges)


def test_resample_uniform_is_linear_between_samples() -> None:
    t = np.array([0.0, 0.04, 0.1, 0.13])
    v = np.array([[0.0], [4.0], [10.0], [np.nan]])
    out = resample_uniform(t, v, np.array([0.0, 0.02, 0.05, 0.1, 0.12]))
    np.testing.assert_allclose(out[:4, 0], [0.0, 2.0, 5.0, 10.0])
    assert np.isnan(out[4, 0])


@pytest.mark.parametrize("fps", [8.0, 12.0])
def test_smoothing_is_skipped_at_low_frame_rates(fps: float) -> None:
    x = np.random.default_rng(1).normal(size=(40, 2))
    np.testing.assert_array_equal(butterworth_zero_phase(x, fps, 6.0), x)
