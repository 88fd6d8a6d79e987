"""Starting research directions: the anchor's nine, assigned so parallel researchers start apart.

Each direction carries a prompt for LLM researchers and a bias over the search space for the
offline search researcher, so both kinds explore the same idea.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError


@dataclass(frozen=True)
class Direction:
    name: str
    prompt: str
    # recipe field -> preferred values; the search researcher samples these more often
    bias: dict[str, list[Any]] = field(default_factory=dict)


BUILTIN_DIRECTIONS: tuple[Direction, ...] = (
    Direction("unsupervised-elicitation",
              "Find the truth direction in the strong model's representation without labels (consistency, "
              "clustering, contrast), using the weak labels only to orient or select it.",
              {"relabel": ["spread", "knn"], "knn_k": [16, 32, 64], "spread_k": [16, 32]}),
    Direction("data-reweighting",
              "Reweight or filter the weak labels: which examples should the student trust?",
              {"confident_margin": [0.05, 0.1, 0.2], "targets": ["soft", "hard"]}),
    Direction("w2s-plus-ue",
              "Combine weak supervision with unsupervised structure: let the weak labels and the strong "
              "model's own geometry correct each other.",
              {"relabel": ["spread", "knn", "co-train"], "loss": ["logconf"]}),
    Direction("noisy-channel-em",
              "Model the weak teacher as a noisy channel and train on posterior labels (EM-style relabelling).",
              {"relabel": ["bootstrap", "self-train"], "bootstrap_rounds": [1, 2, 3], "relabel_rounds": [2, 3],
               "targets": ["temperature"]}),
    Direction("distillation-variants",
              "Vary how the weak signal is distilled: soft vs hard targets, temperatures, product-of-experts losses.",
              {"targets": ["soft", "hard", "temperature"], "temperature": [0.5, 2.0], "loss": ["product", "xent"]}),
    Direction("simplicity-bias",
              "Lean on the strong model's simplicity bias: stronger regularisation, fewer epochs, smaller heads.",
              {"hparams": [{"epochs": 10}, {"hidden": 16}, {"arch": "linear"}], "weight_decay": [1e-2, 1e-1],
               "early_stopping": [True], "patience": [2]}),
    Direction("learnability-selection",
              "Select training examples by how learnable they are for the student (confidence, agreement "
              "across rounds).",
              {"confident_margin": [0.1, 0.2], "relabel": ["self-train", "co-train", "bootstrap"]}),
    Direction("evolutionary-search",
              "Search broadly over compositions of the method library and keep what verifies.",
              {}),
    Direction("interpretability-probes",
              "Probe the strong model's features: linear probes, neighbourhoods in feature space, what the "
              "student's representation separates.",
              {"hparams": [{"arch": "linear"}], "relabel": ["knn", "spread"], "members": [1, 3]}),
)


def load_directions(path: str | Path | None = None) -> list[Direction]:
    """The built-in set, or a user's JSON file: [{"name", "prompt", "bias"?}, ...]."""
    if path is None:
        return list(BUILTIN_DIRECTIONS)
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AutoW2SError(f"{path}: cannot read directions ({exc}); expected a JSON list of "
                           '{"name": ..., "prompt": ...}') from None
    if not isinstance(data, list) or not data:
        raise AutoW2SError(f"{path}: expected a non-empty JSON list of directions")
    directions = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("prompt"), str):
            raise AutoW2SError(f"{path}: direction {i} needs string fields 'name' and 'prompt'")
        bias = item.get("bias", {})
        if not isinstance(bias, dict):
            raise AutoW2SError(f"{path}: direction {i}: 'bias' must be an object of field -> list of values")
        directions.append(Direction(item["name"], item["prompt"], bias))
    return directions


def assign_directions(n_researchers: int, directions: list[Direction]) -> list[Direction]:
    """Round-robin, so the first len(directions) researchers all start somewhere different."""
    if not directions:
        raise AutoW2SError("no research directions to assign")
    return [directions[i % len(directions)] for i in range(n_researchers)]
