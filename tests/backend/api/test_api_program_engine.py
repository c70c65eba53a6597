"""The program engine in a brand's second program: its rules, campaigns, events, purchases,
refunds, debts and tiers there are the program's own (priced by the brand's issuer account
there, on that program's settings and ladder), and never mix with the first program's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, second_program, token_of
from web3 import HTTPProvider, Web3

from loyalty.chain.artifacts import load_artifact

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
MILES_PER_DOLLAR = {
    "name": "5 miles per dollar",
    "calculator": {"strategy": "per_spend", "points": 5, "per_minor": 100},
}
LADDER = {
    "tiers": [
        {"name": "blue", "threshold": 0},
        {"name": "gold", "threshold": 10_000, "multiplier_numerator": 2, "multiplier_denominator": 1},
    ],
    "metric": "net_spend",
    "window_days": 365,
}
FLIGHT = {"sku": "LHR-JFK", "category": "flights", "quantity": 1, "unit_price_minor": 12_000}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _buy(client: Any, key: str, member: dict[str, Any], order_id: str, program_id: int | None, **extra: Any) -> Any:
    body = {"member_id": member["id"], "order_id": order_id, "occurred_at": _now(), "currency": "USD",
            "lines": [FLIGHT], **({"program_id": program_id} if program_id else {}), **extra}  # fmt: skip
    return post(client, "/v1/purchases", body, key)


def _get(client: Any, path: str, key: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def _miles(client: Any, rpc_url: str, folder: Path, budget: int = 1_000_000) -> tuple[dict[str, Any], int, Any]:
    """An airline issuing in program 1 and in its own miles program (its token's contract)."""
    airline = make_partner(client, "Airline", budget=budget)
    miles = second_program(client, rpc_url, folder)
    joined = post(
        client,
        f"/v1/partners/{airline['id']}/programs",
        {"program_id": miles, "issue_budget_points": budget},
        ADMIN_KEY,
    )
    assert joined.status_code == 201, joined.text
    address = _get(client, f"/v1/programs/{miles}", ADMIN_KEY)["token_address"]
    token = Web3(HTTPProvider(rpc_url)).eth.contract(address=address, abi=load_artifact("LoyaltyPoints").abi)
    return airline, miles, token


def test_programEngine_purchasesInASecondProgram_earnByItsRulesAndSettings_apartFromTheFirst(
    client: Any, writer: Any, rpc_url: str, tmp_path: Path
) -> None:
    other = make_partner(client, "Not joined")
    assert (refused := post(client, "/v1/rules", {**PER_DOLLAR, "program_id": 2}, other["api_key"])).status_code == 422
    airline, miles, token = _miles(client, rpc_url, tmp_path)
    key = airline["api_key"]
    assert refused.json()["code"] == "program_not_joined"
    assert post(client, "/v1/rules", PER_DOLLAR, key).status_code == 201
    rule = post(client, "/v1/rules", {**MILES_PER_DOLLAR, "program_id": miles}, key)
    assert rule.status_code == 201, rule.text
    assert (rule.json()["partner_id"], rule.json()["program_id"]) == (airline["id"], miles)
    listed = _get(client, "/v1/rules", key, program_id=miles)["data"]
    assert [(r["id"], r["program_id"]) for r in listed] == [(rule.json()["id"], miles)]
    assert len(_get(client, "/v1/rules", key)["data"]) == 2
    assert client.patch(f"/v1/programs/{miles}", json={"pending_days": 7}, headers=auth(ADMIN_KEY)).status_code == 200
    member = make_member(client, key)

    # One order may earn in each program (a brand's own points and a coalition's, say).
    first = _buy(client, key, member, "PNR-1", None)
    second = _buy(client, key, member, "PNR-1", miles)
    again = _buy(client, key, member, "PNR-1", miles)
    not_linked = _buy(client, make_partner(client, "Hotel")["api_key"], member, "PNR-1", None)
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert (first.json()["program_id"], first.json()["status"], first.json()["total_points"]) == (1, "released", 120)
    assert (second.json()["program_id"], second.json()["partner_id"]) == (miles, airline["id"])
    assert (second.json()["status"], second.json()["total_points"]) == ("pending", 600)  # program 2's pending period
    assert [a["rule_id"] for a in second.json()["awards"]] == [rule.json()["id"]]
    assert (again.status_code, again.json()["code"]) == (409, "order_exists")
    assert (not_linked.status_code, not_linked.json()["code"]) == (404, "member_not_found")
    confirm_all(writer)
    assert token_of(client).balance_of(member["wallet_address"]) == 120
    assert token.functions.balanceOf(member["wallet_address"]).call() == 0  # pending
    shown = _get(client, f"/v1/members/{member['id']}", key)
    assert [(p["program_id"], p["pending_points"]) for p in shown["programs"]] == [(1, 0), (miles, 600)]
    assert _get(client, "/v1/purchases/PNR-1", key, program_id=miles)["total_points"] == 600
    assert _get(client, "/v1/purchases/PNR-1", key)["total_points"] == 120
    assert [p["program_id"] for p in _get(client, "/v1/purchases", key)["data"]] == [1, miles]

    # A refund names the program of the order it refunds; the first program's stays whole.
    refund = {"refund_id": "R-1", "lines": [{"sku": "LHR-JFK", "quantity": 1}], "program_id": miles}
    refunded = post(client, "/v1/purchases/PNR-1/refunds", refund, key)
    assert (refunded.status_code, refunded.json()["points_reversed"], refunded.json()["debt_points"]) == (201, 600, 0)
    assert _get(client, "/v1/purchases/PNR-1", key)["total_points"] == 120
    simulated = client.post(
        "/v1/rules/simulate", json={"occurred_at": _now(), "lines": [FLIGHT], "program_id": miles}, headers=auth(key)
    )
    assert (simulated.status_code, simulated.json()["total_points"]) == (200, 600), simulated.text


def test_programEngine_aSecondProgramsTiersCampaignsAndEvents_countOnlyItsOwnActivity(
    client: Any, writer: Any, rpc_url: str, tmp_path: Path
) -> None:
    airline, miles, token = _miles(client, rpc_url, tmp_path)
    key = airline["api_key"]
    assert client.put(f"/v1/programs/{miles}/tiers", json=LADDER, headers=auth(ADMIN_KEY)).status_code == 200
    assert post(client, "/v1/rules", {**MILES_PER_DOLLAR, "program_id": miles}, key).status_code == 201
    assert post(client, "/v1/rules", PER_DOLLAR, key).status_code == 201
    review = {
        "name": "review",
        "trigger": "event",
        "event_type": "review_written",
        "calculator": {"strategy": "fixed", "points": 250},
    }
    assert post(client, "/v1/rules", {**review, "program_id": miles}, key).status_code == 201
    member = make_member(client, key)

    # Spend in the first program does not lift the member's tier in the second.
    assert _buy(client, key, member, "P-1", None).status_code == 202
    before = _get(client, f"/v1/members/{member['id']}/tier", ADMIN_KEY, program_id=miles)
    assert (before["tier"], before["value"]) == (None, 0)
    bought = _buy(client, key, member, "M-1", miles)
    assert (bought.status_code, bought.json()["total_points"]) == (202, 600), bought.text
    tier = _get(client, f"/v1/members/{member['id']}/tier", ADMIN_KEY, program_id=miles)
    assert (tier["program_id"], tier["tier"], tier["value"]) == (miles, "gold", 12_000)
    doubled = _buy(client, key, member, "M-2", miles).json()
    assert (doubled["total_points"], [a["tier"] for a in doubled["awards"]]) == (1_200, [None, "gold"])

    # A campaign in the second program takes its budget from the brand's budget there.
    window = {"starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
              "ends_at": (datetime.now(UTC) + timedelta(days=9)).isoformat()}  # fmt: skip
    body = {"name": "Double miles", **window, "effect": {"kind": "multiplier", "numerator": 2, "denominator": 1},
            "budget_points": 5_000, "program_id": miles}  # fmt: skip
    made = post(client, "/v1/campaigns", body, key)
    assert made.status_code == 201, made.text
    campaign = made.json()
    assert (campaign["partner_id"], campaign["program_id"]) == (airline["id"], miles)
    budget = _get(client, f"/v1/partners/{airline['id']}/budget", key, program_id=miles)
    assert budget["moved_points"] == 5_000
    assert _get(client, f"/v1/partners/{airline['id']}/budget", key)["moved_points"] == 0
    event = {
        "member_id": member["id"],
        "event_id": "E-1",
        "type": "review_written",
        "occurred_at": _now(),
        "program_id": miles,
    }
    recorded = post(client, "/v1/events", event, key)
    assert (recorded.status_code, recorded.json()["total_points"], recorded.json()["program_id"]) == (201, 250, miles)
    confirm_all(writer)
    assert token.functions.issueBudget(campaign["issuer_address"]).call() == 5_000
    boosted = _buy(client, key, member, "M-3", miles).json()
    assert [(a["campaign_id"], a["points"]) for a in boosted["awards"]] == [
        (None, 600),
        (None, 600),
        (campaign["id"], 600),
    ]
    confirm_all(writer)
    assert token.functions.balanceOf(member["wallet_address"]).call() == 600 + 1_200 + 250 + 1_800
    assert token_of(client).balance_of(member["wallet_address"]) == 120
    assert token.functions.issueBudget(campaign["issuer_address"]).call() == 4_400
    first = client.get(f"/v1/members/{member['id']}/tier", headers=auth(key))
    assert (first.status_code, first.json()["detail"]) == (404, "program 1 has no tier ladder")


def test_programEngine_aReferralInASecondProgram_paysBothSidesThereFromTheBrandsRules(
    client: Any, writer: Any, rpc_url: str, tmp_path: Path
) -> None:
    airline, miles, token = _miles(client, rpc_url, tmp_path)
    key = airline["api_key"]
    for side in ("referrer", "friend"):
        rule = {"name": f"300 miles, {side}", "trigger": "referral", "beneficiary": side,
                "calculator": {"strategy": "fixed", "points": 300}, "program_id": miles}  # fmt: skip
        assert post(client, "/v1/rules", rule, key).status_code == 201
    alice = make_member(client, key)
    bob = make_member(client, key, referral_code=alice["referral_code"])

    assert _buy(client, key, bob, "R-1", None).status_code == 202  # the first program has no referral rule
    assert _get(client, f"/v1/members/{alice['id']}/referrals", key)["data"][0]["status"] == "pending"
    assert _buy(client, key, bob, "R-2", miles).status_code == 202
    confirm_all(writer)
    [referral] = _get(client, f"/v1/members/{alice['id']}/referrals", key)["data"]
    assert referral["status"] == "rewarded", referral
    assert token.functions.balanceOf(alice["wallet_address"]).call() == 300
    assert token.functions.balanceOf(bob["wallet_address"]).call() == 300


def test_programEngine_theAuditorsViewOfASecondProgram_isReplayedFromItsOwnToken(
    client: Any, writer: Any, rpc_url: str, tmp_path: Path
) -> None:
    airline, miles, token = _miles(client, rpc_url, tmp_path)
    key = airline["api_key"]
    assert post(client, "/v1/rules", {**MILES_PER_DOLLAR, "program_id": miles}, key).status_code == 201
    assert post(client, "/v1/rules", PER_DOLLAR, key).status_code == 201
    member = make_member(client, key)
    assert _buy(client, key, member, "A-1", miles).status_code == 202
    assert _buy(client, key, member, "A-1", None).status_code == 202
    confirm_all(writer)
    [account] = [
        a for a in _get(client, f"/v1/partners/{airline['id']}/programs", key)["data"] if a["program_id"] == miles
    ]

    summary = _get(client, "/v1/audit/summary", ADMIN_KEY, program_id=miles)
    assert (summary["program_id"], summary["token_address"]) == (miles, token.address)
    assert (summary["earned_points"], summary["outstanding_points"], summary["total_supply_onchain_points"]) == (
        600,
        600,
        600,
    )
    assert [(p["partner_id"], p["earned_points"]) for p in summary["partners"]] == [(account["id"], 600)]
    first = _get(client, "/v1/audit/summary", ADMIN_KEY)
    assert (first["program_id"], first["earned_points"]) == (1, 120)
    shown = _get(client, f"/v1/audit/members/{member['id']}", ADMIN_KEY, program_id=miles)
    assert (shown["program_id"], shown["balance_points"], shown["balance_onchain_points"]) == (miles, 600, 600)
    assert [(e["kind"], e["amount_points"]) for e in shown["entries"]] == [("earn", 600)]
    missing = client.get("/v1/audit/summary", params={"program_id": 99}, headers=auth(ADMIN_KEY))
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
