"""List and ledger cursors (and ids in query strings and paths): anything a client makes up is a 422
`validation_error` (or an empty page / 404), never a 500, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.api.backends import BACKENDS, api_on
from tests.integration.api.conftest import Api


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # hundreds of requests a second with one key: the request budget (tested on its own) is off here
    with api_on(request.param, tmp_path_factory.mktemp("cursors"), rate_limit_rps=0) as api:
        for _ in range(3):  # pages to walk, ledger entries to page through
            api.create()
        yield api


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Cursors that decode, and split into the right number of parts, but whose parts are not what we issue.
CRAFTED = [
    _b64(b"2024-01-01T00:00:00|mocap_00"),  # a naive timestamp
    _b64(b"2024-01-01T00:00:00+00:00|mocap_\x00"),  # a NUL byte (PostgreSQL refuses it in text)
    _b64(b"0001-01-01T00:00:00+14:00|mocap_a"),  # out of range once converted to UTC
    _b64("2024-01-01T00:00:00+00:00|mocap_é".encode()),
    _b64(b"\xff\xfe|x"),  # not text
]
LEDGER_CRAFTED = [_b64(b"99999999999999999999999"), _b64("²".encode()), _b64("١٢".encode()), _b64(b"-1")]


def _problem(r: object) -> dict:  # type: ignore[type-arg]
    assert r.status_code == 422, (r.status_code, r.text)  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert r.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert body["code"] == "validation_error"
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize("cursor", CRAFTED)
def test_crafted_job_cursor_is_422(api: Api, cursor: str) -> None:
    body = _problem(api.client.get("/api/v1/mocap/jobs", params={"cursor": cursor}, headers=api.headers()))
    assert body["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("cursor", LEDGER_CRAFTED)
def test_crafted_ledger_cursor_is_422(api: Api, cursor: str) -> None:
    body = _problem(api.client.get("/api/v1/account/ledger", params={"cursor": cursor}, headers=api.headers()))
    assert body["errors"][0]["field"] == "cursor"


def test_issued_cursors_still_walk_every_page(api: Api) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        r = api.client.get("/api/v1/mocap/jobs", params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                           headers=api.headers())
        assert r.status_code == 200, r.text
        seen += [j["id"] for j in r.json()["data"]["items"]]
        cursor = r.json()["data"]["nextCursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 3


def test_ids_with_nul_bytes_are_not_found(api: Api) -> None:
    assert api.client.get("/api/v1/mocap/jobs/mocap_%00", headers=api.headers()).status_code == 404
    r = api.client.get("/api/v1/account/ledger", params={"jobId": "mocap_\x00"}, headers=api.headers())
    assert r.status_code == 200 and r.json()["data"]["items"] == []
    job = api.create()
    r = api.client.get(f"/api/v1/mocap/jobs/{job['jobId']}/artifacts/a%00b", headers=api.headers())
    assert r.status_code == 404 and r.json()["code"] == "artifact_not_found"


# Parts shaped like the ones we issue (timestamps with and without a zone, integers, ids) and not.
_PART = st.one_of(
    st.text(max_size=30),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.integers().map(str),
    st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=20),
    st.text(max_size=20).map(lambda t: "mocap_" + t),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=60).map(_b64), st.text(max_size=80)),
       parts=st.lists(_PART, min_size=1, max_size=3))
def test_garbage_cursors_never_500(api: Api, raw: str, parts: list[str]) -> None:
    crafted = _b64("|".join(parts).encode())
    for cursor in (raw, crafted):
        for path in ("/api/v1/mocap/jobs", "/api/v1/account/ledger"):
            r = api.client.get(path, params={"cursor": cursor}, headers=api.headers())
            assert r.status_code in (200, 422), (path, cursor, r.status_code, r.text)
            if r.status_code == 422:
                assert r.json()["code"] == "validation_error"
