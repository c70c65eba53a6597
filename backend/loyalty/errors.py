"""The project's exception root; each error also inherits the matching built-in."""


class LoyaltyError(Exception):
    """Base of every loyalty-ledger error."""


class ChainUnavailableError(LoyaltyError, ConnectionError):
    """The chain node cannot be started or reached."""


class ChainMismatchError(ChainUnavailableError):
    """The node is not the chain (or the token) this database belongs to, or not one the
    operator's key may be used on."""


class TxRefusedError(LoyaltyError, ValueError):
    """The node refused a transaction outright: it was not accepted, so it cannot be mined.

    Attributes:
        reason: the node's message.
        data: revert data, when the refusal is a reverted call.
    """

    def __init__(self, reason: str, data: str | None = None) -> None:
        self.reason, self.data = reason, data
        super().__init__(reason)

    @property
    def lacks_funds(self) -> bool:
        """Refused for want of gas money: a top-up fixes it, nothing about the transaction does."""
        return "insufficient funds" in self.reason.lower()

    @property
    def about_the_transaction(self) -> bool:
        """Refused for something in the transaction itself (too much gas, too large), which
        sending it again would not change; other refusals (a full pool, a rate limit, a fee
        below the base fee) are worth another try."""
        reason = self.reason.lower()
        return any(
            cause in reason
            for cause in ("exceeds block gas limit", "intrinsic gas too low", "oversized data", "gas limit reached")
        )


class ConfigurationError(LoyaltyError, RuntimeError):
    """The service refuses to start as configured; the message says what to do."""


class ArtifactMissingError(LoyaltyError, FileNotFoundError):
    """The contracts have not been compiled (run `brownie compile` or `make up`)."""


class DeploymentError(LoyaltyError, RuntimeError):
    """Deploying the token failed."""


class ChainRevertError(LoyaltyError, RuntimeError):
    """A transaction or call reverted; `error` is the contract's custom error name."""

    def __init__(self, error: str, args: dict[str, object] | None = None) -> None:
        self.error = error
        self.error_args = args or {}
        shown = ", ".join(f"{k}={v}" for k, v in self.error_args.items())
        super().__init__(f"{error}({shown})")


class DomainError(LoyaltyError):
    """A request the program refuses; `code` is stable and shows in API problems.

    Attributes:
        code: machine-readable reason (`member_not_found`, `insufficient_points`, ...).
        status: the HTTP status it maps to.
        detail: what went wrong, for a person.
    """

    status = 400

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


class NotFoundError(DomainError, LookupError):
    status = 404


class ConflictError(DomainError):
    status = 409


class ForbiddenError(DomainError, PermissionError):
    status = 403


class UnprocessableError(DomainError, ValueError):
    status = 422
