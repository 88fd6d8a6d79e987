#!/usr/bin/env python3
"""The label-flip attack, run for real against a lab server: how many dev labels can it recover?

The anchor's scorer returned exact accuracies, so flipping one prediction and watching the score
move by ±1/n revealed that item's label. This client does exactly that, adapting when refused:

- flip:  submit a random base, then the base with one item flipped; a score change gives that
         item's label. When the lab refuses near-duplicates, it flips the smallest block the lab
         accepts and reads the block's labels off the sign of the change.
- boost: submit random predictions and vote, weighting each by its score (the Kaggle
         "boosting" attack): many large changes instead of a few small ones.
- group: patient group testing. It asks the lab for the smallest change it scores afresh, never
         sends a near-duplicate (so it trips no flag), keeps within the rate limit, and flips random
         groups of exactly that size against one base until the budget is spent; each item's guess
         comes from the mean score change of the groups it was in, and its confidence from how far that
         mean stands from zero (the report's `confidence`: an attacker keeps its most confident guesses).

It stops at the budget (429 without a reset time), at --max-requests or at --max-seconds.
It writes its guesses as JSON {"guesses": {test index: 0|1}, ...}; with --lab-dir it also
prints how many of them are right on dev (the attack itself never reads that directory).

    python scripts/flip_attack.py --url http://127.0.0.1:8600 --token aw2s_... --task synth-linear \
        --out guesses.json --lab-dir DATA/synth-linear/lab
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


class Budget(Exception):
    """The lab said the budget is spent (or our own limits were reached)."""


class Scorer:
    """The attacker's view of the lab: submit predictions, get a number (or a refusal)."""

    def __init__(self, url: str, token: str, task: str, *, max_requests: int, max_seconds: float) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.task = task
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.requests = self.accepted = self.refused = 0
        self.min_changed = 1

    def score(self, bits: np.ndarray) -> float | None:
        """Reported dev accuracy, or None when the lab refused the submission as a probe."""
        while True:
            if self.requests >= self.max_requests or time.monotonic() > self.deadline:
                raise Budget("attack limits reached")
            self.requests += 1
            response = self.client.post("/api/v1/evaluate",
                                        json={"task": self.task, "predictions": bits.astype(int).tolist()})
            body: dict[str, Any] = response.json()
            if response.status_code == 200 and body.get("near_duplicate_of_evaluation") is not None:
                # Answered with an earlier figure (a change too small to score): nothing learnt; go bigger.
                self.refused += 1
                self.min_changed = int(body.get("min_items_changed") or self.min_changed + 1)
                return None
            if response.status_code == 200:
                self.accepted += 1
                return float(body["dev_accuracy"])
            if response.status_code == 409:
                self.refused += 1
                self.min_changed = int(body.get("min_items_changed", self.min_changed + 1))
                return None
            if response.status_code == 429 and body.get("retry_after_s") is not None:
                time.sleep(min(float(body["retry_after_s"]) + 0.05, max(0.0, self.deadline - time.monotonic())))
                continue
            if response.status_code == 429:
                raise Budget(body.get("error", "budget spent"))
            raise RuntimeError(f"unexpected answer {response.status_code}: {body}")

    def n_test(self) -> int:
        tasks = self.client.get("/api/v1/tasks").json()
        return next(int(t["n_test"]) for t in tasks if t["name"] == self.task)

    def smallest_scored_change(self) -> int:
        """The fewest changed items the lab scores as a new submission (the lab states it in /me/status)."""
        limits = self.client.get("/api/v1/me/status", params={"task": self.task}).json()["limits"]
        return int(limits["near_duplicate_min_items"])


def flip_attack(scorer: Scorer, n_test: int, rng: np.random.Generator) -> dict[int, int]:
    """Flip blocks of a random base (single items if the lab allows it) and vote on each item.

    Every accepted probe adds its score change to the votes of the items it flipped; passes over
    fresh random blocks repeat until the budget is spent, so noise averages out where it can.
    """
    base = rng.integers(0, 2, n_test).astype(bool)
    votes = np.zeros(n_test)  # > 0: flipping this item raised the score
    probed = np.zeros(n_test, dtype=bool)
    try:
        base_score = scorer.score(base)
        if base_score is None:
            return {}
        block_size = 1
        while True:
            order = list(rng.permutation(n_test))
            while len(order) >= block_size:
                block = [order.pop() for _ in range(block_size)]
                probe = base.copy()
                probe[block] = ~probe[block]
                score = scorer.score(probe)
                if score is None:  # refused: the lab wants bigger changes; grow the block
                    order.extend(block)
                    block_size = max(block_size + 1, scorer.min_changed)
                    continue
                votes[block] += score - base_score
                probed[block] = True
    except Budget:
        pass
    decided = np.flatnonzero(probed & (votes != 0))
    return {int(i): int((not base[i]) if votes[i] > 0 else base[i]) for i in decided}


