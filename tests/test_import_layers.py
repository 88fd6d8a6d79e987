"""`make lint`'s import check: the layers hold on the tree, and a researcher importing the campaign fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency (make venv)")


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(src)}  # the copy shadows the installed package
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_its_layers() -> None:
    done = _lint(ROOT / "src", ROOT)
    assert done.returncode == 0 and "BROKEN" not in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.parametrize(("module", "source", "contract"), [
    ("researchers/shortcut.py", "from autow2s.campaign.runner import Campaign\n", "layers"),
    ("researchers/peek.py", "import autow2s.lab.scoring\n", "researchers reach the lab over HTTP only"),
    ("campaign/peek.py", "from autow2s.lab.leaderboard import leaderboard_rows\n", "the campaign reaches the lab"),
])
def test_a_new_import_against_the_layers_fails_the_check(tmp_path: Path, module: str, source: str,
                                                         contract: str) -> None:
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "autow2s", copy / "autow2s", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "autow2s" / module).write_text(source)
    done = _lint(copy, tmp_path)
    assert done.returncode != 0, done.stdout[-3000:]
    assert contract in done.stdout and "BROKEN" in done.stdout
    assert f"autow2s.{module[:-3].replace('/', '.')}" in done.stdout  # it names the offending module
