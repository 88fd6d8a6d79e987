"""`arith-verify`: arithmetic word problems, each with a worked answer; the label is computed.

A proposed answer is wrong in one of two ways:
- wrong operation: the equation is computed correctly, but with the operation the story does not
  call for (subtracting when the story adds). Seeing this needs the story verb *and* the operator
  together, an interaction a bag of n-grams cannot express but an encoder with a head can learn;
- slip: the right operation with a result that is off by a little. Neither model can check the
  arithmetic reliably, so slips cap the ceiling.
Multiplication and division stories slip more often, a lexical prior that puts a bag-of-words
weak model above chance. Rows are in the anchor's binary format {id, question, choice, label}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.tasks.schema import TaskMeta

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara")
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "coins", "books", "shells", "cards",
         "beads", "balloons")
ADD_VERBS = ("buys {b} more", "finds {b} more", "is given {b} more", "picks up another {b}", "wins {b} more")
SUB_VERBS = ("gives away {b}", "loses {b}", "sells {b}", "eats {b}", "drops {b}")
FAMILIES = ("add", "sub", "mul", "div")


@dataclass(frozen=True)
class ArithConfig:
    """Sizes and the error mix; the defaults are calibrated (docs/text_backends.md)."""

    n_train_label: int = 800
    n_train_unlabel: int = 3000
    n_test: int = 2000
    correct_frac: float = 0.5
    wrong_op_frac: float = 0.75  # share of wrong answers that use the wrong operation (the rest slip)
    slip_rate: dict[str, float] | None = None  # per family; heavier for mul/div (default below)
    data_seed: int = 0

    def slip_rates(self) -> dict[str, float]:
        return self.slip_rate or {"add": 0.6, "sub": 0.6, "mul": 1.6, "div": 1.6}


def _story(family: str, rng: np.random.Generator) -> tuple[str, int, int, str]:
    """A question and its operands; returns (question, a, b, correct operator)."""
    name, item = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
    if family == "add":
        a, b = int(rng.integers(5, 60)), int(rng.integers(2, 40))
        verb = ADD_VERBS[rng.integers(len(ADD_VERBS))].format(b=b)
        return f"{name} has {a} {item}. Then {name} {verb}. How many {item} does {name} have now?", a, b, "+"
    if family == "sub":
        a = int(rng.integers(20, 90))
        b = int(rng.integers(2, a - 3))
        verb = SUB_VERBS[rng.integers(len(SUB_VERBS))].format(b=b)
        return f"{name} has {a} {item}. Then {name} {verb}. How many {item} does {name} have now?", a, b, "-"
    if family == "mul":
        a, b = int(rng.integers(2, 12)), int(rng.integers(2, 12))
        return (f"{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy in total?",
                a, b, "*")
    b, share = int(rng.integers(2, 10)), int(rng.integers(2, 12))
    a = b * share
    return (f"{name} shares {a} {item} equally among {b} friends. How many {item} does each friend get?",
            a, b, "/")


_APPLY: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b,
}
_WRONG_OP = {"+": "-", "-": "+", "*": "+", "/": "-"}
_SYMBOL = {"+": "+", "-": "-", "*": "×", "/": "÷"}


def _answer(a: int, op: str, b: int, result: int) -> str:
    return f"{a} {_SYMBOL[op]} {b} = {result}, so the answer is {result}."


def _row(index: int, rng: np.random.Generator, cfg: ArithConfig) -> tuple[dict[str, Any], int]:
    family = FAMILIES[rng.integers(len(FAMILIES))]
    question, a, b, op = _story(family, rng)
    truth = _APPLY[op](a, b)
    # Slip-prone families are wrong more often: the lexical prior the weak model can use.
    p_wrong = (1 - cfg.correct_frac) * cfg.slip_rates()[family] / np.mean(list(cfg.slip_rates().values()))
    if rng.random() >= min(0.95, p_wrong):
        choice = _answer(a, op, b, truth)
    elif rng.random() < cfg.wrong_op_frac:
        wrong = _WRONG_OP[op]
        choice = _answer(a, wrong, b, _APPLY[wrong](a, b))
    else:
        slip = int(rng.choice([-10, -2, -1, 1, 2, 10]))
        choice = _answer(a, op, b, truth + slip)
    proposed = int(choice.rsplit(" ", 1)[-1].rstrip("."))
    row = {"id": f"arith-{index:05d}", "question": question, "choice": choice, "subset": family}
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
    meta = TaskMeta(name=name, kind="binary", source=f"autow2s arith-verify {asdict(cfg)}",
                    description="is the worked answer to an arithmetic word problem correct? (computed labels)")
    return Task(meta=meta, splits=splits)
