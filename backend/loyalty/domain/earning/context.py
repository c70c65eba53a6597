"""What rules look at: a purchase (or a custom event) and the member who made it. Money is in
integer minor units of the purchase's currency (cents for USD), never floats."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


class LineKind(enum.StrEnum):
    """What a purchase line is: only items earn by default (shipping, fees and lines paid with a
    reward are not spend a member should earn on)."""

    ITEM = "item"
    SHIPPING = "shipping"
    FEE = "fee"
    REWARD = "reward"


class Trigger(enum.StrEnum):
    """What a rule reacts to."""

    PURCHASE = "purchase"
    ENROLMENT = "enrolment"
    REFERRAL = "referral"
    EVENT = "event"  # a custom event of a type the rule names


class Beneficiary(enum.StrEnum):
    """Whom a referral rule rewards: the member whose code was used, or the friend who used it."""

    REFERRER = "referrer"
    FRIEND = "friend"


@dataclass(frozen=True)
class Line:
    """One line of an order; `discount_minor` is the discount on the whole line."""

    sku: str
    category: str
    quantity: int
    unit_price_minor: int
    discount_minor: int = 0
    kind: LineKind = LineKind.ITEM

    @property
    def net_minor(self) -> int:
        """What the member paid for the line: never below nothing."""
        return max(0, self.quantity * self.unit_price_minor - self.discount_minor)


@dataclass(frozen=True)
class Activity:
    """A purchase (its lines) or another trigger (an enrolment, a custom event with its type and
    properties, a referral with the qualifying purchase's lines and `event_type` the side
    rewarded), as the rules see it. `occurred_at` carries the member's local offset: "on
    Mondays" is the member's Monday."""

    trigger: Trigger
    occurred_at: datetime
    lines: Sequence[Line] = ()
    event_type: str | None = None
    properties: Mapping[str, object] = field(default_factory=dict)

    @property
    def items(self) -> list[Line]:
        return [line for line in self.lines if line.kind == LineKind.ITEM]


@dataclass(frozen=True)
class MemberFacts:
    """What rules may know of the member: its tier (None below the ladder) and segment tags."""

    tier: str | None = None
    segments: frozenset[str] = frozenset()
