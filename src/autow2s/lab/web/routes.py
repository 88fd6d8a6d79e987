"""The dashboard's pages: leaderboard, PGR over time, transfer, forum, researchers, snapshot lineage, flags.

Read-only: every route here only selects. Pages are rendered on the server (Jinja2 + inline SVG)
and one small vendored script refreshes them while a campaign runs; nothing is fetched from
outside the lab, so the dashboard works offline.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from autow2s.lab import forum
from autow2s.lab.errors import APIError
from autow2s.lab.leaderboard import BASELINE_RESEARCHER, is_baseline_researcher
from autow2s.lab.models import MAX_ID, VerifyRun
from autow2s.lab.web import queries
from autow2s.lab.web.charts import colors, pgr_chart, transfer_chart
from autow2s.lab.web.render import STATIC, default_task, job_kills, not_found, page, static_bytes

router = APIRouter(include_in_schema=False)  # HTML pages: not part of the lab's API schema
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]
SORTABLE = ("rank", "method", "researcher", "dev_pgr", "holdout_pgr", "dev_holdout_gap", "n_seeds", "finished_at")
FORUM_PAGE = 50
TAG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
FORUM_TYPES: tuple[forum.FindingType, ...] = ("result", "hypothesis", "insight", "error")
FORUM_SORTS: tuple[Literal["new", "top", "discussed", "relevant"], ...] = ("new", "top", "discussed", "relevant")
Choice = TypeVar("Choice", bound=str)


def _choice(value: str | None, choices: tuple[Choice, ...]) -> Choice | None:
    """value as one of choices (typed as that choice), or None when it is none of them."""
    return next((choice for choice in choices if choice == value), None)


@router.get("/")
@router.get("/dashboard")
def home() -> Response:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response("no such file", status_code=404, media_type="text/plain")
    return Response(static_bytes(name), media_type=STATIC[name], headers={"Cache-Control": "max-age=3600"})


def _sorted(rows: list[dict[str, Any]], key: str, order: str) -> list[dict[str, Any]]:
    if key == "rank" and order == "asc":
        return rows
    present = [r for r in rows if r.get(key) is not None]
    absent = [r for r in rows if r.get(key) is None]  # missing values stay last either way
    present.sort(key=lambda r: (r[key].lower() if isinstance(r[key], str) else r[key]), reverse=order == "desc")
    return present + absent


@router.get("/dashboard/")
def leaderboard(request: Request, task: Annotated[str | None, Query(max_length=200)] = None,
                sort: Annotated[str, Query(max_length=20)] = "rank",
                order: Annotated[str, Query(max_length=4)] = "asc") -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        chosen = default_task(request, ctx["campaign"], task)
        rows: list[dict[str, Any]] = []
        links: dict[int, int] = {}
        transfer: dict[str, dict[str, Any]] | None = None  # snapshot -> its transfer_table row
        if chosen is not None:
            lab = request.app.state.lab
            with lab.session() as session:
                rows = queries.leaderboard(session, chosen, ctx["names"])
                links = queries.findings_for_runs(session, rows) if rows else {}
                transfer_tasks = queries.transfer_task_names(session, lab.transfer_tasks)
                if transfer_tasks and rows:
                    table = queries.transfer_view(session, lab.tasks, transfer_tasks)
                    transfer = {row["snapshot_id"]: row for row in table["rows"]}
        key = sort if sort in SORTABLE else "rank"
        direction = "desc" if order == "desc" else "asc"
        return {"task": chosen, "rows": _sorted(rows, key, direction), "finding_of": links, "sort": key,
                "order": direction, "transfer": transfer,
                "baseline": BASELINE_RESEARCHER}

    return page(request, "leaderboard.html", "leaderboard", build)


@router.get("/dashboard/pgr")
def pgr_over_time(request: Request, task: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        chosen = default_task(request, ctx["campaign"], task)
        names = ctx["names"]
        points, verified, vanilla = [], [], None
        if chosen is not None:
            with request.app.state.lab.session() as session:
                points = queries.evaluation_points(session, chosen)
                verified = queries.verified_points(session, chosen)
                vanilla = queries.vanilla_run(session, chosen, names)
        palette = colors([p.researcher_id for p in points] + [p.researcher_id for p in verified])
        vanilla_pgr = vanilla["dev_pgr"] if vanilla else None
        summary: dict[int, dict[str, Any]] = {}
        for p in points:
            entry = summary.setdefault(p.researcher_id, {"n": 0, "best": None, "best_at": None})
            entry["n"] += 1
            if entry["best"] is None or p.pgr > entry["best"]:
                entry["best"], entry["best_at"] = p.pgr, p.at
        return {"task": chosen, "chart": pgr_chart(points, verified, names, palette, vanilla_pgr=vanilla_pgr),
                "palette": palette, "summary": summary, "n_points": len(points), "n_verified": len(verified),
                "vanilla": vanilla}

    return page(request, "pgr.html", "pgr", build)


@router.get("/dashboard/transfer")
def transfer(request: Request) -> Response:
    """Research PGR against transfer PGR for every verified snapshot, vanilla as the reference."""
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        lab = request.app.state.lab
        with lab.session() as session:
            transfer_tasks = queries.transfer_task_names(session, lab.transfer_tasks)
            table = queries.transfer_view(session, lab.tasks, transfer_tasks) if transfer_tasks else None
        if table is None:
            return {"table": None, "chart": None, "n_runs": 0}
        n_runs = sum(len(row["transfer"]) for row in table["rows"])
        return {"table": table, "n_runs": n_runs,
                "chart": transfer_chart(table["rows"], table["transfer_tasks"], table["vanilla"])}

    return page(request, "transfer.html", "transfer", build)


@router.get("/dashboard/forum")
def forum_list(request: Request, q: Annotated[str | None, Query(max_length=500)] = None,
               type: Annotated[str | None, Query(max_length=16)] = None,
               author: Annotated[str | None, Query(max_length=64)] = None,
               tag: Annotated[str | None, Query(max_length=40)] = None,
               sort: Annotated[str | None, Query(max_length=20)] = None,
               offset: Annotated[int, Query(ge=0, le=10**6)] = 0) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        # Form fields arrive empty when unused: anything unknown means "no filter", never an error page.
        chosen_type = _choice(type, FORUM_TYPES)
        chosen_sort = _choice(sort, FORUM_SORTS)
        chosen_tag = tag if tag and TAG.fullmatch(tag) else None
        findings = forum.list_findings(request, sort=chosen_sort, q=q or None, type=chosen_type, tag=chosen_tag,
                                       task=None, author=author or None, limit=FORUM_PAGE, offset=offset,
                                       principal=None)
        return {"findings": findings, "q": q or "", "type": chosen_type or "", "author": author or "",
                "tag": chosen_tag or "", "sort": chosen_sort or "", "offset": offset, "page_size": FORUM_PAGE}

    return page(request, "forum.html", "forum", build)


@router.get("/dashboard/forum/{finding_id}")
def forum_thread(request: Request, finding_id: Id) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        try:
            finding = forum.get_finding(request, finding_id, principal=None)
        except APIError:
            return not_found(f"finding {finding_id}")
        snapshot_id = None
        figure = finding.get("figure") or {}
        with request.app.state.lab.session() as session:
            if figure.get("evaluation_id"):
                found = queries.evaluation(session, figure["evaluation_id"], ctx["names"])
                snapshot_id = found["snapshot_id"] if found else None
            elif figure.get("verify_id"):
                snapshot_id = session.execute(select(VerifyRun.snapshot_id)
                                              .where(VerifyRun.id == figure["verify_id"])).scalar()
        return {"finding": finding, "snapshot_id": snapshot_id}

    return page(request, "thread.html", "forum", build)


@router.get("/dashboard/researchers")
def researchers(request: Request) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        names: dict[int, str] = ctx["names"]
        campaign = ctx["campaign"]
        with request.app.state.lab.session() as session:
            activity = queries.researcher_activity(session)
        ids = {name: rid for rid, name in names.items()}
        ordered = list(campaign.researchers) if campaign else []
        ordered += sorted(name for name in ids if name not in ordered)
        rows = []
        for name in ordered:
            state = campaign.researchers.get(name, {}) if campaign else {}
            spent = campaign.spent.get(name, 0.0) if campaign else None
            cap = campaign.researcher_cap if campaign else None
            rows.append({"name": name, "campaign": state, "db": activity.get(ids.get(name, -1), {}),
                         "spent": spent, "cap": cap,
                         "spent_fraction": None if not cap or spent is None else min(1.0, spent / cap),
                         "baseline": is_baseline_researcher(name)})
        return {"rows": rows}

    return page(request, "researchers.html", "researchers", build)


@router.get("/dashboard/snapshots")
def snapshots(request: Request) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        with request.app.state.lab.session() as session:
            nodes = queries.snapshots(session, ctx["names"])
        palette = colors([rid for rid in ctx["names"]])
        by_name = {name: palette.get(rid) for rid, name in ctx["names"].items()}
        return {"rows": queries.lineage_rows(nodes), "color_of": by_name}

    return page(request, "snapshots.html", "snapshots", build)


@router.get("/dashboard/snapshots/{snapshot_id}")
def snapshot(request: Request, snapshot_id: Annotated[str, PathParam(max_length=40)]) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        with request.app.state.lab.session() as session:
            found = queries.snapshot_detail(session, snapshot_id, ctx["names"])
        return {"snapshot": found} if found else not_found(f"snapshot {snapshot_id}")

    return page(request, "snapshot.html", "snapshots", build)


@router.get("/dashboard/verify/{verify_id}")
def verify_run(request: Request, verify_id: Id) -> Response:
    """A verified run is shown on its snapshot's page."""
    def build(ctx: dict[str, Any]) -> dict[str, Any] | Response:
        with request.app.state.lab.session() as session:
            snapshot_id = session.execute(select(VerifyRun.snapshot_id).where(VerifyRun.id == verify_id)).scalar()
        if snapshot_id is None:
            return not_found(f"verified run {verify_id}")
        return RedirectResponse(f"/dashboard/snapshots/{snapshot_id}#verify-{verify_id}", status_code=307)

    return page(request, "missing.html", "leaderboard", build)


@router.get("/dashboard/evaluations/{evaluation_id}")
def evaluation(request: Request, evaluation_id: Id) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        with request.app.state.lab.session() as session:
            found = queries.evaluation(session, evaluation_id, ctx["names"])
        return {"evaluation": found} if found else not_found(f"evaluation {evaluation_id}")

    return page(request, "evaluation.html", "pgr", build)


@router.get("/dashboard/flags")
def flags(request: Request) -> Response:
    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        names = ctx["names"]
        campaign = ctx["campaign"]
        with request.app.state.lab.session() as session:
            n_flagged, flagged = queries.flagged_evaluations(session, names)
            refusal_counts, refusals = queries.refusals(session, names)
        kills = job_kills.kills(campaign.root, list(campaign.researchers)) if campaign else None
        capped = [{"name": name, "error": state.get("error", "")} for name, state in
                  (campaign.researchers.items() if campaign else []) if state.get("state") == "capped"]
        return {"n_flagged": n_flagged, "flagged": flagged, "refusal_counts": refusal_counts, "refusals": refusals,
                "kills": kills, "capped": capped}

    return page(request, "flags.html", "flags", build)


__all__ = ["router"]
