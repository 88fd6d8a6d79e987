"""Templates, filters and the page wrapper every dashboard route goes through.

One wrapper means one place for the access check, the security headers, the shared header
context (campaign status, auto-refresh) and the no-store cache policy of live pages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeGuard

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import func, select

from autow2s.lab.models import Evaluation, Finding
from autow2s.lab.web import guard
from autow2s.lab.web.queries import counts
from autow2s.rundir import JobKills, RunView, find_run_dir, read_run_view

HERE = Path(__file__).parent
STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
REFRESH_S = 5
ACTIVE_WITHOUT_CAMPAIGN_S = 120.0  # a lab with no run dir counts as live while it saw work this recently
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_SNAPSHOT_ID = re.compile(r"\b[0-9a-f]{40}\b")
job_kills = JobKills()


def _number(value: object) -> TypeGuard[float]:
    """Missing values (None, or a key a template asked for that is not there) print as a dash."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt_pgr(value: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _number(value) else "—"


def fmt_time(at: float | None) -> str:
    if not _number(at):
        return "—"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_ago(at: float | None) -> Markup:
    """'3 min ago', with the absolute UTC time as a tooltip."""
    if not _number(at):
        return Markup("—")
    seconds = max(0.0, time.time() - at)
    if seconds < 60:
        text = f"{seconds:.0f} s ago"
    elif seconds < 3600:
        text = f"{seconds / 60:.0f} min ago"
    elif seconds < 86400 * 2:
        text = f"{seconds / 3600:.1f} h ago"
    else:
        text = f"{seconds / 86400:.0f} days ago"
    return Markup(f'<time title="{fmt_time(at)}">{text}</time>')


def link_snapshots(text: str) -> Markup:
    """Escape a finding's text and turn the snapshot ids it names into links."""
    return Markup(_SNAPSHOT_ID.sub(lambda m: f'<a href="/dashboard/snapshots/{m.group(0)}">{m.group(0)[:12]}</a>',
                                   str(escape(text))))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pgr=fmt_pgr, ts=fmt_time, ago=fmt_ago, short=lambda s: (s or "")[:12],
                       link_snapshots=link_snapshots)
    env.globals["static_version"] = static_version()
    return env


@lru_cache(maxsize=1)
def static_version() -> str:
    digest = hashlib.sha256()
    for name in sorted(STATIC):
        digest.update((HERE / "static" / name).read_bytes())
    return digest.hexdigest()[:10]


@lru_cache(maxsize=len(STATIC))
def static_bytes(name: str) -> bytes:
    return (HERE / "static" / name).read_bytes()


def campaign_of(request: Request) -> RunView | None:
    lab = request.app.state.lab
    root = find_run_dir(lab.settings.resolved_state_dir)
    return None if root is None else read_run_view(root)


def _refresh(request: Request, campaign: RunView | None, last_activity: float | None) -> int:
    asked = request.query_params.get("refresh")
    if asked is not None and asked.isdigit():
        return min(int(asked), 3600)
    if campaign is not None:
        return REFRESH_S if campaign.running else 0
    live = last_activity is not None and time.time() - last_activity < ACTIVE_WITHOUT_CAMPAIGN_S
    return REFRESH_S if live else 0


def default_task(request: Request, campaign: RunView | None, asked: str | None) -> str | None:
    tasks = sorted(request.app.state.lab.tasks)
    if asked in tasks:
        return asked
    if campaign is not None and campaign.task:
        for name in (campaign.task, Path(campaign.task).name):  # --task may have been a directory
            if name in tasks:
                return name
    return tasks[0] if tasks else None


def page(request: Request, template: str, nav: str, build: Callable[[dict[str, Any]], dict[str, Any] | Response],
         *, status_code: int = 200) -> Response:
    """Check access, gather the shared header context, let `build` add the page's, render."""
    denied = guard.check(request)
    if denied is not None:
        return denied
    lab = request.app.state.lab
    campaign = campaign_of(request)
    with lab.session() as session:
        totals = counts(session)
        last = session.execute(select(func.max(Evaluation.created_at))).scalar()
        last_finding = session.execute(select(func.max(Finding.created_at))).scalar()
    last_activity = max([t for t in (last, last_finding) if t is not None], default=None)
    context: dict[str, Any] = {"request": request, "nav": nav, "campaign": campaign, "counts": totals,
                               "tasks": sorted(lab.tasks), "refresh": _refresh(request, campaign, last_activity),
                               "last_activity": last_activity, "names": lab.researcher_names()}
    built = build(context)
    if isinstance(built, Response):
        return built
    context.update(built)
    if context.get("missing"):
        template = "missing.html"
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=context.get("status_code", status_code), headers=SECURITY_HEADERS)


def not_found(what: str) -> dict[str, Any]:
    return {"status_code": 404, "missing": what}
