"""loyalty-ledger: loyalty points on an EVM chain, with a Python backend around the token."""

__version__ = "0.6.0"
