"""Webhook delivery that no endpoint can stall: real HTTP endpoints that answer garbage, hang or trickle their
answer never delay another hospital's deliveries beyond one run, and a delivery given up can be sent again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select

from pharmacy.accounts.services import create_api_key
from pharmacy.prescriptions import webhooks
from pharmacy.prescriptions.models import WebhookDelivery
from pharmacy.principal import SYSTEM, Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_prescriptions import factory, rx, stock
from tests.factories import World, add_drug

pytestmark = pytest.mark.usefixtures("clock")  # 2026-11-23, noon in Hangzhou

DEADLINE = 1.5  # seconds per attempt in these tests (ten in production)
JOB_INTERVAL = 30.0


class Endpoint:
    """A local HTTP endpoint that behaves as told, and notes when each request reached it."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.arrivals: list[float] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                length = int(data.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                while len(data.split(b"\r\n\r\n", 1)[1]) < length:
                    data += conn.recv(65536)
                self.arrivals.append(time.monotonic())
                if self.behaviour == "healthy":
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                elif self.behaviour == "garbage":
                    conn.sendall(b"HELLO, THIS IS NOT HTTP\r\n\r\n")
                elif self.behaviour == "hanging":
                    self.stopped.wait(30)
                elif self.behaviour == "trickling":  # a byte at a time, each well inside a per-read timeout
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 200:
                        conn.sendall(bytes([byte]))
                        if self.stopped.wait(0.2):
                            return
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.server.close()


@contextmanager
def endpoints(*behaviours: str) -> Iterator[list[Endpoint]]:
    made = [Endpoint(b) for b in behaviours]
    try:
        yield made
    finally:
        for endpoint in made:
            endpoint.close()


@pytest.fixture
def two_hospitals(client, world: World) -> dict[str, dict[str, str]]:
    """The lead hospital's prescribing system and H2's, each with its own key."""
    uow = UnitOfWork(factory(client), system_for(world.a.consortium_id))
    _, h2_key = create_api_key(uow, world.a.consortium_id, "H2 HIS", Role.PRESCRIBER, world.a.sites["H2"])
    return {"LEAD": world.a.headers("prescriber"), "H2": {"Authorization": f"Bearer {h2_key}"}}


def prescribe(client, headers: dict[str, str], numbers: range, prefix: str) -> None:
    for n in numbers:
        response = client.post("/api/prescriptions", json=rx(f"{prefix}-{n}"), headers=headers)
        assert response.status_code == 201, response.get_json()


def run_job(client, clock) -> tuple[dict[str, int], float]:
    started = time.monotonic()
    counts = webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock))
    return counts, time.monotonic() - started


def deliveries(client, subscription_id: int) -> list[WebhookDelivery]:
    with factory(client)() as session:
        return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
                                    .order_by(WebhookDelivery.id)))


@pytest.mark.parametrize("behaviour", ["garbage", "hanging", "trickling"])
def test_an_endpoint_that_misbehaves_never_delays_another_hospitals_deliveries(
        client, world, two_hospitals, clock, behaviour, monkeypatch):
    monkeypatch.setattr(webhooks, "ATTEMPT_DEADLINE", DEADLINE)
    drug = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", drug, "L1", "2027-06-30", 1000)
    with endpoints(behaviour, "healthy") as (bad, good):
        bad_sub = client.post("/api/webhooks", json={"url": bad.url}, headers=two_hospitals["LEAD"]).get_json()
        good_sub = client.post("/api/webhooks", json={"url": good.url}, headers=two_hospitals["H2"]).get_json()
        prescribe(client, two_hospitals["LEAD"], range(10), "LEAD")  # ten events wait behind the bad endpoint
        prescribe(client, two_hospitals["H2"], range(3), "H2")
        started = time.monotonic()
        counts, took = run_job(client, clock)
        assert [d.status for d in deliveries(client, good_sub["id"])] == ["delivered"] * 3
        assert len(good.arrivals) == 3 and max(good.arrivals) - started < 1.0  # not held up by the bad endpoint
        assert took < DEADLINE + 1.0 < JOB_INTERVAL
        tried, *waiting = deliveries(client, bad_sub["id"])
        assert (tried.status, tried.attempts) == ("pending", 1) and tried.last_error
        assert all(d.attempts == 0 and d.status == "pending" for d in waiting)  # not burnt on a dead endpoint
        assert counts == {"delivered": 3, "retrying": 1, "failed": 0}
        if behaviour == "garbage":
            assert "BadStatusLine" in tried.last_error
        else:
            assert tried.last_error == f"no answer within {DEADLINE:g} s"


