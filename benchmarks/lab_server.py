#!/usr/bin/env python3
"""Lab server throughput and latency on loopback: 1, 8 and 32 concurrent clients, 2,000-item test set.

Starts a real `autow2s serve` (SQLite, WAL, synchronous=FULL) on a prepared synthetic task, gives
each client its own researcher with an admin-raised budget, and sends distinct probability
vectors (four decimals, as methods send them) over keep-alive connections. Each level is run
--repeats times; the medians are reported. The goal on a 2-core machine: >= 500 evaluations/s
and p99 <= 50 ms at 32 clients.

    .venv/bin/python benchmarks/lab_server.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the reusable server fixture lives with the tests

from autow2s.lab.loadgen import evaluation_bodies, run_load  # noqa: E402
from lab_helpers import prepare_tasks, start_lab  # noqa: E402

N_TEST = 2000
LEVELS = {1: 400, 8: 1200, 32: 1600}  # clients -> evaluations per run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--server-args", default="", help="extra `autow2s serve` options, e.g. '--http h11 --loop asyncio'")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autow2s-bench-") as tmp:
        root = Path(tmp)
        data = prepare_tasks(root / "data", {"bench": N_TEST}, cache_dir=root / "cache")
        with start_lab(data, root / "state", cache_dir=root / "cache", extra_args=args.server_args.split()) as server:
            tokens = [server.create_researcher(f"bench{i}", budget_total=10**9, budget_rate_per_minute=10**6)
                      for i in range(max(LEVELS))]
            # Warm up: imports, the first transaction, numpy's first calls.
            run_load(server.url, tokens[:4], [evaluation_bodies("bench", N_TEST, 25, 10_000 + i) for i in range(4)])
            results = {}
            seed = 0
            for clients, total in LEVELS.items():
                runs = []
                for _ in range(args.repeats):
                    bodies = []
                    for _client in range(clients):
                        seed += 1
                        bodies.append(evaluation_bodies("bench", N_TEST, total // clients, seed))
                    result = run_load(server.url, tokens[:clients], bodies, max_seconds=300)
                    assert result.statuses == {200: total}, result.statuses
                    runs.append({"throughput": result.throughput, "p50_ms": result.percentile_ms(50),
                                 "p99_ms": result.percentile_ms(99)})
                results[clients] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                results[clients]["runs"] = runs
    print(f"lab server, {N_TEST}-item test set, loopback, medians of {args.repeats} runs {args.server_args}".rstrip())
    print(f"{'clients':>8} {'evals/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for clients, r in results.items():
        print(f"{clients:>8} {r['throughput']:>9.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}")
    goal = results[32]["throughput"] >= 500 and results[32]["p99_ms"] <= 50
    print(f"goal (>= 500 evals/s and p99 <= 50 ms at 32 clients): {'met' if goal else 'NOT met'}")
    if args.json is not None:
        args.json.write_text(json.dumps({"n_test": N_TEST, "repeats": args.repeats, "when": time.time(),
                                         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
