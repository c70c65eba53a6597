"""Coalition statements, from a token's events alone: for a program several partners issue in,
what each owes for the points it issued (x the program's issue fee) and is owed for the points
redeemed at it (x the program's redemption price) over a time window, and the payments that
settle it, netted as the exchange nets periods (at most n - 1 payments, the coalition itself
one of the parties).

Anyone with the chain and the two prices gets the same figures: `loyalty audit statement`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from loyalty.audit.events import BATCH_EARNED, EARNED, REDEEMED, address, words
from loyalty.audit.rpc import Rpc
from loyalty.domain.exchange import net_positions, payments


@dataclass(frozen=True)
class Line:
    """One partner's (issuer account's) share of the window."""

    issuer: str
    issued: int
    redeemed: int
    fees: int  # issued x issue fee: what it owes the coalition
    reimbursed: int  # redeemed x redemption price: what the coalition owes it
    net: int  # reimbursed - fees


@dataclass(frozen=True)
class Statement:
    token: str
    since: int
    until: int
    from_block: int
    to_block: int
    issue_fee: int
    redemption_price: int
    lines: list[Line]
    net: dict[str, int]  # each party's position, the coalition (the token's address) included; sums to zero
    payments: list[tuple[str, str, int]]  # (debtor, creditor, amount)


def first_block_at(rpc: Rpc, timestamp: int, low: int, high: int) -> int:
    """The first block in [low, high] at or after `timestamp` (high + 1 if none is)."""
    while low <= high:
        middle = (low + high) // 2
        if rpc.timestamps([middle])[middle] >= timestamp:
            high = middle - 1
        else:
            low = middle + 1
    return low


def statement(
    rpc: Rpc,
    token: str,
    *,
    since: int,
    until: int,
    issue_fee: int,
    redemption_price: int,
    from_block: int = 0,
    excluded: Collection[str] = (),
) -> Statement:
    """The coalition statement of `token` for blocks timed in [since, until). `excluded`
    issuers (the exchange: what it mints and burns is settled by its own periods) are left out."""
    head = rpc.block_number()
    start = first_block_at(rpc, since, from_block, head)
    end = first_block_at(rpc, until, start, head) - 1
    skip = {a.lower() for a in excluded}
    issued: dict[str, int] = defaultdict(int)
    redeemed: dict[str, int] = defaultdict(int)
    if start <= end:
        for batch in rpc.logs(token, start, end):
            for raw in batch:
                topics = raw["topics"]
                kind = topics[0] if topics else None
                if kind == EARNED:
                    issued[address(topics[2])] += words(raw["data"])[0]
                elif kind == BATCH_EARNED:
                    issued[address(topics[1])] += words(raw["data"])[1]
                elif kind == REDEEMED:
                    redeemed[address(topics[2])] += words(raw["data"])[0]
    coalition = address(token)
    lines, debts = [], {}
    for issuer in sorted(set(issued) | set(redeemed)):
        if issuer.lower() in skip:
            continue
        fees, reimbursed = issued[issuer] * issue_fee, redeemed[issuer] * redemption_price
        lines.append(Line(issuer, issued[issuer], redeemed[issuer], fees, reimbursed, reimbursed - fees))
        if fees:
            debts[(issuer, coalition)] = fees
        if reimbursed:
            debts[(coalition, issuer)] = reimbursed
    settled = list(payments(debts))
    return Statement(
        token=coalition, since=since, until=until, from_block=start, to_block=end, issue_fee=issue_fee,
        redemption_price=redemption_price, lines=lines, net=net_positions(debts), payments=settled,
    )  # fmt: skip


@dataclass(frozen=True)
class Donated:
    """What members donated to a charity (redeemed at its account) in a window, from the events."""

    token: str
    charity: str
    since: int
    until: int
    from_block: int
    to_block: int
    donations: int
    points: int
    cash_minor: int | None  # at the rate asked for, each donation rounded down; None without one
    tx_hashes: list[str]


def donated(
    rpc: Rpc,
    token: str,
    charity: str,
    *,
    since: int,
    until: int,
    from_block: int = 0,
    rate: tuple[int, int] | None = None,
) -> Donated:
    """The donations to `charity` (its issuer account's address) on `token` in blocks timed in
    [since, until): every `Redeemed` event the charity relayed is one (it sells nothing).
    `rate`: (cash_minor, points), to price each at it as the service does."""
    head = rpc.block_number()
    start = first_block_at(rpc, since, from_block, head)
    end = first_block_at(rpc, until, start, head) - 1
    who = charity.lower()
    amounts, hashes = [], []
    if start <= end:
        for batch in rpc.logs(token, start, end):
            for raw in batch:
                topics = raw["topics"]
                if topics and topics[0] == REDEEMED and address(topics[2]).lower() == who:
                    amounts.append(words(raw["data"])[0])
                    hashes.append(raw["transactionHash"])
    cash = None if rate is None else sum(points * rate[0] // rate[1] for points in amounts)
    return Donated(
        token=address(token), charity=charity, since=since, until=until, from_block=start, to_block=end,
        donations=len(amounts), points=sum(amounts), cash_minor=cash, tx_hashes=hashes,
    )  # fmt: skip
