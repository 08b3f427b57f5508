"""Webhooks to prescribing systems: signed with HMAC-SHA256, delivered at least once with backoff.

Each request carries ``X-Event-Id`` (the same on every retry, for de-duplication), ``X-Timestamp`` and
``X-Signature: sha256=<hex>`` computed over ``"<timestamp>.<body>"`` with the subscription's secret.

No endpoint can hold up another hospital's: each attempt has a deadline for the whole exchange (not per read),
any failure of an attempt (an error, an answer that is not HTTP, no answer in time) counts against that delivery
alone, endpoints are served side by side by a small pool (the healthy ones first), and each endpoint gets a share
of a run's time. A delivery is retried with backoff for two days, which covers a hospital's night or weekend
outage; one given up can be sent again (:func:`redeliver`), and the event feed stays the fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlparse

from sqlalchemy import and_, func, insert, literal, select, text, update

from pharmacy.errors import Message, ValidationFailed
from pharmacy.prescriptions.models import PrescriptionEvent, WebhookDelivery, WebhookSubscription
from pharmacy.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=48)  # from the event: a night, a weekend's outage is covered
ATTEMPT_DEADLINE = 10.0  # seconds for one whole attempt: connect, send, and the answer's status and headers
RUN_BUDGET = 15.0  # seconds of a run one endpoint may use; with the deadline, a run ends within a job interval
ENDPOINTS_AT_ONCE = 8
BATCH = 500  # deliveries due, per run
FAN_OUT_BATCH = 1000  # events made into deliveries at a time
PER_ENDPOINT = 50  # of them, per endpoint and run


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


Sender = Callable[[str, bytes, dict[str, str]], Outcome]


def http_sender(url: str, body: bytes, headers: dict[str, str], deadline: float | None = None) -> Outcome:
    """POST ``body``; any 2xx is delivered. The whole exchange has ``deadline`` seconds: an endpoint that trickles
    its answer is cut off then (a per-read timeout would wait for it forever). Never raises: whatever goes wrong
    (a refused connection, an answer that is not HTTP, TLS, no answer in time) is an undelivered outcome."""
    deadline = deadline or ATTEMPT_DEADLINE
    parsed = urlparse(url)
    connection_class = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parsed.hostname or "", parsed.port, timeout=deadline)
    cut = threading.Event()

    def cut_off() -> None:
        cut.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)  # wakes the read that waits on it

    timer = threading.Timer(deadline, cut_off)
    timer.daemon = True
    timer.start()
    try:
        path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return Outcome(200 <= response.status < 300, f"HTTP {response.status}")
    except Exception as error:  # any failure of one attempt is that delivery's, never the job's
        if cut.is_set():
            return Outcome(False, f"no answer within {deadline:g} s")
        return Outcome(False, f"{type(error).__name__}: {error}"[:500])
    finally:
        timer.cancel()
        connection.close()


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
    return min(FIRST_RETRY * (2 ** min(attempts - 1, 20)), LONGEST_WAIT)


@dataclass(frozen=True)
class _Attempt:
    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]


def fan_out(uow: UnitOfWork) -> int:
    """Make each new event into a delivery to every active subscription of its hospital that existed when the event
    happened, and mark it done; returns how many events. In the delivery job's own transaction, so that the
    requests writing events send no query for subscriptions; the outbox row, written with the change, is what
    guarantees the delivery. A subscription never hears another consortium's events."""
    events = list(uow.session.scalars(
        # Said as the partial index's own condition, so that both databases find the new events through it.
        select(PrescriptionEvent.id).where(text("NOT prescription_events.fanned_out"))
        .order_by(PrescriptionEvent.id).limit(FAN_OUT_BATCH).with_for_update(skip_locked=True)))
    if not events:
        return 0
    uow.session.execute(insert(WebhookDelivery).from_select(
        ["consortium_id", "subscription_id", "event_id", "status", "attempts", "next_attempt_at", "last_error",
         "retrying_since"],
        select(PrescriptionEvent.consortium_id, WebhookSubscription.id, PrescriptionEvent.id, literal("pending"),
               literal(0), PrescriptionEvent.at, literal(""), PrescriptionEvent.at)
        .join(WebhookSubscription, and_(WebhookSubscription.consortium_id == PrescriptionEvent.consortium_id,
                                        WebhookSubscription.site_id == PrescriptionEvent.prescriber_site_id,
                                        WebhookSubscription.active.is_(True),
                                        WebhookSubscription.created_at <= PrescriptionEvent.at))
        .where(PrescriptionEvent.id.in_(events),
               # An event a process of the version before wrote with its deliveries is not delivered twice.
               ~select(WebhookDelivery.id).where(WebhookDelivery.event_id == PrescriptionEvent.id,
                                                 WebhookDelivery.subscription_id == WebhookSubscription.id).exists())
        .order_by(PrescriptionEvent.id, WebhookSubscription.id)))
    uow.session.execute(update(PrescriptionEvent).where(PrescriptionEvent.id.in_(events)).values(fanned_out=True))
    return len(events)


