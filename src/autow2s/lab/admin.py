"""Identity, budgets, tasks, and the records a researcher (or the admin) may read back."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from autow2s.lab.auth import Principal, admin, any_principal, hash_token, new_token
from autow2s.lab.budgets import KINDS, Override
from autow2s.lab.db import inserted_id
from autow2s.lab.errors import APIError
from autow2s.lab.models import MAX_ID, AuditEntry, BudgetOverride, Evaluation, Researcher

router = APIRouter(tags=["lab"])
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]


class ResearcherCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    budget_total: int | None = Field(default=None, ge=0, le=10**9, description="evaluations per task")
    budget_rate_per_minute: int | None = Field(default=None, ge=1, le=10**6)


class ResearcherCreated(BaseModel):
    id: int
    name: str
    token: str = Field(description="shown once; the lab stores only its digest")


class BudgetSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    researcher_id: int = Field(ge=1, le=MAX_ID)
    task: str = Field(default="*", min_length=1, max_length=200, description="a task, or * for every task")
    kind: Literal["evaluate", "verify"] = "evaluate"
    total: int | None = Field(default=None, ge=0, le=10**9, description="None keeps the task's default")
    rate_per_minute: int | None = Field(default=None, ge=1, le=10**6, description="None keeps the default")


class EvaluationOut(BaseModel):
    evaluation_id: int
    researcher: str
    task: str
    snapshot_id: str | None
    dev_accuracy: float
    dev_pgr: float | None
    n_scored: int
    flags: list[str]
    created_at: float


def _set_budget(conn: Connection, researcher_id: int, task: str, kind: str, limit: Override) -> None:
    conn.execute(delete(BudgetOverride).where(BudgetOverride.researcher_id == researcher_id,
                                              BudgetOverride.task == task, BudgetOverride.kind == kind))
    conn.execute(insert(BudgetOverride), {"researcher_id": researcher_id, "task": task, "kind": kind,
                                          "total": limit.total, "rate_per_minute": limit.rate_per_minute,
                                          "updated_at": time.time()})


@router.get("/api/v1/health", tags=["lab"])
def health(request: Request) -> dict[str, Any]:
    """Readiness: answers once tasks and baselines are loaded. No token needed; says nothing secret."""
    return {"status": "ok", "tasks": sorted(request.app.state.lab.tasks)}


@router.post("/api/v1/researchers", status_code=201, response_model=ResearcherCreated)
async def create_researcher(body: ResearcherCreate, request: Request,
                            principal: Principal = Depends(admin)) -> dict[str, Any]:
    lab = request.app.state.lab
    token = new_token()
    digest = hash_token(token)
    evaluate_limit = None
    if body.budget_total is not None or body.budget_rate_per_minute is not None:
        evaluate_limit = Override(body.budget_total, body.budget_rate_per_minute)

    def job(conn: Connection) -> int:
        researcher_id = inserted_id(conn.execute(insert(Researcher), {"name": body.name, "token_hash": digest,
                                                                      "created_at": time.time()}))
        if evaluate_limit is not None:
            _set_budget(conn, researcher_id, "*", "evaluate", evaluate_limit)
        return researcher_id

    try:
        researcher_id = await lab.writer.run(job)
    except IntegrityError:
        raise APIError(409, f"name: a researcher named {body.name!r} exists; choose another name", field="name",
                       outcome="conflict") from None
    lab.tokens.add(researcher_id, body.name, digest)
    return {"id": researcher_id, "name": body.name, "token": token}


@router.get("/api/v1/researchers", tags=["lab"])
def list_researchers(request: Request, principal: Principal = Depends(admin)) -> list[dict[str, Any]]:
    with request.app.state.lab.session() as conn:
        return [{"id": r.id, "name": r.name, "created_at": r.created_at}
                for r in conn.execute(select(Researcher).order_by(Researcher.id)).scalars()]


@router.put("/api/v1/budgets")
async def set_budget(body: BudgetSet, request: Request, principal: Principal = Depends(admin)) -> dict[str, Any]:
    """Set one researcher's budget on a task (or on every task with task='*')."""
    lab = request.app.state.lab
    if body.researcher_id not in lab.researcher_names():
        raise APIError(404, f"researcher_id: no researcher {body.researcher_id}", field="researcher_id",
                       outcome="not_found")
    if body.task != "*":
        lab.task(body.task)
    limit = Override(body.total, body.rate_per_minute)
    await lab.writer.run(lambda conn: _set_budget(conn, body.researcher_id, body.task, body.kind, limit))
    return body.model_dump()


