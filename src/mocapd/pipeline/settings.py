"""What a job asks the pipeline for. Light on purpose: the worker builds it without importing the
pipeline's heavy modules (MediaPipe, MuJoCo, PyAV)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JobSettings"]


@dataclass(frozen=True)
class JobSettings:
    target_ids: tuple[str, ...]
    export_fps: int
    mocap_type: str  # "full_body" | "upper_body"
    trim_start_s: float
    trim_end_s: float
    focal_length_px: float | None = None
    camera_fov_deg: float | None = None
    subject_height_m: float | None = None
    hand_tracking: bool = False  # finger bones from the hands (MediaPipe Holistic)
    model_quality: str = "standard"  # "standard" (BlazePose Full, in the wheel) | "high" (Heavy, installed)
    models_dir: str | None = None  # where installed model files live (the machine's, not the job's)

    def as_manifest(self) -> dict[str, Any]:
        """The ``settings`` block of ``manifest.json``."""
        return {
            "targetIds": list(self.target_ids),
            "exportFps": self.export_fps,
            "mocapType": self.mocap_type,
            "trimStartSec": self.trim_start_s,
            "trimEndSec": self.trim_end_s,
            "focalLengthPx": self.focal_length_px,
            "cameraFovDeg": self.camera_fov_deg,
            "subjectHeightM": self.subject_height_m,
            "modelQuality": self.model_quality,
            "handTracking": self.hand_tracking,
        }
