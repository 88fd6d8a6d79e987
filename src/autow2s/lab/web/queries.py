"""Read-only queries behind the dashboard pages and the static report.

Every function takes a SQLAlchemy Session and the researcher names, so the live dashboard (the
lab's engine) and `autow2s report` (the run's SQLite file, no server) share them. What is read is
what researchers may already see: reported (coarsened) dev figures, and holdout only as the
aggregate of a verified run. Exact dev counts, holdout counts and predictions are never selected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autow2s.lab.leaderboard import is_baseline_researcher, leaderboard_rows
from autow2s.lab.models import (
    AuditEntry,
    Baseline,
    Comment,
    Evaluation,
    Finding,
    Researcher,
    Snapshot,
    TransferRun,
    VerifyRun,
    Vote,
)
from autow2s.lab.transfer import transfer_table

leaderboard = leaderboard_rows  # the API's leaderboard rows, reused by the dashboard and the report

REFUSAL_OUTCOMES = ("refused_probe", "over_budget")


def researcher_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Researcher.id, Researcher.name)).all())


def findings_for_runs(session: Session, rows: list[dict[str, Any]]) -> dict[int, int]:
    """verify_id -> the first finding about it: one citing the run, an evaluation of its snapshot,
    or (by the same researcher) naming the snapshot id in its text."""
    out: dict[int, int] = {}
    verify_ids = [row["verify_id"] for row in rows]
    for finding_id, verify_id in session.execute(select(func.min(Finding.id), Finding.verify_id)
                                                 .where(Finding.verify_id.in_(verify_ids)).group_by(Finding.verify_id)):
        if verify_id is not None:
            out[verify_id] = finding_id
    by_snapshot = dict(session.execute(
        select(Evaluation.snapshot_id, func.min(Finding.id)).join(Finding, Finding.evaluation_id == Evaluation.id)
        .where(Evaluation.snapshot_id.in_([row["snapshot_id"] for row in rows])).group_by(Evaluation.snapshot_id)).all())
    for row in rows:
        if row["verify_id"] in out:
            continue
        found = by_snapshot.get(row["snapshot_id"]) or session.execute(
            select(Finding.id).where(Finding.researcher_id == row["researcher_id"],
                                     Finding.body.contains(row["snapshot_id"])).order_by(Finding.id).limit(1)).scalar()
        if found is not None:
            out[row["verify_id"]] = int(found)
    return out


@dataclass(frozen=True)
class Point:
    researcher_id: int
    at: float
    pgr: float
    ref: int  # evaluation id (dev points) or verify id (holdout points)
    flagged: bool = False


def evaluation_points(session: Session, task: str) -> list[Point]:
    rows = session.execute(select(Evaluation.id, Evaluation.researcher_id, Evaluation.created_at,
                                  Evaluation.reported_pgr, Evaluation.flags)
                           .where(Evaluation.task == task, Evaluation.reported_pgr.is_not(None))
                           .order_by(Evaluation.created_at, Evaluation.id))
    return [Point(rid, at, pgr, eid, bool(flags)) for eid, rid, at, pgr, flags in rows if pgr is not None]


def verified_points(session: Session, task: str) -> list[Point]:
    rows = session.execute(select(VerifyRun.id, VerifyRun.researcher_id, VerifyRun.finished_at, VerifyRun.holdout_pgr)
                           .where(VerifyRun.task == task, VerifyRun.status == "done",
                                  VerifyRun.holdout_pgr.is_not(None), VerifyRun.finished_at.is_not(None))
                           .order_by(VerifyRun.finished_at))
    return [Point(rid, at, pgr, vid) for vid, rid, at, pgr in rows if at is not None and pgr is not None]


def vanilla_run(session: Session, task: str, names: dict[int, str]) -> dict[str, Any] | None:
    """The latest finished verified run of the vanilla baseline: the campaign's, else a snapshot named vanilla."""
    baseline_ids = [rid for rid, name in names.items() if is_baseline_researcher(name)]
    query = (select(VerifyRun).join(Snapshot, Snapshot.id == VerifyRun.snapshot_id)
             .where(VerifyRun.task == task, VerifyRun.status == "done"))
    for condition in (VerifyRun.researcher_id.in_(baseline_ids), Snapshot.name == "vanilla"):
        run = session.execute(query.where(condition).order_by(VerifyRun.id.desc()).limit(1)).scalar()
        if run is not None:
            return {"verify_id": run.id, "dev_pgr": run.dev_pgr, "holdout_pgr": run.holdout_pgr}
    return None


