"""Deploy the LoyaltyPoints token, or reuse the deployment already on the chain.

A deployment is recorded in `var/deployments/<chain id>.json`; it is reused while the chain
still has code at that address, so `make up` deploys once per chain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import TransactionNotFound

from loyalty.chain.artifacts import load_artifact
from loyalty.errors import DeploymentError
from loyalty.paths import DEPLOYMENTS

TOKEN_CONTRACT = "LoyaltyPoints"


@dataclass(frozen=True)
class TokenParams:
    """Constructor arguments of the token.

    Attributes:
        name: token name, also the EIP-712 domain name members sign under.
        symbol: token symbol.
        epoch_length_s: seconds per epoch.
        validity_epochs: epochs points stay valid, the one earned in included.
    """

    name: str = "Loyalty Points"
    symbol: str = "LOYAL"
    epoch_length_s: int = 30 * 86_400
    validity_epochs: int = 12


@dataclass(frozen=True)
class Deployment:
    """Where the token lives.

    Attributes:
        chain_id: chain it is deployed on.
        token_address: its address.
        admin: holder of the admin and pauser roles.
        block_number: block of the deploying transaction.
        tx_hash: the deploying transaction.
        params: its constructor arguments.
    """

    chain_id: int
    token_address: str
    admin: str
    block_number: int
    tx_hash: str
    params: TokenParams


def registry_path(chain_id: int, folder: Path = DEPLOYMENTS) -> Path:
    return folder / f"{chain_id}.json"


def load_deployment(w3: Web3, folder: Path = DEPLOYMENTS) -> Deployment | None:
    """The recorded deployment for this chain, if the chain still has its code."""
    path = registry_path(w3.eth.chain_id, folder)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    deployment = Deployment(**{**data, "params": TokenParams(**data["params"])})
    try:
        receipt = w3.eth.get_transaction_receipt(HexStr(deployment.tx_hash))
    except TransactionNotFound:
        return None  # a record from another chain with the same id (a restarted dev chain, say)
    if receipt["contractAddress"] != Web3.to_checksum_address(deployment.token_address):
        return None
    return deployment


def deploy_token(
    w3: Web3,
    deployer: LocalAccount | str,
    params: TokenParams = TokenParams(),
    admin: str | None = None,
    folder: Path = DEPLOYMENTS,
    record: bool = True,
) -> tuple[Deployment, bool]:
    """Reuse this chain's deployment or deploy a new token; returns it and whether it is new.

    `deployer` is a local account (signs here; any network) or an address the node unlocks
    (development chains). `record=False` deploys without writing the registry (a chain that
    disappears when the command ends).
    """
    existing = load_deployment(w3, folder)
    if existing is not None:
        return existing, False
    sender = Web3.to_checksum_address(deployer if isinstance(deployer, str) else deployer.address)
    admin = admin or sender
    address, block, tx_hash = _deploy(
        w3, deployer, TOKEN_CONTRACT, params.name, params.symbol, admin, params.epoch_length_s, params.validity_epochs
    )
    deployment = Deployment(
        chain_id=w3.eth.chain_id,
        token_address=address,
        admin=admin,
        block_number=block,
        tx_hash=tx_hash,
        params=params,
    )
    if record:
        path = registry_path(deployment.chain_id, folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(deployment), indent=2) + "\n")
    return deployment, True


def deploy_contract(w3: Web3, deployer: LocalAccount | str, name: str, *args: object) -> tuple[str, int]:
    """Deploy compiled contract `name` with constructor `args`; returns its address and block.
    `deployer` as for `deploy_token`."""
    address, block, _ = _deploy(w3, deployer, name, *args)
    return address, block


def _deploy(w3: Web3, deployer: LocalAccount | str, name: str, *args: object) -> tuple[str, int, str]:
    """Deploy `name`, signed here (a local account) or by the node (an unlocked address);
    returns its address, block and deploying transaction's hash."""
    artifact = load_artifact(name)
    sender = Web3.to_checksum_address(deployer if isinstance(deployer, str) else deployer.address)
    constructor = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode).constructor(*args)
    if isinstance(deployer, str):
        tx_hash = constructor.transact({"from": deployer})
    else:
        tx = constructor.build_transaction({"from": sender, "nonce": w3.eth.get_transaction_count(sender)})
        tx_hash = w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise DeploymentError(f"deploying {name} failed in transaction {bytes(tx_hash).hex()}")
    return str(receipt["contractAddress"]), int(receipt["blockNumber"]), "0x" + bytes(tx_hash).hex().removeprefix("0x")


@dataclass(frozen=True)
class ExchangeDeployment:
    """Where the exchange between programs lives, and what brands settle in.

    Attributes:
        chain_id: chain it is deployed on.
        exchange_address: the PointsExchange.
        settlement_token: the ERC-20 brands settle in (a TestDollar on a development chain).
        block_number: block of the exchange's deployment (the auditor's replay starts there).
        period_s: seconds per settlement period.
        payment_window_s: seconds after a period's end by which its payments are due.
    """

    chain_id: int
    exchange_address: str
    settlement_token: str
    block_number: int
    period_s: int
    payment_window_s: int


def load_exchange(chain_id: int, folder: Path = DEPLOYMENTS) -> ExchangeDeployment | None:
    """This chain's recorded development exchange, if any."""
    path = folder / f"{chain_id}-exchange.json"
    return ExchangeDeployment(**json.loads(path.read_text())) if path.exists() else None


def deploy_exchange(
    w3: Web3,
    deployer: str,
    relayer: str,
    period_s: int = 7 * 86_400,
    payment_window_s: int = 3 * 86_400,
    folder: Path = DEPLOYMENTS,
) -> tuple[ExchangeDeployment, bool]:
    """On a development chain (`deployer` unlocked by the node): reuse the recorded exchange, or
    deploy a TestDollar and a PointsExchange settling in it, with `relayer` as its relayer."""
    path = folder / f"{w3.eth.chain_id}-exchange.json"
    recorded = load_exchange(w3.eth.chain_id, folder)
    if recorded is not None and w3.eth.get_code(Web3.to_checksum_address(recorded.exchange_address)):
        return recorded, False
    dollar, _ = deploy_contract(w3, deployer, "TestDollar")
    address, block = deploy_contract(w3, deployer, "PointsExchange", deployer, dollar, period_s, payment_window_s)
    exchange = w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact("PointsExchange").abi)
    role = exchange.functions.RELAYER_ROLE().call()
    w3.eth.wait_for_transaction_receipt(exchange.functions.grantRole(role, relayer).transact({"from": deployer}))
    deployment = ExchangeDeployment(w3.eth.chain_id, address, dollar, block, period_s, payment_window_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(deployment), indent=2) + "\n")
    return deployment, True
