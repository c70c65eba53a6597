"""Deploy LoyaltyPoints with brownie: `brownie run scripts/deploy.py [--network NAME]`.

The deployer is `DEPLOYER_PRIVATE_KEY` from the environment when set, else brownie's first
development account. Parameters come from TOKEN_NAME, TOKEN_SYMBOL, EPOCH_LENGTH_S and
VALIDITY_EPOCHS. A deployment already recorded for the chain (var/deployments/) is reused.
For any other network without brownie's network list: `loyalty deploy --rpc-url URL`.
"""

from __future__ import annotations

import os

from brownie import accounts, network, web3

from loyalty.chain.deploy import TokenParams, deploy_token


def main() -> None:
    defaults = TokenParams()
    params = TokenParams(
        name=os.environ.get("TOKEN_NAME", defaults.name),
        symbol=os.environ.get("TOKEN_SYMBOL", defaults.symbol),
        epoch_length_s=int(os.environ.get("EPOCH_LENGTH_S", defaults.epoch_length_s)),
        validity_epochs=int(os.environ.get("VALIDITY_EPOCHS", defaults.validity_epochs)),
    )
    key = os.environ.get("DEPLOYER_PRIVATE_KEY")
    deployer = web3.eth.account.from_key(key) if key else accounts[0].address
    # A chain brownie launched for this command disappears with it: nothing worth recording.
    throwaway = network.rpc.is_active() and network.rpc.is_child()
    deployment, created = deploy_token(web3, deployer, params, record=not throwaway)
    if throwaway:
        print("brownie started this chain for this command only: the deployment is not recorded")
    print(
        f"{'deployed' if created else 'reused'} LoyaltyPoints at {deployment.token_address} "
        f"on chain {deployment.chain_id} (block {deployment.block_number})"
    )
