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
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from loyalty.domain.earning.calculators import (
    MAX_POINTS,
    Calculator,
    Fixed,
    Multiplier,
    PerItem,
    PerSpend,
    Rounding,
    calculator,
)
from loyalty.domain.earning.context import Activity, Beneficiary, Line, LineKind, MemberFacts, Trigger
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
    """An activity's item lines, indexed once for every rule that looks at them (by position in
    the activity's lines; other lines are not in it), with each category's net spend and units
    added up (most rules count one category)."""

    __slots__ = (
        "_by_sku",
        "_lines",
        "by_category",
        "category_net",
        "category_quantity",
        "items",
        "items_net",
        "items_quantity",
        "nets",
        "quantities",
    )

    def __init__(self, lines: Sequence[Line]) -> None:
        items: list[int] = []
        nets: dict[int, int] = {}
        quantities: dict[int, int] = {}
        by_category: dict[str, list[int]] = {}
        category_net: dict[str, int] = {}
        category_quantity: dict[str, int] = {}
        for i, line in enumerate(lines):
            if line.kind != LineKind.ITEM:
                continue
            items.append(i)
            quantity = line.quantity
            net = quantity * line.unit_price_minor - line.discount_minor
            if net < 0:  # a discount above the price: nothing paid
                net = 0
            nets[i], quantities[i] = net, quantity
            category = line.category
            if (same_category := by_category.get(category)) is None:
                by_category[category] = [i]
                category_net[category], category_quantity[category] = net, quantity
            else:
                same_category.append(i)
                category_net[category] += net
                category_quantity[category] += quantity
        self.items, self.nets, self.quantities, self.by_category = items, nets, quantities, by_category
        self._lines = lines
        self._by_sku: dict[str, list[int]] | None = None
        self.category_net, self.category_quantity = category_net, category_quantity
        self.items_net = sum(nets.values())
        self.items_quantity = sum(quantities.values())

    @property
    def by_sku(self) -> dict[str, list[int]]:
        """The item lines by sku, indexed when first asked (few rules name skus)."""
        if self._by_sku is None:
            by_sku: dict[str, list[int]] = {}
            for i in self.items:
                by_sku.setdefault(self._lines[i].sku, []).append(i)
            self._by_sku = by_sku
        return self._by_sku

    def net(self, lines: Sequence[int]) -> int:
        if lines is self.items:
            return self.items_net
        nets = self.nets
        return sum(nets[i] for i in lines)

    def quantity(self, lines: Sequence[int]) -> int:
        if lines is self.items:
            return self.items_quantity
        quantities = self.quantities
        return sum(quantities[i] for i in lines)


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
    # time; the one category the lines must be in, when that is the only line condition; no
    # line condition at all (every item counts).
    unconditional: bool = field(init=False, repr=False, compare=False)
    only_category: str | None = field(init=False, repr=False, compare=False)
    all_items: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unconditional = not (self.tiers or self.segments or self.days_of_week or self.starts_at or self.ends_at)
        object.__setattr__(self, "unconditional", unconditional)
        only = next(iter(self.categories)) if len(self.categories) == 1 and not self.skus else None
        object.__setattr__(self, "only_category", only)
        object.__setattr__(self, "all_items", not (self.skus or self.categories))

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
    # Worked out once: whether a limit may cut its points (most rules have none).
    limited: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limited", self.limits.per_order is not None or self.limits.per_member is not None)


class Award(NamedTuple):
    """Points a rule gives, and why: the rule and version that made them, and the limit that
    cut them (`capped_by`: `per_order` or `per_member`), if one did. (A named tuple: a purchase
    makes several, and a frozen dataclass costs five times as much to build.)"""

    rule_id: int
    rule_version: int
    points: int
    reason: str
    capped_by: str | None = None


