"""Charity donations end to end on Anvil: a charity partner at a published rate, members donating
in their own session or through a partner with their consent (approval, code, signature), the
burn at the charity's account, the receipt, the charity's statement matching the chain, the
`donation.posted` webhook, and what a charity may not do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from eth_account import Account
from support.backend import (
    ADMIN_KEY,
    auth,
    confirm_all,
    make_member,
    make_partner,
    post,
    redemption_code,
    second_program,
    sign_in,
    token_of,
)
from support.webhooks import Receiver

from loyalty.audit.events import REDEEMED
from loyalty.cli import main
from loyalty.domain.consent import sign_typed_data
from loyalty.workers.webhooks import WebhookSender, deliver_all

RATE = {"cash_minor": 500, "points": 1_000, "currency": "USD"}  # $5 per 1,000 points


def _charity(client: Any, name: str = "Food Bank", rate: dict[str, Any] = RATE) -> dict[str, Any]:
    made = post(client, "/v1/partners", {"name": name, "kind": "charity", "donation_rate": rate}, ADMIN_KEY)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _holder(client: Any, writer: Any, brand: dict[str, Any], points: int, **member: Any) -> dict[str, Any]:
    holder = make_member(client, brand["api_key"], **member)
    earned = post(client, "/v1/earn", {"member_id": holder["id"], "amount_points": points}, brand["api_key"])
    assert earned.status_code in (201, 202), earned.text
    confirm_all(writer)
    return holder


def _statement(client: Any, key: str, charity_id: int, **params: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    window = {"since": (now - timedelta(days=1)).isoformat(), "until": (now + timedelta(days=1)).isoformat()}
    found = client.get(f"/v1/partners/{charity_id}/donation-statement", params={**window, **params}, headers=auth(key))
    assert found.status_code == 200, found.text
    return dict(found.json())


def test_donations_aMemberGivesPointsInItsSession_burnedAtTheCharity_worthTheRateOfItsDay(client, writer, rpc_url):
    brand = make_partner(client, "Grocer")
    charity = _charity(client)
    shown = client.get(f"/v1/partners/{charity['id']}", headers=auth(ADMIN_KEY)).json()
    assert shown["kind"] == "charity" and shown["donation_rate"] == RATE
    member = _holder(client, writer, brand, 2_500)
    session = sign_in(client, member)

    given = post(client, "/v1/me/donations", {"charity_id": charity["id"], "amount_points": 1_999}, session)
    assert given.status_code == 201, given.text
    assert given.json()["status"] == "reserved"
    assert (given.json()["cash_minor"], given.json()["currency"]) == (999, "USD")  # 1,999 x 5/1,000, rounded down
    confirm_all(writer)

    receipt = client.get(f"/v1/me/donations/{given.json()['id']}", headers=auth(session)).json()
    assert receipt["status"] == "posted" and receipt["tx_hash"] and receipt["charity_name"] == "Food Bank"
    assert token_of(client).balance_of(member["wallet_address"]) == 501
    chain = client.app.state.runtime.chain.w3.eth.get_transaction_receipt(receipt["tx_hash"])
    [burn] = [log for log in chain["logs"] if "0x" + log["topics"][0].hex().removeprefix("0x") == REDEEMED]
    assert "0x" + burn["topics"][2].hex()[-40:] == charity["issuer_address"].lower()  # at the charity's account

    changed = client.put(
        f"/v1/partners/{charity['id']}/donation-rate",
        json={**RATE, "cash_minor": 250},
        headers=auth(charity["api_key"]),
    )
    assert changed.status_code == 200, changed.text
    again = post(client, "/v1/me/donations", {"charity_id": charity["id"], "amount_points": 500}, session)
    assert again.json()["cash_minor"] == 125
    confirm_all(writer)

    statement = _statement(client, charity["api_key"], charity["id"])
    assert statement["donations"] == statement["onchain_donations"] == 2
    assert statement["donated_points"] == statement["onchain_points"] == 2_499
    assert statement["cash_minor"] == 999 + 125 and statement["matches"] is True  # each at the rate of its day
    assert receipt["tx_hash"] in statement["tx_hashes"]
    from_chain = CliRunner().invoke(
        main,
        ["audit", "donations", "--rpc", rpc_url, "--token", token_of(client).address, "--charity",
         charity["issuer_address"], "--since", statement["since"], "--until", statement["until"], "--rate", "500/1000"],
    )  # fmt: skip
    assert from_chain.exit_code == 0, from_chain.output
    audited = json.loads(from_chain.output)
    assert (audited["donations"], audited["points"]) == (2, 2_499)  # anyone re-derives the totals from the chain
    assert audited["cash_minor"] == 999 + 250  # at one rate throughout, as asked
    mine = client.get("/v1/me/donations", headers=auth(session)).json()["data"]
    assert [d["amount_points"] for d in mine] == [1_999, 500]
    assert client.get("/v1/me/donations", headers=auth(sign_in(client, make_member(client)))).json()["data"] == []


def test_donations_relayedByABrand_needTheMembersApprovalCodeOrSignature(client, writer):
    brand = make_partner(client, "Grocer")
    charity = _charity(client)
    member = _holder(client, writer, brand, 3_000)
    ask = {"member_id": member["id"], "charity_id": charity["id"], "amount_points": 1_000}

    waiting = post(client, "/v1/donations", ask, brand["api_key"])
    assert waiting.status_code == 201 and waiting.json()["status"] == "awaiting_member"
    confirm_all(writer)
    assert token_of(client).balance_of(member["wallet_address"]) == 3_000  # nothing without the member
    session = sign_in(client, member)
    approved = post(client, f"/v1/me/redemptions/{waiting.json()['redemption_id']}/approve", None, session)
    assert approved.status_code == 200, approved.text
    with_code = post(client, "/v1/donations", {**ask, "redemption_code": redemption_code(client, member, brand)},
                     brand["api_key"])  # fmt: skip
    assert with_code.json()["status"] == "reserved" and with_code.json()["relayed_by"] == brand["id"]
    dear = _charity(client, "Dear Cause", {"cash_minor": 2, "points": 1, "currency": "USD"})
    huge = post(client, "/v1/donations", {**ask, "charity_id": dear["id"], "amount_points": 2**62}, brand["api_key"])
    assert (huge.status_code, huge.json()["code"]) == (422, "validation_error")  # worth more than 2^63 cents
    confirm_all(writer)
    assert token_of(client).balance_of(member["wallet_address"]) == 1_000
    seen = client.get(f"/v1/donations/{waiting.json()['id']}", headers=auth(charity["api_key"])).json()
    assert seen["status"] == "posted"  # the charity sees donations made to it
    assert (
        client.get(f"/v1/donations/{seen['id']}", headers=auth(make_partner(client, "Other")["api_key"])).status_code
        == 404
    )

    wallet = Account.create()
    own = _holder(client, writer, brand, 800, wallet_address=wallet.address)
    quoted = post(client, "/v1/donations/consents", {**ask, "member_id": own["id"], "amount_points": 700},
                  brand["api_key"])  # fmt: skip
    assert quoted.status_code == 201, quoted.text
    typed = quoted.json()["typed_data"]
    assert typed["message"]["issuer"] == charity["issuer_address"] and typed["message"]["amount"] == 700
    signature = "0x" + sign_typed_data(typed, wallet.key).hex()
    signed = {**ask, "member_id": own["id"], "signature": signature, "deadline": quoted.json()["deadline"]}
    assert post(client, "/v1/donations", {**signed, "amount_points": 701}, brand["api_key"]).json()["code"] == (
        "consent_not_found"  # a consent is for its amount only
    )
    given = post(client, "/v1/donations", {**signed, "amount_points": 700}, brand["api_key"])
    assert given.status_code == 201, given.text
    confirm_all(writer)
    assert token_of(client).balance_of(wallet.address) == 100
    assert _statement(client, ADMIN_KEY, charity["id"])["onchain_points"] == 2_700


def test_donations_aCharityIssuesAndSellsNothing_andOnlyCharitiesTakeDonations(client, writer, rpc_url, tmp_path):
    brand = make_partner(client, "Grocer")
    member = _holder(client, writer, brand, 1_000)
    charity = _charity(client)

    def code(path: str, body: Any, key: str = ADMIN_KEY) -> str:
        answered = post(client, path, body, key)
        assert 400 <= answered.status_code < 500, answered.text
        return str(answered.json()["code"])

    budgeted = {"name": "Rich", "kind": "charity", "donation_rate": RATE, "issue_budget_points": 10}
    assert code("/v1/partners", budgeted) == "charity_issues_nothing"
    assert code("/v1/partners", {"name": "No rate", "kind": "charity"}) == "validation_error"
    assert code(f"/v1/partners/{charity['id']}/budget/grants", {"amount_points": 5}) == "charity_issues_nothing"
    assert code("/v1/rewards", {"name": "Mug", "cost_points": 1, "stock": 1}, charity["api_key"]) == (
        "charity_issues_nothing"
    )
    [reward] = client.get(f"/v1/rewards?partner_id={charity['id']}", headers=auth(ADMIN_KEY)).json()["data"]
    assert reward["stock"] is None  # any number of donations
    linked = make_member(client, charity["api_key"])
    assert code("/v1/redemptions", {"member_id": linked["id"], "reward_id": reward["id"]}, charity["api_key"]) == (
        "charity_issues_nothing"  # its reward only takes donations, which record their worth
    )
    session = sign_in(client, member)
    assert code("/v1/me/donations", {"charity_id": brand["id"], "amount_points": 1}, session) == "not_a_charity"
    assert code("/v1/me/donations", {"charity_id": charity["id"], "amount_points": 1_001}, session) == (
        "insufficient_points"
    )
    miles = second_program(client, rpc_url, tmp_path)
    asked = {"charity_id": charity["id"], "amount_points": 1, "program_id": miles}
    assert code("/v1/me/donations", asked, session) == "program_not_joined"
    joined = post(client, f"/v1/partners/{charity['id']}/programs", {"program_id": miles, "issue_budget_points": 0},
                  ADMIN_KEY)  # fmt: skip
    assert joined.status_code == 201, joined.text
    assert code("/v1/me/donations", asked, session) == "insufficient_points"  # it takes donations there now
    other_currency = client.put(
        f"/v1/partners/{charity['id']}/donation-rate", json={**RATE, "currency": "EUR"}, headers=auth(ADMIN_KEY)
    )
    assert other_currency.status_code == 422
    not_charity = client.get(
        f"/v1/partners/{brand['id']}/donation-statement",
        params={"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
        headers=auth(brand["api_key"]),
    )
    assert not_charity.json()["code"] == "not_a_charity"


def test_donations_posted_reachTheCharityAndTheRelayingBrandByWebhook(client, writer, receiver: Receiver):
    brand = make_partner(client, "Grocer")
    charity = _charity(client)
    bystander = make_partner(client, "Bystander")
    for key in (charity["api_key"], brand["api_key"], bystander["api_key"]):
        hook = post(client, "/v1/webhooks", {"url": receiver.url, "event_types": ["donation.posted"]}, key)
        assert hook.status_code == 201, hook.text
    member = _holder(client, writer, brand, 2_000)
    ask = {"member_id": member["id"], "charity_id": charity["id"], "amount_points": 1_000,
           "redemption_code": redemption_code(client, member, brand)}  # fmt: skip
    given = post(client, "/v1/donations", ask, brand["api_key"]).json()
    confirm_all(writer)
    confirm_all(writer)  # a reorg-proof second pass records nothing new

    sender = WebhookSender(client.app.state.runtime, timeout_s=1.0, retry_base_s=0.0)
    assert deliver_all(sender) == 2  # the charity's and the brand's endpoints, not the bystander's
    bodies = [body for _, body in receiver.received]
    assert len(bodies) == 2 and all(b'"donation.posted"' in body for body in bodies)
    posted = client.get(f"/v1/donations/{given['id']}", headers=auth(brand["api_key"])).json()
    assert all(posted["tx_hash"].encode() in body and b'"cash_minor":500' in body for body in bodies)
