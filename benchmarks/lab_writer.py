#!/usr/bin/env python3
"""The serialised part of scoring: CPU per evaluation of the writer's decision, as the lab's history grows.

Every accepted evaluation is decided in one write transaction under the task's lock (lab/scoring.py
_decide on the lab's single writer thread), so that decision's cost bounds a lab's throughput
whatever the HTTP stack does. This runs the real decision in-process on a real SQLite lab (a
2,000-item task, 32 researchers) after filling the task's history with N earlier evaluations and
their charged audit rows, and measures the writer thread's own CPU time per decision
(time.thread_time: waiting for the disk or for other processes is not counted, so the figure holds
on a loaded machine), and the CPU the request spends before the writer (the pre-lock history pass,
where the code has one).

With --baseline REV the same runs use git revision REV's code (git archive, through PYTHONPATH),
alternating with this tree's, each in a fresh process.

    .venv/bin/python benchmarks/lab_writer.py [--rows 1000,10000,30000] [--repeats 3] [--baseline REV]
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
N_TEST = 2000
RESEARCHERS = 32
DECISIONS = 400


def child(data: Path, state: Path, rows: int) -> dict[str, float]:
    """One lab, `rows` earlier evaluations, DECISIONS measured decisions: medians in ms."""
    import numpy as np
    from sqlalchemy import insert, inspect, text

    from autow2s.lab.core import Lab
    from autow2s.lab.models import AuditEntry, BudgetOverride, Evaluation, Researcher
    from autow2s.lab.scoring import _decide, _Submission
    from autow2s.lab.settings import LabSettings

    lab = Lab(LabSettings(data_dir=data, admin_token="x" * 32, state_dir=state, dependence_check=False,
                          sqlite_synchronous="NORMAL"))
    lab.start()
    task = lab.tasks["bench"]
    rng = np.random.default_rng(rows)
    with lab.engine.begin() as conn:
        for rid in range(1, RESEARCHERS + 1):
            conn.execute(insert(Researcher), {"id": rid, "name": f"r{rid}", "token_hash": f"{rid:064d}",
                                              "created_at": 0.0})
            conn.execute(insert(BudgetOverride), {"researcher_id": rid, "task": "*", "kind": "evaluate",
                                                  "total": 10**9, "rate_per_minute": 10**6, "updated_at": 0.0})
        now = time.time() - 3600  # an hour's history: outside every rate window, as most of a lab's is
        earlier = [{"researcher_id": i % RESEARCHERS + 1, "task": "bench", "snapshot_id": None, "endpoint": "v1",
                    "created_at": now, "n_dev": task.n_dev, "dev_correct": 0, "holdout_correct": 0,
                    "n_holdout": len(task.holdout_idx), "reported_accuracy": 0.5, "reported_pgr": None, "flags": "",
                    "pred_bits": np.packbits(rng.random(N_TEST) >= 0.5).tobytes()} for i in range(rows)]
        if earlier:
            conn.execute(insert(Evaluation), earlier)
            conn.execute(insert(AuditEntry), [{"researcher_id": i % RESEARCHERS + 1, "actor": "researcher",
                                               "method": "POST", "path": "/api/v1/evaluate", "status": 200,
                                               "task": "bench", "outcome": "accepted", "charged": "evaluate",
                                               "evaluation_id": i + 1, "flags": "", "detail": "", "created_at": now}
                                              for i in range(rows)])
        if inspect(conn).has_table("budget_spend"):  # this tree: what migration 0003 would have counted
            conn.execute(text("INSERT INTO budget_spend (researcher_id, task, kind, used) SELECT researcher_id, task, "
                              "charged, count(*) FROM audit WHERE charged IS NOT NULL GROUP BY researcher_id, task, "
                              "charged"))
    fields = _Submission.__dataclass_fields__
    writer_ms: list[float] = []
    before_ms: list[float] = []

    def decide(index: int) -> None:
        rid = index % RESEARCHERS + 1
        bits = rng.random(N_TEST) >= 0.5
        dev, holdout = task.correct(bits)
        started = time.thread_time()
        extra = ()
        if "candidates" in fields:
            extra = (lab.histories.candidates(task.name, np.packbits(bits), lab.probes.widest(task.n_test)),)
        before_ms.append(1000 * (time.thread_time() - started))
        submission = _Submission(rid, task, bits, dev, holdout, None, "v1", time.time(), *extra)
        scope = {"state": {"researcher_id": rid, "actor": "researcher", "task": task.name}, "method": "POST",
                 "path": "/api/v1/evaluate"}

        def timed(conn: Any) -> Any:
            started = time.thread_time()
            result = _decide(lab, scope, submission, conn)
            writer_ms.append(1000 * (time.thread_time() - started))
            return result

        outcome, delta = lab.writer.run_sync(timed)
        lab.histories.merge(task.name, delta)
        assert not hasattr(outcome, "status_code"), outcome

    for index in range(50):  # warm up: the first read loads the history into the process's cache
        decide(index)
    writer_ms.clear()
    before_ms.clear()
    for index in range(50, 50 + DECISIONS):
        decide(index)
    lab.stop()
    return {"writer_ms": statistics.median(writer_ms), "writer_p99_ms": float(np.percentile(writer_ms, 99)),
            "before_ms": statistics.median(before_ms)}


def extract(revision: str, into: Path) -> tuple[Path, str]:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision], capture_output=True, text=True,
                            check=True).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src", commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000,30000", help="history sizes (earlier evaluations on the task)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV")
    parser.add_argument("--child", nargs=3, metavar=("DATA", "STATE", "ROWS"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))))
        return 0
    sys.path.insert(0, str(ROOT / "tests"))
    from lab_helpers import prepare_tasks

    sizes = [int(size) for size in args.rows.split(",")]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autow2s-writer-") as tmp:
        root = Path(tmp)
        variants: dict[str, Path | None] = {}
        if args.baseline:
            src, commit = extract(args.baseline, root / "baseline")
            variants[f"baseline {commit}"] = src
        variants["this tree"] = None
        data = prepare_tasks(root / "data", {"bench": N_TEST}, cache_dir=root / "cache")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOW2S_")} | {
            "AUTOW2S_CACHE_DIR": str(root / "cache")}
        runs: dict[str, dict[int, list[dict[str, float]]]] = {v: {size: [] for size in sizes} for v in variants}
        run = 0
        for size in sizes:
            for _ in range(args.repeats):
                for variant, src in variants.items():  # in turn: the machine's load drifts onto both alike
                    run += 1
                    child_env = env | ({"PYTHONPATH": str(src)} if src is not None else {})
                    done = subprocess.run([sys.executable, __file__, "--child", str(data), str(root / f"state-{run}"),
                                           str(size)], capture_output=True, text=True, env=child_env, timeout=1800)
                    if done.returncode != 0:
                        raise SystemExit(f"{variant}, {size} rows: {done.stderr[-3000:]}")
                    runs[variant][size].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"the writer's decision per accepted evaluation, {N_TEST}-item task, {RESEARCHERS} researchers, CPU time "
          f"(medians of {DECISIONS} decisions, median of {args.repeats} runs; {time.monotonic() - started:.0f} s)")
    print(f"{'code':>16} {'history':>8} {'writer ms':>10} {'p99 ms':>8} {'before lock ms':>15}"
          + (f" {'writer vs base':>15}" if args.baseline else ""))
    results: dict[str, dict[int, dict[str, float]]] = {}
    for variant in variants:
        results[variant] = {}
        for size in sizes:
            summary = {key: statistics.median(r[key] for r in runs[variant][size]) for key in runs[variant][size][0]}
            results[variant][size] = summary
            line = (f"{variant:>16} {size:>8} {summary['writer_ms']:>10.3f} {summary['writer_p99_ms']:>8.2f} "
                    f"{summary['before_ms']:>15.3f}")
            if args.baseline:
                base = results[next(iter(variants))][size]["writer_ms"]
                line += f" {summary['writer_ms'] / base:>14.2f}x"
            print(line)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
