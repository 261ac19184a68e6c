"""The client's avatar and re-export commands against a real `mocapd serve` with a worker, as a user runs
them: `mocapd avatars upload` prepares a shared rig to ``ready`` with its mapping, `list`/`show` see it,
`map` with a bone mapped twice is refused with exit 3 and changes nothing, a corrected bone is kept;
`mocapd submit --target avatar:...` animates it; `mocapd export` re-exports the job at 60 fps to the
default target as a new job (parent id, downloads verified), and `avatars delete` removes it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_file
from tests.support.procs import MOCAPD, dev_serve

pytestmark = pytest.mark.slow


def _run(args: list[str], base: str, key: str, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCAPD_")}
    env["MOCAPD_STATE_DIR"] = str(cwd / "state")
    return subprocess.run([*MOCAPD, *args, "--url", base, "--api-key", key], capture_output=True, text=True,
                          env=env, timeout=timeout_s, cwd=cwd, check=False)


def _cli(args: list[str], base: str, key: str, cwd: Path, timeout_s: float = 300) -> tuple[int, dict[str, Any]]:
    done = _run([*args, "--json"], base, key, cwd, timeout_s)
    try:
        out = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {done.returncode}): {done.stdout!r} {done.stderr[-2000:]!r}") from None
    return done.returncode, out


def test_avatar_commands_and_a_reexport_from_the_cli(tmp_path: Path) -> None:
    rig = shared_file("avatars/rigged_figure.glb")
    video = shared_file("pose2sim_balancing/cam01.mp4")
    with dev_serve(tmp_path / "data", workers=1) as (base, key):
        code, up = _cli(["avatars", "upload", str(rig), "--name", "figure"], base, key, tmp_path)
        assert code == 0, up
        av = up["avatar"]
        assert av["status"] == "ready" and av["name"] == "figure" and av["format"] == "gltf"
        mapping: dict[str, str] = av["mapping"]
        assert {"pelvis", "head", "hand_l", "hand_r", "foot_l", "foot_r"} <= set(mapping)
        avatar_id = av["avatarId"]

        code, listed = _cli(["avatars", "list"], base, key, tmp_path)
        assert code == 0 and [a["avatarId"] for a in listed["items"]] == [avatar_id]

        # A bone mapped twice: refused (exit 3, the server's code), the stored mapping unchanged.
        code, bad = _cli(["avatars", "map", avatar_id, f"thigh_l={mapping['thigh_r']}"], base, key, tmp_path)
        assert code == 3 and not bad["ok"] and bad["status"] == 422, bad
        code, shown = _cli(["avatars", "show", avatar_id], base, key, tmp_path)
        assert code == 0 and shown["avatar"]["mapping"] == mapping
        human = _run(["avatars", "show", avatar_id], base, key, tmp_path)  # what a person reads
        assert human.returncode == 0 and f"--target avatar:{avatar_id}" in human.stdout
        assert f"pelvis         -> {mapping['pelvis']}" in human.stdout
        # The same bone again (a correction that changes nothing is accepted) keeps the whole mapping.
        code, same = _cli(["avatars", "map", avatar_id, f"thigh_l={mapping['thigh_l']}"], base, key, tmp_path)
        assert code == 0 and same["avatar"]["mapping"] == mapping

        code, job = _cli(["submit", str(video), "--target", "default", "--target", f"avatar:{avatar_id}",
                          "--fps", "30", "--out", str(tmp_path / "job")], base, key, tmp_path, timeout_s=600)
        assert code == 0, job
        parent_id = job["record"]["jobId"]
        names = {a["name"] for a in job["record"]["artifacts"] if a["verified"]}
        assert {"motion.fbx", f"avatar_{avatar_id}.fbx", f"avatar_{avatar_id}.glb"} <= names

        code, exp = _cli(["export", parent_id, "--fps", "60", "--target", "default", "--out", str(tmp_path / "exp")],
                         base, key, tmp_path, timeout_s=600)
        assert code == 0, exp
        assert exp["parentJobId"] == parent_id and exp["record"]["jobId"] != parent_id
        assert exp["record"]["terminalStatus"] == "completed"
        files = {a["name"]: a for a in exp["record"]["artifacts"]}
        assert files["motion.fbx"]["verified"] and (tmp_path / "exp" / "motion.fbx").is_file()
        assert not any(n.startswith("avatar_") for n in files)  # only the target asked for
        manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
        assert json.dumps(manifest).count(parent_id) >= 1  # the re-export names its parent

        # An unknown job: refused, not retried for minutes.
        code, missing = _cli(["export", "job_doesnotexist", "--fps", "60"], base, key, tmp_path, timeout_s=60)
        assert code == 3 and missing["status"] == 404

        code, gone = _cli(["avatars", "delete", avatar_id], base, key, tmp_path)
        assert code == 0 and gone["avatarId"] == avatar_id
        code, listed = _cli(["avatars", "list"], base, key, tmp_path)
        assert code == 0 and listed["items"] == []
