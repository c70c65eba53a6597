"""Earning through the API: accepted into the outbox, confirmed on-chain by the writer."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, token_of

from loyalty.api.acceptor import QueuedEarn
from loyalty.api.deps import Principal
from loyalty.domain.earning import EarnItem


@pytest.fixture
def partner(client):
    return make_partner(client, "Acme", 10_000)


def test_earn_isAcceptedThenConfirmedOnChain(client, writer, partner):
    member = make_member(client, partner["api_key"])
    response = post(
        client, "/v1/earn", {"member_id": member["id"], "amount_points": 250, "reason": "order 1"}, partner["api_key"]
    )
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    earn_id = response.json()["id"]

    confirm_all(writer)

    earn = client.get(f"/v1/earn/{earn_id}", headers=auth(partner["api_key"])).json()
    assert earn["status"] == "confirmed"
    assert earn["tx_hash"].startswith("0x") and earn["block_number"] > 0
    detail = client.get(f"/v1/members/{member['id']}", headers=auth(partner["api_key"])).json()
    assert detail["balance_points"] == 250
    assert [e["amount_points"] for e in detail["expiring"]] == [250]
    assert token_of(client).balance_of(member["wallet_address"]) == 250


def test_earnBatch_confirmsEveryItemInOneTransaction(client, writer, partner):
    members = [make_member(client, partner["api_key"]) for _ in range(30)]
    items = [{"member_id": m["id"], "amount_points": i + 1} for i, m in enumerate(members)]
    response = post(client, "/v1/earn/batch", {"items": items}, partner["api_key"])
    assert response.status_code == 202
    ids = response.json()["ids"]

    confirm_all(writer)

    earns = [client.get(f"/v1/earn/{i}", headers=auth(partner["api_key"])).json() for i in ids]
    assert {e["status"] for e in earns} == {"confirmed"}
    assert len({e["tx_hash"] for e in earns}) == 1
    token = token_of(client)
    assert [token.balance_of(m["wallet_address"]) for m in members] == list(range(1, 31))


def test_earn_failsPastBudgetCountingPending(client, partner):
    member = make_member(client, partner["api_key"])
    assert (
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 9_000}, partner["api_key"]).status_code
        == 202
    )
    response = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1_001}, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (422, "budget_exceeded")


def test_earn_failsForUnknownMember(client, partner):
    response = post(client, "/v1/earn", {"member_id": 999_999, "amount_points": 1}, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (404, "member_not_found")


@pytest.mark.parametrize("amount", [0, -5, 2**63, 1.5, "10", None])
def test_earn_failsForBadAmount(client, partner, amount):
    member = make_member(client, partner["api_key"])
    response = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": amount}, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_earn_isForPartnersOnly(client):
    member = make_member(client)
    response = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1}, ADMIN_KEY)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


def test_earn_retryWithSameKeyIssuesOnce(client, writer, partner):
    member = make_member(client, partner["api_key"])
    body = {"member_id": member["id"], "amount_points": 7}
    first = post(client, "/v1/earn", body, partner["api_key"], idempotency_key="order-7")
    again = post(client, "/v1/earn", body, partner["api_key"], idempotency_key="order-7")
    assert first.json() == again.json()
    confirm_all(writer)
    assert token_of(client).balance_of(member["wallet_address"]) == 7


def test_earnBatch_failsWholeForOneBadItem(client, partner):
    member = make_member(client, partner["api_key"])
    items = [{"member_id": member["id"], "amount_points": 1}, {"member_id": 424242, "amount_points": 1}]
    response = post(client, "/v1/earn/batch", {"items": items}, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (404, "member_not_found")
    assert client.get(f"/v1/members/{member['id']}/history", headers=auth(partner["api_key"])).json()["data"] == []


def test_earnBatch_failsForTooManyItems(client, partner):
    items = [{"member_id": 1, "amount_points": 1}] * 10_001
    response = post(client, "/v1/earn/batch", {"items": items}, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_earn_ofOtherPartnerIsNotVisible(client, partner):
    other = make_partner(client, "Other", 10)
    member = make_member(client, partner["api_key"])
    earn_id = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1}, partner["api_key"]).json()["id"]
    response = client.get(f"/v1/earn/{earn_id}", headers=auth(other["api_key"]))
    assert (response.status_code, response.json()["code"]) == (404, "earn_not_found")


def test_history_listsEarnsWithTransactions(client, writer, partner):
    member = make_member(client, partner["api_key"])
    for amount in (5, 6):
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": amount}, partner["api_key"])
    confirm_all(writer)
    history = client.get(f"/v1/members/{member['id']}/history", headers=auth(ADMIN_KEY)).json()["data"]
    assert [(h["kind"], h["amount_points"], h["status"]) for h in history] == [
        ("earn", 5, "confirmed"),
        ("earn", 6, "confirmed"),
    ]
    assert all(h["tx_hash"] and h["block_number"] for h in history)
    # UTC times, with their zone, on SQLite as on PostgreSQL
    created = [datetime.fromisoformat(h["created_at"]) for h in history]
    assert all(c.utcoffset() == timedelta(0) for c in created)
    assert all(abs(datetime.now(UTC) - c) < timedelta(minutes=5) for c in created)


def test_acceptor_answersEachRequestOfAGroupOnItsOwn(client, writer, partner):
    """Requests committed together: one refused, a key repeated with the same and with another
    body; each gets its own answer and only the accepted earns are written, once."""
    member = make_member(client, partner["api_key"])
    principal = Principal("partner", f"partner:{partner['id']}", partner["id"])

    def request(key: str, digest: str, member_id: int, amount: int) -> QueuedEarn:
        return QueuedEarn(principal, key, digest, [EarnItem(member_id, amount, "")], lambda ids: {"id": ids[0]})

    group = [
        request("a", "d1", member["id"], 100),
        request("b", "d2", member["id"], 20_000),  # past the budget
        request("c", "d3", 999_999, 1),  # unknown member
        request("a", "d1", member["id"], 100),  # a retry inside the same group
        request("a", "other", member["id"], 100),  # the key again, with another body
        request("d", "d4", member["id"], 5),
    ]
    client.app.state.acceptor._commit(group)

    outcomes = [r.future.exception() or r.future.result() for r in group]
    assert [getattr(o, "code", None) for o in outcomes] == [
        None, "budget_exceeded", "member_not_found", None, "idempotency_conflict", None,
    ]  # fmt: skip
    assert json.loads(outcomes[0].body) == json.loads(outcomes[3].body)
    assert outcomes[3].headers["Idempotent-Replay"] == "true"
    confirm_all(writer)
    assert token_of(client).balance_of(member["wallet_address"]) == 105

    replayed = [request("a", "d1", member["id"], 100), request("d", "d4", member["id"], 5)]
    client.app.state.acceptor._commit(replayed)
    assert [json.loads(r.future.result().body) for r in replayed] == [
        json.loads(o.body) for o in (outcomes[0], outcomes[5])
    ]
    confirm_all(writer)
    assert token_of(client).balance_of(member["wallet_address"]) == 105
