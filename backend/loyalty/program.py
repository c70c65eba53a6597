"""The loyalty program's rules on top of the database and the chain.

The chain holds balances; the database holds who is who, the catalog, reservations and the
outbox. Checks that need both (budget left, spendable points) count what is accepted but not yet
on-chain, so nothing is promised twice.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from loyalty.chain import Chain, checksum, is_zero
from loyalty.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.custody import Custody
from loyalty.db.models import Earn, EarnStatus, Member, Partner, Redemption, RedemptionStatus, Reward
from loyalty.errors import ConflictError, DomainError, ForbiddenError, NotFoundError, UnprocessableError

CONSENT_VALIDITY_S = 3_600
EarnRequestItems = tuple[int, Sequence[tuple[int, int, str]]]  # partner id, (member_id, amount_points, reason)


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass
class Program:
    """One unit of work: a database session, the chain and the key custody."""

    session: Session
    chain: Chain
    custody: Custody

    # ----------------------------------------------------------------------------- partners
    def create_partner(self, name: str, issue_budget_points: int) -> tuple[Partner, str]:
        """A partner with its own issuer account; returns its API key. Nothing goes to the chain
        here: the outbox writer gives the account gas, ISSUER_ROLE and the budget, and the
        partner's earns wait for that (they are accepted at once)."""
        if self.session.scalar(select(Partner).where(Partner.name == name)) is not None:
            raise ConflictError("partner_exists", f"a partner named {name!r} already exists")
        address, sealed = self.custody.new_wallet()
        api_key = "ptn_" + secrets.token_hex(24)
        partner = Partner(
            name=name,
            api_key_hash=hash_api_key(api_key),
            issuer_address=address,
            issuer_key_sealed=sealed,
            issue_budget_points=issue_budget_points,
            budget_points=issue_budget_points,
            pending_points=0,
        )
        self.session.add(partner)
        self.session.flush()
        return partner, api_key

    def partner(self, partner_id: int) -> Partner:
        partner = self.session.get(Partner, partner_id)
        if partner is None:
            raise NotFoundError("partner_not_found", f"no partner {partner_id}")
        return partner

    # ------------------------------------------------------------------------------ members
    def create_member(self, external_id: str, wallet_address: str | None) -> Member:
        if self.session.scalar(select(Member).where(Member.external_id == external_id)) is not None:
            raise ConflictError("member_exists", f"a member with external_id {external_id!r} already exists")
        if wallet_address is None:
            address, sealed = self.custody.new_wallet()
            member = Member(external_id=external_id, wallet_address=address, custodial=True, wallet_key_sealed=sealed)
        else:
            address = checksum(wallet_address)
            self._check_wallet(address)
            if self.session.scalar(select(Member).where(Member.wallet_address == address)) is not None:
                raise ConflictError("wallet_taken", f"wallet {address} already belongs to a member")
            member = Member(external_id=external_id, wallet_address=address, custodial=False)
        self.session.add(member)
        self.session.flush()
        return member

    def _check_wallet(self, address: str) -> None:
        """A member's own wallet must be an account that can hold points and sign consents: not
        the zero address, not the token, not a contract (earning to it would revert or lock the
        points away, and fail every batch it is in)."""
        if is_zero(address) or address.lower() == self.chain.token.address.lower():
            raise UnprocessableError("invalid_wallet", f"{address} cannot hold points")
        if self.chain.has_code(address):
            raise UnprocessableError("invalid_wallet", f"{address} is a contract, not a wallet that can sign consents")

    def member(self, member_id: int) -> Member:
        member = self.session.get(Member, member_id)
        if member is None:
            raise NotFoundError("member_not_found", f"no member {member_id}")
        return member

    def lock_member(self, member: Member) -> None:
        """One redemption (or consent) of a member at a time: each counts the ones before it.
        A row lock on PostgreSQL; SQLite's writers take turns anyway (`write_lock`)."""
        self.session.execute(select(Member.id).where(Member.id == member.id).with_for_update())

    def spendable_points(self, member: Member) -> tuple[int, int]:
        """Points the member may still redeem, and the consent nonce the next redemption takes.

        Balance and nonce are read from the chain as of one block. A reserved redemption still
        holds its points until its burn is on-chain: one whose transaction is mined already (its
        nonce is below the chain's) is in the balance, not counted again."""
        block = self.chain.block_number()
        balance, nonce = self.chain.members_state([member.wallet_address], block)[member.wallet_address]
        held = self.session.execute(
            select(func.coalesce(func.sum(Redemption.amount_points), 0), func.count()).where(
                Redemption.member_id == member.id,
                Redemption.status == RedemptionStatus.RESERVED,
                or_(Redemption.write_id.is_(None), Redemption.nonce >= nonce),
            )
        ).one()
        return balance - int(held[0]), nonce + int(held[1])

    # ------------------------------------------------------------------------------ earning
    def accept_earns(self, requests: Sequence[EarnRequestItems]) -> list[list[int] | DomainError]:
        """Put the earns of several requests in the outbox; each request is accepted or refused whole.

        A request is a partner id and its (member_id, amount_points, reason) items. The answer for
        each is its earn ids, or why it was refused: an unknown member, or the partner's budget
        exceeded (earns not yet on-chain count against it). Refused requests write nothing.

        The budgets are read under a row lock and written back in the same transaction. The budget
        and pending columns are only ever written under `write_lock`, which SQLite needs since it
        ignores FOR UPDATE.
        """
        member_ids = {member_id for _, items in requests for member_id, _, _ in items}
        found = set(self.session.scalars(select(Member.id).where(Member.id.in_(member_ids))))
        budgets = self.session.execute(
            select(Partner.id, Partner.budget_points - Partner.pending_points)
            .where(Partner.id.in_({partner_id for partner_id, _ in requests}))
            .with_for_update()
        )
        left = {partner_id: int(points) for partner_id, points in budgets}
        answers: list[list[int] | DomainError] = []
        reserved: dict[int, int] = {}
        rows = []
        for partner_id, items in requests:
            total = sum(amount for _, amount, _ in items)
            if missing := sorted({member_id for member_id, _, _ in items} - found):
                answers.append(NotFoundError("member_not_found", f"no member {missing[0]}"))
            elif total > left[partner_id]:
                detail = f"partner {partner_id} may earn {left[partner_id]} more points, not {total}"
                answers.append(UnprocessableError("budget_exceeded", detail))
            else:
                left[partner_id] -= total
                reserved[partner_id] = reserved.get(partner_id, 0) + total
                answers.append([])
                rows += [
                    {
                        "partner_id": partner_id,
                        "member_id": m,
                        "amount_points": a,
                        "reason": r,
                        "status": EarnStatus.PENDING,
                    }
                    for m, a, r in items
                ]
        for partner_id, total in reserved.items():
            self.session.execute(
                update(Partner)
                .where(Partner.id == partner_id)
                .values(pending_points=Partner.pending_points + total)
                .execution_options(synchronize_session=False)
            )
        ids = iter(
            self.session.scalars(insert(Earn).returning(Earn.id, sort_by_parameter_order=True), rows) if rows else []
        )
        for answer, (_, items) in zip(answers, requests, strict=True):
            if isinstance(answer, list):
                answer.extend(next(ids) for _ in items)
        return answers

    def earn(self, earn_id: int, partner_id: int | None) -> Earn:
        earn = self.session.get(Earn, earn_id)
        if earn is None or (partner_id is not None and earn.partner_id != partner_id):
            raise NotFoundError("earn_not_found", f"no earn {earn_id}")
        return earn

    # ------------------------------------------------------------------------------ rewards
    def reward(self, reward_id: int, partner_id: int | None = None) -> Reward:
        reward = self.session.get(Reward, reward_id)
        if reward is None:
            raise NotFoundError("reward_not_found", f"no reward {reward_id}")
        if partner_id is not None and reward.partner_id != partner_id:
            raise ForbiddenError("forbidden", f"reward {reward_id} belongs to another partner")
        return reward

    # ---------------------------------------------------------------------------- redeeming
    def redemption_consent(self, member: Member, reward: Reward, nonce: int | None = None) -> RedeemConsent:
        """The consent a redemption of `reward` by `member` needs: a fresh ref (a label; the
        chain does not spend it) and the member's next nonce, counting redemptions still to burn."""
        partner = self.partner(reward.partner_id)
        nonce = self.spendable_points(member)[1] if nonce is None else nonce  # the chain first, then the ref's row lock
        while not claim_ref(self.session, partner.id, ref := next_ref(self.session, partner.id)):
            pass  # the outbox took it meanwhile: take the next
        return RedeemConsent(
            member=member.wallet_address,
            issuer=partner.issuer_address,
            amount_points=reward.cost_points,
            reward_id=reward.id,
            ref=ref,
            nonce=nonce,
            deadline=int(time.time()) + CONSENT_VALIDITY_S,
        )

    def typed_data(self, consent: RedeemConsent) -> dict[str, object]:
        return redeem_typed_data(
            consent,
            chain_id=self.chain.chain_id,
            token_address=self.chain.token.address,
            token_name=self.chain.token_name,
        )

    def reserve_redemption(
        self, member: Member, reward: Reward, consent: RedeemConsent | None, signature: bytes | None
    ) -> Redemption:
        """Phase one: hold the stock and the points, and queue the burn for the outbox."""
        if not reward.active:
            raise ConflictError("reward_inactive", f"reward {reward.id} is not active")
        if consent is None and (not member.custodial or member.wallet_key_sealed is None):
            raise UnprocessableError(
                "signature_required", f"member {member.id} holds their own wallet: send `signature` and `deadline`"
            )
        self.lock_member(member)
        spendable, next_nonce = self.spendable_points(member)
        if consent is None:
            assert member.wallet_key_sealed is not None
            consent = self.redemption_consent(member, reward, next_nonce)
            wallet = self.custody.open(member.wallet_address, member.wallet_key_sealed)
            signature = sign_typed_data(self.typed_data(consent), wallet.key)
        elif consent.nonce != next_nonce:
            raise ConflictError(
                "consent_stale",
                f"the consent was signed for nonce {consent.nonce}, but the member's next redemption takes nonce "
                f"{next_nonce} (another redemption or a permit came first): ask for a new consent",
            )
        assert signature is not None
        taken = self.session.execute(
            update(Reward)
            .where(Reward.id == reward.id, Reward.stock > 0)
            .values(stock=Reward.stock - 1)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError("reward_out_of_stock", f"reward {reward.id} is out of stock")
        if spendable < reward.cost_points:
            raise UnprocessableError(
                "insufficient_points",
                f"member {member.id} has {spendable} spendable points; reward costs {reward.cost_points}",
            )
        redemption = Redemption(
            partner_id=reward.partner_id,
            member_id=member.id,
            reward_id=reward.id,
            amount_points=reward.cost_points,
            ref=consent.ref,
            nonce=consent.nonce,
            deadline=consent.deadline,
            signature=signature,
        )
        self.session.add(redemption)
        self.session.flush()
        self.session.refresh(reward)
        return redemption

    def redemption(self, redemption_id: int) -> Redemption:
        redemption = self.session.get(Redemption, redemption_id)
        if redemption is None:
            raise NotFoundError("redemption_not_found", f"no redemption {redemption_id}")
        return redemption


# A partner's refs: the issuer account's sequence numbers on the chain (each works once). Both the
# API (redemption consents) and the outbox (earn batches) take them, so a ref is claimed with a
# conditional UPDATE that only one of them can win.
def next_ref(session: Session, partner_id: int) -> int:
    """The partner's next unclaimed ref."""
    return int(session.scalar(select(Partner.next_ref).where(Partner.id == partner_id)) or 1)


def claim_ref(session: Session, partner_id: int, ref: int) -> bool:
    """Claim `ref` (read with `next_ref`) in the current transaction; False if another writer did first."""
    claimed = session.execute(
        update(Partner)
        .where(Partner.id == partner_id, Partner.next_ref == ref)
        .values(next_ref=ref + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]
