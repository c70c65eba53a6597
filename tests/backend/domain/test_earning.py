"""Which earn requests fit the partners' budgets: pure rules, no chain or database."""

from loyalty.domain.earning import EarnItem, EarnRequest, admit
from loyalty.errors import ErrorCode


def _request(partner_id: int, *amounts: int, member_id: int = 1) -> EarnRequest:
    return EarnRequest(partner_id, [EarnItem(member_id, amount, "") for amount in amounts])


def test_admit_acceptsInOrderUntilTheBudgetIsSpent() -> None:
    answers = admit([_request(1, 40, 50), _request(1, 20), _request(1, 10)], {1: {1}}, {1: 100})
    assert answers[0] is None
    assert answers[1] is not None and answers[1].code == ErrorCode.BUDGET_EXCEEDED
    assert "10 more points, not 20" in answers[1].detail
    assert answers[2] is None  # a refused request leaves its points to the next


def test_admit_refusesAWholeRequestWithAnUnknownMember() -> None:
    request = EarnRequest(1, [EarnItem(1, 5, ""), EarnItem(7, 5, ""), EarnItem(3, 5, "")])
    [answer] = admit([request], {1: {1}}, {1: 100})
    assert answer is not None and answer.code == ErrorCode.MEMBER_NOT_FOUND and answer.detail == "no member 3"


def test_admit_refusesAMemberLinkedOnlyToAnotherPartner() -> None:
    [answer] = admit([_request(2, 5, member_id=1)], {1: {1}}, {1: 100, 2: 100})
    assert answer is not None and answer.code == ErrorCode.MEMBER_NOT_FOUND


def test_admit_keepsEachPartnersBudgetApart() -> None:
    answers = admit([_request(1, 100), _request(2, 1), _request(1, 1)], {1: {1}, 2: {1}}, {1: 100, 2: 0})
    assert [a.code if a else None for a in answers] == [None, ErrorCode.BUDGET_EXCEEDED, ErrorCode.BUDGET_EXCEEDED]


def test_admit_doesNotChangeTheBudgetsItIsGiven() -> None:
    budgets = {1: 10}
    admit([_request(1, 10)], {1: {1}}, budgets)
    assert budgets == {1: 10}
