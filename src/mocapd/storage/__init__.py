"""Object storage: a local folder (signed URLs served by the API) or S3 (presigned URLs).

``MOCAPD_STORAGE_URL`` picks the store: ``file:///path`` (the default, under the data directory) or
``s3://bucket/prefix`` with ``MOCAPD_S3_ENDPOINT_URL`` (MinIO, R2, Ceph...; unset for AWS) and
``MOCAPD_S3_REGION``. S3 credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role...). Opening a store makes no network call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mocapd.storage.base import Check, LocalCopy, ObjectStore, Publish, StoredObject, TooLarge
from mocapd.storage.local import LocalStore
from mocapd.storage.s3 import S3Store

if TYPE_CHECKING:
    from mocapd.config import Settings

__all__ = [
    "Check",
    "LocalCopy",
    "LocalStore",
    "ObjectStore",
    "Publish",
    "S3Store",
    "StoredObject",
    "TooLarge",
    "admitted_source_key",
    "artifact_key",
    "open_store",
    "private_key",
    "source_key",
]


def open_store(settings: Settings) -> ObjectStore:
    """The store named by ``settings.resolved_storage_url``; a malformed URL is a ValueError."""
    url = settings.resolved_storage_url
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"storage URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3Store(parsed.netloc, parsed.path, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    raise ValueError(f"unsupported storage URL {url!r}: use file:///path or s3://bucket/prefix")


def source_key(job_id: str) -> str:
    """Where uploads write a draft's source (signed upload URLs name it; it may change until admission)."""
    return f"jobs/{job_id}/source/upload"


def admitted_source_key(job_id: str) -> str:
    """The source as admitted: a snapshot complete-upload takes of the upload, probes, hashes and bills.
    No upload URL names it, so nobody can replace the bytes a job was admitted with."""
    return f"jobs/{job_id}/source/admitted"


def private_key(job_id: str, name: str) -> str:
    """A job's own files that are not artifacts (the stored motion a re-export starts from)."""
    return f"jobs/{job_id}/private/{name}"


def artifact_key(job_id: str, name: str) -> str:
    return f"jobs/{job_id}/artifacts/{name}"
