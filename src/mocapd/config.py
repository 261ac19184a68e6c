"""Settings from MOCAPD_* environment variables and flags. Nothing is read at import time."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./mocapd-data")
    database_url: str | None = None  # default: sqlite under data_dir
    storage_url: str | None = None  # default: a local folder under data_dir; or s3://bucket/prefix
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    public_url: str | None = None  # base URL for signed links; default: the request's own base URL
    allowed_hosts: str | None = None  # without public_url: host names (comma-separated) links may name
    metrics_token: str | None = None  # bearer token for /metrics; without it /metrics answers loopback only
    secret: str | None = None  # signing key for URLs; default: generated once into data_dir
    upload_url_ttl_s: int = 3600
    download_url_ttl_s: int = 3600
    lease_s: float = 30.0
    heartbeat_s: float = 5.0
    max_attempts: int = 3
    retry_backoff_s: float = 2.0
    poll_interval_s: int = 2
    draft_ttl_s: int = 24 * 3600
    idempotency_ttl_s: int = 24 * 3600
    job_timeout_s: float = 3600.0
    dev_account_credits: int = 600
    probe_slots: int = 2  # uploads probed at once per API process (each in a child process)
    probe_wait_s: float = 30.0  # longer than this for a slot: 503 validation_busy
    models_dir: Path | None = None  # model files the wheels lack (`mocapd models fetch`); default <data_dir>/models
    rate_limit_rps: float | None = None  # every key's budget (burst twice that; 0 = off); None: the plan's
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"  # seconds before each retry
    webhook_allow_private: bool = False  # let webhooks reach private, loopback addresses and plain http
    webhook_disable_after_s: float = 5 * 86400.0  # an endpoint failing every delivery this long is disabled

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mocapd.sqlite3').resolve()}"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'objects').resolve()}"

    @property
    def embedded(self) -> bool:
        """The embedded default: a SQLite file and a local folder, one machine. Otherwise (PostgreSQL or
        S3 configured) processes on several machines share the state, and must share MOCAPD_SECRET."""
        return self.resolved_database_url.startswith("sqlite") and not self.resolved_storage_url.startswith("s3:")

    def signing_secret(self) -> bytes:
        """The URL-signing key: MOCAPD_SECRET, else one generated once and kept in the data directory."""
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(secrets.token_hex(32))
            try:
                os.link(tmp, path)  # atomic create-if-absent: two processes agree on one secret
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text().strip().encode()



_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "data_dir": ("MOCAPD_DATA_DIR", Path),
    "models_dir": ("MOCAPD_MODELS_DIR", Path),
    "database_url": ("MOCAPD_DATABASE_URL", str),
    "storage_url": ("MOCAPD_STORAGE_URL", str),
    "s3_endpoint_url": ("MOCAPD_S3_ENDPOINT_URL", str),
    "s3_region": ("MOCAPD_S3_REGION", str),
    "public_url": ("MOCAPD_PUBLIC_URL", str),
    "allowed_hosts": ("MOCAPD_ALLOWED_HOSTS", str),
    "metrics_token": ("MOCAPD_METRICS_TOKEN", str),
    "secret": ("MOCAPD_SECRET", str),
    "upload_url_ttl_s": ("MOCAPD_UPLOAD_URL_TTL", int),
    "download_url_ttl_s": ("MOCAPD_DOWNLOAD_URL_TTL", int),
    "lease_s": ("MOCAPD_LEASE_SECONDS", float),
    "heartbeat_s": ("MOCAPD_HEARTBEAT_SECONDS", float),
    "max_attempts": ("MOCAPD_MAX_ATTEMPTS", int),
    "retry_backoff_s": ("MOCAPD_RETRY_BACKOFF_SECONDS", float),
    "poll_interval_s": ("MOCAPD_POLL_INTERVAL", int),
    "draft_ttl_s": ("MOCAPD_DRAFT_TTL", int),
    "job_timeout_s": ("MOCAPD_JOB_TIMEOUT", float),
    "dev_account_credits": ("MOCAPD_DEV_CREDITS", int),
    "probe_slots": ("MOCAPD_PROBE_SLOTS", int),
    "probe_wait_s": ("MOCAPD_PROBE_WAIT_SECONDS", float),
    "rate_limit_rps": ("MOCAPD_RATE_LIMIT", float),
    "webhook_retry_schedule": ("MOCAPD_WEBHOOK_RETRY_SCHEDULE", str),
    "webhook_allow_private": ("MOCAPD_WEBHOOK_ALLOW_PRIVATE", lambda v: v.strip().lower() in ("1", "true", "yes")),
    "webhook_disable_after_s": ("MOCAPD_WEBHOOK_DISABLE_AFTER", float),
}


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, then explicit overrides (flags) on top."""
    kw: dict[str, object] = {}
    for name, (var, conv) in _ENV.items():
        raw = os.environ.get(var)
        if raw not in (None, ""):
            kw[name] = conv(raw)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**kw)  # type: ignore[arg-type]
