"""The lab's knobs in one frozen dataclass, so tests and `autow2s serve` configure the same thing."""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

ADMIN_TOKEN_ENV = "AUTOW2S_ADMIN_TOKEN"


@dataclass(frozen=True)
class LabSettings:
    """Defaults are the honest ones: the flip-attack test runs against exactly these budgets."""

    data_dir: Path
    admin_token: str
    transfer_dir: Path | None = None  # held-out transfer tasks: served to the admin only (lab/transfer.py)
    state_dir: Path | None = None  # where the SQLite file and the snapshot repository live
    db_url: str | None = None  # default: sqlite:///<state_dir>/lab.sqlite
    # Budgets, per researcher per task. A total of None is 7.5% of the dev items (20 to 300):
    # the label information an attacker can extract grows with total / n_dev.
    budget_total: int | None = None
    budget_rate_per_minute: int = 30
    verify_total: int = 20
    verify_rate_per_minute: int = 5
    # Probing detector and the coarsened score.
    near_duplicate_fraction: float = 0.01  # refuse a submission this close to an earlier one
    near_duplicate_min_items: int = 8
    score_noise_se: float = 1.5  # noise on the reported dev accuracy, in standard errors
    score_resolution: float = 0.005  # the reported dev accuracy is rounded to this
    degenerate_fraction: float = 0.98  # share of one class at which a submission is degenerate
    degenerate_resolution: float = 0.05  # coarser rounding for degenerate submissions
    noise_seed: int | None = None  # tests only: None draws the noise from the OS
    # Baselines and verification.
    baseline_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    verify_seed_count: int = 5
    verify_workers: int = 1
    dependence_check: bool = True  # repeat each verified run with a null supervisor (docs/lab.md)
    unsafe_no_sandbox: bool = False  # verify snapshots without bubblewrap (warns on every job)
    executor: str = "local"  # where verified runs execute: local (this host) or ray (a cluster)
    ray_address: str | None = None  # with executor ray: the cluster (None: a private local Ray)
    job_dir: Path | None = None  # verified runs' workspaces and logs (None: a temporary folder); shared storage for ray
    # Limits.
    max_json_bytes: int = 8 * 1024 * 1024
    max_snapshot_bytes: int = 2 * 1024 * 1024
    max_snapshot_unpacked_bytes: int = 20 * 1024 * 1024
    max_snapshot_files: int = 500
    sqlite_synchronous: str = "FULL"

    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.data_dir / ".lab-state"

    @property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.resolved_state_dir / 'lab.sqlite'}"

    @property
    def snapshot_repo(self) -> Path:
        return self.resolved_state_dir / "snapshots.git"


def setting_defaults() -> dict[str, Any]:
    """LabSettings' defaults by field: `autow2s serve` takes its option defaults from here, so each is written once."""
    return {field.name: field.default for field in fields(LabSettings) if field.default is not MISSING}


def settings_to_json(settings: LabSettings) -> str:
    """Every setting but the admin token (which stays in the environment), for the workers of `serve --workers N`."""
    data = {key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(settings).items() if key != "admin_token"}
    return json.dumps(data)


def settings_from_json(text: str, admin_token: str) -> LabSettings:
    data: dict[str, Any] = json.loads(text)
    paths = {"data_dir", "transfer_dir", "state_dir", "job_dir"}
    known = {f.name for f in fields(LabSettings)}
    values: dict[str, Any] = {key: (Path(value) if key in paths and value is not None else value)
                              for key, value in data.items() if key in known}
    values["baseline_seeds"] = tuple(values.get("baseline_seeds", LabSettings.baseline_seeds))
    return LabSettings(admin_token=admin_token, **values)


def admin_token_from_env() -> str:
    """The admin token is read from the environment only, so it never appears in argv or logs."""
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if len(token) < 16:
        raise ValueError(
            f"set {ADMIN_TOKEN_ENV} to a secret of at least 16 characters before `autow2s serve` "
            "(e.g. `export AUTOW2S_ADMIN_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`)"
        )
    return token
