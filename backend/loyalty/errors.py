"""The project's exception root; each error also inherits the matching built-in."""


class LoyaltyError(Exception):
    """Base of every loyalty-ledger error."""


class ChainUnavailableError(LoyaltyError, ConnectionError):
    """The chain node cannot be started or reached."""


class ArtifactMissingError(LoyaltyError, FileNotFoundError):
    """The contracts have not been compiled (run `brownie compile` or `make up`)."""


class DeploymentError(LoyaltyError, RuntimeError):
    """Deploying the token failed."""
