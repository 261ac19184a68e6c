"""Make bench/results/hands_preview.png: preview frames of a `handTracking` job, with close-ups of the hands.

The job is the pipeline's own path (`analyse_video` with ``hand_tracking``, then the preview exactly as
`mocapd.worker.produce` writes it: `preview_frames` and `encode_preview` with the hands' landmarks) on
``pose2sim_balancing/cam01.mp4`` (a man balancing on one leg, arms out, hands in view). The picture has
one column per picked preview frame (decoded from the written preview.mp4):

* top: the preview frame as users see it (source with the body and hand landmarks, the solved 3D motion
  with its finger bones);
* bottom: close-ups of each hand, left then right: the preview's source panel around the hand's
  landmarks (scaled up, nearest neighbour, so the drawn pixels are the preview's own), and the solved
  hand (bones from the wrist on, ``render_figure_panel`` with a 0.4 m view from 35 degrees above) at the same time.

Frames are picked where both hands are seen, spread over the clip. Also printed: how many frames saw
each hand, the range of each finger joint's angle (the fingers move) and the frames outside the joint
limits (must be 0).

Run (from the project root, needs ../shared/data; about 30 s on 2 cores):

    PYTHONPATH=src .venv/bin/python bench/hands_preview.py [--frames 3] [--out bench/results/hands_preview.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from mocapd.formats.preview import PIPELINE_PREVIEW_HEIGHT_PX, encode_preview, preview_frame_step
from mocapd.formats.render3d import OrthoCamera, render_figure_panel, sample_at_time
from mocapd.pipeline.fingers import FINGER_NAMES, finger_limits_rad
from mocapd.pipeline.run import analyse_video, preview_frames
from mocapd.pipeline.settings import JobSettings

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "pose2sim_balancing" / "cam01.mp4"
CLOSE_UP_PX = 240  # side of each close-up tile
_HAND_CAMERA = OrthoCamera(elevation_rad=np.radians(35.0), view_height_m=0.4)


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _source_close_up(frame: np.ndarray, hand_px: np.ndarray, source_w: int) -> np.ndarray:
    """The source panel around one hand's landmarks (21, 2), scaled up to a square tile."""
    lo, hi = np.nanmin(hand_px, axis=0), np.nanmax(hand_px, axis=0)
    centre = 0.5 * (lo + hi)
    half = max(20.0, 1.1 * float(np.max(hi - lo)))
    x0, y0 = int(max(0, centre[0] - half)), int(max(0, centre[1] - half))
    x1, y1 = int(min(source_w, centre[0] + half)), int(min(frame.shape[0], centre[1] + half))
    crop = frame[y0:y1, x0:x1]
    return cv2.resize(crop, (CLOSE_UP_PX, CLOSE_UP_PX), interpolation=cv2.INTER_NEAREST)


def _solved_close_up(positions_m: np.ndarray, fps: float, t_s: float, names: list[str], parents: list[int],
                     side: str) -> np.ndarray:
    """The solved hand (the hand joint, its fingers, the forearm for context) around the hand joint."""
    pose = sample_at_time(positions_m, fps, t_s)  # (J, 3)
    keep = {f"hand_{side}", f"lowerarm_{side}"} | {n for n in FINGER_NAMES if n.endswith(f"_{side}")}
    shown = np.where(np.array([n in keep for n in names])[:, None], pose, np.nan)
    small = [n in FINGER_NAMES for n in names]
    return render_figure_panel(shown, parents, names, size_px=(CLOSE_UP_PX, CLOSE_UP_PX),
                               centre_m=pose[names.index(f"hand_{side}")], camera=_HAND_CAMERA,
                               label=f"hand_{side}", small=small)


def _pad(img: np.ndarray, width: int) -> np.ndarray:
    return np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=255)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=3, help="preview frames to show")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hands_preview.png")
    args = parser.parse_args()
    if not SOURCE.exists():
        print(f"test data not found: {SOURCE}", file=sys.stderr)
        return 2
    settings = JobSettings(("default",), 30, "full_body", 0.0, 100.0, focal_length_px=1681.0, hand_tracking=True)
    with tempfile.TemporaryDirectory() as tmp:
        a = analyse_video(SOURCE, settings, lambda stage, fraction: None, work_dir=Path(tmp))
        shown = preview_frames(a, SOURCE, settings.trim_end_s, preview_frame_step(a.fps))
        try:
            preview = Path(tmp) / "preview.mp4"
            encode_preview(shown.frames, shown.landmarks_px, a.export, preview, fps=shown.fps,
                           max_height_px=PIPELINE_PREVIEW_HEIGHT_PX, hands_px=shown.hands_px)
        finally:
            shown.close()
        frames = _decode(preview)
    hands_px = shown.hands_px
    assert hands_px is not None and a.hands is not None
    both = np.flatnonzero(np.isfinite(hands_px).all(axis=(2, 3)).all(axis=1)[: len(frames)])
    if both.size == 0:
        print("no frame shows both hands", file=sys.stderr)
        return 1
    picked = both[np.linspace(0, both.size - 1, min(args.frames, both.size)).round().astype(int)]

    names = list(a.export.skeleton.names)
    parents = list(a.export.skeleton.parents)
    positions = a.export.world_positions_m()  # (F, J, 3)
    fingers = [names.index(n) for n in FINGER_NAMES]
    q = a.export.local_quat_wxyz[:, fingers]  # (F, 30, 4)
    angle_deg = 2.0 * np.degrees(np.arccos(np.clip(np.abs(q[..., 0]), 0.0, 1.0)))  # (F, 30)
    lo, hi = finger_limits_rad()
    source_w = round(frames[0].shape[0] * a.info.width_px / a.info.height_px) // 2 * 2
    columns = []
    for i in picked.tolist():
        frame = frames[i]
        t_s = i / shown.fps
        tiles = [_source_close_up(frame, hands_px[i, k], source_w) for k in (0, 1)]
        tiles += [_solved_close_up(positions, a.export.fps, t_s, names, parents, side) for side in ("l", "r")]
        grid = np.vstack([np.hstack(tiles[0::2]), np.hstack(tiles[1::2])])  # rows: left hand, right hand
        width = max(frame.shape[1], grid.shape[1])
        columns.append(np.vstack([_pad(frame, width), np.full((8, width, 3), 255, np.uint8), _pad(grid, width)]))
        cv2.putText(columns[-1], f"t = {t_s:.2f} s", (8, frame.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
    sep = np.full((columns[0].shape[0], 8, 3), 255, np.uint8)
    picture = np.hstack([c for col in columns for c in (col, sep)][:-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(json.dumps({
        "picture": str(args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out),
        "preview_frames": len(frames), "frames_shown": picked.tolist(), "hands": a.hands,
        "finger_angle_range_deg": round(float((angle_deg.max(axis=0) - angle_deg.min(axis=0)).max()), 1),
        "finger_angle_max_deg": round(float(angle_deg.max()), 1),
        "limits_deg": [round(float(np.degrees(lo.min())), 1), round(float(np.degrees(hi.max())), 1)],
    }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
