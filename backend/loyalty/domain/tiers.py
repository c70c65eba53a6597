"""Tiers: a ladder qualified by a metric over a rolling window, with an earning multiplier and
benefits per tier; the rules for going up (at once), going down (at the anniversary review, or
at once, one step or straight to what the metric earns), and a paid tier beside the earned one.

Pure: the service hands in the member's metric value and its current tier."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loyalty.errors import ErrorCode, UnprocessableError


class Metric(enum.StrEnum):
    NET_SPEND = "net_spend"  # minor units of net item spend
    POINTS_EARNED = "points_earned"


class Downgrade(enum.StrEnum):
    ONE_DOWN = "one_down"  # at most one step down per review
    RECOMPUTE = "recompute"  # straight to the tier the metric earns


class Review(enum.StrEnum):
    ANNIVERSARY = "anniversary"  # a tier is kept until a year after it was reached or last kept
    REAL_TIME = "real_time"  # as soon as the metric falls short


@dataclass(frozen=True)
class Tier:
    """A rung: reached at `threshold` of the metric; earns `multiplier_numerator /
    multiplier_denominator` times the rules' points."""

    name: str
    threshold: int
    multiplier_numerator: int = 1
    multiplier_denominator: int = 1
    benefits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ladder:
    tiers: tuple[Tier, ...]  # ascending thresholds
    metric: Metric = Metric.NET_SPEND
    window_days: int = 365
    downgrade: Downgrade = Downgrade.ONE_DOWN
    review: Review = Review.ANNIVERSARY

    def index(self, name: str | None) -> int:
        """The rung of `name`; -1 below the ladder (or a tier no longer on it)."""
        return next((i for i, tier in enumerate(self.tiers) if tier.name == name), -1)

    def get(self, name: str | None) -> Tier | None:
        i = self.index(name)
        return self.tiers[i] if i >= 0 else None

    def qualified(self, value: int) -> Tier | None:
        """The highest tier `value` reaches."""
        return next((tier for tier in reversed(self.tiers) if value >= tier.threshold), None)


def next_tier(ladder: Ladder, value: int, current: str | None, *, at_review: bool) -> str | None:
    """The member's earned tier once `value` is known: up at once to what the value reaches; down
    only when reviewed (the anniversary, or always in real time), one step or straight down."""
    qualified = ladder.index(q.name if (q := ladder.qualified(value)) else None)
    held = ladder.index(current)
    if qualified >= held:
        return ladder.tiers[qualified].name if qualified >= 0 else None
    if ladder.review == Review.ANNIVERSARY and not at_review:
        return current
    lower = max(qualified, held - 1) if ladder.downgrade == Downgrade.ONE_DOWN else qualified
    return ladder.tiers[lower].name if lower >= 0 else None


def effective(ladder: Ladder, earned: str | None, paid: str | None) -> str | None:
    """The higher of the earned tier and a paid one."""
    return paid if ladder.index(paid) > ladder.index(earned) else earned


@dataclass(frozen=True)
class Standing:
    """Why a member has its tier, so the member or an auditor can check it."""

    tier: str | None
    metric: Metric
    value: int
    threshold: int | None  # the tier's
    points_required_to_remain: int  # more of the metric before the next review keeps the tier
    next_tier: str | None
    required_for_next: int | None
    next_review_at: datetime | None


def standing(ladder: Ladder, tier: str | None, value: int, next_review_at: datetime | None) -> Standing:
    held = ladder.get(tier)
    above = ladder.tiers[ladder.index(tier) + 1] if ladder.index(tier) + 1 < len(ladder.tiers) else None
    return Standing(
        tier=tier,
        metric=ladder.metric,
        value=value,
        threshold=held.threshold if held else None,
        points_required_to_remain=max(0, held.threshold - value) if held else 0,
        next_tier=above.name if above else None,
        required_for_next=max(0, above.threshold - value) if above else None,
        next_review_at=next_review_at,
    )


def multiplied(ladder: Ladder, tier: str | None, points: int) -> int:
    """The extra points a tier's multiplier adds to `points` (rounded down)."""
    held = ladder.get(tier)
    if held is None:
        return 0
    return max(0, points * held.multiplier_numerator // held.multiplier_denominator - points)


def ladder_from_definition(definition: Mapping[str, Any]) -> Ladder:
    """A ladder from its stored JSON (the API checked its shape; this, what a shape cannot)."""
    tiers = tuple(
        Tier(
            name=str(t["name"]),
            threshold=int(t["threshold"]),
            multiplier_numerator=int(t.get("multiplier_numerator", 1)),
            multiplier_denominator=int(t.get("multiplier_denominator", 1)),
            benefits=tuple(t.get("benefits", ())),
        )
        for t in definition.get("tiers", ())
    )
    _check(tiers)
    try:
        return Ladder(
            tiers=tiers,
            metric=Metric(definition.get("metric", Metric.NET_SPEND)),
            window_days=int(definition.get("window_days", 365)),
            downgrade=Downgrade(definition.get("downgrade", Downgrade.ONE_DOWN)),
            review=Review(definition.get("review", Review.ANNIVERSARY)),
        )
    except ValueError as exc:
        raise UnprocessableError(ErrorCode.INVALID_LADDER, str(exc)) from None


def _check(tiers: Sequence[Tier]) -> None:
    if not tiers:
        raise UnprocessableError(ErrorCode.INVALID_LADDER, "a ladder has at least one tier")
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise UnprocessableError(ErrorCode.INVALID_LADDER, f"tier names repeat: {names}")
    thresholds = [t.threshold for t in tiers]
    if thresholds != sorted(set(thresholds)) or thresholds[0] < 0:
        raise UnprocessableError(
            ErrorCode.INVALID_LADDER, f"thresholds must rise from the first tier up, from 0: {thresholds}"
        )
    for t in tiers:
        if t.multiplier_denominator < 1 or t.multiplier_numerator < t.multiplier_denominator:
            raise UnprocessableError(
                ErrorCode.INVALID_LADDER, f"tier {t.name}'s multiplier must be at least 1 (a whole ratio)"
            )
