"""The program replayed from the token's events: every member's lots of points, every issuer's
figures, and whatever in the events breaks the token's rules.

Points are held in lots by the epoch they were earned in, and within a lot by issuer in the order
earned. Spending (a redemption or a transfer) takes the oldest live lot first, as the contract
does, and within a lot the earliest-earned points: that attribution is what lets each issuer's
outstanding liability, expired (breakage) and redeemed-elsewhere figures add up exactly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from loyalty.audit.events import (
    APPROVAL,
    BATCH_EARNED,
    EARNED,
    EXPIRED,
    ISSUE_BUDGET_SET,
    ISSUER_ROLE,
    REDEEMED,
    ROLE_GRANTED,
    ROLE_REVOKED,
    TRANSFER,
    ZERO,
    Log,
    address,
    words,
)

# Events whose effect depends on the time of their block (which lots are still live).
TIMED = {TRANSFER, REDEEMED, EXPIRED}


@dataclass(frozen=True)
class Params:
    """The token's deployed parameters."""

    token: str
    chain_id: int
    name: str
    start_time: int
    epoch_length: int
    validity_epochs: int

    def epoch_at(self, timestamp: int) -> int:
        return (timestamp - self.start_time) // self.epoch_length

    def epoch_expiring_at(self, expires_at: int) -> int:
        """The epoch of earning whose points expire at `expires_at` (the contract's `expiryOf`)."""
        return (expires_at - self.start_time) // self.epoch_length - self.validity_epochs

    def is_live(self, epoch: int, now_epoch: int) -> bool:
        return epoch + self.validity_epochs > now_epoch


@dataclass(slots=True, frozen=True)
class Entry:
    """One line of a member's history, with where to find it on-chain."""

    kind: str  # earn | redeem | expire | transfer_in | transfer_out
    amount_points: int
    issuer: str | None
    tx_hash: str
    block_number: int
    epoch: int | None = None
    reward_id: int | None = None
    ref: int | None = None


@dataclass(slots=True, frozen=True)
class Discrepancy:
    check: str
    detail: str
    tx_hash: str | None = None
    block_number: int | None = None


@dataclass(slots=True, frozen=True)
class Redemption:
    """A redemption as the events show it.

    `nonce` is the consent nonce it used, counting the member's earlier redemptions; the events
    cannot tell a permit (which also uses a nonce) from a plain approve, so `verify` adds earlier
    permits after reading the transactions behind `approvals`.
    """

    member: str
    issuer: str
    amount_points: int
    reward_id: int
    ref: int
    nonce: int
    tx_hash: str
    block_number: int
    log_index: int = 0


@dataclass(slots=True, frozen=True)
class Approval:
    """An `Approval` event: an approve, or a permit that used one of the owner's nonces."""

    owner: str
    tx_hash: str
    block_number: int
    log_index: int


@dataclass(slots=True)
class MemberBook:
    address: str
    lots: dict[int, list[list[str | int]]] = field(default_factory=dict)  # epoch -> [[issuer, points], ...]
    earned: int = 0
    redeemed: int = 0
    received: int = 0
    sent: int = 0
    swept: int = 0  # expired points burned by `Expired` events
    nonce: int = 0
    entries: list[Entry] = field(default_factory=list)


@dataclass(slots=True)
class IssuerBook:
    address: str
    has_role: bool = False
    budget: int = 0  # remaining, as the events imply
    earned: int = 0
    redeemed_at: int = 0  # redemptions it relayed, whoever issued the points
    swept: int = 0  # of its points, burned by `Expired` events
    last_tx_hash: str | None = None
    last_block_number: int | None = None


@dataclass(frozen=True)
class MemberFigures:
    address: str
    earned: int
    received: int
    sent: int
    redeemed: int
    expired: int
    balance: int


@dataclass(frozen=True)
class IssuerFigures:
    address: str
    earned: int
    redeemed_at: int
    expired: int
    outstanding: int
    budget_remaining: int
    has_role: bool
    last_tx_hash: str | None
    last_block_number: int | None


