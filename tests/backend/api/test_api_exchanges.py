"""Members' exchanges and settlement through the API, end to end on a chain of the test's own
(its clock is moved to end a settlement period): two brands with their own programs agree a
rate, members convert points (in their session, with a code, by approving, by signature), the
period closes and settles with one payment, and the auditor finds it all clean."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.backend import (
    ADMIN_KEY,
    auth,
    confirm_all,
    make_member,
    make_partner,
    post,
    redemption_code,
    second_program,
    serving,
    sign_in,
    wait_for,
)
from web3 import HTTPProvider, Web3

from loyalty.api.app import create_app
from loyalty.audit.exchange import verify_exchange
from loyalty.audit.reconcile import reconcile
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import verify
from loyalty.chain.artifacts import load_artifact
from loyalty.chain.deploy import deploy_exchange
from loyalty.cli import main
from loyalty.domain.consent import sign_typed_data
from loyalty.workers.outbox import OutboxWriter
from loyalty.workers.webhooks import WebhookSender, deliver_all

PERIOD_S = 3_600
PRICE = 20_000  # 2 cents a mile, in a 6-decimal dollar


@pytest.fixture
def world(own_chain: Any, chain_settings: Any, tmp_path: Path) -> Any:
    """The app on the test's own chain with an exchange of hour-long periods, two brands, their
    registered agreement (hotel points, program 1, for air miles, program 2, at 3 : 1) and
    program 2's incoming budget on-chain."""
    w3 = Web3(HTTPProvider(own_chain.url))
    exchange, _ = deploy_exchange(w3, w3.eth.accounts[0], relayer=w3.eth.accounts[0], period_s=PERIOD_S,
                                  payment_window_s=PERIOD_S, folder=tmp_path / "exchange")  # fmt: skip
    settings = chain_settings.model_copy(update={"exchange_address": exchange.exchange_address})
    with TestClient(create_app(settings, run_outbox=False), raise_server_exceptions=False) as client:
        writer = OutboxWriter(client.app.state.runtime, poll_s=0.01)  # type: ignore[attr-defined]
        hotel, airline = make_partner(client, "Hotel"), make_partner(client, "Airline")
        miles = second_program(client, own_chain.url, tmp_path)
        terms = {"source_program_id": 1, "target_program_id": miles, "payer_id": hotel["id"], "payee_id": airline["id"],
                 "rate_numerator": 1, "rate_denominator": 3, "minimum_in": 300, "step_in": 3, "price_per_point": PRICE,
                 "valid_until": (datetime.now(UTC) + timedelta(days=365)).isoformat()}  # fmt: skip
        agreement = post(client, "/v1/agreements", terms, hotel["api_key"]).json()
        post(client, f"/v1/agreements/{agreement['id']}/sign", None, airline["api_key"])
        granted = post(client, f"/v1/programs/{miles}/incoming-budget", {"points": 10_000}, ADMIN_KEY)
        assert granted.status_code == 200 and granted.json()["incoming_to_grant_points"] == 10_000, granted.text
        confirm_all(writer)
        program = client.get(f"/v1/programs/{miles}", headers=auth(ADMIN_KEY)).json()
        assert (program["incoming_budget_points"], program["incoming_to_grant_points"]) == (10_000, 0)
        found = _World(client, writer, w3, exchange, hotel, airline, agreement, program)
        found.settings = settings
        yield found
        writer.close()


class _World:
    settings: Any

    def __init__(
        self, client: Any, writer: Any, w3: Web3, exchange: Any, hotel: Any, airline: Any, agreement: Any, program: Any
    ) -> None:
        self.client, self.writer, self.w3, self.exchange = client, writer, w3, exchange
        self.hotel, self.airline, self.agreement, self.program = hotel, airline, agreement, program
        self.miles = w3.eth.contract(address=program["token_address"], abi=load_artifact("LoyaltyPoints").abi)
        self.points = client.app.state.runtime.token

    def member(self, points: int, **body: Any) -> dict[str, Any]:
        member = make_member(self.client, self.hotel["api_key"], **body)
        earned = post(
            self.client, "/v1/earn", {"member_id": member["id"], "amount_points": points}, self.hotel["api_key"]
        )
        assert earned.status_code == 202, earned.text
        return member

    def exchange_of(self, exchange_id: int) -> dict[str, Any]:
        return dict(self.client.get(f"/v1/exchanges/{exchange_id}", headers=auth(self.hotel["api_key"])).json())


