"""Verified runs and the leaderboard: the only place a holdout figure is shown, and only in aggregate.

No endpoint accepts a PGR from a client: the leaderboard is built from verify runs the lab
executed itself on seeds it chose. Asking again for a snapshot of yours that is already queued,
running or verified on the task returns that run, uncharged, so the leaderboard never lists the
same snapshot twice.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert, select

from autow2s.lab.audit import audit_row
from autow2s.lab.auth import Principal, any_principal, researcher
from autow2s.lab.budgets import lock_researcher
from autow2s.lab.db import inserted_id
from autow2s.lab.errors import APIError
from autow2s.lab.leaderboard import leaderboard_rows, supervisor_fields
from autow2s.lab.models import MAX_ID, VerifyRun

router = APIRouter(tags=["verify"])
SEED_RANGE = 2**31 - 1
SUPERVISOR_CHECK_HELP = ("the run repeated with a null supervisor (weak labels trained on permuted labels): 'passed', "
                         "'flagged' (the method keeps its PGR without the supervisor's signal), or 'not checked'")


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    snapshot_id: str = Field(pattern=r"^[0-9a-f]{40}$")
    task: str = Field(min_length=1, max_length=200)


class VerifyOut(BaseModel):
    verify_id: int
    status: str
    task: str
    snapshot_id: str
    researcher: str
    seeds: list[int]
    error: str
    dev_pgr: float | None
    holdout_pgr: float | None
    holdout_ci: list[float] | None
    supervisor_check: str = Field(description=SUPERVISOR_CHECK_HELP)
    null_supervisor_pgr: float | None
    null_supervisor_ci: list[float] | None
    independent_of_supervisor: bool | None
    created_at: float
    finished_at: float | None
    note: str = ""


class LeaderboardRow(BaseModel):
    rank: int
    verify_id: int
    method: str = Field(description="the snapshot message's first line (the folder's name if it has none)")
    snapshot_name: str = Field(description="the name of the method folder the snapshot was saved from")
    researcher: str
    snapshot_id: str
    dev_pgr: float | None
    holdout_pgr: float | None
    holdout_ci: list[float] | None
    best_seen_dev_pgr: float | None = Field(description="the best dev PGR this researcher was shown on the task")
    dev_holdout_gap: float | None = Field(description="this run's dev PGR - its holdout PGR (same seeds, same "
                                                      "supervisor): a large gap suggests a method fitted to the dev "
                                                      "items or the scorer")
    n_seeds: int
    finished_at: float | None
    supervisor_check: str = Field(description=SUPERVISOR_CHECK_HELP)
    null_supervisor_pgr: float | None
    null_supervisor_ci: list[float] | None
    independent_of_supervisor: bool | None


def _out(run: VerifyRun, names: dict[int, str]) -> dict[str, Any]:
    ci = None if run.holdout_ci_low is None else [run.holdout_ci_low, run.holdout_ci_high]
    return {"verify_id": run.id, "status": run.status, "task": run.task, "snapshot_id": run.snapshot_id,
            "researcher": names.get(run.researcher_id, "?"), "seeds": json.loads(run.seeds), "error": run.error,
            "dev_pgr": run.dev_pgr, "holdout_pgr": run.holdout_pgr, "holdout_ci": ci, "created_at": run.created_at,
            "finished_at": run.finished_at, **supervisor_fields(run)}


@router.post("/api/v1/verify", status_code=202, response_model=VerifyOut,
             responses={200: {"description": "this snapshot is already queued, running or verified: that run"}})
async def request_verify(body: VerifyRequest, request: Request, response: Response,
                         principal: Principal = Depends(researcher)) -> dict[str, Any]:
    """Queue a verified run of your snapshot on seeds the lab chooses; poll GET /api/v1/verify/{id}."""
    lab = request.app.state.lab
    state = request.scope.setdefault("state", {})
    task = lab.task(body.task)
    state["task"] = task.name
    owner = lab.snapshot_owner(body.snapshot_id)
    if owner is None:
        raise APIError(404, f"snapshot_id: no snapshot {body.snapshot_id}; upload it with POST /api/v1/snapshots",
                       field="snapshot_id", outcome="not_found")
    if owner != principal.researcher_id:
        raise APIError(403, "snapshot_id: you can verify only your own snapshots", field="snapshot_id",
                       outcome="forbidden")
    rng = secrets.SystemRandom()
    seeds = sorted(rng.sample(range(1, SEED_RANGE), lab.settings.verify_seed_count))
    now = time.time()
    rid = principal.researcher_id
    assert rid is not None  # the researcher dependency refuses the admin

    def job(conn: Connection) -> tuple[int, bool] | APIError:
        """Check-then-queue under the researcher's lock: on any worker, a snapshot is queued once and charged once."""
        lock_researcher(conn, rid)
        existing = conn.execute(select(VerifyRun.id).where(
            VerifyRun.researcher_id == principal.researcher_id, VerifyRun.snapshot_id == body.snapshot_id,
            VerifyRun.task == task.name, VerifyRun.status.in_(("queued", "running", "done")))
            .order_by(VerifyRun.id).limit(1)).scalar()
        if existing is not None:
            return int(existing), False
        standing = lab.budgets.standing(conn, principal.researcher_id, task.name, "verify", now)
        if not standing.allowed:
            headers = {} if standing.resets_at is None else {
                "Retry-After": str(max(1, int(standing.resets_at - now + 1)))}
            return APIError(429, standing.reason, outcome="over_budget", headers=headers,
                            budget_left=standing.total_left)
        run_id = inserted_id(conn.execute(insert(VerifyRun), {
            "researcher_id": principal.researcher_id, "snapshot_id": body.snapshot_id, "task": task.name,
            "seeds": json.dumps(seeds), "status": "queued", "error": "", "created_at": now}))
        lab.budgets.charge(conn, audit_row(request.scope, 202, outcome="accepted", charged="verify",
                                           detail=f"verify run {run_id}"), standing)
        return run_id, True

    outcome = await lab.writer.run(job)
    if isinstance(outcome, APIError):
        raise outcome
    run_id, queued = outcome
    with lab.session() as conn:
        run = conn.execute(select(VerifyRun).where(VerifyRun.id == run_id)).scalar_one()
        out = _out(run, lab.researcher_names())
    if not queued:
        response.status_code = 200
        return out | {"note": f"snapshot {body.snapshot_id[:10]} already has verified run {run_id} on {task.name} "
                              f"({run.status}); this is that run, and nothing was charged"}
    state["audited"] = True
    lab.verifier.wake()
    return out


@router.get("/api/v1/verify/{verify_id}", response_model=VerifyOut)
def get_verify(request: Request, verify_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
               principal: Principal = Depends(any_principal)) -> dict[str, Any]:
    lab = request.app.state.lab
    with lab.session() as conn:
        run = conn.execute(select(VerifyRun).where(VerifyRun.id == verify_id)).scalar_one_or_none()
    if run is None:
        raise APIError(404, f"verify_id: no verified run {verify_id}", field="verify_id", outcome="not_found")
    return _out(run, lab.researcher_names())


@router.get("/api/v1/leaderboard", response_model=list[LeaderboardRow], tags=["leaderboard"])
def leaderboard(request: Request, task: Annotated[str, Query(min_length=1, max_length=200)],
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                principal: Principal = Depends(any_principal)) -> list[dict[str, Any]]:
    """Verified runs only, best holdout PGR first."""
    lab = request.app.state.lab
    lab_task = lab.task(task)
    with lab.session() as conn:
        return leaderboard_rows(conn, lab_task.name, lab.researcher_names(), limit)
