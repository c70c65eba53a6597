"""The rules engine, as pure logic: every strategy, condition, limit and stacking mode, and
properties over random purchases and rules (Hypothesis)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.earning.calculators import Fixed, Multiplier, PerItem, PerSpend, Rounding, divide
from loyalty.domain.earning.context import Activity, Line, LineKind, MemberFacts, Trigger
from loyalty.domain.earning.engine import (
    Conditions,
    Limits,
    Period,
    Rule,
    RuleSet,
    Stacking,
    evaluate,
    period_start,
    rule_from_definition,
    total,
)
from loyalty.domain.earning.refunds import RefundLine, remaining, reversals
from loyalty.errors import UnprocessableError

MONDAY = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
NOBODY = MemberFacts()


def _purchase(*lines: Line, at: datetime = MONDAY) -> Activity:
    return Activity(Trigger.PURCHASE, at, lines)


def _rule(rule_id: int, calculator, **extra) -> Rule:
    return Rule(rule_id, 1, f"rule {rule_id}", Trigger.PURCHASE, calculator, **extra)


COFFEE = Line("latte", "drinks", 2, 450)  # 9.00
CROISSANT = Line("croissant", "pastries", 1, 325, discount_minor=25)  # 3.00 net
SHIPPING = Line("ship", "delivery", 1, 500, kind=LineKind.SHIPPING)


@pytest.mark.parametrize(
    ("numerator", "denominator", "rounding", "expected"),
    [(7, 2, Rounding.FLOOR, 3), (7, 2, Rounding.CEIL, 4), (7, 2, Rounding.HALF_UP, 4), (5, 4, Rounding.HALF_UP, 1),
     (6, 2, Rounding.CEIL, 3), (0, 3, Rounding.CEIL, 0)],
)  # fmt: skip
def test_divide_roundsAsStated(numerator, denominator, rounding, expected):
    assert divide(numerator, denominator, rounding) == expected


def test_perSpend_countsNetPaidItemsOnly():
    """1 point per dollar on $12.00 of items, after discounts; shipping earns nothing."""
    awards = evaluate(_purchase(COFFEE, CROISSANT, SHIPPING), NOBODY, [_rule(1, PerSpend(1, 100))])
    assert [(a.rule_id, a.points) for a in awards] == [(1, 12)]


def test_perSpend_roundsPerRule():
    line = Line("x", "c", 1, 1_250)  # 12.50
    assert total(evaluate(_purchase(line), NOBODY, [_rule(1, PerSpend(1, 100))])) == 12
    assert total(evaluate(_purchase(line), NOBODY, [_rule(1, PerSpend(1, 100, Rounding.HALF_UP))])) == 13


def test_fixedAndPerItem():
    rules = [_rule(1, Fixed(50)), _rule(2, PerItem(10), conditions=Conditions(categories=frozenset({"drinks"})))]
    assert [(a.rule_id, a.points) for a in evaluate(_purchase(COFFEE, CROISSANT), NOBODY, rules)] == [(1, 50), (2, 20)]


def test_multiplier_doublesTheBaseRuleOnItsLinesOnMondaysOnly():
    """ "2x on pastries on Mondays": the pastry line's 3 points earn 3 more."""
    rules = [
        _rule(1, PerSpend(1, 100)),
        _rule(
            2,
            Multiplier(1, 2, 1),
            conditions=Conditions(categories=frozenset({"pastries"}), days_of_week=frozenset({1})),
        ),
    ]
    monday = evaluate(_purchase(COFFEE, CROISSANT), NOBODY, rules)
    tuesday = evaluate(_purchase(COFFEE, CROISSANT, at=MONDAY + timedelta(days=1)), NOBODY, rules)
    assert [(a.rule_id, a.points) for a in monday] == [(1, 12), (2, 3)]
    assert [(a.rule_id, a.points) for a in tuesday] == [(1, 12)]


def test_dayOfWeek_isTheActivitysOwnLocalDay():
    """Monday 01:00 in Auckland is Sunday in UTC: the member's Monday counts."""
    auckland = datetime(2026, 11, 23, 1, 0, tzinfo=timezone(timedelta(hours=13)))
    rule = _rule(1, Fixed(5), conditions=Conditions(days_of_week=frozenset({1})))
    assert total(evaluate(_purchase(COFFEE, at=auckland), NOBODY, [rule])) == 5


def test_multiplier_withoutItsBaseRule_givesNothing():
    rules = [
        _rule(1, PerSpend(1, 100), conditions=Conditions(tiers=frozenset({"gold"}))),
        _rule(2, Multiplier(1, 2, 1)),
    ]
    assert evaluate(_purchase(COFFEE), NOBODY, rules) == []


