"""Software drawing of stick figures for the preview: a fixed orthographic camera, a ground grid, 2D overlays.

World frame as in ``mocapd.pipeline.skeleton``: Z up, metres, the character faces -Y, left = +X.

Camera model (orthographic). With azimuth ``a`` and elevation ``e`` the viewing direction is
``f = (sin a cos e, cos a cos e, -sin e)`` (``a = e = 0`` looks along +Y, i.e. at the character's
front), the image right axis is ``r = normalize(f x z)`` and the image up axis ``u = r x f``.
A world point ``p`` seen around a centre ``c`` lands on pixel

    x = w/2 + s (p - c) . r,   y = h/2 - s (p - c) . u,   depth = (p - c) . f,

with ``s = h / view_height_m`` pixels per metre. Bones are drawn far to near by mean depth so
near limbs cover far ones.

All images are ``uint8`` RGB arrays (H, W, 3); colours are RGB tuples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.layout import BLAZEPOSE_33, HAND_21, name_side

__all__ = [
    "BACKGROUND_RGB",
    "CENTRE_RGB",
    "LEFT_RGB",
    "RIGHT_RGB",
    "OrthoCamera",
    "draw_hands_2d",
    "draw_landmarks_2d",
    "render_figure_panel",
    "sample_at_time",
    "side_colour",
]

FloatArray = NDArray[np.float64]
ImageU8 = NDArray[np.uint8]
Rgb = tuple[int, int, int]

LEFT_RGB: Rgb = (60, 150, 255)  # the person's left side: blue
RIGHT_RGB: Rgb = (255, 110, 30)  # the person's right side: orange
CENTRE_RGB: Rgb = (240, 240, 240)  # midline: near white
BACKGROUND_RGB: Rgb = (26, 28, 33)
GRID_RGB: Rgb = (78, 82, 92)
GRID_AXIS_RGB: Rgb = (120, 124, 136)
LABEL_RGB: Rgb = (200, 200, 200)
SHADOW_RGB: Rgb = (12, 13, 16)
OUTLINE_RGB: Rgb = (20, 20, 20)

_SUBPIXEL_BITS = 2  # cv2 drawing with 1/4 pixel precision
_SUBPIXEL = 1 << _SUBPIXEL_BITS


def side_colour(side: int) -> Rgb:
    """Colour for a side code (+1 left, -1 right, 0 midline)."""
    return LEFT_RGB if side > 0 else RIGHT_RGB if side < 0 else CENTRE_RGB


@dataclass(frozen=True)
class OrthoCamera:
    """A fixed orthographic camera: direction from azimuth/elevation, scale from the visible height."""

    azimuth_rad: float = math.radians(-30.0)
    elevation_rad: float = math.radians(12.0)
    view_height_m: float = 2.6

    @cached_property
    def _axes(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        ca, sa = math.cos(self.azimuth_rad), math.sin(self.azimuth_rad)
        ce, se = math.cos(self.elevation_rad), math.sin(self.elevation_rad)
        f = np.array([sa * ce, ca * ce, -se])  # (3,)
        r = np.cross(f, np.array([0.0, 0.0, 1.0]))
        r /= np.linalg.norm(r)
        u = np.cross(r, f)
        return r, u, f

    def axes(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Image right ``r``, image up ``u`` and viewing direction ``f`` in world axes, each (3,)."""
        return self._axes

    def snap_centre(self, centre_m: FloatArray, height_px: int) -> FloatArray:
        """``centre_m`` (3,) moved horizontally by less than half a pixel so that the ground plane is drawn
        at whole-pixel offsets: a view that follows the body then shifts its grid by whole pixels from
        frame to frame, which the video encoder predicts exactly (a drifting, re-antialiased grid cost
        libx264 about a quarter of the 3D panel's time and bytes, see bench/results/preview.md).

        The screen offsets ``s (c . r)`` and ``s (c . u)`` (``s`` pixels per metre, ``c`` the horizontal
        part of the centre) are rounded to integers; a level camera (no elevation) only has the first.
        ``r`` is a horizontal unit vector (the image's right).
        """
        r, u, _ = self.axes()
        s = height_px / self.view_height_m
        c = np.asarray(centre_m, dtype=np.float64)
        if not np.all(np.isfinite(c)):
            return c
        m = np.array([[r[0], r[1]], [u[0], u[1]]])  # (2, 2): horizontal centre -> screen offsets / s
        offsets = m @ c[:2]  # (2,)
        target = np.rint(s * offsets) / s
        if abs(float(np.linalg.det(m))) < 1e-6:  # level: depth does not move the picture
            xy = c[:2] + r[:2] * (target[0] - offsets[0])
        else:
            xy = np.linalg.solve(m, target)
        return np.array([xy[0], xy[1], c[2]])

    def project(self, points_m: FloatArray, centre_m: FloatArray, size_px: tuple[int, int]) -> FloatArray:
        """Pixel x, y and depth of ``points_m`` (..., 3) seen around ``centre_m`` (3,) on a (h, w) panel.

        Returns (..., 3): x (px, right), y (px, down), depth (m, away from the viewer).
        """
        h, w = size_px
        r, u, f = self.axes()
        d = np.asarray(points_m, dtype=np.float64) - centre_m  # (..., 3)
        s = h / self.view_height_m
        return np.stack([w / 2.0 + s * (d @ r), h / 2.0 - s * (d @ u), d @ f], axis=-1)


