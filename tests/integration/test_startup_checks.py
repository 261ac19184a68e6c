"""A scale-out set up wrongly is told so at once, in one line, by the command the operator ran: a missing
role or database (`mocapd db upgrade`), a missing bucket or missing credentials (`mocapd api` and
`mocapd worker` refuse to start), no shared MOCAPD_SECRET; and `/readyz` says in words what broke later.

The commands run as operators run them (`python -m mocapd ...` in a fresh process) against the real
PostgreSQL server and moto's S3 server."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from mocapd.api.app import create_app
from mocapd.config import Settings
from tests.conftest import PROJECT_ROOT
from tests.integration.test_s3_storage import AWS_ENV, make_bucket, moto_server, set_aws_env
from tests.support.postgres import PG_ADMIN_URL, fresh_postgres, postgres_available

pytestmark = pytest.mark.timeout(120)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCAPD_", "AWS_"))}
    env.update({"PYTHONPATH": str(PROJECT_ROOT / "src"), "MOCAPD_DATA_DIR": str(tmp_path / "data"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    env.update(extra)
    return env


def _mocapd(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    """Run a command that must refuse: its exit status and its standard error's lines."""
    out = subprocess.run([sys.executable, "-m", "mocapd", *args], env=env, capture_output=True, text=True, timeout=90)
    return out.returncode, out.stderr.strip().splitlines()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with fresh_postgres("mocapd_startup") as url:
        yield url


# ---------------------------------------------------------------------------------------------- database


def test_db_upgrade_names_the_missing_role_and_database(tmp_path: Path) -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    role = f"nobody_{secrets.token_hex(4)}"
    rc, err = _mocapd(_env(tmp_path, MOCAPD_DATABASE_URL=f"postgresql+psycopg://{role}@127.0.0.1:5432/postgres"),
                      "db", "upgrade")
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: the database role '{role}' does not exist on 127.0.0.1:5432: create it")
    assert f'CREATE ROLE "{role}" LOGIN' in err[0]

    name = f"nothing_{secrets.token_hex(4)}"
    rc, err = _mocapd(_env(tmp_path, MOCAPD_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"),
                      "db", "upgrade")
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: the database '{name}' does not exist on 127.0.0.1:5432: create it")
    assert f'CREATE DATABASE "{name}" OWNER "postgres"' in err[0]


def test_a_role_that_may_not_create_tables_is_told_to_own_the_database(tmp_path: Path) -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    role, name = f"app_{secrets.token_hex(4)}", f"appdb_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        c.execute(text(f'CREATE DATABASE "{name}"'))  # owned by postgres: the new role may not create tables
    try:
        env = _env(tmp_path, MOCAPD_DATABASE_URL=f"postgresql+psycopg://{role}@127.0.0.1:5432/{name}")
        rc, err = _mocapd(env, "db", "upgrade")
        assert rc == 2 and len(err) == 1, err
        assert err[0] == (f"error: the role '{role}' may not create tables in database '{name}' on 127.0.0.1:5432: "
                          f'make it the database\'s owner (as a superuser: ALTER DATABASE "{name}" OWNER TO "{role}";)')
        with admin.connect() as c:
            c.execute(text(f'ALTER DATABASE "{name}" OWNER TO "{role}"'))  # doing what it says is enough
        ok = subprocess.run([sys.executable, "-m", "mocapd", "db", "upgrade"], env=env, capture_output=True, text=True,
                            timeout=90)
        assert ok.returncode == 0 and "up to date" in ok.stdout, ok.stderr
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_nothing_listening_is_one_line_too(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = _mocapd(_env(tmp_path, MOCAPD_DATABASE_URL=f"postgresql+psycopg://mocapd@127.0.0.1:{port}/mocapd"),
                      "accounts", "create", "acme")
    assert rc == 2 and err == [f"error: nothing answers on 127.0.0.1:{port}: is PostgreSQL running there and "
                               "listening on TCP (listen_addresses)?"]


# ---------------------------------------------------------------------------------------------- storage


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["api", "--port", "1"], ["worker"]])
def test_api_and_worker_refuse_a_missing_bucket(tmp_path: Path, endpoint: str, pg: str, command: list[str]) -> None:
    env = _env(tmp_path, MOCAPD_DATABASE_URL=pg, MOCAPD_STORAGE_URL="s3://no-such-bucket/mocapd",
               MOCAPD_S3_ENDPOINT_URL=endpoint, MOCAPD_SECRET="s", **AWS_ENV)
    rc, err = _mocapd(env, *command)
    assert rc == 2 and err == [
        f"error: storage: the bucket 'no-such-bucket' does not exist at {endpoint}: create it (for example "
        f"`aws s3 mb s3://no-such-bucket --endpoint-url {endpoint}`) or fix the bucket in MOCAPD_STORAGE_URL"]


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["api", "--port", "1"], ["worker"]])
def test_api_and_worker_refuse_to_start_without_credentials(tmp_path: Path, endpoint: str, pg: str,
                                                             command: list[str]) -> None:
    bucket = make_bucket_with_test_credentials(endpoint)
    env = _env(tmp_path, MOCAPD_DATABASE_URL=pg, MOCAPD_STORAGE_URL=f"s3://{bucket}/mocapd",
               MOCAPD_S3_ENDPOINT_URL=endpoint, MOCAPD_SECRET="s")  # no AWS_ACCESS_KEY_ID, no profile
    rc, err = _mocapd(env, *command)
    assert rc == 2 and err == ["error: storage: no S3 credentials were found: set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run on a machine with an instance role)"]


