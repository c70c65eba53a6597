"""Partners (brands with an issuer account) and auditors: created by the admin."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.chain.token import LoyaltyToken
from loyalty.db.models import (
    Auditor,
    Campaign,
    Charity,
    MemberLink,
    Partner,
    PartnerKind,
    Program,
    ProgramStatus,
    Reward,
    utcnow,
)
from loyalty.domain.credentials import hash_secret, new_secret
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork

CAMPAIGN_ACCOUNT = "campaign:"  # the name of a campaign's issuer account, before the campaign's id
# The name of a brand's issuer account in another program: `program:<program id>:<brand id>`
# (names are unique, so two processes adding the same account cannot both succeed; accounts
# are found by owner, program and kind).
PROGRAM_ACCOUNT = "program:"
FIRST_PROGRAM = 1


def create(
    uow: UnitOfWork, name: str, issue_budget_points: int, charity: DonationRate | None = None
) -> tuple[Partner, str]:
    """A partner with its own issuer account; returns its API key. Nothing goes to the chain
    here: the outbox writer gives the account gas, ISSUER_ROLE and the budget, and the
    partner's earns wait for that (they are accepted at once). With `charity`, a charity at that
    rate: no budget, and a donation reward in the first program."""
    if charity is not None and issue_budget_points:
        raise charity_issues_nothing(name)
    if name.startswith((CAMPAIGN_ACCOUNT, PROGRAM_ACCOUNT)):
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR,
            f"partner names starting {CAMPAIGN_ACCOUNT!r} or {PROGRAM_ACCOUNT!r} are issuer accounts'",
        )
    if uow.session.scalar(select(Partner).where(Partner.name == name)) is not None:
        raise ConflictError(ErrorCode.PARTNER_EXISTS, f"a partner named {name!r} already exists")
    address, sealed = uow.custody.new_wallet()
    api_key = new_secret("ptn_")
    partner = Partner(
        name=name,
        api_key_hash=hash_secret(api_key),
        issuer_address=address,
        issuer_key_sealed=sealed,
        issue_budget_points=issue_budget_points,
        budget_points=issue_budget_points,
        pending_points=0,
        kind=PartnerKind.BRAND if charity is None else PartnerKind.CHARITY,
    )
    uow.session.add(partner)
    uow.session.flush()
    if charity is not None:
        uow.session.add(Charity(partner_id=partner.id, **charity))
        _donation_reward(uow, partner, FIRST_PROGRAM)
    return partner, api_key


class DonationRate(TypedDict):
    """A charity's rate: `cash_minor` (in `currency`) per `points` donated."""

    cash_minor: int
    points: int
    currency: str


def _donation_reward(uow: UnitOfWork, charity: Partner, program_id: int) -> None:
    """The reward a charity's donations in a program redeem: any amount, unlimited."""
    uow.session.add(
        Reward(
            partner_id=charity.id, program_id=program_id, name=f"Donation to {charity.name}", cost_points=1, stock=None,
            description="points given to the charity, worth its published rate in money",
        )
    )  # fmt: skip
    uow.session.flush()


def charity_issues_nothing(name: object) -> UnprocessableError:
    return UnprocessableError(
        ErrorCode.CHARITY_ISSUES_NOTHING, f"charity {name} takes donations: it has no issue budget and no catalog"
    )


def get(uow: UnitOfWork, partner_id: int) -> Partner:
    partner = uow.session.get(Partner, partner_id)
    if partner is None:
        raise NotFoundError(ErrorCode.PARTNER_NOT_FOUND, f"no partner {partner_id}")
    return partner


def join(uow: UnitOfWork, brand_id: int, program_id: int, issue_budget_points: int) -> Partner:
    """An issuer account for the brand in another program, with its budget there: the outbox
    gives it gas, the program's ISSUER_ROLE and the budget, as it does a brand's own account.
    `409 partner_in_program` if the brand has one there already (or issues there itself)."""
    owner = brand(uow, brand_id)
    if owner.kind == PartnerKind.CHARITY and issue_budget_points:
        raise charity_issues_nothing(owner.id)
    found = _program(uow, program_id)
    if found.status != ProgramStatus.ACTIVE or found.token_address is None:
        raise UnprocessableError(ErrorCode.PROGRAM_NOT_ACTIVE, f"program {program_id} has no token deployed yet")
    name = f"{PROGRAM_ACCOUNT}{program_id}:{owner.id}"  # unique: a second process's join fails on it
    if owner.program_id == program_id or uow.session.scalar(
        select(Partner.id).where(
            Partner.owner_id == owner.id, Partner.program_id == program_id, Partner.kind == PartnerKind.PROGRAM
        )
    ):
        raise ConflictError(ErrorCode.PARTNER_IN_PROGRAM, f"partner {owner.id} issues in program {program_id} already")
    address, sealed = uow.custody.new_wallet()
    account = Partner(
        name=name, kind=PartnerKind.PROGRAM, owner_id=owner.id, program_id=program_id,
        api_key_hash=hash_secret(new_secret("acct_")),  # never handed out: the brand signs in with its own key
        issuer_address=address, issuer_key_sealed=sealed,
        issue_budget_points=issue_budget_points, budget_points=issue_budget_points, pending_points=0,
    )  # fmt: skip
    uow.session.add(account)
    uow.session.flush()
    if owner.kind == PartnerKind.CHARITY:
        _donation_reward(uow, owner, program_id)
    return account


