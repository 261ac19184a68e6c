"""`MocapdClient` against scripted transports: how answers and failures become our errors."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import httpx
import pytest

from mocapd.client.api import NOT_GIVEN, MocapdClient, repr_digest_sha256
from mocapd.client.errors import ApiError, TransportError

PROBLEM = {"type": "x", "title": "t", "status": 422, "detail": "bad fps", "code": "export_fps_invalid",
           "stage": "create", "retryable": False, "retryFrom": "new_job"}


def _client(handler: object) -> MocapdClient:
    return MocapdClient("http://api", "sk_live_x", http=httpx.Client(transport=httpx.MockTransport(handler)))  # type: ignore[arg-type]


def test_not_given_is_a_falsy_singleton_distinct_from_none() -> None:
    assert NOT_GIVEN is type(NOT_GIVEN)() and not NOT_GIVEN and NOT_GIVEN is not None
    assert repr(NOT_GIVEN) == "NOT_GIVEN"


def test_problem_json_becomes_api_error_with_its_fields() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        assert req.headers["authorization"] == "Bearer sk_live_x"
        assert req.headers["idempotency-key"] == "key-1"
        return httpx.Response(422, json=PROBLEM, headers={"content-type": "application/problem+json"})

    with pytest.raises(ApiError) as caught:
        _client(handler).create_job({"a": 1}, "key-1")
    e = caught.value
    assert (e.status, e.code, e.stage, e.retry_from, e.retryable, e.retry_safe) == (
        422, "export_fps_invalid", "create", "new_job", False, False)


def test_gateway_errors_without_a_problem_body_are_transport_errors_with_retry_after() -> None:
    client = _client(lambda req: httpx.Response(503, text="<html>", headers={"retry-after": "4"}))
    with pytest.raises(TransportError) as caught:
        client.get_job("mocap_1")
    assert caught.value.status == 503 and caught.value.retry_after_s == 4.0 and caught.value.retry_safe


def test_a_timed_out_create_is_retry_safe_only_with_an_idempotency_key() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=req)

    with pytest.raises(TransportError) as with_key:
        _client(handler).create_job({}, "k")
    with pytest.raises(TransportError) as without_key:
        _client(handler).create_job({}, None)
    assert with_key.value.retry_safe and with_key.value.maybe_applied
    assert not without_key.value.retry_safe


def test_connect_errors_are_safe_and_not_applied() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    with pytest.raises(TransportError) as caught:
        _client(handler).create_job({}, None)
    assert caught.value.retry_safe and not caught.value.maybe_applied


def test_upload_streams_the_file_with_a_content_length_and_no_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "v.mp4"
    src.write_bytes(b"x" * 3_000_000)
    seen: dict[str, object] = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen.update(headers=dict(req.headers), body=req.read())
        return httpx.Response(200, json={"data": {"bytes": 3_000_000, "sha256": "00"}})

    progress: list[int] = []
    resp = _client(handler).upload("http://api/uploads/mocap_1?signature=s", src, on_progress=lambda n, t: progress.append(n))
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["content-length"] == "3000000" and "authorization" not in headers
    assert "transfer-encoding" not in headers
    assert seen["body"] == src.read_bytes() and progress[-1] == 3_000_000 and resp.data["bytes"] == 3_000_000


def test_repr_digest_parsing() -> None:
    digest = hashlib.sha256(b"abc").digest()
    header = "sha-512=:AAAA:, sha-256=:" + base64.b64encode(digest).decode() + ":"
    assert repr_digest_sha256(header) == digest.hex()
    assert repr_digest_sha256("sha-256=:not base64!:") is None
    assert repr_digest_sha256(None) is None


def test_ranged_download_appends_and_reports_the_head() -> None:
    body = bytes(range(256)) * 4
    sha = hashlib.sha256(body).hexdigest()

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.headers["range"] == "bytes=100-" and req.headers["if-range"] == f'"{sha}"'
        return httpx.Response(206, content=body[100:], headers={"content-range": f"bytes 100-{len(body) - 1}/{len(body)}",
                                                               "etag": f'"{sha}"'})

    sink = io.BytesIO(body[:100])
    sink.seek(100)
    head = _client(handler).download("http://api/files/mocap_1/a.bin?s=1", sink, start=100, if_range=f'"{sha}"')
    assert (head.status, head.start, head.total, head.sha256) == (206, 100, len(body), sha)
    assert sink.getvalue() == body


def test_a_range_answer_for_the_wrong_offset_is_refused() -> None:
    client = _client(lambda req: httpx.Response(206, content=b"zz", headers={"content-range": "bytes 0-1/2"}))
    with pytest.raises(TransportError, match="asked for byte 5"):
        client.download("http://api/files/x", io.BytesIO(), start=5)


def test_download_of_a_problem_is_an_api_error() -> None:
    problem = {**PROBLEM, "status": 403, "code": "upload_url_expired", "retryFrom": "upload"}
    client = _client(lambda req: httpx.Response(403, content=json.dumps(problem).encode(),
                                                headers={"content-type": "application/problem+json"}))
    with pytest.raises(ApiError) as caught:
        client.download("http://api/files/x", io.BytesIO())
    assert caught.value.code == "upload_url_expired"
