"""Webhook messages as the Standard Webhooks spec has them (https://www.standardwebhooks.com):
the event types this service sends, `whsec_` secrets, and the `v1` signature, HMAC-SHA256 over
`webhook-id.webhook-timestamp.body` with the secret's bytes. Pure: the sender and the tests use it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

EVENT_TYPES = (
    "earn.confirmed",
    "redemption.posted",
    "redemption.voided",
    "purchase.pending_ended",
    "exchange.confirmed",
    "settlement.period_closed",
    "tier.changed",
    "points.expiring",
    "donation.posted",
    "member.dormant",
    "challenge.completed",
)
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A signing secret: 24 random bytes, base64, after `whsec_`."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature of `msg_id.timestamp.body` under a `whsec_` secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signatures(secrets: list[str], msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: a signature by each secret in force, space-separated (a
    receiver accepts the message if any verifies)."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def msg_id(event_id: int) -> str:
    """The `webhook-id` of an event: the same on every retry and to every endpoint."""
    return f"msg_{event_id}"
