"""The small chaos run (`make chaos` is the big one): a few hundred earns through API and worker
processes killed with SIGKILL and restarted, a second writer started and stopped beside them;
every accepted point is on-chain once, none lost, none stuck."""

import json
import subprocess
import sys

from loyalty.paths import ROOT


def test_chaos_small_losesDuplicatesAndStrandsNothing(tmp_path, database_url):
    out = tmp_path / "chaos.json"
    command = [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--earns", "300", "--members", "60", "--kills", "4",
               "--database-url", database_url, "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["earns"] == 300 and figures["kills"] >= 4
    assert (figures["lost_points"], figures["duplicated_points"], figures["stuck_earns"]) == (0, 0, 0)
    assert figures["chain_minted_points"] == figures["accepted_points"] > 0