def boost_attack(scorer: Scorer, n_test: int, rng: np.random.Generator) -> dict[int, int]:
    votes = np.zeros(n_test)
    submitted = 0
    try:
        while True:
            bits = rng.integers(0, 2, n_test).astype(bool)
            score = scorer.score(bits)
            if score is None:
                continue
            submitted += 1
            votes += (score - 0.5) * np.where(bits, 1.0, -1.0)
    except Budget:
        pass
    if submitted == 0:
        return {}
    return {int(i): int(votes[i] > 0) for i in range(n_test) if votes[i] != 0}


def group_attack(scorer: Scorer, n_test: int, rng: np.random.Generator) -> tuple[dict[int, int], dict[int, float]]:
    """Flip random groups of the smallest scored size against one base; decode each item by its groups' mean."""
    size = scorer.smallest_scored_change()
    base = rng.integers(0, 2, n_test).astype(bool)
    sums, counts = np.zeros(n_test), np.zeros(n_test)
    try:
        base_score = scorer.score(base)
        if base_score is None:
            return {}, {}
        while True:
            group = rng.choice(n_test, size=size, replace=False)
            probe = base.copy()
            probe[group] = ~probe[group]
            score = scorer.score(probe)
            if score is None:  # the lab moved its threshold: follow it
                size = max(size + 1, scorer.min_changed)
                continue
            sums[group] += score - base_score
            counts[group] += 1
    except Budget:
        pass
    probed = np.flatnonzero((counts > 0) & (sums != 0))
    mean = np.divide(sums, counts, out=np.zeros(n_test), where=counts > 0)
    guesses = {int(i): int((not base[i]) if mean[i] > 0 else base[i]) for i in probed}
    confidence = {int(i): float(abs(mean[i]) * np.sqrt(counts[i])) for i in probed}
    return guesses, confidence


def top_fraction(guesses: dict[int, int], confidence: dict[int, float], fraction: float) -> dict[int, int]:
    """The attacker's most confident guesses: what it would act on."""
    ranked = sorted(guesses, key=lambda i: -confidence.get(i, 0.0))
    return {i: guesses[i] for i in ranked[: max(1, int(len(ranked) * fraction))]}


def dev_recovery(guesses: dict[int, int], lab_dir: Path) -> dict[str, float]:
    """How many guesses on dev items are right: for reporting only, read after the attack."""
    rows = [json.loads(line) for line in (lab_dir / "test.jsonl").read_text().splitlines() if line.strip()]
    dev = set(json.loads((lab_dir / "partition.json").read_text())["dev"])
    labels = {i: int(row["label"] in (True, 1, "B")) for i, row in enumerate(rows)}
    on_dev = [i for i in guesses if rows[i]["id"] in dev]
    right = sum(guesses[i] == labels[i] for i in on_dev)
    return {"dev_guesses": len(on_dev), "dev_right": right, "dev_accuracy": right / len(on_dev) if on_dev else 0.5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--strategy", choices=("flip", "boost", "group"), default="flip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lab-dir", type=Path, help="score the guesses against this lab view afterwards")
    args = parser.parse_args(argv)

    scorer = Scorer(args.url, args.token, args.task, max_requests=args.max_requests, max_seconds=args.max_seconds)
    n_test = scorer.n_test()
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    confidence: dict[int, float] = {}
    if args.strategy == "group":
        guesses, confidence = group_attack(scorer, n_test, rng)
    else:
        guesses = (flip_attack if args.strategy == "flip" else boost_attack)(scorer, n_test, rng)
    report: dict[str, Any] = {"strategy": args.strategy, "task": args.task, "n_test": n_test,
                              "requests": scorer.requests, "accepted": scorer.accepted, "refused": scorer.refused,
                              "seconds": round(time.monotonic() - started, 2), "n_guesses": len(guesses)}
    if args.lab_dir is not None:
        report.update(dev_recovery(guesses, args.lab_dir))
        if confidence:
            top = dev_recovery(top_fraction(guesses, confidence, 0.1), args.lab_dir)
            report.update({f"top10_{key}": value for key, value in top.items()})
    args.out.write_text(json.dumps({**report, "guesses": {str(k): v for k, v in guesses.items()},
                                    "confidence": {str(k): v for k, v in confidence.items()}}) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
