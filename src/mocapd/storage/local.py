"""A local-folder object store. Writes go to a temporary file and are renamed into place, so a
reader (or a crash) never sees half an object, and an object's file is never changed in place: a hard
link to it is a stable snapshot of one version (`local_copy`). It does not presign: the API serves its
objects through URLs it signs itself (`upload_url` / `download_url` answer None)."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from mocapd.errors import SystemFault
from mocapd.storage.base import Check, LocalCopy, Publish, StoredObject, TooLarge, spool

__all__ = ["LocalStore"]

CHUNK = 1 << 20


def _hash_into(src: BinaryIO, dst: BinaryIO | None, max_bytes: int | None) -> tuple[int, str]:
    """Size and SHA-256 of ``src`` read to its end (copied into ``dst`` when given); `TooLarge` past
    ``max_bytes``."""
    h = hashlib.sha256()
    n = 0
    while chunk := src.read(CHUNK):
        n += len(chunk)
        if max_bytes is not None and n > max_bytes:
            raise TooLarge(max_bytes, n)
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
    return n, h.hexdigest()


class LocalStore:
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".tmp").mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root not in p.parents:
            raise ValueError(f"object key escapes the store: {key!r}")
        return p

    def _tmp(self) -> Path:
        return self.root / ".tmp" / uuid.uuid4().hex

    def _commit(self, tmp: Path, key: str) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)

    def upload_url(self, key: str, expires_s: int, *, content_length: int | None = None) -> str | None:
        return None  # uploads go through the API's signed PUT (put_stream)

    def download_url(
        self, key: str, expires_s: int, *, content_type: str | None = None, download_name: str | None = None
    ) -> str | None:
        return None  # downloads go through the API's signed GET (open_range)

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        check: Check | None = None,
        publish: Publish | None = None,
    ) -> StoredObject:
        """Stream ``chunks`` into ``key``, hashing on the way; stop at once past ``max_bytes``.

        At most ``max_bytes`` + one chunk is ever written to disk, and only a complete body that
        passes ``check`` (which raises to refuse it) replaces the object. With ``publish``, the
        replacement is handed to it as a callable (``publish(stored, commit)``), so the caller can put
        the object in place and record what it is in one step (under its own lock); if ``publish``
        raises or never calls ``commit``, nothing is replaced.
        """
        tmp = self._tmp()
        try:
            stored = await spool(chunks, tmp, key, max_bytes)
            if check is not None:
                check(stored)
            if publish is None:
                self._commit(tmp, key)
            else:
                await publish(stored, lambda: self._commit(tmp, key))
        finally:
            tmp.unlink(missing_ok=True)
        return stored

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> StoredObject:
        tmp = self._tmp()
        h = hashlib.sha256()
        n = 0
        try:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
                    n += len(chunk)
            self._commit(tmp, key)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key, n, h.hexdigest())

    def download_to(self, key: str, path: Path) -> None:
        shutil.copyfile(self.path(key), path)

    def snapshot(self, src: str, dest: str) -> None:
        """Make ``dest`` the bytes ``src`` holds now, unaffected by later writes to ``src`` (which always
        rename a new file into place): a hard link, or a copy where links are not possible."""
        tmp = self._tmp()
        try:
            try:
                os.link(self.path(src), tmp)
            except FileNotFoundError:
                raise
            except OSError:  # no hard links on this filesystem (or across devices): copy
                shutil.copyfile(self.path(src), tmp)
            self._commit(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def fetch(self, key: str, path: Path, max_bytes: int | None = None) -> StoredObject:
        """Copy the object into ``path``, hashing on the way; past ``max_bytes`` raise `TooLarge` and
        remove the partial file."""
        try:
            with open(self.path(key), "rb") as src, open(path, "wb") as dst:
                n, digest = _hash_into(src, dst, max_bytes)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StoredObject(key, n, digest)

    @contextmanager
    def local_copy(self, key: str, max_bytes: int | None = None) -> Iterator[LocalCopy]:
        """A hard link to the object's current file (no copy: writers replace files, never change them),
        hashed; removed when the block ends. `TooLarge` past ``max_bytes``."""
        src = self.path(key)
        snap = self._tmp()
        try:
            try:
                os.link(src, snap)
            except OSError:  # a filesystem without hard links: copy
                with open(src, "rb") as f, open(snap, "wb") as dst:
                    _hash_into(f, dst, max_bytes)
            with open(snap, "rb") as f:
                n, digest = _hash_into(f, None, max_bytes)
            yield LocalCopy(snap, n, digest)
        finally:
            snap.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int | None:
        p = self.path(key)
        return p.stat().st_size if p.is_file() else None

    def hash_object(self, key: str) -> StoredObject:
        with open(self.path(key), "rb") as f:
            n, digest = _hash_into(f, None, None)
        return StoredObject(key, n, digest)

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start``..``end`` inclusive."""
        with open(self.path(key), "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        base = self.path(prefix.rstrip("/"))
        if base.is_dir():
            n = sum(1 for p in base.rglob("*") if p.is_file())
            shutil.rmtree(base, ignore_errors=True)
            return n
        if base.is_file():
            base.unlink()
            return 1
        return 0

    def ping(self) -> None:
        """Raise `SystemFault` unless a file can be written in the store's folder."""
        try:
            probe = self._tmp()
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise SystemFault("internal_error", f"the storage folder {self.root} is not writable ({exc.strerror or exc})"
                              ) from exc
