"""The avatar API (SPEC 12) on a real SQLite file and local folder: create (idempotent), signed PUT,
complete-upload preparing the model, list/get, PATCH with validation, DELETE; tenant isolation; bad
files and sizes get their codes and leave nothing half-made; jobs naming ``avatar:av_...``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api.conftest import Api
from tests.support.rigs import rig_bytes


def _create(api: Api, filename: str, size: int | None = None, key: str | None = None, **extra: object) -> dict:  # type: ignore[type-arg]
    body = {"name": "Hero", "sourceFilename": filename, **({"sourceBytes": size} if size is not None else {}), **extra}
    r = api.client.post("/api/v1/avatars", json=body, headers=api.headers(key))
    assert r.status_code == 201, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _ready(api: Api, name: str = "godette.vrm") -> dict:  # type: ignore[type-arg]
    data = rig_bytes(name)
    av = _create(api, name, len(data))
    assert api.client.put(av["uploadUrl"], content=data).status_code == 200
    r = api.client.post(f"/api/v1/avatars/{av['avatarId']}/complete-upload", headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _objects(api: Api, prefix: str) -> list[Path]:
    root = api.settings.data_dir
    return [p for p in root.rglob("*") if p.is_file() and prefix in str(p.relative_to(root))]


def test_create_upload_prepare_read_patch_delete(api: Api) -> None:
    data = rig_bytes("rigged_figure.glb")
    headers = {**api.headers(), "Idempotency-Key": "avatar-1"}
    body = {"name": "Figure", "sourceFilename": "rigged_figure.glb", "sourceBytes": len(data)}
    first = api.client.post("/api/v1/avatars", json=body, headers=headers)
    again = api.client.post("/api/v1/avatars", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    av = first.json()["data"]
    assert again.json()["data"]["avatarId"] == av["avatarId"] and av["status"] == "draft"
    assert av["maxUploadBytes"] == 100_000_000
    assert api.client.put(av["uploadUrl"], content=data).status_code == 200
    done = api.client.post(f"/api/v1/avatars/{av['avatarId']}/complete-upload", headers=api.headers())
    assert done.status_code == 200, done.text
    ready = done.json()["data"]
    assert ready["status"] == "ready" and ready["format"] == "gltf" and ready["bones"] == 19
    assert ready["restPose"] == "a_pose" and 1.4 < ready["heightM"] < 1.5 and ready["error"] is None
    assert ready["mapping"]["upperarm_l"] == "arm_joint_L_1" and "clavicle_l" in ready["unmapped"]
    # idempotent
    assert api.client.post(f"/api/v1/avatars/{av['avatarId']}/complete-upload", headers=api.headers()).json()["data"] == ready
    assert api.client.put(av["uploadUrl"], content=data).json()["code"] == "avatar_not_awaiting_upload"
    listed = api.client.get("/api/v1/avatars", headers=api.headers()).json()["data"]
    assert [a["avatarId"] for a in listed["items"]] == [av["avatarId"]]
    # PATCH: a name; bad mappings name the bone; a good one is stored
    r = api.client.patch(f"/api/v1/avatars/{av['avatarId']}", json={"name": "Renamed"}, headers=api.headers())
    assert r.status_code == 200 and r.json()["data"]["name"] == "Renamed"
    mapping = dict(ready["mapping"])
    for bad, named in (
        ({**mapping, "hand_r": mapping["hand_l"]}, mapping["hand_l"]),
        ({**mapping, "calf_l": mapping["pelvis"]}, mapping["pelvis"]),
        ({k: v for k, v in mapping.items() if k != "foot_r"}, "foot_r"),
    ):
        r = api.client.patch(f"/api/v1/avatars/{av['avatarId']}", json={"mapping": bad}, headers=api.headers())
        assert r.status_code == 422 and r.json()["code"] == "avatar_mapping_invalid" and named in r.json()["detail"]
    fixed = {k: v for k, v in mapping.items() if k != "ball_l"}
    r = api.client.patch(f"/api/v1/avatars/{av['avatarId']}", json={"mapping": fixed}, headers=api.headers())
    assert r.status_code == 200 and r.json()["data"]["mapping"] == fixed and "ball_l" in r.json()["data"]["unmapped"]
    # DELETE: gone, files too
    assert _objects(api, f"avatars/{av['avatarId']}")
    assert api.client.delete(f"/api/v1/avatars/{av['avatarId']}", headers=api.headers()).status_code == 204
    assert api.client.get(f"/api/v1/avatars/{av['avatarId']}", headers=api.headers()).json()["code"] == "avatar_not_found"
    assert not _objects(api, f"avatars/{av['avatarId']}")
    assert api.client.get("/api/v1/avatars", headers=api.headers()).json()["data"]["items"] == []


def test_another_accounts_avatar_is_404(api: Api) -> None:
    av = _ready(api)
    _, other = api.new_account("other", plan="starter")
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/complete-upload")):
        r = api.client.request(method, f"/api/v1/avatars/{av['avatarId']}{path}", headers=api.headers(other),
                               json={"name": "x"} if method == "PATCH" else None)
        assert r.status_code == 404 and r.json()["code"] == "avatar_not_found", (method, path)
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "c.mp4", "targetIds": [f"avatar:{av['avatarId']}"]},
                        headers=api.headers(other))
    assert r.status_code == 404 and r.json()["code"] == "avatar_not_found"


def test_jobs_take_a_copy_of_a_ready_avatar(api: Api) -> None:
    av = _ready(api)
    target = f"avatar:{av['avatarId']}"
    job = api.create(targetIds=["default", target])
    assert job["targetIds"] == ["default", target]
    copies = _objects(api, f"jobs/{job['jobId']}/inputs")
    assert sorted(p.name for p in copies) == [f"avatar_{av['avatarId']}.json", f"avatar_{av['avatarId']}.npz"]
    # the free plan has no avatar targets
    _, free = api.new_account("free-one", plan="free")
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "c.mp4", "targetIds": [target]}, headers=api.headers(free))
    assert r.status_code == 422 and r.json()["code"] == "api_target_unsupported"
    # a deleted avatar fails new jobs; the job made before keeps its copy
    assert api.client.delete(f"/api/v1/avatars/{av['avatarId']}", headers=api.headers()).status_code == 204
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "c.mp4", "targetIds": [target]}, headers=api.headers())
    assert r.status_code == 422 and r.json()["code"] == "api_target_unsupported"
    assert len(_objects(api, f"jobs/{job['jobId']}/inputs")) == 2
    # a draft avatar is not a target either
    draft = _create(api, "later.glb")
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "c.mp4", "targetIds": [f"avatar:{draft['avatarId']}"]},
                        headers=api.headers())
    assert r.status_code == 422 and r.json()["code"] == "api_target_unsupported"


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    block = b"\0" * size
    while total > 0:
        yield block[: min(size, total)]
        total -= size


@pytest.mark.parametrize(
    ("filename", "data", "code"),
    [
        ("notes.fbx", b"this is not a model at all" * 100, "avatar_unreadable"),
        ("cut.fbx", None, "avatar_unreadable"),
        ("dog.glb", "quadruped", "avatar_not_humanoid"),
    ],
)
def test_bad_models_fail_with_their_code_and_keep_nothing(api: Api, filename: str, data: object, code: str) -> None:
    from tests.support.rigs import quadruped, skinned_glb

    if data is None:
        payload = rig_bytes("quaternius_human.fbx")[:700_000]
    elif data == "quadruped":
        payload = skinned_glb(quadruped())
    else:
        payload = data  # type: ignore[assignment]
    av = _create(api, filename, len(payload))  # type: ignore[arg-type]
    assert api.client.put(av["uploadUrl"], content=payload).status_code == 200
    r = api.client.post(f"/api/v1/avatars/{av['avatarId']}/complete-upload", headers=api.headers())
    assert r.status_code == 422 and r.json()["code"] == code, r.text
    got = api.client.get(f"/api/v1/avatars/{av['avatarId']}", headers=api.headers()).json()["data"]
    assert got["status"] == "failed" and got["error"]["code"] == code and got["mapping"] == {}
    assert not _objects(api, f"avatars/{av['avatarId']}")  # neither the upload nor a half-made rig


def test_sizes_and_formats_are_refused_up_front(api: Api) -> None:
    r = api.client.post("/api/v1/avatars", json={"name": "x", "sourceFilename": "a.obj"}, headers=api.headers())
    assert r.status_code == 422 and r.json()["code"] == "avatar_format_unsupported"
    r = api.client.post("/api/v1/avatars", json={"name": "x", "sourceFilename": "big.fbx", "sourceBytes": 2 * 10**9},
                        headers=api.headers())
    assert r.status_code == 413 and r.json()["code"] == "avatar_file_size_limit_exceeded"
    av = _create(api, "big.glb")
    r = api.client.put(av["uploadUrl"], content=_chunks(100_000_000 + 1))  # streamed, no length given
    assert r.status_code == 413 and r.json()["code"] == "avatar_file_size_limit_exceeded"
    assert not _objects(api, f"avatars/{av['avatarId']}")  # the partial body was never kept
    r = api.client.post(f"/api/v1/avatars/{av['avatarId']}/complete-upload", headers=api.headers())
    assert r.status_code == 409 and r.json()["code"] == "upload_missing"
    assert api.client.get(f"/api/v1/avatars/{av['avatarId']}", headers=api.headers()).json()["data"]["status"] == "draft"
