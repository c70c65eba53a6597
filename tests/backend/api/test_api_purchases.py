"""Purchases end to end on Anvil: priced by the partner's rules, held for the pending period,
minted through the outbox; refunds inside the window cancel, after it they make a debt the
next purchase pays first (nothing is burned without the member)."""

from datetime import UTC, datetime, timedelta

from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, token_of

from loyalty.services import purchases

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
LATTES = {"sku": "latte", "category": "drinks", "quantity": 2, "unit_price_minor": 450}
CROISSANT = {"sku": "croissant", "category": "pastries", "quantity": 1, "unit_price_minor": 325, "discount_minor": 25}
SHIPPING = {"sku": "delivery", "quantity": 1, "unit_price_minor": 500, "kind": "shipping"}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _program(client, pending_days: int) -> None:
    response = client.patch("/v1/programs/1", json={"pending_days": pending_days}, headers=auth(ADMIN_KEY))
    assert response.status_code == 200 and response.json()["pending_days"] == pending_days, response.text


def _shop(client, budget: int = 1_000_000, rule: dict = PER_DOLLAR):
    partner = make_partner(client, budget=budget)
    assert post(client, "/v1/rules", rule, partner["api_key"]).status_code == 201
    return partner, make_member(client, partner["api_key"])


def _buy(client, partner, member, order_id, *lines, occurred_at=None):
    body = {
        "member_id": member["id"],
        "order_id": order_id,
        "occurred_at": occurred_at or _now(),
        "currency": "USD",
        "lines": list(lines),
    }
    return post(client, "/v1/purchases", body, partner["api_key"])


def _member(client, partner, member):
    return client.get(f"/v1/members/{member['id']}", headers=auth(partner["api_key"])).json()


def test_purchase_withoutPendingPeriod_mintsItsNetItemPointsAtOnce(client, writer):
    partner, member = _shop(client)

    bought = _buy(client, partner, member, "A-1", LATTES, CROISSANT, SHIPPING)
    replayed = _buy(client, partner, member, "A-1", LATTES)
    confirm_all(writer)

    assert bought.status_code == 202, bought.text
    assert (bought.json()["status"], bought.json()["total_points"]) == ("released", 12)
    assert bought.json()["awards"][0]["reason"] == "1 point per dollar net"
    assert (replayed.status_code, replayed.json()["code"]) == (409, "order_exists")
    assert token_of(client).balance_of(member["wallet_address"]) == 12
    earn = client.get(f"/v1/earn/{bought.json()['earn_id']}", headers=auth(partner["api_key"])).json()
    assert (earn["status"], earn["amount_points"], earn["reason"]) == ("confirmed", 12, "order A-1")


def test_refundInsideThePendingWindow_cancelsPointsNeverMinted(client, writer):
    _program(client, 14)
    partner, member = _shop(client)
    bought = _buy(client, partner, member, "B-1", LATTES, CROISSANT).json()
    assert (bought["status"], bought["total_points"]) == ("pending", 12)
    assert _member(client, partner, member)["pending_points"] == 12

    refunded = post(
        client,
        "/v1/purchases/B-1/refunds",
        {"refund_id": "r1", "lines": [{"sku": "croissant", "quantity": 1}]},
        partner["api_key"],
    )
    again = post(
        client,
        "/v1/purchases/B-1/refunds",
        {"refund_id": "r1", "lines": [{"sku": "croissant", "quantity": 1}]},
        partner["api_key"],
    )
    too_much = post(
        client,
        "/v1/purchases/B-1/refunds",
        {"refund_id": "r2", "lines": [{"sku": "latte", "quantity": 3}]},
        partner["api_key"],
    )
    with client.app.state.runtime.sessions() as session:
        released = purchases.release_due(session, datetime.now(UTC) + timedelta(days=15))
        session.commit()
    confirm_all(writer)

    assert (refunded.status_code, refunded.json()["points_reversed"], refunded.json()["debt_points"]) == (201, 3, 0)
    assert again.json()["id"] == refunded.json()["id"]  # a refund id seen before answers its refund
    assert (too_much.status_code, too_much.json()["code"]) == (422, "refund_exceeds_purchase")
    assert released == 1
    assert token_of(client).balance_of(member["wallet_address"]) == 9
    view = client.get("/v1/purchases/B-1", headers=auth(partner["api_key"])).json()
    assert view["status"] == "released" and [a["points"] for a in view["awards"]] == [12, -3]
    assert _member(client, partner, member)["pending_points"] == 0


