"""Input crafted to break the parsers is a 4xx problem, never a 500: forged cursors, times UTC
cannot hold, a key that is not ASCII, JSON nested too deep, a consent the token would refuse."""

import base64

from eth_account import Account
from support.backend import ADMIN_KEY, auth, make_member, make_partner, post

from loyalty.domain.consent import SECP256K1_N, sign_typed_data


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_forgedCursors_areInvalidCursors(client):
    member = make_member(client, make_partner(client)["api_key"])
    for path, raw in (
        ("/v1/members", "[Infinity]"),
        ("/v1/members", "[9223372036854775808]"),
        ("/v1/members", "[true]"),
        (f"/v1/members/{member['id']}/history", '["2026-01-01T00:00:00", 0, 1]'),  # no zone
        (f"/v1/members/{member['id']}/history", '["2026-01-01T00:00:00+00:00", 0, 1e999]'),
    ):
        response = client.get(f"{path}?cursor={_cursor(raw)}", headers=auth(ADMIN_KEY))
        assert (response.status_code, response.json()["code"]) == (422, "invalid_cursor"), (raw, response.text)


def test_timesUtcCannotHold_areValidationErrors(client):
    response = client.get("/v1/earn?created_after=0001-01-01T00:00:00%2B01:00", headers=auth(ADMIN_KEY))
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_nonAsciiKey_isUnauthorized(client):
    response = client.get("/v1/members", headers={"Authorization": b"Bearer cl\xc3\xa9"})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


def test_jsonNestedTooDeep_isNotAServerError(client):
    partner = make_partner(client)
    headers = {**auth(ADMIN_KEY), "Idempotency-Key": "deep", "Content-Type": "application/json"}
    response = client.post(
        f"/v1/partners/{partner['id']}/deactivate", content=b"[" * 5_000 + b"]" * 5_000, headers=headers
    )
    assert response.status_code < 500, response.text


def test_highSConsent_isRefusedBeforeAnythingIsHeld(client):
    """The same consent with s flipped to the curve's upper half still recovers to the member
    in eth_account, but the token refuses it: refused here, before stock and points are held."""
    wallet = Account.create()
    partner = make_partner(client)
    member = make_member(client, partner["api_key"], wallet_address=wallet.address)
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 1, "stock": 5}, partner["api_key"]).json()
    body = {"member_id": member["id"], "reward_id": reward["id"]}
    quote = post(client, "/v1/redemptions/consents", body, partner["api_key"]).json()
    signature = sign_typed_data(quote["typed_data"], wallet.key)
    s_value = int.from_bytes(signature[32:64], "big")
    flipped = signature[:32] + (SECP256K1_N - s_value).to_bytes(32, "big") + bytes([55 - signature[64]])
    response = post(
        client,
        "/v1/redemptions",
        {**body, "signature": "0x" + flipped.hex(), "deadline": quote["deadline"]},
        partner["api_key"],
    )
    assert (response.status_code, response.json()["code"]) == (422, "invalid_signature")
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(ADMIN_KEY)).json()["stock"] == 5
