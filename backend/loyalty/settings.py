"""The service's configuration, read once from the environment.

(pydantic-settings cannot be installed beside eth-brownie, which pins python-dotenv 0.16, so this
is a plain pydantic model filled from `os.environ`.)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import BaseModel

from loyalty.paths import VAR

# Anvil's and Ganache's first development account (mnemonic "test test ... junk"): the token's
# deployer and admin on local chains. Never use it on a real network.
DEV_OPERATOR_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


class Settings(BaseModel):
    """Service settings.

    Attributes:
        database_url: SQLAlchemy URL (env DATABASE_URL); SQLite under var/ by default.
        rpc_url: the chain's JSON-RPC URL (env RPC_URL).
        token_address: the token (env TOKEN_ADDRESS); default: this chain's recorded deployment.
        operator_private_key: the service's own chain account (env ISSUER_PRIVATE_KEY): it holds
            the token's admin role, gives each partner's issuer account its role and budget, and
            tops up their gas.
        admin_api_key: the admin's API key (env LOYALTY_ADMIN_KEY; else var/admin.key).
        master_key: 32-byte hex key that encrypts custodial and issuer keys at rest
            (env LOYALTY_MASTER_KEY; else var/master.key).
        max_body_bytes: largest request body accepted.
        confirmations: blocks a write must be deep (its own included) before it counts as final
            (env LOYALTY_CONFIRMATIONS); default 1 on a local dev chain, 12 elsewhere.
        idempotency_ttl_s: how long an Idempotency-Key is remembered (env LOYALTY_IDEMPOTENCY_TTL_S).
        sweep_interval_s: how often the worker looks for expired points to sweep
            (env LOYALTY_SWEEP_INTERVAL_S).
        exchange_address: the PointsExchange between programs (env EXCHANGE_ADDRESS); default:
            this chain's recorded development deployment (`make up` makes one).
        siwe_domains: the hosts (host[:port]) members reach the service at: a Sign-In with
            Ethereum message must name one of them (env LOYALTY_SIWE_DOMAINS, comma-separated;
            default the local API's). Never the request's own Host header: a phishing site
            could have a wallet sign a message for its own domain and send it with that Host.
        tx_url: a block explorer's page for a transaction, `{tx}` standing for its hash (env
            LOYALTY_TX_URL, e.g. `https://etherscan.io/tx/{tx}`); the web UI links every
            transaction to it. Empty (a local chain): hashes are shown without a link.
    """

    database_url: str
    rpc_url: str
    token_address: str | None
    operator_private_key: str
    admin_api_key: str
    master_key: str
    max_body_bytes: int = 4_000_000
    confirmations: int | None = None
    idempotency_ttl_s: int = 86_400
    sweep_interval_s: int = 60
    siwe_domains: tuple[str, ...] = ("127.0.0.1:8000", "localhost:8000")
    exchange_address: str | None = None
    tx_url: str = ""

    @classmethod
    def from_env(cls, var_dir: Path = VAR) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("DATABASE_URL", f"sqlite:///{var_dir / 'loyalty.db'}"),
            rpc_url=env.get("RPC_URL", "http://127.0.0.1:8545"),
            token_address=env.get("TOKEN_ADDRESS") or None,
            operator_private_key=env.get("ISSUER_PRIVATE_KEY", DEV_OPERATOR_KEY),
            admin_api_key=env.get("LOYALTY_ADMIN_KEY") or _file_secret(var_dir / "admin.key", "adm_"),
            master_key=env.get("LOYALTY_MASTER_KEY") or _file_secret(var_dir / "master.key", ""),
            confirmations=int(env["LOYALTY_CONFIRMATIONS"]) if env.get("LOYALTY_CONFIRMATIONS") else None,
            idempotency_ttl_s=int(env.get("LOYALTY_IDEMPOTENCY_TTL_S", 86_400)),
            sweep_interval_s=int(env.get("LOYALTY_SWEEP_INTERVAL_S", 60)),
            siwe_domains=_siwe_domains(env),
            exchange_address=env.get("EXCHANGE_ADDRESS") or None,
            tx_url=env.get("LOYALTY_TX_URL", ""),
        )


def _siwe_domains(env: os._Environ[str]) -> tuple[str, ...]:
    if domains := env.get("LOYALTY_SIWE_DOMAINS"):
        return tuple(d.strip() for d in domains.split(",") if d.strip())
    port = env.get("API_PORT", "8000")
    return (f"127.0.0.1:{port}", f"localhost:{port}")


def _file_secret(path: Path, prefix: str) -> str:
    """Read a secret kept in `path`, creating it (readable by the owner only) the first time."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = prefix + secrets.token_hex(32)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret
