"""Webhook signatures against the Standard Webhooks reference library: what we sign, it verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from loyalty.api.schemas import WebhookEventType
from loyalty.domain.webhooks import EVENT_TYPES, msg_id, new_secret, signatures


def _headers(secrets: list[str], body: str) -> dict[str, str]:
    now = int(datetime.now(UTC).timestamp())
    return {
        "webhook-id": msg_id(7),
        "webhook-timestamp": str(now),
        "webhook-signature": signatures(secrets, msg_id(7), now, body),
    }


def test_webhookSignatures_verifyWithTheReferenceLibrary_underEachSecretInForce() -> None:
    old, new = new_secret(), new_secret()
    body = '{"type":"earn.confirmed","data":{"amount_points":5}}'
    both = _headers([new, old], body)
    assert (
        Webhook(new).verify(body, both)
        == Webhook(old).verify(body, both)
        == {"type": "earn.confirmed", "data": {"amount_points": 5}}
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, both)
    with pytest.raises(WebhookVerificationError):  # a body changed in transit
        Webhook(new).verify(body.replace("5", "50"), both)
    assert old.startswith("whsec_") and old != new


def test_webhookEventTypes_areOneListForTheApiAndTheSender() -> None:
    assert get_args(WebhookEventType) == EVENT_TYPES
