"""The object-store interface shared by the local-folder store and the S3 store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["ObjectStore", "StoredObject", "TooLarge"]


@dataclass(frozen=True)
class StoredObject:
    key: str
    bytes: int
    sha256: str


class TooLarge(Exception):
    """A streamed write passed its byte limit; nothing was stored."""

    def __init__(self, limit: int, received: int) -> None:
        super().__init__(f"more than {limit} bytes (received {received})")
        self.limit = limit
        self.received = received


class ObjectStore(Protocol):
    kind: str  # "local" | "s3"

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject: ...
    def download_to(self, key: str, path: Path) -> None: ...
    def snapshot(self, src: str, dest: str) -> None: ...  # dest := src's bytes now, untouched by later writes to src
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int | None: ...
    def hash_object(self, key: str) -> StoredObject: ...
    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def ping(self) -> None: ...
