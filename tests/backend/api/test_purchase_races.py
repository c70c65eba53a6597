"""Purchases racing each other and the writer's release, on PostgreSQL (SQLite's writers take
turns under one lock, so only PostgreSQL runs them side by side): a member's caps and debt
are read under the partner's row lock, so two writes never both count what neither has seen."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from support.backend import auth, confirm_all, make_member, make_partner, post, token_of

from loyalty.db.models import Debt
from loyalty.domain.earning.context import Line
from loyalty.services import events, members, purchases
from loyalty.services.uow import UnitOfWork

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Held:
    """A purchase recorded in a transaction of its own, left open (holding its locks) until
    `commit`."""

    def __init__(
        self, client, partner_id: int, member_id: int, order_id: str, dollars: int, occurred_at: datetime
    ) -> None:
        self.recorded, self.go = threading.Event(), threading.Event()
        runtime = client.app.state.runtime

        def run() -> None:
            with runtime.sessions() as session:
                uow = UnitOfWork.of(runtime, session)
                purchases.record(
                    uow,
                    purchases.Order(
                        partner_id, member_id, order_id, occurred_at, "USD", [Line("beans", "", 1, dollars * 100)]
                    ),
                )
                self.recorded.set()
                self.go.wait(10)
                session.commit()

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.recorded.wait(10)

    def commit(self) -> None:
        self.go.set()
        self.thread.join(10)


def _in_background(target) -> threading.Thread:
    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(0.5)  # long enough to have read whatever it would read without waiting
    return thread


def test_aReleaseRacingAPurchase_paysTheMembersDebtOnce(client, writer):
    partner = make_partner(client)
    assert post(client, "/v1/rules", PER_DOLLAR, partner["api_key"]).status_code == 201
    member = make_member(client, partner["api_key"])
    order = {
        "member_id": member["id"],
        "currency": "USD",
        "lines": [{"sku": "beans", "quantity": 1, "unit_price_minor": 1_200}],
    }
    post(
        client,
        "/v1/purchases",
        {**order, "order_id": "D-1", "occurred_at": datetime.now(UTC).isoformat()},
        partner["api_key"],
    )
    post(client, "/v1/purchases/D-1/refunds", {"refund_id": "all"}, partner["api_key"])  # released: a debt of 12
    assert client.patch("/v1/programs/1", json={"pending_days": 14}, headers=auth("adm_test")).status_code == 200
    due_soon = (datetime.now(UTC) - timedelta(days=14) + timedelta(seconds=30)).isoformat()
    post(client, "/v1/purchases", {**order, "order_id": "D-2", "occurred_at": due_soon}, partner["api_key"])  # pending
    sessions = client.app.state.runtime.sessions

    # A purchase that releases at once (reported after its window) pays the debt, not committed yet...
    held = Held(client, partner["id"], member["id"], "D-3", 20, datetime.now(UTC) - timedelta(days=15))

    def release() -> None:  # ...while the writer releases D-2
        with sessions() as session:
            purchases.release_due(session, datetime.now(UTC) + timedelta(minutes=1))
            session.commit()

    writer_thread = _in_background(release)
    waited = writer_thread.is_alive()  # it waits for the purchase's lock before reading the debt
    held.commit()
    writer_thread.join(10)
    confirm_all(writer)

    assert waited
    with sessions() as session:
        debts = sorted(d.points for d in session.query(Debt).filter_by(member_id=member["id"]))
    assert debts == [-12, 12]  # paid once: D-3 paid it, D-2 found nothing owed
    assert token_of(client).balance_of(member["wallet_address"]) == 12 + (20 - 12) + 12


def test_twoPurchasesAtOnce_neverBothEarnWhatTheCapAllowsOnlyOnce(client, writer):
    partner = make_partner(client)
    capped = {**PER_DOLLAR, "limits": {"per_member": 15, "period": "month"}}
    assert post(client, "/v1/rules", capped, partner["api_key"]).status_code == 201
    member = make_member(client, partner["api_key"])
    now = datetime.now(UTC)

    held = Held(client, partner["id"], member["id"], "K-1", 15, now)
    runtime = client.app.state.runtime

    def second() -> None:
        with runtime.sessions() as session:
            uow = UnitOfWork.of(runtime, session)
            purchases.record(
                uow, purchases.Order(partner["id"], member["id"], "K-2", now, "USD", [Line("beans", "", 1, 1_500)])
            )
            session.commit()

    racing = _in_background(second)
    waited = racing.is_alive()
    held.commit()
    racing.join(10)

    assert waited
    totals = [
        client.get(f"/v1/purchases/{o}", headers=auth(partner["api_key"])).json()["total_points"]
        for o in ("K-1", "K-2")
    ]
    assert totals == [15, 0]


def test_twoEnrolmentsAtOnce_atOnePartner_neitherDeadlocks(client):
    """Each enrolment links its member to the partner (a row referencing the partner's, which
    takes a key-share lock on it) and then holds the partner's budget for the enrolment bonus:
    that lock must not wait for the other's key-share lock, or the two deadlock."""
    partner = make_partner(client)
    welcome = {"name": "Welcome", "trigger": "enrolment", "calculator": {"strategy": "fixed", "points": 5}}
    assert post(client, "/v1/rules", welcome, partner["api_key"]).status_code == 201
    runtime = client.app.state.runtime
    linked, outcomes = threading.Barrier(2), []

    def enrol(i: int) -> None:
        with runtime.sessions() as session:
            uow = UnitOfWork.of(runtime, session)
            member = members.create(uow, f"friend-{i}", None, partner_id=partner["id"])
            linked.wait(10)
            try:
                events.enrolled(uow, partner["id"], member)
                session.commit()
                outcomes.append("enrolled")
            except Exception as exc:  # a deadlock PostgreSQL broke: what this test is about
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=enrol, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["enrolled", "enrolled"]
