"""Members' exchanges of one program's points for another's under registered agreements.

An exchange is a consented redemption on the source token (the member's EIP-712 `Redeem`
consent names the exchange contract as issuer and the agreement as `rewardId`) and a mint on the
target, in one transaction the outbox relays. Nothing moves without the member: a self-custody
member signs a quote; a custodial member asks in its own session, approves what a partner asked
for, or gives the partner a one-time code (the same codes as for redemptions). Exchanges share
the source token's consent nonce with redemptions (`members.spendable_points`), so neither can
spend points the other holds.

Like a redemption it is two-phase: reserved (points held, queued), then confirmed or voided.
What the chain would refuse (the agreement's caps and credit limit, an overdue payer, the
target's incoming budget) is refused here first with the chain's own figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.chain.exchange import Standing
from loyalty.db.models import (
    AgreementStatus,
    ChainWrite,
    Exchange,
    ExchangeStatus,
    Member,
    MemberLink,
    Program,
    RateAgreement,
    Redemption,
    RedemptionStatus,
    Reward,
    WriteStatus,
    utcnow,
)
from loyalty.domain.consent import (
    RedeemConsent,
    recover_signer,
    redeem_typed_data,
    typed_data_digest,
)
from loyalty.domain.exchange import Agreement, QuoteRefused
from loyalty.domain.exchange import quote as domain_quote
from loyalty.errors import ConflictError, DomainError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import agreements, credentials, members, webhooks
from loyalty.services.lists import Page, keyset
from loyalty.services.purchases import program
from loyalty.services.redemptions import APPROVAL_WINDOW, CONSENT_VALIDITY_S, usable_signature
from loyalty.services.uow import UnitOfWork

T = TypeVar("T")
MAX_POINTS = 2**63 - 1  # what the database holds in one amount
REF_WINDOW = 64  # the target token's window of refs (`PackedIssuer.REF_WINDOW`)


@dataclass(frozen=True)
class Route:
    """A registered agreement in force, with its terms and programs."""

    row: RateAgreement
    terms: Agreement
    source: Program
    target: Program

    @property
    def reward_id(self) -> int:
        """The consent's `rewardId`: the agreement's id as a number."""
        return int(self.row.agreement_id, 16)


class ChainView:
    """The chain reads exchange requests need, as of one block, made before the write lock is
    taken (`prefetch`: the members' balances and nonces in one batch per token). What one
    agreement or program shows (its debt and calendar, the target's incoming budget) is shared
    by every request in the same block (kept on the runtime's exchange client); what was
    accepted since is counted from the database."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow, self.block = uow, uow.chain.block_number()
        self._states: dict[tuple[int, str], tuple[int, int]] = {}

    def prefetch(self, wanted: list[tuple[Route, Member]]) -> None:
        by_source: dict[int, tuple[Program, list[str]]] = {}
        for found, member in wanted:
            by_source.setdefault(found.source.id, (found.source, []))[1].append(member.wallet_address)
            self.standing(found)
            self.incoming_budget(found)
        for program_id, (source, wallets) in by_source.items():
            token = self.uow.token_at(str(source.token_address))
            for wallet, state in token.members_state(sorted(set(wallets)), self.block).items():
                self._states[(program_id, wallet)] = state

    def state(self, source: Program, wallet: str) -> tuple[int, int]:
        """The member's (balance, nonce) on the source token."""
        if (source.id, wallet) not in self._states:
            token = self.uow.token_at(str(source.token_address))
            self._states[(source.id, wallet)] = token.members_state([wallet], self.block)[wallet]
        return self._states[(source.id, wallet)]

    def standing(self, found: Route) -> Standing:
        return self._once(
            ("standing", found.row.agreement_id), lambda: self.uow.exchange().standing(found.terms, self.block)
        )

    def incoming_budget(self, found: Route) -> int:
        target = self.uow.token_at(str(found.target.token_address))
        return self._once(("incoming", target.address), lambda: target.issue_budget(self.uow.exchange().address))

    def member_used(self, found: Route, wallet: str) -> int:
        return self.uow.exchange().member_used(found.terms, wallet, self.block)

    def _once(self, key: tuple[str, str], read: Callable[[], T]) -> T:
        shared = self.uow.exchange().reads
        hit = shared.get(key)
        if hit is not None and hit[0] == self.block:
            return cast(T, hit[1])
        value = read()
        shared[key] = (self.block, value)
        return value


def route(uow: UnitOfWork, agreement_row_id: int, partner_id: int | None) -> Route:
    """The agreement, if registered and in force now; a partner uses only its own (another's
    is `404`)."""
    row = agreements.get(uow, agreement_row_id, partner_id)
    if row.status != AgreementStatus.REGISTERED:
        raise ConflictError(ErrorCode.AGREEMENT_NOT_REGISTERED, f"agreement {row.id} is {row.status}, not registered")
    terms = agreements.terms_of(row)
    now = int(time.time())
    if not terms.valid_from <= now < terms.valid_until:
        raise ConflictError(
            ErrorCode.AGREEMENT_NOT_IN_FORCE,
            f"agreement {row.id} is in force from {terms.valid_from} until {terms.valid_until}; it is {now}",
        )
    return Route(row, terms, program(uow.session, row.source_program_id), program(uow.session, row.target_program_id))


def amount_out(route_: Route, amount_in: int) -> int:
    """What `amount_in` gives under the agreement (`422 exchange_amount_invalid` if it takes no such amount)."""
    try:
        out = domain_quote(route_.terms, amount_in)[0]
    except QuoteRefused as refused:
        raise UnprocessableError(ErrorCode.EXCHANGE_AMOUNT_INVALID, str(refused)) from refused
    if out > MAX_POINTS:
        raise UnprocessableError(
            ErrorCode.EXCHANGE_AMOUNT_INVALID, f"{amount_in} points in would give {out} out, more than {MAX_POINTS}"
        )
    return out


def consent_of(
    uow: UnitOfWork, route_: Route, member: Member, amount_in: int, ref: int, nonce: int, deadline: int
) -> RedeemConsent:
    return RedeemConsent(
        member.wallet_address, uow.exchange().address, amount_in, route_.reward_id, ref, nonce, deadline
    )


def typed_data(uow: UnitOfWork, route_: Route, consent: RedeemConsent) -> dict[str, object]:
    """The consent's EIP-712 typed data on the source token."""
    source = uow.token_at(str(route_.source.token_address))
    return redeem_typed_data(consent, chain_id=uow.chain.chain_id, token_address=source.address, token_name=source.name)


def take_refs(session: Session, program_id: int, count: int = 1) -> int:
    """Claim `count` of the exchange's refs on a program's token; returns the first. The chain
    takes each ref once, within a window of the newest (64): they are handed out in order."""
    while True:
        first = int(session.scalar(select(Program.exchange_next_ref).where(Program.id == program_id)) or 1)
        claimed = session.execute(
            update(Program)
            .where(Program.id == program_id, Program.exchange_next_ref == first)
            .values(exchange_next_ref=first + count)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            return first


def _newest_sent_ref(session: Session, program_id: int) -> int:
    """The newest ref an exchange into the program was sent with: the chain takes no ref
    `REF_WINDOW` or more below the newest it used."""
    newest = session.scalar(
        select(func.max(Exchange.ref)).where(Exchange.target_program_id == program_id, Exchange.write_id.is_not(None))
    )
    return int(newest or 0)


def quote(
    uow: UnitOfWork,
    member: Member,
    agreement_row_id: int,
    amount_in: int,
    partner_id: int | None,
) -> tuple[Exchange, dict[str, object]]:
    """A consent for a self-custody member to sign (valid for an hour, works once), recorded
    as a `quoted` exchange."""
    if member.custodial:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR,
            f"the service keeps member {member.id}'s wallet: it needs no consent to sign, only the member's approval",
        )
    found = route(uow, agreement_row_id, partner_id)
    out = amount_out(found, amount_in)
    members.lock(uow, member)
    state = ChainView(uow).state(found.source, member.wallet_address)
    nonce = members.spendable_points(uow, member, found.source.id, state)[1]
    consent = consent_of(
        uow,
        found,
        member,
        amount_in,
        take_refs(uow.session, found.target.id),
        nonce,
        int(time.time()) + CONSENT_VALIDITY_S,
    )
    quoted = _new(found, member, amount_in, out, partner_id, ExchangeStatus.QUOTED)
    quoted.ref, quoted.nonce, quoted.deadline = consent.ref, consent.nonce, consent.deadline
    uow.session.add(quoted)
    uow.session.flush()
    return quoted, typed_data(uow, found, consent)


def request(
    uow: UnitOfWork,
    member: Member,
    agreement_row_id: int,
    amount_in: int,
    *,
    partner_id: int | None,
    by_member: bool = False,
    signature: bytes | None = None,
    deadline: int | None = None,
    code: str | None = None,
    view: ChainView | None = None,
) -> Exchange:
    """An exchange for `member`, with its consent or awaiting it.

    Self-custody: the member's signature over a quote (`signature`, `deadline`). Custodial: the
    member's own session (`by_member`), a one-time `code` it gave partner `partner_id`, or else
    the exchange waits (`awaiting_member`) until the member approves it. `view`: the chain as
    read before the write lock (else read now)."""
    found = route(uow, agreement_row_id, None if by_member else partner_id)
    out = amount_out(found, amount_in)
    if not member.custodial:
        if signature is None or deadline is None:
            raise UnprocessableError(
                ErrorCode.SIGNATURE_REQUIRED,
                f"member {member.id} holds their own wallet: send `signature` and `deadline` of a consent "
                "(POST /v1/exchanges/consents)",
            )
        quoted, signature = _signed(uow, found, member, amount_in, signature, deadline)
        return _reserve(uow, found, member, quoted, view, signature=signature)
    if signature is not None or deadline is not None:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR,
            f"the service keeps member {member.id}'s wallet: send the member's `redemption_code`, or nothing "
            "and the member approves the exchange",
        )
    if code is not None:
        if partner_id is None:
            raise UnprocessableError(ErrorCode.REDEMPTION_CODE_INVALID, "a member's code is given to a partner")
        credentials.use_redemption_code(uow, member, partner_id, code, amount_in)
    status = ExchangeStatus.RESERVED if by_member or code is not None else ExchangeStatus.AWAITING_MEMBER
    row = _new(found, member, amount_in, out, None if by_member else partner_id, status)
    if status == ExchangeStatus.AWAITING_MEMBER:
        uow.session.add(row)
        uow.session.flush()
        return row
    return _reserve(uow, found, member, row, view)


@dataclass(frozen=True)
class Asked:
    """One exchange of a batch, as `request` takes it."""

    member_id: int
    agreement_id: int
    amount_in: int
    code: str | None = None
    signature: bytes | None = None
    deadline: int | None = None


def request_many(uow: UnitOfWork, asked: list[Asked], partner_id: int, view: ChainView) -> list[Exchange | DomainError]:
    """Many members' exchanges a partner relays at once, each checked as `request` checks it
    and each standing alone (a refused one is its `DomainError`, in its place); a member not
    linked to the partner, or an agreement it is no party to, refuses them all. Custodial
    members with a code go together: their members, holdings and limits are read once for the
    batch and counted on as each is accepted; the others go one by one."""
    session = uow.session
    results: list[Exchange | DomainError | None] = [None] * len(asked)
    routes: dict[int, Route | DomainError] = {}
    for agreement_id in sorted({a.agreement_id for a in asked}):
        try:
            routes[agreement_id] = route(uow, agreement_id, partner_id)
        except NotFoundError:  # another's agreement: the whole request is refused
            raise
        except DomainError as refused:  # not registered, or not in force: its items are refused
            routes[agreement_id] = refused
    linked = set(
        session.scalars(
            select(MemberLink.member_id).where(
                MemberLink.partner_id == partner_id, MemberLink.member_id.in_({a.member_id for a in asked})
            )
        )
    )
    if missing := {a.member_id for a in asked} - linked:
        raise NotFoundError(ErrorCode.MEMBER_NOT_FOUND, f"no member {min(missing)}")
    found_members = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(linked)))}
    together: list[tuple[int, Route, Member, int]] = []
    for i, item in enumerate(asked):
        found, member = routes[item.agreement_id], found_members[item.member_id]
        try:
            if isinstance(found, DomainError):
                raise found
            if member.custodial and item.code is not None and item.signature is None and item.deadline is None:
                together.append((i, found, member, amount_out(found, item.amount_in)))
                continue
            with session.begin_nested():
                results[i] = request(
                    uow, member, item.agreement_id, item.amount_in, partner_id=partner_id, signature=item.signature,
                    deadline=item.deadline, code=item.code, view=view,
                )  # fmt: skip
        except DomainError as refused:
            results[i] = refused
    if together:
        _reserve_together(uow, asked, together, partner_id, view, results)
    return [r for r in results if r is not None]