@pytest.mark.parametrize(
    ("conditions", "member", "applies"),
    [
        (Conditions(skus=frozenset({"latte"})), NOBODY, True),
        (Conditions(skus=frozenset({"espresso"})), NOBODY, False),
        (Conditions(min_net_minor=1_200), NOBODY, True),
        (Conditions(min_net_minor=1_201), NOBODY, False),
        (Conditions(tiers=frozenset({"gold"})), MemberFacts(tier="gold"), True),
        (Conditions(tiers=frozenset({"gold"})), MemberFacts(tier="silver"), False),
        (Conditions(segments=frozenset({"staff", "vip"})), MemberFacts(segments=frozenset({"vip"})), True),
        (Conditions(segments=frozenset({"staff"})), MemberFacts(segments=frozenset({"vip"})), False),
        (Conditions(starts_at=MONDAY, ends_at=MONDAY + timedelta(hours=1)), NOBODY, True),
        (Conditions(starts_at=MONDAY + timedelta(seconds=1)), NOBODY, False),
        (Conditions(ends_at=MONDAY), NOBODY, False),
    ],
)
def test_conditions(conditions, member, applies):
    awards = evaluate(_purchase(COFFEE, CROISSANT), member, [_rule(1, Fixed(7), conditions=conditions)])
    assert (total(awards) == 7) is applies


def test_bestOf_takesTheLargest_additiveAllAdd():
    rules = [
        _rule(1, Fixed(10), stacking=Stacking.BEST_OF),
        _rule(2, Fixed(30), stacking=Stacking.BEST_OF),
        _rule(3, Fixed(20), stacking=Stacking.BEST_OF, priority=5),
        _rule(4, Fixed(1)),
        _rule(5, Fixed(2)),
    ]
    assert sorted((a.rule_id, a.points) for a in evaluate(_purchase(COFFEE), NOBODY, rules)) == [
        (2, 30),
        (4, 1),
        (5, 2),
    ]


def test_bestOf_tie_goesToHigherPriority():
    rules = [_rule(1, Fixed(10), stacking=Stacking.BEST_OF), _rule(2, Fixed(10), stacking=Stacking.BEST_OF, priority=1)]
    assert [a.rule_id for a in evaluate(_purchase(COFFEE), NOBODY, rules)] == [2]


def test_limits_capPerOrderAndPerMemberPeriod():
    rule = _rule(1, PerSpend(10, 100), limits=Limits(per_order=100, per_member=150, period=Period.MONTH))
    big = _purchase(Line("tv", "electronics", 1, 100_000))
    first = evaluate(big, NOBODY, [rule])
    second = evaluate(big, NOBODY, [rule], earned_this_period={1: 100})
    third = evaluate(big, NOBODY, [rule], earned_this_period={1: 150})
    assert [(a.points, a.capped_by) for a in first] == [(100, "per_order")]
    assert [(a.points, a.capped_by) for a in second] == [(50, "per_member")]
    assert third == []


def test_eventRules_answerOnlyTheirEventType():
    review = Activity(Trigger.EVENT, MONDAY, event_type="review_written")
    rules = [
        Rule(1, 1, "reviews", Trigger.EVENT, Fixed(25), event_type="review_written"),
        Rule(2, 1, "store events", Trigger.EVENT, Fixed(100), event_type="store_event_attended"),
        _rule(3, Fixed(5)),
    ]
    assert [(a.rule_id, a.points) for a in evaluate(review, NOBODY, rules)] == [(1, 25)]


def test_periodStart():
    at = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # a Thursday
    assert [period_start(at, p).isoformat() for p in Period] == [
        "2026-11-26T00:00:00+00:00", "2026-11-23T00:00:00+00:00", "2026-11-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00",
    ]  # fmt: skip


def test_ruleFromDefinition_readsTheJson():
    rule = rule_from_definition(
        3,
        2,
        {
            "name": "2x pastries on Mondays",
            "trigger": "purchase",
            "conditions": {"categories": ["pastries"], "days_of_week": [1]},
            "calculator": {"strategy": "multiplier", "rule_id": 1, "numerator": 2, "denominator": 1},
            "stacking": "additive",
            "limits": {"per_order": 500, "period": "week"},
        },
    )
    assert (rule.id, rule.version, rule.calculator) == (3, 2, Multiplier(1, 2, 1))
    assert rule.conditions.days_of_week == {1} and rule.limits == Limits(per_order=500, period=Period.WEEK)