def deliver_due(uow: UnitOfWork, sender: Sender = http_sender) -> dict[str, int]:
    """Send every delivery whose time has come; failures are retried later, and given up after two days.

    Deliveries are claimed first (their next attempt moved past this run, in a short transaction), sent without
    holding a transaction open, endpoint by endpoint side by side, and their outcomes written afterwards. A
    process that dies mid-run leaves its claimed deliveries to be sent again once the claim lapses."""
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with uow:
        while fan_out(uow) == FAN_OUT_BATCH:  # a backlog (after an outage of the job) is made whole at once
            pass
        now = uow.now()
        due = uow.session.execute(
            select(WebhookDelivery, WebhookSubscription, PrescriptionEvent)
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .join(PrescriptionEvent, PrescriptionEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.id).limit(BATCH)
            # Several schedulers never run at once, but a manual run might: never send one delivery twice at once.
            .with_for_update(skip_locked=True, of=WebhookDelivery)).all()
        by_endpoint: dict[str, list[_Attempt]] = defaultdict(list)
        inactive: list[WebhookDelivery] = []
        timestamp = str(int(now.timestamp()))
        for delivery, subscription, event in due:
            if not subscription.active:
                inactive.append(delivery)
                continue
            if len(by_endpoint[subscription.url]) >= PER_ENDPOINT:
                continue
            body = json.dumps({"id": event.event_id, "type": event.type, "at": event.at.isoformat(),
                               "data": event.payload}, ensure_ascii=False, sort_keys=True).encode()
            by_endpoint[subscription.url].append(_Attempt(delivery.id, subscription.url, body, {
                "Content-Type": "application/json", "X-Event-Id": event.event_id, "X-Timestamp": timestamp,
                "X-Signature": sign(subscription.secret, timestamp, body),
                "X-Delivery-Attempt": str(delivery.attempts + 1)}))
        for delivery in inactive:
            delivery.status, delivery.last_error = "failed", "the subscription was deactivated"
            counts["failed"] += 1
        claimed = [a.delivery_id for attempts in by_endpoint.values() for a in attempts]
        if claimed:  # claimed past this run: another run meanwhile leaves them alone
            uow.session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(claimed)).values(
                next_attempt_at=now + timedelta(seconds=RUN_BUDGET + 2 * ATTEMPT_DEADLINE + 60)))
        healthy_first = sorted(by_endpoint, key=lambda url: _failing(due, url))
        uow.commit()

    outcomes = _send_side_by_side([by_endpoint[url] for url in healthy_first], sender)

    with uow:
        now = uow.now()
        rows = {d.id: (d, e) for d, e in uow.session.execute(
            select(WebhookDelivery, PrescriptionEvent).join(PrescriptionEvent,
                                                            PrescriptionEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id.in_(claimed)).with_for_update(of=WebhookDelivery))}
        for delivery_id, outcome in outcomes.items():
            delivery, event = rows[delivery_id]
            if outcome is None:  # not tried: its endpoint failed earlier in this run, or ran out of time
                delivery.next_attempt_at = now
                continue
            delivery.attempts += 1
            if outcome.ok:
                delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, ""
                counts["delivered"] += 1
            elif now - (delivery.retrying_since or event.at) >= GIVE_UP_AFTER:
                delivery.status, delivery.last_error = "failed", outcome.detail
                counts["failed"] += 1
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
                delivery.last_error = outcome.detail
                counts["retrying"] += 1
        uow.commit()
    return counts


def _failing(due: Sequence[tuple[WebhookDelivery, WebhookSubscription, PrescriptionEvent]], url: str) -> bool:
    """Whether the endpoint's last attempt failed (it is served after the healthy ones)."""
    return any(s.url == url and d.attempts > 0 for d, s, _ in due)