def test_exchange_membersConvertThePeriodClosesAndSettlesInOnePayment(world: Any, tmp_path: Path) -> None:
    client, hotel, airline, agreement = world.client, world.hotel, world.airline, world.agreement
    own, coded, asked = world.member(3_000), world.member(3_000), world.member(3_000)
    confirm_all(world.writer)

    mine = post(client, "/v1/me/exchanges", {"agreement_id": agreement["id"], "amount_in": 900}, sign_in(client, own))
    assert (mine.status_code, mine.json()["status"], mine.json()["amount_out"]) == (201, "reserved", 300), mine.text
    code = redemption_code(client, coded, hotel)
    body = {"agreement_id": agreement["id"], "member_id": coded["id"], "amount_in": 1_500, "redemption_code": code}
    with_code = post(client, "/v1/exchanges", body, hotel["api_key"])
    assert with_code.json()["status"] == "reserved", with_code.text
    waiting = post(
        client,
        "/v1/exchanges",
        {"agreement_id": agreement["id"], "member_id": asked["id"], "amount_in": 600},
        hotel["api_key"],
    )
    assert waiting.json()["status"] == "awaiting_member", waiting.text
    session = sign_in(client, asked)
    assert [e["id"] for e in client.get("/v1/me/exchanges", headers=auth(session)).json()["data"]] == [
        waiting.json()["id"]
    ]
    approved = post(client, f"/v1/me/exchanges/{waiting.json()['id']}/approve", None, session)
    assert approved.json()["status"] == "reserved", approved.text
    too_much = post(
        client, "/v1/me/exchanges", {"agreement_id": agreement["id"], "amount_in": 2_400}, sign_in(client, own)
    )
    assert (too_much.status_code, too_much.json()["code"]) == (422, "insufficient_points"), too_much.text
    off_step = post(
        client, "/v1/me/exchanges", {"agreement_id": agreement["id"], "amount_in": 301}, sign_in(client, own)
    )
    assert (off_step.status_code, off_step.json()["code"]) == (422, "exchange_amount_invalid")
    confirm_all(world.writer)

    done = [world.exchange_of(e.json()["id"]) for e in (mine, with_code, waiting)]
    assert [e["status"] for e in done] == ["confirmed"] * 3, done
    assert len({e["tx_hash"] for e in done}) == 1  # one batch
    wallets = {m["id"]: m["wallet_address"] for m in (own, coded, asked)}
    assert [world.points.balance_of(wallets[m]) for m in wallets] == [2_100, 1_500, 2_400]
    assert [world.miles.functions.balanceOf(wallets[m]).call() for m in wallets] == [300, 500, 200]
    shown = client.get(f"/v1/members/{own['id']}", headers=auth(hotel["api_key"])).json()["programs"]
    assert [(p["program_id"], p["balance_points"]) for p in shown] == [(1, 2_100), (world.program["id"], 300)]
    owed = 1_000 * PRICE

    overview = client.get("/v1/settlement", headers=auth(hotel["api_key"])).json()
    period = overview["current_period"]
    early = post(client, f"/v1/settlement/periods/{period}/close", None, hotel["api_key"])
    assert (early.status_code, early.json()["code"]) == (409, "period_not_closable")
    open_period = client.get(f"/v1/settlement/periods/{period}", headers=auth(airline["api_key"])).json()
    assert open_period["debts"] == [{"payer_id": hotel["id"], "payee_id": airline["id"], "payer": hotel["issuer_address"],
                                     "payee": airline["issuer_address"], "amount": str(owed)}]  # fmt: skip
    world.w3.provider.make_request("evm_increaseTime", [PERIOD_S])
    world.w3.provider.make_request("evm_mine", [])
    for earlier in range(period):  # periods close in order
        post(client, f"/v1/settlement/periods/{earlier}/close", None, ADMIN_KEY)
    closing = post(client, f"/v1/settlement/periods/{period}/close", None, airline["api_key"])
    assert (closing.status_code, closing.json()["status"]) == (202, "queued"), closing.text
    twice = post(client, f"/v1/settlement/periods/{period}/close", None, hotel["api_key"])
    assert (twice.status_code, twice.json()["code"]) == (409, "settlement_asked")
    if period:  # (periods close in order)
        later = post(client, f"/v1/settlement/periods/{period + 1}/close", None, hotel["api_key"])
        assert later.status_code == 409
    confirm_all(world.writer)
    closed = client.get(f"/v1/settlement/periods/{period}", headers=auth(hotel["api_key"])).json()
    assert closed["closed"] and closed["net"] == {
        hotel["issuer_address"]: str(-owed),
        airline["issuer_address"]: str(owed),
    }
    assert closed["payments"] == [{"index": 0, "debtor_id": hotel["id"], "creditor_id": airline["id"], "debtor": hotel["issuer_address"],
                                   "creditor": airline["issuer_address"], "amount": str(owed), "settled": False}]  # fmt: skip

    not_theirs = post(client, f"/v1/settlement/periods/{period}/payments/0/pay", None, airline["api_key"])
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (403, "forbidden")
    dollar = world.w3.eth.contract(address=world.exchange.settlement_token, abi=load_artifact("TestDollar").abi)
    dollar.functions.mint(hotel["issuer_address"], owed).transact({"from": world.w3.eth.accounts[0]})
    paying = post(client, f"/v1/settlement/periods/{period}/payments/0/pay", None, hotel["api_key"])
    assert paying.status_code == 202, paying.text
    confirm_all(world.writer)
    step = client.get(f"/v1/settlement/steps/{paying.json()['id']}", headers=auth(hotel["api_key"])).json()
    assert step["status"] == "done" and step["tx_hash"], step
    assert dollar.functions.balanceOf(airline["issuer_address"]).call() == owed
    settled = client.get(f"/v1/settlement/periods/{period}", headers=auth(hotel["api_key"])).json()
    assert settled["payments"][0]["settled"] is True
    again = post(client, f"/v1/settlement/periods/{period}/payments/0/pay", None, hotel["api_key"])
    assert (again.status_code, again.json()["code"]) == (409, "payment_settled")

    # the auditor, from the chain alone: both programs' tokens and the exchange, clean
    for token in (world.points.address, world.miles.address):
        out = tmp_path / f"audit-{token}"
        verified = CliRunner().invoke(main, ["audit", "verify", "--rpc", world.w3.provider.endpoint_uri, "--token", token,
                                             "--exchange", world.exchange.exchange_address, "--out", str(out)])  # fmt: skip
        assert verified.exit_code == 0, verified.output
        assert json.loads((out / "report.json").read_text())["discrepancies"] == []
        report = json.loads((out / "exchange.json").read_text())
        assert report["clean"] and report["discrepancies"] == []
        [audited] = [p for p in report["periods"] if p["period"] == period]
        assert audited["closed"] and [(x["amount"], x["settled"]) for x in audited["payments"]] == [(owed, True)]
    assert verify_exchange(Rpc(world.w3.provider.endpoint_uri), world.exchange.exchange_address).clean
    # and the database holds up against each token: exchanges are its burns and mints
    for token in (world.points.address, world.miles.address):
        with world.client.app.state.runtime.sessions() as session:
            assert reconcile(session, verify(Rpc(world.w3.provider.endpoint_uri), token)) == []