@pytest.mark.parametrize(
    "definition",
    [
        {"calculator": {"strategy": "random"}},
        {"calculator": {"strategy": "per_spend", "points": 1, "per_minor": 0}},
        {"calculator": {"strategy": "per_spend", "points": 1.5, "per_minor": 100}},
        {"calculator": {"strategy": "fixed", "points": -1}},
        {"calculator": {"strategy": "fixed", "points": 1}, "conditions": {"days_of_week": [0]}},
        {"calculator": {"strategy": "fixed", "points": 1}, "trigger": "event"},
        {"calculator": {"strategy": "fixed", "points": 1}, "stacking": "sometimes"},
        {"calculator": {"strategy": "fixed", "points": 1}, "limits": {"per_order": -5}},
        {"calculator": {"strategy": "multiplier", "rule_id": 7, "numerator": 2, "denominator": 1}},
        {"calculator": {"strategy": "fixed", "points": 1},
         "conditions": {"starts_at": "2026-12-01", "ends_at": "2026-11-01"}},
    ],
)  # fmt: skip
def test_ruleFromDefinition_refusesWhatCannotWork(definition):
    with pytest.raises(UnprocessableError) as refused:
        rule_from_definition(7, 1, definition)
    assert refused.value.code == "invalid_rule"


# ---------------------------------------------------------------------------- properties
lines = st.lists(
    st.builds(
        Line,
        sku=st.sampled_from(["a", "b", "c"]),
        category=st.sampled_from(["x", "y"]),
        quantity=st.integers(1, 20),
        unit_price_minor=st.integers(0, 100_000),
        discount_minor=st.integers(0, 200_000),
        kind=st.sampled_from(list(LineKind)),
    ),
    max_size=8,
)
calculators = st.one_of(
    st.builds(Fixed, st.integers(0, 1_000)),
    st.builds(PerSpend, st.integers(0, 10), st.integers(1, 1_000), st.sampled_from(list(Rounding))),
    st.builds(PerItem, st.integers(0, 50)),
    st.builds(Multiplier, st.integers(1, 6), st.integers(0, 5), st.integers(1, 4), st.sampled_from(list(Rounding))),
)
conditions = st.builds(
    Conditions,
    categories=st.sets(st.sampled_from(["x", "y"]), max_size=1).map(frozenset),
    min_net_minor=st.integers(0, 50_000),
)
limits = st.builds(Limits, per_order=st.none() | st.integers(0, 2_000), per_member=st.none() | st.integers(0, 5_000))


ANY_STACKING = st.sampled_from(list(Stacking))


