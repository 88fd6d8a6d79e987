#!/usr/bin/env python3
"""Dashboard page load time with 10k evaluations and 1k findings in the lab DB, in headless Chromium.

Starts a real `autow2s serve` on a prepared synthetic task once (schema, baselines), fills its
SQLite DB through the lab's own models (10,000 evaluations from 8 researchers over three hours,
1,000 findings indexed for search, comments, votes, 500 snapshots in lineages, 100 verified runs,
and an audit log with refusals), restarts it, and times each page in Chromium from navigation
start to the load event, on loopback. Goal: every page's median <= 1 s.

    .venv/bin/python benchmarks/dashboard_load.py [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the reusable server fixture lives with the tests

from sqlalchemy import create_engine, insert, select  # noqa: E402

from autow2s.lab.models import AuditEntry, Comment, Evaluation, Finding, Researcher, Snapshot, VerifyRun, Vote  # noqa: E402
from autow2s.lab.search import SqliteFts5Search  # noqa: E402
from lab_helpers import prepare_tasks, start_lab  # noqa: E402

TASK, N_TEST = "bench", 2000
N_RESEARCHERS, N_EVALUATIONS, N_FINDINGS, N_SNAPSHOTS, N_VERIFIED = 8, 10_000, 1_000, 500, 100
GOAL_MS = 1000.0
CHROMIUM = "/usr/bin/chromium"
WORDS = ("confident relabel knn bootstrap ensemble temperature margin logconf product soft hard targets weak "
         "teacher student probe loss warmup reweighting auxiliary entropy calibration ceiling holdout").split()


def fill(db: Path, seed: int = 0) -> dict[str, str]:
    """Insert the synthetic history; returns ids the timed pages need (a finding, a snapshot, an evaluation)."""
    rng = random.Random(seed)
    engine = create_engine(f"sqlite:///{db}")
    start = time.time() - 3 * 3600
    n_dev = N_TEST // 2
    bits = bytes(N_TEST // 8)
    with engine.begin() as conn:
        researcher_ids = []
        for i in range(N_RESEARCHERS):
            digest = hashlib.sha256(f"bench-token-{i}-{seed}".encode()).hexdigest()
            researcher_ids.append(int(conn.execute(insert(Researcher), {
                "name": f"bench-{i + 1}", "token_hash": digest, "created_at": start}).inserted_primary_key[0]))
        level = {rid: rng.uniform(-0.3, 0.3) for rid in researcher_ids}
        evaluations, audit = [], []
        for i in range(N_EVALUATIONS):
            rid = rng.choice(researcher_ids)
            level[rid] = min(1.1, level[rid] + rng.gauss(0.0004, 0.02))
            pgr = level[rid] + rng.gauss(0, 0.08)
            at = start + i * (3 * 3600 / N_EVALUATIONS)
            flags = "degenerate" if rng.random() < 0.02 else ""
            evaluations.append({"researcher_id": rid, "task": TASK, "snapshot_id": None, "endpoint": "v1",
                                "created_at": at, "n_dev": n_dev, "dev_correct": n_dev // 2, "holdout_correct": 0,
                                "n_holdout": N_TEST - n_dev, "reported_accuracy": 0.6, "reported_pgr": pgr,
                                "flags": flags, "pred_bits": bits})
            audit.append({"created_at": at, "researcher_id": rid, "actor": "researcher", "method": "POST",
                          "path": "/api/v1/evaluate", "status": 200, "task": TASK, "outcome": "accepted",
                          "charged": "evaluate", "evaluation_id": i + 1, "flags": flags, "detail": ""})
        for i in range(300):
            outcome, status = ("refused_probe", 409) if i % 3 else ("over_budget", 429)
            audit.append({"created_at": start + i * 30, "researcher_id": rng.choice(researcher_ids),
                          "actor": "researcher", "method": "POST", "path": "/api/v1/evaluate", "status": status,
                          "task": TASK, "outcome": outcome, "charged": "evaluate", "evaluation_id": None, "flags": "",
                          "detail": "refused (benchmark)"})
        conn.execute(insert(Evaluation), evaluations)
        conn.execute(insert(AuditEntry), audit)
        snapshots: list[dict] = []
        for i in range(N_SNAPSHOTS):
            rid = researcher_ids[i % N_RESEARCHERS]
            mine = [s for s in snapshots[-40:] if s["researcher_id"] == rid]
            parent = rng.choice(mine)["id"] if mine and rng.random() < 0.9 else None
            snapshots.append({"id": hashlib.sha1(f"snap-{i}-{seed}".encode()).hexdigest(), "researcher_id": rid,
                              "parent_id": parent, "name": f"c{i:03d}-{rng.choice(WORDS)}-{rng.choice(WORDS)}",
                              "message": " ".join(rng.choices(WORDS, k=12)), "size_bytes": 2048,
                              "created_at": start + i * 20})
        conn.execute(insert(Snapshot), snapshots)
        runs = []
        for i in range(N_VERIFIED):
            snap = snapshots[rng.randrange(N_SNAPSHOTS)]
            holdout = rng.uniform(-0.2, 0.9)
            runs.append({"researcher_id": snap["researcher_id"], "snapshot_id": snap["id"], "task": TASK,
                         "seeds": json.dumps([1, 2, 3, 4, 5]), "status": "done", "error": "",
                         "dev_accuracy": 0.6, "holdout_accuracy": 0.6, "dev_pgr": holdout + 0.05,
                         "holdout_pgr": holdout, "holdout_ci_low": holdout - 0.1, "holdout_ci_high": holdout + 0.1,
                         "created_at": start + i * 100, "finished_at": start + i * 100 + 30})
        conn.execute(insert(VerifyRun), runs)
        search = SqliteFts5Search(engine)
        for i in range(N_FINDINGS):
            rid = rng.choice(researcher_ids)
            title = " ".join(rng.choices(WORDS, k=6))
            body = " ".join(rng.choices(WORDS, k=120)) + f" Snapshot {rng.choice(snapshots)['id']}."
            tags = " search " + rng.choice(WORDS) + " "
            cites = rng.random() < 0.5
            finding_id = int(conn.execute(insert(Finding), {
                "researcher_id": rid, "type": "result" if cites else rng.choice(["hypothesis", "insight", "error"]),
                "title": title, "body": body, "tags": tags, "task": TASK,
                "evaluation_id": rng.randrange(1, N_EVALUATIONS + 1) if cites else None, "verify_id": None,
                "created_at": start + i * 10}).inserted_primary_key[0])
            search.index(conn, finding_id, title, body, tags)
        conn.execute(insert(Comment), [{"finding_id": rng.randrange(1, N_FINDINGS + 1), "researcher_id":
                                        rng.choice(researcher_ids), "body": " ".join(rng.choices(WORDS, k=30)),
                                        "created_at": start + i} for i in range(2000)])
        votes = {(rng.randrange(1, N_FINDINGS + 1), rid) for rid in researcher_ids for _ in range(300)}
        conn.execute(insert(Vote), [{"finding_id": f, "researcher_id": r, "value": rng.choice([1, 1, -1]),
                                     "created_at": start} for f, r in votes])
        first_finding = conn.execute(select(Finding.id).order_by(Finding.id.desc()).limit(1)).scalar()
    engine.dispose()
    return {"finding": str(first_finding), "snapshot": snapshots[-1]["id"], "evaluation": str(N_EVALUATIONS // 2)}


def time_pages(base: str, paths: dict[str, str], repeats: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        for name, path in paths.items():
            page.goto(base + path)  # warm-up: templates compiled, static files cached
            samples, size = [], 0
            for _ in range(repeats):
                page.goto(base + path, wait_until="load")
                timing = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                                       " return [n.loadEventEnd - n.startTime, n.responseEnd - n.requestStart,"
                                       " n.encodedBodySize]; })()")
                samples.append(timing)
                size = timing[2]
            results[name] = {"median_ms": statistics.median(s[0] for s in samples),
                             "max_ms": max(s[0] for s in samples),
                             "server_ms": statistics.median(s[1] for s in samples), "html_kb": size / 1024}
        browser.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autow2s-dash-bench-") as tmp:
        root = Path(tmp)
        data = prepare_tasks(root / "data", {TASK: N_TEST}, cache_dir=root / "cache")
        state = root / "state"
        with start_lab(data, state, cache_dir=root / "cache"):
            pass  # the first start creates the schema and computes the task's baselines
        started = time.perf_counter()
        ids = fill(state / "lab.sqlite")
        print(f"filled the DB in {time.perf_counter() - started:.1f}s: {N_EVALUATIONS} evaluations, "
              f"{N_FINDINGS} findings, {N_SNAPSHOTS} snapshots, {N_VERIFIED} verified runs", flush=True)
        paths = {"leaderboard": "/dashboard/", "pgr over time": "/dashboard/pgr", "forum": "/dashboard/forum",
                 "forum search": "/dashboard/forum?q=confident+margin", "thread": f"/dashboard/forum/{ids['finding']}",
                 "researchers": "/dashboard/researchers", "snapshot lineage": "/dashboard/snapshots",
                 "snapshot": f"/dashboard/snapshots/{ids['snapshot']}", "flags": "/dashboard/flags",
                 "evaluation": f"/dashboard/evaluations/{ids['evaluation']}"}
        with start_lab(data, state, cache_dir=root / "cache") as lab:
            results = time_pages(lab.url, paths, args.repeats)
    print(f"\n{'page':<18}{'median ms':>11}{'max ms':>9}{'server ms':>11}{'HTML KiB':>10}")
    for name, r in results.items():
        print(f"{name:<18}{r['median_ms']:>11.0f}{r['max_ms']:>9.0f}{r['server_ms']:>11.0f}{r['html_kb']:>10.0f}")
    worst = max(r["median_ms"] for r in results.values())
    print(f"\nslowest median {worst:.0f} ms; goal <= {GOAL_MS:.0f} ms per page: {'met' if worst <= GOAL_MS else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if worst <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
