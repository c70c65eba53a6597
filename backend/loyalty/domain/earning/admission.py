"""Whether requests to earn fit the partners' budgets: accepted or refused whole, in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loyalty.errors import DomainError, ErrorCode, NotFoundError, UnprocessableError


@dataclass(frozen=True)
class EarnItem:
    """One member's earn within a request.

    Attributes:
        member_id: who earns.
        amount_points: how many points.
        reason: the partner's label for it.
    """

    member_id: int
    amount_points: int
    reason: str


@dataclass(frozen=True)
class EarnRequest:
    """A partner's request: all its items are accepted, or none. `account_id` is the partner's
    issuer account whose budget it takes (in another program than the first; unset: the
    partner's own)."""

    partner_id: int
    items: Sequence[EarnItem]
    account_id: int | None = None

    @property
    def issuer_id(self) -> int:
        return self.partner_id if self.account_id is None else self.account_id

    @property
    def total_points(self) -> int:
        return sum(item.amount_points for item in self.items)


def admit(
    requests: Sequence[EarnRequest], linked: dict[int, set[int]], budget_left: dict[int, int]
) -> list[DomainError | None]:
    """For each request, in order, None if it is accepted or why it is refused: a member the
    partner is not linked to (as if it did not exist: `linked` holds each partner's members
    among those asked for), or more points than the partner's budget has left after the
    requests accepted before it. `budget_left` is the points each issuer account may still
    earn (its budget less its earns not yet on-chain); it is not changed."""
    left = dict(budget_left)
    answers: list[DomainError | None] = []
    for request in requests:
        total = request.total_points
        if missing := sorted({item.member_id for item in request.items} - linked.get(request.partner_id, set())):
            answers.append(NotFoundError(ErrorCode.MEMBER_NOT_FOUND, f"no member {missing[0]}"))
        elif total > left[request.issuer_id]:
            detail = f"partner {request.issuer_id} may earn {left[request.issuer_id]} more points, not {total}"
            answers.append(UnprocessableError(ErrorCode.BUDGET_EXCEEDED, detail))
        else:
            left[request.issuer_id] -= total
            answers.append(None)
    return answers
