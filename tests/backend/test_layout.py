"""The architecture's import rules (pyproject.toml `[tool.importlinter]`) hold."""

import subprocess
import sys
from pathlib import Path

from loyalty.paths import ROOT


def test_importContracts_areKept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
