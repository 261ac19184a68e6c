"""The object-store interface shared by the local-folder store and the S3 store.

Callers use only `ObjectStore`; none asks which kind of store it has. Where the two differ, the
interface says so in its answers: `upload_url` / `download_url` are None when the store cannot
presign (the local folder; the API then serves a URL it signs itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Check", "LocalCopy", "ObjectStore", "Publish", "StoredObject", "TooLarge", "spool"]


@dataclass(frozen=True)
class StoredObject:
    key: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class LocalCopy:
    """A local file holding one version of an object, with that version's size and SHA-256."""

    path: Path
    bytes: int
    sha256: str


class TooLarge(Exception):
    """A streamed write or a bounded read passed its byte limit; nothing was stored or kept."""

    def __init__(self, limit: int, received: int) -> None:
        super().__init__(f"more than {limit} bytes (received {received})")
        self.limit = limit
        self.received = received


Check = Callable[[StoredObject], None]  # raises to refuse a completely received body
# publish(stored, commit): the caller puts a checked body in place by calling commit (synchronous), so it
# can do so in one step with its own record of it; if it raises or never commits, nothing is replaced.
Publish = Callable[[StoredObject, Callable[[], None]], Awaitable[None]]


async def spool(chunks: AsyncIterator[bytes], path: Path, key: str, max_bytes: int) -> StoredObject:
    """Write ``chunks`` to the file ``path``, hashing on the way, as the body of object ``key``; raise
    `TooLarge` at once past ``max_bytes`` (so at most ``max_bytes`` + one chunk is ever written)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "wb") as f:
        async for chunk in chunks:
            n += len(chunk)
            if n > max_bytes:
                raise TooLarge(max_bytes, n)
            h.update(chunk)
            f.write(chunk)
    return StoredObject(key, n, h.hexdigest())


class ObjectStore(Protocol):
    kind: str  # "local" | "s3": for logs and the health report, never for choosing a code path

    # URLs a client uses directly; None: this store does not presign (the API signs its own).
    def upload_url(self, key: str, expires_s: int, *, content_length: int | None = None) -> str | None: ...
    def download_url(
        self, key: str, expires_s: int, *, content_type: str | None = None, download_name: str | None = None
    ) -> str | None: ...

    # writes
    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        check: Check | None = None,
        publish: Publish | None = None,
    ) -> StoredObject: ...
    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> StoredObject: ...
    def snapshot(self, src: str, dest: str) -> None: ...  # dest: src's bytes now, untouched by later writes

    # reads
    def download_to(self, key: str, path: Path) -> None: ...
    def fetch(self, key: str, path: Path, max_bytes: int | None = None) -> StoredObject: ...
    def local_copy(self, key: str, max_bytes: int | None = None) -> AbstractContextManager[LocalCopy]: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int | None: ...
    def hash_object(self, key: str) -> StoredObject: ...
    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]: ...

    # deletes and health
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def ping(self) -> None: ...
