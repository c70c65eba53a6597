"""The whole self-custody flow with a wallet library no one here wrote: ethers.js (npm), run by
Node, signs in with Sign-In with Ethereum, and signs the consent the API hands out (in its
ethers shape), once in full and once as an EIP-2098 compact signature."""

import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

from support.backend import auth, confirm_all, make_member, make_partner, post, token_of

from loyalty.paths import ROOT


def ethers(**request: Any) -> dict[str, Any]:
    result = subprocess.run(
        ["node", str(ROOT / "tests" / "support" / "wallet.js")],
        input=json.dumps(request), capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_selfCustodyMember_signsInAndRedeemsWithEthers(client, writer):
    wallet = ethers(do="create")
    partner = make_partner(client)
    member = make_member(client, partner["api_key"], wallet_address=wallet["address"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 100}, partner["api_key"])
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 30, "stock": 5}, partner["api_key"]).json()
    confirm_all(writer)

    nonce = client.post("/v1/auth/siwe/nonces").json()
    now = datetime.now(UTC)
    message = (
        f"{nonce['domain']} wants you to sign in with your Ethereum account:\n{wallet['address']}\n\n"
        f"{nonce['statement']}\n\nURI: {nonce['uri']}\nVersion: 1\nChain ID: {nonce['chain_id']}\n"
        f"Nonce: {nonce['nonce']}\nIssued At: {now.isoformat()}\nExpiration Time: {(now + timedelta(minutes=5)).isoformat()}"
    )
    signed_in = ethers(do="signMessage", privateKey=wallet["privateKey"], message=message)
    session = client.post("/v1/auth/siwe", json={"message": message, "signature": signed_in["signature"]})
    assert session.status_code == 201, session.text

    posted = []
    for form in ("signature", "compact"):
        body = {"member_id": member["id"], "reward_id": reward["id"]}
        quote = post(client, "/v1/redemptions/consents", body, partner["api_key"]).json()
        assert "EIP712Domain" not in quote["ethers"]["types"] and "EIP712Domain" in quote["typed_data"]["types"]
        signature = ethers(do="signTypedData", privateKey=wallet["privateKey"], typedData=quote["ethers"])[form]
        assert len(bytes.fromhex(signature[2:])) == (65 if form == "signature" else 64)
        redeemed = post(
            client,
            "/v1/redemptions",
            {**body, "signature": signature, "deadline": quote["deadline"]},
            partner["api_key"],
        )
        assert (redeemed.status_code, redeemed.json()["status"]) == (201, "reserved"), redeemed.text
        confirm_all(writer)
        posted.append(client.get(f"/v1/redemptions/{redeemed.json()['id']}", headers=auth(partner["api_key"])).json())

    assert [r["status"] for r in posted] == ["posted", "posted"]
    assert token_of(client).balance_of(wallet["address"]) == 40
    history = client.get("/v1/me/history", headers=auth(session.json()["token"])).json()["data"]
    assert sorted(e["kind"] for e in history) == ["earn", "redeem", "redeem"]
