"""Campaigns, as pure rules: a window, who is eligible (tier, segment, skus or categories, a
minimum spend), an effect (bonus points per order, or a multiplier over what the rules give
the eligible lines), a cap per member per period, and a budget.

The budget itself is held on-chain by the campaign's own issuer account; here only what is
left of it is known (`budget_left`), and a campaign short of it gives what is left (`partial`)
or nothing (`none`), saying so in the award (`capped_by: budget`)."""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from loyalty.domain.earning.calculators import MAX_POINTS, Rounding, divide
from loyalty.domain.earning.context import Activity, MemberFacts, Trigger
from loyalty.domain.earning.engine import Conditions, Evaluation, Period, parse_time, period_end, period_start
from loyalty.errors import ErrorCode, UnprocessableError

WHOLE_CAMPAIGN = "campaign"  # a per-member cap over the campaign's whole window


class Shortfall(enum.StrEnum):
    """What a campaign does when its budget cannot pay an award in full."""

    PARTIAL = "partial"  # gives what is left
    NONE = "none"  # gives nothing


@dataclass(frozen=True)
class Bonus:
    """`points` per eligible order."""

    points: int


@dataclass(frozen=True)
class Boost:
    """The eligible lines earn `numerator / denominator` times what the partner's rules gave
    them (`Evaluation.given_to`: all of it when every item is eligible); the campaign gives the
    difference ("double points": 2/1 gives as much again)."""

    numerator: int
    denominator: int
    rounding: Rounding = Rounding.FLOOR

    def extra_for(self, base_points: int) -> int:
        return max(0, divide(base_points * self.numerator, self.denominator, self.rounding) - base_points)


@dataclass(frozen=True)
class Campaign:
    """A campaign as the engine sees it. `conditions` carries the window."""

    id: int
    name: str
    conditions: Conditions
    effect: Bonus | Boost
    per_member: int | None = None
    period: Period | None = None  # None: the whole campaign
    when_short: Shortfall = Shortfall.PARTIAL

    @property
    def starts_at(self) -> datetime:
        assert self.conditions.starts_at is not None
        return self.conditions.starts_at

    @property
    def ends_at(self) -> datetime:
        assert self.conditions.ends_at is not None
        return self.conditions.ends_at

    def cap_window(self, at: datetime) -> tuple[datetime, datetime]:
        """The member's cap period holding `at`, as [start, end), inside the campaign's window."""
        if self.period is None:
            return self.starts_at, self.ends_at
        start = period_start(at, self.period)
        return max(self.starts_at, start), min(self.ends_at, period_end(start, self.period))


class CampaignAward(NamedTuple):
    """Points a campaign gives, and why; `capped_by` is `per_member` or `budget` if either cut
    them (a budget that cut them to nothing still shows, with 0 points)."""

    campaign_id: int
    points: int
    reason: str
    capped_by: str | None = None


class CampaignSet:
    """Campaigns compiled for pricing many purchases: which of them hold for a member of this
    tier and these segments, on this day of the week, inside these windows, is worked out once
    per kind of purchase (as `RuleSet` does for rules)."""

    __slots__ = ("bounds", "campaigns", "days", "plans", "segments")
    PLANS = 4_096

    def __init__(self, campaigns: Sequence[Campaign]) -> None:
        self.campaigns = list(campaigns)
        self.days = any(c.conditions.days_of_week for c in self.campaigns)
        self.segments = any(c.conditions.segments for c in self.campaigns)
        self.bounds = sorted({b for c in self.campaigns for b in (c.starts_at, c.ends_at)})
        self.plans: dict[tuple[object, ...], list[Campaign]] = {}

    def holding(self, activity: Activity, member: MemberFacts) -> list[Campaign]:
        at = activity.occurred_at
        key = (
            member.tier,
            member.segments if self.segments else None,
            at.isoweekday() if self.days else 0,
            bisect_right(self.bounds, at),
        )
        found = self.plans.get(key)
        if found is None:
            found = [c for c in self.campaigns if c.conditions.hold(activity, member)]
            if len(self.plans) >= self.PLANS:
                self.plans.clear()
            self.plans[key] = found
        return found


