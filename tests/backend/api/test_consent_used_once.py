"""A member's signed consent (and the quote behind it) works once: posting the same signature
again with a new Idempotency-Key is refused, and the outbox keeps working for everyone."""

from eth_account import Account
from support.backend import auth, confirm_all, make_member, make_partner, post

from loyalty.domain.consent import sign_typed_data


def test_redeem_repostedConsent_isRefusedAndOthersStillSettle(client, writer):
    acme, other = make_partner(client, "Acme", 100_000), make_partner(client, "Other", 100_000)
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 100, "stock": 10}, acme["api_key"]).json()
    wallet = Account.create()
    member = make_member(client, acme["api_key"], wallet_address=wallet.address)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1_000}, acme["api_key"])
    confirm_all(writer)
    query = f"/v1/redemptions/typed-data?member_id={member['id']}&reward_id={reward['id']}"
    typed = client.get(query, headers=auth(acme["api_key"])).json()
    body = {
        "member_id": member["id"],
        "reward_id": reward["id"],
        "signature": "0x" + sign_typed_data(typed, wallet.key).hex(),
        "deadline": typed["message"]["deadline"],
    }

    first = post(client, "/v1/redemptions", body, acme["api_key"], idempotency_key="first")
    again = post(client, "/v1/redemptions", body, acme["api_key"], idempotency_key="second")

    assert first.status_code == 201, first.text
    assert (again.status_code, again.json()["code"]) == (409, "consent_used")
    custodial = make_member(client, other["api_key"])
    earn = post(client, "/v1/earn", {"member_id": custodial["id"], "amount_points": 5}, other["api_key"]).json()
    confirm_all(writer)
    assert (
        client.get(f"/v1/redemptions/{first.json()['id']}", headers=auth(acme["api_key"])).json()["status"] == "posted"
    )
    assert client.get(f"/v1/earn/{earn['id']}", headers=auth(other["api_key"])).json()["status"] == "confirmed"
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(acme["api_key"])).json()["stock"] == 9