def make_bucket_with_test_credentials(endpoint: str) -> str:
    with pytest.MonkeyPatch.context() as mp:
        set_aws_env(mp)
        return make_bucket(endpoint)


@pytest.mark.parametrize("configured", ["postgres", "s3"])
def test_outside_the_embedded_default_the_api_needs_a_shared_secret(tmp_path: Path, endpoint: str,
                                                                    configured: str) -> None:
    if configured == "postgres":
        if not postgres_available():
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
        extra = {"MOCAPD_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"}
    else:
        extra = {"MOCAPD_STORAGE_URL": f"s3://{make_bucket_with_test_credentials(endpoint)}/m",
                 "MOCAPD_S3_ENDPOINT_URL": endpoint, **AWS_ENV}
    for command in (["api", "--port", "1"], ["serve", "--port", "1", "--workers", "0"]):
        rc, err = _mocapd(_env(tmp_path, **extra), *command)
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith("error: MOCAPD_SECRET is not set: with PostgreSQL or S3 configured, every API "
                                 "replica must sign links with the same secret")


def test_a_password_never_shows_in_a_message() -> None:
    from mocapd.db.diagnose import safe_url

    assert safe_url("postgresql+psycopg://app:s3cret@db:5433/m") == "postgresql+psycopg://app:***@db:5433/m"


def test_the_embedded_default_needs_no_secret() -> None:
    assert Settings(data_dir=Path("/tmp/x")).embedded
    assert not Settings(data_dir=Path("/tmp/x"), storage_url="s3://b/p").embedded
    assert not Settings(data_dir=Path("/tmp/x"), database_url="postgresql+psycopg://u@h/d").embedded


# ---------------------------------------------------------------------------------------------- /readyz


@pytest.mark.postgres
def test_readyz_says_in_words_what_broke(tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    set_aws_env(monkeypatch)
    bucket = make_bucket(endpoint)
    with fresh_postgres("mocapd_readyz") as db_url:
        name = db_url.rsplit("/", 1)[1]
        settings = Settings(data_dir=tmp_path, database_url=db_url, storage_url=f"s3://{bucket}/m",
                            s3_endpoint_url=endpoint, s3_region="us-east-1", secret="s")
        with TestClient(create_app(settings)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "storage": "ok"}
            boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1").delete_bucket(
                Bucket=bucket)
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
            ready = client.get("/readyz")
            assert ready.status_code == 503
            checks = ready.json()["checks"]
            assert checks["storage"].startswith(f"error: the bucket '{bucket}' does not exist at {endpoint}")
            assert checks["database"].startswith(f"error: the database '{name}' does not exist on 127.0.0.1:5432")


# ---------------------------------------------------------------------------------------------- at run time


def _key(db_url: str) -> str:
    from mocapd.db.accounts import create_account, create_key
    from mocapd.db.engine import Database
    from mocapd.db.ledger import grant

    db = Database(db_url)
    try:
        with db.write() as s:
            acct = create_account(s, f"rt-{secrets.token_hex(3)}", "starter")
            grant(s, acct.id, 100, "api", reason="test")
            return create_key(s, acct)
    finally:
        db.dispose()


def test_a_bucket_gone_after_start_is_not_taken_for_a_missing_upload(tmp_path: Path, endpoint: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    set_aws_env(monkeypatch)
    bucket = make_bucket(endpoint)
    settings = Settings(data_dir=tmp_path, storage_url=f"s3://{bucket}/m", s3_endpoint_url=endpoint,
                        s3_region="us-east-1", secret="s")
    with TestClient(create_app(settings)) as client:
        h = {"Authorization": f"Bearer {_key(settings.resolved_database_url)}"}
        body = {"sourceFilename": "a.mp4", "targetIds": ["default"]}
        job = client.post("/api/v1/mocap/jobs", json=body, headers=h).json()["data"]["jobId"]
        boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1").delete_bucket(Bucket=bucket)
        r = client.post(f"/api/v1/mocap/jobs/{job}/complete-upload", headers=h)
        assert r.status_code == 500 and r.json()["code"] == "internal_error", r.text
        assert f"the bucket '{bucket}' does not exist at {endpoint}" in r.json()["detail"]
        assert r.json()["retryable"] is True

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    with TestClient(create_app(settings)) as client:  # credentials gone: the create says so
        h = {"Authorization": f"Bearer {_key(settings.resolved_database_url)}"}
        r = client.post("/api/v1/mocap/jobs", json=body, headers=h)
        assert r.status_code == 500 and "no S3 credentials were found" in r.json()["detail"], r.text