# An award built straight from its fields: a named tuple's own constructor is Python code, three
# times slower, and a purchase makes a dozen.
_award = tuple.__new__


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
    activity tries only those its lines could meet; each base rule also laid out as a step."""

    __slots__ = ("always", "by_category", "by_sku", "rules", "steps")

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.steps: list[_Step] = []
        self.always: list[int] = []  # positions of rules that need no particular line
        self.by_category: dict[str, list[int]] = {}
        self.by_sku: dict[str, list[int]] = {}

    def add(self, rule: Rule) -> None:
        position, conditions = len(self.rules), rule.conditions
        self.rules.append(rule)
        self.steps.append(_step(rule))
        if conditions.skus:  # a sku it names must be there (categories filter further)
            for sku in conditions.skus:
                self.by_sku.setdefault(sku, []).append(position)
        elif conditions.categories:
            for category in conditions.categories:
                self.by_category.setdefault(category, []).append(position)
        else:
            self.always.append(position)

    def candidates(self, categories: Iterable[str], skus: Iterable[str]) -> list[int]:
        """Positions of the rules these lines could meet, in priority order."""
        if not (self.by_category or self.by_sku):
            return list(range(len(self.rules)))
        positions = set(self.always)
        for category in categories:
            positions.update(self.by_category.get(category, ()))
        for sku in skus:
            positions.update(self.by_sku.get(sku, ()))
        return sorted(positions)

    def holding(self, positions: Iterable[int], activity: Activity, member: MemberFacts) -> list[Rule]:
        rules = self.rules
        return [
            rules[i]
            for i in positions
            if rules[i].conditions.unconditional or rules[i].conditions.hold(activity, member)
        ]

    def holding_steps(self, positions: Iterable[int], activity: Activity, member: MemberFacts) -> list[_Step]:
        rules, steps = self.rules, self.steps
        return [
            steps[i]
            for i in positions
            if rules[i].conditions.unconditional or rules[i].conditions.hold(activity, member)
        ]


class _Step(NamedTuple):
    """A base rule laid out for the engine's loop (read once per plan, not once per activity):
    which lines it counts, its minimum, a floor-rounded per-spend's, a per-item's or a fixed
    rule's numbers (0 for any other calculator), whether a limit may cut it, and whether it
    adds or competes."""

    rule: Rule
    category: str | None
    all_items: bool
    min_net: int
    per_spend: int
    per_item: int
    per_minor: int
    fixed: int
    limited: bool
    additive: bool


def _step(rule: Rule) -> _Step:
    c, calculator = rule.conditions, rule.calculator
    floor_spend = isinstance(calculator, PerSpend) and calculator.rounding is Rounding.FLOOR and calculator.points > 0
    return _Step(
        rule,
        c.only_category,
        c.all_items,
        c.min_net_minor,
        calculator.points if floor_spend else 0,  # type: ignore[union-attr]
        calculator.points if isinstance(calculator, PerItem) else 0,
        calculator.per_minor if floor_spend else 1,  # type: ignore[union-attr]
        calculator.points if isinstance(calculator, Fixed) else 0,
        rule.limited,
        rule.stacking is Stacking.ADDITIVE,
    )


class _Group:
    """The rules one trigger fires, and a plan per kind of activity: which of them could apply
    to an activity with these categories and skus, by a member of this tier and these
    segments, on this day of the week, with these of the rules' windows open. Rules that fail
    a plan's member or time conditions are never tried; a plan is worked out once per kind."""

    __slots__ = ("bases", "bounds", "days", "multipliers", "plans", "segments", "skus")
    PLANS = 4_096  # kinds of activity remembered

    def __init__(self) -> None:
        self.bases, self.multipliers = _Index(), _Index()
        self.skus = False  # whether some rule needs a sku
        self.segments = False
        self.days = False
        self.bounds: list[datetime] = []  # where the rules' windows start and end, in order
        self.plans: dict[tuple[object, ...], tuple[list[_Step], list[Rule]]] = {}

    def add(self, rule: Rule) -> None:
        (self.multipliers if isinstance(rule.calculator, Multiplier) else self.bases).add(rule)
        conditions = rule.conditions
        self.skus = self.skus or bool(conditions.skus)
        self.segments = self.segments or bool(conditions.segments)
        self.days = self.days or bool(conditions.days_of_week)
        bounds = {b for b in (conditions.starts_at, conditions.ends_at) if b is not None}
        self.bounds = sorted(set(self.bounds) | bounds)
        self.plans.clear()

    def plan(self, basket: Basket, activity: Activity, member: MemberFacts) -> tuple[list[_Step], list[Rule]]:
        """The base rules (as steps) and multipliers that could apply, in priority order."""
        at = activity.occurred_at
        categories = frozenset(basket.by_category)
        skus = frozenset(basket.by_sku) if self.skus else frozenset()
        key = (
            categories,
            skus,
            member.tier,
            member.segments if self.segments else None,
            at.isoweekday() if self.days else 0,
            bisect_right(self.bounds, at) if self.bounds else 0,  # between the same bounds, the same windows are open
        )
        found = self.plans.get(key)
        if found is None:
            bases, multipliers = self.bases, self.multipliers
            found = (
                bases.holding_steps(bases.candidates(categories, skus), activity, member),
                multipliers.holding(multipliers.candidates(categories, skus), activity, member),
            )
            if len(self.plans) >= self.PLANS:
                self.plans.clear()
            self.plans[key] = found
        return found


