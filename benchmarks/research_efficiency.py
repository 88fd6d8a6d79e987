"""Does research transfer? The default campaign with 30 CPU-minutes of research, repeated, judged paired.

Each repeat is a real `autow2s run` (the default research suite, a secret draw of held-out transfer
tasks, search:4, sandboxed jobs, the lab on loopback) with `--budget` seconds of research: 900 s is 30
CPU-minutes on this 2-core machine, and `--verify-top-k 1`: the final step verifies the one candidate it
chooses by the lower 95% bound of research dev PGR (campaign/selection.py), so the winner is picked without
looking at the holdout, and its holdout gain over vanilla is not inflated by a choice among several. From
each run's leaderboard.json, for that winner:

- its research PGR and its paired gain over vanilla (research PGR minus vanilla's, the holdout items
  resampled once for both, lab/compare.py), with the 95% CI;
- on each transfer task it ran on unchanged: its transfer PGR and its paired gain over vanilla with CI;
- on how many transfer tasks that gain is positive and significant (and negative and significant).

Medians over repeats are printed as the markdown table benchmarks/README.md quotes, each repeat's figures
beside them, and a plot (gain over vanilla on research against on transfer, with CIs).

    .venv/bin/python benchmarks/research_efficiency.py --repeats 3 --budget 900
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
from typing import Any

CPUS = 2


def winner(run_dir: Path) -> dict[str, Any]:
    board = json.loads((run_dir / "leaderboard.json").read_text())
    best = board["rows"][0] if board["rows"] else {}
    paired = best.get("vs_vanilla") or {}
    research = paired.get("research") or {}
    transfer = {}
    for task, figures in (best.get("transfer") or {}).items():
        gain = (paired.get("transfer") or {}).get(task) or {}
        vanilla = (board["vanilla"].get("transfer") or {}).get(task, {})
        transfer[task] = {"pgr": figures.get("pgr"), "vanilla_pgr": vanilla.get("pgr"),
                          "gain": gain.get("difference"), "gain_ci": gain.get("ci"), "verdict": gain.get("verdict")}
    return {"method": best.get("method"), "research_pgr": best.get("research_pgr"),
            "vanilla_research_pgr": board["vanilla"].get("research_pgr"),
            "research_gain": research.get("difference"), "research_gain_ci": research.get("ci"),
            "research_verdict": research.get("verdict"), "transfer": transfer,
            "better": sum(t["verdict"] == "better" for t in transfer.values()),
            "worse": sum(t["verdict"] == "worse" for t in transfer.values()), "compared": len(transfer),
            "research_tasks": board.get("tasks", []), "transfer_tasks": board.get("transfer_tasks", [])}


def _fmt(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def _median(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.median(present):+.3f}" if present else "—"


def report(rows: list[dict[str, Any]], budget: float) -> str:
    lines = [f"Per repeat ({budget:.0f} s of research = {budget * CPUS / 60:.0f} CPU-minutes on {CPUS} cores):", "",
             "| repeat | winner | research PGR | gain over vanilla (95% CI) | transfer tasks: PGR, gain (95% CI) | "
             "significant gains |", "|---|---|---|---|---|---|"]
    for index, row in enumerate(rows, start=1):
        moved = "; ".join(f"{task} {_fmt(t['pgr'])}, {_fmt(t['gain'], t['gain_ci'])}" for task, t in
                          row["transfer"].items()) or "—"
        lines.append(f"| {index} | `{(row['method'] or '—')[:40]}` | {_fmt(row['research_pgr'])} (vanilla "
                     f"{_fmt(row['vanilla_research_pgr'])}) | {_fmt(row['research_gain'], row['research_gain_ci'])} "
                     f"({row['research_verdict'] or '—'}) | {moved} | {row['better']} better, {row['worse']} worse "
                     f"of {row['compared']} |")
    lines += ["", f"Median over {len(rows)} repeats: research PGR {_median([r['research_pgr'] for r in rows])}, "
              f"gain over vanilla on research {_median([r['research_gain'] for r in rows])} (significant in "
              f"{sum(r['research_verdict'] == 'better' for r in rows)} of {len(rows)}); transfer tasks with a "
              f"significant gain: {sum(r['better'] for r in rows)} of {sum(r['compared'] for r in rows)}, with a "
              f"significant loss: {sum(r['worse'] for r in rows)}; median gain over vanilla on transfer "
              f"{_median([t['gain'] for r in rows for t in r['transfer'].values()])}."]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, row in enumerate(rows, start=1):
        if row["research_gain"] is None:
            continue
        for task, t in row["transfer"].items():
            if t["gain"] is None:
                continue
            low, high = t["gain_ci"] or (t["gain"], t["gain"])
            ax.errorbar(row["research_gain"], t["gain"], yerr=[[t["gain"] - low], [high - t["gain"]]], fmt="o",
                        capsize=3, alpha=0.8, label=f"repeat {index}: {task}")
    ax.axhline(0, color="grey", ls="--")
    ax.axvline(0, color="grey", ls="--")
    ax.set_xlabel("winner's research PGR minus vanilla's (paired)")
    ax.set_ylabel("its transfer PGR minus vanilla's, per task (paired, 95% CI)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=900.0, help="seconds of research (900 = 30 CPU-minutes)")
    parser.add_argument("--researchers", default="search:4")
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("research_efficiency.png"))
    parser.add_argument("--json", type=Path, default=None, help="also write every repeat's figures here")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories under this folder")
    parser.add_argument("--resume", action="store_true",
                        help="with --json: keep the repeats already in that file and run the rest (seed = repeat number)")
    args = parser.parse_args()
    if args.resume and not (args.json and args.json.is_file()):
        parser.error("--resume needs --json FILE from an earlier run")
    rows: list[dict[str, Any]] = json.loads(args.json.read_text()) if args.resume else []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for repeat in range(len(rows), args.repeats):
            out = base / f"repeat-{repeat}"
            started = time.perf_counter()
            with (base / f"repeat-{repeat}.log").open("w") as log:  # what `autow2s run` printed, kept beside it
                subprocess.run([sys.executable, "-m", "autow2s", "run", "--researchers", args.researchers, "--budget",
                                str(args.budget), "--seed", str(repeat), "--verify-top-k", "1", "--out", str(out)],
                               check=True, stdout=log, stderr=subprocess.STDOUT)
            row = winner(out) | {"minutes": (time.perf_counter() - started) / 60}
            rows.append(row)
            print(f"repeat {repeat + 1}: {json.dumps(row)}", file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print(report(rows, args.budget))
    plot(rows, args.plot)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
