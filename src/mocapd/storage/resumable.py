"""The bytes of a resumable (tus) upload, appended across requests, in the local folder or S3.

The caller (the API's tus endpoint) owns the protocol, the lock and the committed offset; this module
only keeps bytes durable and says, at each checkpoint, how many are durable and what to remember
(``state``, a small JSON-able dict kept with the offset in the database):

- **local**: one file ``jobs/{job}/source/tus/{upload}/data``, appended and ``fsync``-ed at each
  checkpoint; a writer first truncates the file to the committed offset (bytes a killed request left
  past it were never acknowledged). Finishing renames it onto the job's source key (same filesystem:
  atomic).
- **S3**: a multipart upload straight to the source key. Bytes are buffered in memory up to one part
  (`PART_BYTES`, above S3's 5 MiB minimum for every part but the last) and sent as a part; at the end of
  a request the remainder shorter than a part (the *tail*) is stored as its own small object under
  ``jobs/{job}/source/tus/{upload}/`` and read back by the next request, which may land on another API
  process. Part numbers follow from the committed parts, so parts sent by a request that never
  committed are overwritten by the next one, and CompleteMultipartUpload drops any part not listed.
  The client never sees S3 or its credentials.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from mocapd.errors import MocapdError, SystemFault
from mocapd.storage.base import ObjectStore, StoredObject
from mocapd.storage.local import LocalStore
from mocapd.storage.s3 import S3Store

__all__ = ["PART_BYTES", "ResumableWriter", "abort_upload", "begin_upload", "open_writer", "upload_prefix"]

PART_BYTES = 8 << 20  # S3 parts; every part but the last must be at least 5 MiB
LOCAL_CHECKPOINT_BYTES = 16 << 20  # fsync (in the background) this often in a request; the API records the offset

State = dict[str, Any]


def upload_prefix(job_id: str, upload_id: str) -> str:
    return f"jobs/{job_id}/source/tus/{upload_id}"


class ResumableWriter(Protocol):
    offset: int  # bytes written so far (durable or not)

    def write(self, chunk: bytes) -> None: ...
    def full(self) -> bool: ...  # a part is ready: call `flush` (blocking, off the event loop)
    def flush(self) -> None: ...
    def checkpoint_due(self) -> bool: ...
    def checkpoint(self, *, everything: bool) -> tuple[int, State]: ...  # (durable offset, state to commit)
    # A checkpoint whose slow part (fsync) may run while more bytes arrive: (offset, the blocking rest,
    # which returns the state to commit once those bytes are durable); None where there is no such part.
    def background_checkpoint(self) -> tuple[int, Callable[[], State]] | None: ...
    def committed(self) -> None: ...  # the last checkpoint is in the database: drop what it replaced
    def finish(self) -> None: ...  # every byte is written: make the object at the final key
    def abandon(self) -> None: ...  # drop what was not committed
    def close(self) -> None: ...
    def digest_of_data(self) -> StoredObject | None: ...  # the whole upload's digest, if readable before finish


def begin_upload(store: ObjectStore, job_id: str, upload_id: str, final_key: str) -> State:
    """Room for a new upload; its initial state."""
    prefix = upload_prefix(job_id, upload_id)
    if isinstance(store, LocalStore):
        path = store.path(prefix + "/data")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return {"kind": "local", "prefix": prefix, "final": final_key}
    if isinstance(store, S3Store):
        return {"kind": "s3", "prefix": prefix, "final": final_key, "uploadId": store.create_multipart(final_key),
                "parts": [], "tail": None}
    raise SystemFault("internal_error", f"resumable uploads are not supported on {type(store).__name__}")


def abort_upload(store: ObjectStore, state: State) -> None:
    """Delete every byte of the upload (the multipart upload and its parts too). Idempotent."""
    if state.get("kind") == "s3" and isinstance(store, S3Store) and state.get("uploadId"):
        store.abort_multipart(str(state["final"]), str(state["uploadId"]))
    store.delete_prefix(str(state["prefix"]))


def open_writer(store: ObjectStore, state: State, offset: int) -> ResumableWriter:
    """A writer appending at the committed ``offset`` (blocking: S3 reads the stored tail)."""
    if state.get("kind") == "local" and isinstance(store, LocalStore):
        return _LocalWriter(store, state, offset)
    if state.get("kind") == "s3" and isinstance(store, S3Store):
        return _S3Writer(store, state, offset)
    raise SystemFault("internal_error", "the upload's state does not match the configured object store")


class _LocalWriter:
    def __init__(self, store: LocalStore, state: State, offset: int) -> None:
        self.store = store
        self.state = dict(state)
        self.path = store.path(str(state["prefix"]) + "/data")
        try:
            self.f = open(self.path, "r+b")  # noqa: SIM115 - held across the request
        except FileNotFoundError as exc:  # finished (or aborted) by a request whose record was never written
            raise MocapdError("upload_not_found", "The upload's bytes are gone; create a new upload.") from exc
        size = os.fstat(self.f.fileno()).st_size
        if size < offset:
            self.f.close()
            raise SystemFault("internal_error", f"the upload's file has {size} bytes, fewer than its offset {offset}")
        self.f.truncate(offset)  # bytes past the committed offset were never acknowledged
        self.f.seek(offset)
        self.offset = offset
        self.durable = offset
        self.synced_to = offset  # the offset the last checkpoint (perhaps still running) makes durable

    def write(self, chunk: bytes) -> None:
        self.f.write(chunk)
        self.offset += len(chunk)

    def full(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def checkpoint_due(self) -> bool:
        # Counted from the last checkpoint *started*: one still syncing in the background is not due again
        # (counting from ``durable`` would start a second one at the next chunk, waiting for the first).
        return self.offset - self.synced_to >= LOCAL_CHECKPOINT_BYTES

    def checkpoint(self, *, everything: bool) -> tuple[int, State]:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.durable = self.synced_to = self.offset
        return self.durable, self.state

    def background_checkpoint(self) -> tuple[int, Callable[[], State]] | None:
        self.f.flush()  # in the caller's thread: the file object is not shared; fsync works on the descriptor
        offset, fd = self.offset, self.f.fileno()
        self.synced_to = offset

        def sync() -> State:
            os.fsync(fd)  # everything up to ``offset`` (and perhaps more) is on disk after this
            self.durable = max(self.durable, offset)
            return self.state

        return offset, sync

    def committed(self) -> None:
        pass

    def digest_of_data(self) -> StoredObject | None:
        self.f.flush()
        h = hashlib.sha256()
        n = 0
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
        return StoredObject(str(self.state["final"]), n, h.hexdigest())

    def finish(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        dest = self.store.path(str(self.state["final"]))
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, dest)
        _fsync_dir(dest.parent)
        self.store.delete_prefix(str(self.state["prefix"]))

    def abandon(self) -> None:
        if self.f.closed:
            return
        try:
            self.f.truncate(self.durable)
            self.f.flush()
        finally:
            self.f.close()

    def close(self) -> None:
        if not self.f.closed:
            self.f.close()


class _S3Writer:
    def __init__(self, store: S3Store, state: State, offset: int) -> None:
        self.store = store
        self.final = str(state["final"])
        self.prefix = str(state["prefix"])
        self.upload_id = str(state["uploadId"])
        self.parts: list[list[Any]] = [list(p) for p in state.get("parts") or []]  # [number, etag, bytes]
        tail: str | None = state.get("tail")
        self.buffer = bytearray(store.get_bytes(tail)) if tail else bytearray()
        self.base = sum(int(p[2]) for p in self.parts)  # bytes in uploaded parts
        if self.base + len(self.buffer) != offset:
            raise SystemFault("internal_error", f"the upload's parts and tail hold {self.base + len(self.buffer)} "
                                                f"bytes, not its offset {offset}")
        self.offset = offset
        self.buffer_key = tail  # a stored object holding exactly the buffer, if any
        self.committed_tail = tail  # the tail the database points at
        self.pending_tail = tail  # the tail of the last checkpoint
        self.written_tails: list[str] = []
        self.committed_base = self.base

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        self.offset += len(chunk)
        self.buffer_key = None

    def full(self) -> bool:
        return len(self.buffer) >= PART_BYTES

    def _part(self, number: int, data: bytes) -> str:
        try:
            return self.store.upload_part(self.final, self.upload_id, number, data)
        except SystemFault as exc:
            if exc.details.get("s3Code") == "NoSuchUpload":  # completed or aborted by an unrecorded request
                raise MocapdError("upload_not_found", "The upload is gone; create a new upload.") from exc
            raise

    def flush(self) -> None:
        while len(self.buffer) >= PART_BYTES:
            number = len(self.parts) + 1
            etag = self._part(number, bytes(self.buffer[:PART_BYTES]))
            self.parts.append([number, etag, PART_BYTES])
            del self.buffer[:PART_BYTES]
            self.base += PART_BYTES
            self.buffer_key = None

    def checkpoint_due(self) -> bool:
        return self.base > self.committed_base  # a new part: make it count before the next one

    def background_checkpoint(self) -> tuple[int, Callable[[], State]] | None:
        return None  # parts are sent in turn; a checkpoint after one is a database write

    def checkpoint(self, *, everything: bool) -> tuple[int, State]:
        """``everything``: the buffer too (stored as the tail); else only the bytes in parts."""
        tail: str | None = None
        durable = self.base
        if everything and self.buffer:
            if self.buffer_key is None:
                self.buffer_key = f"{self.prefix}/tail-{self.offset}"
                self.store.put_bytes(self.buffer_key, bytes(self.buffer))
                self.written_tails.append(self.buffer_key)
            tail, durable = self.buffer_key, self.offset
        self.pending_tail = tail
        self.committed_base = self.base
        return durable, {"kind": "s3", "prefix": self.prefix, "final": self.final, "uploadId": self.upload_id,
                         "parts": [list(p) for p in self.parts], "tail": tail}

    def committed(self) -> None:
        for key in dict.fromkeys([self.committed_tail, *self.written_tails]):
            if key and key != self.pending_tail:
                self.store.delete(key)
        self.committed_tail = self.pending_tail
        self.written_tails = [t for t in self.written_tails if t == self.pending_tail]

    def digest_of_data(self) -> StoredObject | None:
        return None  # parts cannot be read before the upload completes

    def finish(self) -> None:
        self.flush()
        if self.buffer:
            number = len(self.parts) + 1
            etag = self._part(number, bytes(self.buffer))
            self.parts.append([number, etag, len(self.buffer)])
            self.buffer.clear()
        self.store.complete_multipart(self.final, self.upload_id, [(int(n), str(e)) for n, e, _ in self.parts])
        self.store.delete_prefix(self.prefix)

    def abandon(self) -> None:
        for key in self.written_tails:
            if key != self.committed_tail:
                self.store.delete(key)
        self.written_tails = []

    def close(self) -> None:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
