"""Tiers as pure rules: qualifying, going up at once, going down at the review (one step or
straight down), paid beside earned, and the standing a member can check."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.tiers import (
    Downgrade,
    Ladder,
    Review,
    Tier,
    effective,
    ladder_from_definition,
    multiplied,
    next_tier,
    standing,
)
from loyalty.errors import UnprocessableError

TIERS = (
    Tier("bronze", 0),
    Tier("silver", 20_000),
    Tier("gold", 50_000, 5, 4, ("free refills",)),
    Tier("platinum", 100_000, 3, 2),
)
LADDER = Ladder(TIERS)


def test_qualifies_forTheHighestTierItsValueReaches():
    assert [getattr(LADDER.qualified(v), "name", None) for v in (0, 19_999, 20_000, 75_000, 10**9)] == [
        "bronze", "bronze", "silver", "gold", "platinum",
    ]  # fmt: skip
    assert Ladder((Tier("gold", 100),)).qualified(99) is None


def test_goesUpAtOnce_butDownOnlyAtTheReview():
    assert next_tier(LADDER, 60_000, "bronze", at_review=False) == "gold"
    assert next_tier(LADDER, 0, "platinum", at_review=False) == "platinum"
    assert next_tier(LADDER, 0, "platinum", at_review=True) == "gold"  # one step down
    recompute = Ladder(TIERS, downgrade=Downgrade.RECOMPUTE)
    assert next_tier(recompute, 0, "platinum", at_review=True) == "bronze"
    real_time = Ladder(TIERS, review=Review.REAL_TIME)
    assert next_tier(real_time, 30_000, "platinum", at_review=False) == "gold"


def test_oneDown_neverGoesBelowWhatTheValueEarns():
    assert next_tier(LADDER, 60_000, "platinum", at_review=True) == "gold"
    assert next_tier(Ladder((Tier("gold", 100),)), 0, "gold", at_review=True) is None


def test_paidTier_countsWhenHigherThanTheEarnedOne():
    assert effective(LADDER, "silver", "gold") == "gold"
    assert effective(LADDER, "platinum", "gold") == "platinum"
    assert effective(LADDER, None, None) is None


def test_standing_saysWhatKeepsTheTierAndWhatReachesTheNext():
    review = datetime(2027, 3, 1, tzinfo=UTC)
    gold = standing(LADDER, "gold", 42_000, review)
    assert (gold.threshold, gold.points_required_to_remain, gold.next_tier, gold.required_for_next) == (
        50_000,
        8_000,
        "platinum",
        58_000,
    )
    assert gold.next_review_at == review
    top = standing(LADDER, "platinum", 120_000, None)
    assert (top.points_required_to_remain, top.next_tier, top.required_for_next) == (0, None, None)


def test_multiplier_addsTheTiersShare_roundedDown():
    assert multiplied(LADDER, "gold", 13) == 3  # 13 x 1.25 = 16.25 -> 16
    assert multiplied(LADDER, "bronze", 13) == 0 and multiplied(LADDER, None, 13) == 0


@pytest.mark.parametrize(
    "definition",
    [
        {"tiers": []},
        {"tiers": [{"name": "a", "threshold": 10}, {"name": "b", "threshold": 5}]},
        {"tiers": [{"name": "a", "threshold": 0}, {"name": "a", "threshold": 5}]},
        {"tiers": [{"name": "a", "threshold": 0, "multiplier_numerator": 1, "multiplier_denominator": 2}]},
        {"tiers": [{"name": "a", "threshold": 0}], "metric": "vibes"},
    ],
)
def test_ladderFromDefinition_refusesWhatCannotWork(definition):
    with pytest.raises(UnprocessableError) as refused:
        ladder_from_definition(definition)
    assert refused.value.code == "invalid_ladder"


@given(st.integers(0, 200_000), st.sampled_from([None, *[t.name for t in TIERS]]), st.booleans(),
       st.sampled_from(list(Downgrade)), st.sampled_from(list(Review)))  # fmt: skip
def test_nextTier_isNeverBelowWhatTheValueEarns_norAboveWhatWasHeldOrEarned(value, held, at_review, downgrade, review):
    ladder = Ladder(TIERS, downgrade=downgrade, review=review)
    after = ladder.index(next_tier(ladder, value, held, at_review=at_review))
    earned = ladder.index(getattr(ladder.qualified(value), "name", None))
    assert after >= earned
    assert after <= max(earned, ladder.index(held))