def test_exchange_aSelfCustodyMemberSignsAndABadOrderFailsAlone(world: Any) -> None:
    client, hotel, agreement = world.client, world.hotel, world.agreement
    key = Account.create()
    signer = world.member(1_200, wallet_address=key.address)
    custodial = world.member(1_200)
    confirm_all(world.writer)

    quoted = post(
        client,
        "/v1/exchanges/consents",
        {"agreement_id": agreement["id"], "member_id": signer["id"], "amount_in": 600},
        hotel["api_key"],
    )
    assert quoted.status_code == 201, quoted.text
    consent = quoted.json()
    assert consent["typed_data"]["message"]["issuer"] == world.exchange.exchange_address
    assert int(consent["typed_data"]["message"]["rewardId"]) == int(agreement["agreement_id"], 16)
    unsigned = post(
        client,
        "/v1/exchanges",
        {"agreement_id": agreement["id"], "member_id": signer["id"], "amount_in": 600},
        hotel["api_key"],
    )
    assert (unsigned.status_code, unsigned.json()["code"]) == (422, "signature_required")
    signature = "0x" + sign_typed_data(consent["typed_data"], key.key).hex()
    body = {
        "agreement_id": agreement["id"],
        "member_id": signer["id"],
        "amount_in": 600,
        "signature": signature,
        "deadline": consent["deadline"],
    }
    signed = post(client, "/v1/exchanges", body, hotel["api_key"])
    assert (signed.status_code, signed.json()["status"], signed.json()["id"]) == (
        201,
        "reserved",
        consent["exchange_id"],
    ), signed.text
    replayed = post(client, "/v1/exchanges", body, hotel["api_key"])
    assert (replayed.status_code, replayed.json()["code"]) == (409, "consent_used")
    confirm_all(world.writer)
    assert world.exchange_of(consent["exchange_id"])["status"] == "confirmed"

    # A consent that runs out before it can be mined fails alone; the other exchange goes.
    late_key = Account.create()
    late = world.member(1_200, wallet_address=late_key.address)
    confirm_all(world.writer)
    ask = {"agreement_id": agreement["id"], "member_id": late["id"], "amount_in": 300}
    stale = post(client, "/v1/exchanges/consents", ask, hotel["api_key"]).json()
    ask |= {"signature": "0x" + sign_typed_data(stale["typed_data"], late_key.key).hex(), "deadline": stale["deadline"]}
    assert post(client, "/v1/exchanges", ask, hotel["api_key"]).json()["status"] == "reserved"
    mine = post(
        client, "/v1/me/exchanges", {"agreement_id": agreement["id"], "amount_in": 300}, sign_in(client, custodial)
    )
    world.w3.provider.make_request("evm_increaseTime", [3_600])  # the consent's hour passes on the chain
    world.w3.provider.make_request("evm_mine", [])
    confirm_all(world.writer)
    assert world.exchange_of(mine.json()["id"])["status"] == "confirmed"
    voided = world.exchange_of(stale["exchange_id"])
    assert voided["status"] == "voided" and voided["error"].startswith("consent_expired"), voided
    assert world.points.balance_of(late["wallet_address"]) == 1_200


