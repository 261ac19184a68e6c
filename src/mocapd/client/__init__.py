"""mocapd.client: the Python SDK and the `mocapd` client commands.

``MocapdClient`` is one method per HTTP call; ``JobRunner`` runs a job end to end from a resume record
(``RecordStore``), retrying each stage the way that stage allows. Nothing here imports the pipeline.
"""

from mocapd.client.api import NOT_GIVEN, MocapdClient, NotGiven
from mocapd.client.errors import (
    ApiError,
    ClientError,
    InputRejected,
    IntegrityError,
    JobFailed,
    RecordError,
    ServerUnreachable,
    SourceChanged,
    TransportError,
)
from mocapd.client.flow import JobRequest, JobRunner
from mocapd.client.progress import NullReporter, Reporter, RichReporter
from mocapd.client.records import ArtifactState, RecordStage, RecordStore, ResumeRecord, default_state_dir
from mocapd.client.retry import RetryPolicy

__all__ = [
    "NOT_GIVEN",
    "ApiError",
    "ArtifactState",
    "ClientError",
    "InputRejected",
    "IntegrityError",
    "JobFailed",
    "JobRequest",
    "JobRunner",
    "MocapdClient",
    "NotGiven",
    "NullReporter",
    "RecordError",
    "RecordStage",
    "RecordStore",
    "Reporter",
    "ResumeRecord",
    "RetryPolicy",
    "RichReporter",
    "ServerUnreachable",
    "SourceChanged",
    "TransportError",
    "default_state_dir",
]
