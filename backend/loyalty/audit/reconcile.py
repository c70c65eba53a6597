"""`loyalty audit reconcile`: the backend's database held up against the chain.

One program's token at a time (the audit's): every earn the database calls confirmed there
must be a mint in its transaction, every mint on-chain must be an earn (or an exchange into the
program) in the database, every posted redemption (or exchange out of it) must be a `Redeemed`
in its transaction (and the other way round), and every member's net points must agree. Each
finding names the database row and the transaction, so a doctored row (a changed amount, a
deleted earn, an invented redemption) points at itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.audit.verify import Audit
from loyalty.db.models import (
    ChainWrite,
    Earn,
    EarnStatus,
    Exchange,
    ExchangeStatus,
    Member,
    Partner,
    Program,
    RateAgreement,
    Redemption,
    RedemptionStatus,
    Reward,
    WriteStatus,
)


@dataclass(frozen=True)
class Finding:
    """One disagreement between the database and the chain.

    Attributes:
        code: earn_not_on_chain, mint_unknown_to_database, redemption_without_burn,
            burn_unknown_to_database or balance_mismatch.
        detail: what disagrees, for a person.
        row: the database row (`earns/17`), if one is involved.
        tx_hash, block_number: the transaction, if one is involved.
    """

    code: str
    detail: str
    row: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None


def reconcile(session: Session, audit: Audit) -> list[Finding]:
    findings: list[Finding] = []
    ledger = audit.ledger
    program_id = program_of(session, ledger.params.token)
    exchanged_in, exchanged_out = _exchanges(session, program_id)

    # Mints on-chain, by transaction: (member, points) -> how many times.
    mints: dict[str, dict[tuple[str, int], int]] = defaultdict(lambda: defaultdict(int))
    blocks: dict[str, int] = {}
    for holder in ledger.members.values():
        for entry in holder.entries:
            if entry.kind == "earn":
                mints[entry.tx_hash][(holder.address, entry.amount_points)] += 1
                blocks[entry.tx_hash] = entry.block_number

    earned = session.execute(
        select(Earn.id, Earn.status, Earn.amount_points, Member.wallet_address, ChainWrite.tx_hash)
        .join(Member, Member.id == Earn.member_id)
        .join(ChainWrite, ChainWrite.id == Earn.write_id)
        .join(Partner, Partner.id == Earn.partner_id)
        .where(Earn.status.in_([EarnStatus.CONFIRMED, EarnStatus.PENDING]), Partner.program_id == program_id)
        .order_by(Earn.id)
    ).all()
    earns = [(f"earns/{earn_id}", status, amount, wallet, tx) for earn_id, status, amount, wallet, tx in earned]
    earns += [
        (
            f"exchanges/{x.id}",
            EarnStatus.CONFIRMED if x.final else EarnStatus.PENDING,
            x.amount_out,
            x.wallet,
            x.tx_hash,
        )
        for x in exchanged_in
    ]
    # What rows not final yet (a pending earn, a reserved redemption, an exchange in a batch
    # sent) were found to have done on-chain already: the chain's balance has it, so the
    # database's net counts it too.
    on_chain_unfinal: dict[str, int] = defaultdict(int)
    for row, status, amount, wallet, tx_hash in earns:
        on_chain = mints.get(tx_hash, {})
        if on_chain.get((wallet, amount), 0) > 0:
            on_chain[(wallet, amount)] -= 1
            if status != EarnStatus.CONFIRMED:
                on_chain_unfinal[wallet] += amount
        elif status == EarnStatus.CONFIRMED:
            findings.append(Finding(
                "earn_not_on_chain", f"{row} is confirmed as {amount} points to {wallet}; its transaction has no such mint",
                row, tx_hash, blocks.get(tx_hash),
            ))  # fmt: skip
    for tx_hash, left in mints.items():
        for (member, amount), count in left.items():
            for _ in range(count):
                findings.append(Finding(
                    "mint_unknown_to_database", f"{amount} points minted to {member}; no earn in the database",
                    None, tx_hash, blocks[tx_hash],
                ))  # fmt: skip

    # Redemptions on-chain, by transaction.
    burns: dict[str, list[tuple[str, int, int, int]]] = defaultdict(list)
    for r in ledger.redemptions:
        burns[r.tx_hash].append((r.member, r.amount_points, r.reward_id, r.ref))
        blocks[r.tx_hash] = r.block_number
    redemptions = session.execute(
        select(Redemption.id, Redemption.status, Redemption.amount_points, Redemption.reward_id, Redemption.ref,
               Member.wallet_address, ChainWrite.tx_hash)
        .join(Member, Member.id == Redemption.member_id)
        .outerjoin(ChainWrite, ChainWrite.id == Redemption.write_id)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.status.in_([RedemptionStatus.POSTED, RedemptionStatus.RESERVED]), Reward.program_id == program_id)
        .order_by(Redemption.id)
    ).all()  # fmt: skip
    for x in exchanged_out:  # an exchange out is a redemption by the exchange, for the agreement
        if (burn := (x.wallet, x.amount_in, int(x.agreement, 16), x.ref)) in burns.get(x.tx_hash, []):
            burns[x.tx_hash].remove(burn)
            if not x.final:
                on_chain_unfinal[x.wallet] -= x.amount_in
        elif x.final:
            findings.append(Finding(
                "redemption_without_burn",
                f"exchange {x.id} is confirmed ({x.amount_in} points of {x.wallet} out); transaction {x.tx_hash} has no such burn",
                f"exchanges/{x.id}", x.tx_hash, blocks.get(x.tx_hash),
            ))  # fmt: skip
    for redemption_id, status, amount, reward_id, ref, wallet, tx_hash in redemptions:
        key = (wallet, amount, reward_id, ref)
        if tx_hash is not None and key in burns.get(tx_hash, []):
            burns[tx_hash].remove(key)
            if status != RedemptionStatus.POSTED:
                on_chain_unfinal[wallet] -= amount
        elif status == RedemptionStatus.POSTED:
            where = f"transaction {tx_hash} has no such burn" if tx_hash else "no transaction was ever sent for it"
            findings.append(Finding(
                "redemption_without_burn",
                f"redemption {redemption_id} is posted ({amount} points of {wallet}, reward {reward_id}); {where}",
                f"redemptions/{redemption_id}", tx_hash, blocks.get(tx_hash or ""),
            ))  # fmt: skip
    for tx_hash, left_burns in burns.items():
        for member, amount, reward_id, _ in left_burns:
            findings.append(Finding(
                "burn_unknown_to_database", f"{amount} points of {member} redeemed for reward {reward_id}; no redemption in the database",
                None, tx_hash, blocks[tx_hash],
            ))  # fmt: skip

    # Net points per member: confirmed earns less posted redemptions (and what rows not final
    # yet did on-chain already), against the chain's.
    net: dict[str, int] = defaultdict(int)
    ids: dict[str, int] = {}
    for member_id, wallet in session.execute(select(Member.id, Member.wallet_address)):
        ids[wallet] = member_id
        net[wallet] += 0
    for wallet, amount in session.execute(
        select(Member.wallet_address, Earn.amount_points)
        .join(Member)
        .join(Partner, Partner.id == Earn.partner_id)
        .where(Earn.status == EarnStatus.CONFIRMED, Partner.program_id == program_id)
    ):
        net[wallet] += amount
    for wallet, amount in session.execute(
        select(Member.wallet_address, Redemption.amount_points)
        .join(Member)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.status == RedemptionStatus.POSTED, Reward.program_id == program_id)
    ):
        net[wallet] -= amount
    for x in exchanged_in:
        net[x.wallet] += x.amount_out if x.final else 0
    for x in exchanged_out:
        net[x.wallet] -= x.amount_in if x.final else 0
    for wallet, points in on_chain_unfinal.items():
        net[wallet] += points
    for wallet, points in net.items():
        book = ledger.members.get(wallet)
        chain = book.earned + book.received - book.sent - book.redeemed if book else 0
        if chain != points:
            findings.append(Finding(
                "balance_mismatch",
                f"member {ids[wallet]} ({wallet}): the database nets {points} points (earned less redeemed), the chain {chain}",
                f"members/{ids[wallet]}",
            ))  # fmt: skip
    return findings


def program_of(session: Session, token: str) -> int:
    """The database's program for the audited token (program 1, the token the database is
    bound to, when no program names it yet)."""
    found = session.scalar(select(Program.id).where(func.lower(Program.token_address) == token.lower()))
    return int(found) if found is not None else 1


@dataclass(frozen=True)
class _Exchanged:
    id: int
    wallet: str
    amount_in: int
    amount_out: int
    agreement: str  # its id on the exchange, 0x hex: the `rewardId` of the burn
    ref: int
    tx_hash: str
    final: bool  # confirmed; else sent, not final yet (it may be on-chain already, or not)


def _exchanges(session: Session, program_id: int) -> tuple[list[_Exchanged], list[_Exchanged]]:
    """The exchanges into the program and out of it that are on-chain or may be (confirmed, or
    in a batch sent and not final yet), with their transactions."""
    rows = session.execute(
        select(Exchange, Member.wallet_address, RateAgreement.agreement_id, ChainWrite.tx_hash)
        .join(Member, Member.id == Exchange.member_id)
        .join(RateAgreement, RateAgreement.id == Exchange.agreement_id)
        .join(ChainWrite, ChainWrite.id == Exchange.write_id)
        .where(
            (Exchange.status == ExchangeStatus.CONFIRMED)
            | ((Exchange.status == ExchangeStatus.RESERVED) & (ChainWrite.status == WriteStatus.SENT)),
            (Exchange.source_program_id == program_id) | (Exchange.target_program_id == program_id),
        )
        .order_by(Exchange.id)
    ).all()
    found = [
        (
            x.target_program_id == program_id,
            _Exchanged(
                x.id,
                wallet,
                x.amount_in,
                x.amount_out,
                digest,
                int(x.ref or 0),
                tx,
                x.status == ExchangeStatus.CONFIRMED,
            ),
        )
        for x, wallet, digest, tx in rows
    ]
    return [x for into, x in found if into], [x for into, x in found if not into]
