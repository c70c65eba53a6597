"""A brand issuing in more than one program: the admin gives it an issuer account in another
program, with its budget there; the brand earns there by naming the program, and every figure
(budget, balances, earns) is the program's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
)
from web3 import HTTPProvider, Web3

from loyalty.audit.reconcile import reconcile
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import verify
from loyalty.chain.artifacts import load_artifact


def test_partnerPrograms_aBrandEarnsInASecondProgramFromItsBudgetThere(
    client: Any, writer: Any, rpc_url: str, tmp_path: Path
) -> None:
    airline = make_partner(client, "Airline", budget=0)
    key = airline["api_key"]
    miles = second_program(client, rpc_url, tmp_path)
    member = make_member(client, key)
    asked = {"member_id": member["id"], "amount_points": 1_200, "program_id": miles}
    refused = post(client, "/v1/earn", asked, key)
    assert (refused.status_code, refused.json()["code"]) == (422, "program_not_joined"), refused.text

    joined = post(
        client, f"/v1/partners/{airline['id']}/programs", {"program_id": miles, "issue_budget_points": 5_000}, ADMIN_KEY
    )
    assert joined.status_code == 201, joined.text
    account = joined.json()
    assert (account["kind"], account["owner_id"], account["program_id"]) == ("program", airline["id"], miles)
    assert account["issuer_address"] != airline["issuer_address"]
    again = post(
        client, f"/v1/partners/{airline['id']}/programs", {"program_id": miles, "issue_budget_points": 1}, ADMIN_KEY
    )
    assert (again.status_code, again.json()["code"]) == (409, "partner_in_program")
    first = post(
        client, f"/v1/partners/{airline['id']}/programs", {"program_id": 1, "issue_budget_points": 1}, ADMIN_KEY
    )
    assert (first.status_code, first.json()["code"]) == (409, "partner_in_program")

    earned = post(client, "/v1/earn", asked, key)
    assert earned.status_code == 202, earned.text
    batch = {"program_id": miles, "items": [{"member_id": member["id"], "amount_points": 300}]}
    assert post(client, "/v1/earn/batch", batch, key).status_code == 202
    over = post(client, "/v1/earn", {**asked, "amount_points": 3_501}, key)
    assert (over.status_code, over.json()["code"]) == (422, "budget_exceeded"), over.text
    in_first = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 10}, key)
    assert (in_first.status_code, in_first.json()["code"]) == (422, "budget_exceeded")  # its budget there is 0
    confirm_all(writer)

    shown = client.get(f"/v1/earn/{earned.json()['id']}", headers=auth(key)).json()
    assert (shown["status"], shown["program_id"]) == ("confirmed", miles), shown
    listed = client.get("/v1/earn", headers=auth(key)).json()["data"]
    assert [(e["program_id"], e["amount_points"]) for e in listed] == [(miles, 1_200), (miles, 300)]
    w3 = Web3(HTTPProvider(rpc_url))
    token = client.get(f"/v1/programs/{miles}", headers=auth(ADMIN_KEY)).json()["token_address"]
    miles_token = w3.eth.contract(address=token, abi=load_artifact("LoyaltyPoints").abi)
    assert miles_token.functions.balanceOf(member["wallet_address"]).call() == 1_500
    balances = client.get(f"/v1/members/{member['id']}", headers=auth(key)).json()["programs"]
    assert [(p["program_id"], p["balance_points"]) for p in balances] == [(1, 0), (miles, 1_500)]
    budget = client.get(f"/v1/partners/{airline['id']}/budget", params={"program_id": miles}, headers=auth(key)).json()
    assert (budget["granted_points"], budget["used_points"], budget["available_points"]) == (5_000, 1_500, 3_500)
    assert client.get(f"/v1/partners/{airline['id']}/budget", headers=auth(key)).json()["granted_points"] == 0

    granted = post(
        client, f"/v1/partners/{airline['id']}/budget/grants", {"amount_points": 1_000, "program_id": miles}, ADMIN_KEY
    )
    assert (granted.status_code, granted.json()["to_grant_points"]) == (201, 1_000), granted.text
    confirm_all(writer)
    assert miles_token.functions.issueBudget(account["issuer_address"]).call() == 4_500
    accounts = client.get(f"/v1/partners/{airline['id']}/programs", headers=auth(key)).json()["data"]
    assert [(a["program_id"], a["status"]) for a in accounts] == [(1, "active"), (miles, "active")]
    window = {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
    statement = client.get(f"/v1/programs/{miles}/statements", params=window, headers=auth(key))
    assert statement.status_code == 200, statement.text
    assert [(x["partner_id"], x["issued_points"]) for x in statement.json()["lines"]] == [(airline["id"], 1_500)]


def test_partnerPrograms_aRewardInASecondProgramBurnsThatProgramsPoints(
    client: Any, writer: Any, rpc_url: str, tmp_path: Path
) -> None:
    airline = make_partner(client, "Airline", budget=5_000)
    key = airline["api_key"]
    miles = second_program(client, rpc_url, tmp_path)
    seat = {"name": "Lounge pass", "cost_points": 400, "stock": 5, "program_id": miles}
    early = post(client, "/v1/rewards", seat, key)
    assert (early.status_code, early.json()["code"]) == (422, "program_not_joined"), early.text
    joined = post(
        client, f"/v1/partners/{airline['id']}/programs", {"program_id": miles, "issue_budget_points": 5_000}, ADMIN_KEY
    )
    assert joined.status_code == 201, joined.text
    reward = post(client, "/v1/rewards", seat, key).json()
    assert reward["program_id"] == miles, reward
    member = make_member(client, key)
    for program_id, points in ((1, 300), (miles, 1_000)):
        body = {"member_id": member["id"], "amount_points": points, "program_id": program_id}
        assert post(client, "/v1/earn", body, key).status_code == 202
    confirm_all(writer)

    code = redemption_code(client, member, airline)
    redeemed = post(
        client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": code}, key
    )
    assert redeemed.status_code == 201, redeemed.text
    assert (redeemed.json()["status"], redeemed.json()["program_id"]) == ("reserved", miles)
    second = post(client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, key)
    approved = post(client, f"/v1/me/redemptions/{second.json()['id']}/approve", None, sign_in(client, member))
    assert approved.status_code == 200, approved.text
    third = post(client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, key)
    refused = post(client, f"/v1/me/redemptions/{third.json()['id']}/approve", None, sign_in(client, member))
    assert (refused.status_code, refused.json()["code"]) == (422, "insufficient_points"), refused.text  # 200 miles left
    confirm_all(writer)

    done = client.get(f"/v1/redemptions/{redeemed.json()['id']}", headers=auth(key)).json()
    assert done["status"] == "posted", done
    balances = client.get(f"/v1/members/{member['id']}", headers=auth(key)).json()["programs"]
    assert [(p["program_id"], p["balance_points"]) for p in balances] == [(1, 300), (miles, 200)]
    listed = client.get("/v1/rewards", params={"program_id": miles}, headers=auth(key)).json()["data"]
    assert [(r["id"], r["stock"]) for r in listed] == [(reward["id"], 3)]
    history = client.get(f"/v1/members/{member['id']}/history", headers=auth(key)).json()["data"]
    assert [(e["kind"], e["program_id"], e["amount_points"]) for e in history] == [
        ("earn", 1, 300),
        ("earn", miles, 1_000),
        ("redeem", miles, 400),
        ("redeem", miles, 400),
        ("redeem", miles, 400),
    ]  # the third still awaits the member (its approval was refused for want of points)
    token = client.get(f"/v1/programs/{miles}", headers=auth(ADMIN_KEY)).json()["token_address"]
    with client.app.state.runtime.sessions() as session:  # the miles token's earns and burns are the database's
        assert reconcile(session, verify(Rpc(rpc_url), token)) == []