@router.get("/api/v1/tasks")
def tasks(request: Request, principal: Principal = Depends(any_principal)) -> list[dict[str, Any]]:
    """The served tasks and their fixed baselines on dev (the numbers every dev PGR uses)."""
    out = []
    for task in request.app.state.lab.tasks.values():
        b = task.baselines
        out.append({"name": task.name, "kind": task.kind, "n_test": task.n_test, "n_dev": task.n_dev,
                    "weak_dev_acc": b.weak_dev_acc, "ceiling_dev_acc": b.ceiling_dev_acc,
                    "baseline_seeds": list(b.seeds)})
    return out


@router.get("/api/v1/me")
def me(request: Request, principal: Principal = Depends(any_principal)) -> dict[str, Any]:
    """Who the token belongs to, and the budget left on every task."""
    lab = request.app.state.lab
    budgets: dict[str, dict[str, dict[str, int]]] = {}
    if principal.researcher_id is not None:
        now = time.time()
        with lab.engine.connect() as conn:
            for name in lab.tasks:
                budgets[name] = {kind: lab.budgets.summary(conn, principal.researcher_id, name, kind, now)
                                 for kind in KINDS}
    return {"researcher_id": principal.researcher_id, "name": principal.name, "budgets": budgets}


def _evaluation(row: Evaluation, names: dict[int, str]) -> dict[str, Any]:
    return {"evaluation_id": row.id, "researcher": names.get(row.researcher_id, "?"), "task": row.task,
            "snapshot_id": row.snapshot_id, "dev_accuracy": row.reported_accuracy, "dev_pgr": row.reported_pgr,
            "n_scored": row.n_dev, "flags": [f for f in row.flags.split(",") if f], "created_at": row.created_at}


@router.get("/api/v1/evaluations", response_model=list[EvaluationOut])
def list_evaluations(request: Request, task: Annotated[str | None, Query(max_length=200)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
                     principal: Principal = Depends(any_principal)) -> list[dict[str, Any]]:
    """Your own evaluations, newest first, with the numbers you were shown (the admin sees all)."""
    lab = request.app.state.lab
    query = select(Evaluation).order_by(Evaluation.id.desc()).limit(limit).offset(offset)
    if not principal.is_admin:
        query = query.where(Evaluation.researcher_id == principal.researcher_id)
    if task is not None:
        query = query.where(Evaluation.task == task)
    names = lab.researcher_names()
    with lab.session() as conn:
        return [_evaluation(row, names) for row in conn.execute(query).scalars()]


@router.get("/api/v1/evaluations/{evaluation_id}", response_model=EvaluationOut)
def get_evaluation(request: Request, evaluation_id: Id, principal: Principal = Depends(any_principal)) -> dict[str, Any]:
    lab = request.app.state.lab
    with lab.session() as conn:
        row = conn.execute(select(Evaluation).where(Evaluation.id == evaluation_id)).scalar_one_or_none()
    if row is None or (not principal.is_admin and row.researcher_id != principal.researcher_id):
        raise APIError(404, f"evaluation_id: none of your evaluations has id {evaluation_id}", field="evaluation_id",
                       outcome="not_found")
    return _evaluation(row, lab.researcher_names())


@router.get("/api/v1/audit")
def audit(request: Request, after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
          limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
          researcher_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
          principal: Principal = Depends(admin)) -> list[dict[str, Any]]:
    """The audit log in id order, paged with after_id (admin only)."""
    query = select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id).limit(limit)
    if researcher_id is not None:
        query = query.where(AuditEntry.researcher_id == researcher_id)
    with request.app.state.lab.session() as conn:
        return [{c.name: getattr(row, c.name) for c in AuditEntry.__table__.columns}
                for row in conn.execute(query).scalars()]
