"""Wire models (camelCase, exactly as SPEC section 2). Requests are validated strictly: a string
where a number belongs, NaN or Infinity is a ``validation_error``; unknown fields are ignored."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

__all__ = [
    "AccountOut",
    "CreateJobIn",
    "CreateJobOut",
    "Envelope",
    "EventOut",
    "JobOut",
    "JobPollOut",
    "LedgerEntryOut",
    "Page",
    "Problem",
    "QuoteOut",
    "ReexportIn",
    "ResultOut",
    "UploadOut",
    "UploadUrlOut",
]

T = TypeVar("T")


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class CreateJobIn(_In):
    title: StrictStr | None = Field(None, max_length=200)
    sourceFilename: StrictStr = Field(..., min_length=1)
    targetIds: list[StrictStr] | None = None
    targetId: StrictStr | None = None
    exportFps: StrictFloat | None = None
    mocapType: StrictStr | None = None
    modelQuality: Literal["standard", "high"] | None = None
    handTracking: StrictBool | None = None
    trimStartSec: StrictFloat | None = None
    trimEndSec: StrictFloat | None = None
    sourceDurationSec: StrictFloat | None = None
    sourceBytes: StrictInt | None = None
    sourceSha256: StrictStr | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    sourceType: StrictStr | None = None
    focalLengthPx: StrictFloat | None = Field(None, gt=0, le=100000)
    cameraFovDeg: StrictFloat | None = Field(None, gt=1, lt=179)
    subjectHeightM: StrictFloat | None = Field(None, gt=0.5, lt=2.8)


class ReexportIn(_In):
    exportFps: StrictFloat | None = None
    targetIds: list[StrictStr] | None = None
    mocapType: StrictStr | None = None


class Envelope(BaseModel, Generic[T]):
    data: T


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    stage: str
    retryable: bool
    retryFrom: str | None = None
    jobId: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class CreateJobOut(_Out):
    jobId: str
    status: Literal["draft"]
    mocapType: str
    exportFps: int
    targetIds: list[str]
    uploadUrl: str
    uploadUrlExpiresAt: str
    tusUploadUrl: str
    sourceKey: str
    maxUploadBytes: int


class UploadUrlOut(_Out):
    jobId: str
    uploadUrl: str
    uploadUrlExpiresAt: str
    tusUploadUrl: str
    maxUploadBytes: int


class QuoteOut(_Out):
    jobId: str
    vCredits: int | None
    channel: str
    durationSec: float | None
    sourceDurationSec: float | None
    trimStartSec: float
    trimEndSec: float | None
    available: int
    admissible: bool
    problems: list[Problem]


class UploadOut(_Out):
    bytes: int
    sha256: str


class SourceOut(_Out):
    filename: str
    bytes: int | None
    sha256: str | None
    durationSec: float | None
    fps: float | None
    width: int | None
    height: int | None


class BillingOut(_Out):
    heldVCredits: int
    chargedVCredits: int
    refundedVCredits: int
    channel: str


class ErrorOut(_Out):
    code: str
    message: str
    stage: str | None
    retryable: bool
    retryFrom: str


class JobOut(_Out):
    id: str
    status: Literal["draft", "queued", "processing", "completed", "failed", "canceled"]
    stage: str
    progress: float
    targetIds: list[str]
    exportFps: int
    mocapType: str
    modelQuality: str
    handTracking: bool
    title: str | None
    source: SourceOut
    trimStartSec: float
    trimEndSec: float | None
    billing: BillingOut
    error: ErrorOut | None
    attempts: int
    createdAt: str
    updatedAt: str
    completedAt: str | None


class EventOut(_Out):
    seq: int
    type: str
    status: str
    stage: str
    progress: float
    message: str | None
    data: dict[str, Any] | None
    createdAt: str


class FileOut(_Out):
    name: str
    url: str
    bytes: int
    sha256: str
    contentType: str


class OutputOut(_Out):
    targetId: str
    resultType: str
    files: list[FileOut]
    fbxUrl: str | None = None
    motionJsonUrl: str | None = None


class ResultOut(_Out):
    jobId: str
    status: str
    job: JobOut
    outputs: list[OutputOut]
    files: list[FileOut]
    previewVideoUrl: str | None
    manifestUrl: str | None
    qualityUrl: str | None
    createdAt: str
    updatedAt: str
    completedAt: str | None


class JobPollOut(_Out):
    job: JobOut
    events: list[EventOut]
    result: ResultOut | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    nextCursor: str | None


class BalanceOut(_Out):
    balance: int
    held: int
    available: int


class AccountOut(_Out):
    account: dict[str, Any]
    plan: str
    limits: dict[str, Any]
    balances: dict[str, BalanceOut]
    activeJobs: int


class LedgerEntryOut(_Out):
    id: str
    type: Literal["grant", "hold", "capture", "release", "expire", "adjust"]
    amount: int
    channel: str
    jobId: str | None
    createdAt: str
    reason: str | None