class Ledger:
    """Apply the token's logs in order (`apply`), then read the figures at any epoch."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.members: dict[str, MemberBook] = {}
        self.issuers: dict[str, IssuerBook] = {}
        self.redemptions: list[Redemption] = []
        self.approvals: list[Approval] = []
        self.discrepancies: list[Discrepancy] = []
        self.checked: dict[str, int] = defaultdict(int)  # items each check looked at
        self.earn_events = 0
        self.redeem_events = 0
        self.last_block = -1
        # Unspent points per epoch of earning (expired ones included until swept), and the
        # changes to it by block, for the liability chart.
        self.epoch_points: dict[int, int] = defaultdict(int)
        self.swept = 0
        self.history: list[tuple[int, int, int]] = []  # (block, epoch or -1 for swept, change)
        # Points of `issuer` redeemed at `redeemed_at`: what brands settle between them.
        self.settlement: dict[tuple[str, str], int] = defaultdict(int)
        # By cohort (epoch of earning) and issuer: points earned, and swept by `Expired` events
        # (what is still unspent is in the members' lots): breakage per cohort (`audit.metrics`).
        self.cohort_earned: dict[tuple[int, str], int] = defaultdict(int)
        self.cohort_swept: dict[tuple[int, str], int] = defaultdict(int)
        # By block: points an issuer earned, and points of an issuer (`owner`) redeemed at one
        # (`redeemed_at`, itself or another): the flows of any window.
        self.earned_in: dict[tuple[int, str], int] = defaultdict(int)  # (block, issuer)
        self.redeemed_in: dict[tuple[int, str, str], int] = defaultdict(int)  # (block, owner, redeemed_at)
        self._refs: dict[tuple[str, int], str] = {}
        self._mints: list[tuple[str, int, Log]] = []  # Transfer(0, member) of the current transaction
        self._burns: list[tuple[str, int, Log]] = []  # Transfer(member, 0) of the current transaction

    # ---------------------------------------------------------------------------- replay
    def apply(self, logs: list[Log], timestamps: dict[int, int]) -> None:
        """Replay logs (whole blocks, in order). `timestamps` has every block of a TIMED log
        that carries no timestamp itself."""
        tx_hash = None
        for log in logs:
            if log.tx_hash != tx_hash:
                self._end_tx()
                tx_hash = log.tx_hash
            topic = log.topics[0] if log.topics else None
            if topic in TIMED:
                now = self.params.epoch_at(log.timestamp if log.timestamp is not None else timestamps[log.block_number])
            if topic == TRANSFER:
                source, target, amount = address(log.topics[1]), address(log.topics[2]), int(log.data, 16)
                if source == ZERO:
                    self._mints.append((target, amount, log))
                elif target == ZERO:
                    self.checked["burns_accounted"] += 1
                    self._burns.append((source, amount, log))
                else:
                    self._transfer(source, target, amount, now, log)
            elif topic == EARNED:
                member, issuer = address(log.topics[1]), address(log.topics[2])
                amount, ref, expires_at = words(log.data)
                if not self._take(self._mints, member, amount):
                    self.flag("mints_by_issuers", f"Earned {amount} to {member} without its mint", log)
                self._use_ref(issuer, ref, log)
                self._earn(issuer, [(member, amount)], self.params.epoch_expiring_at(expires_at), ref, log)
            elif topic == BATCH_EARNED:
                issuer = address(log.topics[1])
                size, total, expires_at = words(log.data)
                mints, self._mints = self._mints, []
                self.checked["batch_totals"] += 1
                if len(mints) != size or sum(a for _, a, _ in mints) != total:
                    detail = f"BatchEarned says {size} members, {total} points; its mints: {len(mints)}, {sum(a for _, a, _ in mints)}"
                    self.flag("batch_totals", detail, log)
                ref = int(log.topics[2], 16)
                self._use_ref(issuer, ref, log)
                self._earn(issuer, [(m, a) for m, a, _ in mints], self.params.epoch_expiring_at(expires_at), ref, log)
            elif topic == REDEEMED:
                self._redeem(log, now)
            elif topic == EXPIRED:
                self._expire(address(log.topics[1]), int(log.topics[2], 16), int(log.data, 16), now, log)
            elif topic == ISSUE_BUDGET_SET:
                book = self._issuer(address(log.topics[1]))
                book.budget = int(log.data, 16)
            elif topic in (ROLE_GRANTED, ROLE_REVOKED) and log.topics[1] == ISSUER_ROLE:
                self._issuer(address(log.topics[2])).has_role = topic == ROLE_GRANTED
            elif topic == APPROVAL:  # allowances move no points, but a permit uses a nonce
                self.approvals.append(Approval(address(log.topics[1]), log.tx_hash, log.block_number, log.log_index))
            self.last_block = log.block_number
        self._end_tx()

    def _end_tx(self) -> None:
        for member, amount, log in self._mints:
            self.flag("mints_by_issuers", f"{amount} points minted to {member} by no issuer's earn", log)
        for member, amount, log in self._burns:
            self.flag("burns_accounted", f"{amount} points of {member} burned by no redemption or expiry", log)
        self._mints, self._burns = [], []

    def _earn(self, issuer: str, credits: list[tuple[str, int]], epoch: int, ref: int, log: Log) -> None:
        book = self._issuer(issuer)
        total = sum(amount for _, amount in credits)
        self.checked["mints_by_issuers"] += len(credits)
        if not book.has_role:
            self.flag("mints_by_issuers", f"{issuer} minted {total} points without ISSUER_ROLE", log)
        self.checked["budgets"] += 1
        if total > book.budget:
            self.flag("budgets", f"{issuer} minted {total} points with {book.budget} of budget left", log)
        book.budget -= total
        book.earned += total
        book.last_tx_hash, book.last_block_number = log.tx_hash, log.block_number
        for member, amount in credits:
            holder = self._member(member)
            self._credit(holder, epoch, issuer, amount)
            holder.earned += amount
            holder.entries.append(Entry("earn", amount, issuer, log.tx_hash, log.block_number, epoch, ref=ref))
        self.epoch_points[epoch] += total
        self.history.append((log.block_number, epoch, total))
        self.cohort_earned[(epoch, issuer)] += total
        self.earned_in[(log.block_number, issuer)] += total
        self.earn_events += len(credits)

    def _redeem(self, log: Log, now: int) -> None:
        member, issuer, reward_id = address(log.topics[1]), address(log.topics[2]), int(log.topics[3], 16)
        amount, ref = words(log.data)
        if not self._take(self._burns, member, amount):
            self.flag("burns_accounted", f"Redeemed {amount} of {member} without its burn", log)
        holder = self._member(member)
        for epoch, owner, taken in self._spend(holder, amount, now, log):
            self.epoch_points[epoch] -= taken
            self.history.append((log.block_number, epoch, -taken))
            self.settlement[(owner, issuer)] += taken
            self.redeemed_in[(log.block_number, owner, issuer)] += taken
        holder.redeemed += amount
        holder.entries.append(
            Entry("redeem", amount, issuer, log.tx_hash, log.block_number, reward_id=reward_id, ref=ref)
        )
        self.redemptions.append(
            Redemption(
                member, issuer, amount, reward_id, ref, holder.nonce, log.tx_hash, log.block_number, log.log_index
            )
        )
        holder.nonce += 1
        book = self._issuer(issuer)
        book.redeemed_at += amount
        book.last_tx_hash, book.last_block_number = log.tx_hash, log.block_number
        self.redeem_events += 1

    def _expire(self, member: str, epoch: int, amount: int, now: int, log: Log) -> None:
        """An `Expired` event burns a whole lot that has expired: check it is one."""
        if not self._take(self._burns, member, amount):
            self.flag("burns_accounted", f"Expired {amount} of {member} without its burn", log)
        holder = self._member(member)
        portions = holder.lots.pop(epoch, [])
        held = sum(int(points) for _, points in portions)
        self.checked["expiries"] += 1
        if held != amount or self.params.is_live(epoch, now):
            state = "live" if self.params.is_live(epoch, now) else "expired"
            self.flag("expiries", f"Expired {amount} of {member}'s epoch {epoch}; the lot holds {held} ({state})", log)
        for issuer, points in portions:
            self._issuer(str(issuer)).swept += int(points)
            self.cohort_swept[(epoch, str(issuer))] += int(points)
        holder.swept += held
        holder.entries.append(Entry("expire", held, None, log.tx_hash, log.block_number, epoch))
        self.epoch_points[epoch] -= held
        self.swept += held
        self.history.append((log.block_number, epoch, -held))
        self.history.append((log.block_number, -1, held))

    def _transfer(self, source: str, target: str, amount: int, now: int, log: Log) -> None:
        sender, receiver = self._member(source), self._member(target)
        for epoch, owner, taken in self._spend(sender, amount, now, log):
            self._credit(receiver, epoch, owner, taken)
        sender.sent += amount
        receiver.received += amount
        sender.entries.append(Entry("transfer_out", amount, None, log.tx_hash, log.block_number))
        receiver.entries.append(Entry("transfer_in", amount, None, log.tx_hash, log.block_number))

    # ---------------------------------------------------------------------------- lots
    @staticmethod
    def _credit(holder: MemberBook, epoch: int, issuer: str, amount: int) -> None:
        portions = holder.lots.setdefault(epoch, [])
        if portions and portions[-1][0] == issuer:
            portions[-1][1] = int(portions[-1][1]) + amount
        else:
            portions.append([issuer, amount])

    def _spend(self, holder: MemberBook, amount: int, now: int, log: Log) -> list[tuple[int, str, int]]:
        """Take `amount` from the oldest live lots; returns (epoch, issuer, points) taken."""
        taken: list[tuple[int, str, int]] = []
        left = amount
        self.checked["spends"] += 1
        for epoch in sorted(holder.lots):
            if left == 0:
                break
            if not self.params.is_live(epoch, now):
                continue
            portions = holder.lots[epoch]
            while portions and left:
                issuer, points = str(portions[0][0]), int(portions[0][1])
                part = min(points, left)
                taken.append((epoch, issuer, part))
                left -= part
                if part == points:
                    portions.pop(0)
                else:
                    portions[0][1] = points - part
            if not portions:
                del holder.lots[epoch]
        if left:
            self.flag("spends", f"{holder.address} spent {amount} points with {amount - left} live", log)
        return taken

    @staticmethod
    def _take(pending: list[tuple[str, int, Log]], member: str, amount: int) -> bool:
        for i, (who, points, _) in enumerate(pending):
            if who == member and points == amount:
                del pending[i]
                return True
        return False

    def _use_ref(self, issuer: str, ref: int, log: Log) -> None:
        self.checked["refs_unique"] += 1
        first = self._refs.setdefault((issuer, ref), log.tx_hash)
        if first != log.tx_hash:
            self.flag("refs_unique", f"{issuer} used ref {ref} again (first in {first})", log)

    def flag(self, check: str, detail: str, log: Log | None = None) -> None:
        self.discrepancies.append(
            Discrepancy(check, detail, log.tx_hash if log else None, log.block_number if log else None)
        )

    def _member(self, member: str) -> MemberBook:
        book = self.members.get(member)
        if book is None:
            book = self.members[member] = MemberBook(member)
        return book

    def _issuer(self, issuer: str) -> IssuerBook:
        book = self.issuers.get(issuer)
        if book is None:
            book = self.issuers[issuer] = IssuerBook(issuer)
        return book

    # ---------------------------------------------------------------------------- figures
    def member_figures(self, member: str, now: int) -> MemberFigures:
        book = self.members.get(member) or MemberBook(member)
        live = expired = 0
        for epoch, portions in book.lots.items():
            points = sum(int(p) for _, p in portions)
            if self.params.is_live(epoch, now):
                live += points
            else:
                expired += points
        return MemberFigures(member, book.earned, book.received, book.sent, book.redeemed, book.swept + expired, live)

    def issuer_figures(self, now: int) -> list[IssuerFigures]:
        outstanding: dict[str, int] = defaultdict(int)
        expired: dict[str, int] = defaultdict(int)
        for book in self.members.values():
            for epoch, portions in book.lots.items():
                bucket = outstanding if self.params.is_live(epoch, now) else expired
                for issuer, points in portions:
                    bucket[str(issuer)] += int(points)
        return [
            IssuerFigures(
                b.address,
                b.earned,
                b.redeemed_at,
                b.swept + expired[b.address],
                outstanding[b.address],
                b.budget,
                b.has_role,
                b.last_tx_hash,
                b.last_block_number,
            )
            for b in self.issuers.values()
        ]

    def supply(self, now: int) -> tuple[int, int]:
        """(outstanding, expired) points of the whole program at epoch `now`."""
        live = sum(p for e, p in self.epoch_points.items() if self.params.is_live(e, now))
        return live, sum(self.epoch_points.values()) - live + self.swept

    def timeline(self, samples: dict[int, int]) -> list[tuple[int, int, int, int]]:
        """(block, timestamp, outstanding, expired) at each sampled block (block -> timestamp)."""
        points: dict[int, int] = defaultdict(int)
        swept = 0
        rows = []
        changes = iter(self.history)
        change = next(changes, None)
        for block in sorted(samples):
            while change is not None and change[0] <= block:
                if change[1] == -1:
                    swept += change[2]
                else:
                    points[change[1]] += change[2]
                change = next(changes, None)
            now = self.params.epoch_at(samples[block])
            live = sum(p for e, p in points.items() if self.params.is_live(e, now))
            rows.append((block, samples[block], live, sum(points.values()) - live + swept))
        return rows
