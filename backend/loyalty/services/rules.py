"""Earning rules: a partner's, versioned (a change is a new version; old ones stay, so every
award can name the exact rule that made it), and simulated without writing anything."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.db.models import EarningRule, RuleVersion, utcnow
from loyalty.domain.earning.calculators import Multiplier
from loyalty.domain.earning.engine import RuleSet, Stacking, rule_from_definition
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import partners
from loyalty.services.compiled import Compiled, memo
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork


def create(uow: UnitOfWork, partner_id: int, definition: Mapping[str, Any]) -> tuple[EarningRule, RuleVersion]:
    """A new rule of `partner_id` (a brand's issuer account: in its first program, or in
    another), at version 1."""
    rule = EarningRule(partner_id=partner_id, version=1)
    uow.session.add(rule)
    uow.session.flush()
    return rule, _add_version(uow, rule, definition)


def update(
    uow: UnitOfWork, rule_id: int, partner_id: int | None, definition: Mapping[str, Any]
) -> tuple[EarningRule, RuleVersion]:
    """A new version of the rule, unless `definition` is the current one (then nothing changes:
    a retried update makes no second version)."""
    rule = get(uow, rule_id, partner_id, lock=True)
    current = version_of(uow, rule)
    if json.loads(current.definition) == _canonical(definition):
        return rule, current
    rule.version += 1
    rule.updated_at = utcnow()
    return rule, _add_version(uow, rule, definition)


def deactivate(uow: UnitOfWork, rule_id: int, partner_id: int | None) -> tuple[EarningRule, RuleVersion]:
    """The rule no longer earns (its versions stay, for the awards that name them)."""
    rule = get(uow, rule_id, partner_id, lock=True)
    if rule.active:
        rule.active, rule.updated_at = False, utcnow()
    return rule, version_of(uow, rule)


def get(uow: UnitOfWork, rule_id: int, partner_id: int | None = None, *, lock: bool = False) -> EarningRule:
    """A rule; with `partner_id` (a brand), only one of that brand's, in any program (others
    are as if absent)."""
    query = select(EarningRule).where(EarningRule.id == rule_id)
    rule = uow.session.scalar(query.with_for_update(key_share=True) if lock else query)
    if rule is None or (partner_id is not None and partners.placed(uow.session, rule.partner_id)[0] != partner_id):
        raise NotFoundError(ErrorCode.RULE_NOT_FOUND, f"no rule {rule_id}")
    return rule


def version_of(uow: UnitOfWork, rule: EarningRule, version: int | None = None) -> RuleVersion:
    found = uow.session.get(RuleVersion, (rule.id, version or rule.version))
    if found is None:
        raise NotFoundError(ErrorCode.RULE_NOT_FOUND, f"rule {rule.id} has no version {version}")
    return found


def versions(uow: UnitOfWork, rule: EarningRule) -> Sequence[RuleVersion]:
    return uow.session.scalars(
        select(RuleVersion).where(RuleVersion.rule_id == rule.id).order_by(RuleVersion.version)
    ).all()


def page_rules(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
    program_id: int | None = None,
) -> Page[EarningRule]:
    """Rules, oldest first: a brand's (in every program it issues in), a program's."""
    query = select(EarningRule)
    if partner_id is not None:
        query = query.where(EarningRule.partner_id.in_(partners.accounts_of(partner_id)))
    if program_id is not None:
        query = query.where(EarningRule.partner_id.in_(partners.accounts_there(program_id)))
    if active is not None:
        query = query.where(EarningRule.active == active)
    return keyset(uow.session, query, [EarningRule.id], cursor, limit)


_COMPILED: Compiled[RuleSet] = Compiled()


def active_rules(session: Session, partner_id: int) -> RuleSet:
    """The partner's active rules at their current versions, compiled for the engine. Cached
    while the rules' fingerprint (how many are active, their ids and versions summed, the last
    change) stays the same: any create, update or deactivate changes it. Read once per
    transaction."""
    return memo(session, ("rules", partner_id), lambda: _compiled_rules(session, partner_id))


def _compiled_rules(session: Session, partner_id: int) -> RuleSet:
    fingerprint = tuple(
        session.execute(
            select(
                func.count(EarningRule.id),
                func.coalesce(func.sum(EarningRule.id * 1_000_003 + EarningRule.version), 0),
                func.max(EarningRule.updated_at),
            ).where(EarningRule.partner_id == partner_id, EarningRule.active.is_(True))
        ).one()
    )

    def build() -> RuleSet:
        rows = session.execute(
            select(EarningRule.id, EarningRule.version, RuleVersion.definition)
            .join(RuleVersion, (RuleVersion.rule_id == EarningRule.id) & (RuleVersion.version == EarningRule.version))
            .where(EarningRule.partner_id == partner_id, EarningRule.active.is_(True))
        )
        return RuleSet(
            [rule_from_definition(rule_id, version, json.loads(definition)) for rule_id, version, definition in rows]
        )

    return _COMPILED.get((str(session.get_bind().engine.url), partner_id), fingerprint, build)


def _add_version(uow: UnitOfWork, rule: EarningRule, definition: Mapping[str, Any]) -> RuleVersion:
    parsed = rule_from_definition(rule.id, rule.version, definition)  # refuses what cannot work
    if isinstance(parsed.calculator, Multiplier) and parsed.stacking == Stacking.BEST_OF:
        raise UnprocessableError(
            ErrorCode.INVALID_RULE,
            "a multiplier adds to the rule it multiplies: it stacks, it does not compete (best_of)",
        )
    if isinstance(parsed.calculator, Multiplier):
        base = uow.session.get(EarningRule, parsed.calculator.rule_id)
        if base is None or base.partner_id != rule.partner_id:
            raise UnprocessableError(
                ErrorCode.INVALID_RULE,
                f"the multiplier's rule {parsed.calculator.rule_id} is not one of this partner's",
            )
        if isinstance(
            rule_from_definition(base.id, base.version, json.loads(version_of(uow, base).definition)).calculator,
            Multiplier,
        ):
            raise UnprocessableError(ErrorCode.INVALID_RULE, "a multiplier multiplies a rule that is not a multiplier")
    version = RuleVersion(rule_id=rule.id, version=rule.version, definition=json.dumps(_canonical(definition)))
    uow.session.add(version)
    uow.session.flush()
    return version


def _canonical(definition: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(definition, sort_keys=True))
