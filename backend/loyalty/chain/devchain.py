"""A local chain for development: Anvil (default) or Ganache, started from `node_modules`.

State lives under `var/` (Anvil dumps it every few seconds and on exit, and loads it on start,
so `make up` reuses the same chain and deployment; a `kill -9` loses only the last seconds, which
the outbox detects and sends again); nothing is written to `$HOME`. A node is never started on a
port something else listens on, nor on a state folder another node is using. Anvil runs with a zero base fee, as
brownie's does: full blocks of batch earns would otherwise raise it 12.5% a block.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from web3 import HTTPProvider, Web3

from loyalty.errors import ChainUnavailableError
from loyalty.paths import ROOT, VAR

ChainKind = Literal["anvil", "ganache"]
# Anvil's and Ganache's well-known development mnemonic: its first account deploys and administers.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
GANACHE_CHAIN_ID = 1337
# Anvil keeps no history on disk, but the state of this many recent blocks in memory: enough for
# reads "as of" a block a little behind the head (the auditor reads balances at the block it audits).
RECENT_STATES = 256
_PR_SET_PDEATHSIG = 1
_STATE_LOCKS: dict[int, int] = {}  # node pid -> the open lock on its state folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now (for nodes and servers started in tests
    and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_command(
    kind: ChainKind, port: int, state_dir: Path, dump_every_s: int | None = None, recent_states: int = RECENT_STATES
) -> list[str]:
    """The command line that starts a `kind` node on 127.0.0.1:`port` keeping state in `state_dir`
    (Anvil: dumped every `dump_every_s` seconds too, when given; the state of `recent_states`
    blocks in memory, each a copy: a chain of a million earns wants fewer)."""
    bin_dir = ROOT / "node_modules" / ".bin"
    if kind == "anvil":
        dumps = ["--state-interval", str(dump_every_s)] if dump_every_s else []
        return [
            str(bin_dir / "anvil"), "--host", "127.0.0.1", "--port", str(port),
            "--state", str(state_dir / "anvil-state.json"), *dumps, "--prune-history", str(recent_states),
            "--mnemonic", DEV_MNEMONIC, "--silent", "--block-base-fee-per-gas", "0",
        ]  # fmt: skip
    return [
        str(bin_dir / "ganache"), "--server.host", "127.0.0.1", "--server.port", str(port),
        "--database.dbPath", str(state_dir / "ganache-db"), "--wallet.mnemonic", DEV_MNEMONIC,
        "--chain.chainId", str(GANACHE_CHAIN_ID), "--chain.hardfork", "shanghai",
        "--miner.defaultGasPrice", "0x77359400", "--logging.quiet",
    ]  # fmt: skip


def start_node(
    kind: ChainKind,
    port: int,
    state_dir: Path | None = None,
    timeout_s: float = 60.0,
    dump_every_s: int | None = None,
    recent_states: int = RECENT_STATES,
) -> subprocess.Popen[bytes]:
    """Start a node and wait until it answers JSON-RPC; the caller stops it (`stop_node`).

    Refuses a port something already listens on (attaching to a node this call did not start
    would mix chains), and a state folder another running node uses."""
    state_dir = state_dir or VAR / "chain" / kind
    state_dir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise ChainUnavailableError(
                f"port {port} is already in use by another process: stop it, or start the chain on another port "
                "(make up PORT=...)"
            )
    lock = os.open(state_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise ChainUnavailableError(
            f"{state_dir} is in use by a node another command started: stop that one first"
        ) from None
    (state_dir / "home").mkdir(exist_ok=True)
    log = (state_dir / "node.log").open("ab")
    env = {"HOME": str(state_dir / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    # Own session: a terminal Ctrl-C reaches only our launcher, which stops the node in order.
    process = subprocess.Popen(
        node_command(kind, port, state_dir, dump_every_s, recent_states),
        stdout=log,
        stderr=log,
        env=env,
        start_new_session=True,
        preexec_fn=_stop_with_parent,
    )
    _STATE_LOCKS[process.pid] = lock
    w3 = Web3(HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 2}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChainUnavailableError(f"{kind} exited with {process.returncode}; see {state_dir / 'node.log'}")
        try:
            w3.eth.block_number  # noqa: B018 - the call is the readiness probe
            return process
        except Exception:
            time.sleep(0.1)
    stop_node(process)
    raise ChainUnavailableError(f"{kind} did not answer on port {port} within {timeout_s:.0f}s")


def _stop_with_parent() -> None:
    """In the node's process: get SIGTERM (dump state, exit) if the launcher dies, even by
    `kill -9`, rather than live on holding the port (Linux; elsewhere the node outlives it)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """Stop a child process politely (SIGTERM: Anvil writes its state, the API drains), then firmly."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_node(process: subprocess.Popen[bytes]) -> None:
    """Stop a node started by `start_node`, and free its state folder."""
    stop_process(process)
    if (lock := _STATE_LOCKS.pop(process.pid, None)) is not None:
        os.close(lock)
