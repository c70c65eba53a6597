"""Refunds and debts, as arithmetic: what is left of an order after a refund, how many points
each rule takes back, and how a release pays a debt before anything is minted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from loyalty.domain.earning.context import Line
from loyalty.errors import ErrorCode, UnprocessableError

K = TypeVar("K")


@dataclass(frozen=True)
class RefundLine:
    """`quantity` units of `sku` returned."""

    sku: str
    quantity: int


def remaining(lines: Sequence[Line], refunded: Sequence[RefundLine] | None) -> list[Line]:
    """The order's lines after `refunded` (None: everything). Returned units come off the sku's
    lines in order; a line keeps the share of its discount its units keep, rounded up, so what
    is left never counts as more spend than was paid for it."""
    if refunded is None:
        return []
    left = {line.sku: 0 for line in lines}
    for item in refunded:
        if item.sku not in left:
            raise UnprocessableError(ErrorCode.REFUND_EXCEEDS_PURCHASE, f"the order has no sku {item.sku!r}")
        left[item.sku] += item.quantity
    kept: list[Line] = []
    for line in lines:
        taken = min(line.quantity, left[line.sku])
        left[line.sku] -= taken
        if taken < line.quantity:
            quantity = line.quantity - taken
            discount = -(-line.discount_minor * quantity // line.quantity)
            kept.append(replace(line, quantity=quantity, discount_minor=discount))
    if over := {sku: n for sku, n in left.items() if n}:
        raise UnprocessableError(
            ErrorCode.REFUND_EXCEEDS_PURCHASE, f"more units refunded than are left in the order: {over}"
        )
    return kept


def reversals(so_far: Mapping[K, int], recomputed: Mapping[K, int]) -> dict[K, int]:
    """Per rule (or campaign), the points a refund takes back: what it has given the order so
    far less what it gives what is left (never more than it gave, never negative)."""
    return {
        key: given - min(given, recomputed.get(key, 0))
        for key, given in so_far.items()
        if given - min(given, recomputed.get(key, 0)) > 0
    }


def settle(points: int, debt: int) -> tuple[int, int]:
    """A released award of `points` against the member's `debt`: (paid to the debt, minted)."""
    paid = min(points, max(debt, 0))
    return paid, points - paid
