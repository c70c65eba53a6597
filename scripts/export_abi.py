"""Copy the compiled contracts' ABIs into the package (`backend/loyalty/chain/abi/`), so the
service runs from an installed package without brownie's build folder. `make compile` runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("LoyaltyPoints", "PointsExchange")


def abi_text(name: str) -> str:
    abi = json.loads((ROOT / "build" / "contracts" / f"{name}.json").read_text())["abi"]
    return json.dumps(abi, indent=1, sort_keys=True)


def main() -> int:
    for name in SHIPPED:
        (ROOT / "backend" / "loyalty" / "chain" / "abi" / f"{name}.json").write_text(abi_text(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