def apply(
    campaigns: CampaignSet | Sequence[Campaign],
    activity: Activity,
    member: MemberFacts,
    evaluation: Evaluation,
    *,
    earned: Mapping[int, int] | None = None,
    budget_left: Mapping[int, int] | None = None,
) -> list[CampaignAward]:
    """What `campaigns` give a purchase the rules gave `evaluation`. `earned` is what each
    campaign gave the member in its cap period so far, `budget_left` what each may still issue;
    leave both out to price without caps or budgets (a refund recomputing what the lines left
    would have had)."""
    if activity.trigger != Trigger.PURCHASE:
        return []
    holding = (campaigns if isinstance(campaigns, CampaignSet) else CampaignSet(campaigns)).holding(activity, member)
    basket = evaluation.basket
    awards: list[CampaignAward] = []
    for campaign in holding:
        conditions = campaign.conditions
        if conditions.only_category is not None:  # the commonest condition, without a call
            lines = basket.by_category.get(conditions.only_category)
            if lines is None or basket.category_net[conditions.only_category] < conditions.min_net_minor:
                continue
        elif conditions.all_items:
            lines = basket.items
            if not lines or basket.items_net < conditions.min_net_minor:
                continue  # an order with no item lines is no campaign's
        elif (lines := conditions.matched(basket)) is None:
            continue
        effect = campaign.effect
        points = effect.points if isinstance(effect, Bonus) else effect.extra_for(evaluation.given_to(lines))
        capped_by = None
        if earned is not None and campaign.per_member is not None:
            room = max(0, campaign.per_member - earned.get(campaign.id, 0))
            if points > room:
                points, capped_by = room, "per_member"
        if budget_left is not None and points > (left := max(0, budget_left.get(campaign.id, 0))):
            points, capped_by = (left if campaign.when_short == Shortfall.PARTIAL else 0), "budget"
        if points > 0 or capped_by == "budget":
            awards.append(CampaignAward(campaign.id, points, campaign.name, capped_by))
    return awards


# ------------------------------------------------------------------------ from JSON
def campaign_from_definition(campaign_id: int, definition: Mapping[str, Any]) -> Campaign:
    """A campaign from its stored JSON (the API checked its shape; this checks what a shape
    cannot). Refusals are `422 invalid_campaign`."""
    starts_at, ends_at = parse_time(definition.get("starts_at")), parse_time(definition.get("ends_at"))
    if starts_at is None or ends_at is None or starts_at >= ends_at:
        raise _invalid("a campaign has a window: `starts_at` before `ends_at`")
    conditions = definition.get("conditions") or {}
    days = frozenset(conditions.get("days_of_week") or ())
    if not days <= set(range(1, 8)):
        raise _invalid(f"days_of_week are ISO days, 1 (Monday) to 7, not {sorted(days)}")
    spec = definition.get("effect") or {}
    kind = spec.get("kind")
    effect: Bonus | Boost
    if kind == "bonus":
        effect = Bonus(_count(spec.get("points"), "points", 1))
    elif kind == "multiplier":
        try:
            rounding = Rounding(spec.get("rounding", Rounding.FLOOR))
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        effect = Boost(
            _count(spec.get("numerator"), "numerator", 1), _count(spec.get("denominator"), "denominator", 1), rounding
        )
        if effect.numerator <= effect.denominator:
            raise _invalid("a multiplier campaign multiplies by more than 1")
    else:
        raise _invalid(f"a campaign's effect is `bonus` or `multiplier`, not {kind!r}")
    period_name = definition.get("period", WHOLE_CAMPAIGN)
    try:
        period = None if period_name == WHOLE_CAMPAIGN else Period(period_name)
        when_short = Shortfall(definition.get("when_short", Shortfall.PARTIAL))
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    per_member = definition.get("per_member_points")
    return Campaign(
        id=campaign_id,
        name=str(definition.get("name", "")),
        conditions=Conditions(
            skus=frozenset(conditions.get("skus") or ()),
            categories=frozenset(conditions.get("categories") or ()),
            min_net_minor=_count(conditions.get("min_net_minor", 0), "min_net_minor"),
            tiers=frozenset(conditions.get("tiers") or ()),
            segments=frozenset(conditions.get("segments") or ()),
            days_of_week=days,
            starts_at=starts_at,
            ends_at=ends_at,
        ),
        effect=effect,
        per_member=None if per_member is None else _count(per_member, "per_member_points"),
        period=period,
        when_short=when_short,
    )


def _count(value: Any, name: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_POINTS:
        raise _invalid(f"`{name}` must be an integer from {minimum} to {MAX_POINTS}, not {value!r}")
    return value


def _invalid(detail: str) -> UnprocessableError:
    return UnprocessableError(ErrorCode.INVALID_CAMPAIGN, detail)
