"""Make docs/preview.png: one frame of the preview.mp4 that a job on sports2d_demo.mp4 produces.

The job is the real pipeline and writers (`produce`) with targets ``default`` + ``unitree_g1`` at 30 fps, so
the picture shows exactly what users download: the source with the detected skeleton, the solved 3D
motion and the G1 robot. The frame at ``--time`` seconds is decoded from the preview, scaled to
``--width`` pixels and written as an optimised PNG (kept under about 400 kB for the README).

Run (from the project root, needs ../shared/data; about 20 s):

    .venv/bin/python bench/make_readme_picture.py [--time 2.5] [--width 1240] [--out docs/preview.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from mocapd.pipeline.settings import JobSettings
from mocapd.worker.produce import produce

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "video" / "sports2d_demo.mp4"


def preview_frame(preview: Path, time_s: float) -> np.ndarray:
    """The RGB frame (H, W, 3) of ``preview`` shown at ``time_s`` (the last one at or before it)."""
    picked = None
    with av.open(str(preview)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time > time_s + 1e-6 and picked is not None:
                break
            picked = frame.to_ndarray(format="rgb24")
    if picked is None:
        raise RuntimeError(f"{preview} has no frames")
    return picked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time", type=float, default=2.5, help="preview time to show, seconds")
    parser.add_argument("--width", type=int, default=1240, help="width of the picture, pixels")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "preview.png")
    args = parser.parse_args()
    if not SOURCE.exists():
        print(f"test data not found: {SOURCE}", file=sys.stderr)
        return 2
    settings = JobSettings(("default", "unitree_g1"), 30, "full_body", 0.0, 100.0)
    with tempfile.TemporaryDirectory() as tmp:
        produce(SOURCE, settings, Path(tmp), lambda stage, fraction: None)
        rgb = preview_frame(Path(tmp) / "preview.mp4", args.time)  # (h, W, 3)
    h, w = rgb.shape[:2]
    if args.width < w:
        rgb = cv2.resize(rgb, (args.width, round(h * args.width / w)), interpolation=cv2.INTER_AREA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ok = cv2.imwrite(str(args.out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError(f"could not write {args.out}")
    print(f"{args.out}: {rgb.shape[1]}x{rgb.shape[0]}, {args.out.stat().st_size / 1000:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
