"""Program metrics on a chain of the test's own, where a cohort of points fully expires: liability
and breakage equal what `loyalty audit verify` derives from the same chain (one computation),
flows split by where points went (partners, a charity), members' activity, retention by month,
repeat purchases, dormant points and the deferred revenue of points sold with purchases."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from click.testing import CliRunner
from sqlalchemy import update
from support.backend import (
    ADMIN_KEY,
    auth,
    confirm_all,
    link,
    make_member,
    make_partner,
    post,
    redemption_code,
    serving,
    sign_in,
)

from loyalty.cli import main
from loyalty.db.models import Earn, Member, MemberLink, Redemption

DAY = 86_400
PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}


def _metrics(client: Any, key: str = ADMIN_KEY, **params: Any) -> dict[str, Any]:
    found = client.get("/v1/metrics", params=params, headers=auth(key))
    assert found.status_code == 200, found.text
    return dict(found.json())


def _buy(client: Any, partner: dict[str, Any], member: dict[str, Any], order_id: str, dollars: int) -> None:
    line = {"sku": "basket", "quantity": 1, "unit_price_minor": dollars * 100}
    body = {"member_id": member["id"], "order_id": order_id, "occurred_at": datetime.now(UTC).isoformat(),
            "currency": "USD", "lines": [line]}  # fmt: skip
    assert post(client, "/v1/purchases", body, partner["api_key"]).status_code == 202


def test_metrics_liabilityAndBreakage_equalTheAudit_andTheRestAddsUp(
    chain_app, own_chain, chain_settings, tmp_path: Path
) -> None:
    client, writer = chain_app
    valued = client.patch(
        "/v1/programs/1", json={"point_value_minor": 1, "point_value_points": 1}, headers=auth(ADMIN_KEY)
    )
    assert valued.status_code == 200 and valued.json()["point_value_minor"] == 1, valued.text
    grocer, cinema = make_partner(client, "Grocer"), make_partner(client, "Cinema")
    rate = {"cash_minor": 500, "points": 1_000, "currency": "USD"}
    charity = post(
        client, "/v1/partners", {"name": "Food Bank", "kind": "charity", "donation_rate": rate}, ADMIN_KEY
    ).json()
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 300, "stock": 5}, grocer["api_key"]).json()
    ann, bob, cat = (make_member(client, grocer["api_key"]) for _ in range(3))
    for member, points in ((ann, 1_000), (bob, 500)):
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": points}, grocer["api_key"])
    confirm_all(writer)
    redeemed = {
        "member_id": ann["id"],
        "reward_id": reward["id"],
        "redemption_code": redemption_code(client, ann, grocer),
    }
    assert post(client, "/v1/redemptions", redeemed, grocer["api_key"]).status_code == 201
    given = post(client, "/v1/me/donations", {"charity_id": charity["id"], "amount_points": 100}, sign_in(client, bob))
    assert given.status_code == 201, given.text
    confirm_all(writer)

    own_chain.rpc("evm_increaseTime", 12 * DAY)  # the first day's points (12 daily epochs) expire
    own_chain.rpc("evm_mine")
    assert post(client, "/v1/rules", PER_DOLLAR, grocer["api_key"]).status_code == 201
    _buy(client, grocer, ann, "A-1", 100)  # 100 points each, for $100
    _buy(client, grocer, ann, "A-2", 100)
    post(client, "/v1/earn", {"member_id": cat["id"], "amount_points": 2_000}, grocer["api_key"])
    post(client, "/v1/earn", {"member_id": bob["id"], "amount_points": 50}, grocer["api_key"])
    link(client, cat, cinema)
    assert post(client, "/v1/earn", {"member_id": cat["id"], "amount_points": 10}, cinema["api_key"]).status_code == 202
    confirm_all(writer)
    confirm_all(writer)
    with client.app.state.runtime.sessions() as session:  # bob did nothing for 100 days
        then = datetime.now(UTC) - timedelta(days=100)
        aged = ((Member, Member.id), (Earn, Earn.member_id), (MemberLink, MemberLink.member_id),
                (Redemption, Redemption.member_id))  # fmt: skip
        for table, column in aged:
            session.execute(update(table).where(column == bob["id"]).values(created_at=then))
        session.commit()

    program = _metrics(client)
    audited = CliRunner().invoke(
        main,
        ["audit", "verify", "--rpc", own_chain.url, "--token", own_chain.deployment.token_address, "--out",
         str(tmp_path / "audit")],
    )  # fmt: skip
    assert audited.exit_code == 0, audited.output
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    # one computation: the audit's figures are the metrics' to the point
    assert program["liability_points"] == report["figures"]["outstanding_points"] == 2_260
    assert program["expired_points"] == report["figures"]["expired_points"] == 1_100  # 700 of ann's, 400 of bob's
    assert program["breakage"]["realized_bp"] == report["breakage"]["realized_bp"] == 7_333  # 1,100 / 1,500
    assert program["breakage"]["expected_bp"] == report["breakage"]["expected_bp"]
    assert [c["expected_expired"] for c in program["breakage"]["cohorts"]] == [
        c["expected_expired"] for c in report["breakage"]["cohorts"]
    ]
    first, second = program["breakage"]["cohorts"]
    assert (first["earned"], first["spent"], first["expired"], first["closed"]) == (1_500, 400, 1_100, True)
    assert (second["earned"], second["outstanding"], second["closed"]) == (2_260, 2_260, False)
    assert second["expected_expired"] == 2_260 * 7_333 // 10_000  # the closed cohort's rate, applied
    assert program["liability_minor"] == 2_260  # a cent a point
    assert program["totals"] == {"issued": 3_760, "exchanged_in": 0, "redeemed": 300, "donated": 100,
                                 "exchanged_out": 0, "expired": 1_100}  # fmt: skip
    assert program["expiring"][0] == {"days": 30, "points": 2_260}  # the second day's cohort, within 12 days
    assert program["redemption_rate_bp"] == 400 * 10_000 // 3_760
    assert program["members"]["dormant"] == 1 and program["members"]["dormant_points"] == 50  # bob
    assert program["members"]["enrolled"] == 3 and program["members"]["active"] == 2
    months = {row["enrolled_in"]: row for row in program["retention"]}
    assert sum(row["enrolled"] for row in months.values()) == 3
    assert months[datetime.now(UTC).strftime("%Y-%m")]["retained"] == 2
    assert (program["purchasers"], program["repeat_purchase_rate_bp"]) == (1, 10_000)  # ann bought twice

    deferred = program["deferred_revenue"]
    b = deferred["expected_breakage_bp"]
    standalone = 100 * (10_000 - b) // 10_000  # 100 points at a cent, less what will expire
    assert sum(p["revenue_minor"] for p in deferred["periods"]) == 20_000
    assert sum(p["allocated_minor"] for p in deferred["periods"]) == 2 * (10_000 * standalone // (10_000 + standalone))
    last = deferred["periods"][-1]
    allocated = sum(p["allocated_minor"] for p in deferred["periods"])
    expected_spent = 3_760 * (10_000 - b) // 10_000
    assert sum(p["recognised_minor"] for p in deferred["periods"]) == allocated * 400 // expected_spent
    assert last["deferred_minor"] == allocated - allocated * 400 // expected_spent

    own = _metrics(client, grocer["api_key"])  # a partner gets its own figures
    theirs = _metrics(client, ADMIN_KEY, partner_id=cinema["id"])
    assert own["partner_id"] == grocer["id"] and own["liability_points"] + theirs["liability_points"] == 2_260
    assert theirs["liability_points"] == 10 and theirs["members"]["enrolled"] == 1  # cat, linked to both
    refused = client.get("/v1/metrics", params={"partner_id": cinema["id"]}, headers=auth(grocer["api_key"]))
    assert refused.status_code == 404
    now = datetime.now(UTC)
    window = _metrics(client, since=(now - timedelta(days=1)).isoformat(), until=(now + timedelta(days=30)).isoformat())
    assert window["window"]["flows"]["issued"] == 3_760 and window["window"]["flows"]["expired"] == 1_100

    with serving(chain_settings, outbox=False) as url:
        shown = CliRunner().invoke(
            main,
            [
                "metrics",
                "--csv",
                "cohorts",
                "--chart",
                str(tmp_path / "chart.svg"),
                "--api-url",
                url,
                "--key",
                ADMIN_KEY,
            ],
        )
    assert shown.exit_code == 0, shown.output
    rows = list(csv.DictReader(io.StringIO(shown.output)))
    assert [(int(r["earned"]), int(r["expired"])) for r in rows] == [(1_500, 1_100), (2_260, 0)]
    svg = ElementTree.parse(tmp_path / "chart.svg").getroot()
    bars = [
        r
        for r in svg.iter("{http://www.w3.org/2000/svg}rect")
        if r.find("{http://www.w3.org/2000/svg}title") is not None
    ]
    assert {bar.find("{http://www.w3.org/2000/svg}title").text for bar in bars} == {
        "spent 400",
        "expired 1,100",
        "outstanding 2,260",
        f"expected to expire {2_260 * 7_333 // 10_000:,}",
    }
