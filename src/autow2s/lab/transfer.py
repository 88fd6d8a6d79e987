"""Transfer: snapshots run unchanged on held-out tasks that only the lab's admin knows.

The lab serves its transfer tasks (`autow2s serve --transfer-data DIR`) apart from its research
tasks: they are not in `lab.tasks`, so no researcher endpoint can name, score, verify or list them,
and their runs live in their own table (`transfer_runs`), so no researcher query, id or count shows
them. Only the admin requests a transfer run and reads the results; the campaign's final step and
`autow2s transfer` do, and the dashboard and report (operator views) show them.

A transfer run is scored like a verified run (lab-chosen seeds, the method in the sandbox, holdout PGR
with a bootstrap CI against the public weak teacher) but without the null-supervisor repeat, and on a
neutral view of the task (testbed.prepare.write_neutral_view): its task.json names no task, describes
none and cites no source, and every item has a fresh random id, so a method cannot tell which held-out
task it is running on (the rows' own text, a question, stays: it is the input). There is no
null-supervisor repeat because transfer asks whether a method generalises, not whether it needs its
supervisor.
Asking again for a (snapshot, task) pair returns the existing run, so a resumed campaign never redoes
a finished one.
"""

from __future__ import annotations

import json
import math
import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autow2s.lab.auth import Principal, admin
from autow2s.lab.compare import vs_vanilla
from autow2s.lab.db import inserted_id
from autow2s.lab.errors import APIError
from autow2s.lab.leaderboard import is_baseline_researcher, method_label
from autow2s.lab.models import MAX_ID, Researcher, Snapshot, TransferRun, VerifyRun

if TYPE_CHECKING:
    from autow2s.lab.core import Lab

router = APIRouter(tags=["admin"])
SEED_RANGE = 2**31 - 1


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    snapshot_id: str = Field(pattern=r"^[0-9a-f]{40}$")
    task: str = Field(min_length=1, max_length=200)


def _out(run: TransferRun) -> dict[str, Any]:
    ci = None if run.holdout_ci_low is None else [run.holdout_ci_low, run.holdout_ci_high]
    return {"transfer_id": run.id, "snapshot_id": run.snapshot_id, "task": run.task, "status": run.status,
            "error": run.error, "seeds": json.loads(run.seeds), "holdout_accuracy": run.holdout_accuracy,
            "holdout_pgr": run.holdout_pgr, "holdout_ci": ci, "created_at": run.created_at,
            "finished_at": run.finished_at}


@router.post("/api/v1/admin/transfer", status_code=202)
async def request_transfer(body: TransferRequest, request: Request,
                           principal: Principal = Depends(admin)) -> dict[str, Any]:
    """Queue a snapshot's run on a transfer task; the same pair again returns the existing run."""
    lab: Lab = request.app.state.lab
    if body.task not in lab.transfer_tasks:
        served = ", ".join(sorted(lab.transfer_tasks)) or "none (start the lab with --transfer-data DIR)"
        raise APIError(404, f"task: {body.task!r} is not a transfer task of this lab; transfer tasks: {served}",
                       field="task", outcome="unknown_task")
    if lab.snapshot_owner(body.snapshot_id) is None:
        raise APIError(404, f"snapshot_id: no snapshot {body.snapshot_id}", field="snapshot_id", outcome="not_found")
    with lab.session() as conn:
        existing = conn.execute(select(TransferRun).where(TransferRun.snapshot_id == body.snapshot_id,
                                                          TransferRun.task == body.task)).scalar_one_or_none()
    if existing is not None:  # a run interrupted by a restart is queued again by the lab itself
        return _out(existing)
    seeds = sorted(secrets.SystemRandom().sample(range(1, SEED_RANGE), lab.settings.verify_seed_count))
    row = {"snapshot_id": body.snapshot_id, "task": body.task, "seeds": json.dumps(seeds), "status": "queued",
           "error": "", "created_at": time.time()}
    try:
        run_id = await lab.writer.run(lambda conn: inserted_id(conn.execute(insert(TransferRun), row)))
    except IntegrityError:  # another lab worker queued the same pair a moment ago: that run is the answer
        with lab.session() as conn:
            return _out(conn.execute(select(TransferRun).where(TransferRun.snapshot_id == body.snapshot_id,
                                                               TransferRun.task == body.task)).scalar_one())
    lab.verifier.wake()
    with lab.session() as conn:
        return _out(conn.execute(select(TransferRun).where(TransferRun.id == run_id)).scalar_one())


