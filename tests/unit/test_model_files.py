"""Model files: fetched only by an explicit command, over HTTPS, installed only when both pins match,
never half-written; and the resource root that lets MediaPipe's graph find an installed model."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import BinaryIO

import pytest

import mocapd.model_files as mf
from mocapd.model_files import (
    ModelFetchError,
    fetch_model,
    installed_path,
    is_installed,
    mediapipe_resource_root,
)

MODEL_BYTES = b"not really a tflite model, but pinned like one" * 100


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _model(tarball: bytes, model_bytes: bytes = MODEL_BYTES) -> mf.ModelFile:
    return dataclasses.replace(
        mf.MODELS["blazepose_heavy"], tarball_sha256=hashlib.sha256(tarball).hexdigest(), tarball_bytes=len(tarball),
        sha256=hashlib.sha256(model_bytes).hexdigest(), bytes=len(model_bytes))


def _serving(data: bytes, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    def opener(url: str, timeout: float) -> BinaryIO:
        if calls is not None:
            calls.append(url)
        return io.BytesIO(data)
    return opener


def test_fetch_installs_a_model_whose_pins_match(tmp_path: Path) -> None:
    tgz = _tarball({"package/pose_landmark_heavy.tflite": MODEL_BYTES, "package/README.md": b"hi"})
    model = _model(tgz)
    calls: list[str] = []
    path = fetch_model(tmp_path, model, opener=_serving(tgz, calls))
    assert path == installed_path(tmp_path, model) and path.read_bytes() == MODEL_BYTES
    assert is_installed(tmp_path, model)
    marker = json.loads((tmp_path / model.name / "installed.json").read_text())
    assert marker["sha256"] == model.sha256 and marker["licence"] == "Apache-2.0"
    # installed and verified: a second fetch downloads nothing
    fetch_model(tmp_path, model, opener=_serving(b"", calls))
    assert calls == [model.tarball_url]


@pytest.mark.parametrize("case", ["tarball digest", "model digest", "missing member", "truncated", "not gzip"])
def test_a_mismatch_installs_nothing(tmp_path: Path, case: str) -> None:
    good = _tarball({"package/pose_landmark_heavy.tflite": MODEL_BYTES})
    model = _model(good)
    served = good
    if case == "tarball digest":
        served = _tarball({"package/pose_landmark_heavy.tflite": MODEL_BYTES + b"x"})
    elif case == "model digest":
        served = _tarball({"package/pose_landmark_heavy.tflite": MODEL_BYTES[:-1] + b"?"})
        model = dataclasses.replace(model, tarball_sha256=hashlib.sha256(served).hexdigest())
    elif case == "missing member":
        served = _tarball({"package/other.tflite": MODEL_BYTES})
        model = dataclasses.replace(model, tarball_sha256=hashlib.sha256(served).hexdigest())
    elif case == "truncated":
        served = good[: len(good) // 2]
        model = dataclasses.replace(model, tarball_sha256=hashlib.sha256(served).hexdigest())
    elif case == "not gzip":
        served = b"<html>an error page</html>"
        model = dataclasses.replace(model, tarball_sha256=hashlib.sha256(served).hexdigest())
    with pytest.raises(ModelFetchError):
        fetch_model(tmp_path, model, opener=_serving(served))
    assert not is_installed(tmp_path, model)
    assert not installed_path(tmp_path, model).exists()
    assert [p.name for p in (tmp_path / model.name).iterdir()] == []  # no temporary file left behind


def test_only_https_and_bounded_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = mf.MODELS["blazepose_heavy"]
    with pytest.raises(ModelFetchError, match="HTTPS"):
        fetch_model(tmp_path, model, url="http://registry.npmjs.org/x.tgz")
    monkeypatch.setattr(mf, "_MAX_DOWNLOAD", 1000)
    with pytest.raises(ModelFetchError, match="larger"):
        fetch_model(tmp_path, model, opener=_serving(b"\0" * 5000))
    assert not installed_path(tmp_path, model).exists()


def test_a_changed_file_is_not_installed(tmp_path: Path) -> None:
    tgz = _tarball({"package/pose_landmark_heavy.tflite": MODEL_BYTES})
    model = _model(tgz)
    path = fetch_model(tmp_path, model, opener=_serving(tgz))
    path.write_bytes(MODEL_BYTES[:-5])
    assert not is_installed(tmp_path, model)


def test_the_resource_root_links_the_wheel_and_adds_installed_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "site"
    (wheel / "mediapipe" / "modules" / "pose_landmark").mkdir(parents=True)
    (wheel / "mediapipe" / "modules" / "pose_detection").mkdir(parents=True)
    (wheel / "mediapipe" / "modules" / "pose_landmark" / "pose_landmark_full.tflite").write_bytes(b"full")
    (wheel / "mediapipe" / "modules" / "pose_detection" / "pose_detection.tflite").write_bytes(b"det")
    (wheel / "mediapipe" / "modules" / "pose_landmark" / "__init__.py").write_text("")
    models = tmp_path / "models"
    tgz = _tarball({"package/pose_landmark_heavy.tflite": MODEL_BYTES})
    model = _model(tgz)
    monkeypatch.setitem(mf.MODELS, "blazepose_heavy", model)
    fetch_model(models, model, opener=_serving(tgz))
    root = mediapipe_resource_root(models, wheel)
    assert (root / "mediapipe/modules/pose_landmark/pose_landmark_full.tflite").read_bytes() == b"full"
    assert (root / "mediapipe/modules/pose_detection/pose_detection.tflite").read_bytes() == b"det"
    assert (root / model.resource_path).read_bytes() == MODEL_BYTES
    assert not (root / "mediapipe/modules/pose_landmark/__init__.py").exists()
    assert mediapipe_resource_root(models, wheel) == root  # idempotent
