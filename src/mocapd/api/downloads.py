"""Serving immutable artifacts: ETag (the SHA-256), Repr-Digest, Range / If-Range, HEAD (RFC 9110, 9530)."""

from __future__ import annotations

import base64
import re

from fastapi import Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from mocapd.api.state import AppState
from mocapd.db.models import Artifact
from mocapd.errors import MocapdError

__all__ = ["serve_artifact"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range -> (start, end) inclusive; None to ignore the header (send the whole file)."""
    m = _RANGE.match(header.strip())
    if not m:
        return None  # multiple or malformed ranges: a server may answer 200 with the whole file
    a, b = m.groups()
    if a == "" and b == "":
        return None
    if a == "":
        n = int(b)
        if n == 0:
            raise MocapdError("range_not_satisfiable", "The range is empty.", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size - 1
    start = int(a)
    end = int(b) if b else size - 1
    if b and end < start:
        return None
    if start >= size:
        raise MocapdError(
            "range_not_satisfiable", f"The file has {size} bytes.", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, min(end, size - 1)


def serve_artifact(state: AppState, request: Request, art: Artifact) -> Response:
    etag = f'"{art.sha256}"'
    digest = "sha-256=:" + base64.b64encode(bytes.fromhex(art.sha256)).decode() + ":"
    headers = {
        "ETag": etag,
        "Repr-Digest": digest,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable",
        "Content-Disposition": f'attachment; filename="{art.name}"',
    }
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        return Response(status_code=304, headers=headers)
    url = None
    if request.method != "HEAD":  # HEAD is answered here from the database (a URL signed for GET is not valid for HEAD)
        url = state.store.download_url(
            art.object_key, state.settings.download_url_ttl_s, content_type=art.content_type, download_name=art.name
        )
    if url is not None:
        # A store that presigns serves the bytes itself (its presigned GET honours Range; If-Range is compared
        # with the store's own ETag there, so a mismatch only costs a full download). The redirect must not
        # be cached: the presigned URL expires.
        return RedirectResponse(url, status_code=307, headers={"ETag": etag, "Repr-Digest": digest,
                                                               "Cache-Control": "no-store"})
    size = art.bytes
    rng = request.headers.get("range")
    if rng and request.headers.get("if-range") not in (None, etag):
        rng = None  # the client's copy is another version: send the whole file
    span = _parse_range(rng, size) if rng else None
    if span is None:
        start, end, status = 0, size - 1, 200
    else:
        (start, end), status = span, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=art.content_type)
    if size == 0:
        return Response(b"", status_code=200, headers=headers, media_type=art.content_type)
    return StreamingResponse(
        state.store.open_range(art.object_key, start, end), status_code=status, headers=headers, media_type=art.content_type
    )
