"""Research efficiency and generality: what search:4 and random:1 find on the default suites, and how it transfers.

Each configuration runs as a real `autow2s run` campaign (default research suite, default held-out
transfer suite, sandboxed jobs, the lab on loopback) with the same wall budget on the same machine,
interleaved and repeated. For each run, from its leaderboard.json:

- research PGR: the best verified method's mean holdout PGR over the research tasks;
- transfer PGR: that method's mean PGR on the transfer tasks, run unchanged;
- k/n: on how many transfer tasks it beats vanilla;
- vanilla's research and transfer PGR, the reference.

Medians over runs are reported, with each run's figures. Writes a PNG: research against transfer PGR.

    .venv/bin/python benchmarks/research_efficiency.py --runs 3 --budget 180
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ("search:4", "random:1")


def summary(run_dir: Path) -> dict:
    board = json.loads((run_dir / "leaderboard.json").read_text())
    best = board["rows"][0] if board["rows"] else {}
    beats = best.get("transfer_beats_vanilla") or {}
    return {"research": best.get("research_pgr"), "transfer": best.get("transfer_pgr"),
            "k": beats.get("k"), "n": beats.get("of"), "method": best.get("method"),
            "vanilla_research": board["vanilla"].get("research_pgr"),
            "vanilla_transfer": board["vanilla"].get("transfer_pgr"),
            "per_task": {task: t.get("pgr") for task, t in best.get("transfer", {}).items()},
            "vanilla_per_task": {task: t.get("pgr") for task, t in board["vanilla"].get("transfer", {}).items()},
            "transfer_tasks": board.get("transfer_tasks", [])}


def _median(values: list) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.median(present):.3f}" if present else "—"


def _each(values: list) -> str:
    return ", ".join("—" if v is None else f"{v:.3f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=180.0)
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("research_efficiency.png"))
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {config: [] for config in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for config in CONFIGS:
                out = Path(tmp) / f"{config.replace(':', '-')}-{run}"
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "autow2s", "run", "--researchers", config, "--budget",
                                str(args.budget), "--seed", str(run), "--out", str(out)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                row = summary(out) | {"seconds": time.perf_counter() - started}
                results[config].append(row)
                print(f"run {run + 1} {config}: {json.dumps(row)}", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print("| researchers | research PGR | mean transfer PGR | transfer tasks beating vanilla | vanilla research | "
          "vanilla transfer |")
    print("|---|---|---|---|---|---|")
    for config, rows in results.items():
        k = sum(r["k"] or 0 for r in rows)
        n = sum(r["n"] or 0 for r in rows)
        print(f"| {config} | {_median([r['research'] for r in rows])} ({_each([r['research'] for r in rows])}) | "
              f"{_median([r['transfer'] for r in rows])} ({_each([r['transfer'] for r in rows])}) | "
              f"{k}/{n} ({', '.join(str(r['k']) + '/' + str(r['n']) for r in rows)}) | "
              f"{_median([r['vanilla_research'] for r in rows])} | {_median([r['vanilla_transfer'] for r in rows])} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for color, (config, rows) in zip(("tab:blue", "tab:orange"), results.items()):
        for i, r in enumerate(rows):
            for j, (task, pgr) in enumerate(r["per_task"].items()):
                if r["research"] is not None and pgr is not None:
                    ax.scatter(r["research"], pgr, color=color, marker="os^D"[j % 4], alpha=0.7,
                               label=f"{config}: {task}" if i == 0 else None)
    vanilla = [(r["vanilla_research"], r["vanilla_transfer"]) for rows in results.values() for r in rows
               if r["vanilla_research"] is not None and r["vanilla_transfer"] is not None]
    if vanilla:
        ax.axvline(statistics.median(v[0] for v in vanilla), color="grey", ls="--", label="vanilla research")
        ax.axhline(statistics.median(v[1] for v in vanilla), color="grey", ls=":", label="vanilla transfer (mean)")
    ax.set_xlabel("best method's research PGR (mean holdout over research tasks)")
    ax.set_ylabel("its PGR on each transfer task, unchanged")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
