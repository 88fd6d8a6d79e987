"""Everything a report shows, read from a run directory: the lab's SQLite file and the campaign's JSON.

No server is needed (the lab may be long gone): the DB is opened read-only and the same queries
as the live dashboard are used, so the report and the dashboard agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from autow2s.errors import AutoW2SError
from autow2s.lab.leaderboard import supervised
from autow2s.lab.models import Baseline, Evaluation, TransferRun, VerifyRun
from autow2s.lab.web import queries
from autow2s.lab.web.queries import Point
from autow2s.lab.web.rundir import CampaignView, JobKills, load_campaign


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
    campaign: CampaignView | None
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
                          baseline=row["researcher"] == queries.BASELINE_RESEARCHER)
        if key in best:  # rows arrive best holdout first, so the first one seen stays
            best[key].n_runs += 1
        else:
            best[key] = entry
    return list(best.values())


def _task_names(declared: tuple[str, ...], known: set[str]) -> list[str]:
    """campaign.json's task entries as the lab names them (--task may have been a directory)."""
    return [name if name in known else Path(name).name for name in declared]


def read_transfer(run_dir: Path, session: Session, campaign: CampaignView | None) -> dict[str, Any] | None:
    """The lab's transfer table (lab/transfer.py): each verified snapshot's research PGR beside its PGR, run
    unchanged, on every transfer task; None when the lab made no transfer run.

    Research tasks: campaign.json's `tasks`, else the verified runs' tasks that are in the run's data dir
    (all of them when it is gone). Transfer tasks: campaign.json's `transfer_tasks` and every task with a
    transfer run (`autow2s transfer --tasks` may have added some).
    """
    ran = set(session.execute(select(TransferRun.task).distinct()).scalars())
    if not ran:
        return None
    verified = set(session.execute(select(VerifyRun.task).where(VerifyRun.status == "done").distinct()).scalars())
    if campaign is not None and campaign.tasks:
        research = _task_names(campaign.tasks, verified)
    else:
        data_dir = run_dir / "data"
        in_data = {task for task in verified if (data_dir / task).is_dir()}
        research = sorted(in_data or verified)
    declared = _task_names(campaign.transfer_tasks, ran) if campaign is not None else []
    transfer = sorted(set(declared) | ran)
    return queries.transfer_view(session, [t for t in research if t not in transfer], transfer)


def _task_report(session: Session, task: str, names: dict[int, str]) -> TaskReport:
    board = queries.leaderboard(session, task, names)
    baseline = session.execute(select(Baseline.weak_dev_acc, Baseline.ceiling_dev_acc).where(Baseline.task == task)
                               .order_by(Baseline.created_at.desc()).limit(1)).first()
    return TaskReport(task=task, leaderboard=board, methods=methods_table([row for row in board if supervised(row)]),
                      points=queries.evaluation_points(session, task), verified=queries.verified_points(session, task),
                      vanilla=queries.vanilla_run(session, task, names),
                      weak_dev_acc=baseline[0] if baseline else None, ceiling_dev_acc=baseline[1] if baseline else None)


def _main_task(session: Session, campaign: CampaignView | None) -> str | None:
    """The campaign's task as the lab names it (--task may have been a directory), else the busiest one."""
    busy = session.execute(select(Evaluation.task, func.count()).group_by(Evaluation.task)
                           .order_by(func.count().desc())).all()
    known = [task for task, _ in busy] + list(session.execute(select(VerifyRun.task).distinct()).scalars())
    if campaign is not None and campaign.task:
        for candidate in (campaign.task, Path(campaign.task).name):
            if candidate in known:
                return candidate
    return known[0] if known else None


def collect(run_dir: Path) -> ReportData:
    db = run_dir / "lab-state" / "lab.sqlite"
    if not db.is_file():
        raise AutoW2SError(f"{run_dir}: no lab database at {db}; pass the run directory `autow2s run` wrote "
                           "(it holds campaign.json and lab-state/)")
    campaign = load_campaign(run_dir)
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
