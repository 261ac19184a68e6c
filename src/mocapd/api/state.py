"""What the API process holds: settings, the database, the object store and the URL signer."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from dataclasses import dataclass, field

from fastapi import Request

from mocapd.api.probing import ProbeGate
from mocapd.api.signing import Signer
from mocapd.config import Settings
from mocapd.db.engine import Database
from mocapd.storage import ObjectStore

__all__ = ["AppState", "get_state"]


@dataclass
class AppState:
    settings: Settings
    db: Database
    store: ObjectStore
    signer: Signer
    started_at: float = field(default_factory=time.time)
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    request_seconds: Counter[str] = field(default_factory=Counter)
    probes: ProbeGate | None = None  # made from the settings when None

    def __post_init__(self) -> None:
        if self.probes is None:
            self.probes = ProbeGate(self.settings.probe_slots, self.settings.probe_wait_s)

    def base_url(self, request: Request) -> str:
        """Base of the links we sign: MOCAPD_PUBLIC_URL, else the URL the client reached us at.

        Without MOCAPD_PUBLIC_URL the ``Host`` header names the host, and anyone can send any ``Host``: it is
        taken only when it is a loopback name or address, the address the connection arrived on, or one
        of MOCAPD_ALLOWED_HOSTS; otherwise the links name the address the connection arrived on.
        """
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        base = request.base_url
        if self._host_allowed(base.hostname or "", request):
            return str(base).rstrip("/")
        server = request.scope.get("server")
        if not server:
            return "http://127.0.0.1"
        host, port = server[0], server[1]
        if ":" in str(host):
            host = f"[{host}]"
        default = {"http": 80, "https": 443}.get(base.scheme)
        netloc = f"{host}" if port in (None, default) else f"{host}:{port}"
        return f"{base.scheme}://{netloc}{request.scope.get('root_path', '')}".rstrip("/")

    def _host_allowed(self, host: str, request: Request) -> bool:
        host = host.strip("[]").lower().rstrip(".")
        if not host:
            return False
        if host == "localhost" or host.endswith(".localhost"):
            return True
        allowed = {h.strip().lower().rstrip(".") for h in (self.settings.allowed_hosts or "").split(",") if h.strip()}
        if host in allowed:
            return True
        server = request.scope.get("server")
        if server and host == str(server[0]).lower():
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mocapd
    return state