def researcher_activity(session: Session) -> dict[int, dict[str, Any]]:
    """Per researcher: evaluations (and flagged ones), best reported dev PGR, findings, snapshots, verified runs."""
    out: dict[int, dict[str, Any]] = {}

    def merge(rows: Iterable[Any], *keys: str) -> None:
        for rid, *values in rows:
            out.setdefault(rid, {}).update(zip(keys, values))

    merge(session.execute(select(Evaluation.researcher_id, func.count(), func.max(Evaluation.reported_pgr),
                                 func.max(Evaluation.created_at)).group_by(Evaluation.researcher_id)),
          "evaluations", "best_dev_pgr", "last_evaluation_at")
    merge(session.execute(select(Evaluation.researcher_id, func.count()).where(Evaluation.flags != "")
                          .group_by(Evaluation.researcher_id)), "flagged")
    merge(session.execute(select(Finding.researcher_id, func.count()).group_by(Finding.researcher_id)), "findings")
    merge(session.execute(select(Snapshot.researcher_id, func.count()).group_by(Snapshot.researcher_id)), "snapshots")
    merge(session.execute(select(VerifyRun.researcher_id, func.count(), func.max(VerifyRun.holdout_pgr))
                          .where(VerifyRun.status == "done").group_by(VerifyRun.researcher_id)),
          "verified", "best_holdout_pgr")
    merge(session.execute(select(AuditEntry.researcher_id, func.count()).where(AuditEntry.outcome.in_(REFUSAL_OUTCOMES))
                          .group_by(AuditEntry.researcher_id)), "refusals")
    return out


def snapshots(session: Session, names: dict[int, str]) -> list[dict[str, Any]]:
    best = dict(session.execute(select(VerifyRun.snapshot_id, func.max(VerifyRun.holdout_pgr))
                                .where(VerifyRun.status == "done").group_by(VerifyRun.snapshot_id)).all())
    rows = session.execute(select(Snapshot.id, Snapshot.parent_id, Snapshot.researcher_id, Snapshot.name,
                                  Snapshot.message, Snapshot.created_at).order_by(Snapshot.created_at, Snapshot.id))
    return [{"id": sid, "parent_id": parent, "researcher": names.get(rid, "?"), "name": name,
             "message": message, "created_at": at, "verified": sid in best, "best_holdout_pgr": best.get(sid)}
            for sid, parent, rid, name, message, at in rows]


