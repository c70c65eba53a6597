"""Every exception of the project, and every problem `code` the API answers.

One exception root; each error also inherits the matching built-in (web3.py's style). A request
the program refuses is a `DomainError` carrying an `ErrorCode`, which fixes its HTTP status and
title: the code is the stable part clients program against.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """A problem's stable `code`, with the HTTP status and title it answers with.

    Attributes:
        status: the HTTP status.
        problem_title: the problem document's `title`, a short summary for people (`title`
            itself is a method of `str`).
    """

    status: int
    problem_title: str

    def __new__(cls, code: str, status: int, problem_title: str) -> ErrorCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status, member.problem_title = status, problem_title
        return member

    # the request itself
    MALFORMED_BODY = "malformed_body", 400, "The body is not JSON"
    VALIDATION_ERROR = "validation_error", 422, "Validation error"
    BODY_TOO_LARGE = "body_too_large", 413, "Body too large"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required", 422, "Idempotency-Key header required"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict", 409, "Idempotency-Key used with another request"
    NOT_FOUND = "not_found", 404, "Not found"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "Method not allowed"
    HTTP_ERROR = "http_error", 400, "HTTP error"
    INVALID_CURSOR = "invalid_cursor", 422, "The cursor is not one this list gave out"
    # who is calling
    UNAUTHORIZED = "unauthorized", 401, "Unauthorized"
    FORBIDDEN = "forbidden", 403, "Forbidden"
    SIGN_IN_FAILED = "sign_in_failed", 401, "Sign-in failed"
    PARTNER_DEACTIVATED = "partner_deactivated", 403, "The partner is deactivated"
    INVALID_RULE = "invalid_rule", 422, "Invalid rule"
    INVALID_LADDER = "invalid_ladder", 422, "Invalid tier ladder"
    INVALID_CAMPAIGN = "invalid_campaign", 422, "Invalid campaign"
    TOO_MANY_ATTEMPTS = "too_many_attempts", 429, "Too many attempts"
    BUSY = "busy", 503, "Busy: try again in a moment"
    LINK_INVALID = "link_invalid", 422, "The link is invalid, used or expired"
    # resources
    PARTNER_NOT_FOUND = "partner_not_found", 404, "No such partner"
    PARTNER_EXISTS = "partner_exists", 409, "Partner exists"
    AUDITOR_EXISTS = "auditor_exists", 409, "Auditor exists"
    MEMBER_NOT_FOUND = "member_not_found", 404, "No such member"
    MEMBER_EXISTS = "member_exists", 409, "Member exists"
    ORDER_EXISTS = "order_exists", 409, "The order was recorded already"
    EVENT_EXISTS = "event_exists", 409, "The event was recorded already"
    REFUND_EXISTS = "refund_exists", 409, "The refund id was used for other lines"
    CURRENCY_NOT_ACCEPTED = "currency_not_accepted", 422, "The program prices purchases in another currency"
    CAMPAIGN_NOT_FOUND = "campaign_not_found", 404, "No such campaign"
    WEBHOOK_NOT_FOUND = "webhook_not_found", 404, "No such webhook endpoint or delivery"
    REFERRAL_CODE_INVALID = "referral_code_invalid", 422, "No member has this referral code"
    SELF_REFERRAL = "self_referral", 422, "A member cannot refer itself"
    PAYMENT_USED = "payment_used", 409, "The payment paid for something already"
    PURCHASE_REFUNDED = "purchase_refunded", 409, "The purchase is refunded in full"
    PROGRAM_EXISTS = "program_exists", 409, "A program has this token already"
    PROGRAM_TOKEN_INVALID = "program_token_invalid", 422, "Not a LoyaltyPoints token the operator administers"
    PROGRAM_NOT_ACTIVE = "program_not_active", 422, "The program's token is not deployed yet"
    PROGRAM_NOT_JOINED = "program_not_joined", 422, "The partner does not issue in this program"
    PARTNER_IN_PROGRAM = "partner_in_program", 409, "The partner issues in this program already"
    NOT_A_CHARITY = "not_a_charity", 422, "The partner is not a charity"
    CHARITY_ISSUES_NOTHING = "charity_issues_nothing", 422, "A charity takes donations, and issues or sells nothing"
    AGREEMENT_NOT_FOUND = "agreement_not_found", 404, "No such agreement"
    AGREEMENT_INVALID = "agreement_invalid", 422, "The exchange would refuse these terms"
    AGREEMENT_REGISTERING = "agreement_registering", 409, "The agreement is being registered"
    AGREEMENT_NOT_REGISTERED = "agreement_not_registered", 409, "The agreement is not registered on the exchange"
    EXCHANGE_AMOUNT_INVALID = "exchange_amount_invalid", 422, "The agreement does not take this amount"
    EXCHANGE_NOT_CONFIGURED = "exchange_not_configured", 503, "The service has no exchange contract configured"
    AGREEMENT_NOT_IN_FORCE = "agreement_not_in_force", 409, "The agreement is not in force now"
    AGREEMENT_SIGNATURE_REQUIRED = (
        "agreement_signature_required",
        422,
        "The brand signs its agreements with its own signer: send its signature",
    )
    EXCHANGE_NOT_FOUND = "exchange_not_found", 404, "No such exchange"
    EXCHANGE_NOT_AWAITING = "exchange_not_awaiting", 409, "The exchange awaits no approval"
    EXCHANGE_LIMIT_EXCEEDED = "exchange_limit_exceeded", 422, "The exchange is over a limit of its agreement"
    EXCHANGE_PAYER_OVERDUE = "exchange_payer_overdue", 409, "The agreement's payer has an overdue payment"
    INCOMING_BUDGET_EXCEEDED = "incoming_budget_exceeded", 422, "The target program takes no more exchanged points"
    PERIOD_NOT_CLOSABLE = "period_not_closable", 409, "The period is closed already, or has not ended"
    PERIOD_NOT_CLOSED = "period_not_closed", 409, "The period is not closed: it has no payments yet"
    SETTLEMENT_ASKED = "settlement_asked", 409, "A settlement step asks for this already"
    PAYMENT_NOT_FOUND = "payment_not_found", 404, "No such payment"
    PAYMENT_SETTLED = "payment_settled", 409, "The payment is settled already"
    WALLET_TAKEN = "wallet_taken", 409, "Wallet taken"
    INVALID_WALLET = "invalid_wallet", 422, "Not a wallet that can hold points"
    EARN_NOT_FOUND = "earn_not_found", 404, "No such earn"
    BUDGET_EXCEEDED = "budget_exceeded", 422, "Budget exceeded"
    REFUND_EXCEEDS_PURCHASE = "refund_exceeds_purchase", 422, "The refund exceeds the purchase"
    REWARD_NOT_FOUND = "reward_not_found", 404, "No such reward"
    REWARD_INACTIVE = "reward_inactive", 409, "Reward inactive"
    REWARD_OUT_OF_STOCK = "reward_out_of_stock", 409, "Reward out of stock"
    REDEMPTION_NOT_FOUND = "redemption_not_found", 404, "No such redemption"
    RULE_NOT_FOUND = "rule_not_found", 404, "No such rule"
    PURCHASE_NOT_FOUND = "purchase_not_found", 404, "No such purchase"
    INSUFFICIENT_POINTS = "insufficient_points", 422, "Insufficient points"
    REDEMPTION_NOT_AWAITING = "redemption_not_awaiting", 409, "The redemption awaits no approval"
    REDEMPTION_CODE_INVALID = "redemption_code_invalid", 422, "The redemption code is invalid, used or expired"
    CUSTODIAL_ONLY = "custodial_only", 422, "Only for a member whose wallet the service keeps"
    # consents
    SIGNATURE_REQUIRED = "signature_required", 422, "The member's signature is required"
    INVALID_SIGNATURE = "invalid_signature", 422, "Invalid signature"
    CONSENT_NOT_FOUND = "consent_not_found", 404, "No such consent"
    CONSENT_EXPIRED = "consent_expired", 422, "Consent expired"
    CONSENT_USED = "consent_used", 409, "Consent used"
    CONSENT_STALE = "consent_stale", 409, "Consent stale"
    # the service's own state
    CHAIN_REJECTED = "chain_rejected", 409, "The chain rejected the write"
    CHAIN_UNAVAILABLE = "chain_unavailable", 503, "The chain is unavailable"
    CHAIN_MISMATCH = "chain_mismatch", 503, "The chain is not this database's"
    STORAGE_UNAVAILABLE = "storage_unavailable", 503, "The database is unavailable"
    INTERNAL_ERROR = "internal_error", 500, "Internal error"


class LoyaltyError(Exception):
    """Base of every loyalty-ledger error."""


# --------------------------------------------------------------------------------- the chain
class ChainUnavailableError(LoyaltyError, ConnectionError):
    """The chain node cannot be started or reached."""


class ChainMismatchError(ChainUnavailableError):
    """The node is not the chain (or the token) this database belongs to, or not one the
    operator's key may be used on."""


