"""`S3Store` against a real S3-compatible HTTP server (moto's ThreadedMotoServer on a free localhost port).

Every operation of the object-store interface runs over HTTP through boto3, as in production; the
presigned URLs are checked two ways: used for real against the server, and verified by an independent
AWS Signature V4 implementation (`verify_presigned`, written from the AWS documentation), because the
test server does not check query-string signatures itself while AWS, MinIO and R2 do.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest

from mocapd.config import Settings
from mocapd.errors import SystemFault
from mocapd.storage import S3Store, TooLarge, open_store

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on a free 127.0.0.1 port; yields its endpoint URL."""
    pytest.importorskip("moto.server", reason="the S3 tests need the dev extra (moto[server])")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def set_aws_env(mp: pytest.MonkeyPatch) -> None:
    """Test credentials only; no profile, config file or instance metadata is consulted."""
    for name, value in AWS_ENV.items():
        mp.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(name, raising=False)


def make_bucket(endpoint: str) -> str:
    """A fresh bucket (its own name per test, so tests share no state)."""
    import boto3

    name = f"mocapd-{secrets.token_hex(6)}"
    boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=name)
    return name


def verify_presigned(method: str, url: str, headers: dict[str, str], *, secret_key: str,
                     now: datetime | None = None) -> bool:
    """Would an S3 server accept ``method url`` with ``headers`` at ``now``? (AWS SigV4, query form)

    canonical = METHOD \\n path \\n sorted-encoded-query (minus X-Amz-Signature) \\n
                lower(name):trim(value)\\n for each signed header \\n signed-header-list \\n UNSIGNED-PAYLOAD
    to_sign   = AWS4-HMAC-SHA256 \\n X-Amz-Date \\n scope \\n hex(sha256(canonical))
    key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
    The signature is hex(HMAC(key, to_sign)); the URL is valid until X-Amz-Date + X-Amz-Expires.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = query.pop("X-Amz-Signature", "")
    amz_date = query["X-Amz-Date"]
    signed = query["X-Amz-SignedHeaders"].split(";")
    scope = query["X-Amz-Credential"].split("/", 1)[1]
    date, region, service, _ = scope.split("/")
    start = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) > start + timedelta(seconds=int(query["X-Amz-Expires"])):
        return False
    enc = {k: quote(v, safe="-_.~") for k, v in query.items()}
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={enc[k]}" for k in sorted(enc))
    lowered = {k.lower(): " ".join(v.strip().split()) for k, v in {**headers, "host": parts.netloc}.items()}
    if any(name not in lowered for name in signed):
        return False
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed)
    canonical = "\n".join([method, parts.path or "/", canonical_query, canonical_headers, ";".join(signed),
                           "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def store(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    set_aws_env(monkeypatch)
    return S3Store(make_bucket(endpoint), "/pre/fix/", endpoint_url=endpoint, region=REGION)


def _raw(store: S3Store, key: str) -> bytes:
    """The object's bytes read with a separate plain client, under the store's prefix."""
    body: bytes = store.client.get_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}")["Body"].read()
    return body


def _file(tmp_path: Path, name: str, n: int, seed: int = 0) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(n)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


# ---------------------------------------------------------------------------------------------- tests


def test_put_file_then_every_read_sees_the_same_bytes(store: S3Store, tmp_path: Path) -> None:
    small, small_bytes = _file(tmp_path, "small.json", 5_000)
    big, big_bytes = _file(tmp_path, "big.mp4", 9 * (1 << 20) + 123, seed=1)  # past 8 MiB: a multipart upload
    for key, path, data, ctype in (("jobs/j1/artifacts/manifest.json", small, small_bytes, "application/json"),
                                   ("jobs/j1/artifacts/preview.mp4", big, big_bytes, "video/mp4")):
        stored = store.put_file(key, path, ctype)
        assert (stored.key, stored.bytes, stored.sha256) == (key, len(data), hashlib.sha256(data).hexdigest())
        assert store.exists(key) and store.size(key) == len(data)
        assert store.hash_object(key) == stored
        assert _raw(store, key) == data  # stored under the prefix, byte for byte
        head = store.client.head_object(Bucket=store.bucket, Key=f"pre/fix/{key}")
        assert head["ContentType"] == ctype and head["Metadata"]["sha256"] == stored.sha256
        out = tmp_path / f"down-{path.name}"
        store.download_to(key, out)
        assert out.read_bytes() == data
        fetched = store.fetch(key, tmp_path / f"fetch-{path.name}")
        assert fetched == stored and (tmp_path / f"fetch-{path.name}").read_bytes() == data
    replaced, replaced_bytes = _file(tmp_path, "small2.json", 77, seed=2)
    store.put_file("jobs/j1/artifacts/manifest.json", replaced)
    assert store.hash_object("jobs/j1/artifacts/manifest.json").sha256 == hashlib.sha256(replaced_bytes).hexdigest()


def test_fetch_stops_past_its_limit_and_leaves_no_partial_file(store: S3Store, tmp_path: Path) -> None:
    path, data = _file(tmp_path, "v.mp4", 3 * (1 << 20) + 5)
    store.put_file("k", path)
    out = tmp_path / "out"
    with pytest.raises(TooLarge) as info:
        store.fetch("k", out, max_bytes=len(data) - 1)
    assert info.value.limit == len(data) - 1 and not out.exists()
    assert store.fetch("k", out, max_bytes=len(data)).bytes == len(data)


def test_open_range_returns_exactly_the_inclusive_span(store: S3Store, tmp_path: Path) -> None:
    path, data = _file(tmp_path, "a.bin", 2_500_000)
    store.put_file("jobs/j/artifacts/a.bin", path)
    for start, end in ((0, 0), (0, 99), (1_000_000, 2_400_000), (len(data) - 10, len(data) - 1), (0, len(data) - 1)):
        assert b"".join(store.open_range("jobs/j/artifacts/a.bin", start, end)) == data[start:end + 1]
    with pytest.raises(ValueError):
        list(store.open_range("jobs/j/artifacts/a.bin", 10, 5))


def test_missing_objects_and_the_errors_they_raise(store: S3Store, tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    assert store.size("nope") is None and not store.exists("nope")
    for call in (lambda: store.hash_object("nope"), lambda: store.download_to("nope", tmp_path / "x"),
                 lambda: store.fetch("nope", tmp_path / "y"), lambda: list(store.open_range("nope", 0, 1))):
        with pytest.raises(SystemFault) as info:
            call()
        assert info.value.code == "internal_error" and info.value.retryable
        assert isinstance(info.value.__cause__, ClientError)  # converted at the border, cause kept
        assert info.value.details["s3Code"] in {"404", "NoSuchKey"}
    store.delete("nope")  # deleting a missing object is not an error


def test_delete_and_delete_prefix_keep_folder_semantics(store: S3Store, tmp_path: Path) -> None:
    path, _ = _file(tmp_path, "f", 10)
    keys = ["jobs/a/source/upload", "jobs/a/artifacts/motion.fbx", "jobs/a/artifacts/motion.bvh",
            "jobs/ab/source/upload", "jobs/a-b/x", "jobs/a"]
    for key in keys:
        store.put_file(key, path)
    store.delete("jobs/a-b/x")
    assert not store.exists("jobs/a-b/x")
    assert store.delete_prefix("jobs/a/artifacts/") == 2
    assert store.delete_prefix("jobs/a/source/upload") == 1  # a single object named by its key
    assert store.delete_prefix("jobs/a") == 1  # the object "jobs/a" itself; nothing left under jobs/a/
    assert store.exists("jobs/ab/source/upload")  # a sibling sharing the string prefix is untouched
    assert store.delete_prefix("jobs/none/") == 0
    listed = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["pre/fix/jobs/ab/source/upload"]
    with pytest.raises(ValueError):
        store.delete_prefix("/")


def test_ping_reports_a_missing_bucket_and_an_unreachable_server(store: S3Store, endpoint: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    store.ping()
    with pytest.raises(SystemFault) as info:
        S3Store("no-such-bucket-here", endpoint_url=endpoint, region=REGION).ping()
    assert isinstance(info.value.__cause__, ClientError)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: connection refused
    try:
        with pytest.raises(SystemFault) as info:
            S3Store(store.bucket, endpoint_url=closed, region=REGION).ping()
        assert isinstance(info.value.__cause__, BotoCoreError)
    finally:
        sock.close()


def test_presigned_put_binds_the_declared_length(store: S3Store) -> None:
    body = b"x" * 1234
    url = store.presign("PUT", "jobs/j/source/upload", 600, content_length=len(body))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == store.endpoint_url
    assert parts.path == f"/{store.bucket}/pre/fix/jobs/j/source/upload"  # path-style on a custom endpoint
    query = dict(parse_qsl(parts.query))
    assert query["X-Amz-SignedHeaders"].split(";") == ["content-length", "host"]
    secret = AWS_ENV["AWS_SECRET_ACCESS_KEY"]
    assert verify_presigned("PUT", url, {"Content-Length": str(len(body))}, secret_key=secret)
    assert not verify_presigned("PUT", url, {"Content-Length": str(len(body) + 1)}, secret_key=secret)
    assert not verify_presigned("PUT", url, {}, secret_key=secret)
    assert not verify_presigned("GET", url, {"Content-Length": str(len(body))}, secret_key=secret)
    assert not verify_presigned("PUT", url.replace("upload", "uploaf"), {"Content-Length": str(len(body))},
                                secret_key=secret)
    later = datetime.now(UTC) + timedelta(seconds=601)
    assert not verify_presigned("PUT", url, {"Content-Length": str(len(body))}, secret_key=secret, now=later)
    r = httpx.put(url, content=body)  # httpx sends Content-Length for a bytes body
    assert r.status_code == 200, r.text
    assert store.hash_object("jobs/j/source/upload").sha256 == hashlib.sha256(body).hexdigest()
    free = store.presign("PUT", "jobs/j/source/upload", 60)
    assert dict(parse_qsl(urlsplit(free).query))["X-Amz-SignedHeaders"] == "host"


def test_presigned_get_serves_the_object_with_its_name_and_type(store: S3Store, tmp_path: Path) -> None:
    path, data = _file(tmp_path, "g1_motion.json", 4_321)
    store.put_file("jobs/j/artifacts/g1_motion.json", path, "application/json")
    url = store.presign("GET", "jobs/j/artifacts/g1_motion.json", 300, content_type="application/json",
                        download_name="g1_motion.json")
    assert verify_presigned("GET", url, {}, secret_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-disposition"] == 'attachment; filename="g1_motion.json"'
    assert r.headers["content-type"].startswith("application/json")
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    with pytest.raises(ValueError):
        store.presign("DELETE", "k", 60)


def test_open_store_builds_an_s3_store_without_any_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    settings = Settings(storage_url="s3://media/mocapd/prod", s3_endpoint_url="http://127.0.0.1:9",
                        s3_region="eu-west-1")
    store = open_store(settings)
    assert isinstance(store, S3Store) and store.kind == "s3"
    assert (store.bucket, store.prefix, store.endpoint_url, store.region) == ("media", "mocapd/prod",
                                                                             "http://127.0.0.1:9", "eu-west-1")
    assert store._client is None  # created on first use, not when the store is opened
    url = store.presign("GET", "k", 60)  # signing is local: still no server needed
    assert url.startswith("http://127.0.0.1:9/media/mocapd/prod/k?") and "eu-west-1" in url
    with pytest.raises(ValueError, match="bucket"):
        open_store(Settings(storage_url="s3:///prefix-only"))


def test_importing_the_storage_package_does_not_import_boto3() -> None:
    code = "import sys, mocapd.storage, mocapd.storage.s3; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]
