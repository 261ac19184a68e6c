"""SQLAlchemy 2 models: one schema for SQLite and PostgreSQL (migrations in db/migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Account",
    "ApiKey",
    "Artifact",
    "Avatar",
    "Base",
    "IdempotencyRecord",
    "Job",
    "JobEvent",
    "LedgerEntry",
    "Plan",
    "TusUpload",
    "StudioSession",
    "UTCDateTime",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookMessage",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Plan(Base):
    __tablename__ = "plans"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    max_active_jobs: Mapped[int] = mapped_column(Integer)
    max_duration_s: Mapped[float] = mapped_column(Float)
    max_file_bytes: Mapped[int] = mapped_column(BigInteger)
    allowed_targets: Mapped[list[str]] = mapped_column(JSON)  # ["*"] means every enabled target
    retention_days: Mapped[int] = mapped_column(Integer)
    queue_weight: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    rate_limit_rps: Mapped[float] = mapped_column(Float, default=20.0, server_default="20")
    rate_limit_burst: Mapped[int] = mapped_column(Integer, default=40, server_default="40")


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    plan_name: Mapped[str] = mapped_column(ForeignKey("plans.name"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the request budget's token bucket (mocapd.db.ratelimit): tokens left at rl_at (unix seconds)
    rl_tokens: Mapped[float | None] = mapped_column(Float, nullable=True)
    rl_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Job(Base):
    """A job row is also its queue entry (claim/lease columns at the bottom)."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16), default="api")
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(24))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # request settings
    target_ids: Mapped[list[str]] = mapped_column(JSON)
    export_fps: Mapped[int] = mapped_column(Integer)
    mocap_type: Mapped[str] = mapped_column(String(16))
    model_quality: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    hand_tracking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    trim_start_s: Mapped[float] = mapped_column(Float, default=0.0)
    trim_end_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    focal_length_px: Mapped[float | None] = mapped_column(Float, nullable=True)
    camera_fov_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    subject_height_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    # source: the client's claims, then the facts
    source_filename: Mapped[str] = mapped_column(String(255))
    source_key: Mapped[str] = mapped_column(String(255))
    claimed_duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    claimed_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    claimed_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    upload_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    upload_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_facts: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    max_upload_bytes: Mapped[int] = mapped_column(BigInteger)
    # billing (mirrors the ledger for display; the ledger is the record)
    billed_seconds: Mapped[int] = mapped_column(Integer, default=0)
    held_credits: Mapped[int] = mapped_column(Integer, default=0)
    charged_credits: Mapped[int] = mapped_column(Integer, default=0)
    refunded_credits: Mapped[int] = mapped_column(Integer, default=0)
    # error
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_stage: Mapped[str | None] = mapped_column(String(24), nullable=True)
    # timing
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    # queue: weight then age decides the claim order; the lease fences every worker write
    queue_weight: Mapped[int] = mapped_column(Integer, default=1)
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # provenance: "upload" (a video sent by the client) or "reexport" (the parent job's stored motion)
    source_type: Mapped[str] = mapped_column(String(16), default="upload", server_default="upload")
    parent_job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)

    __table_args__ = (
        Index("ix_jobs_account_created", "account_id", "created_at", "id"),
        Index("ix_jobs_claim", "status", "queue_weight", "queued_at"),
        Index("ix_jobs_lease", "status", "lease_expires_at"),
    )


class JobEvent(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(24))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)


class LedgerEntry(Base):
    """Append-only. ``entry_key`` is unique: ``hold:<job>`` and ``settle:<job>`` (shared by capture
    and release, so a hold can be settled exactly once, one way)."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    entry_key: Mapped[str | None] = mapped_column(String(120), unique=True, nullable=True)
    lease_token: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (Index("ix_ledger_account_channel", "account_id", "channel", "id"),)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_progress | done
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Artifact(Base):
    __tablename__ = "artifacts"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    object_key: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(80))
    target_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TusUpload(Base):
    """The one resumable (tus) upload of a draft job: its declared length, the committed offset (bytes
    durable in the store), where the bytes are (``store_state``, the store's own bookkeeping) and the
    fenced lock one PATCH at a time holds."""

    __tablename__ = "tus_uploads"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    upload_id: Mapped[str] = mapped_column(String(40), unique=True)
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    upload_metadata: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    store_state: Mapped[dict[str, object]] = mapped_column(JSON)
    lock_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StudioSession(Base):
    """A Studio sign-in: an API key exchanged for a cookie. Only hashes are stored (the cookie's
    token); signing out or revoking the key ends it."""

    __tablename__ = "studio_sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Avatar(Base):
    """A user's rigged character (SPEC 12): the upload, then the prepared rig and its facts."""

    __tablename__ = "avatars"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # draft | preparing | ready | failed
    source_filename: Mapped[str] = mapped_column(String(255))
    source_key: Mapped[str] = mapped_column(String(255))
    rig_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claimed_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    claimed_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    upload_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    upload_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    max_upload_bytes: Mapped[int] = mapped_column(BigInteger)
    facts: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # while preparing
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_avatars_account_created", "account_id", "created_at", "id"),
        Index("ix_avatars_purge", "purge_after"),
    )


class WebhookEndpoint(Base):
    """An account's webhook receiver. ``secret`` (``whsec_<base64>``) signs every message sent to it."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)  # event types, or ["*"]
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    secret: Mapped[str] = mapped_column(String(120))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookMessage(Base):
    """One event, written in the transaction of the change it reports (the outbox). ``id`` is the
    ``webhook-id`` of every delivery of it; ``body`` the exact bytes sent (signed as they are)."""

    __tablename__ = "webhook_messages"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One message to one endpoint: pending until a 2xx (succeeded) or the retry schedule runs out
    (failed). A dispatcher claims it by moving ``next_attempt_at`` past its lease and bumping
    ``lease_token``; its result is written only under that token."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # attempts started
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at", "id"),
    )
