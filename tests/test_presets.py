"""The default preset resists unsupervised clustering: a method that clusters the strong features and
takes only a sign from the weak labels must not beat the ceiling (issue 12, section 4).

The clustering method is scripts/retune_presets.py's (a): 2-component GMMs on the top principal
components, the split that is a real cluster and agrees best with the weak labels, oriented by them.
The same method beats the ceiling on the preset's former knobs (a clean two-cluster truth), which
shows the check can fail.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.experiment import ExperimentSettings, run_experiment
from autow2s.testbed.methods.registry import Method
from autow2s.testbed.tasks.registry import PRESETS
from autow2s.testbed.tasks.synthetic import generate

SIZES = {"n_train_label": 300, "n_train_unlabel": 2500, "n_test": 1500}
FORMER = {"hidden_weight": 0.0, "nuisance_visibility": 0.95}  # synth-linear's knobs before 2026-12-01


def _clustering_method() -> Method:
    path = Path(__file__).resolve().parents[1] / "scripts" / "retune_presets.py"
    spec = importlib.util.spec_from_file_location("retune_presets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Method("cluster-gmm", "GMM clusters oriented by the weak labels", module.run_gmm_cluster)


def _cluster_vs_ceiling(tmp_path: Path, **knobs: float) -> tuple[float, float, float]:
    task = generate("synth-linear", PRESETS["synth-linear"].with_overrides(**(SIZES | knobs)))
    result = run_experiment(task, _clustering_method(), [0], cache=ArtifactCache(tmp_path),
                            settings=ExperimentSettings(n_boot=50))
    return result.transfer_acc, result.ceiling_acc, result.weak_acc


def test_clustering_does_not_beat_the_ceiling_on_the_default_preset(tmp_path: Path) -> None:
    cluster, ceiling, weak = _cluster_vs_ceiling(tmp_path / "now")
    assert ceiling - weak >= 0.1, (weak, ceiling)
    assert cluster < ceiling - 0.03, f"clustering {cluster:.3f} vs ceiling {ceiling:.3f}"
    # The check has teeth: on the former knobs the same method reaches the ceiling.
    former, former_ceiling, _ = _cluster_vs_ceiling(tmp_path / "former", **FORMER)
    assert former > former_ceiling - 0.03, f"clustering {former:.3f} vs ceiling {former_ceiling:.3f}"
