"""A local-folder object store. Writes go to a temporary file and are renamed into place, so a
reader (or a crash) never sees half an object."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from mocapd.errors import SystemFault
from mocapd.storage.base import StoredObject, TooLarge

__all__ = ["LocalStore"]

CHUNK = 1 << 20


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

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        check: Callable[[StoredObject], None] | None = None,
        publish: Callable[[StoredObject, Callable[[], None]], Awaitable[None]] | None = None,
    ) -> StoredObject:
        """Stream ``chunks`` into ``key``, hashing on the way; stop at once past ``max_bytes``.

        At most ``max_bytes`` + one chunk is ever written to disk, and only a complete body that
        passes ``check`` (which raises to refuse it) replaces the object. With ``publish``, the
        replacement is handed to it as a callable (``publish(stored, commit)``), so the caller can put
        the object in place and record what it is in one step (under its own lock); if ``publish``
        raises or never calls ``commit``, nothing is replaced.
        """
        tmp = self._tmp()
        h = hashlib.sha256()
        n = 0
        try:
            with open(tmp, "wb") as f:
                async for chunk in chunks:
                    n += len(chunk)
                    if n > max_bytes:
                        raise TooLarge(max_bytes, n)
                    h.update(chunk)
                    f.write(chunk)
            stored = StoredObject(key, n, h.hexdigest())
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

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int | None:
        p = self.path(key)
        return p.stat().st_size if p.is_file() else None

    def hash_object(self, key: str) -> StoredObject:
        h = hashlib.sha256()
        n = 0
        with open(self.path(key), "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
        return StoredObject(key, n, h.hexdigest())

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
