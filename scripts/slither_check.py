"""Slither on contracts/ (through the offline solc-js wrapper), held against a triage file.

Fails (exit 1) on any High or Medium finding in our contracts that `contracts/slither-triage.txt`
does not list with its reason, and on any ERC20 or ERC2612 conformance finding of
`slither-check-erc` not listed there either. Dependencies (OpenZeppelin) are not ours to triage.
Slither runs from its own virtualenv (`.venv-checks`, made by `make`): it must not share one
with eth-brownie's pins. Prints the counts; `--json PATH` writes them too.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv-checks" / "bin"
CONTRACTS = ["contracts/LoyaltyPoints.sol", "contracts/PointsExchange.sol"]
TOKEN = CONTRACTS[0]
TRIAGE = ROOT / "contracts" / "slither-triage.txt"
SOLC_ARGS = ["--solc-remaps", "@openzeppelin=node_modules/@openzeppelin", "--solc-args", "--evm-version shanghai"]


def triaged() -> dict[str, str]:
    """`<detector> <where>` -> reason, from the triage file."""
    entries = {}
    for line in TRIAGE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, reason = line.partition(": ")
            if not reason.strip():
                sys.exit(f"{TRIAGE}: {key!r} has no reason")
            entries[key.strip()] = reason.strip()
    return entries


def where(description: str) -> str:
    """`LoyaltyPoints._stash(address,...) (contracts/...)` -> `LoyaltyPoints._stash`."""
    return re.sub(r"\([^()]*\)", "", description.split(" (", 1)[0]).strip()


def run(tool: str, args: list[str], out: Path, solc: Path) -> dict[str, Any]:
    command = [str(BIN / tool), *args, "--solc", str(solc), *SOLC_ARGS, "--json", str(out)]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if not out.exists():
        sys.exit(f"{tool} produced no report: is .venv-checks installed (make install)?")
    report: dict[str, Any] = json.loads(out.read_text())
    if not report.get("success"):
        sys.exit(f"{tool} failed: {report.get('error')}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the counts here")
    options = parser.parse_args()
    accepted = triaged()
    with tempfile.TemporaryDirectory() as tmp:
        solc = Path(tmp) / "solc"
        solc.write_text(f'#!/bin/sh\nexec node "{ROOT}/scripts/solc.js" "$@"\n')
        solc.chmod(0o755)
        analyses = [run("slither", [c], Path(tmp) / f"slither-{i}.json", solc) for i, c in enumerate(CONTRACTS)]
        ercs = {
            erc: run("slither-check-erc", [TOKEN, "LoyaltyPoints", "--erc", erc], Path(tmp) / f"{erc}.json", solc)
            for erc in ("ERC20", "ERC2612")
        }
    seen: set[str] = set()
    findings = []  # ours only (OpenZeppelin's are not ours to triage), each once: both analyses see the token
    for analysis in analyses:
        for f in analysis["results"].get("detectors", []):
            ours = f["elements"] and f["elements"][0]["source_mapping"]["filename_relative"].startswith("contracts/")
            if ours and f["id"] not in seen:
                seen.add(f["id"])
                findings.append(f)
    impacts = Counter(f["impact"] for f in findings)
    serious = [f"{f['check']} {where(f['description'])}" for f in findings if f["impact"] in ("High", "Medium")]
    erc_findings = {
        f"{check} {erc}" for erc, report in ercs.items() for check in report["results"].get("erc-conformance", {})
    }
    found = set(serious) | erc_findings
    untriaged = sorted(found - set(accepted))
    stale = sorted(set(accepted) - found)  # a triage line for a finding that went away: remove it
    counts = {
        "results": len(findings),
        **{
            impact.lower(): impacts.get(impact, 0)
            for impact in ("High", "Medium", "Low", "Informational", "Optimization")
        },
        "high_medium_triaged": sum(1 for key in serious if key in accepted),
        "erc_findings": len(erc_findings),
        "untriaged": len(untriaged),
    }
    print(
        f"slither: {counts['results']} results on {', '.join(CONTRACTS)} ({counts['high']} high, {counts['medium']} medium, "
        f"{counts['low']} low, {counts['informational']} informational, {counts['optimization']} optimization); "
        f"{counts['high_medium_triaged']} high/medium triaged in {TRIAGE.relative_to(ROOT)}; "
        f"slither-check-erc ERC20, ERC2612: {len(erc_findings)} findings"
    )
    for key in untriaged:
        print(f"untriaged: {key}")
    for key in stale:
        print(f"stale triage entry (no such finding now): {key}")
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(counts, indent=2) + "\n")
    return 1 if untriaged or stale else 0


if __name__ == "__main__":
    sys.exit(main())
