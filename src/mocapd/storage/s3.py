"""An S3-compatible object store (AWS, MinIO, R2, Ceph) on boto3, with presigned URLs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mocapd.errors import SystemFault
from mocapd.storage.base import StoredObject

__all__ = ["S3Store"]


class S3Store:
    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None) -> None:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SystemFault("internal_error", "S3 storage needs the 's3' extra: pip install 'mocapd[s3]'.") from exc
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn: str, **kw: Any) -> Any:
        try:
            return getattr(self.client, fn)(**kw)
        except Exception as exc:  # botocore errors become ours at the border
            raise SystemFault("internal_error", f"object storage call {fn} failed: {exc}") from exc

    def presign(self, method: str, key: str, expires_s: int, **params: Any) -> str:
        op = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object"}[method]
        url: str = self.client.generate_presigned_url(
            op, Params={"Bucket": self.bucket, "Key": self._k(key), **params}, ExpiresIn=expires_s
        )
        return url

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> StoredObject:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        self._call("upload_file", Filename=str(path), Bucket=self.bucket, Key=self._k(key),
                   ExtraArgs={"ContentType": content_type})
        return StoredObject(key, path.stat().st_size, h.hexdigest())

    def download_to(self, key: str, path: Path) -> None:
        self._call("download_file", Bucket=self.bucket, Key=self._k(key), Filename=str(path))

    def size(self, key: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except Exception:
            return None
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def hash_object(self, key: str) -> StoredObject:
        body = self._call("get_object", Bucket=self.bucket, Key=self._k(key))["Body"]
        h = hashlib.sha256()
        n = 0
        for chunk in body.iter_chunks(1 << 20):
            h.update(chunk)
            n += len(chunk)
        return StoredObject(key, n, h.hexdigest())

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        body = self._call("get_object", Bucket=self.bucket, Key=self._k(key), Range=f"bytes={start}-{end}")["Body"]
        yield from body.iter_chunks(1 << 20)

    def delete(self, key: str) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=self._k(key))

    def delete_prefix(self, prefix: str) -> int:
        n = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": keys})
                n += len(keys)
        return n

    def ping(self) -> None:
        self._call("head_bucket", Bucket=self.bucket)