def _send_side_by_side(endpoints: list[list[_Attempt]], sender: Sender) -> dict[int, Outcome | None]:
    """Each endpoint's deliveries in order, endpoints side by side; an endpoint's first failure, or the end of its
    share of the run, leaves the rest of its deliveries untried (None) for the next run."""
    outcomes: dict[int, Outcome | None] = {a.delivery_id: None for attempts in endpoints for a in attempts}
    started = time.monotonic()

    def serve(attempts: list[_Attempt]) -> None:
        for attempt in attempts:
            if time.monotonic() - started > RUN_BUDGET:
                return
            try:
                outcome = sender(attempt.url, attempt.body, attempt.headers)
            except Exception as error:  # a sender that raises fails this attempt only
                outcome = Outcome(False, f"{type(error).__name__}: {error}"[:500])
            outcomes[attempt.delivery_id] = outcome
            if not outcome.ok:
                return  # the endpoint is not taking deliveries now: the rest wait for its next attempt

    if endpoints:
        with ThreadPoolExecutor(max_workers=min(ENDPOINTS_AT_ONCE, len(endpoints)),
                                thread_name_prefix="webhooks") as pool:
            list(pool.map(serve, endpoints))
    return outcomes


def list_deliveries(uow: UnitOfWork, subscription_id: int, status: str | None = None,
                    limit: int = 100) -> list[tuple[WebhookDelivery, PrescriptionEvent]]:
    """A subscription's deliveries, newest first, with their events."""
    with uow:
        uow.get_acting(WebhookSubscription, subscription_id, what="webhook")
        stmt = (select(WebhookDelivery, PrescriptionEvent)
                .join(PrescriptionEvent, PrescriptionEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.subscription_id == subscription_id))
        if status:
            stmt = stmt.where(WebhookDelivery.status == status)
        return [(d, e) for d, e in uow.session.execute(stmt.order_by(WebhookDelivery.id.desc()).limit(limit))]


def redeliver(uow: UnitOfWork, subscription_id: int, *, since: datetime | None = None,
              delivery_ids: Sequence[int] = ()) -> int:
    """Send again deliveries that were given up (all of the subscription's, those of events since a time, or the
    ones named): they are due at once, with a fresh two days of retries. Returns how many."""
    with uow:
        subscription = uow.get_acting(WebhookSubscription, subscription_id, for_update=True, what="webhook")
        if not subscription.active:
            raise ValidationFailed(Message("webhook %(id)s is deactivated: subscribe again to receive events",
                                           id=subscription_id), {"subscription_id": subscription_id})
        stmt = (select(WebhookDelivery).join(PrescriptionEvent, PrescriptionEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "failed")
                .with_for_update(of=WebhookDelivery))
        if since is not None:
            stmt = stmt.where(PrescriptionEvent.at >= since)
        if delivery_ids:
            stmt = stmt.where(WebhookDelivery.id.in_(list(delivery_ids)))
        again = list(uow.session.scalars(stmt))
        for delivery in again:
            delivery.status, delivery.next_attempt_at, delivery.last_error = "pending", uow.now(), ""
            delivery.attempts, delivery.retrying_since = 0, uow.now()
        uow.commit()
        return len(again)


@dataclass(frozen=True)
class SubscriptionHealth:
    """How a subscription's deliveries stand: counts by status, and the last error met."""

    subscription: WebhookSubscription
    site_code: str
    pending: int
    delivered: int
    failed: int
    last_error: str


def subscription_health(uow: UnitOfWork) -> list[SubscriptionHealth]:
    """Every subscription the caller may see, with its deliveries counted by status (for the webhooks page)."""
    from pharmacy.consortium.models import Site

    subscriptions = list_subscriptions(uow)
    with uow:
        counts: dict[tuple[int, str], int] = {(sid, status): n for sid, status, n in uow.session.execute(
            select(WebhookDelivery.subscription_id, WebhookDelivery.status, func.count())
            .where(WebhookDelivery.subscription_id.in_([s.id for s in subscriptions]))
            .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status))}
        errors = dict(uow.session.execute(
            select(WebhookDelivery.subscription_id, WebhookDelivery.last_error)
            .where(WebhookDelivery.id.in_(select(func.max(WebhookDelivery.id)).where(
                WebhookDelivery.subscription_id.in_([s.id for s in subscriptions]), WebhookDelivery.last_error != "")
                .group_by(WebhookDelivery.subscription_id)))).all())
        codes = dict(uow.session.execute(select(Site.id, Site.code)).all())
    return [SubscriptionHealth(s, codes.get(s.site_id, ""), counts.get((s.id, "pending"), 0),
                               counts.get((s.id, "delivered"), 0), counts.get((s.id, "failed"), 0),
                               errors.get(s.id, "")) for s in subscriptions]
