"""The avatar API's operations (SPEC 12), HTTP-free, called by `routes_avatars`.

Upload, idempotency, tenant and error rules are the jobs': a signed (or presigned) PUT, an optional
Idempotency-Key on create, another account's avatar is 404, bad input a specific code. Preparing
(complete-upload) parses the model with `mocapd.avatars.prepare`, which is file parsing and geometry,
no motion code, in a child process with memory and time limits; the API runs it in its threadpool.
A failed preparation keeps nothing but the record and its error; the upload is deleted.

Files: ``avatars/{id}/source`` (the upload) and ``avatars/{id}/rig.npz`` (the prepared rig). A job
that names ``avatar:{id}`` gets a copy of the prepared rig and mapping at creation
(``jobs/{job}/inputs/avatar_{id}.*``), so editing or deleting the avatar later changes no job already
made, and the job's retention removes its copy with its other files.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mocapd.api.reads import _cursor_time, decode_cursor, encode_cursor
from mocapd.api.service import clean_filename, fingerprint
from mocapd.api.state import AppState
from mocapd.db.accounts import plan_limits
from mocapd.db.models import Account, Avatar, IdempotencyRecord, Plan
from mocapd.domain.codes import code_info
from mocapd.domain.plans import PlanLimits
from mocapd.domain.uploads import UploadRules
from mocapd.errors import MocapdError
from mocapd.storage import TooLarge

__all__ = ["AvatarService", "avatar_input_keys", "avatar_upload_rules", "snapshot_avatars"]

_ID = re.compile(r"^av_[0-9a-f]{24}$")
PREPARE_LOCK_S = 300
_ACCEPTED_EXT = (".fbx", ".glb", ".gltf", ".vrm")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def avatar_source_key(avatar_id: str) -> str:
    return f"avatars/{avatar_id}/source"


def avatar_rig_key(avatar_id: str) -> str:
    return f"avatars/{avatar_id}/rig.npz"


def avatar_input_keys(job_id: str, avatar_id: str) -> tuple[str, str]:
    """Where a job keeps its copy of an avatar: (rig, mapping JSON)."""
    return f"jobs/{job_id}/inputs/avatar_{avatar_id}.npz", f"jobs/{job_id}/inputs/avatar_{avatar_id}.json"


def avatar_upload_rules(av: Avatar, *, stage: str | None = None) -> UploadRules:
    """The upload checks for an avatar's file: its plan's limit and the client's claimed size and digest."""
    return UploadRules(av.max_upload_bytes, av.claimed_bytes, av.claimed_sha256, stage=stage,
                       limit_code="avatar_file_size_limit_exceeded")


def _not_found(avatar_id: str) -> MocapdError:
    return MocapdError("avatar_not_found", f"No avatar {avatar_id[:64]!r} in this account.")


def avatar_dict(av: Avatar) -> dict[str, Any]:
    facts = dict(av.facts or {})
    error = None
    if av.error_code:
        info = code_info(av.error_code)
        error = {"type": f"https://mocapd.dev/problems/{av.error_code}", "title": info.title,
                 "status": info.http_status, "detail": av.error_message, "code": av.error_code}
    return {
        "avatarId": av.id,
        "name": av.name,
        "status": "draft" if av.status == "preparing" else av.status,
        "format": facts.get("format"),
        "sourceFilename": av.source_filename,
        "bones": facts.get("bones"),
        "heightM": facts.get("heightM"),
        "restPose": facts.get("restPose"),
        "mapping": facts.get("mapping", {}),
        "unmapped": facts.get("unmapped", []),
        "fingers": facts.get("fingers"),
        "warnings": facts.get("warnings", []),
        "error": error,
        "createdAt": _iso(av.created_at),
        "updatedAt": _iso(av.updated_at),
    }


