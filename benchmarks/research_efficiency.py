"""Research efficiency: best verified holdout PGR against wall time, search campaign vs random search.

Each configuration runs as a real `autow2s run` campaign (sandboxed jobs, the lab on loopback) with the
same wall budget on the same machine; repeated, medians reported. Writes a PNG of the curves.

    .venv/bin/python benchmarks/research_efficiency.py --runs 3 --budget 120
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGS = ("search:4", "random:1")


def curve(run_dir: Path) -> tuple[list[tuple[float, float]], float | None]:
    """(seconds since start, best holdout PGR so far) at each verified run's request time; vanilla's PGR."""
    board = json.loads((run_dir / "leaderboard.json").read_text())
    start = (run_dir / "campaign.json").stat().st_mtime
    with sqlite3.connect(run_dir / "lab-state" / "lab.sqlite") as conn:
        rows = conn.execute(
            "SELECT v.created_at, v.holdout_pgr FROM verify_runs v JOIN researchers r ON r.id = v.researcher_id "
            "WHERE v.status = 'done' AND v.holdout_pgr IS NOT NULL AND r.name != 'baseline-vanilla' "
            "ORDER BY v.created_at").fetchall()
    best, points = float("-inf"), []
    for created, holdout in rows:
        best = max(best, holdout)
        points.append((created - start, best))
    return points, board["vanilla"]["holdout_pgr"]


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, best in points if best >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("research_efficiency.png"))
    args = parser.parse_args()
    results: dict[str, list[dict]] = {config: [] for config in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for config in CONFIGS:
                out = Path(tmp) / f"{config.replace(':', '-')}-{run}"
                subprocess.run([sys.executable, "-m", "autow2s", "run", "--researchers", config, "--budget",
                                str(args.budget), "--seed", str(run), "--out", str(out)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                points, vanilla = curve(out)
                final = points[-1][1] if points else None
                target = None if vanilla is None else vanilla + 0.3
                results[config].append({"points": points, "vanilla": vanilla, "final": final,
                                        "t_target": None if target is None else time_to(points, target)})
                print(f"run {run + 1} {config}: best holdout PGR {final}, vanilla {vanilla}", file=sys.stderr)
    print("| researchers | median best verified holdout PGR | median vanilla | runs reaching vanilla + 0.3 | "
          "median time to vanilla + 0.3 |")
    print("|---|---|---|---|---|")
    for config, rows in results.items():
        finals = [r["final"] for r in rows if r["final"] is not None]
        reached = [r["t_target"] for r in rows if r["t_target"] is not None]
        print(f"| {config} | {statistics.median(finals) if finals else float('nan'):.3f} | "
              f"{statistics.median(r['vanilla'] for r in rows):.3f} | {len(reached)}/{len(rows)} | "
              f"{(f'{statistics.median(reached):.0f} s') if reached else '—'} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for color, (config, rows) in zip(("tab:blue", "tab:orange", "tab:green"), results.items()):
        for i, r in enumerate(rows):
            if r["points"]:
                xs, ys = zip(*r["points"])
                ax.step(xs, ys, where="post", color=color, alpha=0.8, label=config if i == 0 else None)
    vanillas = [r["vanilla"] for rows in results.values() for r in rows if r["vanilla"] is not None]
    if vanillas:
        ax.axhline(statistics.median(vanillas), color="grey", ls="--", label="vanilla")
        ax.axhline(statistics.median(vanillas) + 0.3, color="grey", ls=":", label="vanilla + 0.3")
    ax.set_xlabel("seconds since campaign start")
    ax.set_ylabel("best verified holdout PGR")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
