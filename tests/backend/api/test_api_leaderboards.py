"""Leaderboards on a chain of the test's own: members ranked by the points they earned from the
brand in a week, from the chain (ties by who got there first), the same ranking from `loyalty
audit leaderboard`, a member's own rank without the others' ids, and prizes paid once when the
week closes, from a campaign's budget."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from support.backend import ADMIN_KEY, auth, confirm_all, link, make_member, make_partner, post, sign_in

from loyalty.cli import main

DAY = 86_400


def _earn(client: Any, partner: dict[str, Any], member: dict[str, Any], points: int) -> None:
    earned = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": points}, partner["api_key"])
    assert earned.status_code == 202, earned.text


def test_leaderboards_rankFromTheChain_andPayPrizesOnceWhenTheWeekCloses(chain_app, own_chain) -> None:
    client, writer = chain_app
    grocer, cinema = make_partner(client, "Grocer"), make_partner(client, "Cinema")
    now = datetime.now(UTC)
    window = {"starts_at": (now - timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=60)).isoformat()}
    campaign = post(client, "/v1/campaigns", {"name": "Prizes", **window, "effect": {"kind": "bonus", "points": 1},
                                               "budget_points": 600}, grocer["api_key"])  # fmt: skip
    assert campaign.status_code == 201, campaign.text
    board = post(
        client, "/v1/leaderboards",
        {"name": "Top shoppers", "period": "weekly", "prizes": [{"rank": 1, "points": 500}, {"rank": 2, "points": 200}],
         "campaign_id": campaign.json()["id"]},
        grocer["api_key"],
    )  # fmt: skip
    assert board.status_code == 201, board.text
    board_id = board.json()["id"]
    ann, bob, cat = (make_member(client, grocer["api_key"]) for _ in range(3))
    _earn(client, grocer, ann, 300)
    confirm_all(writer)
    _earn(client, grocer, bob, 500)
    _earn(client, grocer, cat, 300)  # ties with ann, but got there later
    link(client, ann, cinema)
    _earn(client, cinema, ann, 1_000)  # another brand's points do not count
    confirm_all(writer)

    found = client.get(f"/v1/leaderboards/{board_id}/standings", params={"member_id": cat["id"]},
                       headers=auth(grocer["api_key"])).json()  # fmt: skip
    assert [(e["rank"], e["member_id"], e["points"]) for e in found["entries"]] == [
        (1, bob["id"], 500), (2, ann["id"], 300), (3, cat["id"], 300)
    ]  # fmt: skip
    assert found["member"] == {"rank": 3, "points": 300, "member_id": cat["id"]} and found["final"] is False
    mine = client.get(f"/v1/me/leaderboards/{board_id}", headers=auth(sign_in(client, cat))).json()
    assert [e["member_id"] for e in mine["entries"]] == [None, None, cat["id"]]  # the others stay anonymous
    assert mine["member"]["rank"] == 3
    stranger = make_member(client, cinema["api_key"])
    assert client.get(f"/v1/me/leaderboards/{board_id}", headers=auth(sign_in(client, stranger))).status_code == 404
    assert client.get(f"/v1/leaderboards/{board_id}/standings", headers=auth(cinema["api_key"])).status_code == 404
    for later in ((now + timedelta(days=8)).isoformat(), "9999-12-31T00:00:00Z"):  # a period not begun
        ahead = client.get(
            f"/v1/leaderboards/{board_id}/standings", params={"at": later}, headers=auth(grocer["api_key"])
        )
        assert (ahead.status_code, ahead.json()["code"]) == (422, "validation_error")

    grocer_account = client.get(f"/v1/partners/{grocer['id']}", headers=auth(ADMIN_KEY)).json()["issuer_address"]
    audited = CliRunner().invoke(
        main,
        ["audit", "leaderboard", "--rpc", own_chain.url, "--token", own_chain.deployment.token_address,
         "--since", found["period_start"], "--until", found["period_end"], "--issuer", grocer_account],
    )  # fmt: skip
    assert audited.exit_code == 0, audited.output
    wallets = [m["wallet_address"] for m in (bob, ann, cat)]
    assert [s["member"] for s in json.loads(audited.output)["top"]] == wallets  # anyone ranks the same

    _earn(client, grocer, cat, 300)  # the ranking the API kept moves on with the chain
    confirm_all(writer)
    time.sleep(0.6)  # the API reads the chain's head at most twice a second
    again = client.get(f"/v1/leaderboards/{board_id}/standings", headers=auth(grocer["api_key"])).json()
    assert [(e["member_id"], e["points"]) for e in again["entries"]] == [
        (cat["id"], 600), (bob["id"], 500), (ann["id"], 300)
    ]  # fmt: skip
    assert again["block_number"] > found["block_number"]

    assert writer.close_leaderboards() == 0  # the week is not over
    own_chain.rpc("evm_increaseTime", 8 * DAY)
    for _ in range(3):
        own_chain.rpc("evm_mine")
    assert writer.close_leaderboards() == 1
    assert writer.close_leaderboards() == 0  # once
    confirm_all(writer)
    [closed] = client.get(f"/v1/leaderboards/{board_id}/closes", headers=auth(grocer["api_key"])).json()
    assert closed["ranked"] == 3
    assert [(p["rank"], p["member_id"], p["points"]) for p in closed["prizes"]] == [
        (1, cat["id"], 500),
        (2, bob["id"], 100),
    ]
    # the campaign had 600 points: 500 to cat, the 100 left to bob (his prize was 200)
    token = client.app.state.runtime.token
    assert token.balance_of(cat["wallet_address"]) == 1_100 and token.balance_of(bob["wallet_address"]) == 600
    earn = client.get(f"/v1/earn/{closed['prizes'][0]['earn_id']}", headers=auth(grocer["api_key"])).json()
    assert earn["status"] == "confirmed" and "Top shoppers" in earn["reason"]
