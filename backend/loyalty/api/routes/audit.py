"""For auditors: the figures `loyalty audit verify` derives from the chain, each with the
transaction and block to follow on any block explorer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from sqlalchemy import select

from loyalty.api.deps import UowDep, require
from loyalty.api.schemas import (
    AuditCheck,
    AuditDiscrepancy,
    AuditEntry,
    AuditMember,
    AuditPartner,
    AuditProgress,
    AuditSummary,
    AuditTimeline,
    AuditTimelinePoint,
    IdPath,
    ProgramQuery,
)
from loyalty.audit.verify import CHECKS, timeline_of
from loyalty.audit.view import AuditView, AuditViews, Snapshot
from loyalty.db.models import Campaign, Partner, Program
from loyalty.errors import ErrorCode, UnprocessableError
from loyalty.services import members, partners, purchases
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[require("admin", "auditor")])


def program_view(request: Request, uow: UnitOfWork, program_id: int | None) -> tuple[Program, AuditView]:
    """The program (default: the first) and the replay of its token (`422 program_not_active`
    while it has none)."""
    program = purchases.program(uow.session, program_id or partners.FIRST_PROGRAM)
    if program.token_address is None:
        raise UnprocessableError(ErrorCode.PROGRAM_NOT_ACTIVE, f"program {program.id} has no token deployed yet")
    views: AuditViews = request.app.state.audit
    return program, views.of(program.token_address, int(program.deployment_block or 0))


@router.get("/progress", response_model=AuditProgress)
def progress(request: Request, uow: UowDep, program_id: ProgramQuery = None) -> AuditProgress:
    """How far this process's replay of a program's token is: `not_started`, `replaying` (with
    blocks done of blocks to go; the first replay of a long chain takes a while), or `ready`.
    Answers at once, while a replay runs."""
    program, view = program_view(request, uow, program_id)
    return AuditProgress(program_id=program.id, **asdict(view.progress()))


@router.get("/timeline", response_model=AuditTimeline)
def timeline(request: Request, uow: UowDep, program_id: ProgramQuery = None) -> AuditTimeline:
    """Outstanding (liability) and expired (breakage) points over time, re-derived from the
    token's events: 150 samples from its first change to the latest block, each with the
    block's time (the explorer's chart; `loyalty audit verify` reports the same)."""
    program, view = program_view(request, uow, program_id)
    with view.snapshot() as snapshot:
        points = timeline_of(snapshot.rpc, snapshot.ledger, view.from_block, snapshot.block_number)
    return AuditTimeline(
        program_id=program.id,
        points=[
            AuditTimelinePoint(
                block_number=b, at=datetime.fromtimestamp(t, UTC), outstanding_points=o, expired_points=e
            )
            for b, t, o, e in points
        ],
    )


@router.get("/summary", response_model=AuditSummary)
def summary(request: Request, uow: UowDep, program_id: ProgramQuery = None) -> AuditSummary:
    """Every issuer account's earned, redeemed, expired and outstanding points in a program
    (default: the first), re-derived from its token's events up to the latest block, with the
    contract's own supply and budgets beside them."""
    program, view = program_view(request, uow, program_id)
    accounts = {
        address: (partner_id, campaign_id)
        for address, partner_id, campaign_id in uow.session.execute(
            select(Partner.issuer_address, Partner.id, Campaign.id)
            .outerjoin(Campaign, Campaign.issuer_id == Partner.id)
            .where(Partner.program_id == program.id)
        )
    }
    known: dict[int, tuple[AuditSummary, Mapping[str, tuple[int, int | None]]]] = request.app.state.audit_summaries
    with view.snapshot() as snapshot:
        found = known.get(program.id)
        if found is None or found[0].block_number != snapshot.block_number or found[1] != accounts:
            found = known[program.id] = (_summary(snapshot, program.id, accounts), accounts)  # the same until a block
        return found[0]


