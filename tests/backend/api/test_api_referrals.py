"""Referrals end to end on Anvil: a friend enrols with a member's code; both are rewarded, once,
when the friend's first qualifying purchase leaves its pending window; no self-referral; a cap
per referrer per period."""

from datetime import UTC, datetime, timedelta

from support.backend import auth, confirm_all, make_member, make_partner, post, sign_in, token_of

from loyalty.services import purchases

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
REFERRER = {"name": "200 for a friend", "trigger": "referral", "beneficiary": "referrer", "calculator": {"strategy": "fixed", "points": 200},
            "conditions": {"min_net_minor": 1_000}, "limits": {"per_member": 400, "period": "year"}}  # fmt: skip
FRIEND = {"name": "200 for joining", "trigger": "referral", "beneficiary": "friend", "calculator": {"strategy": "fixed", "points": 200},
          "conditions": {"min_net_minor": 1_000}}  # fmt: skip


def _program(client):
    response = client.patch("/v1/programs/1", json={"pending_days": 14}, headers=auth("adm_test"))
    assert response.status_code == 200


def _shop(client):
    partner = make_partner(client)
    for rule in (PER_DOLLAR, REFERRER, FRIEND):
        assert post(client, "/v1/rules", rule, partner["api_key"]).status_code == 201
    return partner


def _buy(client, partner, member, order_id, dollars):
    body = {"member_id": member["id"], "order_id": order_id, "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
            "lines": [{"sku": "beans", "quantity": 1, "unit_price_minor": dollars * 100}]}  # fmt: skip
    response = post(client, "/v1/purchases", body, partner["api_key"])
    assert response.status_code == 202, response.text
    return response.json()


def _release(client):
    with client.app.state.runtime.sessions() as session:
        released = purchases.release_due(session, datetime.now(UTC) + timedelta(days=15))
        session.commit()
    return released


def _referrals(client, partner, member):
    response = client.get(f"/v1/members/{member['id']}/referrals", headers=auth(partner["api_key"]))
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_referral_rewardsBothOnce_whenTheFriendsFirstQualifyingPurchaseIsReleased(client, writer):
    _program(client)
    partner = _shop(client)
    alice = make_member(client, partner["api_key"])
    bob = make_member(client, partner["api_key"], referral_code=alice["referral_code"].lower())  # as typed

    _buy(client, partner, bob, "F-1", 5)  # too small to qualify
    assert _release(client) == 1
    still = _referrals(client, partner, alice)
    _buy(client, partner, bob, "F-2", 12)
    pending = _referrals(client, partner, alice)
    _release(client)
    _buy(client, partner, bob, "F-3", 20)
    _release(client)
    confirm_all(writer)

    assert [r["status"] for r in still] == ["pending"]
    assert [r["status"] for r in pending] == ["pending"]  # the purchase is still in its window
    [done] = _referrals(client, partner, alice)
    assert (done["status"], done["friend_id"]) == ("rewarded", bob["id"])
    assert sorted((a["member_id"], a["points"]) for a in done["awards"]) == [(alice["id"], 200), (bob["id"], 200)]
    token = token_of(client)
    assert token.balance_of(alice["wallet_address"]) == 200
    assert token.balance_of(bob["wallet_address"]) == 5 + 12 + 20 + 200  # once, not on F-3 again
    mine = client.get("/v1/me/referrals", headers=auth(sign_in(client, alice))).json()["data"]
    assert [r["id"] for r in mine] == [done["id"]]


def test_referrer_isCappedPerPeriod_theFriendsStillGetTheirs(client, writer):
    partner = _shop(client)
    alice = make_member(client, partner["api_key"])
    friends = [make_member(client, partner["api_key"], referral_code=alice["referral_code"]) for _ in range(3)]
    for i, friend in enumerate(friends):
        _buy(client, partner, friend, f"C-{i}", 10)  # no pending period: released at once
    confirm_all(writer)

    token = token_of(client)
    assert token.balance_of(alice["wallet_address"]) == 400  # the year's cap: two friends' worth
    assert [token.balance_of(f["wallet_address"]) for f in friends] == [210, 210, 210]
    assert [r["status"] for r in _referrals(client, partner, alice)] == ["rewarded"] * 3


def test_referral_ofOneself_orWithAnUnknownCode_isRefused(client):
    partner = _shop(client)
    alice = make_member(client, partner["api_key"], external_id="Alice@example.com")
    body = {"external_id": " alice@EXAMPLE.com", "referral_code": alice["referral_code"]}
    itself = post(client, "/v1/members", body, partner["api_key"])
    unknown = post(client, "/v1/members", {"external_id": "carol", "referral_code": "ZZZZ-ZZZZ"}, partner["api_key"])

    assert (itself.status_code, itself.json()["code"]) == (422, "self_referral")
    assert (unknown.status_code, unknown.json()["code"]) == (422, "referral_code_invalid")
    members = client.get("/v1/members", headers=auth(partner["api_key"])).json()["data"]
    assert [m["id"] for m in members] == [alice["id"]]  # a refused enrolment writes nothing


def test_aPartner_seesOnlyReferralsOfFriendsItEnrolled_andPaysOnlyItsOwnMembers(client, writer):
    partner, other = _shop(client), make_partner(client, "Other")
    alice = make_member(client, other["api_key"])  # Alice is the other partner's member, not this one's
    bob = make_member(client, partner["api_key"], referral_code=alice["referral_code"])
    _buy(client, partner, bob, "O-1", 12)
    confirm_all(writer)

    token = token_of(client)
    assert (token.balance_of(alice["wallet_address"]), token.balance_of(bob["wallet_address"])) == (0, 12 + 200)
    as_other = client.get(f"/v1/members/{alice['id']}/referrals", headers=auth(other["api_key"])).json()["data"]
    as_admin = client.get(f"/v1/members/{alice['id']}/referrals", headers=auth("adm_test")).json()["data"]
    assert as_other == []  # Bob is not the other partner's member
    assert [(r["friend_id"], r["status"]) for r in as_admin] == [(bob["id"], "rewarded")]