@st.composite
def rule_sets(draw, stacking=ANY_STACKING):
    count = draw(st.integers(1, 6))
    return [
        Rule(i, 1, f"r{i}", Trigger.PURCHASE, draw(calculators), draw(conditions), None, draw(st.integers(0, 3)),
             draw(stacking), draw(limits))
        for i in range(1, count + 1)
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(lines, rule_sets(), st.dictionaries(st.integers(1, 6), st.integers(0, 6_000)))
def test_awards_areNeverNegativeNorAboveTheirCaps(purchase_lines, rules, earned):
    awards = evaluate(_purchase(*purchase_lines), NOBODY, rules, earned)
    by_id = {rule.id: rule for rule in rules}
    for award in awards:
        limits_ = by_id[award.rule_id].limits
        assert award.points > 0
        assert limits_.per_order is None or award.points <= limits_.per_order
        assert limits_.per_member is None or award.points + earned.get(award.rule_id, 0) <= limits_.per_member
    assert len({a.rule_id for a in awards}) == len(awards)
    bases = [a for a in awards if not isinstance(by_id[a.rule_id].calculator, Multiplier)]
    assert sum(by_id[a.rule_id].stacking == Stacking.BEST_OF for a in bases) <= 1
    given = {a.rule_id: a.points for a in bases}
    for award in awards:  # a multiplier multiplies what its base awarded, no more
        multiplier = by_id[award.rule_id].calculator
        if isinstance(multiplier, Multiplier):
            assert multiplier.rule_id in given
            assert award.points <= multiplier.extra_for(given[multiplier.rule_id])


@settings(max_examples=200, deadline=None)
@given(lines, rule_sets(stacking=st.just(Stacking.ADDITIVE)), st.randoms(use_true_random=False))
def test_additiveTotals_doNotDependOnTheOrderRulesAreTriedIn(purchase_lines, rules, random):
    """The engine tries rules by priority: giving the same rules other priorities (so trying
    them in another order) changes no additive total."""
    priorities = [rule.priority for rule in rules]
    random.shuffle(priorities)
    reordered = [replace(rule, priority=p * 7 + rule.id) for rule, p in zip(rules, priorities, strict=True)]
    activity = _purchase(*purchase_lines)
    assert total(evaluate(activity, NOBODY, rules)) == total(evaluate(activity, NOBODY, reordered))


earning_per_unit = st.one_of(
    st.builds(PerSpend, st.integers(1, 10), st.integers(1, 1_000)),  # floor: the default
    st.builds(PerItem, st.integers(0, 50)),
)


@settings(max_examples=300, deadline=None)
@given(lines, earning_per_unit, st.data())
def test_refundThenRebuy_neverNetsMoreThanTheOrderEarned(purchase_lines, calculator, data):
    """Refund some units of an order (partial lines, discounts split), then buy those units
    again as a new order: the member never ends with more points than the order alone gave."""
    rule = _rule(1, calculator)
    skus = sorted({line.sku for line in purchase_lines})
    refunded = [
        RefundLine(sku, data.draw(st.integers(0, sum(line.quantity for line in purchase_lines if line.sku == sku))))
        for sku in skus
    ]
    refunded = [item for item in refunded if item.quantity]
    kept = remaining(purchase_lines, refunded)
    given_points = {1: total(evaluate(_purchase(*purchase_lines), NOBODY, [rule]))}
    taken = reversals(given_points, {1: total(evaluate(_purchase(*kept), NOBODY, [rule]))}).get(1, 0)
    rebought = _taken_units(purchase_lines, refunded, kept)
    rebuy_points = total(evaluate(_purchase(*rebought), NOBODY, [rule]))
    assert given_points[1] - taken + rebuy_points <= given_points[1]


def _taken_units(lines_before: list[Line], refunded: list[RefundLine], kept: list[Line]) -> list[Line]:
    """The units a refund took away and the discount that went with them, as order lines:
    each line's units and discount less what `remaining` kept of it (kept lines come in order)."""
    wanted = {item.sku: item.quantity for item in refunded}
    left = iter(kept)
    taken = []
    for line in lines_before:
        units = min(line.quantity, wanted.get(line.sku, 0))
        wanted[line.sku] = wanted.get(line.sku, 0) - units
        if units == line.quantity:
            taken.append(line)
        elif units:
            kept_line = next(left)
            taken.append(replace(line, quantity=units, discount_minor=line.discount_minor - kept_line.discount_minor))
        else:
            next(left)
    return taken


keyed_conditions = st.builds(
    Conditions,
    categories=st.sets(st.sampled_from(["x", "y"]), max_size=2).map(frozenset),
    skus=st.sets(st.sampled_from(["a", "b"]), max_size=1).map(frozenset),
    min_net_minor=st.integers(0, 20_000),
    tiers=st.sets(st.sampled_from(["gold", "silver"]), max_size=1).map(frozenset),
    segments=st.sets(st.sampled_from(["vip", "staff"]), max_size=1).map(frozenset),
    days_of_week=st.sets(st.integers(1, 7), max_size=2).map(frozenset),
    starts_at=st.none() | st.just(MONDAY - timedelta(days=1)),
    ends_at=st.none() | st.just(MONDAY + timedelta(days=1)),
)


@st.composite
def keyed_rule_sets(draw):
    count = draw(st.integers(1, 6))
    return [
        Rule(i, 1, f"r{i}", Trigger.PURCHASE, draw(calculators), draw(keyed_conditions), None, draw(st.integers(0, 3)),
             draw(ANY_STACKING), draw(limits))
        for i in range(1, count + 1)
    ]  # fmt: skip


MEMBERS = [MemberFacts(tier, frozenset(segments)) for tier in (None, "gold", "silver") for segments in ((), ("vip",))]
MOMENTS = [MONDAY + timedelta(hours=h) for h in (-30, -2, 0, 2, 23, 30)]  # days and the windows' edges


@settings(max_examples=200, deadline=None)
@given(keyed_rule_sets(), st.lists(lines, min_size=1, max_size=3))
def test_aRuleSetUsedForManyActivities_pricesEachAsAFreshOneWould(rules, baskets):
    """A rule set remembers, per kind of activity, which rules could apply (`_Group.plan`): it
    must never answer one activity with what it worked out for another (another member's tier
    or segments, another day, another side of a window, other lines)."""
    shared = RuleSet(rules)
    for purchase_lines in baskets:
        for member in MEMBERS:
            for at in MOMENTS:
                activity = _purchase(*purchase_lines, at=at)
                assert evaluate(activity, member, shared) == evaluate(activity, member, RuleSet(rules))
