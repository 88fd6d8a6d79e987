"""`autow2s dashboard RUN_DIR`: reopen a campaign's lab (same DB and snapshots) and serve its dashboard."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from autow2s.errors import AutoW2SError
from autow2s.lab.web.guard import DASHBOARD_TOKEN_ENV
from autow2s.lab.web.rundir import RUN_DIR_ENV, load_campaign

LAB_URL_FILE = "lab.url"  # written by the campaign while its lab runs (see docs/dashboard.md)


def _running_lab(run_dir: Path) -> str | None:
    """The URL of the campaign's own lab if it is still answering: two servers on one DB would disagree."""
    path = run_dir / LAB_URL_FILE
    if not path.is_file():
        return None
    url = path.read_text().strip()
    try:
        import httpx

        if httpx.get(f"{url}/api/v1/health", timeout=2.0).status_code == 200:
            return url
    except Exception:  # noqa: BLE001 - any failure means it is not running
        return None
    return None


def serve_run_dir(run_dir: Path, *, host: str = "127.0.0.1", port: int = 8600, log_level: str = "warning") -> None:
    from autow2s.campaign.state import RunDir
    from autow2s.lab.cli import run_server
    from autow2s.lab.settings import LabSettings

    paths = RunDir(run_dir)
    config = paths.load_config()
    if not (paths.lab_state / "lab.sqlite").is_file():
        raise AutoW2SError(f"{run_dir}: no lab database in {paths.lab_state}; the campaign never started its lab "
                           "(or it used a shared lab with --lab: open that lab's /dashboard/ instead)")
    running = _running_lab(run_dir)
    if running is not None:
        print(f"the campaign's lab is still running; its dashboard: {running}/dashboard/", flush=True)
        return
    campaign = load_campaign(run_dir)
    if campaign is not None and campaign.running:
        print("note: state.json says the campaign is running but its lab does not answer; serving the DB as it is",
              file=sys.stderr, flush=True)
    if host not in ("127.0.0.1", "::1", "localhost") and not os.environ.get(DASHBOARD_TOKEN_ENV):
        print(f"note: without {DASHBOARD_TOKEN_ENV} the dashboard answers loopback clients only", file=sys.stderr,
              flush=True)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    admin_token = os.environ.get("AUTOW2S_ADMIN_TOKEN") or "admin-" + secrets.token_urlsafe(32)
    transfer = paths.transfer_data if paths.transfer_data.is_dir() else None
    settings = LabSettings(data_dir=paths.data, transfer_dir=transfer, admin_token=admin_token, state_dir=paths.lab_state,
                           budget_total=config.eval_budget, budget_rate_per_minute=config.eval_rate)
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard: http://{shown}:{port}/dashboard/  (Ctrl-C to stop)", flush=True)
    run_server(settings, host=host, port=port, log_level=log_level)
