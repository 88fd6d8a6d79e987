#!/usr/bin/env python3
"""Lab server throughput and latency on loopback: 1, 8 and 32 concurrent clients, 2,000-item test set.

Starts real `autow2s serve` processes on a prepared synthetic task in each configuration, all in one
run: SQLite (WAL, synchronous=FULL) with 1 worker, PostgreSQL (a loopback cluster with fsync and
synchronous commit on) with 1 worker, and PostgreSQL with 2 workers (`serve --workers 2`). Each
client has its own researcher with an admin-raised budget and sends distinct probability vectors
(four decimals, as methods send them) over keep-alive connections. Each level is run --repeats
times; medians are reported, with each configuration's throughput as a ratio to the first's, and
the server's CPU time per evaluation (all its processes, from /proc): on a machine others load,
throughput and latency follow the load, while CPU per evaluation stays what the code costs.

With --baseline REV, the code of git revision REV (extracted with `git archive`, run through
PYTHONPATH) is served beside this tree in every configuration, on a database of its own, and the two
take turns run by run with the same submissions: so the ratio "this tree / baseline" is paired and
the machine's load drifts onto both alike.

    .venv/bin/python benchmarks/lab_server.py [--repeats 5] [--baseline HEAD~3]
                                              [--configs sqlite-1,postgresql-1,postgresql-2]
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

from lab_helpers import LabServer, prepare_tasks, start_lab  # noqa: E402
from pg_helpers import create_database  # noqa: E402

N_TEST = 2000
LEVELS = {1: 400, 8: 1200, 32: 1600}  # clients -> evaluations per run
CONFIGS = {"sqlite-1": ("sqlite", 1), "postgresql-1": ("postgresql", 1), "postgresql-2": ("postgresql", 2)}
PG_SCRIPT = ROOT / "scripts" / "test_postgres.sh"
THIS_TREE = "this tree"


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


def extract_revision(revision: str, into: Path) -> tuple[Path, str]:
    """REV's src/ (git archive), and its commit; the servers of the baseline import autow2s from there."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision], capture_output=True,
                            text=True, check=True).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src", commit


@contextmanager
def serving(src: Path | None, **kwargs: Any) -> Iterator[LabServer]:
    """start_lab with autow2s imported from `src` (None: this tree). PYTHONPATH is set only while the server
    starts (start_lab copies the environment then), and the server's own environment is checked."""
    saved = os.environ.get("PYTHONPATH")
    with ExitStack() as stack:
        try:
            if src is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = str(src)
            server = stack.enter_context(start_lab(**kwargs))
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        assert server.process is not None
        environ = dict(entry.split("=", 1) for entry in
                       Path(f"/proc/{server.process.pid}/environ").read_text().split("\0") if "=" in entry)
        assert environ.get("PYTHONPATH") == (None if src is None else str(src)), environ.get("PYTHONPATH")
        yield server