class Evaluation(NamedTuple):
    """What rules gave an activity: the awards, the item lines each awarding rule counted (by
    rule id), the activity's basket and the rules (campaigns look at the same lines)."""

    awards: list[Award]
    lines: dict[int, list[int]]
    basket: Basket
    rules: RuleSet

    def given_to(self, lines: Sequence[int]) -> int:
        """What the rules gave these item lines: an award whose lines are all among them counts
        whole; one that counted some of them, its calculator's points for those (no more than
        it gave); a fixed award counting others too, nothing."""
        basket = self.basket
        if len(lines) == len(basket.items):
            return sum(award.points for award in self.awards)
        net, quantity = basket.net(lines), basket.quantity(lines)
        # When `lines` are one category's (the basket's own list), another category's lines
        # share none of them.
        categories = {id(same) for same in basket.by_category.values()}
        disjoint = categories if id(lines) in categories else set()
        eligible: set[int] | None = None
        given = 0
        for award in self.awards:
            counted = self.lines[award.rule_id]
            if counted is lines:  # the same category's lines (the basket's own list)
                given += award.points
                continue
            if counted is basket.items:  # it counted every eligible line, and others
                shared_net, shared_quantity = net, quantity
            elif id(counted) in disjoint:
                continue
            else:
                eligible = set(lines) if eligible is None else eligible
                shared = [i for i in counted if i in eligible]
                if not shared:
                    continue
                if len(shared) == len(counted):
                    given += award.points
                    continue
                shared_net, shared_quantity = basket.net(shared), basket.quantity(shared)
            calculator = self.rules.by_id[award.rule_id].calculator
            if isinstance(calculator, Multiplier):
                base = self.rules.by_id[calculator.rule_id].calculator
                assert not isinstance(base, Multiplier)
                part = calculator.extra_for(base.points_for(shared_net, shared_quantity))
            elif isinstance(calculator, Fixed):
                continue
            else:
                part = calculator.points_for(shared_net, shared_quantity)
            given += min(part, award.points)
        return given


def evaluate(
    activity: Activity,
    member: MemberFacts,
    rules: Sequence[Rule] | RuleSet,
    earned_this_period: Mapping[int, int] | None = None,
) -> list[Award]:
    """The awards `activity` earns `member` under `rules` (see `evaluate_lines`)."""
    return evaluate_lines(activity, member, rules, earned_this_period).awards