@router.get("/api/v1/admin/transfer/{transfer_id}")
def get_transfer(request: Request, transfer_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
                 principal: Principal = Depends(admin)) -> dict[str, Any]:
    lab: Lab = request.app.state.lab
    with lab.session() as conn:
        run = conn.execute(select(TransferRun).where(TransferRun.id == transfer_id)).scalar_one_or_none()
    if run is None:
        raise APIError(404, f"transfer_id: no transfer run {transfer_id}", field="transfer_id", outcome="not_found")
    return _out(run)


@router.get("/api/v1/admin/transfer")
def transfer_overview(request: Request, principal: Principal = Depends(admin)) -> dict[str, Any]:
    """Every snapshot's research PGR beside its transfer PGR per transfer task (see transfer_table)."""
    lab: Lab = request.app.state.lab
    with lab.session() as session:
        return transfer_table(session, sorted(lab.tasks), sorted(lab.transfer_tasks))


def snapshot_owner(lab: Lab, snapshot_id: str) -> str:
    """The name of the researcher who saved a snapshot."""
    with lab.session() as session:
        return str(session.execute(select(Researcher.name).join(Snapshot, Snapshot.researcher_id == Researcher.id)
                                   .where(Snapshot.id == snapshot_id)).scalar_one_or_none() or "")


def run_transfer(lab: Lab, run_id: int) -> None:
    """Execute one transfer run this worker has claimed (lab/verify.py), with the sandboxed runner."""
    from concurrent.futures import wait

    from autow2s.lab.errors import RunTakenOver
    from autow2s.lab.runners import vanilla_alongside
    from autow2s.lab.supervisor import verified_metrics
    from autow2s.testbed.models.registry import default_backend
    from autow2s.testbed.prepare import write_neutral_view

    def set_values(**values: Any) -> None:
        lab.verifier.finish(TransferRun, run_id, **values)  # only while this worker holds the run's claim

    with lab.session() as session:
        run = session.execute(select(TransferRun).where(TransferRun.id == run_id)).scalar_one()
    task = lab.transfer_tasks.get(run.task)
    if task is None:
        set_values(status="failed", error=f"transfer task {run.task!r} is no longer served by this lab",
                   finished_at=time.time())
        return
    try:
        with tempfile.TemporaryDirectory(prefix="autow2s-transfer-") as tmp:
            snapshot_dir = lab.snapshots.checkout(run.snapshot_id, Path(tmp))
            # The job sees a view that names no task: a method cannot dispatch on which held-out task it is.
            view = write_neutral_view(task.public_dir, Path(tmp) / "view",
                                      strong_backend=default_backend(task.kind, "strong", task.name))
            seeds = json.loads(run.seeds)
            baseline = is_baseline_researcher(snapshot_owner(lab, run.snapshot_id))
            # vanilla on the same view and seeds (lab/compare.py), in process while the sandboxed job runs
            reference = None if baseline else vanilla_alongside(view, seeds)
            try:
                predictions = lab.verifier.runner.run(snapshot_dir, view, seeds)
            finally:
                if reference is not None:
                    wait([reference])  # it reads the view: let it end before tmp goes, also after a failure
            metrics = verified_metrics(task, predictions, ci_seed=run_id,
                                       reference=None if reference is None else reference.result())
    except RunTakenOver:
        raise
    except Exception as exc:  # noqa: BLE001 - the method's failure is the run's result
        set_values(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:1000],
                   finished_at=time.time())
        return
    set_values(status="done", finished_at=time.time(), holdout_accuracy=metrics["holdout_accuracy"],
               holdout_pgr=metrics["holdout_pgr"], holdout_ci_low=metrics["holdout_ci_low"],
               holdout_ci_high=metrics["holdout_ci_high"], outcome=metrics["outcome"])


# -- the table every view reads --------------------------------------------------------------
def mean_with_ci(values: list[tuple[float | None, list[float] | None]]) -> tuple[float | None, list[float] | None]:
    """The mean of per-task PGRs, and a 95% interval for it from their intervals (tasks taken as independent).

    None when any task has no figure: a mean over fewer tasks than asked would flatter a method that
    fails where it is weak.
    """
    figures = [value for value, _ in values if value is not None]
    if not values or len(figures) < len(values):
        return None, None
    mean = sum(figures) / len(figures)
    intervals = [ci for _, ci in values if ci is not None]
    if len(intervals) < len(values):
        return mean, None
    half = math.sqrt(sum(((high - low) / 2) ** 2 for low, high in intervals)) / len(values)
    return mean, [mean - half, mean + half]


