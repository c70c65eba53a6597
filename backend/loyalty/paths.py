"""Where the project keeps its files: build artifacts from brownie, run state under `var/`."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("LOYALTY_VAR_DIR", ROOT / "var"))
BUILD = ROOT / "build" / "contracts"
DEPLOYMENTS = VAR / "deployments"
