"""The rules engine: which rules an activity triggers, and the awards they make.

A rule is declarative JSON, versioned by the service (no code from users): a trigger,
conditions on the lines and the member, a calculator (`calculators.STRATEGIES`), a priority,
a stacking mode and limits. `evaluate` is a pure function of the activity, the member's facts,
the rules and what each rule already gave the member this period, so `POST /v1/rules/simulate`
and the real purchase compute the same awards.

Stacking: every `additive` rule that applies adds its points; of the `best_of` rules that apply,
only the one giving most counts (ties: higher priority, then lower id). Limits cap each rule's
points per order and per member per period, before stacking compares them."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loyalty.domain.earning.calculators import MAX_POINTS, Calculator, Multiplier, calculator
from loyalty.domain.earning.context import Activity, LineKind, MemberFacts, Trigger
from loyalty.errors import ErrorCode, UnprocessableError


class Stacking(enum.StrEnum):
    ADDITIVE = "additive"
    BEST_OF = "best_of"


class Period(enum.StrEnum):
    """A per-member limit's period: calendar periods in UTC (weeks start on Monday)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


def period_start(at: datetime, period: Period) -> datetime:
    """The start (UTC) of the period holding `at`."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period == Period.MONTH:
        return day.replace(day=1)
    if period == Period.YEAR:
        return day.replace(month=1, day=1)
    return day


@dataclass(frozen=True)
class Conditions:
    """When a rule applies; an empty condition holds always. Line conditions (`skus`,
    `categories`) pick the item lines the rule counts, and it applies only if one matches;
    `min_net_minor` is on those lines; `segments` hold if the member has any of them;
    `days_of_week` are ISO (1 is Monday) in the activity's own offset."""

    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    min_net_minor: int = 0
    tiers: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    days_of_week: frozenset[int] = frozenset()
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def matched(self, activity: Activity) -> list[int] | None:
        """Indexes of the item lines counted, or None if the rule does not apply."""
        lines = [
            i
            for i, line in enumerate(activity.lines)
            if line.kind == LineKind.ITEM
            and (not self.skus or line.sku in self.skus)
            and (not self.categories or line.category in self.categories)
        ]
        if (self.skus or self.categories) and not lines:
            return None
        if sum(activity.lines[i].net_minor for i in lines) < self.min_net_minor:
            return None
        return lines

    def hold(self, activity: Activity, member: MemberFacts) -> bool:
        at = activity.occurred_at
        return (
            (not self.tiers or member.tier in self.tiers)
            and (not self.segments or bool(self.segments & member.segments))
            and (not self.days_of_week or at.isoweekday() in self.days_of_week)
            and (self.starts_at is None or at >= self.starts_at)
            and (self.ends_at is None or at < self.ends_at)
        )


@dataclass(frozen=True)
class Limits:
    """The most a rule gives per order, and per member per period (None: no limit)."""

    per_order: int | None = None
    per_member: int | None = None
    period: Period = Period.MONTH


@dataclass(frozen=True)
class Rule:
    id: int
    version: int
    name: str
    trigger: Trigger
    calculator: Calculator
    conditions: Conditions = Conditions()
    event_type: str | None = None  # for the `event` trigger: which custom events
    priority: int = 0
    stacking: Stacking = Stacking.ADDITIVE
    limits: Limits = Limits()


@dataclass(frozen=True)
class Award:
    """Points a rule gives, and why: the rule and version that made them, and the limit that
    cut them (`capped_by`: `per_order` or `per_member`), if one did."""

    rule_id: int
    rule_version: int
    points: int
    reason: str
    capped_by: str | None = None


