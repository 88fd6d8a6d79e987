"""What the dashboard and the report read from a run directory: researcher state, spend, caps, job kills.

The lab's DB knows nothing of dollars, starting directions or sandbox kills: those live in the
run directory. Only these files are read, never secrets.json, and every reader tolerates a file
being half-written or absent (a campaign may be running, or crashed).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autow2s.rundir.layout import JOB_REPORT_FILE, RunDir, read_json, researcher_entries
from autow2s.rundir.spend import spent_per_researcher

RUNNING_PHASES = ("starting", "researching", "verifying")
STALE_STATE_S = 600.0  # a state.json untouched this long belongs to a campaign that is no longer running


@dataclass(frozen=True)
class RunView:
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
    eval_budget: int | None = None  # the lab's scoring budget the campaign asked for
    eval_rate: int | None = None

    @property
    def running(self) -> bool:
        return self.phase in RUNNING_PHASES and self.state_age_s < STALE_STATE_S

    @property
    def total_spent(self) -> float:
        return sum(self.spent.values())


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_run_view(root: Path) -> RunView | None:
    """The campaign in `root`, or None when it holds no readable campaign.json."""
    paths = RunDir(root)
    config = read_json(paths.config)
    if not isinstance(config, dict):
        return None
    state = read_json(paths.state)
    state = state if isinstance(state, dict) else {}
    try:
        age = time.time() - paths.state.stat().st_mtime
    except OSError:
        age = float("inf")
    tasks = _names(config.get("tasks"))
    if not tasks and config.get("task"):  # run directories from before research suites had one task
        tasks = (str(config["task"]),)
    return RunView(
        root=root, task=tasks[0] if tasks else None, phase=str(state.get("phase", "starting")),
        elapsed_s=float(state.get("elapsed_s") or 0.0), budget_s=config.get("budget_s"),
        researcher_cap=config.get("researcher_dollars"), campaign_cap=config.get("max_dollars"),
        researchers=researcher_entries(state.get("researchers")), spent=spent_per_researcher(paths.spend),
        state_age_s=age, tasks=tasks, transfer_tasks=_names(config.get("transfer_tasks")),
        eval_budget=_optional_int(config.get("eval_budget")), eval_rate=_optional_int(config.get("eval_rate")))


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
        jobs = RunDir(root).jobs
        try:
            job_ids = os.listdir(jobs)
        except OSError:
            return []
        with self._lock:
            seen = self._seen.setdefault(jobs, {})
            for job_id in job_ids:
                if job_id not in seen:
                    finished, kill = self._read(jobs / job_id, job_id, researchers)
                    if finished:
                        seen[job_id] = kill
            found = [k for k in seen.values() if k is not None]
        return sorted(found, key=lambda k: -k.finished_at)

    @staticmethod
    def _read(job_dir: Path, job_id: str, researchers: list[str]) -> tuple[bool, LimitKill | None]:
        """(finished, the kill if a limit ended it); unfinished while the job has no report yet, so it is read
        again next time."""
        report_path = job_dir / JOB_REPORT_FILE
        report = read_json(report_path)
        if not isinstance(report, dict):
            return False, None
        if not report.get("limit_hit"):
            return True, None
        owner = max((name for name in researchers if job_id.startswith(name + "-")), key=len, default="?")
        try:
            finished = report_path.stat().st_mtime
        except OSError:
            finished = 0.0
        return True, LimitKill(job_id=job_id, researcher=owner, limit=str(report["limit_hit"]),
                               message=str(report.get("message", ""))[:300],
                               wall_seconds=float(report.get("wall_seconds") or 0.0),
                               peak_memory_bytes=int(report.get("peak_memory_bytes") or 0), finished_at=finished)
