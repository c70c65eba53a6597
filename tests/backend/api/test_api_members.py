"""Members: custodial or self-custody wallets; keys never leave the service."""

from support.backend import ADMIN_KEY, auth, make_member, make_partner, post


def test_createMember_custodialWalletWithoutKeyInResponse(client):
    member = post(client, "/v1/members", {"external_id": "alice"}, ADMIN_KEY).json()
    assert member["custodial"] is True
    assert member["wallet_address"].startswith("0x") and len(member["wallet_address"]) == 42
    assert set(member) == {
        "id",
        "external_id",
        "wallet_address",
        "custodial",
        "smart_wallet",
        "referral_code",
        "enrolment_token",
        "enrolment_expires_at",
    }
    assert member["enrolment_token"].startswith("lnk_")


def test_createMember_selfCustodyKeepsAddress(client):
    address = "0x" + "ab" * 20
    member = make_member(client, wallet_address=address)
    assert member["custodial"] is False
    assert member["wallet_address"].lower() == address


def test_createMember_failsForMalformedAddress(client):
    response = post(client, "/v1/members", {"external_id": "x", "wallet_address": "0x1234"}, ADMIN_KEY)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_createMember_failsForDuplicateExternalId(client):
    post(client, "/v1/members", {"external_id": "alice"}, ADMIN_KEY)
    response = post(client, "/v1/members", {"external_id": "alice"}, ADMIN_KEY)
    assert (response.status_code, response.json()["code"]) == (409, "member_exists")


def test_getMember_failsForUnknownId(client):
    response = client.get("/v1/members/12345", headers=auth(ADMIN_KEY))
    assert (response.status_code, response.json()["code"]) == (404, "member_not_found")


def test_custodialKey_isStoredEncrypted(client):
    member = make_member(client)
    with client.app.state.runtime.sessions() as session:
        from loyalty.db.models import Member

        row = session.get(Member, member["id"])
        assert row.wallet_key_sealed is not None
        custody = client.app.state.runtime.custody
        assert custody.open(row.wallet_address, row.wallet_key_sealed).address == row.wallet_address
        assert row.wallet_address.lower().removeprefix("0x").encode() not in row.wallet_key_sealed


def test_operatorLinksAMemberToAPartner_whichThenSeesIt(client):
    """Members enrolled before 0.3 that no partner earned to, and members the operator enrolled,
    are linked to no partner: the operator links them."""
    partner = make_partner(client)
    member = post(client, "/v1/members", {"external_id": "idle"}, ADMIN_KEY).json()
    unseen = client.get(f"/v1/members/{member['id']}", headers=auth(partner["api_key"]))
    by_partner = post(client, f"/v1/members/{member['id']}/links", {"partner_id": partner["id"]}, partner["api_key"])

    linked = post(client, f"/v1/members/{member['id']}/links", {"partner_id": partner["id"]}, ADMIN_KEY)

    assert unseen.status_code == 404 and by_partner.status_code == 403
    assert linked.status_code == 201 and linked.json()["source"] == "operator"
    assert client.get(f"/v1/members/{member['id']}", headers=auth(partner["api_key"])).status_code == 200
