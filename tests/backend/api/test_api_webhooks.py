"""Signed webhooks end to end: events recorded with the changes they describe, delivered to a
real local HTTP receiver that fails, hangs and recovers, signed so the Standard Webhooks
library (not ours) verifies them, at least once and in order per member, with a delivery log,
redelivery, secret rotation and disabling after repeated failure."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from support.backend import (
    ADMIN_KEY,
    auth,
    confirm_all,
    funded_member,
    make_member,
    make_partner,
    post,
    redemption_code,
)
from support.webhooks import Receiver

from loyalty.db.models import Earn, Member, WebhookDelivery
from loyalty.services import purchases
from loyalty.workers.webhooks import WebhookSender, deliver_all


def _sender(client: Any, **options: Any) -> WebhookSender:
    return WebhookSender(client.app.state.runtime, **{"timeout_s": 1.0, "retry_base_s": 0.0, **options})


def _endpoint(client: Any, key: str, url: str, *types: str) -> dict[str, Any]:
    made = post(client, "/v1/webhooks", {"url": url, "event_types": list(types or ["earn.confirmed"])}, key)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _deliveries(client: Any, key: str, endpoint: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    found = client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params=params, headers=auth(key))
    assert found.status_code == 200, found.text
    return list(found.json()["data"])


def _verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return dict(Webhook(secret).verify(body, headers))


def test_webhooks_confirmedEarns_reachTheBrandsEndpointSigned_andOnlyItsOwn(client, writer, receiver: Receiver) -> None:
    acme, other = make_partner(client, "Acme"), make_partner(client, "Other")
    mine = _endpoint(client, acme["api_key"], receiver.url, "earn.confirmed", "redemption.posted")
    assert mine["secret"].startswith("whsec_") and mine["partner_id"] == acme["id"]
    member = make_member(client, acme["api_key"])
    earned = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 40}, acme["api_key"]).json()
    stranger = make_member(client, other["api_key"])
    assert (
        post(client, "/v1/earn", {"member_id": stranger["id"], "amount_points": 7}, other["api_key"]).status_code == 202
    )
    confirm_all(writer)

    assert deliver_all(_sender(client)) == 1
    [(headers, body)] = receiver.received
    event = _verified(mine["secret"], headers, body)
    assert event["type"] == "earn.confirmed"
    data = event["data"]
    assert (data["earn_id"], data["member_id"], data["partner_id"], data["amount_points"]) == (
        earned["id"],
        member["id"],
        acme["id"],
        40,
    )
    assert data["tx_hash"].startswith("0x")
    with pytest.raises(WebhookVerificationError):  # another secret does not verify it
        _verified(_endpoint(client, other["api_key"], receiver.url)["secret"], headers, body)
    [delivery] = _deliveries(client, acme["api_key"], mine)
    assert (delivery["status"], delivery["attempts"], delivery["webhook_id"]) == ("delivered", 1, headers["webhook-id"])
    assert [a["status_code"] for a in delivery["log"]] == [204]
    assert client.get(f"/v1/webhooks/{mine['id']}", headers=auth(other["api_key"])).status_code == 404
    assert deliver_all(_sender(client)) == 0  # delivered once


def test_webhooks_aReceiverThatFailsAndHangs_losesNothing_andGetsEachMembersEventsInOrder(
    client, writer, receiver
) -> None:
    acme = make_partner(client, "Acme")
    endpoint = _endpoint(client, acme["api_key"], receiver.url)
    alice, bob = make_member(client, acme["api_key"]), make_member(client, acme["api_key"])
    for amount in (1, 2, 3):  # a batch each: three events per member, in order
        for member in (alice, bob):
            post(client, "/v1/earn", {"member_id": member["id"], "amount_points": amount}, acme["api_key"])
        confirm_all(writer)
    sender = _sender(client)

    receiver.mode = "fail"
    assert sender.run_once() == 2  # the first of each member's; the endpoint's batch stops at its first failure
    assert len(receiver.received) == 1
    receiver.mode = "hang"  # past the sender's 1 s timeout
    assert sender.run_once() == 2
    assert all(d["status"] == "pending" for d in _deliveries(client, acme["api_key"], endpoint))
    receiver.mode = "ok"
    deliver_all(sender)

    delivered = _deliveries(client, acme["api_key"], endpoint)
    assert [d["status"] for d in delivered] == ["delivered"] * 6
    firsts = [d for d in delivered if d["attempts"] > 1]
    assert firsts and all(d["log"][0]["status_code"] == 500 or d["log"][0]["error"] for d in firsts)
    seen: dict[int, list[int]] = {}
    ids = []
    for headers, raw in receiver.received:
        body = json.loads(raw)
        ids.append(headers["webhook-id"])
        if raw not in [r for _, r in receiver.received[: len(ids) - 1]]:
            seen.setdefault(body["data"]["member_id"], []).append(body["data"]["amount_points"])
    assert {member: amounts for member, amounts in seen.items()} == {alice["id"]: [1, 2, 3], bob["id"]: [1, 2, 3]}
    assert len(set(ids)) == 6 < len(ids)  # retried: at least once, the same webhook-id each time


def test_webhooks_anEndpointFailingTooOften_isDisabled_andEnablingItSendsWhatWaited(
    client, writer, receiver: Receiver
) -> None:
    acme = make_partner(client, "Acme")
    endpoint = _endpoint(client, acme["api_key"], receiver.url)
    members = [make_member(client, acme["api_key"]) for _ in range(3)]
    for member in members:
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, acme["api_key"])
    confirm_all(writer)
    receiver.mode = "fail"
    sender = _sender(client, failures_to_disable=3)
    deliver_all(sender)
    shown = client.get(f"/v1/webhooks/{endpoint['id']}", headers=auth(acme["api_key"])).json()
    assert (shown["status"], shown["failures"]) == ("disabled", 3), shown
    assert "500" in shown["disabled_reason"]
    tried = len(receiver.received)
    assert deliver_all(sender) == 0 and len(receiver.received) == tried  # disabled: nothing sent
    hooks = client.get("/v1/health").json()["webhooks"]
    assert (hooks["pending_deliveries"], hooks["disabled_endpoints"]) == (3, [endpoint["id"]])

    receiver.mode = "ok"
    enabled = post(client, f"/v1/webhooks/{endpoint['id']}/enable", None, acme["api_key"])
    assert (enabled.status_code, enabled.json()["status"], enabled.json()["failures"]) == (200, "active", 0)
    deliver_all(sender)
    assert [d["status"] for d in _deliveries(client, acme["api_key"], endpoint)] == ["delivered"] * 3


def test_webhooks_redeliveryAndRotation_sendTheSameIdAgain_signedByBothSecretsDuringTheOverlap(
    client, writer, receiver
) -> None:
    acme = make_partner(client, "Acme")
    endpoint = _endpoint(client, acme["api_key"], receiver.url)
    member = make_member(client, acme["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 9}, acme["api_key"])
    confirm_all(writer)
    deliver_all(_sender(client))
    rotated = post(client, f"/v1/webhooks/{endpoint['id']}/secret-rotations", None, acme["api_key"])
    assert rotated.status_code == 201, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"] and rotated.json()["previous_secret_until"] is not None
    [delivery] = _deliveries(client, acme["api_key"], endpoint)
    again = post(client, f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver", None, acme["api_key"])
    assert (again.status_code, again.json()["status"]) == (200, "pending"), again.text
    deliver_all(_sender(client))

    first, second = receiver.received
    assert first[0]["webhook-id"] == second[0]["webhook-id"] and first[1] == second[1]
    assert len(second[0]["webhook-signature"].split(" ")) == 2
    assert _verified(new_secret, *second) == _verified(endpoint["secret"], *second)  # old and new both verify
    with client.app.state.runtime.sessions() as session:  # after the overlap, the new secret alone signs
        from loyalty.db.models import WebhookEndpoint

        session.get(WebhookEndpoint, endpoint["id"]).previous_until = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    post(client, f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver", None, acme["api_key"])
    deliver_all(_sender(client))
    third = receiver.received[2]
    assert len(third[0]["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        _verified(endpoint["secret"], *third)


def test_webhooks_theAdminsEndpointHearsEveryBrand_andBadInputIs422(client, writer, receiver: Receiver) -> None:
    acme, other = make_partner(client, "Acme"), make_partner(client, "Other")
    admin = _endpoint(client, ADMIN_KEY, receiver.url)
    assert admin["partner_id"] is None
    for partner in (acme, other):
        member = make_member(client, partner["api_key"])
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 3}, partner["api_key"])
    confirm_all(writer)
    deliver_all(_sender(client))
    assert sorted(b["data"]["partner_id"] for b in receiver.bodies()) == sorted([acme["id"], other["id"]])
    assert len(client.get("/v1/webhooks", headers=auth(ADMIN_KEY)).json()["data"]) == 1
    for bad in ({"url": "ftp://x", "event_types": ["earn.confirmed"]}, {"url": receiver.url, "event_types": ["nope"]},
                {"url": receiver.url, "event_types": []}):  # fmt: skip
        refused = post(client, "/v1/webhooks", bad, acme["api_key"])
        assert (refused.status_code, refused.headers["content-type"]) == (422, "application/problem+json"), refused.text
    gone = client.delete(f"/v1/webhooks/{admin['id']}", headers=auth(ADMIN_KEY))
    assert gone.status_code == 204
    assert client.get(f"/v1/webhooks/{admin['id']}", headers=auth(ADMIN_KEY)).json()["code"] == "webhook_not_found"


def test_webhooks_aRedemptionPostedAndAPurchasesPendingPeriodEnding_areHeardOnce(client, writer, receiver) -> None:
    partner, reward, member = funded_member(client, writer, 100, 30)
    endpoint = _endpoint(client, partner["api_key"], receiver.url, "redemption.posted", "purchase.pending_ended")
    body = {
        "member_id": member["id"],
        "reward_id": reward["id"],
        "redemption_code": redemption_code(client, member, partner),
    }
    redeemed = post(client, "/v1/redemptions", body, partner["api_key"])
    assert redeemed.status_code == 201, redeemed.text
    assert client.patch("/v1/programs/1", json={"pending_days": 14}, headers=auth(ADMIN_KEY)).status_code == 200
    rule = {"name": "1 per dollar", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
    assert post(client, "/v1/rules", rule, partner["api_key"]).status_code == 201
    order = {"member_id": member["id"], "order_id": "W-1", "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
             "lines": [{"sku": "beans", "quantity": 1, "unit_price_minor": 2_500}]}  # fmt: skip
    assert post(client, "/v1/purchases", order, partner["api_key"]).json()["status"] == "pending"
    confirm_all(writer)
    later = datetime.now(UTC) + timedelta(days=15)
    for _ in range(2):  # a second run finds nothing more to release
        with client.app.state.runtime.sessions() as session:
            purchases.release_due(session, later)
            session.commit()
    deliver_all(_sender(client))

    heard = {b["type"]: b["data"] for b in receiver.bodies()}
    assert len(receiver.received) == 2, receiver.bodies()
    assert (heard["redemption.posted"]["redemption_id"], heard["redemption.posted"]["amount_points"]) == (
        redeemed.json()["id"],
        30,
    )
    released = heard["purchase.pending_ended"]
    assert (released["order_id"], released["points"], released["member_id"]) == ("W-1", 25, member["id"])
    assert [d["status"] for d in _deliveries(client, partner["api_key"], endpoint)] == ["delivered", "delivered"]


def test_webhooks_twoSendersAtOnce_sendEachDeliveryOnce_andOneThatDiedMidSendLeavesItToTheOther(
    client, writer, receiver
) -> None:
    acme = make_partner(client, "Acme")
    _endpoint(client, acme["api_key"], receiver.url)
    members = [make_member(client, acme["api_key"]) for _ in range(6)]
    for member in members:
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 2}, acme["api_key"])
    confirm_all(writer)
    done = [0, 0]

    def run(i: int) -> None:
        done[i] = deliver_all(_sender(client, batch=2))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert len(ids) == len(set(ids)) == sum(done) == 6, (ids, done)  # nobody sent one twice

    post(client, "/v1/earn", {"member_id": members[0]["id"], "amount_points": 3}, acme["api_key"])
    confirm_all(writer)
    assert len(_sender(client)._claim()) == 1  # claimed, then the process died before sending
    assert deliver_all(_sender(client)) == 0  # the claim holds it...
    later = _sender(client, clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
    assert deliver_all(later) == 1  # ...until it runs out: sent once, by another
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert len(ids) == len(set(ids)) == 7


def test_webhooks_aTierChange_isHeardByTheBrandsTheMemberIsLinkedTo_only(client, writer, receiver) -> None:
    acme, other = make_partner(client, "Acme"), make_partner(client, "Other")
    ladder = {"tiers": [{"name": "bronze", "threshold": 0}, {"name": "gold", "threshold": 5_000}]}
    assert client.put("/v1/programs/1/tiers", json=ladder, headers=auth(ADMIN_KEY)).status_code == 200
    mine = _endpoint(client, acme["api_key"], receiver.url, "tier.changed")
    _endpoint(client, other["api_key"], receiver.url, "tier.changed")  # not linked to the member: hears nothing
    member = make_member(client, acme["api_key"])
    order = {"member_id": member["id"], "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
             "lines": [{"sku": "beans", "quantity": 1, "unit_price_minor": 3_000}]}  # fmt: skip
    for order_id in ("T-1", "T-2"):  # bronze, then gold at $60
        assert post(client, "/v1/purchases", {**order, "order_id": order_id}, acme["api_key"]).status_code == 202
    deliver_all(_sender(client))

    changes = [(b["data"]["tier_before"], b["data"]["tier"]) for b in receiver.bodies()]
    assert changes == [(None, "bronze"), ("bronze", "gold")], receiver.bodies()
    assert {b["data"]["member_id"] for b in receiver.bodies()} == {member["id"]}
    assert len(_deliveries(client, acme["api_key"], mine)) == 2


def test_webhooks_deliveriesNobodySends_degradeTheHealth(client, writer, receiver) -> None:
    acme = make_partner(client, "Acme")
    _endpoint(client, acme["api_key"], receiver.url)
    member = make_member(client, acme["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, acme["api_key"])
    confirm_all(writer)
    assert not any("webhook" in r for r in client.get("/v1/health").json()["reasons"])
    with client.app.state.runtime.sessions() as session:  # no sender ran for three minutes
        session.execute(update(WebhookDelivery).values(created_at=datetime.now(UTC) - timedelta(minutes=3)))
        session.commit()
    reasons = client.get("/v1/health").json()["reasons"]
    assert any("webhook delivery has waited" in r for r in reasons), reasons
    deliver_all(_sender(client))
    assert not any("webhook" in r for r in client.get("/v1/health").json()["reasons"])


def test_webhooks_pointsAboutToExpire_areAnnouncedOncePerLot_toTheMembersBrands(client, writer, receiver) -> None:
    acme, other = make_partner(client, "Acme"), make_partner(client, "Other")
    _endpoint(client, acme["api_key"], receiver.url, "points.expiring")
    _endpoint(client, other["api_key"], receiver.url, "points.expiring")  # not the member's brand
    member = make_member(client, acme["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 50}, acme["api_key"])
    confirm_all(writer)
    [(expires_at, amount)] = client.app.state.runtime.token.lots_of(member["wallet_address"])
    days_left = (expires_at - int(datetime.now(UTC).timestamp())) // 86_400 + 1

    assert _sender(client, expiring_notice_days=days_left - 2).announce_expiring() == 0  # not within the notice yet
    sender = _sender(client, expiring_notice_days=days_left)
    assert sender.announce_expiring() == 1
    assert sender.announce_expiring() == 0  # once per lot
    deliver_all(sender)
    [event] = receiver.bodies()
    assert event["type"] == "points.expiring"
    assert (event["data"]["member_id"], event["data"]["amount_points"], event["data"]["program_id"]) == (
        member["id"],
        amount,
        1,
    )
    assert event["data"]["expires_at"] == datetime.fromtimestamp(expires_at, UTC).isoformat()


def test_webhooks_aMemberHoldingPointsQuietTooLong_isAnnouncedOncePerQuietSpell_toItsBrands(
    client, writer, receiver
) -> None:
    acme, other = make_partner(client, "Acme"), make_partner(client, "Other")
    _endpoint(client, acme["api_key"], receiver.url, "member.dormant")
    _endpoint(client, other["api_key"], receiver.url, "member.dormant")  # not the member's brand
    quiet, busy, empty = (make_member(client, acme["api_key"]) for _ in range(3))
    for member in (quiet, busy):
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 40}, acme["api_key"])
    confirm_all(writer)

    def age(member_id: int, days: int) -> None:
        then = datetime.now(UTC) - timedelta(days=days)
        with client.app.state.runtime.sessions() as session:
            session.execute(update(Member).where(Member.id == member_id).values(created_at=then))
            session.execute(update(Earn).where(Earn.member_id == member_id).values(created_at=then))
            session.commit()

    age(quiet["id"], 100)
    age(empty["id"], 100)  # quiet too, but holds nothing: nothing to bring it back for
    age(busy["id"], 100)
    post(client, "/v1/earn", {"member_id": busy["id"], "amount_points": 1}, acme["api_key"])  # active today
    sender = _sender(client, dormant_days=90)
    assert _sender(client, dormant_days=120).announce_dormant() == 0  # not quiet for that long
    assert sender.announce_dormant() == 1
    assert sender.announce_dormant() == 0  # once per quiet spell
    deliver_all(sender)
    [event] = receiver.bodies()
    assert event["type"] == "member.dormant" and event["data"]["member_id"] == quiet["id"]
    assert event["data"]["programs"] == [{"program_id": 1, "balance_points": 40}]
    assert event["data"]["dormant_days"] == 90 and event["data"]["partner_id"] is None

    post(client, "/v1/earn", {"member_id": quiet["id"], "amount_points": 1}, acme["api_key"])
    confirm_all(writer)
    age(quiet["id"], 95)  # active again, then quiet again: a new spell
    assert sender.announce_dormant() == 1


def test_webhooks_aCookieOneReceiverSets_isNeverSentToAnotherBrandsEndpoint(client, writer, receiver) -> None:
    # Two brands whose endpoints share a host (a webhook service, say): one sender, one client.
    acme, other = make_partner(client, "Acme"), make_partner(client, "Other")
    _endpoint(client, acme["api_key"], receiver.url)
    _endpoint(client, other["api_key"], receiver.url + "?brand=other")
    receiver.set_cookie = "session=acme-secret; Path=/"
    sender = _sender(client)
    for brand in (acme, other, acme):
        member = make_member(client, brand["api_key"])
        assert (
            post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, brand["api_key"]).status_code
            == 202
        )
        confirm_all(writer)
        assert deliver_all(sender) == 1
    assert len(receiver.received) == 3
    assert all("cookie" not in headers for headers, _ in receiver.received)
