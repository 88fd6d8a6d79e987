"""`arith-verify`: arithmetic word problems, each with a worked answer; the label is computed.

A proposed answer is wrong in one of two ways:
- wrong operation: the equation is computed correctly, but with the operation the story does not
  call for (subtracting when the story adds). Seeing this needs the story verb *and* the operator
  together, an interaction a bag of n-grams cannot express but an encoder with a head can learn.
  Adding and taking-away stories draw the same operands, so a sum (or a difference) is as likely
  to be a right answer as a wrong one: the numbers alone do not give the label away;
- slip: the right operation with a result that is off by a little. Neither model can check the
  arithmetic reliably, so slips cap the ceiling.
Some phrasings are answered wrongly more often than others, a lexical prior that puts a
bag-of-words weak model above chance. Rows are in the anchor's binary format
{id, question, choice, label}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.tasks.schema import TaskMeta

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara")
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "coins", "books", "shells", "cards",
         "beads", "balloons")
# (phrasing, operator, hard): "hard" phrasings are answered wrongly more often.
VERBS: tuple[tuple[str, str, bool], ...] = (
    ("buys {b} more", "+", False), ("finds {b} more", "+", False), ("is given {b} more", "+", True),
    ("picks up another {b}", "+", True), ("gives away {b}", "-", False), ("loses {b}", "-", False),
    ("sells {b} of them", "-", True), ("hands out {b}", "-", True),
)
SLIPS: tuple[int, ...] = (-10, -2, -1, 1, 2, 10)


@dataclass(frozen=True)
class ArithConfig:
    """Sizes and the error mix; the defaults are calibrated (docs/text_backends.md)."""

    n_train_label: int = 800
    n_train_unlabel: int = 2400
    n_test: int = 1600
    wrong_rate_easy: float = 0.38  # share of wrong answers for plain phrasings
    wrong_rate_hard: float = 0.62  # ... and for the phrasings that trip people up
    wrong_op_frac: float = 0.65  # share of wrong answers that use the wrong operation (the rest slip)
    data_seed: int = 0


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def _answer(a: int, op: str, b: int, result: int) -> str:
    return f"{a} {op} {b} = {result}, so the answer is {result}."


def _row(index: int, rng: np.random.Generator, cfg: ArithConfig) -> tuple[dict[str, Any], int]:
    name, item = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
    phrase, op, hard = VERBS[rng.integers(len(VERBS))]
    a, b = int(rng.integers(20, 90)), int(rng.integers(2, 20))
    question = (f"{name} has {a} {item}. Then {name} {phrase.format(b=b)}. "
                f"How many {item} does {name} have now?")
    truth = _apply(a, op, b)
    if rng.random() >= (cfg.wrong_rate_hard if hard else cfg.wrong_rate_easy):
        choice = _answer(a, op, b, truth)
    elif rng.random() < cfg.wrong_op_frac:
        wrong = "-" if op == "+" else "+"
        choice = _answer(a, wrong, b, _apply(a, wrong, b))
    else:
        choice = _answer(a, op, b, truth + int(rng.choice(SLIPS)))
    proposed = int(choice.rsplit(" ", 1)[-1].rstrip("."))
    row = {"id": f"arith-{index:05d}", "question": question, "choice": choice}
    return row, int(proposed == truth)


def generate(cfg: ArithConfig = ArithConfig(), name: str = "arith-verify") -> Task:
    """Build the task in memory, deterministically from cfg.data_seed."""
    rng = np.random.default_rng(cfg.data_seed)
    sizes = {"train_label": cfg.n_train_label, "train_unlabel": cfg.n_train_unlabel, "test": cfg.n_test}
    splits: dict[str, Split] = {}
    index = 0
    for split, size in sizes.items():
        rows, labels = [], []
        for _ in range(size):
            row, label = _row(index, rng, cfg)
            rows.append(row)
            labels.append(label)
            index += 1
        splits[split] = Split(ids=[r["id"] for r in rows], labels=np.asarray(labels, dtype=np.int64), rows=rows)
    knobs = {k: v for k, v in asdict(cfg).items() if k != "data_seed"}  # the seed is the lab's secret
    meta = TaskMeta(name=name, kind="binary", source=f"autow2s arith-verify {knobs}", labels_computable=True,
                    description="is the worked answer to an arithmetic word problem correct? (computed labels)")
    return Task(meta=meta, splits=splits)
