"""Object storage: a local folder (signed URLs served by the API) or S3 (presigned URLs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mocapd.storage.base import ObjectStore, StoredObject, TooLarge
from mocapd.storage.local import LocalStore

if TYPE_CHECKING:
    from mocapd.config import Settings

__all__ = ["LocalStore", "ObjectStore", "StoredObject", "TooLarge", "artifact_key", "open_store", "source_key"]


def open_store(settings: Settings) -> ObjectStore:
    url = settings.resolved_storage_url
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme == "s3":
        from mocapd.storage.s3 import S3Store

        return S3Store(parsed.netloc, parsed.path, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    raise ValueError(f"unsupported storage URL {url!r}: use file:///path or s3://bucket/prefix")


def source_key(job_id: str) -> str:
    return f"jobs/{job_id}/source/upload"


def artifact_key(job_id: str, name: str) -> str:
    return f"jobs/{job_id}/artifacts/{name}"
