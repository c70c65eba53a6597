"""Members sign in: custodial ones with a passphrase set through a one-time link (guessing is
throttled), self-custody ones by signing a Sign-In with Ethereum message with their wallet."""

from datetime import timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from support.backend import ADMIN_KEY, PASSPHRASE, auth, make_member, make_partner, post, sign_in, siwe_message


def _enrolled(client):
    """A custodial member enrolled by the operator, which gets the member's enrolment token."""
    response = post(client, "/v1/members", {"external_id": "alice"}, ADMIN_KEY)
    assert response.status_code == 201, response.text
    return response.json()


def test_enrolmentToken_setsThePassphraseOnce(client):
    member = _enrolled(client)
    refused = client.post("/v1/auth/sessions", json={"external_id": "alice", "passphrase": "anything at all"})

    first = client.post("/v1/auth/passphrase", json={"token": member["enrolment_token"], "passphrase": PASSPHRASE})
    again = client.post("/v1/auth/passphrase", json={"token": member["enrolment_token"], "passphrase": "x" * 12})

    assert (refused.status_code, refused.json()["code"]) == (401, "sign_in_failed")  # no passphrase yet
    assert first.status_code == 200 and first.json()["member_id"] == member["id"]
    assert (again.status_code, again.json()["code"]) == (422, "link_invalid")
    profile = client.get("/v1/me", headers=auth(sign_in(client, {"external_id": "alice"})))
    assert profile.json()["external_id"] == "alice" and profile.json()["partner_ids"] == []


def test_wrongPassphrases_closeSignInForAWhile(client):
    member = make_member(client, make_partner(client)["api_key"])
    wrong = [
        client.post("/v1/auth/sessions", json={"external_id": member["external_id"], "passphrase": f"wrong {i}"})
        for i in range(5)
    ]
    right = client.post("/v1/auth/sessions", json={"external_id": member["external_id"], "passphrase": PASSPHRASE})

    assert [r.status_code for r in wrong] == [401] * 5
    assert (right.status_code, right.json()["code"]) == (429, "too_many_attempts")
    assert 1 <= int(right.headers["Retry-After"]) <= 31


def test_unknownMember_looksLikeAWrongPassphrase(client):
    response = client.post("/v1/auth/sessions", json={"external_id": "nobody", "passphrase": PASSPHRASE})
    assert (response.status_code, response.json()["code"]) == (401, "sign_in_failed")


def test_resetLink_setsANewPassphraseAndEndsOldSessions(client):
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    old = sign_in(client, member)

    reset = post(client, f"/v1/members/{member['id']}/passphrase-resets", None, ADMIN_KEY)
    changed = client.post("/v1/auth/passphrase", json={"token": reset.json()["token"], "passphrase": "a new one, longer"})

    assert reset.status_code == 201 and changed.status_code == 200
    assert client.get("/v1/me", headers=auth(old)).status_code == 401
    assert sign_in(client, member, "a new one, longer").startswith("mbr_")


def test_signOut_endsTheSession(client):
    member = make_member(client, make_partner(client)["api_key"])
    session = sign_in(client, member)
    assert client.delete("/v1/me/session", headers=auth(session)).status_code == 204
    assert client.get("/v1/me/balance", headers=auth(session)).status_code == 401


def _signed(wallet, message: str) -> dict:
    signature = Account.sign_message(encode_defunct(text=message), wallet.key).signature
    return {"message": message, "signature": "0x" + bytes(signature).hex()}


def test_siwe_signsInASelfCustodyMemberOncePerNonce(client):
    wallet = Account.create()
    member = make_member(client, make_partner(client)["api_key"], wallet_address=wallet.address)
    nonce = client.post("/v1/auth/siwe/nonces").json()
    body = _signed(wallet, siwe_message(nonce, wallet.address))

    first = client.post("/v1/auth/siwe", json=body)
    replayed = client.post("/v1/auth/siwe", json=body)

    assert first.status_code == 201 and first.json()["member_id"] == member["id"]
    assert client.get("/v1/me", headers=auth(first.json()["token"])).json()["wallet_address"] == wallet.address
    assert (replayed.status_code, replayed.json()["code"]) == (401, "sign_in_failed")


def test_siwe_refusesAnotherDomainAnExpiredMessageAndAnotherSigner(client):
    wallet, stranger = Account.create(), Account.create()
    make_member(client, make_partner(client)["api_key"], wallet_address=wallet.address)

    def attempt(signer, **message):
        nonce = client.post("/v1/auth/siwe/nonces").json()
        return client.post("/v1/auth/siwe", json=_signed(signer, siwe_message(nonce, wallet.address, **message)))

    nonce = client.post("/v1/auth/siwe/nonces").json()
    phished = _signed(wallet, siwe_message(nonce, wallet.address, domain="evil.example"))  # signed at the phishing site
    forged_host = client.post("/v1/auth/siwe", json=phished, headers={"Host": "evil.example"})
    assert (forged_host.status_code, forged_host.json()["code"]) == (401, "sign_in_failed")
    answers = [
        attempt(wallet, domain="evil.example"),
        attempt(wallet, expires_in=timedelta(seconds=-1)),
        attempt(stranger),
        attempt(wallet, uri="https://evil.example"),
        attempt(wallet, issued_in=timedelta(hours=1), expires_in=timedelta(hours=2)),
    ]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(401, "sign_in_failed")] * 5
