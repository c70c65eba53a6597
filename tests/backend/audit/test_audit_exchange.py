"""The auditor's exchange checks, on a real exchange between two programs on its own Anvil node.

Scenario: the hotel pays the airline 2 cents a mile for hotel points exchanged 3 : 1 (a member
cap of 3,000 points a week); the airline pays a third brand, which signs through a delegated
key, for a 9 : 2 rate with a bonus. Two members exchange under the first, three in one batch
under the second; the week ends, the period closes into netted payments, one is paid in the
settlement dollar and one confirmed off-chain, and the second agreement is revoked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from loyalty.audit.events import EARNED, Log
from loyalty.audit.exchange import (
    AGREEMENT_REGISTERED,
    AGREEMENT_REVOKED,
    EXCHANGE_CHECKS,
    EXCHANGED,
    PAYMENT_DUE,
    PAYMENT_SETTLED,
    PERIOD_CLOSED,
    PROGRAM_BRAND_SET,
    ExchangeLedger,
    read_exchange,
    verify_exchange,
)
from loyalty.audit.rpc import Rpc
from loyalty.chain.artifacts import load_artifact
from loyalty.chain.deploy import TokenParams, deploy_contract, deploy_token
from loyalty.chain.devchain import free_port, start_node, stop_node
from loyalty.cli import main
from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.domain.exchange import Agreement, agreement_typed_data

WEEK, FAR = 7 * 86_400, 10 * 365 * 86_400


@dataclasses.dataclass
class Scenario:
    url: str
    exchange: str
    first_block: int
    source: str


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    node = start_node("anvil", port, tmp_path_factory.mktemp("exchange-anvil"))
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = Web3(HTTPProvider(url))
        admin, issuer, relayer = w3.eth.accounts[:3]

        def send(call: Any, sender: str | LocalAccount) -> Any:
            if isinstance(sender, str):
                tx_hash = call.transact({"from": sender})
            else:
                tx = call.build_transaction(
                    {"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address)}
                )
                tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
            assert receipt["status"] == 1
            return receipt

        def token_at(params: TokenParams) -> Any:
            deployment, _ = deploy_token(w3, admin, params, folder=tmp_path_factory.mktemp("dep"), record=False)
            return w3.eth.contract(address=deployment.token_address, abi=load_artifact("LoyaltyPoints").abi)

        source = token_at(TokenParams(name="Hotel Points", symbol="HOTEL"))
        target = token_at(TokenParams(name="Air Miles", symbol="MILES"))
        dollar_address, _ = deploy_contract(w3, admin, "TestDollar")
        dollar = w3.eth.contract(address=dollar_address, abi=load_artifact("TestDollar").abi)
        exchange_address, first_block = deploy_contract(
            w3, admin, "PointsExchange", admin, dollar_address, WEEK, 3 * 86_400
        )
        exchange = w3.eth.contract(address=exchange_address, abi=load_artifact("PointsExchange").abi)
        send(exchange.functions.grantRole(exchange.functions.RELAYER_ROLE().call(), relayer), admin)
        for token in (source, target):
            role = token.functions.ISSUER_ROLE().call()
            for account in (issuer, exchange_address):
                send(token.functions.grantRole(role, account), admin)
                send(token.functions.setIssueBudget(account, 10**12), admin)
        hotel, airline, third, third_signer = (Account.create() for _ in range(4))
        for brand in (hotel, airline, third):
            w3.eth.send_transaction({"from": admin, "to": brand.address, "value": 10**18})
        send(exchange.functions.setAgreementSigner(third_signer.address), third)
        for payee in (airline, third):  # the target's admin lets both be paid for points exchanged into it
            send(exchange.functions.setProgramBrand(target.address, payee.address, True), admin)

        now = w3.eth.get_block("latest")["timestamp"]
        base = dict(source=source.address, target=target.address, minimum_in=300, step_in=3, max_in_per_exchange=0,
                    valid_from=now - 60, valid_until=now + FAR)  # fmt: skip
        first = Agreement(payer=hotel.address, payee=airline.address, rate_numerator=1, rate_denominator=3,
                          max_in_per_member_period=3_000, bonus_every=0, bonus_out=0, price_per_point=20_000,
                          credit_limit=10**9, salt=1, **base)  # fmt: skip
        second = Agreement(payer=airline.address, payee=third.address, rate_numerator=2, rate_denominator=9,
                           max_in_per_member_period=0, bonus_every=900, bonus_out=10, price_per_point=30_000,
                           credit_limit=0, salt=2, **base)  # fmt: skip
        for terms, payer_key, payee_key in ((first, hotel, airline), (second, airline, third_signer)):
            typed = agreement_typed_data(terms, chain_id=w3.eth.chain_id, exchange_address=exchange_address)
            signatures = sign_typed_data(typed, payer_key.key), sign_typed_data(typed, payee_key.key)
            send(exchange.functions.registerAgreement(terms.as_tuple(), *signatures), admin)

        refs = iter(range(1, 10**6))

        def order(terms: Agreement, member: LocalAccount, amount: int) -> tuple[Any, ...]:
            reward = int.from_bytes(exchange.functions.agreementId(terms.as_tuple()).call(), "big")
            ref = next(refs)
            consent = RedeemConsent(member.address, exchange_address, amount, reward, ref,
                                    source.functions.nonces(member.address).call(), now + FAR)  # fmt: skip
            typed = redeem_typed_data(
                consent, chain_id=w3.eth.chain_id, token_address=source.address, token_name="Hotel Points"
            )
            return (member.address, amount, ref, now + FAR, sign_typed_data(typed, member.key))

        members = [Account.create() for _ in range(5)]
        for member in members:
            send(source.functions.earn(member.address, 10_000, next(refs)), issuer)
        for member, amount in ((members[0], 900), (members[1], 2_700)):
            send(exchange.functions.exchange(first.as_tuple(), *order(first, member, amount)), relayer)
        batch = [order(second, m, a) for m, a in zip(members[2:], (900, 1_800, 3_003), strict=True)]
        send(exchange.functions.exchangeBatch(second.as_tuple(), batch), relayer)

        w3.provider.make_request("evm_increaseTime", [WEEK])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        send(exchange.functions.closePeriod(0), relayer)
        due = exchange.functions.paymentsOf(0).call()
        assert len(due) == 2  # hotel -> airline -> third nets to two payments, not three debts
        debtor_0 = next(b for b in (hotel, airline, third) if b.address == due[0][0])
        send(dollar.functions.mint(debtor_0.address, due[0][3]), admin)
        send(dollar.functions.approve(exchange_address, due[0][3]), debtor_0)
        send(exchange.functions.settle(0, 0), debtor_0)
        creditor_1 = next(b for b in (hotel, airline, third) if b.address == due[1][2])
        send(exchange.functions.confirmReceipt(0, 1), creditor_1)
        send(exchange.functions.revokeAgreement(second.as_tuple()), airline)
        yield Scenario(url, exchange_address, first_block, source.address)
    finally:
        stop_node(node)


def test_verifyExchange_findsAnHonestExchangeClean(scenario: Scenario) -> None:
    audit = verify_exchange(Rpc(scenario.url), scenario.exchange, scenario.first_block)
    assert audit.clean, audit.ledger.discrepancies
    assert {name for name, *_ in audit.checks} == set(EXCHANGE_CHECKS)
    assert all(checked > 0 for _, _, checked, _ in audit.checks), audit.checks
    ledger = audit.ledger
    assert ledger.exchanges == 5
    assert sorted(ledger.exchanged.values()) == [[3_600, 1_200], [5_703, 1_267 + 60]]
    period = ledger.periods_seen[0]
    assert period.closed and sum(period.net().values()) == 0
    assert period.settled == {0: False, 1: True}


def test_cli_verify_withTheExchange_writesItsReport(scenario: Scenario, tmp_path: Path) -> None:
    args = ["audit", "verify", "--rpc", scenario.url, "--token", scenario.source, "--exchange", scenario.exchange]
    result = CliRunner().invoke(main, [*args, "--from-block", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "exchange " + scenario.exchange in result.output
    report = json.loads((tmp_path / "exchange.json").read_text())
    assert report["clean"] and {c["status"] for c in report["checks"]} == {"pass"}
    [period] = report["periods"]
    assert period["closed"] and sum(period["net_positions"].values()) == 0
    assert [p["settled"] for p in period["payments"]] == [True, True]
    assert [a["revoked"] for a in report["agreements"]] == [False, True]


def _replay(scenario: Scenario, change: Any) -> set[str]:
    """Replay the exchange's real logs with `change(logs, tx_logs)` applied, as a node or an
    indexer serving doctored logs would; returns the checks that failed."""
    rpc = Rpc(scenario.url)
    block = rpc.block_number()
    periods, settlement = read_exchange(rpc, scenario.exchange, block)
    logs = [Log.of(raw) for chunk in rpc.logs(scenario.exchange, scenario.first_block, block) for raw in chunk]
    hashes = sorted({log.tx_hash for log in logs})
    tx_logs = {
        h: r["logs"]
        for h, r in zip(hashes, rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes]), strict=True)
    }
    registering = [log.tx_hash for log in logs if log.topics[0] == AGREEMENT_REGISTERED]
    inputs = {h: str(tx["input"]) for h, tx in rpc.transactions(registering).items()}
    change(logs, tx_logs)
    ledger = ExchangeLedger(scenario.exchange, rpc.chain_id(), periods, settlement)
    ledger.apply(logs, rpc.timestamps(sorted({log.block_number for log in logs})), tx_logs, inputs)
    return set(ledger.failures())


def _word(data: str, index: int, value: int) -> str:
    start = 2 + 64 * index
    return data[:start] + f"{value:064x}" + data[start + 64 :]


def _first(logs: list[Log], topic: str) -> int:
    return next(i for i, log in enumerate(logs) if log.topics[0] == topic)


def test_verifyExchange_flagsTamperedAgreementTerms(scenario: Scenario) -> None:
    def change(logs: list[Log], _: Any) -> None:
        i = _first(logs, AGREEMENT_REGISTERED)
        logs[i] = dataclasses.replace(logs[i], data=_word(logs[i].data, 4, 2))  # rate 2 : 3, not 1 : 3

    failed = _replay(scenario, change)
    assert {"agreements_signed", "exchange_amounts"} <= failed


@pytest.mark.parametrize(
    ("doctor", "check"),
    [
        ("amount_out", "exchange_amounts"),
        ("debt", "debts"),
        ("drop_mint", "burn_and_mint"),
        ("revoked_first", "agreements_in_force"),
        ("repeat_exchange", "member_caps"),
        ("payment_amount", "payments"),
        ("drop_settlement_transfer", "payments"),
        ("late_exchange", "payers_not_overdue"),
        ("drop_program_brand", "agreements_signed"),
    ],
)
def test_verifyExchange_flagsDoctoredEvents(scenario: Scenario, doctor: str, check: str) -> None:
    def change(logs: list[Log], tx_logs: dict[str, list[dict[str, Any]]]) -> None:
        i = _first(logs, EXCHANGED)
        exchanged = logs[i]
        if doctor == "amount_out":
            logs[i] = dataclasses.replace(exchanged, data=_word(exchanged.data, 1, 301))
        elif doctor == "debt":
            logs[i] = dataclasses.replace(exchanged, data=_word(exchanged.data, 4, 1))
        elif doctor == "drop_mint":
            tx_logs[exchanged.tx_hash] = [r for r in tx_logs[exchanged.tx_hash] if r["topics"][0] != EARNED]
        elif doctor == "revoked_first":
            revoke = logs.pop(_first(logs, AGREEMENT_REVOKED))
            batch = [j for j, log in enumerate(logs) if log.topics[0] == EXCHANGED][2]
            logs.insert(batch, dataclasses.replace(revoke, topics=[revoke.topics[0], logs[batch].topics[1]]))
        elif doctor == "repeat_exchange":
            second = [log for log in logs if log.topics[0] == EXCHANGED][1]  # 2,700 in: twice is over 3,000
            logs.insert(logs.index(second) + 1, second)
        elif doctor == "payment_amount":
            j = _first(logs, PAYMENT_DUE)
            logs[j] = dataclasses.replace(logs[j], data=_word(logs[j].data, 1, 1))
        elif doctor == "drop_settlement_transfer":
            settled = logs[_first(logs, PAYMENT_SETTLED)]
            tx_logs[settled.tx_hash] = [
                r for r in tx_logs[settled.tx_hash] if r["address"].lower() == scenario.exchange.lower()
            ]
        elif doctor == "drop_program_brand":  # as if the payee had never been allowed on the target
            logs.pop(_first(logs, PROGRAM_BRAND_SET))
        elif doctor == "late_exchange":
            late = dataclasses.replace(exchanged, timestamp=10**10)  # long past period 0's due date, unpaid
            logs.insert(_first(logs, PERIOD_CLOSED) + 1, late)

    assert check in _replay(scenario, change)