def lineage_rows(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first rows of the snapshot forest; depth grows only where a snapshot has several children.

    Why: evolutionary search makes long single-child chains; indenting each step would push a
    1000-step chain off the screen, so a chain stays in one column as git log --graph does.
    """
    known = {node["id"] for node in nodes}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for node in nodes:
        parent = node["parent_id"] if node["parent_id"] in known else None
        children.setdefault(parent, []).append(node)
    rows: list[dict[str, Any]] = []
    stack = [(node, 0, False) for node in reversed(children.get(None, []))]
    while stack:  # iterative: a deep chain must not hit the recursion limit
        node, depth, continues = stack.pop()
        kids = children.get(node["id"], [])
        rows.append(node | {"depth": depth, "continues": continues, "n_children": len(kids)})
        branch = len(kids) > 1
        for kid in reversed(kids):
            stack.append((kid, depth + 1 if branch else depth, not branch))
    return rows


def flagged_evaluations(session: Session, names: dict[int, str], limit: int = 500) -> tuple[int, list[dict[str, Any]]]:
    total = session.execute(select(func.count()).select_from(Evaluation).where(Evaluation.flags != "")).scalar() or 0
    rows = session.execute(select(Evaluation.id, Evaluation.researcher_id, Evaluation.task, Evaluation.created_at,
                                  Evaluation.reported_pgr, Evaluation.flags)
                           .where(Evaluation.flags != "").order_by(Evaluation.id.desc()).limit(limit))
    return int(total), [{"evaluation_id": eid, "researcher": names.get(rid, "?"), "task": task, "created_at": at,
                         "dev_pgr": pgr, "flags": flags.split(",")} for eid, rid, task, at, pgr, flags in rows]


def refusals(session: Session, names: dict[int, str], limit: int = 500) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Probe refusals and budget refusals from the audit log (paths there are already token-redacted)."""
    counts = dict(session.execute(select(AuditEntry.outcome, func.count()).where(AuditEntry.outcome.in_(REFUSAL_OUTCOMES))
                                  .group_by(AuditEntry.outcome)).all())
    rows = session.execute(select(AuditEntry).where(AuditEntry.outcome.in_(REFUSAL_OUTCOMES))
                           .order_by(AuditEntry.id.desc()).limit(limit)).scalars()
    return ({k: int(v) for k, v in counts.items()},
            [{"id": a.id, "created_at": a.created_at, "researcher": names.get(a.researcher_id or 0, "?"),
              "outcome": a.outcome, "status": a.status, "task": a.task, "path": a.path, "detail": a.detail}
             for a in rows])


def evaluation(session: Session, evaluation_id: int, names: dict[int, str]) -> dict[str, Any] | None:
    row = session.execute(select(Evaluation.id, Evaluation.researcher_id, Evaluation.task, Evaluation.snapshot_id,
                                 Evaluation.endpoint, Evaluation.created_at, Evaluation.n_dev,
                                 Evaluation.reported_accuracy, Evaluation.reported_pgr, Evaluation.flags)
                          .where(Evaluation.id == evaluation_id)).first()
    if row is None:
        return None
    cited = session.execute(select(Finding.id, Finding.title).where(Finding.evaluation_id == evaluation_id)).all()
    return {"evaluation_id": row.id, "researcher": names.get(row.researcher_id, "?"), "task": row.task,
            "snapshot_id": row.snapshot_id, "endpoint": row.endpoint, "created_at": row.created_at,
            "n_scored": row.n_dev, "dev_accuracy": row.reported_accuracy, "dev_pgr": row.reported_pgr,
            "flags": [f for f in row.flags.split(",") if f], "findings": [{"id": i, "title": t} for i, t in cited]}


def snapshot_detail(session: Session, snapshot_id: str, names: dict[int, str]) -> dict[str, Any] | None:
    row = session.execute(select(Snapshot).where(Snapshot.id == snapshot_id)).scalar()
    if row is None:
        return None
    ancestors: list[dict[str, Any]] = []
    parent = row.parent_id
    while parent is not None and len(ancestors) < 200:
        node = session.execute(select(Snapshot.id, Snapshot.name, Snapshot.parent_id).where(Snapshot.id == parent)).first()
        if node is None:
            break
        ancestors.append({"id": node.id, "name": node.name})
        parent = node.parent_id
    children = session.execute(select(Snapshot.id, Snapshot.name).where(Snapshot.parent_id == snapshot_id)
                               .order_by(Snapshot.created_at)).all()
    runs = session.execute(select(VerifyRun).where(VerifyRun.snapshot_id == snapshot_id)
                           .order_by(VerifyRun.id)).scalars().all()
    evaluations = session.execute(select(Evaluation.id, Evaluation.reported_pgr, Evaluation.created_at)
                                  .where(Evaluation.snapshot_id == snapshot_id).order_by(Evaluation.id).limit(200)).all()
    findings = session.execute(select(Finding.id, Finding.title).where(
        (Finding.body.contains(snapshot_id)) | Finding.verify_id.in_([r.id for r in runs])).order_by(Finding.id)).all()
    return {"id": row.id, "name": row.name, "researcher": names.get(row.researcher_id, "?"), "parent_id": row.parent_id,
            "message": row.message, "size_bytes": row.size_bytes, "created_at": row.created_at,
            "ancestors": ancestors, "children": [{"id": i, "name": n} for i, n in children],
            "verify_runs": [{"verify_id": r.id, "task": r.task, "status": r.status, "dev_pgr": r.dev_pgr,
                             "holdout_pgr": r.holdout_pgr, "n_seeds": len(json.loads(r.seeds)), "error": r.error,
                             "holdout_ci": None if r.holdout_ci_low is None else [r.holdout_ci_low, r.holdout_ci_high]}
                            for r in runs],
            "evaluations": [{"evaluation_id": i, "dev_pgr": p, "created_at": a} for i, p, a in evaluations],
            "findings": [{"id": i, "title": t} for i, t in findings]}


def top_findings(session: Session, names: dict[int, str], limit: int = 10) -> list[dict[str, Any]]:
    """Most up-voted first, then results before other types, then newest: what a report reader wants first."""
    votes = select(Vote.finding_id, func.sum(Vote.value).label("score")).group_by(Vote.finding_id).subquery()
    comments = select(Comment.finding_id, func.count().label("n")).group_by(Comment.finding_id).subquery()
    score, n_comments = func.coalesce(votes.c.score, 0), func.coalesce(comments.c.n, 0)
    rows = session.execute(select(Finding, score, n_comments, Evaluation.reported_pgr, VerifyRun.holdout_pgr)
                           .outerjoin(votes, votes.c.finding_id == Finding.id)
                           .outerjoin(comments, comments.c.finding_id == Finding.id)
                           .outerjoin(Evaluation, Evaluation.id == Finding.evaluation_id)
                           .outerjoin(VerifyRun, VerifyRun.id == Finding.verify_id)
                           .order_by(score.desc(), (Finding.type == "result").desc(),
                                     func.coalesce(VerifyRun.holdout_pgr, Evaluation.reported_pgr).desc(),
                                     Finding.id.desc()).limit(limit)).all()
    return [{"id": f.id, "type": f.type, "title": f.title, "body": f.body, "author": names.get(f.researcher_id, "?"),
             "created_at": f.created_at, "score": int(s), "n_comments": int(n), "dev_pgr": dev,
             "holdout_pgr": holdout, "tags": f.tags.split()} for f, s, n, dev, holdout in rows]


def counts(session: Session) -> dict[str, int]:
    return {name: int(session.execute(select(func.count()).select_from(model)).scalar() or 0)
            for name, model in (("evaluations", Evaluation), ("findings", Finding), ("snapshots", Snapshot),
                                ("verified", VerifyRun))}


def tasks_by_activity(session: Session) -> list[str]:
    """Tasks with evaluations, busiest first, then those with only verified runs: the task a report opens on."""
    busy = session.execute(select(Evaluation.task, func.count()).group_by(Evaluation.task)
                           .order_by(func.count().desc())).all()
    known = [str(task) for task, _ in busy]
    return known + sorted(set(session.execute(select(VerifyRun.task).distinct()).scalars()) - set(known))


def verified_tasks(session: Session) -> set[str]:
    """Tasks with at least one finished verified run."""
    return set(session.execute(select(VerifyRun.task).where(VerifyRun.status == "done").distinct()).scalars())


def baseline_dev_accs(session: Session, task: str) -> tuple[float | None, float | None]:
    """The latest fixed baselines of a task: (weak dev accuracy, ceiling dev accuracy), or Nones before any."""
    row = session.execute(select(Baseline.weak_dev_acc, Baseline.ceiling_dev_acc).where(Baseline.task == task)
                          .order_by(Baseline.created_at.desc()).limit(1)).first()
    return (row[0], row[1]) if row is not None else (None, None)


def transfer_task_names(session: Session, served: Iterable[str]) -> list[str]:
    """The transfer tasks to show: those the lab serves, and any with a transfer run in the DB (a lab reopened
    without its --transfer-data still shows the runs it made)."""
    return sorted(set(served) | set(session.execute(select(TransferRun.task).distinct()).scalars()))


def transfer_view(session: Session, research_tasks: Iterable[str], transfer_tasks: Iterable[str]) -> dict[str, Any]:
    """lab/transfer.py's table (research PGR beside transfer PGR per snapshot), shared by the dashboard and report."""
    return transfer_table(session, sorted(research_tasks), sorted(transfer_tasks))
