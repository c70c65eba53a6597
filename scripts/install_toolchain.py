"""Register the project's offline toolchain (run by `make`; idempotent).

- npm `solc` (solc-js) becomes py-solc-x's solc of the same version, through `scripts/solc.js`,
  so `brownie compile` never downloads a compiler.
- `anvil` on the venv's PATH (brownie launches it for `brownie test`) keeps its files under
  `var/anvil-home` instead of `$HOME` and prunes history.
- The web UI's scripts from npm (htmx) are copied into its static folder: the app serves them,
  no CDN.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import solcx

ROOT = Path(__file__).resolve().parents[1]


def _write_executable(path: Path, text: str) -> bool:
    """Write `text` to `path` as an executable script; returns whether anything changed."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return True


def install_solc() -> Path:
    """Make py-solc-x find npm solc as `solc-v<version>`."""
    version = json.loads((ROOT / "node_modules/solc/package.json").read_text())["version"]
    target = solcx.get_solcx_install_folder() / f"solc-v{version}"
    _write_executable(target, f'#!/bin/sh\nexec node "{ROOT}/scripts/solc.js" "$@"\n')
    return target


def install_anvil() -> Path:
    """Put an `anvil` launcher next to the venv's python."""
    target = Path(sys.executable).parent / "anvil"
    home = ROOT / "var/anvil-home"
    _write_executable(
        target,
        "#!/bin/sh\n"
        "# brownie starts `anvil` from PATH: keep its files under var/ and prune history.\n"
        f'mkdir -p "{home}"\n'
        f'HOME="{home}" exec "{ROOT}/node_modules/.bin/anvil" --prune-history "$@"\n',
    )
    return target


WEB_ASSETS = {"htmx.min.js": "htmx.org/dist/htmx.min.js"}  # served as /static/vendor/<name>


def install_web_assets() -> Path:
    folder = ROOT / "backend/loyalty/web/static/vendor"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in WEB_ASSETS.items():
        origin, target = ROOT / "node_modules" / source, folder / name
        if not target.exists() or target.read_bytes() != origin.read_bytes():
            shutil.copyfile(origin, target)
    return folder


def main() -> None:
    solc = install_solc()
    anvil = install_anvil()
    install_web_assets()
    if not os.environ.get("QUIET"):
        print(f"toolchain: solc -> {solc}\ntoolchain: anvil -> {anvil}")


if __name__ == "__main__":
    main()
