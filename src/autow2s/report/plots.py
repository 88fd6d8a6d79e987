"""The report's PNG plots, drawn with matplotlib's Agg backend (no display, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from autow2s.lab.web.charts import PALETTE, best_so_far  # noqa: E402
from autow2s.lab.web.queries import Point  # noqa: E402
from autow2s.report.data import MethodRow  # noqa: E402

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
        low, high = method.holdout_ci or (method.holdout_pgr, method.holdout_pgr)
        color = "#b3261e" if method.baseline else "#1f77b4"
        ax.errorbar(method.holdout_pgr, index, xerr=[[method.holdout_pgr - low], [high - method.holdout_pgr]],
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


def transfer_plot(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """PGR on held-out tasks, one group of points per task."""
    shown = [r for r in rows if r.get("pgr") is not None][:40]
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.32 * max(1, len(shown))))
    tasks = sorted({r["task"] for r in shown})
    for index, row in enumerate(reversed(shown)):
        low, high = row.get("ci") or (row["pgr"], row["pgr"])
        ax.errorbar(row["pgr"], index, xerr=[[row["pgr"] - low], [high - row["pgr"]]], fmt="o", capsize=3,
                    color=PALETTE[tasks.index(row["task"]) % len(PALETTE)], markersize=5)
    ax.set_yticks(range(len(shown)), [f"{r['task']} · {r['method'][:30]}" for r in reversed(shown)], fontsize=8)
    ax.axvline(0.0, color="#888", linestyle="--", linewidth=1)
    ax.axvline(1.0, color="#1f7a3a", linestyle="--", linewidth=1)
    ax.set_xlabel("PGR on the held-out task")
    ax.grid(axis="x", alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