def test_cli_aMemberConvertsAndABrandReadsTheSettlement(world: Any) -> None:
    member = world.member(900)
    confirm_all(world.writer)
    session = sign_in(world.client, member)
    world.writer.close()  # the served app's writer takes the lease
    with serving(world.settings, outbox=True) as url:
        converted = CliRunner().invoke(
            main, ["exchanges", "create", str(world.agreement["id"]), "600", "--api-url", url, "--key", session]
        )
        assert converted.exit_code == 0, converted.output
        exchange_id = json.loads(converted.output)["id"]
        shown = ["exchanges", "show", str(exchange_id), "--api-url", url, "--key", world.hotel["api_key"]]
        wait_for(lambda: json.loads(CliRunner().invoke(main, shown).output)["status"] == "confirmed")
        period = CliRunner().invoke(main, ["settlement", "show", "--api-url", url, "--key", world.airline["api_key"]])
        current = json.loads(period.output)["current_period"]
        debts = CliRunner().invoke(
            main, ["settlement", "show", str(current), "--api-url", url, "--key", world.airline["api_key"]]
        )
        early = CliRunner().invoke(
            main, ["settlement", "close", str(current), "--api-url", url, "--key", world.airline["api_key"]]
        )
    assert json.loads(debts.output)["debts"][0]["amount"] == str(200 * PRICE), debts.output
    assert early.exit_code == 1 and "period_not_closable" in early.output and "Traceback" not in early.output, (
        early.output
    )
    assert world.miles.functions.balanceOf(member["wallet_address"]).call() == 200