def transfer_table(session: Session, research_tasks: list[str], transfer_tasks: list[str]) -> dict[str, Any]:
    """One row per verified snapshot: research PGR (mean holdout PGR over the research tasks) with per-task
    figures, and transfer PGR per transfer task with their mean and how many beat vanilla's; `vs_vanilla`, the
    differences with vanilla paired by item, with CIs (lab/compare.py).

    Rows stay ordered by research PGR, so transfer remains a held-out test, not a second target.
    """
    names = dict(session.execute(select(Researcher.id, Researcher.name)).all())
    methods = {snapshot: method_label(message, name)
               for snapshot, name, message in session.execute(select(Snapshot.id, Snapshot.name, Snapshot.message))}
    research: dict[str, dict[str, Any]] = {}
    for run in session.execute(select(VerifyRun).where(VerifyRun.status == "done",
                                                       VerifyRun.task.in_(research_tasks))
                               .order_by(VerifyRun.id)).scalars():
        entry = research.setdefault(run.snapshot_id, {"researcher": names.get(run.researcher_id, "?"), "tasks": {}})
        run_ci = None if run.holdout_ci_low is None else [run.holdout_ci_low, run.holdout_ci_high]
        entry["tasks"][run.task] = {"pgr": run.holdout_pgr, "ci": run_ci, "verify_id": run.id,
                                    "supervisor_check": run.supervisor_check}
    transfer: dict[str, dict[str, dict[str, Any]]] = {}
    for moved in session.execute(select(TransferRun).where(TransferRun.task.in_(transfer_tasks))).scalars():
        moved_ci = None if moved.holdout_ci_low is None else [moved.holdout_ci_low, moved.holdout_ci_high]
        transfer.setdefault(moved.snapshot_id, {})[moved.task] = {"pgr": moved.holdout_pgr, "ci": moved_ci,
                                                                  "status": moved.status, "transfer_id": moved.id,
                                                                  "error": moved.error}
    rows = []
    for snapshot_id, entry in research.items():
        per_task = entry["tasks"]
        mean, ci = mean_with_ci([(per_task[t]["pgr"], per_task[t]["ci"]) if t in per_task else (None, None)
                                 for t in research_tasks])
        mine = transfer.get(snapshot_id, {})
        done = {t: r for t, r in mine.items() if r["status"] == "done"}
        t_mean, t_ci = mean_with_ci([(done[t]["pgr"], done[t]["ci"]) if t in done else (None, None)
                                     for t in transfer_tasks]) if transfer_tasks else (None, None)
        checks = {r["supervisor_check"] for r in per_task.values()}
        rows.append({"snapshot_id": snapshot_id, "method": methods.get(snapshot_id, "?"),
                     "researcher": entry["researcher"], "is_vanilla": is_baseline_researcher(entry["researcher"]),
                     "research_pgr": mean, "research_ci": ci, "research_tasks": per_task,
                     "supervisor_check": "flagged" if "flagged" in checks else
                     ("passed" if checks == {"passed"} else sorted(checks)[0] if checks else "not checked"),
                     "transfer": mine, "transfer_pgr": t_mean, "transfer_ci": t_ci})
    vanilla = next((row for row in rows if row["is_vanilla"]), None)

    def outcome(kind: str, run_id: int) -> bytes | None:
        table = VerifyRun if kind == "verify" else TransferRun
        found: bytes | None = session.execute(select(table.outcome).where(table.id == run_id)).scalar_one_or_none()
        return found

    for row in rows:
        row["transfer_beats_vanilla"] = _beats(row, vanilla, transfer_tasks)
        row["vs_vanilla"] = vs_vanilla(row, vanilla, research_tasks, transfer_tasks, outcome)
    rows.sort(key=lambda r: (r["research_pgr"] is None, -(r["research_pgr"] or 0.0)))
    return {"research_tasks": research_tasks, "transfer_tasks": transfer_tasks, "rows": rows,
            "vanilla": vanilla}


def _beats(row: dict[str, Any], vanilla: dict[str, Any] | None, transfer_tasks: list[str]) -> dict[str, int] | None:
    """On how many transfer tasks the row's PGR is above vanilla's (both measured); None before any is."""
    if vanilla is None or row is vanilla:
        return None
    pairs = [(row["transfer"].get(t), vanilla["transfer"].get(t)) for t in transfer_tasks]
    measured = [(a["pgr"], b["pgr"]) for a, b in pairs if a and b and a["status"] == b["status"] == "done"
                and a["pgr"] is not None and b["pgr"] is not None]
    if not measured:
        return None
    return {"k": sum(a > b for a, b in measured), "n": len(measured), "of": len(transfer_tasks)}