def account_in(uow: UnitOfWork, brand_id: int, program_id: int | None) -> Partner:
    """The brand's issuer account in a program (`None`: the first, its own account):
    `422 program_not_joined` if it does not issue there."""
    if program_id is None or program_id == FIRST_PROGRAM:
        return get(uow, brand_id)
    account = uow.session.scalar(
        select(Partner).where(
            Partner.owner_id == brand_id, Partner.program_id == program_id, Partner.kind == PartnerKind.PROGRAM
        )
    )
    if account is None:
        raise not_joined(brand_id, program_id)
    return account


def not_joined(brand_id: int, program_id: int) -> UnprocessableError:
    return UnprocessableError(
        ErrorCode.PROGRAM_NOT_JOINED,
        f"partner {brand_id} does not issue in program {program_id}: the admin adds it "
        f"(POST /v1/partners/{brand_id}/programs)",
    )


def accounts_in(uow: UnitOfWork, asked: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """The issuer account of each (brand, program) asked for, in one read; one the brand does
    not have is left out (programs other than the first only)."""
    if not asked:
        return {}
    found = uow.session.execute(
        select(Partner.owner_id, Partner.program_id, Partner.id).where(
            Partner.kind == PartnerKind.PROGRAM, Partner.owner_id.in_({brand_id for brand_id, _ in asked})
        )
    )
    return {(owner or 0, program): account for owner, program, account in found if (owner, program) in asked}


def programs_of(uow: UnitOfWork, brand_id: int) -> list[Partner]:
    """The brand's issuer accounts, one per program it issues in: its own first."""
    return list(
        uow.session.scalars(
            select(Partner)
            .where(or_(Partner.id == brand_id, (Partner.owner_id == brand_id) & (Partner.kind == PartnerKind.PROGRAM)))
            .order_by(Partner.program_id)
        )
    )


def token_of(uow: UnitOfWork, account: Partner) -> LoyaltyToken:
    """The token the issuer account issues on: its program's."""
    if account.program_id == FIRST_PROGRAM:
        return uow.token
    return uow.token_at(str(_program(uow, account.program_id).token_address))


def accounts_of(partner_id: int) -> Select[Any]:
    """The issuer accounts that are a partner's: its own, its accounts in other programs, and
    the campaigns' of each (a partner sees the earns of all of them as its own)."""
    mine = select(Partner.id).where(or_(Partner.id == partner_id, Partner.owner_id == partner_id))
    return select(Partner.id).where(or_(Partner.id.in_(mine), Partner.owner_id.in_(mine)))


def accounts_there(program_id: int) -> Select[Any]:
    """The issuer accounts on a program's token (brands', their accounts there, campaigns')."""
    return select(Partner.id).where(Partner.program_id == program_id)


def brands_in_program(session: Session, program_id: int, member_ids: Iterable[int]) -> dict[int, set[int]]:
    """The brands each member is linked to that issue in the program (who may hear of it there)."""
    links: dict[int, set[int]] = {}
    for member_id, brand_id in session.execute(
        select(MemberLink.member_id, MemberLink.partner_id).where(MemberLink.member_id.in_(set(member_ids)))
    ):
        links.setdefault(member_id, set()).add(brand_id)
    if program_id != FIRST_PROGRAM:
        there = set(
            session.scalars(
                select(Partner.owner_id).where(Partner.kind == PartnerKind.PROGRAM, Partner.program_id == program_id)
            )
        )
        links = {member_id: brands & there for member_id, brands in links.items()}
    return links


def brand_of(account: Partner) -> int:
    """The brand an issuer account issues for: itself, or the brand whose account it is in
    another program (whose members, segments and key it uses there)."""
    return account.owner_id if account.kind == PartnerKind.PROGRAM and account.owner_id is not None else account.id


def placed(session: Session, account_id: int) -> tuple[int, int]:
    """Whose (the brand) and where (the program) the rules, campaigns, purchases and events of
    an issuer account are: the engine prices for the account, the API shows brand and program."""
    account = session.get(Partner, account_id)  # the identity map: one read per transaction
    assert account is not None
    return brand_of(account), account.program_id


def is_charity(session: Session, partner_id: int) -> bool:
    partner = session.get(Partner, partner_id)  # the identity map: one read per transaction
    return partner is not None and partner.kind == PartnerKind.CHARITY


def brand(uow: UnitOfWork, partner_id: int) -> Partner:
    """A partner with a key: a brand or a charity (a campaign's account has no key to rotate, no
    budget of its own to be granted, and no members: its brand does all that)."""
    partner = get(uow, partner_id)
    if partner.kind not in (PartnerKind.BRAND, PartnerKind.CHARITY):
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, f"partner {partner_id} is campaign {partner.name!r}'s account: act on its brand"
        )
    return partner