def evaluate_lines(
    activity: Activity,
    member: MemberFacts,
    rules: Sequence[Rule] | RuleSet,
    earned_this_period: Mapping[int, int] | None = None,
) -> Evaluation:
    """The awards `activity` earns `member` under `rules` (active ones), and the lines each
    counted: base rules in priority order, then multipliers. `earned_this_period` holds what
    each rule already gave the member in its limit's period. Pass a `RuleSet` to price many
    activities against the same rules.

    A multiplier multiplies what its base rule awarded: nothing for a base that gave nothing
    (its limit reached, or beaten under `best_of`), and no more than a capped base gave."""
    ruleset = rules if isinstance(rules, RuleSet) else RuleSet(rules)
    basket = Basket(activity.lines)
    group = ruleset.groups.get((activity.trigger, activity.event_type))
    if group is None:
        return Evaluation([], {}, basket, ruleset)
    earned = earned_this_period or {}
    by_category = basket.by_category
    counted: dict[int, list[int]] = {}  # base rule id -> the lines it counted
    awards: list[Award] = []
    best: Award | None = None  # of the best_of base rules; the first of equals keeps it
    best_at = 0
    bases, multipliers = group.plan(basket, activity, member)
    items, items_net, items_quantity = basket.items, basket.items_net, basket.items_quantity
    category_net, category_quantity = basket.category_net, basket.category_quantity
    best_points = 0
    lines: list[int] | None
    for rule, category, all_items, min_net, per_spend, per_item, per_minor, fixed, limited, additive in bases:
        if fixed and not additive and best is not None and fixed <= best_points:
            continue  # a fixed best_of rule that cannot win: not even its lines are looked at
        if all_items:
            lines, net, quantity = items, items_net, items_quantity
        elif category is not None:  # the commonest line condition: added up in the basket already
            lines = by_category.get(category)
            if lines is None:
                continue
            net, quantity = category_net[category], category_quantity[category]
        else:
            lines = rule.conditions.matched(basket)
            if lines is None:
                continue
            if lines is items:
                net, quantity = items_net, items_quantity
            else:
                net, quantity = basket.net(lines), basket.quantity(lines)
        if net < min_net:
            continue
        if per_spend:
            points = net * per_spend // per_minor
        elif per_item:
            points = per_item * quantity
        elif fixed:
            points = fixed
        else:
            points = rule.calculator.points_for(net, quantity)  # type: ignore[union-attr]
        if points <= 0 or (not additive and best is not None and points <= best_points):
            continue  # nothing, or a best_of rule that cannot win (limits only cut)
        if limited:  # `_limited`, written out: a quarter of the rules have a limit
            per_order, per_member = rule.limits.per_order, rule.limits.per_member
            capped_by = None
            if per_order is not None and points > per_order:
                points, capped_by = per_order, "per_order"
            if per_member is not None and points > (room := per_member - earned.get(rule.id, 0)):
                points, capped_by = room, "per_member"
            if points <= 0:
                continue
            award = _award(Award, (rule.id, rule.version, points, rule.name, capped_by))
        else:
            award = _award(Award, (rule.id, rule.version, points, rule.name, None))
        counted[rule.id] = lines
        if additive:
            awards.append(award)
        elif best is None or award.points > best_points:
            best, best_at, best_points = award, len(awards), award.points
    if best is not None:
        awards.insert(best_at, best)
    if not multipliers:
        return Evaluation(awards, _awarded(counted, awards), basket, ruleset)
    given = {award.rule_id: award.points for award in awards}  # what each base rule awarded
    for rule in multipliers:
        multiplier = rule.calculator
        assert isinstance(multiplier, Multiplier)
        base_lines = counted.get(multiplier.rule_id)
        if multiplier.rule_id not in given or base_lines is None:
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
        extra = _limited(rule, multiplier.extra_for(base_points), earned)
        if extra is not None:
            awards.append(extra)
            counted[rule.id] = shared
    return Evaluation(awards, _awarded(counted, awards), basket, ruleset)


def _awarded(counted: dict[int, list[int]], awards: Sequence[Award]) -> dict[int, list[int]]:
    """The lines of the rules that awarded (a best_of rule that lost counted its lines too)."""
    return counted if len(counted) == len(awards) else {a.rule_id: counted[a.rule_id] for a in awards}


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
