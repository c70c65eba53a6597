"""Members sign in: custodial ones with a passphrase set through a one-time link (guessing is
throttled), self-custody ones by signing a Sign-In with Ethereum message with their wallet."""

import concurrent.futures
from collections import Counter
from datetime import timedelta

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient
from support.backend import ADMIN_KEY, PASSPHRASE, auth, make_member, make_partner, post, serving, sign_in, siwe_message


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


def test_unknownMember_isThrottledAlike(client):
    """A 429 only for ids that exist would tell a guesser which do."""
    answers = [
        client.post("/v1/auth/sessions", json={"external_id": "nobody", "passphrase": f"wrong {i}"}) for i in range(6)
    ]
    assert [r.status_code for r in answers] == [401] * 5 + [429]
    assert answers[-1].json()["code"] == "too_many_attempts" and "Retry-After" in answers[-1].headers


def test_guessesFromOneAddress_doNotLockTheMemberOutFromAnother(client):
    """Throttled per client address: a stranger's guesses do not keep the member out (up to many
    failures from all addresses together, which close sign-in for everyone)."""
    member = make_member(client, make_partner(client)["api_key"])
    session = sign_in(client, member)  # the passphrase is set
    stranger = TestClient(client.app, client=("203.0.113.7", 40000))
    guesses = [
        stranger.post("/v1/auth/sessions", json={"external_id": member["external_id"], "passphrase": f"guess {i}"})
        for i in range(6)
    ]

    own = client.post("/v1/auth/sessions", json={"external_id": member["external_id"], "passphrase": PASSPHRASE})

    assert session.startswith("mbr_") and [r.status_code for r in guesses] == [401] * 5 + [429]
    assert own.status_code == 201, own.text


def test_aFloodOfSignIns_isToldToComeBackRatherThanQueued(settings):
    """argon2 runs two at a time per process: a request that cannot start its hash promptly is
    answered `503 busy` with Retry-After instead of holding a worker thread in a queue."""
    with serving(settings, outbox=False) as url:

        def attempt(i: int) -> httpx.Response:
            return httpx.post(
                f"{url}/v1/auth/sessions", json={"external_id": f"flood-{i}", "passphrase": "x" * 12}, timeout=60
            )

        with concurrent.futures.ThreadPoolExecutor(60) as pool:
            answers = list(pool.map(attempt, range(120)))

    codes = Counter((r.status_code, r.json()["code"]) for r in answers)
    assert set(codes) <= {(401, "sign_in_failed"), (503, "busy")}, codes
    assert codes[(503, "busy")] > 0 and codes[(401, "sign_in_failed")] > 0, codes
    assert all(r.headers["Retry-After"] == "1" for r in answers if r.status_code == 503)


def test_resetLink_setsANewPassphraseAndEndsOldSessions(client):
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    old = sign_in(client, member)

    reset = post(client, f"/v1/members/{member['id']}/passphrase-resets", None, ADMIN_KEY)
    changed = client.post(
        "/v1/auth/passphrase", json={"token": reset.json()["token"], "passphrase": "a new one, longer"}
    )

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