def server_cpu_s(server: LabServer) -> float:
    """User + system CPU seconds of the server process and every live process under it (uvicorn's workers)."""
    assert server.process is not None
    ticks, pending = 0, [server.process.pid]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(servers: dict[str, LabServer], repeats: int, seed: int) -> dict[str, dict[int, dict[str, Any]]]:
    """Every level `repeats` times; the servers take turns, each run with the same submissions on each server."""
    tokens = {}
    for variant, server in servers.items():
        tokens[variant] = [server.create_researcher(f"bench{i}", budget_total=10**9, budget_rate_per_minute=10**6)
                           for i in range(max(LEVELS))]
        # Warm up: imports, the first transaction, numpy's first calls (in every worker).
        run_load(server.url, tokens[variant][:8], [evaluation_bodies("bench", N_TEST, 25, 10_000 + i) for i in range(8)])
    runs: dict[str, dict[int, list[dict[str, float]]]] = {variant: {clients: [] for clients in LEVELS}
                                                          for variant in servers}
    for clients, total in LEVELS.items():
        for _ in range(repeats):
            bodies = []
            for _client in range(clients):
                seed += 1
                bodies.append(evaluation_bodies("bench", N_TEST, total // clients, seed))
            for variant, server in servers.items():
                cpu = server_cpu_s(server)
                result = run_load(server.url, tokens[variant][:clients], bodies, max_seconds=300)
                cpu = server_cpu_s(server) - cpu
                assert result.statuses == {200: total}, (variant, result.statuses)
                runs[variant][clients].append({"throughput": result.throughput, "p50_ms": result.percentile_ms(50),
                                               "p99_ms": result.percentile_ms(99), "cpu_ms": 1000 * cpu / total})
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for variant, levels in runs.items():
        results[variant] = {}
        for clients, level_runs in levels.items():
            summary: dict[str, Any] = {key: statistics.median(run[key] for run in level_runs) for key in level_runs[0]}
            results[variant][clients] = summary | {"runs": level_runs}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"which of {', '.join(CONFIGS)} (database-workers) to measure, in this run")
    parser.add_argument("--baseline", metavar="REV", help="also serve git revision REV, turn about with this tree")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--server-args", default="", help="extra `autow2s serve` options, e.g. '--http h11 --loop asyncio'")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    results: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autow2s-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        variants: dict[str, Path | None] = {}
        if args.baseline:
            src, commit = extract_revision(args.baseline, root / "baseline")
            variants[f"baseline {commit}"] = src
        variants[THIS_TREE] = None
        data = prepare_tasks(root / "data", {"bench": N_TEST}, cache_dir=root / "cache")
        server_url = None
        if any(CONFIGS[name][0] == "postgresql" for name in chosen):
            server_url = stack.enter_context(durable_postgres())
        for index, name in enumerate(chosen):
            backend, workers = CONFIGS[name]
            # --workers only where it is needed, so a baseline from before the option can be served too
            extra = [*(["--workers", str(workers)] if workers > 1 else []), *args.server_args.split()]
            with ExitStack() as servers_stack:
                servers = {}
                for number, (variant, src) in enumerate(variants.items()):
                    db_url = create_database(server_url) if backend == "postgresql" and server_url else None
                    servers[variant] = servers_stack.enter_context(serving(
                        src, data_dir=data, state_dir=root / f"state-{name}-{number}", cache_dir=root / "cache",
                        extra_args=extra, db_url=db_url))
                results[name] = measure(servers, args.repeats, seed=100_000 * (index + 1))
    print(f"lab server, {N_TEST}-item test set, loopback, durable commits, medians of {args.repeats} runs "
          f"({time.monotonic() - started:.0f} s in all) {args.server_args}".rstrip())
    print(f"{'config':>14} {'code':>16} {'clients':>8} {'evals/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>7} "
          f"{'vs first':>9}" + (f" {'vs baseline':>12} {'CPU vs base':>12}" if args.baseline else ""))
    first = results[chosen[0]]
    for name in chosen:
        for variant in variants:
            for clients, r in results[name][variant].items():
                ratio = r["throughput"] / first[variant][clients]["throughput"]
                line = (f"{name:>14} {variant:>16} {clients:>8} {r['throughput']:>9.0f} {r['p50_ms']:>8.1f} "
                        f"{r['p99_ms']:>8.1f} {r['cpu_ms']:>7.2f} {ratio:>8.2f}x")
                if args.baseline:
                    baseline = next(iter(results[name].values()))[clients]
                    line += (f" {r['throughput'] / baseline['throughput']:>11.2f}x"
                             f" {r['cpu_ms'] / baseline['cpu_ms']:>11.2f}x")
                print(line)
    if args.json is not None:
        args.json.write_text(json.dumps({"n_test": N_TEST, "repeats": args.repeats, "when": time.time(),
                                         "variants": list(variants), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
