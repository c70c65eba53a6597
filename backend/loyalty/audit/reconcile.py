"""`loyalty audit reconcile`: the backend's database held up against the chain.

Every earn the database calls confirmed must be a mint in its transaction, every mint on-chain
must be an earn in the database, every posted redemption must be a `Redeemed` in its transaction
(and the other way round), and every member's net points must agree. Each finding names the
database row and the transaction, so a doctored row (a changed amount, a deleted earn, an
invented redemption) points at itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.audit.verify import Audit
from loyalty.db.models import ChainWrite, Earn, EarnStatus, Member, Redemption, RedemptionStatus


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

    # Mints on-chain, by transaction: (member, points) -> how many times.
    mints: dict[str, dict[tuple[str, int], int]] = defaultdict(lambda: defaultdict(int))
    blocks: dict[str, int] = {}
    for holder in ledger.members.values():
        for entry in holder.entries:
            if entry.kind == "earn":
                mints[entry.tx_hash][(holder.address, entry.amount_points)] += 1
                blocks[entry.tx_hash] = entry.block_number

    earns = session.execute(
        select(Earn.id, Earn.status, Earn.amount_points, Member.wallet_address, ChainWrite.tx_hash)
        .join(Member, Member.id == Earn.member_id)
        .join(ChainWrite, ChainWrite.id == Earn.write_id)
        .where(Earn.status.in_([EarnStatus.CONFIRMED, EarnStatus.PENDING]))
        .order_by(Earn.id)
    ).all()
    for earn_id, status, amount, wallet, tx_hash in earns:
        on_chain = mints.get(tx_hash, {})
        if on_chain.get((wallet, amount), 0) > 0:
            on_chain[(wallet, amount)] -= 1
        elif status == EarnStatus.CONFIRMED:
            findings.append(Finding(
                "earn_not_on_chain", f"earn {earn_id} is confirmed as {amount} points to {wallet}; its transaction has no such mint",
                f"earns/{earn_id}", tx_hash, blocks.get(tx_hash),
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
        .where(Redemption.status.in_([RedemptionStatus.POSTED, RedemptionStatus.RESERVED]))
        .order_by(Redemption.id)
    ).all()  # fmt: skip
    for redemption_id, status, amount, reward_id, ref, wallet, tx_hash in redemptions:
        key = (wallet, amount, reward_id, ref)
        if tx_hash is not None and key in burns.get(tx_hash, []):
            burns[tx_hash].remove(key)
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

    # Net points per member: confirmed earns less posted redemptions, against the chain's.
    net: dict[str, int] = defaultdict(int)
    ids: dict[str, int] = {}
    for member_id, wallet in session.execute(select(Member.id, Member.wallet_address)):
        ids[wallet] = member_id
        net[wallet] += 0
    for wallet, amount in session.execute(
        select(Member.wallet_address, Earn.amount_points).join(Member).where(Earn.status == EarnStatus.CONFIRMED)
    ):
        net[wallet] += amount
    for wallet, amount in session.execute(
        select(Member.wallet_address, Redemption.amount_points)
        .join(Member)
        .where(Redemption.status == RedemptionStatus.POSTED)
    ):
        net[wallet] -= amount
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
