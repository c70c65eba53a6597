"""Compiled contracts, as brownie writes them to `build/contracts/<Name>.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loyalty.errors import ArtifactMissingError
from loyalty.paths import BUILD


@dataclass(frozen=True)
class Artifact:
    """A compiled contract.

    Attributes:
        name: contract name.
        abi: its ABI.
        bytecode: creation code, hex with 0x.
        deployed_bytecode: runtime code, hex with 0x.
    """

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def load_artifact(name: str) -> Artifact:
    """Load `build/contracts/<name>.json`."""
    path = BUILD / f"{name}.json"
    if not path.exists():
        raise ArtifactMissingError(f"{path} not found: run `brownie compile` (or `make up`) first")
    data = json.loads(path.read_text())
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode="0x" + data["bytecode"].removeprefix("0x"),
        deployed_bytecode="0x" + data["deployedBytecode"].removeprefix("0x"),
    )
