"""Everything a report shows, read from a run directory: the lab's SQLite file and the campaign's JSON.

No server is needed (the lab may be long gone): the DB is opened read-only and read only through
the dashboard's queries (lab/web/queries.py), and the run directory through autow2s.rundir, so the
report and the dashboard agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from autow2s.board_rules import BASELINE_RESEARCHER, supervised
from autow2s.errors import AutoW2SError
from autow2s.lab.web import queries
from autow2s.lab.web.queries import Point
from autow2s.rundir import JobKills, RunDir, RunView, read_run_view


@dataclass
class MethodRow:
    method: str
    researcher: str
    snapshot_id: str
    verify_id: int
    dev_pgr: float | None
    holdout_pgr: float | None
    holdout_ci: list[float] | None
    n_runs: int
    baseline: bool = False


@dataclass
class TaskReport:
    task: str
    leaderboard: list[dict[str, Any]]
    methods: list[MethodRow]
    points: list[Point]
    verified: list[Point]
    vanilla: dict[str, Any] | None
    weak_dev_acc: float | None = None
    ceiling_dev_acc: float | None = None


@dataclass
class ReportData:
    run_dir: Path
    campaign: RunView | None
    names: dict[int, str]
    main: TaskReport | None
    transfer: dict[str, Any] | None = None  # lab/transfer.py's transfer_table, when the lab made transfer runs
    findings: list[dict[str, Any]] = field(default_factory=list)
    activity: dict[int, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    refusal_counts: dict[str, int] = field(default_factory=dict)
    n_flagged: int = 0
    n_kills: int | None = None


def methods_table(rows: list[dict[str, Any]]) -> list[MethodRow]:
    """One row per method (snapshot name): its best verified run by holdout PGR, with that run's CI."""
    best: dict[str, MethodRow] = {}
    for row in rows:
        key = row["method"]
        entry = MethodRow(row["method"], row["researcher"], row["snapshot_id"], row["verify_id"], row["dev_pgr"],
                          row["holdout_pgr"], row["holdout_ci"], 1,
                          baseline=row["researcher"] == BASELINE_RESEARCHER)
        if key in best:  # rows arrive best holdout first, so the first one seen stays
            best[key].n_runs += 1
        else:
            best[key] = entry
    return list(best.values())


def _task_names(declared: tuple[str, ...], known: set[str]) -> list[str]:
    """campaign.json's task entries as the lab names them (--task may have been a directory)."""
    return [name if name in known else Path(name).name for name in declared]


def read_transfer(run_dir: Path, session: Session, campaign: RunView | None) -> dict[str, Any] | None:
    """The lab's transfer table (lab/transfer.py): each verified snapshot's research PGR beside its PGR, run
    unchanged, on every transfer task; None when the lab made no transfer run.

    Research tasks: campaign.json's `tasks`, else the verified runs' tasks that are in the run's data dir
    (all of them when it is gone). Transfer tasks: campaign.json's `transfer_tasks` and every task with a
    transfer run (`autow2s transfer --tasks` may have added some).
    """
    ran = set(queries.transfer_task_names(session, ()))
    if not ran:
        return None
    verified = queries.verified_tasks(session)
    if campaign is not None and campaign.tasks:
        research = _task_names(campaign.tasks, verified)
    else:
        data_dir = RunDir(run_dir).data
        in_data = {task for task in verified if (data_dir / task).is_dir()}
        research = sorted(in_data or verified)
    declared = _task_names(campaign.transfer_tasks, ran) if campaign is not None else []
    transfer = sorted(set(declared) | ran)
    return queries.transfer_view(session, [t for t in research if t not in transfer], transfer)


def _task_report(session: Session, task: str, names: dict[int, str]) -> TaskReport:
    board = queries.leaderboard(session, task, names)
    weak_dev_acc, ceiling_dev_acc = queries.baseline_dev_accs(session, task)
    return TaskReport(task=task, leaderboard=board, methods=methods_table([row for row in board if supervised(row)]),
                      points=queries.evaluation_points(session, task), verified=queries.verified_points(session, task),
                      vanilla=queries.vanilla_run(session, task, names),
                      weak_dev_acc=weak_dev_acc, ceiling_dev_acc=ceiling_dev_acc)


def _main_task(session: Session, campaign: RunView | None) -> str | None:
    """The campaign's task as the lab names it (--task may have been a directory), else the busiest one."""
    known = queries.tasks_by_activity(session)
    if campaign is not None and campaign.task:
        for candidate in (campaign.task, Path(campaign.task).name):
            if candidate in known:
                return candidate
    return known[0] if known else None


def collect(run_dir: Path) -> ReportData:
    db = RunDir(run_dir).lab_db
    if not db.is_file():
        raise AutoW2SError(f"{run_dir}: no lab database at {db}; pass the run directory `autow2s run` wrote "
                           "(it holds campaign.json and lab-state/)")
    campaign = read_run_view(run_dir)
    engine = create_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    try:
        with Session(engine) as session:
            names = queries.researcher_names(session)
            task = _main_task(session, campaign)
            main = _task_report(session, task, names) if task else None
            n_flagged, _ = queries.flagged_evaluations(session, names, limit=1)
            refusal_counts, _ = queries.refusals(session, names, limit=1)
            data = ReportData(run_dir=run_dir, campaign=campaign, names=names, main=main,
                              transfer=read_transfer(run_dir, session, campaign),
                              findings=queries.top_findings(session, names, limit=10),
                              activity=queries.researcher_activity(session), counts=queries.counts(session),
                              refusal_counts=refusal_counts, n_flagged=n_flagged)
    finally:
        engine.dispose()
    if campaign is not None:
        data.n_kills = len(JobKills().kills(run_dir, list(campaign.researchers)))
    return data