@pytest.mark.parametrize("dry_run", [True, False], ids=["estimated", "sent-at-once"])
def test_exchange_anOrderTheChainRefusesIsVoidedAloneWithItsReason(world: Any, dry_run: bool) -> None:
    """A contract wallet that consented, then refuses: that order alone is voided with the
    token's error, and the other goes. Found when the batch is estimated (the agreement's first
    batch), or when a batch sent without a dry run (the writer learned the agreement's gas)
    reverts on-chain: it is sent again, estimated."""
    client, hotel, agreement = world.client, world.hotel, world.agreement
    if not dry_run:  # two exchanges first (the period's first costs more than the learned gas allows)
        for _ in range(2):
            first = world.member(300)
            confirm_all(world.writer)
            post(
                client, "/v1/me/exchanges", {"agreement_id": agreement["id"], "amount_in": 300}, sign_in(client, first)
            )
            confirm_all(world.writer)
        assert world.writer._exchange_gas  # the next batch goes without a dry run
    owner = Account.create()
    artifact = load_artifact("ConsentWallet")
    deployed = world.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode).constructor(owner.address)
    receipt = world.w3.eth.wait_for_transaction_receipt(deployed.transact({"from": world.w3.eth.accounts[0]}))
    wallet = world.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    smart = world.member(600, wallet_address=wallet.address, smart_wallet=True)
    custodial = world.member(600)
    confirm_all(world.writer)
    ask = {"agreement_id": agreement["id"], "member_id": smart["id"], "amount_in": 300}
    quote = post(client, "/v1/exchanges/consents", ask, hotel["api_key"]).json()
    ask |= {"signature": "0x" + sign_typed_data(quote["typed_data"], owner.key).hex(), "deadline": quote["deadline"]}
    assert post(client, "/v1/exchanges", ask, hotel["api_key"]).json()["status"] == "reserved"
    mine = post(
        client, "/v1/me/exchanges", {"agreement_id": agreement["id"], "amount_in": 300}, sign_in(client, custodial)
    )
    refusing = 1  # ConsentWallet.Mode.Refusing
    world.w3.eth.wait_for_transaction_receipt(
        wallet.functions.setMode(refusing).transact({"from": world.w3.eth.accounts[0]})
    )
    confirm_all(world.writer)
    voided = world.exchange_of(quote["exchange_id"])
    assert voided["status"] == "voided" and "LoyaltyInvalidSigner" in voided["error"], voided
    assert world.exchange_of(mine.json()["id"])["status"] == "confirmed"
    assert world.points.balance_of(wallet.address) == 600
    reverted = (
        world.client.app.state.runtime.sessions()
        .execute(text("SELECT count(*) FROM chain_writes WHERE kind = 'exchange_batch' AND status = 'failed'"))
        .scalar()
    )
    assert reverted == (0 if dry_run else 1)


def test_exchange_aBatchOfManyMembersRefusesTheBadItemsAlone(world: Any) -> None:
    client, hotel, agreement = world.client, world.hotel, world.agreement
    rich, poor, coded = world.member(900), world.member(300), world.member(600)
    confirm_all(world.writer)
    item = {"agreement_id": agreement["id"], "amount_in": 600}
    items = [
        {**item, "member_id": rich["id"], "redemption_code": redemption_code(client, rich, hotel)},
        {**item, "member_id": poor["id"], "redemption_code": redemption_code(client, poor, hotel)},  # holds 300
        {**item, "member_id": coded["id"], "redemption_code": "WRONG-CODE"},
        {**item, "member_id": coded["id"]},  # no code: awaits the member
    ]
    batch = post(client, "/v1/exchanges/batch", {"exchanges": items}, hotel["api_key"])
    assert batch.status_code == 201, batch.text
    results = batch.json()["results"]
    assert results[0]["exchange"]["status"] == "reserved" and results[0]["problem"] is None
    assert results[1]["problem"]["code"] == "insufficient_points" and results[1]["exchange"] is None
    assert results[2]["problem"]["code"] == "redemption_code_invalid"
    assert results[3]["exchange"]["status"] == "awaiting_member"
    confirm_all(world.writer)
    stranger = make_member(client, world.airline["api_key"])  # not the hotel's
    refused = post(
        client,
        "/v1/exchanges/batch",
        {"exchanges": [items[0], {**item, "member_id": stranger["id"]}]},
        hotel["api_key"],
    )
    assert (refused.status_code, refused.json()["code"]) == (404, "member_not_found")
    assert world.exchange_of(results[0]["exchange"]["id"])["status"] == "confirmed"
    assert [world.points.balance_of(m["wallet_address"]) for m in (rich, poor, coded)] == [300, 300, 600]


