"""An HTTP client for end-to-end tests that behaves like a compliant integrator: a 429 (the API key's
request budget, SPEC section 13) waits the answer's Retry-After and sends the request again."""

from __future__ import annotations

import time
from typing import Any

import httpx


class PatientTransport(httpx.HTTPTransport):
    def __init__(self, *args: Any, max_waits: int = 30, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_waits = max_waits
        self.waits = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.max_waits):
            response = super().handle_request(request)
            if response.status_code != 429:
                return response
            response.read()
            response.close()
            self.waits += 1
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return super().handle_request(request)


def patient_client(**kwargs: Any) -> httpx.Client:
    """`httpx.Client(**kwargs)` whose requests honour 429 + Retry-After (request bodies must be bytes)."""
    return httpx.Client(transport=PatientTransport(), **kwargs)
