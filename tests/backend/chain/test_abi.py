"""The ABI shipped in the package is the compiled contract's (`make compile` refreshes it)."""

from loyalty.chain.artifacts import load_artifact
from loyalty.chain.token import token_abi


def test_shippedAbi_isTheCompiledContracts(deployment):
    assert token_abi() == load_artifact("LoyaltyPoints").abi, "the contract changed: run `make compile`"
