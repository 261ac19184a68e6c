"""Webhook delivery: the dispatcher that sends the outbox (`mocapd.db.outbox`) to the endpoints."""

from mocapd.webhooks.dispatcher import Dispatcher, start_dispatcher
from mocapd.webhooks.send import Attempt, send_signed

__all__ = ["Attempt", "Dispatcher", "send_signed", "start_dispatcher"]
