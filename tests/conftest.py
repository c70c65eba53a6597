"""Session settings for the whole suite: brownie's test chain and a clean last line."""

from __future__ import annotations

import os

import brownie
import pytest

# brownie's test chain gets its own port, so `make test` never attaches to the chain `make up`
# runs on 8545 (brownie-config.yaml cannot carry `cmd_settings`: brownie 1.22 crashes on it).
# Reached through `brownie._config` rather than imported: brownie hashes this file's imports'
# sources, and that module is compiled.
brownie._config.CONFIG.networks["development"]["cmd_settings"]["port"] = int(os.environ.get("TEST_CHAIN_PORT", "8555"))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop brownie's node before pytest prints its summary, so the summary is the last line."""
    if brownie.network.is_connected():
        brownie.network.disconnect()
