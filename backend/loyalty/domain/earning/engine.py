"""The rules engine: which rules an activity triggers, and the awards they make.

A rule is declarative JSON, versioned by the service (no code from users): a trigger,
conditions on the lines and the member, a calculator (`calculators.STRATEGIES`), a priority,
a stacking mode and limits. `evaluate` is a pure function of the activity, the member's facts,
the rules and what each rule already gave the member this period, so `POST /v1/rules/simulate`
and the real purchase compute the same awards.

Stacking: every `additive` rule that applies adds its points; of the `best_of` rules that apply,
only the one giving most counts (ties: higher priority, then lower id). A multiplier adds to
the base rule it multiplies, so it always stacks (a `best_of` multiplier stored before 0.4
counts as additive). Limits cap each rule's points per order and per member per period,
before stacking compares them."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from loyalty.domain.earning.calculators import MAX_POINTS, Calculator, Multiplier, PerItem, calculator
from loyalty.domain.earning.context import Activity, Beneficiary, LineKind, MemberFacts, Trigger
from loyalty.errors import ErrorCode, UnprocessableError


class Stacking(enum.StrEnum):
    ADDITIVE = "additive"
    BEST_OF = "best_of"


class Period(enum.StrEnum):
    """A per-member limit's period: calendar periods in the member's own time (the activity's
    offset; weeks start on Monday)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


def period_start(at: datetime, period: Period) -> datetime:
    """The start of the calendar period holding `at`, in `at`'s own offset (the member's day,
    not UTC's)."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period == Period.MONTH:
        return day.replace(day=1)
    if period == Period.YEAR:
        return day.replace(month=1, day=1)
    return day


def period_of(at: datetime, period: Period) -> tuple[datetime, datetime]:
    """The calendar period holding `at`, as [start, end)."""
    start = period_start(at, period)
    return start, period_end(start, period)


def period_end(start: datetime, period: Period) -> datetime:
    """Where the period starting at `start` (from `period_start`) ends."""
    if period == Period.DAY:
        return start + timedelta(days=1)
    if period == Period.WEEK:
        return start + timedelta(days=7)
    if period == Period.MONTH:
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


class Basket:
    """An activity's item lines, indexed once for every rule that looks at them."""

    __slots__ = ("by_category", "by_sku", "items", "items_net", "items_quantity", "nets", "quantities")

    def __init__(self, activity: Activity) -> None:
        self.items: list[int] = []
        self.nets: dict[int, int] = {}
        self.quantities: dict[int, int] = {}
        self.by_sku: dict[str, list[int]] = {}
        self.by_category: dict[str, list[int]] = {}
        for i, line in enumerate(activity.lines):
            if line.kind != LineKind.ITEM:
                continue
            self.items.append(i)
            self.nets[i], self.quantities[i] = line.net_minor, line.quantity
            self.by_sku.setdefault(line.sku, []).append(i)
            self.by_category.setdefault(line.category, []).append(i)
        self.items_net = sum(self.nets.values())
        self.items_quantity = sum(self.quantities.values())

    def net(self, lines: Sequence[int]) -> int:
        return sum(self.nets[i] for i in lines) if lines is not self.items else self.items_net

    def quantity(self, lines: Sequence[int]) -> int:
        return sum(self.quantities[i] for i in lines) if lines is not self.items else self.items_quantity


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
    # Worked out once (the engine asks every activity): no condition on the member or the
    # time; the one category the lines must be in, when that is the only line condition.
    unconditional: bool = field(init=False, repr=False, compare=False)
    only_category: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unconditional = not (self.tiers or self.segments or self.days_of_week or self.starts_at or self.ends_at)
        object.__setattr__(self, "unconditional", unconditional)
        only = next(iter(self.categories)) if len(self.categories) == 1 and not self.skus else None
        object.__setattr__(self, "only_category", only)

    def matched(self, basket: Basket) -> list[int] | None:
        """Indexes of the item lines counted, or None if the rule does not apply."""
        if self.only_category is not None:
            found = basket.by_category.get(self.only_category)
            if found is None:
                return None
            lines = found
        elif self.skus or self.categories:
            lines = sorted(
                {i for sku in self.skus for i in basket.by_sku.get(sku, ())}
                | {i for category in self.categories for i in basket.by_category.get(category, ())}
                if not (self.skus and self.categories)
                else {i for sku in self.skus for i in basket.by_sku.get(sku, ())}
                & {i for category in self.categories for i in basket.by_category.get(category, ())}
            )
            if not lines:
                return None
        else:
            lines = basket.items
        if self.min_net_minor and basket.net(lines) < self.min_net_minor:
            return None
        return lines

    def hold(self, activity: Activity, member: MemberFacts) -> bool:
        if self.unconditional:
            return True
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
    event_type: str | None = None  # which custom events (`event`), or whom it rewards (`referral`)
    priority: int = 0
    stacking: Stacking = Stacking.ADDITIVE
    limits: Limits = Limits()


