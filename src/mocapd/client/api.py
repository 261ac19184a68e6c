"""`MocapdClient`: one method per HTTP call of the v1 API (SPEC section 2), on an injectable `httpx.Client`.

Every httpx error and every problem+json answer becomes a `ClientError` here, at the border, with
``retry_safe`` set from what the call is: GETs, PUT of the upload, complete-upload and a create that
carries an ``Idempotency-Key`` are safe to repeat; a create without a key is not.
This layer does one request per call; the retry rules per stage live in `mocapd.client.flow`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import httpx

from mocapd.client.errors import ApiError, ClientError, TransportError
from mocapd.client.retry import parse_retry_after

__all__ = ["NOT_GIVEN", "DownloadHead", "MocapdClient", "NotGiven", "Response", "repr_digest_sha256"]

API = "/api/v1"
_TUS = {"Tus-Resumable": "1.0.0"}
_GATEWAY = {502, 503, 504}


class NotGiven:
    """The type of `NOT_GIVEN`: "argument not passed", as opposed to an explicit ``None``."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


@dataclass(frozen=True)
class Response:
    """A successful JSON answer: the ``data`` member plus the headers the flow cares about."""

    status: int
    data: Any
    retry_after_s: float | None
    replayed: bool = False


@dataclass(frozen=True)
class DownloadHead:
    """The head of an artifact download: status (200 or 206), where the body starts and the whole size."""

    status: int
    start: int
    total: int | None
    etag: str | None
    sha256: str | None  # from Repr-Digest (the whole file), else a 64-hex ETag


def repr_digest_sha256(value: str | None) -> str | None:
    """Hex SHA-256 from an RFC 9530 ``Repr-Digest: sha-256=:<base64>:`` header; None if absent."""
    if not value:
        return None
    for item in value.split(","):
        name, _, rest = item.strip().partition("=")
        if name.strip().lower() == "sha-256" and rest.startswith(":") and rest.endswith(":"):
            try:
                raw = base64.b64decode(rest[1:-1], validate=True)
            except ValueError:
                return None
            return raw.hex() if len(raw) == 32 else None
    return None


def _etag_sha256(etag: str | None) -> str | None:
    if not etag:
        return None
    tag = etag.strip().removeprefix("W/").strip('"').lower()
    return tag if len(tag) == 64 and all(c in "0123456789abcdef" for c in tag) else None


