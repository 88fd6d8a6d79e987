"""The forum: findings (result | hypothesis | insight | error), comments, votes, and search.

A `result` must cite an evaluation or a verified run of its own author, and the figure shown
with it is read from that record: numbers written in the body are never parsed or trusted.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.orm import Session

from autow2s.lab.auth import Principal, any_principal, researcher
from autow2s.lab.db import inserted_id
from autow2s.lab.errors import APIError
from autow2s.lab.models import MAX_ID, Comment, Evaluation, Finding, VerifyRun, Vote

router = APIRouter(tags=["forum"])
Tag = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")]
FindingType = Literal["result", "hypothesis", "insight", "error"]
FindingPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]


class FindingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: FindingType
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    task: str | None = Field(default=None, max_length=200)
    evaluation_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    verify_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=10_000)


class VoteCast(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Literal[-1, 0, 1]


class CommentOut(BaseModel):
    id: int
    author: str
    body: str
    created_at: float


class FindingOut(BaseModel):
    id: int
    type: str
    title: str
    body: str
    tags: list[str]
    task: str | None
    author: str
    created_at: float
    score: int
    n_comments: int
    figure: dict[str, Any] | None = Field(description="the lab's own numbers for the cited record")
    comments: list[CommentOut] | None = None


def _figure(conn: Session, evaluation_id: int | None, verify_id: int | None) -> dict[str, Any] | None:
    if evaluation_id is not None:
        e = conn.execute(select(Evaluation).where(Evaluation.id == evaluation_id)).scalar_one_or_none()
        if e is not None:
            return {"source": "evaluation", "evaluation_id": e.id, "task": e.task,
                    "dev_accuracy": e.reported_accuracy, "dev_pgr": e.reported_pgr}
    if verify_id is not None:
        v = conn.execute(select(VerifyRun).where(VerifyRun.id == verify_id)).scalar_one_or_none()
        if v is not None:
            ci = None if v.holdout_ci_low is None else [v.holdout_ci_low, v.holdout_ci_high]
            return {"source": "verified_run", "verify_id": v.id, "task": v.task, "status": v.status,
                    "dev_pgr": v.dev_pgr, "holdout_pgr": v.holdout_pgr, "holdout_ci": ci}
    return None


def _cited_task(conn: Session, body: FindingCreate, principal: Principal) -> str | None:
    """Check the citation belongs to the author; return the task it is about."""
    if body.evaluation_id is not None:
        owner_task = conn.execute(select(Evaluation.researcher_id, Evaluation.task)
                                  .where(Evaluation.id == body.evaluation_id)).first()
        if owner_task is None or owner_task[0] != principal.researcher_id:
            raise APIError(422, f"evaluation_id: {body.evaluation_id} is not one of your evaluations; a result cites "
                           "your own evaluation or verified run", field="evaluation_id")
        return owner_task[1]
    if body.verify_id is not None:
        owner_task = conn.execute(select(VerifyRun.researcher_id, VerifyRun.task)
                                  .where(VerifyRun.id == body.verify_id)).first()
        if owner_task is None or owner_task[0] != principal.researcher_id:
            raise APIError(422, f"verify_id: {body.verify_id} is not one of your verified runs; a result cites "
                           "your own evaluation or verified run", field="verify_id")
        return owner_task[1]
    return None


@router.post("/api/v1/findings", status_code=201, response_model=FindingOut)
async def create_finding(body: FindingCreate, request: Request,
                         principal: Principal = Depends(researcher)) -> dict[str, Any]:
    lab = request.app.state.lab
    if body.evaluation_id is not None and body.verify_id is not None:
        raise APIError(422, "verify_id: cite one record, an evaluation_id or a verify_id, not both", field="verify_id")
    if body.type == "result" and body.evaluation_id is None and body.verify_id is None:
        raise APIError(422, "evaluation_id: a result must cite one of your evaluations (evaluation_id) or verified "
                       "runs (verify_id); post a hypothesis or insight otherwise", field="evaluation_id")
    if body.task is not None:
        lab.task(body.task)
    with lab.session() as conn:
        cited_task = _cited_task(conn, body, principal)
    tags = " " + " ".join(dict.fromkeys(body.tags)) + " "
    row = {"researcher_id": principal.researcher_id, "type": body.type, "title": body.title, "body": body.body,
           "tags": tags, "task": cited_task or body.task, "evaluation_id": body.evaluation_id,
           "verify_id": body.verify_id, "created_at": time.time()}

    def job(conn: Connection) -> int:
        finding_id = inserted_id(conn.execute(insert(Finding), row))
        lab.search.index(conn, finding_id, body.title, body.body, tags)
        return finding_id

    finding_id = await lab.writer.run(job)
    with lab.session() as conn:
        return _load(conn, lab, finding_id, with_comments=True)


def _load(conn: Session, lab: Any, finding_id: int, *, with_comments: bool) -> dict[str, Any]:
    rows = _query(conn, lab, select_ids=[finding_id], sort="new", limit=1, offset=0)
    if not rows:
        raise APIError(404, f"finding_id: no finding {finding_id}", field="finding_id", outcome="not_found")
    finding = rows[0]
    if with_comments:
        names = lab.researcher_names()
        comments = conn.execute(select(Comment).where(Comment.finding_id == finding_id).order_by(Comment.id))
        finding["comments"] = [{"id": c.id, "author": names.get(c.researcher_id, "?"), "body": c.body,
                                "created_at": c.created_at} for c in comments.scalars()]
    return finding


def _query(conn: Session, lab: Any, *, select_ids: list[int] | None, sort: str, limit: int, offset: int,
           type_: str | None = None, tag: str | None = None, task: str | None = None,
           author_id: int | None = None) -> list[dict[str, Any]]:
    votes = select(Vote.finding_id, func.sum(Vote.value).label("score")).group_by(Vote.finding_id).subquery()
    comments = select(Comment.finding_id, func.count().label("n")).group_by(Comment.finding_id).subquery()
    score, n_comments = func.coalesce(votes.c.score, 0), func.coalesce(comments.c.n, 0)
    query = (select(Finding, score, n_comments).outerjoin(votes, votes.c.finding_id == Finding.id)
             .outerjoin(comments, comments.c.finding_id == Finding.id))
    if select_ids is not None:
        query = query.where(Finding.id.in_(select_ids))
    if type_ is not None:
        query = query.where(Finding.type == type_)
    if tag is not None:
        query = query.where(Finding.tags.like(f"% {tag} %"))
    if task is not None:
        query = query.where(Finding.task == task)
    if author_id is not None:
        query = query.where(Finding.researcher_id == author_id)
    order: dict[str, list[Any]] = {"new": [Finding.created_at.desc(), Finding.id.desc()],
             "top": [score.desc(), Finding.created_at.desc(), Finding.id.desc()],
             "discussed": [n_comments.desc(), Finding.created_at.desc(), Finding.id.desc()]}
    if sort in order:
        query = query.order_by(*order[sort]).limit(limit).offset(offset)
    names = lab.researcher_names()
    out = []
    for finding, finding_score, count in conn.execute(query):
        out.append({"id": finding.id, "type": finding.type, "title": finding.title, "body": finding.body,
                    "tags": finding.tags.split(), "task": finding.task,
                    "author": names.get(finding.researcher_id, "?"), "created_at": finding.created_at,
                    "score": int(finding_score), "n_comments": int(count),
                    "figure": _figure(conn, finding.evaluation_id, finding.verify_id)})
    if sort == "relevant" and select_ids is not None:
        rank = {fid: i for i, fid in enumerate(select_ids)}
        out.sort(key=lambda f: rank.get(f["id"], len(rank)))
        out = out[offset: offset + limit]
    return out


@router.get("/api/v1/findings", response_model=list[FindingOut])
def list_findings(
    request: Request,
    sort: Annotated[Literal["new", "top", "discussed", "relevant"] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=500, description="full-text search")] = None,
    type: Annotated[FindingType | None, Query()] = None,
    tag: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")] = None,
    task: Annotated[str | None, Query(max_length=200)] = None,
    author: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
    principal: Principal | None = Depends(any_principal),  # None: the dashboard's public read
) -> list[dict[str, Any]]:
    """Newest first by default; with q, best match first unless another sort is asked for."""
    lab = request.app.state.lab
    author_id = None
    if author is not None:
        matches = [rid for rid, name in lab.researcher_names().items() if name == author]
        if not matches:
            return []
        author_id = matches[0]
    with lab.session() as conn:
        ids = None
        if q is not None:
            ids = lab.search.search(conn, q, limit=1000)
            if not ids:
                return []
        chosen = sort or ("relevant" if q is not None else "new")
        if chosen == "relevant" and ids is None:
            chosen = "new"
        return _query(conn, lab, select_ids=ids, sort=chosen, limit=limit, offset=offset, type_=type, tag=tag,
                      task=task, author_id=author_id)


@router.get("/api/v1/findings/{finding_id}", response_model=FindingOut)
def get_finding(request: Request, finding_id: FindingPath,
                principal: Principal | None = Depends(any_principal)) -> dict[str, Any]:
    lab = request.app.state.lab
    with lab.session() as conn:
        return _load(conn, lab, finding_id, with_comments=True)


def _require_finding(lab: Any, finding_id: int) -> None:
    with lab.session() as conn:
        if conn.execute(select(Finding.id).where(Finding.id == finding_id)).first() is None:
            raise APIError(404, f"finding_id: no finding {finding_id}", field="finding_id", outcome="not_found")


@router.post("/api/v1/findings/{finding_id}/comments", status_code=201, response_model=CommentOut)
async def add_comment(finding_id: FindingPath, body: CommentCreate, request: Request,
                      principal: Principal = Depends(researcher)) -> dict[str, Any]:
    lab = request.app.state.lab
    _require_finding(lab, finding_id)
    row = {"finding_id": finding_id, "researcher_id": principal.researcher_id, "body": body.body,
           "created_at": time.time()}
    comment_id = await lab.writer.run(lambda conn: inserted_id(conn.execute(insert(Comment), row)))
    return {"id": comment_id, "author": principal.name, "body": body.body, "created_at": row["created_at"]}


@router.post("/api/v1/findings/{finding_id}/vote", response_model=FindingOut)
async def vote(finding_id: FindingPath, body: VoteCast, request: Request,
               principal: Principal = Depends(researcher)) -> dict[str, Any]:
    """One vote per researcher per finding: +1, -1, or 0 to take it back."""
    lab = request.app.state.lab
    _require_finding(lab, finding_id)

    def job(conn: Connection) -> None:
        conn.execute(delete(Vote).where(Vote.finding_id == finding_id, Vote.researcher_id == principal.researcher_id))
        if body.value != 0:
            conn.execute(insert(Vote), {"finding_id": finding_id, "researcher_id": principal.researcher_id,
                                        "value": body.value, "created_at": time.time()})

    await lab.writer.run(job)
    with lab.session() as conn:
        return _load(conn, lab, finding_id, with_comments=False)
