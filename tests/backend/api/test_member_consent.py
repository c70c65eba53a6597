"""Nobody spends a custodial member's points without the member: a partner's redemption awaits
the member's approval (or takes a one-time code the member made), and a partner cannot reach a
member not linked to it."""

from support.backend import (
    ADMIN_KEY,
    auth,
    confirm_all,
    make_member,
    make_partner,
    post,
    redemption_code,
    sign_in,
    token_of,
)


def _reward(client, partner, cost_points):
    return post(
        client, "/v1/rewards", {"name": "Mug", "cost_points": cost_points, "stock": 5}, partner["api_key"]
    ).json()


def _earned(client, writer, partner, member, points):
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": points}, partner["api_key"])
    confirm_all(writer)


def test_partnerRedemption_awaitsTheMemberThenBurnsOnlyOnApproval(client, writer):
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    _earned(client, writer, partner, member, 404)
    reward = _reward(client, partner, 300)

    asked = post(client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, partner["api_key"])
    confirm_all(writer)

    assert (asked.status_code, asked.json()["status"]) == (201, "awaiting_member")
    assert token_of(client).balance_of(member["wallet_address"]) == 404  # nothing burned yet
    session = sign_in(client, member)
    waiting = client.get("/v1/me/redemptions", headers=auth(session)).json()
    assert [r["id"] for r in waiting if r["status"] == "awaiting_member"] == [asked.json()["id"]]
    approved = post(client, f"/v1/me/redemptions/{asked.json()['id']}/approve", None, session)
    assert (approved.status_code, approved.json()["status"]) == (200, "reserved")
    confirm_all(writer)
    assert token_of(client).balance_of(member["wallet_address"]) == 104
    posted = client.get(f"/v1/redemptions/{asked.json()['id']}", headers=auth(partner["api_key"])).json()
    assert posted["status"] == "posted" and posted["voucher_code"]


def test_declinedRedemption_burnsNothingAndCannotBeApprovedAfter(client, writer):
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    _earned(client, writer, partner, member, 50)
    reward = _reward(client, partner, 20)
    asked = post(client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, partner["api_key"])
    session = sign_in(client, member)

    declined = post(client, f"/v1/me/redemptions/{asked.json()['id']}/decline", None, session)
    late = post(client, f"/v1/me/redemptions/{asked.json()['id']}/approve", None, session)
    confirm_all(writer)

    assert declined.json()["status"] == "declined"
    assert (late.status_code, late.json()["code"]) == (409, "redemption_not_awaiting")
    assert token_of(client).balance_of(member["wallet_address"]) == 50
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(ADMIN_KEY)).json()["stock"] == 5


def test_anotherPartner_cannotSpendOrSeeAMemberItIsNotLinkedTo(client, writer):
    """The reported case: partner A burned 300 of the points partner B's member earned at B."""
    a, b = make_partner(client, "A"), make_partner(client, "B")
    member = make_member(client, b["api_key"])
    _earned(client, writer, b, member, 404)
    reward = _reward(client, a, 300)

    redeem = post(client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, a["api_key"])
    earn = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1}, a["api_key"])
    read = client.get(f"/v1/members/{member['id']}", headers=auth(a["api_key"]))
    confirm_all(writer)

    assert [r.status_code for r in (redeem, earn, read)] == [404, 404, 404]
    assert {r.json()["code"] for r in (redeem, earn, read)} == {"member_not_found"}
    assert token_of(client).balance_of(member["wallet_address"]) == 404


def test_memberLinksItselfToAPartner_thenThatPartnerSeesOnlyItsOwnEntries(client, writer):
    a, b = make_partner(client, "A"), make_partner(client, "B")
    member = make_member(client, a["api_key"])
    _earned(client, writer, a, member, 10)
    session = sign_in(client, member)

    linked = post(client, "/v1/me/links", {"partner_id": b["id"]}, session)
    _earned(client, writer, b, member, 7)

    assert (linked.status_code, linked.json()["source"]) == (201, "member")
    seen_by_b = client.get(f"/v1/members/{member['id']}/history", headers=auth(b["api_key"])).json()["data"]
    seen_by_member = client.get("/v1/me/history", headers=auth(session)).json()["data"]
    assert [(e["partner_id"], e["amount_points"]) for e in seen_by_b] == [(b["id"], 7)]
    assert sorted(e["amount_points"] for e in seen_by_member) == [7, 10]
    assert client.get("/v1/me", headers=auth(session)).json()["partner_ids"] == [a["id"], b["id"]]


def test_redemptionCode_worksOnceAtItsPartnerUpToItsPoints(client, writer):
    a, b = make_partner(client, "A"), make_partner(client, "B")
    member = make_member(client, a["api_key"])
    post(client, "/v1/me/links", {"partner_id": b["id"]}, sign_in(client, member))
    _earned(client, writer, a, member, 500)
    cheap, dear, at_b = _reward(client, a, 100), _reward(client, a, 400), _reward(client, b, 100)
    code = redemption_code(client, member, a, max_points=300)

    def redeem(partner, reward, with_code):
        body = {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": with_code}
        return post(client, "/v1/redemptions", body, partner["api_key"])

    too_dear = redeem(a, dear, code)
    elsewhere = redeem(b, at_b, code)
    used = redeem(a, cheap, code.lower()[:4] + "-" + code.lower()[4:])  # as a person types it
    again = redeem(a, cheap, code)
    confirm_all(writer)

    assert [r.json().get("code") for r in (too_dear, elsewhere, again)] == ["redemption_code_invalid"] * 3
    assert (used.status_code, used.json()["status"]) == (201, "reserved")
    assert token_of(client).balance_of(member["wallet_address"]) == 400


def test_selfCustodyMember_cannotGetACode_andACustodialOneCannotSign(client):
    partner = make_partner(client)
    own = make_member(client, partner["api_key"], wallet_address="0x" + "ab" * 20)
    custodial = make_member(client, partner["api_key"])
    reward = _reward(client, partner, 1)
    body = {"member_id": custodial["id"], "reward_id": reward["id"], "signature": "0x" + "11" * 65, "deadline": 1}

    signed = post(client, "/v1/redemptions", body, partner["api_key"])
    no_session = client.post("/v1/auth/sessions", json={"external_id": own["external_id"], "passphrase": "x" * 12})

    assert (signed.status_code, signed.json()["code"]) == (422, "validation_error")
    assert (no_session.status_code, no_session.json()["code"]) == (401, "sign_in_failed")


def test_aPartner_neverHoldsAMembersCredential(client, writer):
    """A partner that held the member's enrolment or reset token could sign in as the member
    and approve its own redemptions: only the operator (admin) gets them."""
    partner = make_partner(client)
    enrolled = post(client, "/v1/members", {"external_id": "alice"}, partner["api_key"])
    with_passphrase = post(client, "/v1/members", {"external_id": "bob", "passphrase": "x" * 12}, partner["api_key"])
    reset = post(client, f"/v1/members/{enrolled.json()['id']}/passphrase-resets", None, partner["api_key"])

    assert enrolled.status_code == 201 and enrolled.json()["enrolment_token"] is None
    assert (with_passphrase.status_code, with_passphrase.json()["code"]) == (403, "forbidden")
    assert (reset.status_code, reset.json()["code"]) == (403, "forbidden")
    by_admin = post(client, f"/v1/members/{enrolled.json()['id']}/passphrase-resets", None, ADMIN_KEY)
    assert by_admin.status_code == 201 and by_admin.json()["token"].startswith("lnk_")
