"""Where each file of a run directory lives, and how the small JSON files are written and found."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError

CONFIG_FILE = "campaign.json"  # the frozen config, reused as-is by --resume
SECRETS_FILE = "secrets.json"  # 0600: the admin token and the researchers' tokens
STATE_FILE = "state.json"  # phase, elapsed seconds, per-researcher progress
PRICES_FILE = "prices.json"  # the price table in force when the run started
SPEND_FILE = "spend.jsonl"  # append-only spend journal (rundir/spend.py)
LEADERBOARD_FILE = "leaderboard.json"
LAB_URL_FILE = "lab.url"  # the URL of the campaign's lab, present only while that lab runs
LAB_STATE_DIR = "lab-state"  # the lab's DB and snapshot repository
LAB_DB_FILE = "lab.sqlite"  # inside lab-state/ (the lab's default SQLite file name)
JOBS_DIR = "jobs"  # one folder per sandboxed job
JOB_REPORT_FILE = "report.json"  # jobs/ID/report.json: the sandbox's report, written once the job ends
RUN_DIR_ENV = "AUTOW2S_RUN_DIR"  # tells a lab server which run directory its dashboard shows


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write-then-rename, so a kill mid-write leaves the old file, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is absent or half-written (a campaign may be running, or crashed)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class RunDir:
    """Paths of one campaign's run directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / CONFIG_FILE
        self.secrets = root / SECRETS_FILE
        self.state = root / STATE_FILE
        self.prices = root / PRICES_FILE
        self.data = root / "data"  # data/TASK/{lab,public,null}: each prepared research task
        self.transfer_data = root / "transfer-data"  # the lab's only; hidden from researchers
        self.task_view = root / "task-view"  # /task in the sandbox when there are several research tasks
        self.lab_state = root / LAB_STATE_DIR
        self.lab_db = self.lab_state / LAB_DB_FILE
        self.lab_log = root / "lab.log"
        self.lab_url_file = root / LAB_URL_FILE
        self.jobs = root / JOBS_DIR
        self.spend = root / SPEND_FILE
        self.leaderboard = root / LEADERBOARD_FILE

    def workspace(self, name: str) -> Path:
        return self.root / "workspaces" / name

    def researcher_dir(self, name: str) -> Path:
        return self.root / "researchers" / name

    def is_campaign(self) -> bool:
        return self.config.is_file()

    def config_json(self) -> dict[str, Any]:
        """campaign.json as saved; the campaign turns it back into its CampaignConfig."""
        if not self.config.exists():
            raise AutoW2SError(f"{self.root}: no {CONFIG_FILE}; is this a run directory of `autow2s run`?")
        data = json.loads(self.config.read_text())
        if not isinstance(data, dict):
            raise AutoW2SError(f"{self.config}: not a JSON object; the run directory is damaged")
        return data

    def load_secrets(self) -> dict[str, Any]:
        data = json.loads(self.secrets.read_text()) if self.secrets.exists() else {}
        return data if isinstance(data, dict) else {}

    def save_secrets(self, secrets: dict[str, Any]) -> None:
        write_json_atomic(self.secrets, secrets, mode=0o600)

    def running_lab(self) -> str | None:
        """The URL of the campaign's own lab if it still answers: two servers on one DB would disagree."""
        if not self.lab_url_file.is_file():
            return None
        url = self.lab_url_file.read_text().strip()
        try:
            import httpx

            if httpx.get(f"{url}/api/v1/health", timeout=2.0).status_code == 200:
                return url
        except Exception:  # noqa: BLE001 - any failure means it is not running
            return None
        return None


def find_run_dir(state_dir: Path | None) -> Path | None:
    """AUTOW2S_RUN_DIR if set, else the folder holding the lab's state dir when it is a run's `lab-state`.

    Why infer it: a campaign's lab (and `autow2s serve --state RUN/lab-state`) then shows the
    researchers' state and spend without another flag to pass.
    """
    explicit = os.environ.get(RUN_DIR_ENV)
    if explicit:
        return Path(explicit)
    if state_dir is not None and state_dir.name == LAB_STATE_DIR and (state_dir.parent / CONFIG_FILE).is_file():
        return state_dir.parent
    return None


def researcher_entries(saved: Any) -> dict[str, dict[str, Any]]:
    """state.json's researchers; entries without a kind are dropped (before 0.2 the vanilla baseline kept its
    verify id there)."""
    if not isinstance(saved, dict):
        return {}
    return {str(name): entry for name, entry in saved.items() if isinstance(entry, dict) and "kind" in entry}


@dataclass
class RunState:
    """Mutable progress of a campaign (state.json), flushed after every change that matters for resume."""

    phase: str = "starting"  # starting | researching | verifying | done
    elapsed_s: float = 0.0
    researchers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The vanilla baseline's verified runs (task -> id), so a resume never repeats them.
    baseline_verify_ids: dict[str, int] = field(default_factory=dict)
    baseline_snapshot: str | None = None
    transfer_ids: dict[str, int] = field(default_factory=dict)  # "<snapshot>:<task>" -> transfer run id
    # The methods the final step chose from researchers' experiments, saved as snapshots (method sha -> id).
    candidate_snapshots: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(phase=data["phase"], elapsed_s=data["elapsed_s"], researchers=researcher_entries(data["researchers"]),
                   baseline_verify_ids=dict(data.get("baseline_verify_ids") or {}),
                   baseline_snapshot=data.get("baseline_snapshot"), transfer_ids=dict(data.get("transfer_ids") or {}),
                   candidate_snapshots=dict(data.get("candidate_snapshots") or {}))

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))
