"""The webhook dispatcher: claims due deliveries (`mocapd.db.webhooks.claim_deliveries`) and sends them
from a small pool of threads, so one endpoint that hangs for its full timeout holds one thread, not
the others' deliveries. It runs inside `mocapd serve` and `mocapd worker`; any number of dispatchers
may run against one database (a claim is exclusive, see `mocapd.db.webhooks`).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from mocapd.config import Settings
from mocapd.db.engine import Database
from mocapd.db.webhooks import ClaimedDelivery, claim_deliveries, record_attempt
from mocapd.domain.webhooks import parse_retry_schedule
from mocapd.webhooks.send import MAX_RESPONSE_BYTES, TIMEOUT_S, Attempt, send_signed

__all__ = ["Dispatcher", "lease_for", "start_dispatcher"]

log = logging.getLogger("mocapd.webhooks")


def lease_for(timeout_s: float = TIMEOUT_S) -> float:
    """How long a claim lasts: well past one send (connect, write, read, each bounded by ``timeout_s``).
    A dispatcher killed mid-send leaves its claim to run out; the delivery is then claimed again."""
    return 3 * timeout_s + 30.0


class Dispatcher:
    """``concurrency`` deliveries in flight at most; the outbox is looked at every ``poll_s`` seconds
    (and at once whenever a send finishes). A claim lasts ``lease_s``, well past the send's timeout."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        concurrency: int = 8,
        poll_s: float = 0.2,
        timeout_s: float = TIMEOUT_S,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        own_db: bool = False,
    ) -> None:
        self.db = db
        self._own_db = own_db
        self.settings = settings
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.lease_s = lease_for(timeout_s)
        self.max_response_bytes = max_response_bytes
        self.retry_schedule_s = parse_retry_schedule(settings.webhook_retry_schedule)
        self.sent = 0
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="mocapd-webhook")
        self._in_flight = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver(self, d: ClaimedDelivery) -> str | None:
        """Send one claimed attempt and record its outcome; the delivery's new status."""
        if not d.enabled:
            attempt = Attempt(False, None, "the endpoint is disabled")
        else:
            attempt = send_signed(
                d.url,
                d.secret,
                d.message_id,
                d.body,
                allow_private=self.settings.webhook_allow_private,
                timeout_s=self.timeout_s,
                max_response_bytes=self.max_response_bytes,
            )
        status = record_attempt(
            self.db,
            d,
            ok=attempt.ok,
            response_status=attempt.response_status,
            error=attempt.error,
            retry_schedule_s=self.retry_schedule_s,
            disable_after_s=self.settings.webhook_disable_after_s,
        )
        if not attempt.ok:
            log.info("webhook %s attempt %d to %s failed: %s", d.id, d.attempt, d.endpoint_id, attempt.error)
        return status

    def run_once(self) -> int:
        """Claim what is due (as many as there are free threads) and hand it to the pool."""
        with self._lock:
            free = self.concurrency - self._in_flight
        claimed = claim_deliveries(self.db, free, self.lease_s)
        for d in claimed:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self.deliver, d).add_done_callback(self._done)
        return len(claimed)

    def _done(self, fut: Future[str | None]) -> None:
        with self._lock:
            self._in_flight -= 1
            self.sent += 1
        exc = fut.exception()
        if exc is not None:
            log.error("webhook delivery failed unexpectedly: %s", exc, exc_info=exc)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except Exception as exc:  # the database is away for a moment: try again at the next tick
                log.warning("webhook dispatcher: %s", exc)
                n = 0
            if n == 0:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._run, name="mocapd-webhook-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop claiming; sends in flight finish (or are claimed again after their lease)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._own_db:
            self.db.dispose()


def start_dispatcher(settings: Settings) -> Dispatcher:
    """A running dispatcher on its own database handle (``stop()`` closes it)."""
    return Dispatcher(Database(settings.resolved_database_url, pool_size=2), settings, own_db=True).start()