def test_refundAfterRelease_becomesADebtTheNextPurchasePaysFirst(client, writer):
    partner, member = _shop(client)
    _buy(client, partner, member, "C-1", LATTES, CROISSANT)
    confirm_all(writer)

    refunded = post(client, "/v1/purchases/C-1/refunds", {"refund_id": "all"}, partner["api_key"]).json()
    whole_again = post(client, "/v1/purchases/C-1/refunds", {"refund_id": "again"}, partner["api_key"])
    in_debt = _member(client, partner, member)
    next_order = _buy(client, partner, member, "C-2", {"sku": "beans", "quantity": 1, "unit_price_minor": 2_000}).json()
    confirm_all(writer)

    assert (refunded["points_reversed"], refunded["debt_points"]) == (12, 12)
    assert (whole_again.status_code, whole_again.json()["code"]) == (409, "purchase_refunded")
    assert (in_debt["balance_points"], in_debt["debt_points"]) == (12, 12)  # nothing burned
    assert next_order["total_points"] == 20
    assert token_of(client).balance_of(member["wallet_address"]) == 12 + 8
    assert _member(client, partner, member)["debt_points"] == 0


def test_purchase_refusals_areProblemsWithStableCodes(client):
    partner, member = _shop(client)
    body = {"member_id": member["id"], "order_id": "X-1", "occurred_at": _now(), "currency": "USD", "lines": [LATTES]}
    huge = {**LATTES, "quantity": 4, "unit_price_minor": 2**62}
    cases = {
        "naive time": {**body, "occurred_at": "2026-11-23T09:30:00"},
        "year 1 east of UTC": {**body, "occurred_at": "0001-01-01T00:30:00+01:00"},
        "too old": {**body, "occurred_at": (datetime.now(UTC) - timedelta(days=91)).isoformat()},
        "NUL in the id": {**body, "order_id": "a\u0000b"},
        "a dot id": {**body, "order_id": ".."},
        "beyond 64 bits": {**body, "lines": [huge]},
        "another currency": {**body, "currency": "EUR"},
    }
    answers = {what: post(client, "/v1/purchases", case, partner["api_key"]) for what, case in cases.items()}
    codes = {what: (r.status_code, r.json()["code"]) for what, r in answers.items()}
    assert codes == {what: (422, "validation_error") for what in cases} | {
        "another currency": (422, "currency_not_accepted")
    }
    assert client.get("/v1/purchases/a%00b", headers=auth(partner["api_key"])).status_code == 422


def test_refundId_reusedForOtherLines_isAConflict(client, writer):
    partner, member = _shop(client)
    _buy(client, partner, member, "Y-1", LATTES, CROISSANT)
    first = post(
        client,
        "/v1/purchases/Y-1/refunds",
        {"refund_id": "r1", "lines": [{"sku": "latte", "quantity": 1}]},
        partner["api_key"],
    )
    other = post(
        client,
        "/v1/purchases/Y-1/refunds",
        {"refund_id": "r1", "lines": [{"sku": "croissant", "quantity": 1}]},
        partner["api_key"],
    )
    assert first.status_code == 201
    assert (other.status_code, other.json()["code"]) == (409, "refund_exists")