def _reserve_together(
    uow: UnitOfWork,
    asked: list[Asked],
    together: list[tuple[int, Route, Member, int]],
    partner_id: int,
    view: ChainView,
    results: list[Exchange | DomainError | None],
) -> None:
    session = uow.session
    ids = sorted({m.id for _, _, m, _ in together})
    session.execute(select(Member.id).where(Member.id.in_(ids)).with_for_update(key_share=True))
    codes = credentials.redemption_codes_fitting(
        uow, partner_id, [(m.id, asked[i].code or "", asked[i].amount_in) for i, _, m, _ in together]
    )
    holding = _holdings(session, ids)
    limits: dict[int, _Held] = {}
    into: dict[int, int] = {}
    member_in: dict[tuple[int, int], int] = {}  # (agreement, member): points in on their way, this batch's included
    accepted: list[tuple[int, Exchange, str]] = []
    for (i, found, member, out), code in zip(together, codes, strict=True):
        item = asked[i]
        try:
            if code is None:
                raise UnprocessableError(
                    ErrorCode.REDEMPTION_CODE_INVALID,
                    f"no unused, unexpired code of member {member.id} for this partner covers {item.amount_in} points",
                )
            balance = view.state(found.source, member.wallet_address)[0]
            held_points, held_count = holding.get((member.id, found.source.id), (0, 0))
            if balance - held_points < item.amount_in:
                raise UnprocessableError(
                    ErrorCode.INSUFFICIENT_POINTS,
                    f"member {member.id} has {balance - held_points} spendable points in program {found.source.id}; "
                    f"the exchange takes {item.amount_in}",
                )
            if found.row.id not in limits:
                limits[found.row.id] = _held(session, found.row.id, None)
            if found.target.id not in into:
                into[found.target.id] = _held_into(session, found.target.id)
            row = _new(found, member, item.amount_in, out, partner_id, ExchangeStatus.RESERVED)
            mine = (found.row.id, member.id)
            if mine not in member_in:
                member_in[mine] = (
                    _held(session, found.row.id, member.id).member_in if found.terms.max_in_per_member_period else 0
                )
            _check(view, found, member, row, limits[found.row.id].out, member_in[mine], into[found.target.id])
        except DomainError as refused:
            results[i] = refused
            continue
        holding[(member.id, found.source.id)] = (held_points + item.amount_in, held_count + 1)
        limits[found.row.id] = _Held(limits[found.row.id].out + out, 0)
        member_in[mine] += item.amount_in
        into[found.target.id] += out
        accepted.append((i, row, code))
    spent = credentials.spend_redemption_codes(uow, [code for _, _, code in accepted])
    for i, row, code in accepted:
        if code in spent:
            session.add(row)
            results[i] = row
        else:  # spent meanwhile by a racing request
            results[i] = UnprocessableError(ErrorCode.REDEMPTION_CODE_INVALID, "the code was used meanwhile")
    session.flush()