def sample_at_time(positions_m: FloatArray, fps: float, t_s: float) -> FloatArray:
    """Positions (F, K, 3) sampled at time ``t_s`` (frame ``i`` is at ``i / fps``), (K, 3).

    Linear interpolation between the two neighbouring frames, ``p = (1 - a) p[i] + a p[i + 1]`` with
    ``i = floor(t fps)``, ``a = t fps - i``; times outside the clip take the first or last frame.
    """
    n = positions_m.shape[0]
    u = min(max(t_s * fps, 0.0), float(n - 1))
    i0 = int(math.floor(u))
    i1 = min(i0 + 1, n - 1)
    a = u - i0
    if a <= 1e-9 or i1 == i0:
        return np.asarray(positions_m[i0], dtype=np.float64)
    return np.asarray((1.0 - a) * positions_m[i0] + a * positions_m[i1], dtype=np.float64)  # (K, 3)


Point = tuple[int, int]


def _pts(xy: FloatArray) -> tuple[list[Point], list[bool]]:
    """OpenCV's fixed-point form of pixel positions (N, 2+) (x, y first), and which are drawable.

    Drawable: x and y finite and within 1e6 px. Converted for all points at once: drawing calls one
    OpenCV function per line from plain tuples (per-point NumPy indexing took as long as the drawing).
    """
    xy = np.asarray(xy, dtype=np.float64)[:, :2]  # (N, 2)
    ok = np.all(np.isfinite(xy), axis=1) & np.all(np.abs(xy) < 1e6, axis=1)  # (N,) NaN compares False
    fixed = np.rint(np.where(ok[:, None], xy, 0.0) * _SUBPIXEL).astype(np.int64)  # (N, 2)
    return [(x, y) for x, y in fixed.tolist()], ok.tolist()


def _line(img: ImageU8, a: Point, b: Point, colour: Rgb, thickness: int) -> None:
    cv2.line(img, a, b, colour, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)


def _dot(img: ImageU8, a: Point, colour: Rgb, radius_px: int) -> None:
    cv2.circle(img, a, radius_px * _SUBPIXEL, colour, -1, cv2.LINE_AA, _SUBPIXEL_BITS)


def draw_landmarks_2d(img: ImageU8, landmarks_px: FloatArray, *, thickness_px: int = 2) -> None:
    """Draw BlazePose landmarks (33, 2) (pixel x, y in ``img``; NaN = missing) onto ``img`` in place.

    Lines join MediaPipe's connection pairs whose two ends are known, coloured by side (both ends on
    one side: that side's colour, otherwise the midline colour) over a dark outline; each known
    landmark gets a dot.
    """
    pt, ok = _pts(landmarks_px)
    pairs = [(a, b) for a, b in BLAZEPOSE_33.connection_indices if ok[a] and ok[b]]
    radius = max(2, thickness_px + 1)
    for a, b in pairs:  # a dark outline first keeps the lines readable on bright footage
        _line(img, pt[a], pt[b], OUTLINE_RGB, thickness_px + 2)
    for a, b in pairs:
        sa, sb = BLAZEPOSE_33.side(a), BLAZEPOSE_33.side(b)
        _line(img, pt[a], pt[b], side_colour(sa if sa == sb else 0), thickness_px)
    for k in (k for k in range(len(pt)) if ok[k]):
        _dot(img, pt[k], OUTLINE_RGB, radius + 1)
        _dot(img, pt[k], side_colour(BLAZEPOSE_33.side(k)), radius)


def draw_hands_2d(img: ImageU8, hands_px: FloatArray, *, thickness_px: int = 1) -> None:
    """Draw both hands' landmarks (2, 21, 2) (the performer's left hand first; pixel x, y in ``img``;
    NaN = not seen) onto ``img`` in place: MediaPipe's hand connections, thin, in the side's colour over
    a dark outline, with a small dot on each fingertip. A hand is drawn only where all its points are known.
    """
    tips = [k for k, name in enumerate(HAND_21.names) if name.endswith("_tip")]
    for hand, colour in zip(np.asarray(hands_px, dtype=np.float64), (LEFT_RGB, RIGHT_RGB), strict=True):
        pt, ok = _pts(hand)
        if not all(ok):
            continue
        for a, b in HAND_21.connection_indices:
            _line(img, pt[a], pt[b], OUTLINE_RGB, thickness_px + 1)
        for a, b in HAND_21.connection_indices:
            _line(img, pt[a], pt[b], colour, thickness_px)
        for k in tips:
            _dot(img, pt[k], colour, thickness_px)


