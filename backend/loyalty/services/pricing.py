"""Pricing: what an activity earns under a partner's active rules, the program's tier ladder
and the partner's campaigns running when it occurred. One computation behind purchases, custom
events, referrals and `POST /v1/rules/simulate`, so a simulation says what the real thing gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from loyalty.domain import campaigns as campaign_rules
from loyalty.domain.campaigns import Campaign, CampaignAward
from loyalty.domain.earning.context import Activity, MemberFacts, Trigger
from loyalty.domain.earning.engine import Award as Awarded
from loyalty.domain.earning.engine import RuleSet, evaluate_lines, period_of
from loyalty.domain.tiers import Ladder, multiplied
from loyalty.services import awards, campaigns, partners, rules, tiers


@dataclass(frozen=True)
class Priced:
    """What an activity earns: the rules' awards, the tier's multiplier on them (purchases),
    and the campaigns' awards, each campaign issuing from its own account (`issuers`)."""

    awards: list[Awarded]
    tier_extra: int
    tier_reason: str | None
    bonuses: list[CampaignAward]
    issuers: Mapping[int, int]

    @property
    def own_points(self) -> int:
        """What the partner's own account issues (the rules and the tier)."""
        return sum(a.points for a in self.awards) + self.tier_extra


@dataclass(frozen=True)
class Offer:
    """What a partner prices with in a program, read once: its active rules, its campaigns
    (with their issuer accounts) and the program's tier ladder; the partner is an issuer
    account (`account_id`: the brand's own, or the brand's in another program)."""

    rules: RuleSet
    campaigns: campaigns.Running
    ladder: Ladder | None
    account_id: int
    brand_id: int  # whose members and segment tags
    program_id: int

    def cap_windows(
        self, activity: Activity
    ) -> tuple[dict[int, tuple[datetime, datetime]], dict[int, tuple[datetime, datetime]]]:
        """The periods, by rule and by campaign, whose awards the member's caps count for it."""
        at = activity.occurred_at
        running = self.running(activity)
        return (
            {
                r.id: period_of(at, r.limits.period)
                for r in self.rules.by_id.values()
                if r.limits.per_member is not None
            },
            {c.id: c.cap_window(at) for c in running if c.per_member is not None},
        )

    def running(self, activity: Activity) -> list[Campaign]:
        return self.campaigns.at(activity.occurred_at) if activity.trigger == Trigger.PURCHASE else []


def offer_of(session: Session, partner_id: int) -> Offer:
    brand_id, program_id = partners.placed(session, partner_id)
    return Offer(
        rules.active_rules(session, partner_id),
        campaigns.running(session, partner_id),
        tiers.ladder(session, program_id),
        partner_id,
        brand_id,
        program_id,
    )


def priced(
    offer: Offer,
    activity: Activity,
    facts: MemberFacts,
    *,
    rules_earned: Mapping[int, int] | None = None,
    campaigns_earned: Mapping[int, int] | None = None,
    budget_left: Mapping[int, int] | None = None,
) -> Priced:
    """What `activity` earns under `offer`, given what each capped rule and campaign gave the
    member in its period (none: no caps) and what each issuer account has left (none: no
    budgets). Pure: reads nothing."""
    evaluation = evaluate_lines(activity, facts, offer.rules, rules_earned)
    awarded = evaluation.awards
    ladder = offer.ladder if activity.trigger == Trigger.PURCHASE else None
    extra, reason = 0, None
    if ladder is not None and (rung := ladder.get(facts.tier)) is not None:
        extra = multiplied(ladder, facts.tier, sum(a.points for a in awarded))
        reason = f"{facts.tier} tier: x{rung.multiplier_numerator}/{rung.multiplier_denominator}"
    running = offer.running(activity)
    issuers = offer.campaigns.issuers
    bonuses = campaign_rules.apply(
        offer.campaigns.campaigns if running else (),
        activity,
        facts,
        evaluation,
        earned=campaigns_earned,
        budget_left=None if budget_left is None else {c.id: budget_left.get(issuers[c.id], 0) for c in running},
    )
    return Priced(awarded, extra, reason, bonuses, issuers)


def price(
    session: Session,
    partner_id: int,
    activity: Activity,
    facts: MemberFacts,
    *,
    member_id: int | None = None,
    budget_left: Mapping[int, int] | None = None,
) -> Priced:
    """What `activity` earns under the partner's active rules, the program's tier ladder and
    the partner's campaigns running when it occurred: the one computation behind a purchase,
    an event and `POST /v1/rules/simulate`. With `member_id`, the member's per-period caps
    count; with `budget_left` (per issuer account), the campaigns' budgets do."""
    offer = offer_of(session, partner_id)
    rules_earned = campaigns_earned = None
    if member_id is not None:
        rules_earned, campaigns_earned = awards.earned_since(session, member_id, *offer.cap_windows(activity))
    return priced(
        offer, activity, facts, rules_earned=rules_earned, campaigns_earned=campaigns_earned, budget_left=budget_left
    )