def create_auditor(uow: UnitOfWork, name: str) -> tuple[Auditor, str]:
    """Read-only access for an auditor; returns its API key."""
    if uow.session.scalar(select(Auditor).where(Auditor.name == name)) is not None:
        raise ConflictError(ErrorCode.AUDITOR_EXISTS, f"an auditor named {name!r} already exists")
    api_key = new_secret("aud_")
    auditor = Auditor(name=name, api_key_hash=hash_secret(api_key))
    uow.session.add(auditor)
    uow.session.flush()
    return auditor, api_key


def rotate_key(uow: UnitOfWork, partner_id: int) -> tuple[Partner, str]:
    """A new API key for the partner; the old one stops working."""
    partner = brand(uow, partner_id)
    api_key = new_secret("ptn_")
    partner.api_key_hash = hash_secret(api_key)
    uow.session.flush()
    return partner, api_key


def rotate_auditor_key(uow: UnitOfWork, auditor_id: int) -> tuple[Auditor, str]:
    """A new API key for the auditor; the old one stops working."""
    auditor = uow.session.get(Auditor, auditor_id)
    if auditor is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no auditor {auditor_id}")
    api_key = new_secret("aud_")
    auditor.api_key_hash = hash_secret(api_key)
    uow.session.flush()
    return auditor, api_key


def deactivate(uow: UnitOfWork, partner_id: int) -> Partner:
    """Refuse the partner's key from now on (once); earns and redemptions it had accepted still
    go on-chain, and its rewards leave the catalog."""
    partner = brand(uow, partner_id)
    if partner.deactivated_at is None:
        partner.deactivated_at = utcnow()
        uow.session.execute(update(Reward).where(Reward.partner_id == partner_id).values(active=False))
    uow.session.flush()
    return partner


def budget(uow: UnitOfWork, partner: Partner) -> dict[str, int]:
    """The partner's budget: granted, on-chain what is left (read now), used (granted less that,
    less grants not on-chain yet and less what its campaigns took), pending (accepted, not yet
    on-chain), to grant (granted, not yet on-chain), moved to its campaigns and still to move
    off its on-chain budget, and available (left on-chain less pending and to move)."""
    onchain = token_of(uow, partner).issue_budget(partner.issuer_address)
    moved = int(
        uow.session.scalar(
            select(func.coalesce(func.sum(Campaign.budget_points), 0)).where(Campaign.partner_id == partner.id)
        )
        or 0
    )
    granted_onchain = partner.issue_budget_points - partner.budget_to_grant_points
    moved_onchain = moved - partner.budget_to_move_points
    left = onchain if partner.provisioned_at else partner.budget_points
    return {
        "granted_points": partner.issue_budget_points,
        "onchain_points": onchain,
        "used_points": max(0, granted_onchain - moved_onchain - onchain) if partner.provisioned_at else 0,
        "pending_points": partner.pending_points,
        "to_grant_points": partner.budget_to_grant_points,
        "moved_points": moved,
        "to_move_points": partner.budget_to_move_points,
        "available_points": max(0, left - partner.pending_points - partner.budget_to_move_points),
    }


def grant_budget(uow: UnitOfWork, partner_id: int, amount_points: int, program_id: int | None = None) -> Partner:
    """Grant the partner more budget, in a program (`None`: the first). The outbox writer
    carries it on-chain (the partner's earn batches there wait meanwhile); the API counts it
    once it is there. Returns the issuer account that has it."""
    owner = brand(uow, partner_id)
    if owner.kind == PartnerKind.CHARITY:
        raise charity_issues_nothing(owner.id)
    partner = account_in(uow, owner.id, program_id)
    partner_id = partner.id
    uow.session.execute(
        update(Partner)
        .where(Partner.id == partner_id)
        .values(
            issue_budget_points=Partner.issue_budget_points + amount_points,
            budget_to_grant_points=Partner.budget_to_grant_points + amount_points,
        )
        .execution_options(synchronize_session=False)
    )
    uow.session.refresh(partner)
    return partner


def list_partners(uow: UnitOfWork, cursor: str | None, limit: int, kind: PartnerKind | None = None) -> Page[Partner]:
    query = select(Partner) if kind is None else select(Partner).where(Partner.kind == kind)
    return keyset(uow.session, query, [Partner.id], cursor, limit)


def list_auditors(uow: UnitOfWork, cursor: str | None, limit: int) -> Page[Auditor]:
    return keyset(uow.session, select(Auditor), [Auditor.id], cursor, limit)


def _program(uow: UnitOfWork, program_id: int) -> Program:
    found = uow.session.get(Program, program_id)
    if found is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no program {program_id}")
    return found