class Award(NamedTuple):
    """Points a rule gives, and why: the rule and version that made them, and the limit that
    cut them (`capped_by`: `per_order` or `per_member`), if one did. (A named tuple: a purchase
    makes several, and a frozen dataclass costs five times as much to build.)"""

    rule_id: int
    rule_version: int
    points: int
    reason: str
    capped_by: str | None = None


class RuleSet:
    """Rules compiled for evaluating many activities: grouped by what triggers them, in
    priority order (higher first, then lower id), base rules before multipliers, and base rules
    indexed by the categories and skus they need, so an activity only tries those its lines
    could meet."""

    __slots__ = ("by_id", "groups")

    def __init__(self, rules: Sequence[Rule]) -> None:
        ordered = sorted(rules, key=lambda r: (-r.priority, r.id))
        self.by_id = {rule.id: rule for rule in ordered}
        self.groups: dict[tuple[Trigger, str | None], _Group] = {}
        for rule in ordered:
            self.groups.setdefault((rule.trigger, rule.event_type), _Group()).add(rule)


class _Index:
    """Rules in priority order, indexed by the line they need (a sku, else a category), so an
    activity tries only those its lines could meet."""

    __slots__ = ("always", "by_category", "by_sku", "rules")

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.always: list[int] = []  # positions of rules that need no particular line
        self.by_category: dict[str, list[int]] = {}
        self.by_sku: dict[str, list[int]] = {}

    def add(self, rule: Rule) -> None:
        position, conditions = len(self.rules), rule.conditions
        self.rules.append(rule)
        if conditions.skus:  # a sku it names must be there (categories filter further)
            for sku in conditions.skus:
                self.by_sku.setdefault(sku, []).append(position)
        elif conditions.categories:
            for category in conditions.categories:
                self.by_category.setdefault(category, []).append(position)
        else:
            self.always.append(position)

    def candidates(self, basket: Basket) -> list[Rule]:
        if not (self.by_category or self.by_sku):
            return self.rules
        positions = set(self.always)
        for category in basket.by_category:
            positions.update(self.by_category.get(category, ()))
        for sku in basket.by_sku:
            positions.update(self.by_sku.get(sku, ()))
        return [self.rules[i] for i in sorted(positions)]


class _Group:
    __slots__ = ("bases", "multipliers")

    def __init__(self) -> None:
        self.bases, self.multipliers = _Index(), _Index()

    def add(self, rule: Rule) -> None:
        (self.multipliers if isinstance(rule.calculator, Multiplier) else self.bases).add(rule)


