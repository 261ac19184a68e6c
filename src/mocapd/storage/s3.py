"""An S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Ceph RGW) on boto3, with presigned URLs.

Keys are stored under ``prefix/`` in ``bucket``; callers only ever see their own, unprefixed keys.

- The boto3 client is created on first use, never at import or construction time, and again in a
  forked child (boto3 clients and their connection pools must not cross ``fork``).
- Presigned URLs are AWS Signature V4 query-string URLs. A PUT signed with ``content_length`` binds
  the ``Content-Length`` header into the signature (``X-Amz-SignedHeaders=content-length;host``): S3
  refuses a body of any other size, which is how a size limit is enforced on an upload that never
  passes through the API.
- With a custom endpoint (MinIO, R2, Ceph, a local test server) requests use path-style addressing
  (``http://endpoint/bucket/key``), which every S3-compatible server accepts.
- Every botocore / s3transfer error is converted here, at the border, into
  `mocapd.errors.SystemFault` (``internal_error``, retryable) raised ``from`` the original, with the
  operation, key and S3 error code in ``details``. A missing object is not an error for `size` and
  `exists` (``None`` / ``False``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mocapd.errors import SystemFault
from mocapd.storage.base import Check, LocalCopy, Publish, StoredObject, TooLarge, spool

__all__ = ["S3Store"]

CHUNK = 1 << 20
_OPERATIONS = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object"}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
           "AllAccessDisabled"}


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``, ``404``, ``AccessDenied``...)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


class S3Store:
    """`mocapd.storage.base.ObjectStore` on an S3 bucket; URLs are presigned (`presign`)."""

    kind = "s3"

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        if not bucket:
            raise ValueError("an S3 storage URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self._client: Any = None
        self._client_pid = -1
        self._lock = threading.Lock()
        self._bucket_seen_s = -float("inf")

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Store(s3://{self.bucket}/{self.prefix}{where})"

    # ------------------------------------------------------------------ plumbing
    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use in this process (clients are thread-safe)."""
        if self._client is None or self._client_pid != os.getpid():
            with self._lock:
                if self._client is None or self._client_pid != os.getpid():
                    self._client = self._new_client()
                    self._client_pid = os.getpid()
        return self._client

    def _new_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SystemFault("internal_error", "S3 storage needs the 's3' extra: pip install 'mocapd[s3]'.") from exc
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=5,
            read_timeout=60,
        )
        try:
            session = boto3.session.Session()  # a private session: the default one is not thread-safe
            return session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config)
        except Exception as exc:  # a malformed endpoint URL or region
            raise SystemFault("internal_error", f"The S3 client could not be created: {exc}") from exc

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fault(self, operation: str, key: str | None, exc: BaseException) -> SystemFault:
        code = _s3_code(exc)
        what = f"object storage {operation}" + (f" of {key!r}" if key is not None else "")
        reason = code or type(exc).__name__
        cause = self._store_level_cause(exc)  # missing credentials, refused credentials... said in words
        return SystemFault(
            "internal_error",
            f"{what} failed ({reason})" + (f": {cause}." if cause else "."),
            details={"operation": operation, "key": key, "s3Code": code, "bucket": self.bucket},
        )

    def _store_level_cause(self, exc: BaseException) -> str | None:
        """`explain` for errors about the store as a whole (never about one object: a 404 on an object
        names no bucket problem)."""
        from botocore.exceptions import BotoCoreError

        code = _s3_code(exc)
        if code == "NoSuchBucket" or (code is None and isinstance(exc, BotoCoreError)) or code in _DENIED:
            return self.explain(exc)
        return None

    def _bucket_exists_or_fault(self) -> None:
        """After a 404 on an object (a HEAD's 404 says nothing about why): raise `SystemFault` in words if
        the bucket itself is gone, rather than let a missing bucket pass for a missing object. A bucket
        seen within the last minute is taken as still there."""
        if time.monotonic() - self._bucket_seen_s < 60.0:
            return
        self.ping()
        self._bucket_seen_s = time.monotonic()

    def _call(self, operation: str, key: str | None, **kw: Any) -> Any:
        try:
            return getattr(self.client, operation)(**kw)
        except SystemFault:
            raise
        except Exception as exc:  # botocore / s3transfer errors become ours at the border
            raise self._fault(operation, key, exc) from exc

    # ------------------------------------------------------------------ URLs
    def presign(
        self,
        method: str,
        key: str,
        expires_s: int,
        *,
        content_length: int | None = None,
        content_type: str | None = None,
        download_name: str | None = None,
    ) -> str:
        """A SigV4 presigned URL for ``method`` (GET, PUT or HEAD) on ``key``, valid ``expires_s`` seconds.

        PUT: ``content_length`` is signed, so the server accepts only a body of exactly that many bytes;
        ``content_type`` is signed too (the client must then send that ``Content-Type``).
        GET: ``content_type`` / ``download_name`` set the response's ``Content-Type`` and
        ``Content-Disposition: attachment; filename=...``.
        """
        try:
            operation = _OPERATIONS[method.upper()]
        except KeyError:
            raise ValueError(f"cannot presign {method!r}: use GET, PUT or HEAD") from None
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if operation == "put_object":
            if content_length is not None:
                params["ContentLength"] = int(content_length)
            if content_type is not None:
                params["ContentType"] = content_type
        elif operation == "get_object":
            if content_type is not None:
                params["ResponseContentType"] = content_type
            if download_name is not None:
                safe = download_name.replace('"', "").replace("\\", "")
                params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        try:
            url: str = self.client.generate_presigned_url(operation, Params=params, ExpiresIn=int(expires_s))
        except SystemFault:
            raise
        except Exception as exc:
            raise self._fault("presign", key, exc) from exc
        return url

    def upload_url(self, key: str, expires_s: int, *, content_length: int | None = None) -> str | None:
        """A presigned PUT; with ``content_length`` the bucket refuses a body of any other size."""
        return self.presign("PUT", key, expires_s, content_length=content_length)

    def download_url(
        self, key: str, expires_s: int, *, content_type: str | None = None, download_name: str | None = None
    ) -> str | None:
        """A presigned GET answering with ``content_type`` and an attachment named ``download_name``."""
        return self.presign("GET", key, expires_s, content_type=content_type, download_name=download_name)

    # ------------------------------------------------------------------ objects
    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        check: Check | None = None,
        publish: Publish | None = None,
    ) -> StoredObject:
        """Spool ``chunks`` to a temporary file (stopping at once past ``max_bytes``), let ``check``
        refuse the complete body, then upload it (through ``publish`` when given, as the local store
        does): the object is replaced only by a body that passed."""
        with tempfile.TemporaryDirectory(prefix="mocapd-put-") as tmp:
            path = Path(tmp) / "body"
            stored = await spool(chunks, path, key, max_bytes)
            if check is not None:
                check(stored)

            def commit() -> None:
                self.put_file(key, path)

            if publish is None:
                await asyncio.to_thread(commit)
            else:
                await publish(stored, commit)
            return stored

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> StoredObject:
        """Upload a local file (multipart above 8 MiB); its SHA-256 is also kept as object metadata."""
        h = hashlib.sha256()
        n = 0
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
        digest = h.hexdigest()
        self._call(
            "upload_file", key, Filename=str(path), Bucket=self.bucket, Key=self._k(key),
            ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": digest}},
        )
        return StoredObject(key, n, digest)

    def download_to(self, key: str, path: Path) -> None:
        """Copy the object to a local file (s3transfer writes a temporary file and renames it)."""
        self._call("download_file", key, Bucket=self.bucket, Key=self._k(key), Filename=str(path))

    def fetch(self, key: str, path: Path, max_bytes: int | None = None) -> StoredObject:
        """Stream the object into ``path`` in one GET, hashing (SHA-256) on the way.

        One GET reads one version of the object, so the bytes, size and digest returned belong together
        even if the object is replaced meanwhile. Past ``max_bytes`` it stops and raises `TooLarge`
        (the partial file is removed).
        """
        body = self._call("get_object", key, Bucket=self.bucket, Key=self._k(key))["Body"]
        h = hashlib.sha256()
        n = 0
        try:
            with open(path, "wb") as f:
                for chunk in body.iter_chunks(CHUNK):
                    n += len(chunk)
                    if max_bytes is not None and n > max_bytes:
                        raise TooLarge(max_bytes, n)
                    h.update(chunk)
                    f.write(chunk)
        except TooLarge:
            path.unlink(missing_ok=True)
            raise
        except OSError:
            path.unlink(missing_ok=True)
            raise
        except Exception as exc:  # the connection broke mid-body
            path.unlink(missing_ok=True)
            raise self._fault("get_object", key, exc) from exc
        finally:
            body.close()
        return StoredObject(key, n, h.hexdigest())

    def snapshot(self, src: str, dest: str) -> None:
        """Make ``dest`` a server-side copy of the object ``src`` holds now (CopyObject reads one version,
        so a PUT racing it gives either the old bytes or the new, never a mix)."""
        self._call("copy_object", src, Bucket=self.bucket, Key=self._k(dest),
                   CopySource={"Bucket": self.bucket, "Key": self._k(src)})

    @contextmanager
    def local_copy(self, key: str, max_bytes: int | None = None) -> Iterator[LocalCopy]:
        """The object fetched (one GET, see `fetch`) into a temporary file, removed when the block ends."""
        with tempfile.TemporaryDirectory(prefix="mocapd-fetch-") as tmp:
            path = Path(tmp) / "object"
            got = self.fetch(key, path, max_bytes=max_bytes)
            yield LocalCopy(path, got.bytes, got.sha256)

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if there is no such object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except SystemFault:
            raise
        except Exception as exc:
            if _s3_code(exc) in _NOT_FOUND:
                self._bucket_exists_or_fault()
                return None
            raise self._fault("head_object", key, exc) from exc
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def hash_object(self, key: str) -> StoredObject:
        """Size and SHA-256 of the object, computed by streaming it (never trusting the ETag)."""
        body = self._call("get_object", key, Bucket=self.bucket, Key=self._k(key))["Body"]
        h = hashlib.sha256()
        n = 0
        try:
            for chunk in body.iter_chunks(CHUNK):
                h.update(chunk)
                n += len(chunk)
        except Exception as exc:
            raise self._fault("get_object", key, exc) from exc
        finally:
            body.close()
        return StoredObject(key, n, h.hexdigest())

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start``..``end`` inclusive (an HTTP Range GET)."""
        if start < 0 or end < start:
            raise ValueError(f"bad byte range {start}-{end}")
        body = self._call("get_object", key, Bucket=self.bucket, Key=self._k(key), Range=f"bytes={start}-{end}")["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        except Exception as exc:
            raise self._fault("get_object", key, exc) from exc
        finally:
            body.close()

    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing object is not an error."""
        self._call("delete_object", key, Bucket=self.bucket, Key=self._k(key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete the object named ``prefix`` and every object under ``prefix/`` (the local store's
        folder semantics: ``jobs/a`` never touches ``jobs/ab/...``). Returns how many were deleted."""
        stem = prefix.rstrip("/")
        if not stem:
            raise ValueError("refusing to delete the whole store")
        n = 0
        if not prefix.endswith("/") and self.exists(stem):
            self.delete(stem)
            n += 1
        under = self._k(stem + "/")
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=under)
            for page in pages:  # at most 1000 keys a page, the limit of one delete_objects call
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if not keys:
                    continue
                out = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                errors = out.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise SystemFault(
                        "internal_error",
                        f"object storage could not delete {len(errors)} object(s) under {prefix!r} "
                        f"({first.get('Code')}).",
                        details={"operation": "delete_objects", "key": first.get("Key"), "s3Code": first.get("Code")},
                    )
                n += len(keys)
        except SystemFault:
            raise
        except Exception as exc:
            raise self._fault("delete_prefix", prefix, exc) from exc
        return n

    # ------------------------------------------------------------------ multipart (resumable uploads)
    def put_bytes(self, key: str, data: bytes) -> None:
        self._call("put_object", key, Bucket=self.bucket, Key=self._k(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        body = self._call("get_object", key, Bucket=self.bucket, Key=self._k(key))["Body"]
        try:
            return bytes(body.read())
        except Exception as exc:
            raise self._fault("get_object", key, exc) from exc
        finally:
            body.close()

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload to ``key``; its upload id."""
        out = self._call("create_multipart_upload", key, Bucket=self.bucket, Key=self._k(key),
                         ContentType="application/octet-stream")
        return str(out["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload part ``number`` (1-based; every part but the last at least 5 MiB); its ETag. The same
        number uploaded again replaces the part."""
        out = self._call("upload_part", key, Bucket=self.bucket, Key=self._k(key), UploadId=upload_id,
                         PartNumber=int(number), Body=data)
        return str(out["ETag"])

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Join ``parts`` ((number, ETag), in order) into the object ``key``; parts not listed are dropped."""
        self._call("complete_multipart_upload", key, Bucket=self.bucket, Key=self._k(key), UploadId=upload_id,
                   MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload (its parts are deleted); an unknown or finished upload is not an error."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._k(key), UploadId=upload_id)
        except Exception as exc:
            if _s3_code(exc) in _NOT_FOUND | {"NoSuchUpload"}:
                return
            raise self._fault("abort_multipart_upload", key, exc) from exc

    def ping(self) -> None:
        """Raise `SystemFault` unless the bucket is reachable with these credentials; its message says
        in words what is wrong (no credentials, no such bucket, refused credentials, another region,
        an unreachable endpoint), for the start-up check and ``/readyz``."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except SystemFault:
            raise
        except Exception as exc:
            raise SystemFault("internal_error", self.explain(exc),
                              details={"operation": "head_bucket", "s3Code": _s3_code(exc), "bucket": self.bucket}) from exc

    def explain(self, exc: BaseException) -> str:
        """One line saying what a failed call on the bucket means and what to do about it."""
        from botocore.exceptions import (
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        code = _s3_code(exc)
        where = self.endpoint_url or "AWS"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ("no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, "
                    "or run on a machine with an instance role)")
        if code in ("404", "NoSuchBucket", "NotFound"):
            create = f"aws s3 mb s3://{self.bucket}" + (f" --endpoint-url {self.endpoint_url}" if self.endpoint_url else "")
            return (f"the bucket '{self.bucket}' does not exist at {where}: create it (for example `{create}`) "
                    "or fix the bucket in MOCAPD_STORAGE_URL")
        if code in ("301", "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            return (f"the bucket '{self.bucket}' is in another region than {self.region or 'the default one'}: "
                    "set MOCAPD_S3_REGION to the bucket's region")
        if code in _DENIED:
            return (f"{where} refused these S3 credentials for the bucket '{self.bucket}' ({code}): check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that they may read and write the bucket")
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            return f"cannot reach the S3 endpoint {where}: check MOCAPD_S3_ENDPOINT_URL and the network ({exc})"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"the bucket '{self.bucket}' at {where} cannot be used ({code or type(exc).__name__}: {first})"