def test_aBackdatedOrder_countsAgainstItsOwnMonthsCap(client, writer):
    """An order reported late is capped by what its own period gave, not by later periods'."""
    capped = {**PER_DOLLAR, "limits": {"per_member": 15, "period": "day"}}
    partner, member = _shop(client, rule=capped)
    today = _buy(client, partner, member, "Z-1", LATTES, CROISSANT).json()
    yesterday = (datetime.now(UTC) - timedelta(days=1, hours=1)).isoformat()
    late = _buy(client, partner, member, "Z-2", LATTES, CROISSANT, occurred_at=yesterday).json()
    assert (today["total_points"], late["total_points"]) == (12, 12)


def test_anOrderEarningNothing_isRecorded_evenWithLessThanNoBudgetLeft(client, writer):
    """Its spend still counts towards tiers; there is nothing to hold. (Less than nothing: the
    on-chain budget was lowered under what the database had accepted.)"""
    from loyalty.db.models import Partner

    free = {
        "name": "nothing on gift cards",
        "conditions": {"categories": ["gift cards"]},
        "calculator": {"strategy": "fixed", "points": 1},
    }
    partner, member = _shop(client, budget=10, rule=free)
    with client.app.state.runtime.sessions() as session:
        session.get(Partner, partner["id"]).budget_points = -5
        session.commit()
    response = _buy(client, partner, member, "W-1", LATTES)
    assert (response.status_code, response.json()["total_points"]) == (202, 0)


def test_purchase_beyondTheBudget_isRefusedWhole(client, writer):
    partner, member = _shop(client, budget=10)
    refused = _buy(client, partner, member, "D-1", LATTES, CROISSANT)
    assert (refused.status_code, refused.json()["code"]) == (422, "budget_exceeded")
    assert client.get("/v1/purchases", headers=auth(partner["api_key"])).json()["data"] == []


def test_perMemberLimit_capsAcrossPurchasesInItsPeriod(client, writer):
    capped = {**PER_DOLLAR, "limits": {"per_member": 15, "period": "month"}}
    partner, member = _shop(client, rule=capped)
    first = _buy(client, partner, member, "E-1", LATTES, CROISSANT).json()
    second = _buy(client, partner, member, "E-2", LATTES, CROISSANT).json()
    assert first["total_points"] == 12
    assert [(a["points"], a["capped_by"]) for a in second["awards"]] == [(3, "per_member")]


def test_purchase_forAnUnlinkedMember_isNotFound(client):
    partner, _ = _shop(client)
    stranger = make_member(client, make_partner(client, "Other")["api_key"])
    response = _buy(client, partner, stranger, "F-1", LATTES)
    assert (response.status_code, response.json()["code"]) == (404, "member_not_found")


def test_release_happensOnce_evenWhenFourWorkersRaceForIt(client, writer):
    """Four writers (or a retried pass) releasing the same purchase at the same moment, each
    believing it pending, under the writer's lock as the writer takes it: it is minted once."""
    import threading

    from loyalty.db.session import write_lock

    _program(client, 14)
    partner, member = _shop(client)
    past = (datetime.now(UTC) - timedelta(days=14) + timedelta(minutes=1)).isoformat()
    bought = _buy(client, partner, member, "G-1", LATTES, CROISSANT, occurred_at=past).json()
    assert bought["status"] == "pending"
    sessions = client.app.state.runtime.sessions
    start, released = threading.Barrier(4), []

    def release() -> None:
        with sessions() as session:
            start.wait(10)
            with write_lock(session):
                released.append(purchases.release(session, bought["id"]))
                session.commit()

    threads = [threading.Thread(target=release) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    confirm_all(writer)

    assert sorted(released) == [False, False, False, True]
    assert token_of(client).balance_of(member["wallet_address"]) == 12
    earns = client.get(f"/v1/earn?member_id={member['id']}", headers=auth(partner["api_key"])).json()["data"]
    assert [e["amount_points"] for e in earns] == [12]
