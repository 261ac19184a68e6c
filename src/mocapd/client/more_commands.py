"""Client commands beyond a video job: ``mocapd avatars ...`` (a user's own rigged character, SPEC
section 12) and ``mocapd export`` (a re-export of a completed job from its stored motion, section 14).

Same conventions as `mocapd.client.commands`: ``--json`` for scripts, progress and errors on standard
error, the exit codes of `mocapd.client.errors`. A call that fails in transit or with a retryable
answer is sent again (with its ``Idempotency-Key`` where it creates something) until ``--give-up-after``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mocapd.client.commands import (
    DEFAULT_URL,
    ApiKey,
    Download,
    GiveUp,
    JsonOut,
    OutDir,
    StateDir,
    Timeout,
    Url,
    _call,
    _drive_job,
    _emit,
    rejected,
)
from mocapd.client.errors import ApiError, ServerUnreachable, TransportError
from mocapd.client.records import RecordStage, ResumeRecord
from mocapd.client.retry import RetryPolicy

if TYPE_CHECKING:
    from mocapd.client.flow import JobRunner

__all__ = ["avatars_app", "export", "register_more_commands"]

T = TypeVar("T")

avatars_app = typer.Typer(help="Your own rigged characters (FBX, glTF/GLB, VRM) as job targets: avatar:<avatarId>.",
                          no_args_is_help=True)


def _again(what: str, fn: Callable[[], T], give_up_s: float) -> T:
    """``fn()``, repeated while it fails in a way that is safe to repeat (backoff, at least Retry-After)."""
    policy, rng, t0, attempt = RetryPolicy(give_up_after_s=give_up_s), random.Random(), time.monotonic(), 0
    while True:
        try:
            return fn()
        except TransportError as exc:
            if not exc.retry_safe:
                raise
            if time.monotonic() - t0 > give_up_s:
                raise ServerUnreachable(f"{what}: gave up after {give_up_s:g} s: {exc.message}") from exc
            hint = exc.retry_after_s
        except ApiError as exc:
            if not (exc.retryable or exc.status == 429) or time.monotonic() - t0 > give_up_s:
                raise
            hint = exc.retry_after_s
        time.sleep(policy.backoff_s(attempt, hint, rng))
        attempt += 1


def _print_avatar(av: dict[str, Any], *, mapping: bool = False) -> None:
    height = av.get("heightM")
    size = f", {height:.2f} m" if isinstance(height, int | float) else ""
    print(f"{av['avatarId']}  {av['status']:<6} {av.get('name') or ''}  ({av.get('format') or '?'}, "
          f"{av.get('bones') or 0} bones{size}, rest pose {av.get('restPose') or '?'}"
          f"{', fingers' if av.get('fingers') else ''})")
    if av.get("error"):
        err = av["error"]
        print(f"  error {err.get('code')}: {err.get('detail')}")
    for w in av.get("warnings") or []:
        print(f"  warning: {w}")
    if mapping:
        for bone, theirs in sorted((av.get("mapping") or {}).items()):
            print(f"  {bone:<14} -> {theirs}")
        if av.get("unmapped"):
            print(f"  unmapped: {', '.join(av['unmapped'])}")
    if av.get("status") == "ready":
        print(f"  use it with: --target avatar:{av['avatarId']}")


@avatars_app.command("upload")
def upload(
    model: Annotated[Path, typer.Argument(help="The character: .fbx, .glb, .gltf (embedded buffers) or .vrm.",
                                          exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option("--name", help="A name for it (default: the file's name).")] = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 120.0,
    give_up_s: GiveUp = 600.0,
) -> None:
    """Upload a rigged character and prepare it: skeleton, mesh, skin, units, rest pose and the bone mapping."""
    from mocapd.client.flow import sha256_file

    nbytes, digest = sha256_file(model)
    body = {"name": name or model.stem, "sourceFilename": model.name, "sourceBytes": nbytes, "sourceSha256": digest}
    key = uuid.uuid4().hex

    def send(client: Any) -> dict[str, Any]:
        draft = _again("create", lambda: client.create_avatar(body, key), give_up_s).data
        _again("upload", lambda: client.upload(draft["uploadUrl"], model), give_up_s)
        return dict(_again("prepare", lambda: client.complete_avatar_upload(draft["avatarId"]), give_up_s).data)

    av = _call(url, api_key, timeout_s, as_json, send)
    _emit(as_json, {"ok": True, "avatar": av}, lambda: _print_avatar(av, mapping=True))


@avatars_app.command("list")
def list_avatars(
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
) -> None:
    """The account's characters, newest first."""

    def every(client: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = client.list_avatars(limit=200, cursor=cursor).data
            items += page.get("items", [])
            cursor = page.get("nextCursor")
            if not cursor:
                return items

    items = _call(url, api_key, timeout_s, as_json, every)

    def human() -> None:
        for av in items:
            _print_avatar(av)
        if not items:
            print("no avatars")

    _emit(as_json, {"ok": True, "items": items}, human)


@avatars_app.command("show")
def show(
    avatar: Annotated[str, typer.Argument(help="The avatar id (av_...).")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
) -> None:
    """One character with its bone mapping (default bone -> your bone) and what could not be mapped."""
    av = _call(url, api_key, timeout_s, as_json, lambda c: c.get_avatar(avatar).data)
    _emit(as_json, {"ok": True, "avatar": av}, lambda: _print_avatar(av, mapping=True))


def _parse_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        bone, sep, theirs = pair.partition("=")
        if not sep or not bone.strip() or not theirs.strip():
            raise typer.BadParameter(f"{pair!r}: use DEFAULT_BONE=YOUR_BONE, e.g. upperarm_l=LeftArm")
        out[bone.strip()] = theirs.strip()
    return out


@avatars_app.command("map")
def remap(
    avatar: Annotated[str, typer.Argument(help="The avatar id (av_...).")],
    pairs: Annotated[list[str], typer.Argument(help="Corrections: DEFAULT_BONE=YOUR_BONE (e.g. upperarm_l=LeftArm).")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
) -> None:
    """Correct the automatic bone mapping (the rest of it stays); the whole mapping is checked again.

    A bone mapped twice, a child mapped above its parent or a required bone left out is refused."""
    fixes = _parse_pairs(pairs)

    def patch(client: Any) -> dict[str, Any]:
        current = client.get_avatar(avatar).data
        return dict(client.update_avatar(avatar, mapping={**(current.get("mapping") or {}), **fixes}).data)

    av = _call(url, api_key, timeout_s, as_json, patch)
    _emit(as_json, {"ok": True, "avatar": av}, lambda: _print_avatar(av, mapping=True))


@avatars_app.command("delete")
def delete(
    avatar: Annotated[str, typer.Argument(help="The avatar id (av_...).")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
) -> None:
    """Delete a character's files; new jobs can no longer use it (finished jobs keep theirs)."""
    _call(url, api_key, timeout_s, as_json, lambda c: c.delete_avatar(avatar))
    _emit(as_json, {"ok": True, "avatarId": avatar}, lambda: print(f"{avatar}: deleted"))


def export(
    job: Annotated[str, typer.Argument(help="A completed job's id.")],
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="Target (repeatable): default, unitree_g1, avatar:<avatarId> (default: the job's).")] = None,
    fps: Annotated[int | None, typer.Option("--fps", help="Export frame rate: 24, 30, 60 or 120 (default: the job's).")] = None,
    mocap_type: Annotated[str | None, typer.Option("--mocap-type", help="full_body or upper_body (default: the job's).")] = None,
    out: OutDir = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the result (or stop once queued).")] = True,
    download: Download = True,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    state_dir: StateDir = None,
    as_json: JsonOut = False,
    timeout_s: Timeout = 30.0,
    give_up_s: GiveUp = 600.0,
) -> None:
    """Re-export a completed job from its stored motion: another frame rate, target or avatar, no new detection.

    The re-export is a new job (its own id, the parent's id in parentJobId), waited for and downloaded
    like `mocapd submit`; `mocapd resume` continues it after an interruption."""
    body: dict[str, Any] = {}
    if fps is not None:
        body["exportFps"] = fps
    if target:
        body["targetIds"] = list(target)
    if mocap_type is not None:
        body["mocapType"] = mocap_type
    key = uuid.uuid4().hex

    def drive(runner: JobRunner, keep: Callable[[ResumeRecord], None]) -> ResumeRecord:
        try:
            data = _again("export", lambda: runner.client.create_export(job, body, key), give_up_s).data
        except ApiError as exc:
            raise rejected(exc) from exc
        child = data["job"]
        record = ResumeRecord(
            record_id=ResumeRecord.new_id(), base_url=runner.client.base_url, idempotency_key=key, request=body,
            source_path="", source_bytes=0, source_sha256="",
            out_dir=str(out.resolve()) if out is not None else "", work_dir=str(Path.cwd()),
            stage=RecordStage.ADMITTED, job_id=child["id"], job_status=child.get("status"),
            job_stage=child.get("stage"), download=download,
        )
        runner.records.save(record)  # from here `mocapd resume` continues it like any job
        keep(record)
        return runner.run(record, wait=wait)

    _drive_job(drive, url=url, api_key=api_key, state_dir=state_dir, timeout_s=timeout_s, give_up_s=give_up_s,
               as_json=as_json, label=job, extra={"parentJobId": job})


def register_more_commands(app: typer.Typer) -> None:
    """Add ``avatars`` (upload, list, show, map, delete) and ``export`` to the `mocapd` Typer app."""
    app.add_typer(avatars_app, name="avatars")
    app.command("export")(export)
