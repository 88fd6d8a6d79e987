"""`autow2s dashboard RUN_DIR`: reopen a campaign's lab (same DB and snapshots) and serve its dashboard."""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from pathlib import Path

from autow2s.errors import AutoW2SError
from autow2s.lab.web.guard import DASHBOARD_TOKEN_ENV
from autow2s.rundir import RUN_DIR_ENV, RunDir, read_run_view


def serve_run_dir(run_dir: Path, *, host: str = "127.0.0.1", port: int = 8600, log_level: str = "warning") -> None:
    from autow2s.lab.cli import run_server
    from autow2s.lab.settings import LabSettings

    paths = RunDir(run_dir)
    paths.config_json()  # says what is wrong when this is not a run directory
    if not paths.lab_db.is_file():
        raise AutoW2SError(f"{run_dir}: no lab database in {paths.lab_state}; the campaign never started its lab "
                           "(or it used a shared lab with --lab: open that lab's /dashboard/ instead)")
    running = paths.running_lab()
    if running is not None:
        print(f"the campaign's lab is still running; its dashboard: {running}/dashboard/", flush=True)
        return
    campaign = read_run_view(run_dir)
    if campaign is None:
        raise AutoW2SError(f"{paths.config}: unreadable; the run directory is damaged")
    if campaign.running:
        print("note: state.json says the campaign is running but its lab does not answer; serving the DB as it is",
              file=sys.stderr, flush=True)
    if host not in ("127.0.0.1", "::1", "localhost") and not os.environ.get(DASHBOARD_TOKEN_ENV):
        print(f"note: without {DASHBOARD_TOKEN_ENV} the dashboard answers loopback clients only", file=sys.stderr,
              flush=True)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    admin_token = os.environ.get("AUTOW2S_ADMIN_TOKEN") or "admin-" + secrets.token_urlsafe(32)
    transfer = paths.transfer_data if paths.transfer_data.is_dir() else None
    settings = LabSettings(data_dir=paths.data, transfer_dir=transfer, admin_token=admin_token, state_dir=paths.lab_state,
                           budget_total=campaign.eval_budget)
    if campaign.eval_rate is not None:  # the lab's limits as the campaign ran them
        settings = dataclasses.replace(settings, budget_rate_per_minute=campaign.eval_rate)
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard: http://{shown}:{port}/dashboard/  (Ctrl-C to stop)", flush=True)
    run_server(settings, host=host, port=port, log_level=log_level)
