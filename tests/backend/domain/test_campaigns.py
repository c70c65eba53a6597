"""Campaigns as pure rules: eligibility, bonus and multiplier effects over what the rules gave
the eligible lines, caps per member and per period, budgets short (partial or none); and
properties: never negative, never above the cap or the budget."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.campaigns import (
    Bonus,
    Boost,
    Campaign,
    CampaignSet,
    Shortfall,
    apply,
    campaign_from_definition,
)
from loyalty.domain.earning.calculators import Fixed, PerItem, PerSpend
from loyalty.domain.earning.context import Activity, Line, LineKind, MemberFacts, Trigger
from loyalty.domain.earning.engine import Conditions, Period, Rule, RuleSet, evaluate_lines
from loyalty.errors import UnprocessableError

MONDAY = datetime(2026, 12, 21, 9, 30, tzinfo=UTC)
WINDOW = {"starts_at": MONDAY - timedelta(days=1), "ends_at": MONDAY + timedelta(days=6)}
NOBODY = MemberFacts()
LATTE = Line("latte", "drinks", 2, 450)
CROISSANT = Line("croissant", "pastries", 1, 325, 25)
DELIVERY = Line("delivery", "", 1, 500, kind=LineKind.SHIPPING)
PER_DOLLAR = Rule(1, 1, "1 per dollar", Trigger.PURCHASE, PerSpend(1, 100))


DOUBLE = Boost(2, 1)


def _campaign(id_=1, effect=DOUBLE, *, per_member=None, period=None, when_short=Shortfall.PARTIAL, **conditions):
    return Campaign(id_, f"c{id_}", Conditions(**{**WINDOW, **conditions}), effect, per_member, period, when_short)


def _apply(campaigns, *lines, rules=(PER_DOLLAR,), at=MONDAY, member=NOBODY, **caps):
    activity = Activity(Trigger.PURCHASE, at, lines)
    return apply(campaigns, activity, member, evaluate_lines(activity, member, RuleSet(rules)), **caps)


def test_aMultiplierCampaign_onTheWholeOrder_doublesEverythingTheRulesGave():
    bonus = Rule(2, 1, "bonus", Trigger.PURCHASE, Fixed(5))
    [award] = _apply([_campaign()], LATTE, CROISSANT, DELIVERY, rules=(PER_DOLLAR, bonus))
    assert (award.points, award.capped_by) == (12 + 5, None)


def test_aMultiplierCampaign_onACategory_doublesWhatItsLinesEarned():
    per_pastry = Rule(
        2, 1, "10 per pastry", Trigger.PURCHASE, PerItem(10), Conditions(categories=frozenset({"pastries"}))
    )
    flat = Rule(3, 1, "flat", Trigger.PURCHASE, Fixed(7))  # not on any line: not doubled
    [award] = _apply(
        [_campaign(categories=frozenset({"pastries"}))], LATTE, CROISSANT, rules=(PER_DOLLAR, per_pastry, flat)
    )
    assert award.points == 3 + 10  # the croissant's $3.00 dollar points and its pastry points


def test_aBonusCampaign_givesItsPointsPerEligibleOrder_andNothingOutsideItsWindowOrConditions():
    campaigns = [_campaign(effect=Bonus(100), min_net_minor=1_000)]
    assert [a.points for a in _apply(campaigns, LATTE, CROISSANT)] == [100]
    assert _apply(campaigns, CROISSANT) == []  # $3.00 net: below the minimum
    assert _apply(campaigns, LATTE, CROISSANT, at=MONDAY + timedelta(days=7)) == []  # ended
    assert _apply([_campaign(effect=Bonus(100), tiers=frozenset({"gold"}))], LATTE) == []
    assert _apply([_campaign(effect=Bonus(100))], DELIVERY) == []  # no item lines: no campaign's


def test_aCampaign_capsEachMember_andShortOfBudget_givesWhatIsLeftOrNothing():
    capped = _campaign(effect=Bonus(100), per_member=150)
    assert [(a.points, a.capped_by) for a in _apply([capped], LATTE, earned={1: 100})] == [(50, "per_member")]
    assert [(a.points, a.capped_by) for a in _apply([capped], LATTE, earned={1: 150})] == []
    partial = _campaign(effect=Bonus(100))
    none = _campaign(2, effect=Bonus(100), when_short=Shortfall.NONE)
    short = _apply([partial, none], LATTE, earned={}, budget_left={1: 30, 2: 30})
    assert [(a.campaign_id, a.points, a.capped_by) for a in short] == [(1, 30, "budget"), (2, 0, "budget")]


def test_aCapPeriod_isTheMembersCalendarPeriod_insideTheCampaignsWindow():
    weekly = _campaign(per_member=100, period=Period.WEEK)
    midnight = MONDAY.replace(hour=0, minute=0)
    assert weekly.cap_window(MONDAY) == (midnight, WINDOW["ends_at"])  # the week from Monday, cut at the end
    assert weekly.cap_window(MONDAY - timedelta(hours=12)) == (WINDOW["starts_at"], midnight)  # Sunday: from the start
    whole = _campaign(per_member=100)
    assert whole.cap_window(MONDAY) == (WINDOW["starts_at"], WINDOW["ends_at"])


def test_campaignFromDefinition_refusesWhatCannotWork():
    good = {
        "name": "x",
        "starts_at": "2026-12-20T00:00:00Z",
        "ends_at": "2026-12-27T00:00:00Z",
        "effect": {"kind": "bonus", "points": 5},
    }
    assert campaign_from_definition(7, good).effect == Bonus(5)
    for bad in (
        {**good, "ends_at": "2026-12-19T00:00:00Z"},
        {**good, "effect": {"kind": "multiplier", "numerator": 1, "denominator": 1}},
        {**good, "effect": {"kind": "lottery"}},
        {**good, "period": "fortnight"},
        {**good, "when_short": "sometimes"},
        {**good, "conditions": {"days_of_week": [8]}},
    ):
        with pytest.raises(UnprocessableError) as refused:
            campaign_from_definition(7, bad)
        assert refused.value.code == "invalid_campaign"


lines = st.lists(
    st.builds(
        Line,
        sku=st.sampled_from(["a", "b"]),
        category=st.sampled_from(["x", "y"]),
        quantity=st.integers(1, 5),
        unit_price_minor=st.integers(0, 20_000),
        discount_minor=st.integers(0, 5_000),
        kind=st.sampled_from(list(LineKind)),
    ),
    max_size=6,
)
effects = st.one_of(st.builds(Bonus, st.integers(1, 500)), st.builds(Boost, st.integers(2, 4), st.integers(1, 2)))
campaign_sets = st.lists(
    st.builds(
        lambda i, effect, per_member, category, short: _campaign(
            i, effect, per_member=per_member, when_short=short, categories=frozenset(category)
        ),
        st.integers(1, 1_000),
        effects,
        st.none() | st.integers(0, 400),
        st.sets(st.sampled_from(["x", "y"]), max_size=1),
        st.sampled_from(list(Shortfall)),
    ),
    max_size=4,
    unique_by=lambda c: c.id,
)


@settings(max_examples=300, deadline=None)
@given(lines, campaign_sets, st.dictionaries(st.integers(1, 1_000), st.integers(0, 500)), st.integers(0, 300))
def test_campaignAwards_areNeverNegative_norAboveTheirCapOrBudget(purchase_lines, campaigns, earned, budget):
    budget_left = {c.id: budget for c in campaigns}
    awards = _apply(campaigns, *purchase_lines, earned=earned, budget_left=budget_left)
    by_id = {c.id: c for c in campaigns}
    for award in awards:
        campaign = by_id[award.campaign_id]
        assert award.points >= 0
        assert award.points <= budget
        assert campaign.per_member is None or award.points + earned.get(campaign.id, 0) <= max(
            campaign.per_member, earned.get(campaign.id, 0)
        )
        assert award.points > 0 or award.capped_by == "budget"


MEMBERS = [MemberFacts(tier) for tier in (None, "gold")]
MOMENTS = [MONDAY + timedelta(days=d) for d in (-2, 0, 2, 7)]  # before, inside and after the window


conditional_campaigns = st.lists(
    st.builds(
        lambda i, effect, gold_only, category: _campaign(
            i,
            effect,
            tiers=frozenset({"gold"} if gold_only else ()),
            days_of_week=frozenset({1, 3}),
            categories=frozenset(category),
        ),
        st.integers(1, 9),
        effects,
        st.booleans(),
        st.sets(st.sampled_from(["x", "y"]), max_size=1),
    ),
    max_size=3,
    unique_by=lambda c: c.id,
)


@settings(max_examples=100, deadline=None)
@given(lines, conditional_campaigns)
def test_aCampaignSetUsedForManyPurchases_answersEachAsAFreshOneWould(purchase_lines, campaigns):
    """A campaign set remembers which campaigns hold for a kind of purchase (tier, day, window)."""
    shared = CampaignSet(campaigns)
    for member in MEMBERS:
        for at in MOMENTS:
            assert _apply(shared, *purchase_lines, at=at, member=member) == _apply(
                list(campaigns), *purchase_lines, at=at, member=member
            )