def evaluate(
    activity: Activity,
    member: MemberFacts,
    rules: Sequence[Rule] | RuleSet,
    earned_this_period: Mapping[int, int] | None = None,
) -> list[Award]:
    """The awards `activity` earns `member` under `rules` (active ones): base rules in priority
    order, then multipliers. `earned_this_period` holds what each rule already gave the member
    in its limit's period. Pass a `RuleSet` to price many activities against the same rules.

    A multiplier multiplies what its base rule awarded: nothing for a base that gave nothing
    (its limit reached, or beaten under `best_of`), and no more than a capped base gave."""
    ruleset = rules if isinstance(rules, RuleSet) else RuleSet(rules)
    group = ruleset.groups.get((activity.trigger, activity.event_type))
    if group is None:
        return []
    earned = earned_this_period or {}
    basket = Basket(activity)
    counted: dict[int, list[int]] = {}  # base rule id -> the lines it counted
    awards: list[Award] = []
    best: Award | None = None  # of the best_of base rules; the first of equals keeps it
    best_at = 0
    for rule in group.bases.candidates(basket):
        conditions = rule.conditions
        if not (conditions.unconditional or conditions.hold(activity, member)):
            continue
        lines = conditions.matched(basket)
        if lines is None:
            continue
        calculator = rule.calculator
        points = (
            calculator.points * basket.quantity(lines)
            if isinstance(calculator, PerItem)
            else calculator.points_for(basket.net(lines), 0)  # type: ignore[union-attr]
        )
        award = _limited(rule, points, earned)
        if award is None:
            continue
        counted[rule.id] = lines
        if rule.stacking == Stacking.ADDITIVE:
            awards.append(award)
        elif best is None or award.points > best.points:
            best, best_at = award, len(awards)
    if best is not None:
        awards.insert(best_at, best)
    given = {award.rule_id: award.points for award in awards}  # what each base rule awarded
    for rule in group.multipliers.candidates(basket):
        multiplier = rule.calculator
        assert isinstance(multiplier, Multiplier)
        base_lines = counted.get(multiplier.rule_id)
        if multiplier.rule_id not in given or base_lines is None:
            continue
        if not (rule.conditions.unconditional or rule.conditions.hold(activity, member)):
            continue
        lines = rule.conditions.matched(basket)
        if lines is None:
            continue
        shared = lines if lines is base_lines else [i for i in lines if i in set(base_lines)]
        if not shared:
            continue
        base = ruleset.by_id[multiplier.rule_id].calculator
        assert not isinstance(base, Multiplier)  # `counted` holds no multiplier
        base_points = min(given[multiplier.rule_id], base.points_for(basket.net(shared), basket.quantity(shared)))
        award = _limited(rule, multiplier.extra_for(base_points), earned)
        if award is not None:
            awards.append(award)
    return awards


def _limited(rule: Rule, points: int, earned: Mapping[int, int]) -> Award | None:
    """The rule's award once its limits cut it; None for no points."""
    limits, capped_by = rule.limits, None
    if limits.per_order is not None and points > limits.per_order:
        points, capped_by = limits.per_order, "per_order"
    if limits.per_member is not None and points > max(0, limits.per_member - earned.get(rule.id, 0)):
        points, capped_by = max(0, limits.per_member - earned.get(rule.id, 0)), "per_member"
    return Award(rule.id, rule.version, points, rule.name, capped_by) if points > 0 else None


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
    beneficiary = definition.get("beneficiary")
    if trigger == Trigger.REFERRAL:
        if beneficiary not in set(Beneficiary):
            raise _invalid(f"a `referral` rule names its `beneficiary`: `referrer` or `friend`, not {beneficiary!r}")
        event_type = beneficiary  # a referral is two activities: the referrer's and the friend's
    elif beneficiary is not None:
        raise _invalid("only a `referral` rule names a `beneficiary`")
    days = frozenset(conditions.get("days_of_week") or ())
    if not days <= set(range(1, 8)):
        raise _invalid(f"days_of_week are ISO days, 1 (Monday) to 7, not {sorted(days)}")
    starts_at, ends_at = parse_time(conditions.get("starts_at")), parse_time(conditions.get("ends_at"))
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


def parse_time(value: Any) -> datetime | None:
    """A stored ISO 8601 time (UTC when it names no offset)."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise _invalid(f"{value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _invalid(detail: str) -> UnprocessableError:
    return UnprocessableError(ErrorCode.INVALID_RULE, detail)