class MocapdClient:
    """The mocapd HTTP API. ``http``: an `httpx.Client` to use (tests pass one bound to a fault-injecting
    transport); if not given, one is made with ``timeout_s`` and closed by `close`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        http: httpx.Client | NotGiven = NOT_GIVEN,
        timeout_s: float | NotGiven = NOT_GIVEN,
        user_agent: str = "mocapd-client",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        timeout = 30.0 if isinstance(timeout_s, NotGiven) else float(timeout_s)
        if isinstance(http, NotGiven):
            self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=False)
            self._owns_http = True
        else:
            self._http = http
            self._owns_http = False
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> MocapdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _auth(self) -> dict[str, str]:
        h = dict(self._headers)
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _send(self, method: str, url: str, *, safe: bool, job_id: str | None = None, auth: bool = True,
              **kw: Any) -> httpx.Response:
        headers = {**(self._auth() if auth else self._headers), **kw.pop("headers", {})}
        try:
            return self._http.request(method, self._url(url), headers=headers, **kw)
        except httpx.TimeoutException as exc:
            connect = isinstance(exc, httpx.ConnectTimeout)
            raise TransportError(f"{method} {_short(url)} timed out ({type(exc).__name__})", retry_safe=safe,
                                 maybe_applied=not connect, job_id=job_id) from exc
        except httpx.ConnectError as exc:
            raise TransportError(f"cannot connect to {self.base_url}: {exc}", retry_safe=True, maybe_applied=False,
                                 job_id=job_id) from exc
        except httpx.TransportError as exc:  # dropped connection, protocol error mid-way
            raise TransportError(f"{method} {_short(url)} failed: {type(exc).__name__}: {exc}", retry_safe=safe,
                                 maybe_applied=True, job_id=job_id) from exc

    def _check(self, r: httpx.Response, *, safe: bool, job_id: str | None = None) -> None:
        if r.status_code < 400:
            return
        retry_after = parse_retry_after(r.headers.get("retry-after"))
        body: dict[str, Any] | None = None
        if "json" in r.headers.get("content-type", ""):
            try:
                parsed = json.loads(r.read())
                body = parsed if isinstance(parsed, dict) else None
            except (ValueError, httpx.HTTPError):
                body = None
        if body is None or "code" not in body:
            if r.status_code in _GATEWAY or r.status_code == 429:
                raise TransportError(f"{r.request.method} {_short(str(r.url))}: HTTP {r.status_code}",
                                     retry_safe=safe, maybe_applied=r.status_code == 504, status=r.status_code,
                                     retry_after_s=retry_after, job_id=job_id)
            raise ApiError(r.status_code, f"http_{r.status_code}", r.reason_phrase or "HTTP error", job_id=job_id,
                           retryable=r.status_code >= 500, retry_after_s=retry_after)
        raise ApiError(
            r.status_code, str(body.get("code")), str(body.get("detail") or body.get("title") or ""),
            stage=body.get("stage"), retryable=bool(body.get("retryable")), retry_from=body.get("retryFrom"),
            job_id=body.get("jobId") or job_id, retry_after_s=retry_after, body=body,
        )

    def _json(self, method: str, path: str, *, safe: bool, job_id: str | None = None, auth: bool = True,
              **kw: Any) -> Response:
        r = self._send(method, path, safe=safe, job_id=job_id, auth=auth, **kw)
        self._check(r, safe=safe, job_id=job_id)
        try:
            payload = r.json()
        except ValueError as exc:
            raise TransportError(f"{method} {_short(path)}: the answer is not JSON", retry_safe=safe,
                                 maybe_applied=True, status=r.status_code, job_id=job_id) from exc
        if not isinstance(payload, dict) or "data" not in payload:
            raise ClientError(f"{method} {_short(path)}: unexpected answer (no 'data')", job_id=job_id)
        return Response(r.status_code, payload["data"], parse_retry_after(r.headers.get("retry-after")),
                        r.headers.get("idempotent-replayed", "").lower() == "true")

    # ------------------------------------------------------------------ the API
    def create_job(self, body: dict[str, Any], idempotency_key: str | None) -> Response:
        """POST /api/v1/mocap/jobs. With a key, a repeat returns the same job (``replayed``)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", f"{API}/mocap/jobs", safe=idempotency_key is not None, json=body, headers=headers)

    def reissue_upload_url(self, job_id: str) -> Response:
        return self._json("POST", f"{API}/mocap/jobs/{job_id}/upload-url", safe=True, job_id=job_id)

    def upload(self, upload_url: str, source: Path, *, job_id: str | None = None,
               on_progress: Callable[[int, int], None] | None = None, chunk_bytes: int = 1 << 20) -> Response:
        """PUT the whole file to the signed URL (no Authorization), streamed with a Content-Length."""
        total = source.stat().st_size

        def body(f: IO[bytes]) -> Iterator[bytes]:
            sent = 0
            while chunk := f.read(chunk_bytes):
                sent += len(chunk)
                yield chunk
                if on_progress is not None:
                    on_progress(sent, total)

        with open(source, "rb") as f:
            r = self._send("PUT", upload_url, safe=True, job_id=job_id, auth=False, content=body(f),
                           headers={"Content-Length": str(total), "Content-Type": "application/octet-stream"})
        if r.status_code == 403 and "json" not in r.headers.get("content-type", ""):
            # An object store's own refusal (S3 answers XML): the presigned URL expired or does not fit.
            raise ApiError(403, "upload_url_expired", "The storage refused the upload URL; a fresh one is needed.",
                           job_id=job_id, retry_from="upload")
        self._check(r, safe=True, job_id=job_id)
        if "json" not in r.headers.get("content-type", ""):
            # A presigned object-store PUT answers 200 with no JSON; complete-upload checks size and digest.
            return Response(r.status_code, {"bytes": total, "sha256": None}, None)
        payload = r.json()
        return Response(r.status_code, payload.get("data") if isinstance(payload, dict) else None, None)

    # ------------------------------------------------------------------ resumable upload (tus 1.0)
    def tus_create(self, tus_url: str, length: int, *, filename: str | None = None,
                   job_id: str | None = None) -> str:
        """POST the job's tus creation URL for an upload of ``length`` bytes; the upload's own URL. Safe to
        repeat: a new upload replaces the job's previous one (none of whose bytes then count)."""
        headers = {**_TUS, "Upload-Length": str(length)}
        if filename:
            headers["Upload-Metadata"] = "filename " + base64.b64encode(filename.encode()).decode()
        r = self._send("POST", tus_url, safe=True, job_id=job_id, auth=False, headers=headers)
        self._check(r, safe=True, job_id=job_id)
        location = r.headers.get("location")
        if not location:
            raise TransportError("the upload endpoint answered without a Location", retry_safe=True,
                                 maybe_applied=True, status=r.status_code, job_id=job_id)
        return str(httpx.URL(tus_url).join(location))

    def tus_offset(self, upload_url: str, *, job_id: str | None = None) -> tuple[int, int]:
        """HEAD the upload: (the server's committed offset, the upload's length)."""
        r = self._send("HEAD", upload_url, safe=True, job_id=job_id, auth=False, headers=dict(_TUS))
        if r.status_code >= 400:
            code = {404: "upload_not_found", 403: "upload_url_invalid", 410: "upload_not_found"}.get(r.status_code)
            if code is None:
                self._check(r, safe=True, job_id=job_id)
            raise ApiError(r.status_code, code or f"http_{r.status_code}", "The resumable upload is gone.",
                           job_id=job_id, retry_from="upload")
        try:
            return int(r.headers["upload-offset"]), int(r.headers.get("upload-length", "-1"))
        except (KeyError, ValueError) as exc:
            raise TransportError("the upload endpoint answered HEAD without Upload-Offset", retry_safe=True,
                                 maybe_applied=False, job_id=job_id) from exc

    def tus_patch(self, upload_url: str, source: Path, offset: int, length: int, *, job_id: str | None = None,
                  on_progress: Callable[[int, int], None] | None = None, chunk_bytes: int = 1 << 20) -> int:
        """PATCH ``length`` bytes of ``source`` from ``offset``; the server's offset afterwards. A cut
        connection loses nothing the server received: HEAD tells where to go on from."""
        total = source.stat().st_size

        def body(f: IO[bytes]) -> Iterator[bytes]:
            f.seek(offset)
            left, sent = length, offset
            while left > 0 and (chunk := f.read(min(chunk_bytes, left))):
                left -= len(chunk)
                sent += len(chunk)
                yield chunk
                if on_progress is not None:
                    on_progress(sent, total)

        headers = {**_TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
                   "Content-Length": str(length)}
        with open(source, "rb") as f:
            r = self._send("PATCH", upload_url, safe=True, job_id=job_id, auth=False, content=body(f), headers=headers)
        self._check(r, safe=True, job_id=job_id)
        try:
            return int(r.headers["upload-offset"])
        except (KeyError, ValueError) as exc:
            raise TransportError("the upload endpoint answered PATCH without Upload-Offset", retry_safe=True,
                                 maybe_applied=True, job_id=job_id) from exc

    def complete_upload(self, job_id: str) -> Response:
        return self._json("POST", f"{API}/mocap/jobs/{job_id}/complete-upload", safe=True, job_id=job_id)

    def get_job(self, job_id: str) -> Response:
        return self._json("GET", f"{API}/mocap/jobs/{job_id}", safe=True, job_id=job_id)

    def get_result(self, job_id: str) -> Response:
        return self._json("GET", f"{API}/mocap/jobs/{job_id}/result", safe=True, job_id=job_id)

    def cancel(self, job_id: str) -> Response:
        return self._json("POST", f"{API}/mocap/jobs/{job_id}/cancel", safe=True, job_id=job_id)

    def list_jobs(self, *, limit: int = 50, cursor: str | None = None, status: str | None = None) -> Response:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        return self._json("GET", f"{API}/mocap/jobs", safe=True, params=params)

    def quote(self, job_id: str) -> Response:
        """POST .../quote on an uploaded draft: what complete-upload would hold, and whether it would admit
        the job; nothing is held."""
        return self._json("POST", f"{API}/mocap/jobs/{job_id}/quote", safe=True, job_id=job_id)

    def create_export(self, job_id: str, body: dict[str, Any], idempotency_key: str | None) -> Response:
        """POST .../exports on a completed job: a new job from its stored motion (``exportFps``,
        ``targetIds``, ``mocapType``). With a key, a repeat returns the same child job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", f"{API}/mocap/jobs/{job_id}/exports", safe=idempotency_key is not None,
                          job_id=job_id, json=body, headers=headers)

    # ------------------------------------------------------------------ avatars (SPEC section 12)
    def create_avatar(self, body: dict[str, Any], idempotency_key: str | None) -> Response:
        """POST /api/v1/avatars ``{name, sourceFilename, sourceBytes?, sourceSha256?}``: a draft and its
        upload URL (PUT it with `upload`)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", f"{API}/avatars", safe=idempotency_key is not None, json=body, headers=headers)

    def complete_avatar_upload(self, avatar_id: str) -> Response:
        """Prepare the uploaded character (skeleton, mesh, skin, bone mapping); idempotent."""
        return self._json("POST", f"{API}/avatars/{avatar_id}/complete-upload", safe=True)

    def get_avatar(self, avatar_id: str) -> Response:
        return self._json("GET", f"{API}/avatars/{avatar_id}", safe=True)

    def list_avatars(self, *, limit: int = 50, cursor: str | None = None) -> Response:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", f"{API}/avatars", safe=True, params=params)

    def update_avatar(self, avatar_id: str, *, name: str | None = None, mapping: dict[str, str] | None = None) -> Response:
        """PATCH the name and/or the bone mapping (default bone -> avatar bone); validated again."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if mapping is not None:
            body["mapping"] = mapping
        return self._json("PATCH", f"{API}/avatars/{avatar_id}", safe=True, json=body)

    def delete_avatar(self, avatar_id: str) -> None:
        r = self._send("DELETE", f"{API}/avatars/{avatar_id}", safe=True)
        self._check(r, safe=True)

    def ledger(self, *, job_id: str | None = None, limit: int = 100) -> Response:
        params: dict[str, Any] = {"limit": limit}
        if job_id:
            params["jobId"] = job_id
        return self._json("GET", f"{API}/account/ledger", safe=True, params=params)

    def download(
        self,
        url: str,
        sink: IO[bytes],
        *,
        start: int = 0,
        if_range: str | None = None,
        job_id: str | None = None,
        on_head: Callable[[DownloadHead], None] | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> DownloadHead:
        """GET an artifact into ``sink`` from byte ``start`` (Range + If-Range when ``start`` > 0).

        On 206 the body is appended at ``start``; on 200 the caller's sink must be rewound first, which
        ``on_head`` does (it sees the head before any byte is written). Raises `TransportError` when the
        body is cut; what reached ``sink`` stays there for the next resume."""
        headers: dict[str, str] = {"Accept": "*/*"}
        if start > 0:
            headers["Range"] = f"bytes={start}-"
            if if_range:
                headers["If-Range"] = if_range
        auth = url.startswith(self.base_url + API)  # the signed URLs need no key (and must not leak it)
        full_headers = {**(self._auth() if auth else self._headers), **headers}
        try:
            with self._http.stream("GET", self._url(url), headers=full_headers, follow_redirects=True) as r:
                self._check(r, safe=True, job_id=job_id)
                head = _download_head(r, start)
                if on_head is not None:
                    on_head(head)
                for chunk in r.iter_bytes():  # whatever arrived: a cut leaves every received byte on disk
                    sink.write(chunk)
                    if on_chunk is not None:
                        on_chunk(len(chunk))
                return head
        except httpx.TimeoutException as exc:
            raise TransportError(f"download {_short(url)} timed out", retry_safe=True, maybe_applied=False,
                                 job_id=job_id) from exc
        except httpx.TransportError as exc:
            raise TransportError(f"download {_short(url)} broke: {type(exc).__name__}: {exc}", retry_safe=True,
                                 maybe_applied=False, job_id=job_id) from exc


def _download_head(r: httpx.Response, start: int) -> DownloadHead:
    etag = r.headers.get("etag")
    sha = repr_digest_sha256(r.headers.get("repr-digest")) or _etag_sha256(etag)
    if r.status_code == 206:
        cr = r.headers.get("content-range", "")  # bytes a-b/total
        try:
            span, _, total_s = cr.removeprefix("bytes ").partition("/")
            first = int(span.split("-")[0])
            total = int(total_s) if total_s != "*" else None
        except ValueError as exc:
            raise TransportError(f"bad Content-Range {cr!r}", retry_safe=True, maybe_applied=False) from exc
        if first != start:
            raise TransportError(f"asked for byte {start}, got {first}", retry_safe=True, maybe_applied=False)
        return DownloadHead(206, start, total, etag, sha)
    length = r.headers.get("content-length")
    return DownloadHead(r.status_code, 0, int(length) if length and length.isdigit() else None, etag, sha)


def _short(url: str) -> str:
    return url.split("?", 1)[0]
