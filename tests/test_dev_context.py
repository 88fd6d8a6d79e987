"""dev_context: the method's own view of a research task, from the python tool, with no labels in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autow2s.errors import AutoW2SError
from autow2s.testbed.dev import dev_context
from lab_helpers import LabServer, lab_data, start_lab  # noqa: F401 - fixture
from toolbox_helpers import toolbox_factory

SNIPPET = """
from autow2s.testbed.dev import dev_context
from autow2s.testbed.methods.common import representation

ctx = dev_context({task})
weak = ctx.weak_soft_labels("train_unlabel")
X = representation(ctx, "train_unlabel")
print("TASK", ctx.task.name, "SIZES", ctx.task.sizes["train_unlabel"], ctx.task.sizes["test"])
print("WEAK", len(weak), round(float(weak.mean()), 3), "X", X.shape)
print("LABELS", [name for name in ("labels", "label") if hasattr(ctx, name)])
"""


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with start_lab(lab_data, tmp_path_factory.mktemp("dev-context-lab")) as server:
        yield server


@pytest.fixture()
def make_toolbox(lab: LabServer, lab_data: Path, tmp_path: Path) -> Iterator:
    with toolbox_factory(lab, lab_data, tmp_path) as make:
        yield make


def test_a_sandboxed_snippet_gets_the_methods_ctx_for_its_task(make_toolbox) -> None:
    toolbox = make_toolbox("analyst", tasks=("mini", "wide"))
    reply = toolbox.call("python", {"code": SNIPPET.format(task="'wide'")})
    assert reply.startswith("exit 0"), reply
    assert "TASK wide" in reply and "WEAK" in reply and "LABELS []" in reply
    missing = toolbox.call("python", {"code": SNIPPET.format(task="")})
    assert "several research tasks (mini, wide); say which one" in missing


def test_outside_a_sandbox_it_says_where_it_works(tmp_path: Path) -> None:
    with pytest.raises(AutoW2SError, match="inside a researcher's sandbox"):
        dev_context(root=tmp_path)


def test_a_public_view_holds_no_labels_for_it_to_show(lab_data: Path) -> None:
    ctx = dev_context(root=lab_data / "mini" / "public", seed=3)
    assert ctx.seed == 3 and set(ctx._splits) == {"train_unlabel", "test"}
    assert not any("label" in name for name in vars(ctx) if not name.startswith("_"))
