"""Every problem code is stable, unique and maps to an error status."""

from loyalty.errors import ErrorCode, NotFoundError


def test_errorCodes_areUniqueSnakeCaseWithAnErrorStatus() -> None:
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    for code in ErrorCode:
        assert code.value == code.name.lower()
        assert 400 <= code.status <= 599 and code.problem_title


def test_domainError_takesItsStatusFromItsCode() -> None:
    error = NotFoundError(ErrorCode.MEMBER_NOT_FOUND, "no member 3")
    assert (error.status, str(error.code), isinstance(error, LookupError)) == (404, "member_not_found", True)