def _holdings(session: Session, member_ids: list[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """What the members' spends on their way hold, by (member, program): (points, count).
    Counted from the database only: a spend whose write is mined already is held here (and
    out of the chain's balance), erring on the side of refusing."""
    held: dict[tuple[int, int], tuple[int, int]] = {}
    for member_id, program_id, points, count in session.execute(
        select(Exchange.member_id, Exchange.source_program_id, func.sum(Exchange.amount_in), func.count())
        .where(Exchange.member_id.in_(member_ids), Exchange.status == ExchangeStatus.RESERVED)
        .group_by(Exchange.member_id, Exchange.source_program_id)
    ):
        held[(member_id, program_id)] = (int(points), int(count))
    for member_id, program_id, points, count in session.execute(
        select(Redemption.member_id, Reward.program_id, func.sum(Redemption.amount_points), func.count())
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.member_id.in_(member_ids), Redemption.status == RedemptionStatus.RESERVED)
        .group_by(Redemption.member_id, Reward.program_id)
    ):
        before = held.get((member_id, program_id), (0, 0))
        held[(member_id, program_id)] = (before[0] + int(points), before[1] + int(count))
    return held


def approve(uow: UnitOfWork, member: Member, exchange_id: int) -> Exchange:
    """The member approves an exchange a partner asked for: reserved (the outbox signs its
    consent with the member's custodial key when it sends it)."""
    awaiting = _awaiting(uow, member, exchange_id)
    found = route(uow, awaiting.agreement_id, None)
    return _reserve(uow, found, member, awaiting, None)


def decline(uow: UnitOfWork, member: Member, exchange_id: int) -> Exchange:
    """The member declines: nothing was held, nothing moves."""
    awaiting = _awaiting(uow, member, exchange_id)
    _leave(
        uow.session,
        awaiting.id,
        ExchangeStatus.AWAITING_MEMBER,
        ExchangeStatus.DECLINED,
        error="declined by the member",
    )
    uow.session.refresh(awaiting)
    return awaiting


def decline_unanswered(session: Session, now: datetime) -> int:
    """Exchanges left unanswered past `APPROVAL_WINDOW` are declined, and reserved ones the
    outbox could not send in that time (the target's budget spent, a role missing) are voided:
    a member's points are never held for good. Returns how many."""
    declined = session.execute(
        update(Exchange)
        .where(Exchange.status == ExchangeStatus.AWAITING_MEMBER, Exchange.created_at < now - APPROVAL_WINDOW)
        .values(status=ExchangeStatus.DECLINED, error="not approved in time")
    )
    voided = session.execute(
        update(Exchange)
        .where(
            Exchange.status == ExchangeStatus.RESERVED,
            Exchange.write_id.is_(None),
            Exchange.updated_at < now - APPROVAL_WINDOW,
        )
        .values(status=ExchangeStatus.VOIDED, error="not sent in time: the chain would not take it for a day")
    )
    return int(declined.rowcount) + int(voided.rowcount)  # type: ignore[attr-defined]


def _new(
    found: Route, member: Member, amount_in: int, out: int, partner_id: int | None, status: ExchangeStatus
) -> Exchange:
    return Exchange(
        agreement_id=found.row.id, source_program_id=found.source.id, target_program_id=found.target.id,
        member_id=member.id, partner_id=partner_id, amount_in=amount_in, amount_out=out, status=status,
    )  # fmt: skip


def _awaiting(uow: UnitOfWork, member: Member, exchange_id: int) -> Exchange:
    row = get(uow, exchange_id, member_id=member.id)
    if row.status != ExchangeStatus.AWAITING_MEMBER or row.created_at < utcnow() - APPROVAL_WINDOW:
        raise ConflictError(
            ErrorCode.EXCHANGE_NOT_AWAITING, f"exchange {exchange_id} is {row.status}, not awaiting approval"
        )
    return row


def _leave(session: Session, exchange_id: int, before: ExchangeStatus, after: ExchangeStatus, **values: object) -> None:
    """Move an exchange from `before` to `after`, once: a racing second answer finds it gone."""
    changed = session.execute(
        update(Exchange)
        .where(Exchange.id == exchange_id, Exchange.status == before)
        .values(status=after, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        code = ErrorCode.CONSENT_USED if before == ExchangeStatus.QUOTED else ErrorCode.EXCHANGE_NOT_AWAITING
        raise ConflictError(code, f"exchange {exchange_id} was answered already")


def _reserve(
    uow: UnitOfWork, found: Route, member: Member, row: Exchange, view: ChainView | None, **values: object
) -> Exchange:
    """Phase one: hold the points, after checking what the chain would check (balance and
    nonce on the source, the agreement's limits, the target's incoming budget)."""
    session = uow.session
    view = view or ChainView(uow)
    members.lock(uow, member)
    state = view.state(found.source, member.wallet_address)
    spendable, next_nonce = members.spendable_points(uow, member, found.source.id, state)
    if (
        row.status == ExchangeStatus.QUOTED
        and (row.ref or 0) <= _newest_sent_ref(session, found.target.id) - REF_WINDOW
    ):
        raise ConflictError(
            ErrorCode.CONSENT_STALE,
            f"the consent's ref {row.ref} is too far behind the refs the exchange used on program {found.target.id} "
            f"(the chain takes only the newest {REF_WINDOW}): ask for a new consent",
        )
    if row.status == ExchangeStatus.QUOTED and row.nonce != next_nonce:
        raise ConflictError(
            ErrorCode.CONSENT_STALE,
            f"the consent was signed for nonce {row.nonce}, but the member's next spend takes nonce {next_nonce} "
            "(a redemption or another exchange came first): ask for a new consent",
        )
    if spendable < row.amount_in:
        raise UnprocessableError(
            ErrorCode.INSUFFICIENT_POINTS,
            f"member {member.id} has {spendable} spendable points in program {found.source.id}; the exchange takes {row.amount_in}",
        )
    _check_limits(uow, view, found, member, row)
    if row.id is None:
        session.add(row)
        session.flush()
    else:
        _leave(session, row.id, ExchangeStatus(row.status), ExchangeStatus.RESERVED, **values)
        session.refresh(row)
    return row


def _check_limits(uow: UnitOfWork, view: ChainView, found: Route, member: Member, row: Exchange) -> None:
    held = _held(uow.session, found.row.id, member.id)
    _check(view, found, member, row, held.out, held.member_in, _held_into(uow.session, found.target.id))


def _check(
    view: ChainView, found: Route, member: Member, row: Exchange, held_out: int, member_in: int, held_into: int
) -> None:
    """What the exchange would refuse, with the chain's figures and what is on its way
    (`held_out` under the agreement, `member_in` of the member's under it, `held_into` the target)."""
    terms = found.terms
    standing = view.standing(found)
    now = int(time.time())
    if standing.overdue_since and standing.overdue_since < now:
        raise ConflictError(
            ErrorCode.EXCHANGE_PAYER_OVERDUE,
            f"the payer of agreement {found.row.id} has a payment overdue since {standing.overdue_since}",
        )
    cap = terms.max_in_per_member_period
    used = view.member_used(found, member.wallet_address) + member_in if cap else 0
    if cap and used + row.amount_in > cap:
        raise UnprocessableError(
            ErrorCode.EXCHANGE_LIMIT_EXCEEDED,
            f"member {member.id} exchanged {used} this period; {row.amount_in} more passes the agreement's {cap} per member",
        )
    debt = standing.debt + (held_out + row.amount_out) * terms.price_per_point
    if terms.credit_limit and debt > terms.credit_limit:
        raise UnprocessableError(
            ErrorCode.EXCHANGE_LIMIT_EXCEEDED,
            f"the payer would owe {debt} this period, past the agreement's credit limit of {terms.credit_limit}",
        )
    budget = view.incoming_budget(found)
    if held_into + row.amount_out > budget:
        raise UnprocessableError(
            ErrorCode.INCOMING_BUDGET_EXCEEDED,
            f"program {found.target.id} takes {budget} more exchanged points; {held_into + row.amount_out} are asked for",
        )


@dataclass(frozen=True)
class _Held:
    out: int  # points out of the agreement's exchanges on their way
    member_in: int  # points in of the member's, under it


def _on_the_way(query: Any) -> Any:
    """Reserved exchanges not yet final: queued, or in a write still in flight (counted against
    limits the chain has not applied yet; one mined but not yet final is counted twice, erring
    on the side of refusing)."""
    return query.outerjoin(ChainWrite, ChainWrite.id == Exchange.write_id).where(
        Exchange.status == ExchangeStatus.RESERVED,
        or_(Exchange.write_id.is_(None), ChainWrite.status == WriteStatus.SENT),
    )


def _held(session: Session, agreement_row_id: int, member_id: int | None) -> _Held:
    out, member_in = session.execute(
        _on_the_way(
            select(
                func.coalesce(func.sum(Exchange.amount_out), 0),
                func.coalesce(func.sum(Exchange.amount_in).filter(Exchange.member_id == member_id), 0),
            )
        ).where(Exchange.agreement_id == agreement_row_id)
    ).one()
    return _Held(int(out), int(member_in))


def _held_into(session: Session, target_program_id: int) -> int:
    return int(
        session.scalar(
            _on_the_way(select(func.coalesce(func.sum(Exchange.amount_out), 0))).where(
                Exchange.target_program_id == target_program_id
            )
        )
        or 0
    )


def _signed(
    uow: UnitOfWork, found: Route, member: Member, amount_in: int, signature: bytes, deadline: int
) -> tuple[Exchange, bytes]:
    """The quote the member signed, found by the signature among its quotes with this
    agreement, amount and deadline; each works once. A contract wallet is asked (ERC-1271)."""
    quotes = uow.session.scalars(
        select(Exchange)
        .where(
            Exchange.member_id == member.id,
            Exchange.agreement_id == found.row.id,
            Exchange.amount_in == amount_in,
            Exchange.deadline == deadline,
            Exchange.status.in_((ExchangeStatus.QUOTED, ExchangeStatus.RESERVED, ExchangeStatus.CONFIRMED)),
            Exchange.ref.is_not(None),
        )
        .order_by(Exchange.id)
    ).all()
    if not quotes:
        raise NotFoundError(
            ErrorCode.CONSENT_NOT_FOUND, "no consent was issued for this member, agreement, amount and deadline"
        )
    signature = usable_signature(member, signature, deadline)
    source = uow.token_at(str(found.source.token_address))
    for quoted in quotes:
        assert quoted.ref is not None and quoted.nonce is not None
        typed = typed_data(uow, found, consent_of(uow, found, member, amount_in, quoted.ref, quoted.nonce, deadline))
        if (
            source.wallet_accepts(member.wallet_address, typed_data_digest(typed), signature)
            if member.smart_wallet
            else recover_signer(typed, signature) == member.wallet_address
        ):
            if quoted.status != ExchangeStatus.QUOTED:
                raise ConflictError(ErrorCode.CONSENT_USED, f"this consent was used by exchange {quoted.id}")
            return quoted, signature
    raise UnprocessableError(
        ErrorCode.INVALID_SIGNATURE, f"the signature is not {member.wallet_address}'s consent to this exchange"
    )


# --------------------------------------------------------------------------------- the outbox
def confirm(session: Session, write_id: int) -> None:
    """Phase two: the exchange transaction is final (burned and minted, or neither); each
    brand party to its agreement hears of it."""
    confirmed = session.execute(
        update(Exchange)
        .where(Exchange.write_id == write_id, Exchange.status == ExchangeStatus.RESERVED)
        .values(status=ExchangeStatus.CONFIRMED, updated_at=utcnow())
        .returning(Exchange.id)
    ).scalars()
    rows = session.execute(
        select(Exchange, RateAgreement.payer_id, RateAgreement.payee_id)
        .join(RateAgreement, RateAgreement.id == Exchange.agreement_id)
        .where(Exchange.id.in_(list(confirmed)))
    ).all()
    write = session.get(ChainWrite, write_id)
    webhooks.emit(
        session,
        "exchange.confirmed",
        [
            webhooks.Happened(f"exchange:{row.id}", brand_id, row.member_id,
                              {"exchange_id": row.id, "agreement_id": row.agreement_id, "member_id": row.member_id,
                               "source_program_id": row.source_program_id, "target_program_id": row.target_program_id,
                               "amount_in": row.amount_in, "amount_out": row.amount_out,
                               "tx_hash": write.tx_hash if write else None})
            for row, payer_id, payee_id in rows
            for brand_id in sorted({payer_id, payee_id})
        ],
    )  # fmt: skip


def void(session: Session, exchange_ids: list[int], error: str) -> None:
    """Refused before it was sent: nothing moved; the points are free again (one a write
    carries meanwhile, another writer's, is left to that write)."""
    session.execute(
        update(Exchange)
        .where(Exchange.id.in_(exchange_ids), Exchange.status == ExchangeStatus.RESERVED, Exchange.write_id.is_(None))
        .values(status=ExchangeStatus.VOIDED, error=error, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def requeue(session: Session, write_id: int) -> None:
    """The write carrying these exchanges can never be mined (dropped, or reverted as a
    whole): they go out again (a self-custody consent as signed; a custodial one signed anew)."""
    session.execute(
        update(Exchange)
        .where(Exchange.write_id == write_id, Exchange.status == ExchangeStatus.RESERVED)
        .values(write_id=None)
        .execution_options(synchronize_session=False)
    )


def unconfirm(session: Session, write_id: int) -> None:
    """A reorg took the exchange away: it is on its way again (the very same transaction)."""
    session.execute(
        update(Exchange)
        .where(Exchange.write_id == write_id, Exchange.status == ExchangeStatus.CONFIRMED)
        .values(status=ExchangeStatus.RESERVED)
    )


# --------------------------------------------------------------------------------- reading
def get(uow: UnitOfWork, exchange_id: int, partner_id: int | None = None, member_id: int | None = None) -> Exchange:
    """An exchange; a partner sees those it relayed or is a party to, a member its own."""
    row = uow.session.get(Exchange, exchange_id)
    if row is None or (member_id is not None and row.member_id != member_id):
        raise NotFoundError(ErrorCode.EXCHANGE_NOT_FOUND, f"no exchange {exchange_id}")
    if partner_id is not None and row.partner_id != partner_id:
        agreement = uow.session.get(RateAgreement, row.agreement_id)
        if agreement is None or partner_id not in (agreement.payer_id, agreement.payee_id):
            raise NotFoundError(ErrorCode.EXCHANGE_NOT_FOUND, f"no exchange {exchange_id}")
    return row


def page(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    member_id: int | None,
    status: ExchangeStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[Exchange]:
    """Exchanges, oldest first (quotes never signed left out); a partner's are those it relayed
    or is a party to."""
    query = select(Exchange).where(Exchange.status != ExchangeStatus.QUOTED)
    if partner_id is not None:
        parties = select(RateAgreement.id).where(
            or_(RateAgreement.payer_id == partner_id, RateAgreement.payee_id == partner_id)
        )
        query = query.where(or_(Exchange.partner_id == partner_id, Exchange.agreement_id.in_(parties)))
    if member_id is not None:
        query = query.where(Exchange.member_id == member_id)
    if status is not None:
        query = query.where(Exchange.status == status)
    return keyset(uow.session, query, [Exchange.id], cursor, limit)
