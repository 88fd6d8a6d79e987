"""`hf-lm`: an HF causal LM with LoRA doing label-token classification, exactly as the anchor does.

A row becomes "Question: ...\\nAnswer: ...\\nLabel:" (or the pairwise A/B form); P(label = 1) is
the two-way softmax of the True/False (B/A) token logits at the label position. LoRA comes from
peft with the anchor's defaults (r=32, alpha=32, every projection). bf16 on CUDA, fp32 on CPU.

Students of one base model share it: each is a named peft adapter on one loaded copy, so a
method that trains five students loads the 4B weights once.
"""

from __future__ import annotations

import json
import warnings
import weakref
from typing import Any, ClassVar

import numpy as np
import torch

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.base import FitReport
from autow2s.testbed.models.device import resolve_device
from autow2s.testbed.models.losses import LossFn, get_loss
from autow2s.testbed.models.text.common import check_rows, check_targets, set_offline_if_local
from autow2s.testbed.models.text.lm_backend import FETCHED_LMS, PROJECTIONS, HFLMBackend, LMConfig, resolve_lm_path
from autow2s.testbed.models.text.lm_batches import (
    PromptCodec,
    binary_logit_and_penalty,
    collate,
    label_hidden,
    label_logits,
    length_grouped_batches,
    random_batches,
)

__all__ = ["FETCHED_LMS", "PROJECTIONS", "HFLMBackend", "LMConfig", "LMStudent", "SharedBase", "resolve_lm_path",
           "training_tokens"]


class SharedBase:
    """One loaded base model and tokenizer; students are peft adapters on it."""

    _instances: ClassVar[dict[tuple[str, str, str, str], SharedBase]] = {}

    def __init__(self, model: Any, tokenizer: Any, model_name: str) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.model.config.use_cache = False
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.peft_model: Any = None
        self.next_id = 0
        name = model_name.lower()
        self.chat_model = any(tag in name for tag in ("chat", "instruct")) and bool(getattr(tokenizer, "chat_template", None))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @staticmethod
    def _key(config: LMConfig, device: torch.device) -> tuple[str, str, str, str]:
        return (config.model, str(device), str(config.torch_dtype(device)), config.attn_implementation)

    @classmethod
    def load(cls, config: LMConfig, device: torch.device) -> SharedBase:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise AutoW2SError("the hf-lm backend needs transformers and peft: `pip install transformers peft`") from None
        hf_logging.disable_progress_bar()
        where, gguf = resolve_lm_path(config.model)
        set_offline_if_local(where)
        extra = {} if gguf is None else {"gguf_file": gguf}
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **extra)
            model = AutoModelForCausalLM.from_pretrained(
                where, dtype=config.torch_dtype(device), attn_implementation=config.attn_implementation, **extra)
        except OSError as exc:
            raise AutoW2SError(f"could not load {config.model!r} ({exc}); pass a local model directory, "
                               "or a hub name on a machine that can reach the hub") from None
        # transformers types PreTrainedModel.to through a functools.wraps wrapper that mypy reads as unbound
        return cls(model.to(device), tokenizer, config.model)  # type: ignore[arg-type]

    @classmethod
    def get(cls, config: LMConfig, device: torch.device) -> SharedBase:
        key = cls._key(config, device)
        if key not in cls._instances:
            cls._instances[key] = cls.load(config, device)
        return cls._instances[key]

    @classmethod
    def register(cls, config: LMConfig, device: torch.device, model: Any, tokenizer: Any) -> None:
        """Use an in-memory model under config.model's name (benchmarks build 4B-shaped ones from a config)."""
        cls._instances[cls._key(config, device)] = cls(model, tokenizer, config.model)

    def add_adapter(self, config: LMConfig, seed: int) -> str:
        from peft import LoraConfig, get_peft_model

        name = f"student{self.next_id}"
        self.next_id += 1
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
        torch.manual_seed(seed)
        if self.peft_model is None:
            self.peft_model = get_peft_model(self.model, lora, adapter_name=name)
        else:
            self.peft_model.add_adapter(name, lora)
        return name

    def activate(self, name: str, train: bool) -> list[torch.nn.Parameter]:
        """Route the forward through adapter `name`; only its weights train. Returns them."""
        self.peft_model.set_adapter(name)
        own = []
        for param_name, parameter in self.peft_model.named_parameters():
            mine = f".{name}." in param_name
            parameter.requires_grad_(mine and train)
            if mine:
                own.append(parameter)
        return own

    def release(self, name: str) -> None:
        try:
            if self.peft_model is not None and name in self.peft_model.peft_config and len(self.peft_model.peft_config) > 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "adapter was active": every student re-activates its own
                    self.peft_model.delete_adapter(name)
        except Exception:  # best effort: a leftover adapter only costs memory
            pass


