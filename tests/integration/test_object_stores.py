"""The one object-store interface, held by both stores the same way: the local folder and S3 (moto's
server over HTTP), so callers never need to know which one they have."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from mocapd.errors import MocapdError
from mocapd.storage import LocalStore, ObjectStore, S3Store, StoredObject, TooLarge
from tests.integration.test_s3_storage import REGION, make_bucket, moto_server, set_aws_env


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    endpoint: str = request.getfixturevalue("endpoint")
    set_aws_env(monkeypatch)
    return S3Store(make_bucket(endpoint), "pre", endpoint_url=endpoint, region=REGION)


def _body(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _put(store: ObjectStore, key: str, data: bytes, limit: int, check: object = None) -> StoredObject:
    return asyncio.run(store.put_stream(key, _chunks(data), limit, check))  # type: ignore[arg-type]


def test_streamed_put_is_bounded_and_checked_before_it_replaces_anything(store: ObjectStore) -> None:
    first = _body(5000)
    stored = _put(store, "jobs/j/source/upload", first, 5000)
    assert stored == StoredObject("jobs/j/source/upload", 5000, hashlib.sha256(first).hexdigest())
    with pytest.raises(TooLarge):
        _put(store, "jobs/j/source/upload", _body(5001, 2), 5000)

    def refuse(obj: StoredObject) -> None:
        raise MocapdError("upload_size_mismatch", f"{obj.bytes}")

    with pytest.raises(MocapdError, match="upload_size_mismatch"):
        _put(store, "jobs/j/source/upload", _body(10, 3), 5000, refuse)
    assert store.hash_object("jobs/j/source/upload") == stored  # neither refused body replaced it


def test_bounded_fetch_and_local_copy_give_one_version_with_its_digest(store: ObjectStore, tmp_path: Path) -> None:
    data = _body(3000)
    stored = _put(store, "k/obj", data, 10_000)
    got = store.fetch("k/obj", tmp_path / "f", max_bytes=3000)
    assert got == stored and (tmp_path / "f").read_bytes() == data
    with pytest.raises(TooLarge):
        store.fetch("k/obj", tmp_path / "g", max_bytes=2999)
    assert not (tmp_path / "g").exists()
    with store.local_copy("k/obj", max_bytes=3000) as copy:
        assert (copy.bytes, copy.sha256) == (3000, stored.sha256) and copy.path.read_bytes() == data
        _put(store, "k/obj", _body(100, 9), 10_000)  # replaced meanwhile: the copy keeps its version
        assert copy.path.read_bytes() == data
        path = copy.path
    assert not path.exists()
    with pytest.raises(TooLarge), store.local_copy("k/obj", max_bytes=99):
        pass


def test_urls_are_presigned_only_where_the_store_presigns(store: ObjectStore) -> None:
    data = _body(64)
    up = store.upload_url("jobs/j/source/upload", 300, content_length=len(data))
    down = store.download_url("jobs/j/source/upload", 300, content_type="video/mp4", download_name="clip.mp4")
    if isinstance(store, LocalStore):  # the API signs its own URLs for the local folder
        assert up is None and down is None
        return
    assert up is not None and down is not None
    assert httpx.put(up, content=data, headers={"Content-Length": str(len(data))}).status_code == 200
    r = httpx.get(down)
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "video/mp4"
    assert 'filename="clip.mp4"' in r.headers["content-disposition"]


def test_snapshot_keeps_the_bytes_of_the_moment(store: ObjectStore) -> None:
    first = _put(store, "jobs/j/source/upload", _body(2000), 10_000)
    store.snapshot("jobs/j/source/upload", "jobs/j/source/admitted")
    _put(store, "jobs/j/source/upload", _body(1500, 4), 10_000)
    assert store.hash_object("jobs/j/source/admitted") == StoredObject("jobs/j/source/admitted", 2000, first.sha256)
