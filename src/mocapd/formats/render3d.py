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

import cv2
import numpy as np
from numpy.typing import NDArray

from mocapd.formats.pose_topology import POSE_CONNECTIONS, landmark_side, name_side

__all__ = [
    "BACKGROUND_RGB",
    "CENTRE_RGB",
    "LEFT_RGB",
    "RIGHT_RGB",
    "OrthoCamera",
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

    def axes(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Image right ``r``, image up ``u`` and viewing direction ``f`` in world axes, each (3,)."""
        ca, sa = math.cos(self.azimuth_rad), math.sin(self.azimuth_rad)
        ce, se = math.cos(self.elevation_rad), math.sin(self.elevation_rad)
        f = np.array([sa * ce, ca * ce, -se])  # (3,)
        r = np.cross(f, np.array([0.0, 0.0, 1.0]))
        r /= np.linalg.norm(r)
        u = np.cross(r, f)
        return r, u, f

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
    return (1.0 - a) * positions_m[i0] + a * positions_m[i1]  # (K, 3)


def _pt(xy: FloatArray) -> tuple[int, int]:
    return (int(round(float(xy[0]) * _SUBPIXEL)), int(round(float(xy[1]) * _SUBPIXEL)))


def _line(img: ImageU8, a: FloatArray, b: FloatArray, colour: Rgb, thickness: int) -> None:
    cv2.line(img, _pt(a), _pt(b), colour, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)


def _dot(img: ImageU8, a: FloatArray, colour: Rgb, radius_px: int) -> None:
    cv2.circle(img, _pt(a), radius_px * _SUBPIXEL, colour, -1, cv2.LINE_AA, _SUBPIXEL_BITS)


def _finite_xy(p: FloatArray) -> bool:
    return bool(np.isfinite(p[0]) and np.isfinite(p[1]) and abs(p[0]) < 1e6 and abs(p[1]) < 1e6)


def draw_landmarks_2d(img: ImageU8, landmarks_px: FloatArray, *, thickness_px: int = 2) -> None:
    """Draw BlazePose landmarks (33, 2) (pixel x, y in ``img``; NaN = missing) onto ``img`` in place.

    Lines join MediaPipe's connection pairs whose two ends are known, coloured by side (both ends on
    one side: that side's colour, otherwise the midline colour); each known landmark gets a dot.
    """
    for a, b in POSE_CONNECTIONS:
        pa, pb = landmarks_px[a], landmarks_px[b]
        if not (_finite_xy(pa) and _finite_xy(pb)):
            continue
        sa, sb = landmark_side(a), landmark_side(b)
        _line(img, pa, pb, side_colour(sa if sa == sb else 0), thickness_px)
    radius = max(2, thickness_px + 1)
    for k in range(landmarks_px.shape[0]):
        p = landmarks_px[k]
        if _finite_xy(p):
            _dot(img, p, side_colour(landmark_side(k)), radius)


def _draw_ground_grid(
    img: ImageU8, camera: OrthoCamera, centre_m: FloatArray, spacing_m: float, extent_m: float, thickness: int
) -> None:
    """Lines x = k spacing and y = k spacing on z = 0, within ``extent_m`` of the centre (snapped to the grid)."""
    h, w = img.shape[:2]
    cx = math.floor(centre_m[0] / spacing_m) * spacing_m
    cy = math.floor(centre_m[1] / spacing_m) * spacing_m
    n = int(math.ceil(extent_m / spacing_m))
    ks = np.arange(-n, n + 1) * spacing_m  # (K,)
    for k in ks:
        x = cx + k
        y = cy + k
        for a, b, on_axis in (
            ((x, cy - extent_m, 0.0), (x, cy + extent_m, 0.0), abs(x) < 1e-9),
            ((cx - extent_m, y, 0.0), (cx + extent_m, y, 0.0), abs(y) < 1e-9),
        ):
            ends = camera.project(np.array([a, b]), centre_m, (h, w))  # (2, 3)
            _line(img, ends[0, :2], ends[1, :2], GRID_AXIS_RGB if on_axis else GRID_RGB, thickness)


def render_figure_panel(
    positions_m: FloatArray,
    parents: Sequence[int],
    names: Sequence[str],
    *,
    size_px: tuple[int, int],
    centre_m: FloatArray,
    camera: OrthoCamera,
    label: str = "",
) -> ImageU8:
    """A (h, w, 3) RGB panel showing a stick figure and its shadow (the figure flattened to z = 0) over a ground grid.

    ``positions_m`` (K, 3) are world points (NaN rows skipped), ``parents[k]`` the point each one
    hangs from (-1 for none) and ``names`` give the side colour of the bone ending at each point.
    ``centre_m`` (3,) is the world point drawn at the panel centre (follow the root with it).
    """
    h, w = size_px
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = BACKGROUND_RGB
    thickness = max(1, round(h / 360))
    _draw_ground_grid(img, camera, centre_m, spacing_m=0.5, extent_m=4.0, thickness=max(1, thickness // 2))

    bone_px = max(2, round(h / 150))
    shadow_m = np.asarray(positions_m, dtype=np.float64).copy()  # (K, 3)
    shadow_m[:, 2] = 0.0
    shadow = camera.project(shadow_m, centre_m, (h, w))  # (K, 3)
    for k, p in enumerate(parents):
        if p >= 0 and _finite_xy(shadow[k]) and _finite_xy(shadow[p]):
            _line(img, shadow[p, :2], shadow[k, :2], SHADOW_RGB, bone_px + 1)

    pts = camera.project(positions_m, centre_m, (h, w))  # (K, 3)
    bones: list[tuple[float, int, int]] = []
    for k, p in enumerate(parents):
        if p < 0:
            continue
        if np.all(np.isfinite(pts[k])) and np.all(np.isfinite(pts[p])):
            bones.append((float(pts[k, 2] + pts[p, 2]) / 2.0, k, p))
    for _, k, p in sorted(bones, reverse=True):  # far first
        _line(img, pts[p, :2], pts[k, :2], side_colour(name_side(names[k])), bone_px)
    for k in np.argsort(-pts[:, 2]):
        if np.all(np.isfinite(pts[k])):
            _dot(img, pts[k, :2], side_colour(name_side(names[int(k)])), max(2, bone_px // 2 + 1))
    if label:
        scale = max(0.4, h / 1200)
        cv2.putText(img, label, (max(4, w // 40), max(14, h // 22)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    LABEL_RGB, max(1, thickness), cv2.LINE_AA)  # fmt: skip
    return img
