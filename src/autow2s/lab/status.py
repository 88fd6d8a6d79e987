"""A researcher's own standing on one task: its evaluations, verified runs, budgets and the limits in force.

It exists so an agent can see what it has done instead of polling the leaderboard or asking
again. It answers only with the caller's own rows on the task it names, with exactly the figures
the caller was already shown (coarsened dev numbers; holdout only for its own verified runs, as
GET /api/v1/verify/{id} gives them). An unknown task is refused without listing the lab's tasks,
so the endpoint cannot be used to discover held-out ones.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select

from autow2s.lab.auth import Principal, researcher
from autow2s.lab.errors import APIError
from autow2s.lab.leaderboard import supervisor_fields
from autow2s.lab.models import Evaluation, VerifyRun

router = APIRouter(tags=["status"])
RECENT_EVALUATIONS = 20
PENDING = ("queued", "running")


def _budget(lab: Any, researcher_id: int, task: str, kind: str) -> dict[str, Any]:
    with lab.engine.connect() as conn:
        summary = lab.budgets.summary(conn, researcher_id, task, kind, time.time())
    return {"total": summary["total"], "left": summary["total_left"], "rate_per_minute": summary["rate_per_minute"],
            "rate_left": summary["rate_left"]}


def _run(run: VerifyRun) -> dict[str, Any]:
    ci = None if run.holdout_ci_low is None else [run.holdout_ci_low, run.holdout_ci_high]
    return {"verify_id": run.id, "snapshot_id": run.snapshot_id, "status": run.status, "error": run.error[:300],
            "dev_pgr": run.dev_pgr, "holdout_pgr": run.holdout_pgr, "holdout_ci": ci,
            "created_at": run.created_at, "finished_at": run.finished_at, **supervisor_fields(run)}


@router.get("/api/v1/me/status")
def my_status(request: Request, task: Annotated[str, Query(min_length=1, max_length=200)],
              principal: Principal = Depends(researcher)) -> dict[str, Any]:
    """Your evaluations (latest first), verified runs, budgets and the lab's limits on one task."""
    lab = request.app.state.lab
    if task not in lab.tasks:
        raise APIError(404, f"unknown task {task!r}; ask about the task named in your instructions", field="task",
                       outcome="unknown_task")
    rid = principal.researcher_id
    assert rid is not None  # the researcher dependency refuses the admin
    mine = (Evaluation.researcher_id == rid) & (Evaluation.task == task)
    with lab.session() as conn:
        count = conn.execute(select(func.count()).select_from(Evaluation).where(mine)).scalar() or 0
        rows = conn.execute(select(Evaluation.id, Evaluation.created_at, Evaluation.snapshot_id,
                                   Evaluation.reported_accuracy, Evaluation.reported_pgr, Evaluation.flags)
                            .where(mine).order_by(Evaluation.id.desc()).limit(RECENT_EVALUATIONS)).all()
        runs = conn.execute(select(VerifyRun).where(VerifyRun.researcher_id == rid, VerifyRun.task == task)
                            .order_by(VerifyRun.id)).scalars().all()
        verifications = [_run(run) for run in runs]
    evaluations = [{"evaluation_id": r.id, "created_at": r.created_at, "snapshot_id": r.snapshot_id,
                    "dev_accuracy": r.reported_accuracy, "dev_pgr": r.reported_pgr,
                    "flags": [f for f in r.flags.split(",") if f]} for r in rows]
    settings = lab.settings
    return {"researcher": principal.name, "task": task,
            "evaluations_total": count, "evaluations_recent": evaluations,
            "verifications": verifications,
            "pending_verifications": [v["verify_id"] for v in verifications if v["status"] in PENDING],
            "budgets": {"evaluate": _budget(lab, rid, task, "evaluate"), "verify": _budget(lab, rid, task, "verify")},
            "limits": {"verify_seed_count": settings.verify_seed_count,
                       "null_supervisor_check": settings.dependence_check,
                       "near_duplicate_min_items": lab.probes.min_changed(lab.tasks[task].n_test),
                       "n_test": lab.tasks[task].n_test, "n_dev": lab.tasks[task].n_dev}}
