"""The report's PNG plots, drawn with matplotlib's Agg backend (no display, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from autow2s.lab.web.charts import PALETTE, TASK_PALETTE, best_so_far
from autow2s.lab.web.queries import Point
from autow2s.report.data import MethodRow

DPI = 110


def pgr_over_time(path: Path, points: Sequence[Point], verified: Sequence[Point], names: dict[int, str],
                  vanilla_pgr: float | None) -> Path:
    """Every evaluation's dev PGR, each researcher's best so far, verified holdout, and the reference lines."""
    fig, ax = plt.subplots(figsize=(9, 4.4))
    times = [p.at for p in points] + [p.at for p in verified]
    t0 = min(times) if times else 0.0
    by_researcher: dict[int, list[Point]] = {}
    for point in points:
        by_researcher.setdefault(point.researcher_id, []).append(point)
    ids = sorted(set(by_researcher) | {p.researcher_id for p in verified})
    color = {rid: PALETTE[i % len(PALETTE)] for i, rid in enumerate(ids)}
    end = (max(times) - t0) / 60.0 if times else 1.0
    for rid, mine in sorted(by_researcher.items()):
        xs = [(p.at - t0) / 60.0 for p in mine]
        ax.scatter(xs, [p.pgr for p in mine], s=9, alpha=0.45, color=color[rid], linewidths=0)
        steps = best_so_far(mine)
        step_x = [(at - t0) / 60.0 for at, _ in steps] + [end]
        step_y = [value for _, value in steps] + [steps[-1][1]]
        ax.step(step_x, step_y, where="post", color=color[rid], linewidth=1.8, label=names.get(rid, "?"))
    if verified:
        ax.scatter([(p.at - t0) / 60.0 for p in verified], [p.pgr for p in verified], marker="D", s=34,
                   facecolors="white", edgecolors=[color[p.researcher_id] for p in verified], linewidths=1.5,
                   label="verified (holdout)", zorder=3)
    ax.axhline(0.0, color="#888", linestyle="--", linewidth=1, label="weak model (PGR 0)")
    ax.axhline(1.0, color="#1f7a3a", linestyle="--", linewidth=1, label="ceiling (PGR 1)")
    if vanilla_pgr is not None:
        ax.axhline(vanilla_pgr, color="#b3261e", linestyle=":", linewidth=1.4, label=f"vanilla, verified (dev {vanilla_pgr:.2f})")
    values = [p.pgr for p in points] + [p.pgr for p in verified]
    ax.set_ylim(max(-1.0, min(values + [-0.2])) - 0.05, min(2.0, max(values + [1.2])) + 0.05)
    ax.set_xlabel("minutes since the first evaluation")
    ax.set_ylabel("PGR (dev; diamonds: holdout)")
    ax.grid(alpha=0.25)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def methods_plot(path: Path, methods: Sequence[MethodRow], vanilla_pgr: float | None) -> Path:
    """Verified holdout PGR per method with its 95% CI, best at the top."""
    shown = [m for m in methods if m.holdout_pgr is not None][:25]
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.32 * max(1, len(shown))))
    for index, method in enumerate(reversed(shown)):
        pgr = method.holdout_pgr
        assert pgr is not None  # `shown` holds only these
        low, high = method.holdout_ci or (pgr, pgr)
        color = "#b3261e" if method.baseline else "#1f77b4"
        ax.errorbar(pgr, index, xerr=[[pgr - low], [high - pgr]],
                    fmt="o", color=color, capsize=3, markersize=5)
    ax.set_yticks(range(len(shown)), [m.method[:40] for m in reversed(shown)], fontsize=8)
    ax.axvline(0.0, color="#888", linestyle="--", linewidth=1)
    ax.axvline(1.0, color="#1f7a3a", linestyle="--", linewidth=1)
    if vanilla_pgr is not None:
        ax.axvline(vanilla_pgr, color="#b3261e", linestyle=":", linewidth=1.4)
    ax.set_xlabel("holdout PGR (verified, 95% bootstrap CI)")
    ax.grid(axis="x", alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def transfer_plot(path: Path, table: dict[str, Any]) -> Path:
    """Research PGR (x) against transfer PGR (y): one marker per (snapshot, transfer task) with its CI, a diamond
    for the snapshot's mean over the transfer tasks, vanilla in red with dashed reference lines at its research
    and mean transfer PGR, and the diagonal transfer = research. `table` is lab/transfer.py's transfer_table."""
    tasks = list(table["transfer_tasks"])
    rows = [r for r in table["rows"] if r.get("research_pgr") is not None]
    vanilla = table.get("vanilla")
    shapes = "osv^<>Ph"
    fig, ax = plt.subplots(figsize=(8.6, 5.4))
    for index, task in enumerate(tasks):
        xs, ys, lows, highs = [], [], [], []
        for row in rows:
            run = row["transfer"].get(task)
            if not run or run["status"] != "done" or run["pgr"] is None:
                continue
            low, high = run["ci"] or (run["pgr"], run["pgr"])
            xs.append(row["research_pgr"])
            ys.append(run["pgr"])
            lows.append(run["pgr"] - low)
            highs.append(high - run["pgr"])
        if xs:
            ax.errorbar(xs, ys, yerr=[lows, highs], fmt=shapes[index % len(shapes)],
                        color=TASK_PALETTE[index % len(TASK_PALETTE)],
                        markersize=5, capsize=2, elinewidth=0.8, alpha=0.75, label=f"transfer task {task}")
    means = [r for r in rows if r.get("transfer_pgr") is not None]
    winner = next((r for r in rows if not r["is_vanilla"]), None)
    for row in means:
        color = "#b3261e" if row["is_vanilla"] else "#18202b"
        ci, t_ci = row.get("research_ci"), row.get("transfer_ci")
        xerr = [[row["research_pgr"] - ci[0]], [ci[1] - row["research_pgr"]]] if ci else None
        yerr = [[row["transfer_pgr"] - t_ci[0]], [t_ci[1] - row["transfer_pgr"]]] if t_ci else None
        ax.errorbar([row["research_pgr"]], [row["transfer_pgr"]], xerr=xerr, yerr=yerr, fmt="D", markersize=8,
                    markerfacecolor="#fbe9e7" if row["is_vanilla"] else ("#ffe9a8" if row is winner else "white"),
                    markeredgecolor=color, markeredgewidth=1.6, color=color, elinewidth=1.0, capsize=3, zorder=4)
        if row["is_vanilla"] or row is winner:
            name = "vanilla" if row["is_vanilla"] else row["method"][:32]
            ax.annotate(name, (row["research_pgr"], row["transfer_pgr"]),
                        xytext=(8, 6), textcoords="offset points", fontsize=8, color=color, fontweight="bold")
    ax.plot([], [], "D", markerfacecolor="white", markeredgecolor="#18202b", label="mean over the transfer tasks")
    if vanilla is not None and vanilla.get("research_pgr") is not None:
        ax.axvline(vanilla["research_pgr"], color="#b3261e", linestyle="--", linewidth=1.2,
                   label=f"vanilla research PGR {vanilla['research_pgr']:.2f}")
    if vanilla is not None and vanilla.get("transfer_pgr") is not None:
        ax.axhline(vanilla["transfer_pgr"], color="#b3261e", linestyle="--", linewidth=1.2, alpha=0.7,
                   label=f"vanilla mean transfer PGR {vanilla['transfer_pgr']:.2f}")
    lo, hi = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([lo, hi], [lo, hi], color="#999", linestyle=":", linewidth=1, label="transfer = research")
    ax.set_xlim(max(-1.0, lo), min(2.0, hi))
    ax.set_ylim(max(-1.0, lo), min(2.0, hi))
    ax.set_xlabel("research PGR (verified holdout, mean over " + ", ".join(table["research_tasks"])[:60] + ")")
    ax.set_ylabel("transfer PGR (held-out tasks, run unchanged)")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
