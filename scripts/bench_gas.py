"""Gas benchmark: `make bench-gas` (`brownie run scripts/bench_gas.py`).

Deploys LoyaltyPoints and, in the same run, a plain OpenZeppelin ERC-20 baseline with the same
kind of batch mint, measures each operation, writes `var/bench/gas.json` (integer gas, keys
below) and prints a table with the targets. Exits 1 when a target is missed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brownie import (  # type: ignore[attr-defined]  # contract containers exist once a project loads
    BaselinePoints,
    LoyaltyPoints,
    PointsExchange,
    TestDollar,
    accounts,
    chain,
)
from eth_account import Account
from eth_account.signers.local import LocalAccount

from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.domain.exchange import Agreement, agreement_typed_data

OUT = Path(__file__).resolve().parents[1] / "var" / "bench" / "gas.json"
BATCH = 100
TOKEN_NAME = "Loyalty Points"
TX = dict[str, Any]


def _new_addresses(count: int) -> list[str]:
    return [Account.create().address for _ in range(count)]


def measure() -> dict[str, int]:
    admin, issuer, holder = accounts[0], accounts[1], accounts[2]
    token = LoyaltyPoints.deploy(TOKEN_NAME, "LOYAL", admin, 30 * 86_400, 12, {"from": admin})
    token.grantRole(token.ISSUER_ROLE(), issuer, {"from": admin})
    token.setIssueBudget(issuer, 10**30, {"from": admin})
    token.setTransfersEnabled(True, {"from": admin})
    baseline = BaselinePoints.deploy(admin, {"from": admin})
    refs = iter(range(1, 10**6))

    def earn(member: str) -> int:
        return int(token.earn(member, 100, next(refs), {"from": issuer}).gas_used)

    def earn_batch(members: list[str]) -> int:
        tx = token.earnBatch(members, [100] * len(members), next(refs), {"from": issuer})
        return round(int(tx.gas_used) / len(members))

    def mint_batch(members: list[str]) -> int:
        tx = baseline.mintBatch(members, [100] * len(members), {"from": admin})
        return round(int(tx.gas_used) / len(members))

    # Warm the issuer's ref window and the epoch's supply slot, as on any live token.
    token.earn(holder, 1_000, next(refs), {"from": issuer})
    member = Account.create()
    figures = {"earn_new": earn(member.address), "earn_existing": earn(member.address)}
    members = _new_addresses(BATCH)
    figures["earn_batch_new_per_member"] = earn_batch(members)
    figures["earn_batch_existing_per_member"] = earn_batch(members)

    ref = next(refs)
    consent = RedeemConsent(member.address, issuer.address, 50, 1, ref, token.nonces(member.address), 2**40)
    signature = sign_typed_data(
        redeem_typed_data(consent, chain_id=chain.id, token_address=token.address, token_name=TOKEN_NAME),
        member.key,
    )
    figures["redeem"] = int(token.redeem(member.address, 50, 1, ref, 2**40, signature, {"from": issuer}).gas_used)
    figures["transfer_existing"] = int(token.transfer(members[0], 10, {"from": holder}).gas_used)

    baseline.mint(holder, 1_000, {"from": admin})
    figures["baseline_mint_new"] = int(baseline.mint(Account.create().address, 100, {"from": admin}).gas_used)
    figures["baseline_mint_existing"] = int(baseline.mint(holder, 100, {"from": admin}).gas_used)
    members = _new_addresses(BATCH)
    figures["baseline_batch_new_per_member"] = mint_batch(members)
    figures["baseline_batch_existing_per_member"] = mint_batch(members)
    figures["baseline_burn"] = int(baseline.burn(10, {"from": holder}).gas_used)
    figures.update(measure_exchange(admin, issuer))
    return figures


def measure_exchange(admin: Any, issuer: Any) -> dict[str, int]:
    """`exchange` against its parts measured in the same run: the same member's `redeem` on
    the source and an `earn` to an existing holder on the target, each sent by an issuer
    itself; and `exchangeBatch` of BATCH members, per member. Every member already holds
    points on both tokens, and the pair of brands already owes in the period (a live
    exchange's steady state)."""
    relayer = accounts[3]
    refs = iter(range(1, 10**6))
    source = LoyaltyPoints.deploy("Hotel Points", "HOTEL", admin, 30 * 86_400, 12, {"from": admin})
    target = LoyaltyPoints.deploy("Air Miles", "MILES", admin, 30 * 86_400, 12, {"from": admin})
    exchange = PointsExchange.deploy(admin, TestDollar.deploy({"from": admin}), 7 * 86_400, 3 * 86_400, {"from": admin})
    exchange.grantRole(exchange.RELAYER_ROLE(), relayer, {"from": admin})
    for token in (source, target):
        for account in (issuer, exchange):
            token.grantRole(token.ISSUER_ROLE(), account, {"from": admin})
            token.setIssueBudget(account, 10**30, {"from": admin})
    payer, payee = Account.create(), Account.create()
    terms = Agreement(
        source=source.address, target=target.address, payer=payer.address, payee=payee.address,
        rate_numerator=1, rate_denominator=3, minimum_in=3, step_in=3, max_in_per_exchange=0,
        max_in_per_member_period=0, bonus_every=0, bonus_out=0, price_per_point=20_000, credit_limit=0,
        valid_from=chain.time() - 60, valid_until=chain.time() + 10**8, salt=1,
    )  # fmt: skip
    exchange.setProgramBrand(target, payee.address, True, {"from": admin})
    typed = agreement_typed_data(terms, chain_id=chain.id, exchange_address=exchange.address)
    exchange.registerAgreement(
        terms.as_tuple(), sign_typed_data(typed, payer.key), sign_typed_data(typed, payee.key), {"from": admin}
    )
    reward_id = int.from_bytes(bytes(exchange.agreementId(terms.as_tuple())), "big")

    def consent(member: LocalAccount, amount: int, ref: int, relayed_by: str) -> bytes:
        signed = RedeemConsent(member.address, relayed_by, amount, reward_id, ref, source.nonces(member.address), 2**40)
        data = redeem_typed_data(signed, chain_id=chain.id, token_address=source.address, token_name="Hotel Points")
        return sign_typed_data(data, member.key)

    def holder() -> LocalAccount:
        member: LocalAccount = Account.create()
        source.earn(member.address, 10_000, next(refs), {"from": issuer})
        target.earn(member.address, 10, next(refs), {"from": issuer})
        return member

    def exchange_one(member: LocalAccount) -> int:
        ref = next(refs)
        signature = consent(member, 300, ref, exchange.address)
        tx = exchange.exchange(terms.as_tuple(), member.address, 300, ref, 2**40, signature, {"from": relayer})
        return int(tx.gas_used)

    member = holder()
    exchange_one(holder())  # the pair's first debt of the period
    figures = {"exchange": exchange_one(member)}
    ref = next(refs)
    redeem = source.redeem(
        member.address, 300, reward_id, ref, 2**40, consent(member, 300, ref, issuer.address), {"from": issuer}
    )
    earn = target.earn(member.address, 100, next(refs), {"from": issuer})
    figures["exchange_parts"] = int(redeem.gas_used) + int(earn.gas_used)
    members = [holder() for _ in range(BATCH)]
    orders = []
    for m in members:
        ref = next(refs)
        orders.append((m.address, 300, ref, 2**40, consent(m, 300, ref, exchange.address)))
    tx = exchange.exchangeBatch(terms.as_tuple(), orders, {"from": relayer})
    figures["exchange_batch_per_member"] = round(int(tx.gas_used) / BATCH)
    return figures


def targets(f: dict[str, int]) -> list[tuple[str, float, float]]:
    """(what, measured, limit) for every target in the foundation issue."""

    def ratio(ours: str, baseline: str) -> tuple[str, float]:
        return f"{ours} / {baseline}", f[ours] / f[baseline]

    return [
        (*ratio("earn_batch_new_per_member", "baseline_batch_new_per_member"), 1.10),
        (*ratio("earn_batch_existing_per_member", "baseline_batch_existing_per_member"), 1.10),
        (*ratio("earn_existing", "baseline_mint_existing"), 1.20),
        ("redeem (gas)", f["redeem"], 70_000),
        (*ratio("exchange", "exchange_parts"), 1.15),
        (*ratio("exchange_batch_per_member", "exchange_parts"), 0.75),
    ]


def main() -> None:
    figures = measure()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{'operation':<38}{'gas':>10}")
    for key, gas in figures.items():
        print(f"{key:<38}{gas:>10,}")
    print(f"\n{'target':<72}{'measured':>10}{'limit':>8}  ok")
    missed = 0
    for what, measured, limit in targets(figures):
        ok = measured <= limit
        missed += not ok
        shown, cap = (f"{measured:,.0f}", f"{limit:,.0f}") if limit > 100 else (f"{measured:.3f}x", f"{limit:.2f}x")
        print(f"{what:<72}{shown:>10}{cap:>8}  {'yes' if ok else 'NO'}")
    print(f"\nwrote {OUT}")
    if missed:
        raise SystemExit(f"{missed} gas target(s) missed")
