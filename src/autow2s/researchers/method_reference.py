"""The method contract in full (ctx, the student, losses, Recipe), as every researcher reads it.

Agents should not have to read the library's source to learn the API they write against; the
system prompt points to views.REFERENCE_PATH (/reference/METHOD_API.md, a read-only mount that
researchers/views.py writes from this text whenever a toolbox is built).
"""

from __future__ import annotations

REFERENCE = '''# The method contract (autow2s)

A method is a directory with `method.py` that defines `run(ctx)` and returns P(label = 1) for
every test item, in test order (a 1-D array of length ctx.task.sizes["test"]; an (n, 2) array of
class probabilities also works). Predictions must be finite and in [0, 1].
`run_experiment method_dir=DIR seeds=[...]` runs it; `save_snapshot` + `request_verification`
put it on the leaderboard.

## ctx: what a method may use (no labels, ever)

| call | what it gives |
|---|---|
| `ctx.task` | name, kind ("features" / "binary" / "pairwise"), description, sizes {split: n}, strong_dim, weak_dim |
| `ctx.inputs(split)` | the strong model's inputs for `"train_unlabel"` or `"test"` (a float matrix on feature tasks, rows of text otherwise) |
| `ctx.weak_inputs(split)` | the weak model's view of the same items |
| `ctx.weak_soft_labels(split)` | the weak teacher's P(label = 1) on a split (a fresh copy: edit freely) |
| `ctx.weak_model().predict_proba(split_or_inputs)` | the trained weak teacher, on a split name or on weak inputs |
| `ctx.strong_model(**hparams)` | a fresh, untrained strong student (each call gets its own seed) |
| `ctx.seed`, `ctx.rng` | the run's seed and a numpy Generator seeded with it |
| `ctx.log(**metrics)` | record numbers or short strings; run_experiment shows them back to you per seed |
| `ctx.time_left()` | seconds left of the method's time budget |

Student (what `ctx.strong_model()` returns):
- `student.fit(inputs, targets, loss="xent", weights=None, **loss_params)` trains on soft targets in
  [0, 1] with early stopping on a held-out slice of the inputs you pass; returns a report with
  epochs_run, best_epoch, best_val_loss, history.
- `student.predict_proba(inputs)` -> P(label = 1) per row; `student.features(inputs)` -> the
  representation it classifies from (hidden activations).
- hparams on feature tasks: arch ("mlp" | "linear"), hidden (64), lr (3e-3), weight_decay (1e-4),
  epochs (30), batch_size (256), val_frac (0.15), patience (5). Unknown names raise an error that
  lists the known ones.

Losses: `loss="xent"` (cross-entropy on the targets), `"logconf"` (aux_coef=0.5, warmup_frac=0.2:
mixes in the student's own hardened predictions), `"product"` (alpha, beta, warmup_frac), or a
callable `(logits, targets, step_frac) -> per-example loss` (torch tensors; step_frac runs 0 -> 1).

## Example: vanilla, then a confident subset with a custom loss

```python
import numpy as np
import torch.nn.functional as F


def run(ctx):
    weak = ctx.weak_soft_labels("train_unlabel")
    keep = np.flatnonzero(np.abs(weak - 0.5) >= 0.2)
    ctx.log(kept=int(keep.size), of=int(weak.size))
    inputs = ctx.inputs("train_unlabel")[keep]

    def soft_xent(logits, targets, step_frac):
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")

    student = ctx.strong_model(epochs=20)
    report = student.fit(inputs, weak[keep], loss=soft_xent)
    ctx.log(epochs=report.epochs_run, best_val_loss=report.best_val_loss)
    return student.predict_proba(ctx.inputs("test"))
```

(On text tasks `ctx.inputs` is a list of rows: select with `[rows[i] for i in keep]`, or use
`autow2s.testbed.models.base.subset(inputs, keep)`.)

## The library: baselines and Recipe

`autow2s.testbed.methods` holds the baselines (vanilla, vanilla-hard, confident, logconf, product,
temperature, label-smoothing, bootstrap, ensemble, knn-relabel, ue-direction, label-spreading,
label-propagation, self-training, co-training, composed). Helpers in
`autow2s.testbed.methods.common`: `fit_predict(ctx, targets, rows=None, weights=None, loss="xent",
loss_params=None, predict_on=("test",), **hparams)` -> list of predictions, `harden(p)`,
`representation(ctx, split)`.

`autow2s.testbed.methods.composed.Recipe` is a frozen point of the composition space; defaults are
vanilla. Fields:
- targets: "soft" | "hard" | "temperature" (with temperature: float = 1.0)
- relabel: "none" | "knn" (knn_k = 32) | "bootstrap" (bootstrap_rounds = 1, bootstrap_weight = 0.7)
- confident_margin: keep items with |p - 0.5| >= margin (0 keeps all; must be < 0.5)
- loss: "xent" | "logconf" | "product" (aux_coef = 0.5, warmup_frac = 0.2, product_beta = 1.0)
- members: ensemble size (>= 1), member_resample: "bootstrap" | "none" (every member on every item)
- hparams: dict passed to ctx.strong_model (e.g. {"epochs": 40, "hidden": 128})

The classic semi-supervised families, as relabelling steps (each is also a baseline of its own):
- relabel "spread": label spreading on a kNN graph of the strong representation (the feature
  vectors, or the strong student's embedding on text tasks), rank-matched back to the weak labels'
  distribution: spread_k = 16, spread_alpha = 0.99 (share taken from the neighbours, in [0, 1)),
  spread_metric "cosine" | "euclidean", spread_normalization "symmetric" | "random-walk"
  (label propagation). Helpers: `autow2s.testbed.methods.label_spreading.spread_labels(ctx, soft,
  k=..., alpha=..., metric=..., normalization=...)`, `knn_graph(matrix, k, metric)`, `spread(...)`.
- relabel "self-train": round r gives the r * relabel_fraction items the student is most sure of
  its hardened label (relabel_rounds = 2, relabel_fraction = 0.2; predictions out of fold).
- relabel "co-train": two students on two random halves of the representation's columns teach each
  other their most confident items (same rounds and fraction; cotrain_views "split", or
  "strong-weak" on features tasks only).
- Regularisation: weight_decay (None keeps the student's default), patience (early-stopping
  patience in epochs), early_stopping = False (no validation slice: every epoch, last weights).

```python
from autow2s.testbed.methods.composed import Recipe, run_recipe

RECIPE = Recipe(loss="logconf", relabel="knn", knn_k=16, confident_margin=0.1, members=3,
                hparams={"epochs": 40})


def run(ctx):
    return run_recipe(ctx, RECIPE)   # logs the recipe via ctx.log
```

`Recipe.from_dict({...})` refuses unknown fields and lists the known ones;
`render_method(recipe)` returns a self-contained method.py for a recipe.

## Looking at the data: dev_context

In the `python` tool, `dev_context(task=None, seed=0)` gives the very ctx your `run(ctx)` gets on a
research task (the only one by default; name it with several), built from the public view at /task:

```python
from autow2s.testbed.dev import dev_context
from autow2s.testbed.methods.common import representation

ctx = dev_context()                       # or dev_context("rt-sentiment", seed=1)
weak = ctx.weak_soft_labels("train_unlabel")
X = representation(ctx, "train_unlabel")  # the strong model's features (encoded texts on text tasks)
print(weak.mean(), (abs(weak - 0.5) > 0.3).mean(), X.shape)
```

It holds no labels (the public view has none), so nothing you see there is dev or holdout truth;
the lab's dev score stays the only measurement of a method.

## Scoring, in short

- The lab scores test predictions on its dev part only; the reported accuracy is coarsened.
- Resubmitting exactly the same predicted classes is answered from your earlier evaluation, free.
  So is a submission that differs from one of your own earlier ones in only a few items (an
  ablation that changed almost nothing): you get that evaluation's figure back, uncharged and not
  flagged, and the reply says so. Many near-duplicates of different evaluations in a short time
  are flagged as probing; near-duplicates of another researcher's submissions are refused.
- The leaderboard shows verified runs: the lab re-runs your snapshot on seeds it chooses, with a
  weak supervisor it retrains for that run (so no weak label you saw in research appears there),
  scores it on the hidden holdout, then repeats it with null supervisors (trained on permuted
  labels); a method that keeps its PGR without the supervisor is flagged.
'''

