#!/usr/bin/env python3
"""Lab server throughput and latency on loopback: 1, 8 and 32 concurrent clients, 2,000-item test set.

Starts a real `autow2s serve` on a prepared synthetic task in each configuration, all in one run:
SQLite (WAL, synchronous=FULL) with 1 worker, PostgreSQL (a loopback cluster with fsync and
synchronous commit on) with 1 worker, and PostgreSQL with 2 workers (`serve --workers 2`). Each
client has its own researcher with an admin-raised budget and sends distinct probability vectors
(four decimals, as methods send them) over keep-alive connections. Each level is run --repeats
times; medians are reported, with each configuration's throughput as a ratio to the first's.

    .venv/bin/python benchmarks/lab_server.py [--repeats 3] [--configs sqlite-1,postgresql-1,postgresql-2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the reusable server fixture lives with the tests

from loadgen import evaluation_bodies, run_load  # noqa: E402

from lab_helpers import prepare_tasks, start_lab  # noqa: E402
from pg_helpers import create_database  # noqa: E402

N_TEST = 2000
LEVELS = {1: 400, 8: 1200, 32: 1600}  # clients -> evaluations per run
CONFIGS = {"sqlite-1": ("sqlite", 1), "postgresql-1": ("postgresql", 1), "postgresql-2": ("postgresql", 2)}
PG_SCRIPT = ROOT / "scripts" / "test_postgres.sh"


@contextmanager
def durable_postgres() -> Iterator[str]:
    """A loopback PostgreSQL with its default durability (fsync and synchronous commit on), like SQLite FULL."""
    cluster = Path(tempfile.mkdtemp(prefix="autow2s-bench-pg-"))
    env = dict(os.environ, AUTOW2S_PG_DURABLE="1")
    started = subprocess.run([str(PG_SCRIPT), "start", str(cluster)], capture_output=True, text=True, env=env,
                             timeout=120)
    if started.returncode != 0:
        raise SystemExit(f"could not start PostgreSQL: {started.stderr[-2000:]}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(PG_SCRIPT), "stop", str(cluster)], capture_output=True, timeout=120)
        shutil.rmtree(cluster, ignore_errors=True)


def measure(server, repeats: int, seed: int) -> dict[int, dict[str, Any]]:
    tokens = [server.create_researcher(f"bench{i}", budget_total=10**9, budget_rate_per_minute=10**6)
              for i in range(max(LEVELS))]
    # Warm up: imports, the first transaction, numpy's first calls (in every worker).
    run_load(server.url, tokens[:8], [evaluation_bodies("bench", N_TEST, 25, 10_000 + i) for i in range(8)])
    results: dict[int, dict[str, Any]] = {}
    for clients, total in LEVELS.items():
        runs = []
        for _ in range(repeats):
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
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"which of {', '.join(CONFIGS)} (database-workers) to measure, in this run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--server-args", default="", help="extra `autow2s serve` options, e.g. '--http h11 --loop asyncio'")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    results: dict[str, dict[int, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="autow2s-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        data = prepare_tasks(root / "data", {"bench": N_TEST}, cache_dir=root / "cache")
        server_url = None
        if any(CONFIGS[name][0] == "postgresql" for name in chosen):
            server_url = stack.enter_context(durable_postgres())
        for index, name in enumerate(chosen):
            backend, workers = CONFIGS[name]
            db_url = create_database(server_url) if backend == "postgresql" and server_url else None
            extra = ["--workers", str(workers), *args.server_args.split()]
            with start_lab(data, root / f"state-{name}", cache_dir=root / "cache", extra_args=extra,
                           db_url=db_url) as server:
                results[name] = measure(server, args.repeats, seed=100_000 * (index + 1))
    print(f"lab server, {N_TEST}-item test set, loopback, durable commits, medians of {args.repeats} runs "
          f"{args.server_args}".rstrip())
    print(f"{'config':>14} {'clients':>8} {'evals/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs first':>9}")
    first = results[chosen[0]]
    for name in chosen:
        for clients, r in results[name].items():
            ratio = r["throughput"] / first[clients]["throughput"]
            print(f"{name:>14} {clients:>8} {r['throughput']:>9.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                  f"{ratio:>8.2f}x")
    if args.json is not None:
        args.json.write_text(json.dumps({"n_test": N_TEST, "repeats": args.repeats, "when": time.time(),
                                         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