def test_a_sender_that_raises_fails_that_delivery_alone(client, world, two_hospitals, clock):
    drug = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", drug, "L1", "2027-06-30", 1000)
    bad = client.post("/api/webhooks", json={"url": "http://bad.example/hook"},
                      headers=two_hospitals["LEAD"]).get_json()
    client.post("/api/webhooks", json={"url": "http://good.example/hook"}, headers=two_hospitals["H2"])
    prescribe(client, two_hospitals["LEAD"], range(1), "LEAD")
    prescribe(client, two_hospitals["H2"], range(1), "H2")

    def sender(url: str, body: bytes, headers: dict[str, str]) -> webhooks.Outcome:
        if "bad" in url:
            raise RuntimeError("the endpoint library broke")
        return webhooks.Outcome(True, "HTTP 200")

    assert webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), sender) == {
        "delivered": 1, "retrying": 1, "failed": 0}
    assert "RuntimeError: the endpoint library broke" in deliveries(client, bad["id"])[0].last_error


def test_an_outage_through_the_night_loses_no_notification(client, world, two_hospitals, clock):
    drug = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", drug, "L1", "2027-06-30", 1000)
    sub = client.post("/api/webhooks", json={"url": "http://hospital.example/hook"},
                      headers=two_hospitals["LEAD"]).get_json()
    prescribe(client, two_hospitals["LEAD"], range(13), "LEAD")
    down = lambda url, body, headers: webhooks.Outcome(False, "HTTP 503")  # noqa: E731
    for _ in range(8 * 12):  # eight hours, a run every five minutes
        webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), down)
        clock.advance(minutes=5)
    assert {d.status for d in deliveries(client, sub["id"])} == {"pending"}
    clock.advance(hours=1)
    up = lambda url, body, headers: webhooks.Outcome(True, "HTTP 200")  # noqa: E731
    for _ in range(13):
        webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), up)
    assert [d.status for d in deliveries(client, sub["id"])] == ["delivered"] * 13


def test_a_delivery_given_up_is_sent_again_on_request(client, world, two_hospitals, clock):
    drug = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", drug, "L1", "2027-06-30", 1000)
    headers = two_hospitals["LEAD"]
    sub = client.post("/api/webhooks", json={"url": "http://hospital.example/hook"}, headers=headers).get_json()
    prescribe(client, headers, range(2), "LEAD")
    down = lambda url, body, headers: webhooks.Outcome(False, "HTTP 503")  # noqa: E731
    for _ in range(60):  # more than two days of hourly retries
        webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), down)
        clock.advance(hours=1)
    failed = client.get(f"/api/webhooks/{sub['id']}/deliveries?status=failed", headers=headers).get_json()
    assert len(failed) == 2 and failed[0]["last_error"] == "HTTP 503" and failed[0]["event_id"]
    # Another hospital's system cannot see or send again this one's deliveries.
    other = two_hospitals["H2"]
    assert client.get(f"/api/webhooks/{sub['id']}/deliveries", headers=other).status_code in (403, 404)
    assert client.post(f"/api/webhooks/{sub['id']}/redeliver", json={}, headers=other).status_code in (403, 404)
    again = client.post(f"/api/webhooks/{sub['id']}/redeliver", json={"delivery_ids": [failed[0]["id"]]},
                        headers=headers)
    assert again.get_json() == {"redelivered": 1}
    up = lambda url, body, headers: webhooks.Outcome(True, "HTTP 200")  # noqa: E731
    assert webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), up)["delivered"] == 1
    assert client.post(f"/api/webhooks/{sub['id']}/redeliver", json={}, headers=headers).get_json() == {
        "redelivered": 1}
    assert webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), up)["delivered"] == 1
    assert {d["status"] for d in client.get(f"/api/webhooks/{sub['id']}/deliveries", headers=headers).get_json()} \
        == {"delivered"}


