"""Write RUN/report/index.html and its PNGs: the campaign's results for people who were not watching.

The page is static (relative image paths, inline CSS, no script), so it can be mailed, archived
or opened from a file browser years later.
"""

from __future__ import annotations

import time
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from autow2s.board_rules import BASELINE_RESEARCHER, supervised
from autow2s.lab.web.render import fmt_pgr, fmt_time
from autow2s.report import plots
from autow2s.report.data import ReportData, collect


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pgr=fmt_pgr, ts=fmt_time, short=lambda s: (s or "")[:12])
    return env


def _researcher_rows(data: ReportData) -> list[dict[str, object]]:
    ids = {name: rid for rid, name in data.names.items()}
    campaign = data.campaign
    ordered = list(campaign.researchers) if campaign else []
    ordered += sorted(n for n in ids if n not in ordered and n != BASELINE_RESEARCHER)
    rows = []
    for name in ordered:
        state = campaign.researchers.get(name, {}) if campaign else {}
        rows.append({"name": name, "kind": state.get("kind"), "direction": state.get("direction"),
                     "state": state.get("state"), "experiments": state.get("experiments"),
                     "spent": campaign.spent.get(name, 0.0) if campaign else None,
                     "db": data.activity.get(ids.get(name, -1), {})})
    return rows


def build_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Collect, plot, render; returns the path of index.html."""
    data = collect(run_dir)
    out = out_dir or run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}
    main = data.main
    vanilla_dev = main.vanilla["dev_pgr"] if main and main.vanilla else None
    vanilla_holdout = main.vanilla["holdout_pgr"] if main and main.vanilla else None
    if main is not None and (main.points or main.verified):
        plots.pgr_over_time(out / "pgr_over_time.png", main.points, main.verified, data.names, vanilla_dev)
        images["pgr"] = "pgr_over_time.png"
    if main is not None and any(m.holdout_pgr is not None for m in main.methods):
        plots.methods_plot(out / "methods.png", main.methods, vanilla_holdout)
        images["methods"] = "methods.png"
    if data.transfer and any(row.get("research_pgr") is not None and row.get("transfer")
                             for row in data.transfer["rows"]):
        plots.transfer_plot(out / "transfer.png", data.transfer)
        images["transfer"] = "transfer.png"
    # The best method is a weak-to-strong one: supervisor-free runs are shown in their own section.
    best = next((r for r in (main.leaderboard if main else []) if r["researcher"] != BASELINE_RESEARCHER
                 and r["holdout_pgr"] is not None and supervised(r)), None)
    html = _environment().get_template("report.html").render(
        data=data, main=main, images=images, best=best, vanilla_holdout=vanilla_holdout,
        researchers=_researcher_rows(data), generated=time.time(), baseline=BASELINE_RESEARCHER)
    index = out / "index.html"
    index.write_text(html)
    return index
