"""Coalition statements: a program several partners issue in bills each for the points it
issued and reimburses it for the points redeemed at it, from the token's events alone, netted
into at most n - 1 payments; the API and `loyalty audit statement` give the same figures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, redemption_code, sign_in

from loyalty.cli import main

FEE, PRICE = 10, 8  # a tenth of a cent per point issued, 0.08 cents per point redeemed (6-decimal dollars)


def test_statement_billsIssuersAndReimbursesRedeemersInAtMostNMinusOnePayments(chain_app: Any, own_chain: Any) -> None:
    client, writer = chain_app
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    grocer, cinema = make_partner(client, "Grocer"), make_partner(client, "Cinema")
    member = make_member(client, grocer["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1_000}, grocer["api_key"])
    confirm_all(writer)
    post(client, "/v1/me/links", {"partner_id": cinema["id"]}, sign_in(client, member))
    reward = post(client, "/v1/rewards", {"name": "Ticket", "cost_points": 400, "stock": 5}, cinema["api_key"]).json()
    code = redemption_code(client, member, cinema)
    redeemed = post(
        client,
        "/v1/redemptions",
        {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": code},
        cinema["api_key"],
    )
    assert redeemed.json()["status"] == "reserved", redeemed.text
    confirm_all(writer)
    set_prices = client.patch(
        "/v1/programs/1",
        json={"issue_fee_per_point": FEE, "redemption_price_per_point": PRICE},
        headers=auth(ADMIN_KEY),
    )
    assert set_prices.status_code == 200 and set_prices.json()["issue_fee_per_point"] == FEE, set_prices.text
    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()

    found = client.get(
        "/v1/programs/1/statements", params={"since": since, "until": until}, headers=auth(ADMIN_KEY)
    ).json()
    lines = {line["partner_id"]: line for line in found["lines"]}
    assert (lines[grocer["id"]]["issued_points"], lines[grocer["id"]]["fees"], lines[grocer["id"]]["net"]) == (
        1_000,
        "10000",
        "-10000",
    )
    assert (lines[cinema["id"]]["redeemed_points"], lines[cinema["id"]]["reimbursed"], lines[cinema["id"]]["net"]) == (
        400,
        "3200",
        "3200",
    )
    assert sum(int(v) for v in found["net"].values()) == 0
    coalition = found["token_address"]
    assert int(found["net"][coalition]) == 10_000 - 3_200  # the coalition keeps the difference
    # netted: the grocer, the only debtor, pays the cinema and the coalition directly
    payments = {(p["debtor_id"], p["creditor"], p["amount"]) for p in found["payments"]}
    assert payments == {(grocer["id"], coalition, "6800"), (grocer["id"], cinema["issuer_address"], "3200")}, payments

    as_cinema = client.get(
        "/v1/programs/1/statements", params={"since": since, "until": until}, headers=auth(cinema["api_key"])
    ).json()
    assert [line["partner_id"] for line in as_cinema["lines"]] == [cinema["id"]]
    before = client.get("/v1/programs/1/statements", params={"since": until, "until": since}, headers=auth(ADMIN_KEY))
    assert (before.status_code, before.json()["code"]) == (422, "validation_error")

    audited = CliRunner().invoke(main, [
        "audit", "statement", "--rpc", own_chain.url, "--token", coalition, "--since", since, "--until", until,
        "--issue-fee", str(FEE), "--redemption-price", str(PRICE),
    ])  # fmt: skip
    assert audited.exit_code == 0, audited.output
    from_chain = json.loads(audited.output)
    assert {k: str(v) for k, v in from_chain["net"].items()} == found["net"]
    assert [list(p) for p in from_chain["payments"]] == [
        [p["debtor"], p["creditor"], int(p["amount"])] for p in found["payments"]
    ]