def test_exchange_aBatchSentWithoutADryRunFitsTheBlock(world: Any) -> None:
    """After an agreement's first batch (one order) was estimated, a batch of 75 self-custody
    members goes too: the gas a batch is sent with never passes what a block holds."""
    client, hotel, agreement = world.client, world.hotel, world.agreement
    keys = [Account.create() for _ in range(77)]
    signers = [world.member(300, wallet_address=k.address) for k in keys]
    confirm_all(world.writer)

    def signed(member: dict[str, Any], key: Any) -> dict[str, Any]:
        ask = {"agreement_id": agreement["id"], "member_id": member["id"], "amount_in": 300}
        consent = post(client, "/v1/exchanges/consents", ask, hotel["api_key"]).json()
        return ask | {
            "signature": "0x" + sign_typed_data(consent["typed_data"], key.key).hex(),
            "deadline": consent["deadline"],
        }

    late_key = Account.create()
    late = world.member(300, wallet_address=late_key.address)
    confirm_all(world.writer)
    late_consent = signed(late, late_key)  # quoted first: the lowest ref
    for i in range(2):  # one at a time: the second's estimate is learned
        first = post(client, "/v1/exchanges", signed(signers[i], keys[i]), hotel["api_key"])
        assert first.json()["status"] == "reserved", first.text
        confirm_all(world.writer)
    assert world.writer._exchange_gas
    batch = post(
        client,
        "/v1/exchanges/batch",
        {"exchanges": [signed(m, k) for m, k in zip(signers[2:], keys[2:], strict=True)]},
        hotel["api_key"],
    )
    assert [r["problem"] for r in batch.json()["results"]] == [None] * 75, batch.text
    confirm_all(world.writer)
    statuses = {world.exchange_of(r["exchange"]["id"])["status"] for r in batch.json()["results"]}
    assert statuses == {"confirmed"}
    # 77 refs used since the late member's quote: the target would refuse its ref now
    stale = post(client, "/v1/exchanges", late_consent, hotel["api_key"])
    assert (stale.status_code, stale.json()["code"]) == (409, "consent_stale"), stale.text


def test_exchange_amountsTheDatabaseCannotHoldAre422(world: Any) -> None:
    client, hotel, agreement = world.client, world.hotel, world.agreement
    member = world.member(300, wallet_address=Account.create().address)
    huge = post(
        client,
        "/v1/exchanges/consents",
        {"agreement_id": agreement["id"], "member_id": member["id"], "amount_in": 3 * 2**70},
        hotel["api_key"],
    )
    assert (huge.status_code, huge.json()["code"]) == (422, "validation_error")
    budget = post(client, f"/v1/programs/{world.program['id']}/incoming-budget", {"points": 2**80}, ADMIN_KEY)
    assert (budget.status_code, budget.json()["code"]) == (422, "validation_error")


def test_settlement_anEndedPeriodWithExchangesClosesWithoutAnyoneAsking(world: Any, receiver: Any) -> None:
    client = world.client
    types = {"url": receiver.url, "event_types": ["exchange.confirmed", "settlement.period_closed"]}
    assert post(client, "/v1/webhooks", types, world.airline["api_key"]).status_code == 201
    exchange = world.w3.eth.contract(address=world.exchange.exchange_address, abi=load_artifact("PointsExchange").abi)
    start = exchange.functions.nextPeriodToClose().call()
    world.w3.provider.make_request("evm_increaseTime", [PERIOD_S])  # an empty period ends: nothing to close
    world.w3.provider.make_request("evm_mine", [])
    confirm_all(world.writer)
    assert exchange.functions.nextPeriodToClose().call() == start

    member = world.member(900)
    confirm_all(world.writer)
    made = post(
        client, "/v1/me/exchanges", {"agreement_id": world.agreement["id"], "amount_in": 900}, sign_in(client, member)
    )
    assert made.status_code == 201, made.text
    confirm_all(world.writer)
    period = client.get("/v1/settlement", headers=auth(world.hotel["api_key"])).json()["current_period"]
    assert period > start  # (the empty period ended before it)
    assert exchange.functions.nextPeriodToClose().call() == period  # the empty ones before it closed; not it yet
    world.w3.provider.make_request("evm_increaseTime", [PERIOD_S])
    world.w3.provider.make_request("evm_mine", [])
    confirm_all(world.writer)
    assert exchange.functions.nextPeriodToClose().call() == period + 1
    closed = client.get(f"/v1/settlement/periods/{period}", headers=auth(world.airline["api_key"])).json()
    assert closed["closed"] and [p["amount"] for p in closed["payments"]] == [str(300 * PRICE)], closed
    steps = client.get("/v1/settlement/steps", headers=auth(ADMIN_KEY)).json()["data"]
    assert [(s["action"], s["status"]) for s in steps] == [("close", "done")] * (period + 1 - start), steps

    # The payee heard of the exchange and of every period closing, by webhook.
    deliver_all(WebhookSender(client.app.state.runtime, timeout_s=5))
    heard = receiver.bodies()
    [confirmed] = [b["data"] for b in heard if b["type"] == "exchange.confirmed"]
    assert (confirmed["member_id"], confirmed["amount_in"], confirmed["amount_out"]) == (member["id"], 900, 300)
    assert confirmed["partner_id"] == world.airline["id"]
    closes = [b["data"]["period"] for b in heard if b["type"] == "settlement.period_closed"]
    assert closes == list(range(start, period + 1)), heard