def test_backoff_grows_to_an_hour_and_no_further():
    assert [webhooks.backoff(n) for n in (1, 2, 3)] == [timedelta(seconds=30), timedelta(minutes=1),
                                                         timedelta(minutes=2)]
    assert webhooks.backoff(8) == webhooks.backoff(500) == timedelta(hours=1)


def test_an_administrator_sees_what_was_given_up_and_sends_it_again_from_the_page(client, world, two_hospitals,
                                                                                   clock):
    from pharmacy.accounts.services import create_user
    from tests.api.test_pages import PASSWORD, sign_in, token

    create_user(UnitOfWork(factory(client), system_for(world.a.consortium_id)), world.a.consortium_id, "ops",
                PASSWORD, Role.ADMIN, None)
    drug = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", drug, "L1", "2027-06-30", 1000)
    sub = client.post("/api/webhooks", json={"url": "http://hospital.example/hook"},
                      headers=two_hospitals["LEAD"]).get_json()
    prescribe(client, two_hospitals["LEAD"], range(3), "LEAD")
    down = lambda url, body, headers: webhooks.Outcome(False, "HTTP 503")  # noqa: E731
    for _ in range(60):
        webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), down)
        clock.advance(hours=1)
    sign_in(client, "ops")
    page = client.get("/webhooks").get_data(as_text=True)
    assert "http://hospital.example/hook" in page and "HTTP 503" in page and "重新发送" in page
    sent = client.post(f"/webhooks/{sub['id']}/redeliver", data={"csrf_token": token(page)}, follow_redirects=True)
    assert "3 条推送将立即重新发送" in sent.get_data(as_text=True)
    assert {d.status for d in deliveries(client, sub["id"])} == {"pending"}


def test_the_delivery_job_makes_each_event_a_delivery_to_the_subscriptions_that_existed_when_it_happened(
        client, world, two_hospitals, clock):
    drug = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", drug, "L1", "2027-06-30", 1000)
    lead, h2 = two_hospitals["LEAD"], two_hospitals["H2"]
    early = client.post("/api/webhooks", json={"url": "http://lead.example/a"}, headers=lead).get_json()
    prescribe(client, lead, range(2), "LEAD")
    prescribe(client, h2, range(1), "H2")
    clock.advance(minutes=1)
    late = client.post("/api/webhooks", json={"url": "http://lead.example/b"}, headers=lead).get_json()
    assert deliveries(client, early["id"]) == []  # the request wrote its event only: the job makes the deliveries
    sent: list[str] = []

    def up(url: str, body: bytes, headers: dict[str, str]) -> webhooks.Outcome:
        sent.append(url)
        return webhooks.Outcome(True, "HTTP 200")

    webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), up)
    webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), up)  # a second run makes none again
    # The lead hospital's two events, once each, to the subscription it had then; none of H2's, none to the later one.
    assert [d.status for d in deliveries(client, early["id"])] == ["delivered"] * 2
    assert deliveries(client, late["id"]) == [] and sent == ["http://lead.example/a"] * 2
    prescribe(client, lead, range(2, 3), "LEAD")
    webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), up)
    assert len(deliveries(client, early["id"])) == len(deliveries(client, late["id"])) + 2 == 3


def test_an_event_written_with_its_deliveries_by_the_version_before_is_not_delivered_twice(client, world,
                                                                                          two_hospitals, clock):
    from pharmacy.prescriptions.models import PrescriptionEvent

    drug = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", drug, "L1", "2027-06-30", 1000)
    sub = client.post("/api/webhooks", json={"url": "http://lead.example/a"}, headers=two_hospitals["LEAD"]).get_json()
    prescribe(client, two_hospitals["LEAD"], range(1), "LEAD")
    with factory(client)() as session:  # as a process of the version before wrote it: the delivery with the event
        event = session.scalars(select(PrescriptionEvent).order_by(PrescriptionEvent.id.desc())).first()
        assert event is not None and not event.fanned_out
        session.add(WebhookDelivery(consortium_id=world.a.consortium_id, subscription_id=sub["id"],
                                    event_id=event.id, next_attempt_at=event.at, retrying_since=event.at))
        session.commit()
    up = lambda url, body, headers: webhooks.Outcome(True, "HTTP 200")  # noqa: E731
    webhooks.deliver_due(UnitOfWork(factory(client), SYSTEM, clock), up)
    assert [d.status for d in deliveries(client, sub["id"])] == ["delivered"]
