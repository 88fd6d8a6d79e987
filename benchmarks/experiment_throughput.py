"""Wall time and peak RSS of a 5-seed vanilla run of the default task, cold and warm.

Each measurement runs in a fresh subprocess (so peak RSS is that run's own) and is repeated;
we report medians. A plain scikit-learn LogisticRegression fit on the same arrays is timed in
the same run as a reference point.

    .venv/bin/python benchmarks/experiment_throughput.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
mode, cache_dir = sys.argv[1], sys.argv[2]
import numpy as np
from sklearn.linear_model import LogisticRegression
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.experiment import ExperimentSettings, run_experiment
from autow2s.testbed.methods.registry import load_method
from autow2s.testbed.tasks.registry import load_task
started = time.perf_counter()  # imports excluded: the process column includes them
task = load_task("synth-linear")
if mode == "sklearn":
    x = task.split("train_unlabel").strong
    y = task.split("train_unlabel").weak[:, 0] > 0  # a stand-in for weak hard labels
    LogisticRegression(max_iter=1000).fit(x, y).predict_proba(task.split("test").strong)
    pgr = None
else:
    result = run_experiment(task, load_method("vanilla"), [42, 43, 44, 45, 46], cache=ArtifactCache(cache_dir))
    pgr = result.pgr
seconds = time.perf_counter() - started
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"mode": mode, "seconds": seconds, "peak_rss_mib": peak_mib, "pgr": pgr}))
"""


def measure(mode: str, cache_dir: str) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, mode, cache_dir], capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["process_seconds"] = time.perf_counter() - started
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the raw rows here")
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"cold": [], "warm": [], "sklearn": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as cache_dir:
            rows["cold"].append(measure("cold", cache_dir))  # empty cache: weak + ceilings + transfer
            rows["warm"].append(measure("warm", cache_dir))  # same cache: transfer only
        rows["sklearn"].append(measure("sklearn", ""))
        print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]['seconds']:.2f}s" for k, v in rows.items()),
              file=sys.stderr)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "process_seconds", "peak_rss_mib")}
           for k, v in rows.items()}
    print("| run | median wall (in process) | median wall (with interpreter start) | median peak RSS |")
    print("|---|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v['seconds']:.2f} s | {v['process_seconds']:.2f} s | {v['peak_rss_mib']:.0f} MiB |")
    print(f"\nwarm/cold speed-up: {med['cold']['seconds'] / med['warm']['seconds']:.1f}x (in process); "
          f"warm vs sklearn LogisticRegression: {med['warm']['seconds'] / med['sklearn']['seconds']:.1f}x")
    print(f"cpu count: {os.cpu_count()}, runs: {args.runs}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "medians": med}, indent=1))


if __name__ == "__main__":
    main()