class RpcError(ChainUnavailableError):
    """The node answered an auditor's call with an error."""

    def __init__(self, method: str, params: list[Any], error: Any) -> None:
        super().__init__(f"{method} failed: {error}")
        self.error = error


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


class ChainRevertError(LoyaltyError, RuntimeError):
    """A transaction or call reverted; `error` is the contract's custom error name."""

    def __init__(self, error: str, args: dict[str, object] | None = None) -> None:
        self.error = error
        self.error_args = args or {}
        shown = ", ".join(f"{k}={v}" for k, v in self.error_args.items())
        super().__init__(f"{error}({shown})")


class ArtifactMissingError(LoyaltyError, FileNotFoundError):
    """The contracts have not been compiled (run `brownie compile` or `make up`)."""


class DeploymentError(LoyaltyError, RuntimeError):
    """Deploying the token failed."""


class KeyDecryptionError(LoyaltyError, ValueError):
    """A stored key does not decrypt under this master key."""


# ------------------------------------------------------------------------------ the service
class ConfigurationError(LoyaltyError, RuntimeError):
    """The service refuses to start as configured; the message says what to do."""


class NotLeaseHolderError(LoyaltyError, RuntimeError):
    """Another writer holds the outbox lease: this one stands by."""


# ------------------------------------------------------------------------ refused requests
class DomainError(LoyaltyError):
    """A request the program refuses.

    Attributes:
        code: the stable reason; it fixes the HTTP status.
        detail: what went wrong, for a person.
    """

    def __init__(self, code: ErrorCode, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)

    @property
    def status(self) -> int:
        return self.code.status


class NotFoundError(DomainError, LookupError):
    """The resource does not exist, or the caller may not know it does."""


class ConflictError(DomainError):
    """The request clashes with the resource's state."""


class UnauthorizedError(DomainError, PermissionError):
    """No credential, or one nobody issued."""


class ForbiddenError(DomainError, PermissionError):
    """The caller is known but may not do this."""


class RetryLaterError(DomainError):
    """Not now; `retry_after_s` says when to try again (the `Retry-After` header)."""

    def __init__(self, code: ErrorCode, detail: str, retry_after_s: int) -> None:
        super().__init__(code, detail)
        self.retry_after_s = retry_after_s


class TooManyAttemptsError(RetryLaterError):
    """Throttled: too many wrong guesses."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(ErrorCode.TOO_MANY_ATTEMPTS, detail, retry_after_s)


class BusyError(RetryLaterError):
    """The work is bounded per process and it is all taken: come back in a moment."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorCode.BUSY, detail, 1)


class UnprocessableError(DomainError, ValueError):
    """The request is well-formed but the program's rules refuse it."""
