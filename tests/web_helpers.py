"""A finished short campaign, its dashboard served by `autow2s dashboard`, and headless Chromium.

The campaign (`autow2s run --researchers search:2`, about a minute and a half) runs once per test
session: xdist workers share it through a file lock, and each worker works on its own copy, so a
test that writes (posts a finding, triggers a refusal) cannot disturb another worker's checks.

    def test_x(dashboard, page): page.goto(dashboard.url + "/dashboard/")
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lab_helpers import LabServer, file_lock, serve_on_free_port, shared_tmp

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# One research task and one cheap held-out transfer task (synthetic: no download), so every view has transfer rows.
# test_campaign.py checks this campaign's result too: its verified methods against vanilla, paired, and transfer.
CAMPAIGN_ARGS = ("--task", "synth-linear", "--transfer-tasks", "synth-nonlinear", "--researchers", "search:2",
                 "--budget", "45", "--seed", "1", "--verify-top-k", "2")
# About 2.5 min alone. Its verify jobs run at nice 10 in their own scheduling group, so under the full suite's
# load they yield to every other test's processes: there it took just over 420 s once (the verified runs 76-232 s
# each, against 29-59 s alone). The cap stays under pytest's own 900 s per test.
CAMPAIGN_TIMEOUT_S = 800.0


def run_campaign(out: Path) -> None:
    env = os.environ | {"COLUMNS": "160"}
    result = subprocess.run([sys.executable, "-m", "autow2s", "run", *CAMPAIGN_ARGS, "--out", str(out)],
                            capture_output=True, text=True, timeout=CAMPAIGN_TIMEOUT_S, env=env)
    assert result.returncode == 0, f"the campaign failed:\n{result.stderr[-4000:]}"
    (out.parent / f"{out.name}.stdout").write_text(result.stdout)  # what `autow2s run` printed, for test_campaign


@contextmanager
def start_dashboard(run_dir: Path, *, dashboard_token: str | None = None) -> Iterator[LabServer]:
    """`autow2s dashboard RUN_DIR --port P` in a subprocess; yields once the lab answers."""
    admin_token = "admin-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOW2S_") or k == "AUTOW2S_CACHE_DIR"}
    env |= {"AUTOW2S_ADMIN_TOKEN": admin_token, "PYTHONUNBUFFERED": "1"}
    if dashboard_token:
        env["AUTOW2S_DASHBOARD_TOKEN"] = dashboard_token
    def make(port: int) -> LabServer:
        args = [sys.executable, "-m", "autow2s", "dashboard", str(run_dir), "--port", str(port)]
        return LabServer(url=f"http://127.0.0.1:{port}", port=port, admin_token=admin_token,
                         data_dir=run_dir / "data", state_dir=run_dir / "lab-state",
                         log_path=run_dir / "dashboard.log", args=args, env=env)

    with serve_on_free_port(make, "the dashboard") as server:
        yield server


# fixtures (import them into a test module) ------------------------------------------------------

@pytest.fixture(scope="session")
def campaign_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A finished campaign, run once for all xdist workers (its folder is read-only by convention)."""
    shared_root = shared_tmp(tmp_path_factory, request)
    shared = shared_root / "dashboard-campaign"
    with file_lock(shared_root / "dashboard-campaign.lock"):
        if not (shared / "leaderboard.json").is_file():
            shutil.rmtree(shared, ignore_errors=True)
            run_campaign(shared)
    return shared


def copy_run(source: Path, dest: Path) -> Path:
    """The run without its workspaces (researchers' scratch files): what the lab and the report read."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("workspaces", "report", "dashboard.log"))
    return dest


@pytest.fixture(scope="session")
def run_dir(campaign_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_run(campaign_run, tmp_path_factory.mktemp("dashboard-run") / "run")


@pytest.fixture(scope="session")
def dashboard_token() -> str:
    return "dash-" + secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
def dashboard(run_dir: Path, dashboard_token: str) -> Iterator[LabServer]:
    with start_dashboard(run_dir, dashboard_token=dashboard_token) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module.

    Why module scope: a running sync Playwright keeps an asyncio loop alive in the main thread,
    which breaks asyncio.run in any other test; pytest tears module fixtures down before the
    worker moves on to another module's tests.
    """
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: install the Debian `chromium` package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, dashboard: LabServer, dashboard_token: str) -> Iterator[Any]:
    """A fresh browser context (its own cookies) already holding the dashboard's token cookie."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.goto(f"{dashboard.url}/dashboard/?token={dashboard_token}")
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard-screenshots")


def shoot(tab: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
