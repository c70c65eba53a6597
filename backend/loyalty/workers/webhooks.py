"""The webhook sender: delivers recorded events to their endpoints, signed, at least once and in
order per member, retrying with exponential backoff; an endpoint that keeps failing is disabled
(its deliveries wait for it, none is lost).

Any number of senders may run (each worker process runs one): a sender claims the deliveries it
sends by moving their `next_attempt_at` past its timeout first, so two never send the same one
at once, and one that dies mid-send leaves its claims to expire and be sent again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import (
    DeliveryStatus,
    Member,
    Program,
    ProgramStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from loyalty.db.session import pairs_in, write_lock
from loyalty.domain import webhooks as messages
from loyalty.runtime import Runtime
from loyalty.services import members, partners, webhooks

log = logging.getLogger("loyalty.workers.webhooks")
Tried = tuple[int, datetime, int | None, str | None, int]  # delivery, attempted at, status code, error, ms


@dataclass
class WebhookSender:
    """Sends due deliveries, a batch per pass; one endpoint's in order, endpoints side by side."""

    runtime: Runtime
    timeout_s: float = 10.0
    batch: int = 200
    retry_base_s: float = 5.0  # the first retry's wait; each after waits twice as long
    retry_max_s: float = 6 * 3600.0
    failures_to_disable: int = 20  # failed attempts in a row before the endpoint is disabled
    poll_s: float = 0.5
    record_every: int = 50  # attempts written to the log together
    expiring_notice_days: int = 30  # `points.expiring` for lots expiring within this many days
    expiring_every_s: float = 3600.0  # how often members' lots are read for it (and dormancy looked for)
    dormant_days: int = 90  # `member.dormant` once a member holding points did nothing for this long
    clock: Callable[[], datetime] = utcnow
    _expiring_due: float = field(default=0.0, repr=False)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "webhook"), repr=False)
    # One client for every pass and endpoint: its connections stay open between passes, and
    # its TLS context (loading the CA bundle costs more than a local delivery) is made once. It
    # keeps no cookies: one partner's receiver must not set what another's is sent.
    client: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            timeout=self.timeout_s,
            limits=httpx.Limits(max_keepalive_connections=32),
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    def sessions(self) -> Session:
        return self.runtime.sessions()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                log.exception("a webhook pass failed")
                sent = 0
            if not sent:
                stop.wait(self.poll_s)
        self._pool.shutdown(wait=False)
        self.client.close()

    def run_once(self) -> int:
        """Claim the due deliveries (each the oldest one waiting for its endpoint and member)
        and send them; returns how many were tried. Every `expiring_every_s`, first announce
        points about to expire."""
        if time.monotonic() >= self._expiring_due:
            self._expiring_due = time.monotonic() + self.expiring_every_s
            for announce in (self.announce_expiring, self.announce_dormant):
                try:
                    announce()
                except Exception:  # the chain away, say: the next round tries again
                    log.exception("%s failed", announce.__name__)
        claimed = self._claim()
        by_endpoint: dict[int, list[int]] = {}
        for delivery_id, endpoint_id in claimed:
            by_endpoint.setdefault(endpoint_id, []).append(delivery_id)
        list(self._pool.map(lambda item: self._send_all(*item), by_endpoint.items()))
        return len(claimed)

    # ------------------------------------------------------------------------ re-engagement
    def announce_expiring(self, batch: int = 500) -> int:
        """A `points.expiring` event for each lot of a member's points that expires within
        `expiring_notice_days`, once per lot, to the brands the member is linked to in the lot's
        program (so their messaging can remind the member). Read from the chain (`lotsOf`, a
        batch of members per call, in every program); nothing is read when no endpoint asks."""
        now = self.clock()
        start, horizon = int(now.timestamp()), int(now.timestamp()) + self.expiring_notice_days * 86_400
        with self.sessions() as session:
            if not webhooks.wanted(session, "points.expiring"):
                return 0
            programs = session.execute(
                select(Program.id, Program.token_address)
                .where(Program.status == ProgramStatus.ACTIVE, Program.token_address.is_not(None))
                .order_by(Program.id)
            ).all()
        announced, after = 0, 0
        while True:
            with self.sessions() as session:
                rows = session.execute(
                    select(Member.id, Member.wallet_address).where(Member.id > after).order_by(Member.id).limit(batch)
                ).all()
            if not rows:
                return announced
            after = rows[-1][0]
            for program_id, address in programs:
                lots = self.runtime.token_at(str(address)).lots_of_many([wallet for _, wallet in rows])
                soon = [
                    (member_id, expires_at, amount)
                    for member_id, wallet in rows
                    for expires_at, amount in lots[wallet]
                    if start < expires_at <= horizon and amount > 0
                ]
                if soon:
                    announced += self._announce(program_id, soon)

    def announce_dormant(self, batch: int = 500) -> int:
        """A `member.dormant` event for each member who holds points and has done nothing
        (enrolled, earned, redeemed, donated, exchanged) for `dormant_days`, once per quiet spell
        (the event names the last activity: a member active again and then quiet again is
        announced again), to the brands it is linked to. Balances are read from the chain, only
        while an endpoint asks."""
        cutoff = self.clock() - timedelta(days=self.dormant_days)
        with self.sessions() as session:
            if not webhooks.wanted(session, "member.dormant"):
                return 0
            programs = session.execute(
                select(Program.id, Program.token_address)
                .where(Program.status == ProgramStatus.ACTIVE, Program.token_address.is_not(None))
                .order_by(Program.id)
            ).all()
            quiet = session.execute(members.quiet_since(cutoff)).all()
        announced = 0
        for start in range(0, len(quiet), batch):
            rows = quiet[start : start + batch]
            wallets = [wallet for _, wallet, _ in rows]
            held: dict[int, list[dict[str, int]]] = {}
            for program_id, address in programs:
                state = self.runtime.token_at(str(address)).members_state(wallets)
                for member_id, wallet, _ in rows:
                    if (points := state[wallet][0]) > 0:
                        held.setdefault(member_id, []).append({"program_id": program_id, "balance_points": points})
            if not held:
                continue
            with self.sessions() as session, write_lock(session):
                linked = members.links_of(session, list(held))
                announced += webhooks.emit(
                    session,
                    "member.dormant",
                    [
                        webhooks.Happened(
                            f"{member_id}:{last.isoformat()}", None, member_id,
                            {"member_id": member_id, "last_active_at": last.isoformat(),
                             "dormant_days": self.dormant_days, "programs": held[member_id]},
                            audience=frozenset(linked.get(member_id, ())),
                        )
                        for member_id, _, last in rows
                        if member_id in held
                    ],
                )  # fmt: skip
                session.commit()
        return announced

    def _announce(self, program_id: int, soon: Sequence[tuple[int, int, int]]) -> int:
        with self.sessions() as session, write_lock(session):
            linked = partners.brands_in_program(session, program_id, {member_id for member_id, _, _ in soon})
            recorded = webhooks.emit(
                session,
                "points.expiring",
                [
                    webhooks.Happened(
                        f"{program_id}:{member_id}:{expires_at}", None, member_id,
                        {"member_id": member_id, "program_id": program_id, "amount_points": amount,
                         "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat()},
                        audience=frozenset(linked.get(member_id, ())),
                    )
                    for member_id, expires_at, amount in soon
                ],
            )  # fmt: skip
            session.commit()
        return recorded

    # ------------------------------------------------------------------------------ claiming
    def _claim(self) -> list[tuple[int, int]]:
        now = self.clock()
        with self.sessions() as session, write_lock(session):
            due = session.execute(
                select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.member_id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookEndpoint.disabled_at.is_(None),
                    WebhookEndpoint.deleted_at.is_(None),
                )
                .order_by(WebhookDelivery.id)
                .limit(self.batch)
            ).all()
            if not due:
                return []
            # In order per member: a delivery goes only once every earlier one for the same
            # endpoint and member is delivered (due or not: one waiting out its backoff holds
            # back those after it).
            keyed = {(endpoint_id, member_id) for _, endpoint_id, member_id in due if member_id is not None}
            first = {
                (endpoint_id, member_id): int(earliest)
                for endpoint_id, member_id, earliest in session.execute(
                    select(WebhookDelivery.endpoint_id, WebhookDelivery.member_id, func.min(WebhookDelivery.id))
                    .where(
                        WebhookDelivery.status == DeliveryStatus.PENDING,
                        pairs_in(WebhookDelivery.endpoint_id, WebhookDelivery.member_id, keyed),
                    )
                    .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.member_id)
                )
            }
            going = [
                (delivery_id, endpoint_id)
                for delivery_id, endpoint_id, member_id in due
                if member_id is None or first.get((endpoint_id, member_id)) == delivery_id
            ]
            if not going:
                return []
            claimed = set(
                session.scalars(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id.in_([d for d, _ in going]),
                        WebhookDelivery.status == DeliveryStatus.PENDING,
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=now + timedelta(seconds=self.timeout_s * 3))
                    .returning(WebhookDelivery.id)
                )
            )
            session.commit()
        return [(d, e) for d, e in going if d in claimed]

    # ------------------------------------------------------------------------------- sending
    def _send_all(self, endpoint_id: int, delivery_ids: Sequence[int]) -> None:
        """One endpoint's deliveries, in order, over a kept-alive connection; after a failure the rest
        wait for the next pass (their claims are let go), so a receiver that is down costs one
        attempt per pass. The attempts are recorded `record_every` at a time, and at least every
        `timeout_s` (a third of a claim's time: a sender that dies before recording sends those
        again once its claims run out, at least once; one that lives never outlasts its claims)."""
        tried: list[Tried] = []
        rest: Sequence[int] = ()
        recorded = time.monotonic()
        try:
            with self.sessions() as session:
                endpoint = session.get(WebhookEndpoint, endpoint_id)
                assert endpoint is not None
                secrets = webhooks.secrets_of(self.runtime.custody, endpoint, self.clock())
                url = endpoint.url
                events = {
                    delivery_id: (event_id, payload)
                    for delivery_id, event_id, payload in session.execute(
                        select(WebhookDelivery.id, WebhookEvent.id, WebhookEvent.payload)
                        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                        .where(WebhookDelivery.id.in_(list(delivery_ids)))
                    )
                }
            for i, delivery_id in enumerate(delivery_ids):
                attempted_at = self.clock()
                status_code, error, took_ms = self._post(self.client, url, secrets, *events[delivery_id])
                tried.append((delivery_id, attempted_at, status_code, error, took_ms))
                if error is not None:
                    rest = delivery_ids[i + 1 :]
                    break
                if len(tried) >= self.record_every or time.monotonic() - recorded >= self.timeout_s:
                    self._record(endpoint_id, tried)
                    tried, recorded = [], time.monotonic()
        except Exception:
            log.exception("sending to webhook endpoint %s failed", endpoint_id)
        finally:
            self._record(endpoint_id, tried)
            self._release(rest)

    def _post(
        self, client: httpx.Client, url: str, secrets: list[str], event_id: int, payload: str
    ) -> tuple[int | None, str | None, int]:
        """Send one message, signed; (status code, error, milliseconds)."""
        message_id, timestamp = messages.msg_id(event_id), int(self.clock().timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "loyalty-ledger-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": messages.signatures(secrets, message_id, timestamp, payload),
        }
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            answer = client.post(url, content=payload.encode(), headers=headers)
            status_code = answer.status_code
            if not 200 <= status_code < 300:
                error = f"the receiver answered {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        return status_code, error, int((time.monotonic() - started) * 1000)

    def _record(self, endpoint_id: int, tried: Sequence[Tried]) -> None:
        """The attempts in the log, in order, and what follows from each: delivered; or retried
        later, and the endpoint disabled after too many failures in a row."""
        if not tried:
            return
        now = self.clock()
        with self.sessions() as session, write_lock(session):
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            found = {
                d.id: d
                for d in session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_([t[0] for t in tried])))
            }
            for delivery_id, attempted_at, status_code, error, took_ms in tried:
                delivery = found[delivery_id]
                session.add(
                    WebhookAttempt(
                        delivery_id=delivery_id, status_code=status_code, error=error, duration_ms=took_ms,
                        attempted_at=attempted_at,
                    )
                )  # fmt: skip
                delivery.attempts += 1
                delivery.last_status_code, delivery.last_error = status_code, error
                if error is None:
                    delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, attempted_at
                    endpoint.failures = 0
                    continue
                wait = min(self.retry_base_s * 2 ** (delivery.attempts - 1), self.retry_max_s)
                delivery.next_attempt_at = now + timedelta(seconds=wait)
                endpoint.failures += 1
                if endpoint.failures >= self.failures_to_disable and endpoint.disabled_at is None:
                    endpoint.disabled_at = now
                    endpoint.disabled_reason = f"{endpoint.failures} failed attempts in a row; the last: {error}"[:500]
                    log.warning("webhook endpoint %s disabled: %s", endpoint_id, endpoint.disabled_reason)
            session.commit()

    def _release(self, delivery_ids: Sequence[int]) -> None:
        if not delivery_ids:
            return
        with self.sessions() as session, write_lock(session):
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(list(delivery_ids)), WebhookDelivery.status == DeliveryStatus.PENDING)
                .values(next_attempt_at=self.clock())
            )
            session.commit()


def run_sender(sender: WebhookSender, stop: threading.Event) -> threading.Thread:
    """Start the sender in a daemon thread."""
    thread = threading.Thread(target=sender.run, args=(stop,), name="webhook-sender", daemon=True)
    thread.start()
    return thread


def deliver_all(sender: WebhookSender, timeout_s: float = 30) -> int:
    """Run passes until nothing is due (tests, CLI one-shot); returns how many were tried."""
    deadline, tried = time.monotonic() + timeout_s, 0
    while sent := sender.run_once():
        tried += sent
        if time.monotonic() > deadline:
            raise TimeoutError("webhook deliveries did not drain in time")
    return tried
