"""The `loyalty` command line: every command has --help, errors are one line and a non-zero
exit (never a traceback), the API is found through API_PORT or LOYALTY_API_URL, and a CSV
batch earns in requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from click.testing import CliRunner
from support.backend import ADMIN_KEY, confirm_all, make_member, make_partner, second_program, serving
from web3 import Web3

from loyalty.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        found += _commands(command, (*prefix, name)) if isinstance(command, click.Group) else [(*prefix, name)]
    return found


def _one_line_failure(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output.strip()


def test_everyCommand_hasHelp() -> None:
    runner = CliRunner()
    commands = _commands(main)
    for command in commands:
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (command, result.output)
    assert len(commands) >= 25


def test_unreachableRpcAndWrongToken_failInOneLine(rpc_url: str) -> None:
    runner = CliRunner()
    unreachable = runner.invoke(main, ["audit", "verify", "--rpc", "http://127.0.0.1:9", "--token", "0x" + "11" * 20])
    no_token = runner.invoke(main, ["audit", "verify", "--rpc", rpc_url, "--token", "0x" + "11" * 20])
    assert "127.0.0.1:9" in _one_line_failure(unreachable)
    assert "0x" in _one_line_failure(no_token)


def test_clientCommands_findTheApiByPort_andRefuseAWrongKeyInOneLine(client, settings) -> None:
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    with serving(settings, outbox=False) as url:
        port = url.rsplit(":", 1)[1]
        env = {"API_PORT": port, "LOYALTY_API_KEY": partner["api_key"], "LOYALTY_API_URL": ""}
        shown = CliRunner().invoke(main, ["members", "show", str(member["id"])], env=env)
        wrong = CliRunner().invoke(main, ["members", "list", "--key", "ptn_wrong"], env=env)
        by_url = CliRunner().invoke(
            main, ["partners", "list"], env={"LOYALTY_API_URL": url, "LOYALTY_API_KEY": ADMIN_KEY}
        )
    assert shown.exit_code == 0 and f'"id": {member["id"]}' in shown.output, shown.output
    assert _one_line_failure(wrong) == "Error: unauthorized: unknown API key"
    assert by_url.exit_code == 0 and partner["name"] in by_url.output


def test_earnsBatch_fromCsv_acceptsEveryRowInRequests(client, settings, tmp_path: Path) -> None:
    partner = make_partner(client)
    members = [make_member(client, partner["api_key"]) for _ in range(5)]
    csv_file = tmp_path / "earns.csv"
    csv_file.write_text(
        "member_id,amount_points,reason\n" + "".join(f"{m['id']},{i + 1},order {i}\n" for i, m in enumerate(members))
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("member,points\n1,2\n")
    with serving(settings, outbox=False) as url:
        args = ["--api-url", url, "--key", partner["api_key"]]
        result = CliRunner().invoke(main, ["earns", "batch", str(csv_file), "--per-request", "2", *args])
        refused = CliRunner().invoke(main, ["earns", "batch", str(bad), *args])
        listed = CliRunner().invoke(main, ["earns", "list", "--member", str(members[4]["id"]), *args])
    assert result.exit_code == 0, result.output
    assert '"accepted": 5' in result.output
    assert "needs columns member_id and amount_points" in _one_line_failure(refused)
    assert '"amount_points": 5' in listed.output and '"reason": "order 4"' in listed.output


def test_rules_fromJsonFiles_createSimulateAndVersion(client, settings, tmp_path: Path) -> None:
    import json

    partner = make_partner(client)
    rule = tmp_path / "rule.json"
    rule.write_text(
        json.dumps({"name": "1 per dollar", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}})
    )
    purchase = tmp_path / "purchase.json"
    purchase.write_text(
        json.dumps(
            {"occurred_at": "2026-11-23T09:30:00Z", "lines": [{"sku": "latte", "quantity": 3, "unit_price_minor": 450}]}
        )
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with serving(settings, outbox=False) as url:
        args = ["--api-url", url, "--key", partner["api_key"]]
        created = CliRunner().invoke(main, ["rules", "create", str(rule), *args])
        simulated = CliRunner().invoke(main, ["rules", "simulate", str(purchase), *args])
        rule_id = json.loads(created.output)["id"]
        versions = CliRunner().invoke(main, ["rules", "show", str(rule_id), "--versions", *args])
        refused = CliRunner().invoke(main, ["rules", "create", str(broken), *args])
    assert created.exit_code == 0, created.output
    assert json.loads(simulated.output)["total_points"] == 13
    assert [v["version"] for v in json.loads(versions.output)] == [1]
    assert "is not JSON" in refused.output and refused.exit_code != 0 and "Traceback" not in refused.output


def test_purchases_recordAndRefundByLines_fromTheCommandLine(client, settings, tmp_path: Path) -> None:
    import json

    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    rule = {"name": "1 per dollar", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
    order = {"member_id": member["id"], "order_id": "till 7-42", "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
             "lines": [{"sku": "latte", "quantity": 3, "unit_price_minor": 450}]}  # fmt: skip
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    (tmp_path / "order.json").write_text(json.dumps(order))
    with serving(settings, outbox=False) as url:
        args = ["--api-url", url, "--key", partner["api_key"]]
        CliRunner().invoke(main, ["rules", "create", str(tmp_path / "rule.json"), *args])
        recorded = CliRunner().invoke(main, ["purchases", "record", str(tmp_path / "order.json"), *args])
        refunded = CliRunner().invoke(
            main, ["purchases", "refund", "till 7-42", "--refund-id", "r1", "--line", "latte=1", *args]
        )
        shown = CliRunner().invoke(main, ["purchases", "show", "till 7-42", *args])
        bad = CliRunner().invoke(
            main, ["purchases", "refund", "till 7-42", "--refund-id", "r2", "--line", "latte", *args]
        )
    assert json.loads(recorded.output)["total_points"] == 13, recorded.output
    assert json.loads(refunded.output)["points_reversed"] == 4, refunded.output  # 13.50 -> 9.00 net
    assert json.loads(shown.output)["total_points"] == 9
    assert bad.exit_code != 0 and "SKU=QUANTITY" in bad.output and "Traceback" not in bad.output


def test_partnerPrograms_joinEarnAndSigner_fromTheCommandLine(client, settings, rpc_url: str, tmp_path: Path) -> None:
    partner = make_partner(client, "Airline", 0)
    member = make_member(client, partner["api_key"])
    miles = second_program(client, rpc_url, tmp_path)
    with serving(settings, outbox=False) as url:
        admin, own = ["--api-url", url, "--key", ADMIN_KEY], ["--api-url", url, "--key", partner["api_key"]]
        early = CliRunner().invoke(main, ["earn", str(member["id"]), "10", "--program", str(miles), *own])
        joined = CliRunner().invoke(
            main, ["partners", "join", str(partner["id"]), str(miles), "--budget", "500", *admin]
        )
        earned = CliRunner().invoke(main, ["earn", str(member["id"]), "10", "--program", str(miles), *own])
        budget = CliRunner().invoke(main, ["partners", "budget", str(partner["id"]), "--program", str(miles), *own])
        listed = CliRunner().invoke(main, ["partners", "programs", str(partner["id"]), *own])
        both = CliRunner().invoke(
            main, ["partners", "agreement-signer", str(partner["id"]), "--set", "0x" + "22" * 20, "--clear", *own]
        )
        signer = CliRunner().invoke(
            main, ["partners", "agreement-signer", str(partner["id"]), "--set", "0x" + "22" * 20, *own]
        )
    assert "program_not_joined" in _one_line_failure(early)
    assert joined.exit_code == 0 and json.loads(joined.output)["program_id"] == miles, joined.output
    assert earned.exit_code == 0 and json.loads(earned.output)["status"] == "pending", earned.output
    assert (json.loads(budget.output)["granted_points"], json.loads(budget.output)["pending_points"]) == (500, 10)
    assert [a["program_id"] for a in json.loads(listed.output)["data"]] == [1, miles]
    assert both.exit_code == 2 and "--set and --clear go alone" in both.output
    assert json.loads(signer.output)["address"] == Web3.to_checksum_address("0x" + "22" * 20), signer.output


def test_programEngine_rulesPurchasesRefundsAndTiers_inASecondProgram_fromTheCommandLine(
    client, settings, rpc_url: str, tmp_path: Path
) -> None:
    partner = make_partner(client, "Airline")
    member = make_member(client, partner["api_key"])
    miles = second_program(client, rpc_url, tmp_path)
    rule = {"name": "5 miles per dollar", "calculator": {"strategy": "per_spend", "points": 5, "per_minor": 100}}
    order = {"member_id": member["id"], "order_id": "PNR 42", "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
             "lines": [{"sku": "LHR-JFK", "quantity": 1, "unit_price_minor": 10_000}]}  # fmt: skip
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    (tmp_path / "order.json").write_text(json.dumps(order))
    with serving(settings, outbox=False) as url:
        admin, own = ["--api-url", url, "--key", ADMIN_KEY], ["--api-url", url, "--key", partner["api_key"]]
        early = CliRunner().invoke(
            main, ["rules", "create", str(tmp_path / "rule.json"), "--program", str(miles), *own]
        )
        CliRunner().invoke(main, ["partners", "join", str(partner["id"]), str(miles), "--budget", "5000", *admin])
        made = CliRunner().invoke(main, ["rules", "create", str(tmp_path / "rule.json"), "--program", str(miles), *own])
        recorded = CliRunner().invoke(
            main, ["purchases", "record", str(tmp_path / "order.json"), "--program", str(miles), *own]
        )
        first = CliRunner().invoke(main, ["purchases", "record", str(tmp_path / "order.json"), *own])
        refunded = CliRunner().invoke(
            main, ["purchases", "refund", "PNR 42", "--refund-id", "r1", "--program", str(miles), *own]
        )
        listed = CliRunner().invoke(main, ["purchases", "list", "--program", str(miles), *own])
        rules_there = CliRunner().invoke(main, ["rules", "list", "--program", str(miles), *own])
        tier = CliRunner().invoke(main, ["members", "tier", str(member["id"]), "--program", str(miles), *admin])
    assert "program_not_joined" in _one_line_failure(early)
    assert json.loads(made.output)["program_id"] == miles, made.output
    assert (json.loads(recorded.output)["program_id"], json.loads(recorded.output)["total_points"]) == (miles, 500)
    assert json.loads(first.output)["total_points"] == 0  # no rule in the first program
    assert json.loads(refunded.output)["points_reversed"] == 500, refunded.output
    assert [p["order_id"] for p in json.loads(listed.output)["data"]] == ["PNR 42"]
    assert [r["program_id"] for r in json.loads(rules_there.output)["data"]] == [miles]
    assert "has no tier ladder" in _one_line_failure(tier)


def test_webhooks_createListDeliveriesAndDelete_fromTheCommandLine(client, settings, writer) -> None:
    partner = make_partner(client, "Acme")
    member = make_member(client, partner["api_key"])
    with serving(settings, outbox=False) as url:
        own = ["--api-url", url, "--key", partner["api_key"]]
        made = CliRunner().invoke(
            main, ["webhooks", "create", "http://127.0.0.1:9/hooks", "--event", "earn.confirmed", *own]
        )
        unknown = CliRunner().invoke(main, ["webhooks", "create", "http://127.0.0.1:9/hooks", "--event", "nope", *own])
        endpoint = json.loads(made.output)
        CliRunner().invoke(main, ["earn", str(member["id"]), "10", *own])
        confirm_all(writer)
        deliveries = CliRunner().invoke(
            main, ["webhooks", "deliveries", str(endpoint["id"]), "--status", "pending", *own]
        )
        updated = CliRunner().invoke(
            main, ["webhooks", "update", str(endpoint["id"]), "--event", "redemption.posted", *own]
        )
        deleted = CliRunner().invoke(main, ["webhooks", "delete", str(endpoint["id"]), *own])
        listed = CliRunner().invoke(main, ["webhooks", "list", *own])
    assert endpoint["secret"].startswith("whsec_"), made.output
    assert unknown.exit_code == 2 and "nope" in unknown.output and "Traceback" not in unknown.output
    [pending] = json.loads(deliveries.output)["data"]
    assert (pending["type"], pending["payload"]["data"]["amount_points"]) == ("earn.confirmed", 10)
    assert json.loads(updated.output)["event_types"] == ["redemption.posted"]
    assert deleted.exit_code == 0 and json.loads(listed.output)["data"] == []


def test_donations_aCharityItsRateAGiftAndTheStatement_fromTheCommandLine(client, settings, writer) -> None:
    brand = make_partner(client, "Acme")
    member = make_member(client, brand["api_key"])
    with serving(settings, outbox=False) as url:
        admin = ["--api-url", url, "--key", ADMIN_KEY]
        made = CliRunner().invoke(main, ["partners", "create", "Food Bank", "--charity", "--rate", "500/1000", *admin])
        bad_rate = CliRunner().invoke(main, ["partners", "create", "X", "--charity", "--rate", "5", *admin])
        charity = json.loads(made.output)
        own = ["--api-url", url, "--key", brand["api_key"]]
        CliRunner().invoke(main, ["earn", str(member["id"]), "3000", *own])
        confirm_all(writer)
        given = CliRunner().invoke(
            main, ["donations", "give", str(charity["id"]), "1500", "--member", str(member["id"]), *own]
        )
        rated = CliRunner().invoke(main, ["partners", "donation-rate", str(charity["id"]), "--rate", "1/1", *admin])
        wrong_code = CliRunner().invoke(
            main, ["donations", "give", str(charity["id"]), "1500", "--member", str(member["id"]), "--code", "x", *own]
        )
        listed = CliRunner().invoke(main, ["donations", "list", "--charity", str(charity["id"]), *admin])
        window = ["--since", "2026-01-01T00:00:00Z", "--until", "2036-01-01T00:00:00Z"]
        statement = CliRunner().invoke(main, ["donations", "statement", str(charity["id"]), *window, *admin])
    assert made.exit_code == 0 and charity["issuer_address"], made.output
    assert bad_rate.exit_code == 2 and "CASH/POINTS" in bad_rate.output
    gift = json.loads(given.output)
    assert (gift["status"], gift["cash_minor"]) == ("awaiting_member", 750)  # the member approves it in its session
    assert json.loads(rated.output) == {"cash_minor": 1, "points": 1, "currency": "USD"}
    assert _one_line_failure(wrong_code).startswith("Error: redemption_code_invalid:")
    assert [d["id"] for d in json.loads(listed.output)["data"]] == [gift["id"]]
    assert json.loads(statement.output)["donations"] == 0  # nothing given yet: it awaits the member


def test_leaderboards_createAndStandings_fromTheCommandLine(client, settings, writer) -> None:
    brand = make_partner(client, "Acme")
    member = make_member(client, brand["api_key"])
    with serving(settings, outbox=False) as url:
        own = ["--api-url", url, "--key", brand["api_key"]]
        made = CliRunner().invoke(main, ["leaderboards", "create", "Top", "--period", "monthly", *own])
        bad = CliRunner().invoke(
            main, ["leaderboards", "create", "Top", "--period", "weekly", "--prize", "first", *own]
        )
        no_campaign = CliRunner().invoke(
            main, ["leaderboards", "create", "Top", "--period", "weekly", "--prize", "1=5", *own]
        )
        CliRunner().invoke(main, ["earn", str(member["id"]), "70", *own])
        confirm_all(writer)
        board = json.loads(made.output)
        shown = CliRunner().invoke(
            main, ["leaderboards", "standings", str(board["id"]), "--member", str(member["id"]), *own]
        )
    assert board["period"] == "monthly" and board["starts_at"].endswith("-01T00:00:00Z"), made.output
    assert bad.exit_code == 2 and "RANK=POINTS" in bad.output
    assert _one_line_failure(no_campaign).startswith("Error: validation_error:")
    standings = json.loads(shown.output)
    assert standings["member"] == {"rank": 1, "points": 70, "member_id": member["id"]}


def test_challenges_createAndProgress_fromTheCommandLine(client, settings, writer) -> None:
    brand = make_partner(client, "Acme")
    member = make_member(client, brand["api_key"])
    with serving(settings, outbox=False) as url:
        own = ["--api-url", url, "--key", brand["api_key"]]
        window = ["--starts-at", "2026-01-01T00:00:00Z", "--ends-at", "2036-01-01T00:00:00Z"]
        made = CliRunner().invoke(
            main, ["challenges", "create", "Earn 50", "--metric", "points_earned", "--target", "50", "--badge", "star",
                   *window, *own],
        )  # fmt: skip
        no_reward = CliRunner().invoke(
            main, ["challenges", "create", "X", "--metric", "purchases", "--target", "1", *window, *own]
        )
        CliRunner().invoke(main, ["earn", str(member["id"]), "60", *own])
        confirm_all(writer)
        assert writer.evaluate_challenges() == 1  # the earn is confirmed now (housekeeping runs a minute apart)
        shown = CliRunner().invoke(main, ["challenges", "progress", str(member["id"]), *own])
    challenge = json.loads(made.output)
    assert (challenge["metric"], challenge["badge"]) == ("points_earned", "star"), made.output
    assert _one_line_failure(no_reward).startswith("Error: validation_error:")
    progress = json.loads(shown.output)
    [mine] = [c for c in progress["challenges"] if c["challenge_id"] == challenge["id"]]
    assert mine["value"] == 60 and mine["completed"] and progress["badges"] == ["star"]