def evaluate(
    activity: Activity, member: MemberFacts, rules: Sequence[Rule], earned_this_period: Mapping[int, int] | None = None
) -> list[Award]:
    """The awards `activity` earns `member` under `rules` (active ones), in priority order.
    `earned_this_period` holds what each rule already gave the member in its limit's period."""
    earned = earned_this_period or {}
    ordered = sorted(
        (r for r in rules if r.trigger == activity.trigger and r.event_type == activity.event_type),
        key=lambda r: (-r.priority, r.id),
    )
    counted: dict[int, list[int]] = {}  # base rule id -> the lines it counted
    raw: list[tuple[Rule, int]] = []
    for rule in ordered:
        if isinstance(rule.calculator, Multiplier):
            continue
        lines = rule.conditions.matched(activity)
        if lines is None or not rule.conditions.hold(activity, member):
            continue
        counted[rule.id] = lines
        raw.append((rule, rule.calculator.points_for([activity.lines[i] for i in lines])))
    by_id = {rule.id: rule for rule in ordered}
    for rule in ordered:
        multiplier = rule.calculator
        if not isinstance(multiplier, Multiplier) or multiplier.rule_id not in counted:
            continue
        lines = rule.conditions.matched(activity)
        if lines is None or not rule.conditions.hold(activity, member):
            continue
        shared = [activity.lines[i] for i in lines if i in set(counted[multiplier.rule_id])]
        if not shared:
            continue
        base = by_id[multiplier.rule_id].calculator
        assert not isinstance(base, Multiplier)  # `counted` holds no multiplier
        raw.append((rule, multiplier.extra_for(base.points_for(shared))))
    awards = [(rule, _limited(rule, points, earned.get(rule.id, 0))) for rule, points in raw]
    best = max(
        (award for rule, award in awards if rule.stacking == Stacking.BEST_OF),
        key=lambda award: award.points,
        default=None,
    )  # max keeps the first of equals: the higher priority, then the lower id
    return [
        award for rule, award in awards if award.points > 0 and (rule.stacking == Stacking.ADDITIVE or award is best)
    ]


def _limited(rule: Rule, points: int, earned: int) -> Award:
    capped_by = None
    if rule.limits.per_order is not None and points > rule.limits.per_order:
        points, capped_by = rule.limits.per_order, "per_order"
    if rule.limits.per_member is not None and points > max(0, rule.limits.per_member - earned):
        points, capped_by = max(0, rule.limits.per_member - earned), "per_member"
    return Award(rule.id, rule.version, points, rule.name, capped_by)


def total(awards: Sequence[Award]) -> int:
    return sum(award.points for award in awards)


# ------------------------------------------------------------------------ rules from JSON
def rule_from_definition(rule_id: int, version: int, definition: Mapping[str, Any]) -> Rule:
    """A rule from its stored JSON definition (the API checked its shape; this checks what a
    shape cannot: known strategies and values in range). Refusals are `422 invalid_rule`."""
    conditions = definition.get("conditions") or {}
    limits = definition.get("limits") or {}
    try:
        trigger = Trigger(definition.get("trigger", Trigger.PURCHASE))
        stacking = Stacking(definition.get("stacking", Stacking.ADDITIVE))
        period = Period(limits.get("period", Period.MONTH))
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    event_type = definition.get("event_type")
    if (trigger == Trigger.EVENT) != (event_type is not None):
        raise _invalid("an `event` rule names its `event_type`, and only an event rule does")
    days = frozenset(conditions.get("days_of_week") or ())
    if not days <= set(range(1, 8)):
        raise _invalid(f"days_of_week are ISO days, 1 (Monday) to 7, not {sorted(days)}")
    starts_at, ends_at = _time(conditions.get("starts_at")), _time(conditions.get("ends_at"))
    if starts_at and ends_at and starts_at >= ends_at:
        raise _invalid("the rule's window ends before it starts")
    built = Rule(
        id=rule_id,
        version=version,
        name=str(definition.get("name", "")),
        trigger=trigger,
        calculator=calculator(definition.get("calculator") or {}),
        conditions=Conditions(
            skus=frozenset(conditions.get("skus") or ()),
            categories=frozenset(conditions.get("categories") or ()),
            min_net_minor=_bounded(conditions.get("min_net_minor", 0), "min_net_minor"),
            tiers=frozenset(conditions.get("tiers") or ()),
            segments=frozenset(conditions.get("segments") or ()),
            days_of_week=days,
            starts_at=starts_at,
            ends_at=ends_at,
        ),
        event_type=event_type,
        priority=_bounded(definition.get("priority", 0), "priority"),
        stacking=stacking,
        limits=Limits(
            per_order=_optional(limits.get("per_order"), "per_order"),
            per_member=_optional(limits.get("per_member"), "per_member"),
            period=period,
        ),
    )
    if isinstance(built.calculator, Multiplier) and built.calculator.rule_id == rule_id:
        raise _invalid("a multiplier rule multiplies another rule, not itself")
    return built


def _bounded(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_POINTS:
        raise _invalid(f"`{name}` must be an integer from 0 to {MAX_POINTS}, not {value!r}")
    return value


def _optional(value: Any, name: str) -> int | None:
    return None if value is None else _bounded(value, name)


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise _invalid(f"{value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _invalid(detail: str) -> UnprocessableError:
    return UnprocessableError(ErrorCode.INVALID_RULE, detail)
