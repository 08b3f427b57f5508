"""Webhooks to prescribing systems: signed with HMAC-SHA256, delivered at least once with backoff.

Each request carries ``X-Event-Id`` (the same on every retry, for de-duplication), ``X-Timestamp`` and
``X-Signature: sha256=<hex>`` computed over ``"<timestamp>.<body>"`` with the subscription's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlparse

from sqlalchemy import select

from pharmacy.errors import Message, ValidationFailed
from pharmacy.prescriptions.models import PrescriptionEvent, WebhookDelivery, WebhookSubscription
from pharmacy.unit_of_work import UnitOfWork

MAX_ATTEMPTS = 12
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
BATCH = 50


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


Sender = Callable[[str, bytes, dict[str, str]], Outcome]


def http_sender(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST with a short timeout; any 2xx is delivered."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # http(s) only: checked on subscribe
            return Outcome(200 <= response.status < 300, f"HTTP {response.status}")
    except urllib.error.HTTPError as error:
        return Outcome(False, f"HTTP {error.code}")
    except (urllib.error.URLError, OSError) as error:
        return Outcome(False, f"{type(error).__name__}: {error}")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def subscribe(uow: UnitOfWork, site_id: int, url: str) -> WebhookSubscription:
    """Register a hospital's webhook; the secret to check signatures with is returned once."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationFailed("the webhook URL must be http(s)://host/...", {"url": url})
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        subscription = WebhookSubscription(consortium_id=uow.principal.consortium_id, site_id=site_id, url=url,
                                           secret=secrets.token_urlsafe(32), created_at=uow.now())
        uow.session.add(subscription)
        uow.commit()
        return subscription


def list_subscriptions(uow: UnitOfWork) -> list[WebhookSubscription]:
    with uow:
        stmt = select(WebhookSubscription).order_by(WebhookSubscription.id)
        if uow.principal.site_bound:
            stmt = stmt.where(WebhookSubscription.site_id == uow.principal.site_id)
        return list(uow.session.scalars(stmt))


def unsubscribe(uow: UnitOfWork, subscription_id: int) -> WebhookSubscription:
    with uow:
        subscription = uow.get_acting(WebhookSubscription, subscription_id, for_update=True, what="webhook")
        subscription.active = False
        uow.commit()
        return subscription


def backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: 30 s, 1 min, 2 min, ... at most an hour."""
    return min(FIRST_RETRY * (2 ** (attempts - 1)), LONGEST_WAIT)


def deliver_due(uow: UnitOfWork, sender: Sender = http_sender) -> dict[str, int]:
    """Send every delivery whose time has come; failures are retried later, and given up after a while."""
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with uow:
        due = uow.session.execute(
            select(WebhookDelivery, WebhookSubscription, PrescriptionEvent)
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .join(PrescriptionEvent, PrescriptionEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= uow.now())
            .order_by(WebhookDelivery.id).limit(BATCH)
            # Several schedulers never run at once, but a manual run might: never send one delivery twice at once.
            .with_for_update(skip_locked=True, of=WebhookDelivery)).all()
        for delivery, subscription, event in due:
            body = json.dumps({"id": event.event_id, "type": event.type, "at": event.at.isoformat(),
                               "data": event.payload}, ensure_ascii=False, sort_keys=True).encode()
            timestamp = str(int(uow.now().timestamp()))
            outcome = sender(subscription.url, body, {
                "Content-Type": "application/json", "X-Event-Id": event.event_id, "X-Timestamp": timestamp,
                "X-Signature": sign(subscription.secret, timestamp, body),
                "X-Delivery-Attempt": str(delivery.attempts + 1)})
            delivery.attempts += 1
            if outcome.ok:
                delivery.status, delivery.delivered_at, delivery.last_error = "delivered", uow.now(), ""
                counts["delivered"] += 1
            elif delivery.attempts >= MAX_ATTEMPTS or not subscription.active:
                delivery.status, delivery.last_error = "failed", outcome.detail
                counts["failed"] += 1
            else:
                delivery.next_attempt_at = uow.now() + backoff(delivery.attempts)
                delivery.last_error = outcome.detail
                counts["retrying"] += 1
        uow.commit()
    return counts
