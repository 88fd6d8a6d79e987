"""What the dashboard reads from a campaign's run directory: researcher state, spend, caps, job kills.

The lab's DB knows nothing of dollars, starting directions or sandbox kills: those live in the
run directory `autow2s run` writes. Only these files are read, never secrets.json, and every
reader tolerates a file being half-written or absent (a campaign may be running, or crashed).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_DIR_ENV = "AUTOW2S_RUN_DIR"
RUNNING_PHASES = ("starting", "researching", "verifying")
STALE_STATE_S = 600.0  # a state.json untouched this long belongs to a campaign that is no longer running


def find_run_dir(state_dir: Path | None) -> Path | None:
    """AUTOW2S_RUN_DIR if set, else the folder holding the lab's state dir when it is a run's `lab-state`.

    Why infer it: a campaign's lab (and `autow2s serve --state RUN/lab-state`) then shows the
    researchers' state and spend without another flag to pass.
    """
    explicit = os.environ.get(RUN_DIR_ENV)
    if explicit:
        return Path(explicit)
    if state_dir is not None and state_dir.name == "lab-state" and (state_dir.parent / "campaign.json").is_file():
        return state_dir.parent
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class CampaignView:
    """A campaign's progress as of the moment it was read."""

    root: Path
    task: str | None  # the first research task (the one the dashboard's task pickers open on)
    phase: str
    elapsed_s: float
    budget_s: float | None
    researcher_cap: float | None
    campaign_cap: float | None
    researchers: dict[str, dict[str, Any]]
    spent: dict[str, float]
    state_age_s: float
    tasks: tuple[str, ...] = ()  # research tasks, as --task named them (a name or a directory)
    transfer_tasks: tuple[str, ...] = ()  # held out: run unchanged at the end, by the lab's admin only

    @property
    def running(self) -> bool:
        return self.phase in RUNNING_PHASES and self.state_age_s < STALE_STATE_S

    @property
    def total_spent(self) -> float:
        return sum(self.spent.values())


def read_spend(path: Path) -> dict[str, float]:
    """Dollars per researcher from spend.jsonl; a line torn by a kill is skipped, as the ledger does."""
    spent: dict[str, float] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return spent
    for line in lines:
        try:
            entry = json.loads(line)
            spent[str(entry["researcher"])] = spent.get(str(entry["researcher"]), 0.0) + float(entry["dollars"])
        except (ValueError, KeyError, TypeError):
            continue
    return spent


def load_campaign(root: Path) -> CampaignView | None:
    config = _read_json(root / "campaign.json")
    if not isinstance(config, dict):
        return None
    state = _read_json(root / "state.json")
    state = state if isinstance(state, dict) else {}
    try:
        age = time.time() - (root / "state.json").stat().st_mtime
    except OSError:
        age = float("inf")
    researchers = {name: entry for name, entry in (state.get("researchers") or {}).items()
                   if isinstance(entry, dict) and "kind" in entry}  # the baseline's entry holds a verify id only
    tasks = config.get("tasks")
    tasks = tuple(str(t) for t in tasks) if isinstance(tasks, list) else ()
    if not tasks and config.get("task"):  # run directories from before research suites had one task
        tasks = (str(config["task"]),)
    transfer = config.get("transfer_tasks")
    transfer = tuple(str(t) for t in transfer) if isinstance(transfer, list) else ()
    return CampaignView(
        root=root, task=tasks[0] if tasks else None, phase=str(state.get("phase", "starting")),
        elapsed_s=float(state.get("elapsed_s") or 0.0), budget_s=config.get("budget_s"),
        researcher_cap=config.get("researcher_dollars"), campaign_cap=config.get("max_dollars"),
        researchers=researchers, spent=read_spend(root / "spend.jsonl"), state_age_s=age, tasks=tasks,
        transfer_tasks=transfer)


@dataclass(frozen=True)
class LimitKill:
    job_id: str
    researcher: str
    limit: str
    message: str
    wall_seconds: float
    peak_memory_bytes: int
    finished_at: float


class JobKills:
    """Jobs the sandbox killed for a limit, read from RUN/jobs/*/report.json.

    A finished job's report never changes, so each is parsed once and remembered: a page load
    lists the folder and reads only reports it has not seen.
    """

    def __init__(self) -> None:
        self._seen: dict[Path, dict[str, LimitKill | None]] = {}
        self._lock = threading.Lock()

    def kills(self, root: Path, researchers: list[str]) -> list[LimitKill]:
        jobs = root / "jobs"
        try:
            job_ids = os.listdir(jobs)
        except OSError:
            return []
        with self._lock:
            seen = self._seen.setdefault(jobs, {})
            for job_id in job_ids:
                if job_id not in seen:
                    kill = self._read(jobs / job_id, job_id, researchers)
                    if kill is not False:
                        seen[job_id] = kill or None
            found = [k for k in seen.values() if k is not None]
        return sorted(found, key=lambda k: -k.finished_at)

    @staticmethod
    def _read(job_dir: Path, job_id: str, researchers: list[str]) -> LimitKill | bool | None:
        """False while the job has no report yet (still running): it is read again next time."""
        report_path = job_dir / "report.json"
        report = _read_json(report_path)
        if not isinstance(report, dict):
            return False
        if not report.get("limit_hit"):
            return None
        owner = max((name for name in researchers if job_id.startswith(name + "-")), key=len, default="?")
        try:
            finished = report_path.stat().st_mtime
        except OSError:
            finished = 0.0
        return LimitKill(job_id=job_id, researcher=owner, limit=str(report["limit_hit"]),
                         message=str(report.get("message", ""))[:300],
                         wall_seconds=float(report.get("wall_seconds") or 0.0),
                         peak_memory_bytes=int(report.get("peak_memory_bytes") or 0), finished_at=finished)