@lru_cache(maxsize=8)
def _background(h: int, w: int) -> ImageU8:
    """A read-only (h, w, 3) panel of the background colour (copying it is 100x faster than filling)."""
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = BACKGROUND_RGB
    img.flags.writeable = False
    return img


def _draw_ground_grid(
    img: ImageU8, camera: OrthoCamera, centre_m: FloatArray, spacing_m: float, extent_m: float, thickness: int
) -> None:
    """Lines x = k spacing and y = k spacing on z = 0, within ``extent_m`` of the centre (snapped to the grid)."""
    h, w = img.shape[:2]
    cx = math.floor(centre_m[0] / spacing_m) * spacing_m
    cy = math.floor(centre_m[1] / spacing_m) * spacing_m
    n = int(math.ceil(extent_m / spacing_m))
    ks = np.arange(-n, n + 1) * spacing_m  # (K,)
    lo_x, hi_x = np.full_like(ks, cx - extent_m), np.full_like(ks, cx + extent_m)
    lo_y, hi_y = np.full_like(ks, cy - extent_m), np.full_like(ks, cy + extent_m)
    zero = np.zeros_like(ks)
    starts = np.concatenate(
        [np.stack([cx + ks, lo_y, zero], -1), np.stack([lo_x, cy + ks, zero], -1)]
    )  # (2K, 3)
    ends = np.concatenate(
        [np.stack([cx + ks, hi_y, zero], -1), np.stack([hi_x, cy + ks, zero], -1)]
    )  # (2K, 3)
    on_axis = np.concatenate([np.abs(cx + ks) < 1e-9, np.abs(cy + ks) < 1e-9])  # (2K,)
    a, _ = _pts(camera.project(starts, centre_m, (h, w)))
    b, _ = _pts(camera.project(ends, centre_m, (h, w)))
    for i, axis in enumerate(on_axis.tolist()):
        _line(img, a[i], b[i], GRID_AXIS_RGB if axis else GRID_RGB, thickness)


def render_figure_panel(
    positions_m: FloatArray,
    parents: Sequence[int],
    names: Sequence[str],
    *,
    size_px: tuple[int, int],
    centre_m: FloatArray,
    camera: OrthoCamera,
    label: str = "",
    small: Sequence[bool] | None = None,
) -> ImageU8:
    """A (h, w, 3) RGB panel showing a stick figure and its shadow (the figure flattened to z = 0) over a ground grid.

    ``positions_m`` (K, 3) are world points (NaN rows skipped), ``parents[k]`` the point each one
    hangs from (-1 for none) and ``names`` give the sides: a bone between two points of one side takes
    that side's colour, any other bone (spine, hips, shoulders) the midline colour.
    ``centre_m`` (3,) is the world point drawn at the panel centre (follow the root with it).
    Points flagged in ``small`` (K,) (finger joints) hang from thin bones and get no dot: a hand's
    bones are a few centimetres long, and the body's line width would draw them as one blob.
    """
    h, w = size_px
    img = _background(h, w).copy()  # (h, w, 3)
    thickness = max(1, round(h / 360))
    _draw_ground_grid(img, camera, centre_m, spacing_m=0.5, extent_m=4.0, thickness=max(1, thickness // 2))

    bone_px = max(2, round(h / 150))
    fine = [bool(v) for v in small] if small is not None else [False] * len(parents)
    fine_px = max(1, bone_px // 3)
    shadow_m = np.asarray(positions_m, dtype=np.float64).copy()  # (K, 3)
    shadow_m[:, 2] = 0.0
    shadow, shadow_ok = _pts(camera.project(shadow_m, centre_m, (h, w)))  # (K,)
    for k, p in enumerate(parents):
        if p >= 0 and shadow_ok[k] and shadow_ok[p]:
            _line(img, shadow[p], shadow[k], SHADOW_RGB, (fine_px if fine[k] else bone_px) + 1)

    projected = camera.project(positions_m, centre_m, (h, w))  # (K, 3)
    pt, _ = _pts(projected)
    known = np.all(np.isfinite(projected), axis=1).tolist()  # (K,) x, y and depth
    depth = projected[:, 2].tolist()
    sides = [name_side(n) for n in names]
    bones = [((depth[k] + depth[p]) / 2.0, k, p) for k, p in enumerate(parents) if p >= 0 and known[k] and known[p]]
    for _, k, p in sorted(bones, reverse=True):  # far first
        _line(img, pt[p], pt[k], side_colour(sides[k] if sides[k] == sides[p] else 0), fine_px if fine[k] else bone_px)
    for k in np.argsort(-projected[:, 2]).tolist():
        if known[k] and not fine[k]:
            _dot(img, pt[k], side_colour(sides[k]), max(2, bone_px // 2 + 1))
    if label:
        scale = max(0.4, h / 1200)
        cv2.putText(img, label, (max(4, w // 40), max(14, h // 22)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    LABEL_RGB, max(1, thickness), cv2.LINE_AA)  # fmt: skip
    return img
