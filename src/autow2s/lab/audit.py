"""The audit log: one append-only row per API request, written before the response leaves.

Handlers that write their own audit row in the same transaction as their record (accepted
evaluations) mark the request as audited; everything else (refusals, errors, reads) is recorded
here with the status the client is about to receive. A row's created_at is the database's clock
(the column's default, lab/models.py), never the lab host's: budget windows count these rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

from sqlalchemy import Connection, insert
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autow2s.lab.auth import redacted_path
from autow2s.lab.models import AuditEntry

log = logging.getLogger("autow2s.lab")
UNAUDITED_PATHS = frozenset({"/api/v1/health"})


def audit_row(scope: MutableMapping[str, Any], status: int, **fields: Any) -> dict[str, Any]:
    state = scope.get("state") or {}
    researcher_id = state.get("researcher_id")
    row = {
        "researcher_id": researcher_id,
        "actor": state.get("actor", "anonymous"),
        "method": scope.get("method", "")[:8],
        "path": redacted_path(scope),
        "status": status,
        "task": state.get("task"),
        "outcome": state.get("outcome") or ("ok" if status < 400 else "error"),
        "charged": None,
        "evaluation_id": None,
        "flags": "",
        "detail": (state.get("detail") or "")[:500],
    }
    row.update(fields)
    return row


def insert_audit(row: dict[str, Any]) -> Callable[[Connection], None]:
    def job(conn: Connection) -> None:
        conn.execute(insert(AuditEntry), row)

    return job


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api") or scope["path"] in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        lab = scope["app"].state.lab

        async def record(status: int) -> None:
            if state.get("audited"):
                return
            state["audited"] = True
            try:
                await lab.writer.run(insert_audit(audit_row(scope, status)))
            except Exception:  # the response must still go out; the failure is logged for the admin
                log.exception("could not write an audit row for %s %s", scope.get("method"), redacted_path(scope))

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            state.setdefault("outcome", "server_error")
            await record(500)
            raise