def _summary(snapshot: Snapshot, program_id: int, accounts: Mapping[str, tuple[int, int | None]]) -> AuditSummary:
    issuers = snapshot.ledger.issuer_figures(snapshot.epoch)
    budgets = snapshot.budgets([i.address for i in issuers])
    outstanding, expired = snapshot.ledger.supply(snapshot.epoch)
    return AuditSummary(
        program_id=program_id,
        token_address=snapshot.ledger.params.token,
        chain_id=snapshot.ledger.params.chain_id,
        block_number=snapshot.block_number,
        members=len(snapshot.ledger.members),
        earned_points=sum(i.earned for i in issuers),
        redeemed_points=sum(i.redeemed_at for i in issuers),
        expired_points=expired,
        outstanding_points=outstanding,
        total_supply_onchain_points=snapshot.total_supply(),
        partners=[
            AuditPartner(
                partner_id=accounts.get(i.address, (None, None))[0],
                campaign_id=accounts.get(i.address, (None, None))[1],
                issuer_address=i.address,
                earned_points=i.earned,
                redeemed_at_points=i.redeemed_at,
                expired_points=i.expired,
                outstanding_points=i.outstanding,
                budget_remaining_points=i.budget_remaining,
                budget_onchain_points=budgets[i.address],
                last_tx_hash=i.last_tx_hash,
                last_block_number=i.last_block_number,
            )
            for i in issuers
        ],
        discrepancies=[AuditDiscrepancy(**asdict(d)) for d in snapshot.ledger.discrepancies],
        checks=_checks(snapshot, outstanding, [budgets[i.address] - i.budget_remaining for i in issuers]),
    )


def _checks(snapshot: Snapshot, outstanding: int, budget_gaps: list[int]) -> list[AuditCheck]:
    """The checks this replay makes, each with how many items it looked at and how many failed:
    the ledger's own, the supply and the budgets against the contract's (per-member balances and
    consents are the full audit's, `loyalty audit`)."""
    failed: dict[str, int] = {}
    for discrepancy in snapshot.ledger.discrepancies:
        failed[discrepancy.check] = failed.get(discrepancy.check, 0) + 1
    checked = dict(snapshot.ledger.checked)
    checked["total_supply"], failed["total_supply"] = 1, int(outstanding != snapshot.total_supply())
    checked["budgets"] = checked.get("budgets", 0) + len(budget_gaps)
    failed["budgets"] = failed.get("budgets", 0) + sum(gap != 0 for gap in budget_gaps)
    return [
        AuditCheck(name=name, description=text, checked=checked.get(name, 0), failed=failed.get(name, 0))
        for name, text in CHECKS.items()
        if name not in ("balances", "consents")
    ]


@router.get("/members/{member_id}", response_model=AuditMember)
def member(member_id: IdPath, request: Request, uow: UowDep, program_id: ProgramQuery = None) -> AuditMember:
    """A member's points in a program (default: the first) re-derived from its token's events,
    with every entry's transaction."""
    wallet = members.get(uow, member_id).wallet_address
    program, view = program_view(request, uow, program_id)
    with view.snapshot() as snapshot:
        return _member(snapshot, program.id, member_id, wallet)


def _member(snapshot: Snapshot, program_id: int, member_id: int, wallet: str) -> AuditMember:
    figures = snapshot.ledger.member_figures(wallet, snapshot.epoch)
    book = snapshot.ledger.members.get(wallet)
    return AuditMember(
        program_id=program_id,
        member_id=member_id,
        wallet_address=wallet,
        block_number=snapshot.block_number,
        earned_points=figures.earned,
        redeemed_points=figures.redeemed,
        received_points=figures.received,
        sent_points=figures.sent,
        expired_points=figures.expired,
        balance_points=figures.balance,
        balance_onchain_points=snapshot.balance_of(wallet),
        entries=[
            AuditEntry(
                kind=e.kind,  # type: ignore[arg-type]
                amount_points=e.amount_points,
                issuer_address=e.issuer,
                epoch=e.epoch,
                reward_id=e.reward_id,
                ref=e.ref,
                tx_hash=e.tx_hash,
                block_number=e.block_number,
            )
            for e in (book.entries if book else [])
        ],
    )
