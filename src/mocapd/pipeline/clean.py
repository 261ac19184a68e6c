"""Cleaning of per-frame landmark tracks: gate, resample to a uniform clock, reject outliers,
fill gaps, smooth.

All functions take ``values`` (F, K, D): F frames, K points (landmarks or joints), D coordinates,
with NaN marking "unknown". The steps, in the order `clean_track` runs them:

1. **Gate**: a point with visibility < ``min_visibility`` (0.5) or in an invalid frame -> NaN.
2. **Hampel** (window 7 = +-3 frames, 3 MAD): per point and coordinate, a sample x_t with
   |x_t - m_t| > 3 * 1.4826 * MAD_t (m_t the window median, MAD_t the window median absolute
   deviation) is an outlier -> NaN. 1.4826 makes the MAD a consistent estimate of sigma.
3. **Gaps**: a run of NaN no longer than ``max_gap_s`` (0.33 s) between two known samples is
   filled linearly ("interpolated"); longer runs, and runs at either end, hold the nearest known
   value ("held"). A point never seen stays NaN.
4. **Smooth**: zero-phase 4th-order Butterworth low-pass at ``cutoff_hz`` (6 Hz) via
   ``scipy.signal.filtfilt`` (forward-backward, so the effective order is 8 and the phase lag 0).
   Skipped when the cutoff is at or above Nyquist or the clip is too short to pad.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, filtfilt

__all__ = [
    "CleanReport",
    "CleanedTrack",
    "butterworth_zero_phase",
    "clean_track",
    "fill_gaps",
    "hampel_outliers",
    "resample_uniform",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_MAD_TO_SIGMA = 1.4826
_TINY = 1e-9


@dataclass(frozen=True)
class CleanReport:
    frames: int
    gated_points: int  # point samples removed for low visibility / invalid frames
    outlier_points: int  # point samples removed by the Hampel filter
    interpolated_frames: int  # frames where at least one point was interpolated
    held_frames: int  # frames where at least one point was held over a long gap
    smoothed: bool


@dataclass(frozen=True)
class CleanedTrack:
    values: FloatArray  # (F, K, D) cleaned, smoothed
    known: BoolArray  # (F, K) measured (not gated, not an outlier)
    interpolated: BoolArray  # (F, K)
    held: BoolArray  # (F, K)
    report: CleanReport


def resample_uniform(time_s: FloatArray, values: FloatArray, times_out_s: FloatArray) -> FloatArray:
    """Linear interpolation of (F, ...) samples at ``time_s`` onto ``times_out_s`` (G,), per channel.

    NaN samples are excluded per channel; an output time whose nearest two samples on either side
    are not both known becomes NaN (no bridging of gaps here: `fill_gaps` decides that later).
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    flat = values.reshape(values.shape[0], -1)  # (F, C)
    out = np.full((times_out_s.shape[0], flat.shape[1]), np.nan)
    if time_s.size == 0:
        return out.reshape((times_out_s.shape[0],) + values.shape[1:])
    right = np.clip(np.searchsorted(time_s, times_out_s, side="left"), 0, time_s.size - 1)  # (G,)
    left = np.clip(right - 1, 0, time_s.size - 1)
    exact = np.isclose(time_s[right], times_out_s, atol=1e-9)
    left = np.where(exact, right, left)
    span = time_s[right] - time_s[left]
    w = np.where(span > 0, (times_out_s - time_s[left]) / np.where(span > 0, span, 1.0), 0.0)
    w = np.clip(w, 0.0, 1.0)[:, None]  # (G, 1)
    out = (1.0 - w) * flat[left] + w * flat[right]  # NaN propagates when either side is unknown
    return cast("FloatArray", out.reshape((times_out_s.shape[0],) + values.shape[1:]))


