"""Preview encode speed (frames/s) on 1080p sources, decode excluded.

Usage (from the project root):

    .venv/bin/python bench/bench_preview.py [--frames 150]

Frames come from ../shared/data (decoded once up front, scaled to exactly 1920x1080 for the landscape
case); the landmarks are a fixed synthetic pose, the motion the rest pose walking forward, and the robot a
30-body chain. Prints one line per case: layout, seconds, frames/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from mocapd.formats.preview import encode_preview, preview_layout
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion

DATA = Path(os.environ.get("MOCAPD_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _decode(path: Path, count: int, size: tuple[int, int] | None) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA) if size else img)
            if len(out) == count:
                break
    return out


def _motion(n: int, fps: float) -> Motion:
    trans = np.tile(DEFAULT_SKELETON.rest_offsets_m, (n, 1, 1))  # (F, J, 3)
    trans[:, 0, 1] = -np.linspace(0.0, 3.0, n)
    quat = np.zeros((n, DEFAULT_SKELETON.num_joints, 4))
    quat[..., 0] = 1.0
    return Motion(DEFAULT_SKELETON, fps, trans, quat)


def _landmarks(n: int, w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = np.column_stack([rng.uniform(0.35 * w, 0.65 * w, 33), np.linspace(0.15 * h, 0.9 * h, 33)])
    return np.tile(base, (n, 1, 1))  # (F, 33, 2)


@dataclass(frozen=True)
class _Robot:
    fps: float
    body_positions_m: np.ndarray
    body_parents: tuple[int, ...]
    body_names: tuple[str, ...]


def _robot(n: int, fps: float) -> _Robot:
    b = 30
    pos = np.zeros((n, b, 3))
    pos[:, :, 2] = np.linspace(1.3, 0.0, b)
    pos[:, :, 0] = np.tile([0.1, -0.1], b // 2)
    names = tuple(("left_" if k % 2 == 0 else "right_") + f"link{k}" for k in range(b))
    return _Robot(fps, pos, (-1,) + tuple(range(b - 1)), names)


def _run(name: str, frames: list[np.ndarray], fps: float, robot: bool) -> None:
    n = len(frames)
    h, w = frames[0].shape[:2]
    layout = preview_layout(w, h, with_robot=robot)

    def gen() -> Iterator[np.ndarray]:
        yield from frames

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "preview.mp4"
        t0 = time.perf_counter()
        encode_preview(gen(), _landmarks(n, w, h), _motion(n, fps), out, fps=fps, robot=_robot(n, fps) if robot else None)
        dt = time.perf_counter() - t0
        size_kb = out.stat().st_size / 1024
    print(f"{name}: source {w}x{h} -> preview {layout.width_px}x{layout.height_px}, {n} frames, "
          f"{dt:.2f} s, {n / dt:.1f} frames/s, {size_kb:.0f} KiB")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=150)
    args = ap.parse_args()
    src = DATA / "video" / "sports2d_demo.mp4"
    portrait = DATA / "pose2sim_balancing" / "cam01.mp4"
    if not src.exists() or not portrait.exists():
        print(f"test data not found under {DATA} (set MOCAPD_TEST_DATA)", file=sys.stderr)
        return 2
    landscape = _decode(src, args.frames, (1920, 1080))
    _run("1080p landscape", landscape, 30.0, robot=False)
    _run("1080p landscape + robot", landscape, 30.0, robot=True)
    _run("1080x1920 portrait", _decode(portrait, min(args.frames, 100), None), 60.0, robot=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