def test_exchange_aRedemptionInAnotherProgramHoldsNothingHere(world: Any) -> None:
    """A member's reserved redemption of miles does not hold its hotel points: a batch may
    exchange all of them out (and the miles it holds stay held for the redemption)."""
    client, hotel, airline, miles = world.client, world.hotel, world.airline, world.program["id"]
    joined = post(
        client, f"/v1/partners/{airline['id']}/programs", {"program_id": miles, "issue_budget_points": 5_000}, ADMIN_KEY
    )
    assert joined.status_code == 201, joined.text
    member = world.member(900)
    linked = post(client, f"/v1/members/{member['id']}/links", {"partner_id": airline["id"]}, ADMIN_KEY)
    assert linked.status_code == 201, linked.text
    assert (
        post(
            client,
            "/v1/earn",
            {"member_id": member["id"], "amount_points": 500, "program_id": miles},
            airline["api_key"],
        ).status_code
        == 202
    )
    seat = post(
        client, "/v1/rewards", {"name": "Seat", "cost_points": 400, "stock": 5, "program_id": miles}, airline["api_key"]
    ).json()
    confirm_all(world.writer)
    code = redemption_code(client, member, airline)
    reserved = post(
        client,
        "/v1/redemptions",
        {"member_id": member["id"], "reward_id": seat["id"], "redemption_code": code},
        airline["api_key"],
    )
    assert reserved.json()["status"] == "reserved", reserved.text
    item = {"agreement_id": world.agreement["id"], "member_id": member["id"], "amount_in": 900,
            "redemption_code": redemption_code(client, member, hotel)}  # fmt: skip
    batch = post(client, "/v1/exchanges/batch", {"exchanges": [item]}, hotel["api_key"])
    assert batch.json()["results"][0]["problem"] is None, batch.text
    confirm_all(world.writer)
    assert world.points.balance_of(member["wallet_address"]) == 0
    assert world.miles.functions.balanceOf(member["wallet_address"]).call() == 500 - 400 + 300


def test_reconcile_anExchangeMinedButNotFinalYetIsNoFinding(world: Any) -> None:
    """Between a batch being mined and being final, its burn and mint are on the chain but the
    exchange is not confirmed in the database: reconcile tolerates it (as it does pending earns)."""
    member = world.member(900)
    confirm_all(world.writer)
    runtime = world.client.app.state.runtime
    runtime.confirmations = 1_000  # nothing the writer sends now becomes final
    made = post(
        world.client,
        "/v1/me/exchanges",
        {"agreement_id": world.agreement["id"], "amount_in": 900},
        sign_in(world.client, member),
    )
    assert made.status_code == 201, made.text
    for _ in range(20):
        world.writer.run_once()
        if world.miles.functions.balanceOf(member["wallet_address"]).call():
            break
    assert world.miles.functions.balanceOf(member["wallet_address"]).call() == 300  # mined
    assert world.exchange_of(made.json()["id"])["status"] == "reserved"  # not final
    rpc = Rpc(world.w3.provider.endpoint_uri)
    for token in (world.points.address, world.miles.address):
        with runtime.sessions() as session:
            assert reconcile(session, verify(rpc, token)) == [], token
    runtime.confirmations = 1
    confirm_all(world.writer)
    assert world.exchange_of(made.json()["id"])["status"] == "confirmed"