def hampel_outliers(x: FloatArray, *, window: int = 7, n_sigmas: float = 3.0) -> BoolArray:
    """Hampel test along axis 0 of ``x`` (F, C): True where |x - median| > n * 1.4826 * MAD.

    Medians ignore NaN (windows with fewer than 3 known samples flag nothing). With MAD = 0 (a
    flat window) any deviation above a tiny absolute tolerance is an outlier.
    """
    half = window // 2
    padded = np.pad(x, ((half, half), (0, 0)), mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (F, C, window)
    counts = np.sum(np.isfinite(windows), axis=-1)  # (F, C)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows of unseen points
        med = np.nanmedian(windows, axis=-1)  # (F, C)
        mad = np.nanmedian(np.abs(windows - med[..., None]), axis=-1)  # (F, C)
    threshold = np.maximum(n_sigmas * _MAD_TO_SIGMA * mad, _TINY)  # (F, C)
    return cast("BoolArray", (np.abs(x - med) > threshold) & (counts >= 3) & np.isfinite(x))


def fill_gaps(x: FloatArray, max_gap_frames: int) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Fill NaN runs along axis 0 of ``x`` (F, C), channel by channel.

    Returns (filled (F, C), interpolated (F, C), held (F, C)): interior runs of length <=
    ``max_gap_frames`` are linear between their neighbours; other runs hold the last known value
    (the next known one before the first sample). Channels with no known sample stay NaN.
    """
    f, c = x.shape
    out = x.copy()
    interp = np.zeros((f, c), dtype=bool)
    held = np.zeros((f, c), dtype=bool)
    frames = np.arange(f)
    for ch in range(c):
        known = np.isfinite(x[:, ch])
        if known.all() or not known.any():
            continue
        k_idx = np.flatnonzero(known)
        missing = np.flatnonzero(~known)
        nxt = np.searchsorted(k_idx, missing)  # index into k_idx of the next known sample
        has_prev = nxt > 0
        has_next = nxt < k_idx.size
        prev_f = np.where(has_prev, k_idx[np.maximum(nxt - 1, 0)], -1)
        next_f = np.where(has_next, k_idx[np.minimum(nxt, k_idx.size - 1)], -1)
        gap_len = next_f - prev_f - 1
        short = has_prev & has_next & (gap_len <= max_gap_frames)
        lin = np.interp(frames[missing], k_idx, x[k_idx, ch])
        hold = np.where(has_prev, x[np.maximum(prev_f, 0), ch], x[np.maximum(next_f, 0), ch])
        out[missing, ch] = np.where(short, lin, hold)
        interp[missing[short], ch] = True
        held[missing[~short], ch] = True
    return out, interp, held


def butterworth_zero_phase(x: FloatArray, fps: float, cutoff_hz: float = 6.0, order: int = 4) -> FloatArray:
    """Zero-phase Butterworth low-pass of ``x`` (F, C) along axis 0 (columns with NaN untouched).

    Returns ``x`` unchanged when ``cutoff_hz >= fps / 2`` or F is too short for filtfilt padding.
    """
    nyquist = 0.5 * fps
    if cutoff_hz >= nyquist or x.shape[0] < 4:
        return x.copy()
    b, a = butter(order, cutoff_hz / nyquist, btype="low")
    padlen = min(3 * max(len(a), len(b)), x.shape[0] - 1)
    out = x.copy()
    ok = np.all(np.isfinite(x), axis=0)  # (C,)
    if ok.any():
        out[:, ok] = filtfilt(b, a, x[:, ok], axis=0, padlen=padlen, method="pad")
    return out


def clean_track(
    values: FloatArray,
    visibility: FloatArray,
    frame_valid: BoolArray,
    fps: float,
    *,
    min_visibility: float = 0.5,
    hampel_window: int = 7,
    hampel_sigmas: float = 3.0,
    max_gap_s: float = 0.33,
    cutoff_hz: float = 6.0,
    smooth: bool = True,
) -> CleanedTrack:
    """Gate, Hampel, fill and smooth ``values`` (F, K, D) sampled uniformly at ``fps``.

    ``visibility`` (F, K) and ``frame_valid`` (F,) decide the gating. A point sample is "known"
    when it survives gating and the Hampel test in every coordinate. Interpolated / held frames
    count frames with at least one filled point among points seen at least once in the clip.
    """
    f, k, d = values.shape
    gate = (
        (visibility >= min_visibility) & frame_valid[:, None] & np.all(np.isfinite(values), axis=2)
    )  # (F, K)
    x = np.where(gate[..., None], values, np.nan).reshape(f, k * d)  # (F, K*D)
    outl = (
        hampel_outliers(x, window=hampel_window, n_sigmas=hampel_sigmas).reshape(f, k, d).any(axis=2)
    )  # (F, K)
    known = gate & ~outl
    x = np.where(np.repeat(known, d, axis=1), x, np.nan)
    max_gap_frames = int(np.floor(max_gap_s * fps + 1e-9))
    filled, interp_c, held_c = fill_gaps(x, max_gap_frames)
    interp = interp_c.reshape(f, k, d).any(axis=2)
    held = held_c.reshape(f, k, d).any(axis=2)
    smoothed = smooth and f >= 4 and cutoff_hz < 0.5 * fps
    if smooth:
        filled = butterworth_zero_phase(filled, fps, cutoff_hz)
    report = CleanReport(
        frames=f,
        gated_points=int(np.sum(~gate & frame_valid[:, None])) + int(np.sum(~frame_valid)) * k,
        outlier_points=int(np.sum(outl)),
        interpolated_frames=int(np.sum(interp.any(axis=1) & ~held.any(axis=1))),
        held_frames=int(np.sum(held.any(axis=1))),
        smoothed=bool(smoothed),
    )
    return CleanedTrack(filled.reshape(f, k, d), known, interp, held, report)