def _release(base: SharedBase, name: str) -> None:
    base.release(name)


class LMStudent:
    """A LoRA adapter trained on soft targets at the label position."""

    def __init__(self, config: LMConfig, seed: int, kind: str) -> None:
        self.config = config
        self.seed = seed
        self.kind = kind
        self.device = resolve_device(config.device)
        self.base = SharedBase.get(config, self.device)
        self.adapter = self.base.add_adapter(config, seed)
        weakref.finalize(self, _release, self.base, self.adapter)
        use_chat = config.prompt_style == "chat" or (config.prompt_style == "auto" and self.base.chat_model)
        self.codec = PromptCodec(self.base.tokenizer, use_chat, config.max_length)
        self.label_ids = self.codec.label_token_ids(kind)
        self.impl = config.resolved_impl()
        self.trained = False
        self.step_losses: list[float] = []  # one per optimiser step: the loss curve

    @property
    def causal_lm(self) -> Any:
        return self.base.peft_model.get_base_model()

    def _decoder(self) -> Any:
        """The decoder, compiled once per student when config.compile is set (CUDA: fused kernels)."""
        if not self.config.compile:
            return None
        if getattr(self, "_compiled", None) is None:
            self._compiled = torch.compile(self.causal_lm.get_decoder(), dynamic=True)
        return self._compiled

    def _sequences(self, inputs: Any) -> list[list[int]]:
        rows, kind = check_rows(inputs)
        if kind != self.kind:
            raise AutoW2SError(f"this student was built for {self.kind} rows, got {kind} rows")
        return self.codec.encode_all(rows)

    def _batch(self, sequences: list[list[int]], index: np.ndarray) -> dict[str, torch.Tensor]:
        return collate([sequences[i] for i in index], self.impl, int(self.base.tokenizer.pad_token_id), self.device)

    # -- training ------------------------------------------------------------------------
    def fit(self, inputs: Any, targets: np.ndarray, *, loss: str | LossFn = "xent",
            weights: np.ndarray | None = None, **loss_params: float) -> FitReport:
        cfg = self.config
        sequences = self._sequences(inputs)
        target_array, weight_array = check_targets(targets, weights, len(sequences))
        loss_fn = get_loss(loss, **loss_params)
        y = torch.from_numpy(target_array).to(self.device)
        w = torch.from_numpy(weight_array if weight_array is not None else np.ones_like(target_array)).to(self.device)
        params = self.base.activate(self.adapter, train=True)
        model = self.causal_lm
        model.train()
        if cfg.gradient_checkpointing:
            with warnings.catch_warnings():  # renamed activation_checkpointing_* in transformers 5.x
                warnings.simplefilter("ignore", FutureWarning)
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(self.seed)
        plan = [self._epoch_batches(sequences, rng) for _ in range(cfg.epochs)]
        total = max(1, sum(len(p) for p in plan))
        warmup = max(1, int(round(cfg.warmup_ratio * total)))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
        history, step = [], 0
        for batches in plan:
            epoch_loss = 0.0
            for index in batches:
                batch = self._batch(sequences, index)
                logit, penalty = binary_logit_and_penalty(label_logits(model, batch, self.impl, self._decoder()),
                                                         self.label_ids)
                idx = torch.as_tensor(index, device=self.device)
                per_example = loss_fn(logit, y[idx], step / total) + cfg.vocab_penalty * penalty
                batch_w = w[idx]
                value = (per_example * batch_w).sum() / batch_w.sum().clamp_min(1e-12)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                schedule.step()
                step += 1
                self.step_losses.append(float(value.detach()))
                epoch_loss += self.step_losses[-1] * len(index) / len(sequences)
            history.append(epoch_loss)
        if cfg.gradient_checkpointing:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                model.gradient_checkpointing_disable()
        self.base.activate(self.adapter, train=False)
        self.trained = True
        return FitReport(epochs_run=cfg.epochs, best_epoch=cfg.epochs - 1, best_val_loss=float("nan"), history=history)

    def _epoch_batches(self, sequences: list[list[int]], rng: np.random.Generator) -> list[np.ndarray]:
        if self.config.length_grouped:
            return length_grouped_batches([len(s) for s in sequences], self.config.batch_size, rng)
        return random_batches(len(sequences), self.config.batch_size, rng)

    # -- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def _over_batches(self, inputs: Any, what: str) -> np.ndarray:
        sequences = self._sequences(inputs)
        self.base.activate(self.adapter, train=False)
        model = self.causal_lm
        model.eval()
        out: list[np.ndarray] = [np.empty(0)] * len(sequences)
        for index in length_grouped_batches([len(s) for s in sequences], self.config.inference_batch_size, None):
            batch = self._batch(sequences, index)
            if what == "features":
                values = label_hidden(model, batch, self.impl if self.impl != "padded" else "left").float()
            else:
                values = binary_logit_and_penalty(label_logits(model, batch, self.impl, self._decoder()),
                                                  self.label_ids)[0]
            for i, value in zip(index, values.cpu().numpy()):
                out[int(i)] = value
        return np.stack(out).astype(np.float64)

    def logits(self, inputs: Any) -> np.ndarray:
        """logit P(label = 1) = logit(True) - logit(False) (or B - A) at the label position."""
        return self._over_batches(inputs, "logits")

    def predict_proba(self, inputs: Any) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(inputs)))

    def features(self, inputs: Any) -> np.ndarray:
        """The last hidden state at the label position (before any training: the base model's)."""
        return self._over_batches(inputs, "features").astype(np.float32)

    # -- persistence ---------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.base.peft_model, adapter_name=self.adapter)
        arrays = {f"lora.{k}": v.detach().float().cpu().numpy() for k, v in state.items()}
        arrays["meta.model"] = np.array(self.config.model)
        arrays["meta.kind"] = np.array(self.kind)
        arrays["meta.config"] = np.array(json.dumps(self.config.identity()))
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> LMStudent:
        from peft import set_peft_model_state_dict

        dtype = self.config.torch_dtype(self.device)
        state = {k[len("lora."):]: torch.from_numpy(np.array(v)).to(dtype) for k, v in arrays.items() if k.startswith("lora.")}
        if not state:
            raise AutoW2SError("these arrays hold no LoRA weights; were they saved by an hf-lm student?")
        result = set_peft_model_state_dict(self.base.peft_model, state, adapter_name=self.adapter)
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise AutoW2SError(f"stored LoRA weights do not fit {self.config.model!r} (e.g. {unexpected[0]}); "
                               "load them with the model and LoRA settings that trained them")
        self.trained = True
        return self


def training_tokens(student: LMStudent, inputs: Any) -> int:
    """Tokens one epoch over `inputs` processes (for throughput figures)."""
    return int(sum(len(s) for s in student._sequences(inputs)))


