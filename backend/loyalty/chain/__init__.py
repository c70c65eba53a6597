"""The chain: `client` (plumbing for any contract), `token` (the LoyaltyPoints binding, its ABI
shipped in `abi/`), `custody` (the keys the service signs with), `deploy` and `devchain`."""
