"""Calculators: how many points a rule gives for the lines it matched (their net spend and
units). A registry of strategies
chosen by name in a rule's JSON (`fixed`, `per_spend`, `per_item`, `multiplier`); integers and
integer ratios only, each rounding stated (floor unless the rule says otherwise)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loyalty.errors import ErrorCode, UnprocessableError

MAX_POINTS = 2**63 - 1  # what a database column and the API's integers hold


class Rounding(enum.StrEnum):
    FLOOR = "floor"
    CEIL = "ceil"
    HALF_UP = "half_up"


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """`numerator / denominator` (both ≥ 0, denominator > 0) rounded as stated, exactly."""
    quotient, remainder = divmod(numerator, denominator)
    if rounding == Rounding.CEIL and remainder:
        return quotient + 1
    if rounding == Rounding.HALF_UP and 2 * remainder >= denominator:
        return quotient + 1
    return quotient


@dataclass(frozen=True)
class Fixed:
    """`points` once, whatever was bought (an enrolment bonus, a review written)."""

    points: int

    def points_for(self, net_minor: int, quantity: int) -> int:
        return self.points


@dataclass(frozen=True)
class PerSpend:
    """`points` per `per_minor` minor units of net spend on the matched item lines (1 point per
    dollar: points 1, per_minor 100)."""

    points: int
    per_minor: int
    rounding: Rounding = Rounding.FLOOR

    def points_for(self, net_minor: int, quantity: int) -> int:
        return divide(net_minor * self.points, self.per_minor, self.rounding)


@dataclass(frozen=True)
class PerItem:
    """`points` per unit bought of the matched item lines."""

    points: int

    def points_for(self, net_minor: int, quantity: int) -> int:
        return self.points * quantity


@dataclass(frozen=True)
class Multiplier:
    """Over another rule (`rule_id`): the matched lines earn `numerator / denominator` times what
    that rule gives them, so this rule adds the difference ("2x on pastries": 2/1 adds as much
    again). Applies only where that rule applies."""

    rule_id: int
    numerator: int
    denominator: int
    rounding: Rounding = Rounding.FLOOR

    def extra_for(self, base_points: int) -> int:
        return max(0, divide(base_points * self.numerator, self.denominator, self.rounding) - base_points)


Calculator = Fixed | PerSpend | PerItem | Multiplier


def _count(spec: Mapping[str, Any], name: str, minimum: int = 0) -> int:
    value = spec.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_POINTS:
        raise _invalid(f"calculator `{name}` must be an integer from {minimum} to {MAX_POINTS}, not {value!r}")
    return value


def _rounding(spec: Mapping[str, Any]) -> Rounding:
    try:
        return Rounding(spec.get("rounding", Rounding.FLOOR))
    except ValueError:
        raise _invalid(f"rounding must be one of {', '.join(Rounding)}, not {spec.get('rounding')!r}") from None


STRATEGIES: dict[str, Callable[[Mapping[str, Any]], Calculator]] = {
    "fixed": lambda spec: Fixed(_count(spec, "points")),
    "per_spend": lambda spec: PerSpend(_count(spec, "points"), _count(spec, "per_minor", 1), _rounding(spec)),
    "per_item": lambda spec: PerItem(_count(spec, "points")),
    "multiplier": lambda spec: Multiplier(
        _count(spec, "rule_id", 1), _count(spec, "numerator"), _count(spec, "denominator", 1), _rounding(spec)
    ),
}


def calculator(spec: Mapping[str, Any]) -> Calculator:
    """The calculator a rule's JSON names (`{"strategy": "per_spend", "points": 1, ...}`)."""
    strategy = spec.get("strategy")
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise _invalid(f"calculator strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    return STRATEGIES[strategy](spec)


def _invalid(detail: str) -> UnprocessableError:
    return UnprocessableError(ErrorCode.INVALID_RULE, detail)
