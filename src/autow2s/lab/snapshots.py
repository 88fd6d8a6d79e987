"""Snapshot endpoints: upload a method directory as a tarball, download it, query its lineage."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from autow2s.lab.auth import Principal, any_principal, researcher
from autow2s.lab.errors import APIError
from autow2s.lab.models import Snapshot
from autow2s.lab.snapshot_store import read_method_tarball

router = APIRouter(tags=["snapshots"])
SNAPSHOT_ID = r"^[0-9a-f]{40}$"
SnapshotPath = Annotated[str, PathParam(pattern=SNAPSHOT_ID, description="a snapshot (git commit) id")]
MAX_LINEAGE = 1000


class SnapshotInfo(BaseModel):
    snapshot_id: str
    name: str
    researcher: str
    parent_id: str | None
    message: str
    size_bytes: int
    created_at: float


class Lineage(BaseModel):
    snapshot_id: str
    ancestors: list[SnapshotInfo]
    descendants: list[SnapshotInfo]


def _info(row: Snapshot, names: dict[int, str]) -> dict[str, Any]:
    return {"snapshot_id": row.id, "name": row.name, "researcher": names.get(row.researcher_id, "?"),
            "parent_id": row.parent_id, "message": row.message, "size_bytes": row.size_bytes,
            "created_at": row.created_at}


def _get(conn: Session, snapshot_id: str) -> Snapshot:
    row = conn.execute(select(Snapshot).where(Snapshot.id == snapshot_id)).scalar_one_or_none()
    if row is None:
        raise APIError(404, f"snapshot_id: no snapshot {snapshot_id}", field="snapshot_id", outcome="not_found")
    return row


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/gzip": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/api/v1/snapshots", status_code=201, response_model=SnapshotInfo, openapi_extra=_UPLOAD_BODY)
async def upload_snapshot(
    request: Request,
    name: Annotated[str, Query(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$", description="the method's name")],
    message: Annotated[str, Query(min_length=1, max_length=2000)],
    parent_id: Annotated[str | None, Query(pattern=SNAPSHOT_ID)] = None,
    principal: Principal = Depends(researcher),
) -> dict[str, Any]:
    """The body is the method directory as a tarball (method.py at its top)."""
    lab = request.app.state.lab
    data = await request.body()
    if not data:
        raise APIError(422, "body: empty; send the method directory as a tarball (tar czf - -C DIR .)", field="body")
    if parent_id is not None and lab.snapshot_owner(parent_id) is None:
        raise APIError(404, f"parent_id: no snapshot {parent_id}", field="parent_id", outcome="not_found")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in message):
        raise APIError(422, "message: control characters (other than newline and tab) are not allowed",
                       field="message")
    settings = lab.settings
    files = read_method_tarball(data, max_files=settings.max_snapshot_files,
                                max_unpacked=settings.max_snapshot_unpacked_bytes)
    try:
        commit = await run_in_threadpool(
            lab.snapshots.commit, files, author_name=principal.name,
            author_email=f"researcher-{principal.researcher_id}@autow2s.invalid", parent=parent_id, message=message)
    except (OSError, RuntimeError) as exc:  # names the filesystem or git cannot hold (too long, file vs folder)
        raise APIError(422, f"body: the files could not be stored ({exc}); use plain, short relative names",
                       field="body", outcome="bad_snapshot") from None
    row = {"id": commit, "researcher_id": principal.researcher_id, "parent_id": parent_id, "name": name,
           "message": message, "size_bytes": len(data), "created_at": time.time()}
    if lab.snapshot_owner(commit) is None:  # the same tree, parent, author and second give the same commit
        try:
            await lab.writer.run(lambda conn: conn.execute(insert(Snapshot), row))
        except Exception:
            with lab.session() as conn:
                _get(conn, commit)  # a concurrent identical upload won the insert: that is fine
        lab.record_snapshot_owner(commit, principal.researcher_id)
    with lab.session() as conn:
        return _info(_get(conn, commit), lab.researcher_names())


@router.get("/api/v1/snapshots", response_model=list[SnapshotInfo])
def list_snapshots(request: Request, researcher_name: Annotated[str | None, Query(alias="researcher", max_length=64)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
                   principal: Principal = Depends(any_principal)) -> list[dict[str, Any]]:
    lab = request.app.state.lab
    names = lab.researcher_names()
    query = select(Snapshot).order_by(Snapshot.created_at.desc()).limit(limit).offset(offset)
    if researcher_name is not None:
        ids = [rid for rid, n in names.items() if n == researcher_name]
        query = query.where(Snapshot.researcher_id.in_(ids))
    with lab.session() as conn:
        return [_info(row, names) for row in conn.execute(query).scalars()]


@router.get("/api/v1/snapshots/{snapshot_id}", response_model=SnapshotInfo)
def get_snapshot(request: Request, snapshot_id: SnapshotPath,
                 principal: Principal = Depends(any_principal)) -> dict[str, Any]:
    lab = request.app.state.lab
    with lab.session() as conn:
        return _info(_get(conn, snapshot_id), lab.researcher_names())


@router.get("/api/v1/snapshots/{snapshot_id}/tarball", response_class=Response,
            responses={200: {"content": {"application/gzip": {}}}})
def download_snapshot(request: Request, snapshot_id: SnapshotPath,
                      principal: Principal = Depends(any_principal)) -> Response:
    lab = request.app.state.lab
    with lab.session() as conn:
        row = _get(conn, snapshot_id)
    data = lab.snapshots.tarball(snapshot_id, row.name)
    return Response(data, media_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{row.name}-{snapshot_id[:12]}.tar.gz"'})


@router.get("/api/v1/snapshots/{snapshot_id}/lineage", response_model=Lineage)
def lineage(request: Request, snapshot_id: SnapshotPath, principal: Principal = Depends(any_principal)) -> dict[str, Any]:
    """Ancestors (parent first) and all descendants, each bounded to 1000 snapshots."""
    lab = request.app.state.lab
    names = lab.researcher_names()
    with lab.session() as conn:
        row = _get(conn, snapshot_id)
        ancestors: list[dict[str, Any]] = []
        parent = row.parent_id
        while parent is not None and len(ancestors) < MAX_LINEAGE:
            node = conn.execute(select(Snapshot).where(Snapshot.id == parent)).scalar_one_or_none()
            if node is None:
                break
            ancestors.append(_info(node, names))
            parent = node.parent_id
        descendants: list[dict[str, Any]] = []
        frontier = [snapshot_id]
        while frontier and len(descendants) < MAX_LINEAGE:
            children = conn.execute(select(Snapshot).where(Snapshot.parent_id.in_(frontier[:500]))
                                    .order_by(Snapshot.created_at)).scalars().all()
            frontier = frontier[500:] + [c.id for c in children]
            descendants.extend(_info(c, names) for c in children)
    return {"snapshot_id": snapshot_id, "ancestors": ancestors, "descendants": descendants[:MAX_LINEAGE]}
