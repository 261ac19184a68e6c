"""The avatar flow on PostgreSQL with S3 storage (moto's server): a presigned PUT straight to the
bucket, complete-upload preparing from the bucket, a job taking its copy, delete removing the objects."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.api.backends import api_on
from tests.integration.test_s3_storage import REGION, make_bucket, moto_server, set_aws_env
from tests.support.rigs import rig_bytes

pytestmark = pytest.mark.postgres


def test_avatar_flow_on_postgresql_and_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    data = rig_bytes("godette.vrm")
    with moto_server() as endpoint:
        set_aws_env(monkeypatch)
        bucket = make_bucket(endpoint)
        s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=REGION)

        def keys() -> list[str]:
            return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]

        with api_on("postgresql", tmp_path / "data", storage_url=f"s3://{bucket}/pre", s3_endpoint_url=endpoint,
                    s3_region=REGION) as api:
            r = api.client.post("/api/v1/avatars", json={"name": "G", "sourceFilename": "g.vrm", "sourceBytes": len(data)},
                                headers=api.headers())
            assert r.status_code == 201, r.text
            av = r.json()["data"]
            assert av["uploadUrl"].startswith(endpoint)
            assert httpx.put(av["uploadUrl"], content=data, timeout=30).status_code == 200
            r = api.client.post(f"/api/v1/avatars/{av['avatarId']}/complete-upload", headers=api.headers())
            assert r.status_code == 200, r.text
            ready = r.json()["data"]
            assert ready["status"] == "ready" and ready["format"] == "vrm" and ready["mapping"]["head"] == "head_Armature"
            assert f"pre/avatars/{av['avatarId']}/rig.npz" in keys()
            job = api.create(targetIds=["default", f"avatar:{av['avatarId']}"])
            assert {k for k in keys() if "/inputs/" in k} == {
                f"pre/jobs/{job['jobId']}/inputs/avatar_{av['avatarId']}.npz",
                f"pre/jobs/{job['jobId']}/inputs/avatar_{av['avatarId']}.json",
            }
            assert api.client.delete(f"/api/v1/avatars/{av['avatarId']}", headers=api.headers()).status_code == 204
            assert not [k for k in keys() if k.startswith(f"pre/avatars/{av['avatarId']}/")]
            assert len([k for k in keys() if "/inputs/" in k]) == 2  # the job keeps its copy
