"""The target and artifact catalogue: what a job can be asked for and which files it delivers.

One entry per target kind: its result type and URL field on the wire (SPEC 2.5), and its files, each
with a name, a content type and the writer that makes it (`mocapd.formats.writers`). A target id is the
kind's id (``default``, ``unitree_g1``) or, for a kind with a reference, ``kind:ref`` (``avatar:av_1``),
whose file names carry the reference (``avatar_av_1.fbx``). Besides the targets' files a job delivers
the job-wide files of `JOB_FILES` (preview, quality report, manifest).

Everything that names a target or an artifact reads this module: plans and admission (which targets
exist), the API's result (result type, URL fields), the worker (which files to write, their target and
content type) and the writers. Adding a format is one `FileSpec` here plus one writer; adding a target
kind is one `TargetKind` here plus what produces its motion.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_TARGET",
    "JOB_FILES",
    "MANIFEST_FILE",
    "PREVIEW_FILE",
    "QUALITY_FILE",
    "TARGET_KINDS",
    "FileSpec",
    "JobFile",
    "Target",
    "TargetKind",
    "describe_file",
    "enabled_target_ids",
    "produced_targets",
    "resolve_target",
]

OCTET_STREAM = "application/octet-stream"
JSON = "application/json"


@dataclass(frozen=True)
class FileSpec:
    """One file of a target: ``name`` may hold ``{ref}``, the target's reference."""

    name: str
    content_type: str
    writer: str  # a key of `mocapd.formats.writers.WRITERS`


@dataclass(frozen=True)
class TargetKind:
    id: str  # the target id, or its prefix before ":" when ``has_ref``
    result_type: str  # the output's ``resultType``
    url_field: str  # the output's URL field, pointing at the first file
    files: tuple[FileSpec, ...]
    has_ref: bool = False  # target ids are ``{id}:{ref}``
    enabled: bool = True  # accepted at admission
    always_produced: bool = False  # delivered whichever targets a job names (the motion others derive from)


@dataclass(frozen=True)
class Target:
    """A target id resolved against the catalogue."""

    id: str
    kind: TargetKind
    ref: str | None = None

    def files(self) -> tuple[FileSpec, ...]:
        """The target's files with their names filled in."""
        return tuple(
            FileSpec(f.name.format(ref=self.ref or ""), f.content_type, f.writer) for f in self.kind.files
        )

    @property
    def main_file(self) -> str:
        """The file the output's URL field points at."""
        return self.files()[0].name


@dataclass(frozen=True)
class JobFile:
    """A job-wide artifact (no target) and the result field carrying its URL."""

    name: str
    content_type: str
    url_field: str


DEFAULT_TARGET = "default"

TARGET_KINDS: dict[str, TargetKind] = {
    k.id: k
    for k in (
        TargetKind(
            "default",
            "fbx",
            "fbxUrl",
            (
                FileSpec("motion.fbx", OCTET_STREAM, "fbx"),
                FileSpec("motion.bvh", "text/plain; charset=utf-8", "bvh"),
                FileSpec("motion.glb", "model/gltf-binary", "glb"),
            ),
            always_produced=True,
        ),
        TargetKind(
            "unitree_g1",
            "robot_motion_json",
            "motionJsonUrl",
            (
                FileSpec("g1_motion.json", JSON, "robot_json"),
                FileSpec("g1_motion.csv", "text/csv; charset=utf-8", "robot_csv"),
            ),
        ),
        TargetKind(  # SPEC 12: a user's prepared avatar, ``avatar:av_...`` (checked against the account at create)
            "avatar",
            "fbx",
            "fbxUrl",
            (
                FileSpec("avatar_{ref}.fbx", OCTET_STREAM, "avatar_fbx"),
                FileSpec("avatar_{ref}.glb", "model/gltf-binary", "avatar_glb"),
            ),
            has_ref=True,
        ),
    )
}

PREVIEW_FILE = JobFile("preview.mp4", "video/mp4", "previewVideoUrl")
QUALITY_FILE = JobFile("quality.json", JSON, "qualityUrl")
MANIFEST_FILE = JobFile("manifest.json", JSON, "manifestUrl")
JOB_FILES: tuple[JobFile, ...] = (PREVIEW_FILE, MANIFEST_FILE, QUALITY_FILE)


def resolve_target(target_id: str) -> Target | None:
    """The catalogue's entry for ``target_id`` (enabled or not), or None for an unknown id."""
    kind_id, sep, ref = target_id.partition(":")
    kind = TARGET_KINDS.get(kind_id)
    if kind is None or kind.has_ref != bool(sep) or (sep and not ref):
        return None
    return Target(target_id, kind, ref or None)


def enabled_target_ids() -> tuple[str, ...]:
    """The target ids without a reference that jobs may ask for, in catalogue order."""
    return tuple(k.id for k in TARGET_KINDS.values() if k.enabled and not k.has_ref)


def produced_targets(target_ids: tuple[str, ...] | list[str]) -> list[Target]:
    """The targets a job with ``target_ids`` delivers, in delivery order: the always-produced kinds
    first (catalogue order), then the job's others in its order. Unknown ids are skipped."""
    out = [Target(k.id, k) for k in TARGET_KINDS.values() if k.always_produced]
    for target_id in target_ids:
        target = resolve_target(target_id)
        if target is not None and target.id not in {t.id for t in out}:
            out.append(target)
    return out


def describe_file(name: str, target_ids: tuple[str, ...] | list[str]) -> tuple[str | None, str]:
    """``(target id, content type)`` of an artifact named ``name`` in a job with ``target_ids``:
    for processors that return bare paths. A name the catalogue does not know has no target and is
    ``application/octet-stream``."""
    for job_file in JOB_FILES:
        if job_file.name == name:
            return None, job_file.content_type
    for target in produced_targets(target_ids):
        for spec in target.files():
            if spec.name == name:
                return target.id, spec.content_type
    return None, OCTET_STREAM