class AvatarService:
    def __init__(self, state: AppState, base_url: str) -> None:
        self.state = state
        self.settings = state.settings
        self.base_url = base_url

    # ------------------------------------------------------------------ helpers
    def _plan(self, s: Session, account_id: str) -> PlanLimits:
        acct = s.get(Account, account_id)
        assert acct is not None
        plan = s.get(Plan, acct.plan_name)
        assert plan is not None
        return plan_limits(plan)

    def _avatar(self, s: Session, account_id: str, avatar_id: str, *, lock: bool = False) -> Avatar:
        av = s.get(Avatar, avatar_id, with_for_update=lock) if _ID.match(avatar_id) else None
        if av is None or av.account_id != account_id or av.status == "deleted":
            raise _not_found(avatar_id)
        return av

    def upload_url(self, av: Avatar) -> tuple[str, str]:
        """The store's presigned PUT where it presigns, else the API's signed PUT (as for a job's source)."""
        ttl_s = self.settings.upload_url_ttl_s
        exp = int(_now().timestamp()) + ttl_s
        url = self.state.store.upload_url(av.source_key, ttl_s, content_length=av.claimed_bytes)
        if url is None:
            exp, sig = self.state.signer.sign("upload", "avatar:" + av.id, av.source_key, ttl_s)
            url = f"{self.base_url}/uploads/avatars/{av.id}?expires={exp}&signature={sig}"
        return url, _iso(datetime.fromtimestamp(exp, UTC))

    # ------------------------------------------------------------------ create
    def create(self, account_id: str, body: dict[str, Any], raw: dict[str, Any], idem_key: str | None) -> tuple[int, dict[str, Any], bool]:
        if idem_key is not None:
            from mocapd.api.service import JobService

            idem_key = idem_key.strip().strip('"')
            if not (1 <= len(idem_key) <= 255):
                raise MocapdError("validation_error", "Idempotency-Key must be 1 to 255 characters.", stage="create")
            replay = JobService(self.state, self.base_url)._idem_begin(account_id, "avatar:" + idem_key, fingerprint(raw))
            if replay is not None:
                out = dict(replay.body)
                with self.state.db.read() as s:
                    av = s.get(Avatar, str(out.get("avatarId", "")))
                    if av is not None and av.status == "draft":
                        out["uploadUrl"], out["uploadUrlExpiresAt"] = self.upload_url(av)
                return replay.status_code, out, True
        try:
            with self.state.db.write() as s:
                out = self._create_in(s, account_id, body)
                if idem_key is not None:
                    rec = s.get(IdempotencyRecord, (account_id, "avatar:" + idem_key))
                    if rec is not None:
                        rec.state, rec.response_status, rec.response_body = "done", 201, out
        except MocapdError:
            if idem_key is not None:
                with self.state.db.write() as s:
                    rec = s.get(IdempotencyRecord, (account_id, "avatar:" + idem_key))
                    if rec is not None and rec.state == "in_progress":
                        s.delete(rec)
            raise
        return 201, out, False

    def _create_in(self, s: Session, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        plan = self._plan(s, account_id)
        name = str(body["name"]).strip()
        if not name:
            raise MocapdError("validation_error", "name must not be empty.", stage="create")
        filename = clean_filename(str(body["sourceFilename"]))
        ext = Path(filename).suffix.lower()
        if ext not in _ACCEPTED_EXT:
            raise MocapdError("avatar_format_unsupported",
                              f"'{ext or filename}' files are not supported; upload FBX, glTF (.glb, .gltf) or VRM.",
                              stage="create")
        claimed = body.get("sourceBytes")
        if claimed is not None:
            if claimed <= 0:
                raise MocapdError("validation_error", "sourceBytes must be greater than 0.", stage="create")
            if claimed > plan.max_avatar_bytes:
                raise MocapdError("avatar_file_size_limit_exceeded",
                                  f"The file is {claimed} bytes; the plan allows {plan.max_avatar_bytes}.",
                                  stage="create", details={"limitBytes": plan.max_avatar_bytes})
        now = _now()
        avatar_id = "av_" + secrets.token_hex(12)
        av = Avatar(
            id=avatar_id, account_id=account_id, name=name, status="draft", source_filename=filename,
            source_key=avatar_source_key(avatar_id), claimed_bytes=claimed,
            claimed_sha256=(body.get("sourceSha256") or None) and str(body["sourceSha256"]).lower(),
            max_upload_bytes=plan.max_avatar_bytes, created_at=now, updated_at=now,
            purge_after=now + timedelta(seconds=self.settings.draft_ttl_s),
        )
        s.add(av)
        url, exp = self.upload_url(av)
        return {"avatarId": avatar_id, "status": "draft", "uploadUrl": url, "uploadUrlExpiresAt": exp,
                "maxUploadBytes": plan.max_avatar_bytes}

    # ------------------------------------------------------------------ upload (local store)
    def upload_target(self, avatar_id: str) -> Avatar:
        with self.state.db.read() as s:
            av = s.get(Avatar, avatar_id) if _ID.match(avatar_id) else None
            if av is None:
                raise MocapdError("upload_url_invalid", "The upload link does not name an avatar.")
            if av.status != "draft":
                raise MocapdError("avatar_not_awaiting_upload", f"The avatar is {avatar_dict(av)['status']}; it takes no upload.")
            return av

    def record_upload(self, avatar_id: str, nbytes: int, sha256: str) -> None:
        with self.state.db.write() as s:
            av = s.get(Avatar, avatar_id)
            assert av is not None
            if av.status != "draft":
                raise MocapdError("avatar_not_awaiting_upload", "The avatar was prepared while uploading.")
            av.upload_bytes, av.upload_sha256, av.updated_at = nbytes, sha256, _now()

    # ------------------------------------------------------------------ complete-upload: prepare
    def complete(self, account_id: str, avatar_id: str) -> dict[str, Any]:
        now = _now()
        with self.state.db.write() as s:
            av = self._avatar(s, account_id, avatar_id, lock=True)
            if av.status in ("ready", "failed"):
                return avatar_dict(av)  # idempotent
            if av.status == "preparing" and av.locked_until is not None and av.locked_until > now:
                return avatar_dict(av)  # another call is preparing it: poll GET
            av.status, av.locked_until, av.updated_at = "preparing", now + timedelta(seconds=PREPARE_LOCK_S), now
        try:
            facts = self._prepare(av)
        except MocapdError as exc:
            with self.state.db.write() as s:
                av = self._avatar(s, account_id, avatar_id, lock=True)
                if exc.code in ("upload_missing", "upload_size_mismatch", "upload_checksum_mismatch"):
                    av.status, av.locked_until = "draft", None  # upload again, then complete again
                else:
                    plan = self._plan(s, account_id)
                    av.status, av.error_code, av.error_message = "failed", exc.code, exc.message
                    av.locked_until = None
                    av.purge_after = _now() + timedelta(days=plan.retention_days)
                    self.state.store.delete(av.source_key)  # nothing half-made is kept
                    _avatar_event(s, av, "avatar.failed")
                av.updated_at = _now()
            raise
        with self.state.db.write() as s:
            av = self._avatar(s, account_id, avatar_id, lock=True)
            av.status, av.facts, av.rig_key, av.locked_until = "ready", facts, avatar_rig_key(av.id), None
            av.purge_after, av.updated_at = None, _now()
            _avatar_event(s, av, "avatar.ready")
            return avatar_dict(av)

    def _prepare(self, av: Avatar) -> dict[str, Any]:
        from mocapd.avatars.prepare import prepare_file

        store = self.state.store
        rules = avatar_upload_rules(av, stage="validation")
        size = store.size(av.source_key)
        if size is None:
            raise MocapdError("upload_missing", "Nothing has been uploaded for this avatar.", stage="validation")
        with tempfile.TemporaryDirectory(prefix="mocapd-avatar-") as tmp, contextlib.ExitStack() as stack:
            try:
                rules.check_limit(size)
                # one read of the object gives the bytes, their size and their SHA-256
                copy = stack.enter_context(store.local_copy(av.source_key, max_bytes=av.max_upload_bytes))
            except TooLarge as exc:
                store.delete(av.source_key)  # never keep (or pay for) an object past the plan's limit
                raise rules.too_large() from exc
            except MocapdError as exc:
                if exc.code == rules.limit_code:
                    store.delete(av.source_key)
                raise
            rules.check_received(copy.bytes, copy.sha256)
            src = copy.path
            rig_path = Path(tmp) / "rig.npz"
            facts = prepare_file(Path(src), av.source_filename, rig_path)
            store.put_file(avatar_rig_key(av.id), rig_path, "application/octet-stream")
        return facts

    # ------------------------------------------------------------------ reads
    def get(self, account_id: str, avatar_id: str) -> dict[str, Any]:
        with self.state.db.read() as s:
            return avatar_dict(self._avatar(s, account_id, avatar_id))

    def page(self, account_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        with self.state.db.read() as s:
            q = select(Avatar).where(Avatar.account_id == account_id, Avatar.status != "deleted")
            if cursor:
                created, avatar_id = decode_cursor(cursor, 2)
                ts = _cursor_time(created)
                if not _ID.match(avatar_id):
                    raise MocapdError("validation_error", "The cursor is not valid.", details={"field": "cursor"})
                q = q.where((Avatar.created_at < ts) | ((Avatar.created_at == ts) & (Avatar.id < avatar_id)))
            rows = list(s.scalars(q.order_by(Avatar.created_at.desc(), Avatar.id.desc()).limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
            nxt = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
            return {"items": [avatar_dict(a) for a in rows], "nextCursor": nxt}

    # ------------------------------------------------------------------ patch, delete
    def patch(self, account_id: str, avatar_id: str, name: str | None, mapping: dict[str, str] | None) -> dict[str, Any]:
        rig_bytes = None
        if mapping is not None:
            with self.state.db.read() as s:
                av = self._avatar(s, account_id, avatar_id)
                if av.status != "ready" or av.rig_key is None:
                    raise MocapdError("avatar_not_ready", "Only a ready avatar's mapping can be changed.")
                rig_key = av.rig_key
            with tempfile.TemporaryDirectory(prefix="mocapd-avatar-") as tmp:
                path = Path(tmp) / "rig.npz"
                self.state.store.download_to(rig_key, path)
                rig_bytes = path.read_bytes()
        with self.state.db.write() as s:
            av = self._avatar(s, account_id, avatar_id, lock=True)
            if name is not None:
                if not name.strip():
                    raise MocapdError("validation_error", "name must not be empty.")
                av.name = name.strip()
            if mapping is not None and rig_bytes is not None:
                from mocapd.avatars.prepare import remap

                facts = dict(av.facts or {})
                facts.update(remap(rig_bytes, mapping))
                facts["mappingMethod"] = "user"
                av.facts = facts
            av.updated_at = _now()
            return avatar_dict(av)

    def delete(self, account_id: str, avatar_id: str) -> None:
        """Delete the files at once; the record stays (status ``deleted``, invisible) for the plan's
        retention so that a new job naming it is told the target is gone, then housekeeping drops it."""
        with self.state.db.write() as s:
            av = self._avatar(s, account_id, avatar_id, lock=True)
            plan = self._plan(s, account_id)
            av.status, av.rig_key, av.locked_until, av.updated_at = "deleted", None, None, _now()
            av.purge_after = _now() + timedelta(days=plan.retention_days)
        self.state.store.delete_prefix(f"avatars/{avatar_id}/")


def _avatar_event(s: Session, av: Avatar, kind: str) -> None:
    """The avatar.ready / avatar.failed webhook event (SPEC 13), written in the caller's transaction
    through the webhook outbox's ``enqueue_event`` where the build has it."""
    try:
        from mocapd.db.outbox import enqueue_event  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # a build without webhooks
        return
    enqueue_event(s, av.account_id, kind, {"avatar": avatar_dict(av)})


def snapshot_avatars(state: AppState, s: Session, account_id: str, job_id: str, target_ids: list[str]) -> None:
    """Check every ``avatar:{id}`` target (this account's, ready) and copy its prepared rig and mapping
    into the job's inputs. Another account's or an unknown avatar is 404; one that is not ready (or
    was deleted) makes the target unavailable."""
    for target in target_ids:
        kind, _, ref = target.partition(":")
        if kind != "avatar":
            continue
        av = s.get(Avatar, ref) if _ID.match(ref) else None
        if av is None or av.account_id != account_id:
            raise MocapdError("avatar_not_found", f"No avatar {ref[:64]!r} in this account.", stage="create",
                              details={"targetId": target})
        if av.status != "ready" or av.rig_key is None:
            state_word = "deleted" if av.status == "deleted" else avatar_dict(av)["status"]
            raise MocapdError("api_target_unsupported", f"Avatar {ref} is {state_word}, not ready.",
                              stage="create", details={"targetId": target})
        rig_key, json_key = avatar_input_keys(job_id, ref)
        with tempfile.TemporaryDirectory(prefix="mocapd-avatar-") as tmp:
            rig = Path(tmp) / "rig.npz"
            state.store.download_to(av.rig_key, rig)
            state.store.put_file(rig_key, rig, "application/octet-stream")
            meta = Path(tmp) / "avatar.json"
            facts = dict(av.facts or {})
            meta.write_text(json.dumps({"avatarId": av.id, "name": av.name, "mapping": facts.get("mapping", {}),
                                        "heightM": facts.get("heightM")}))
            state.store.put_file(json_key, meta, "application/json")
