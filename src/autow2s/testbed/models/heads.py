"""Torch linear and MLP heads on feature vectors, with a deterministic training loop."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.base import FitReport
from autow2s.testbed.models.device import resolve_device
from autow2s.testbed.models.head_config import HeadConfig
from autow2s.testbed.models.losses import LossFn, get_loss, xent


@contextmanager
def _intra_op_threads(count: int) -> Iterator[None]:
    """Small heads run fastest on one thread; more only adds spin-waiting when cores are shared."""
    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if previous != count:
            torch.set_num_threads(previous)


class _AdamW:
    """Decoupled-weight-decay Adam for a handful of small tensors.

    Written out because torch.optim's first step imports torch._dynamo (~1 s per process), which
    would dominate short sandboxed jobs that each start a fresh interpreter.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.weight_decay, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.first = [torch.zeros_like(p) for p in params]
        self.second = [torch.zeros_like(p) for p in params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        for p, m, v in zip(self.params, self.first, self.second):
            if p.grad is None:
                continue
            p.mul_(1 - self.lr * self.weight_decay)
            m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (v / correction2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / correction1)


def _build_network(arch: str, input_dim: int, hidden: int) -> nn.Sequential:
    if arch == "linear":
        return nn.Sequential(nn.Linear(input_dim, 1))
    if arch == "mlp":
        return nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    raise AutoW2SError(f"unknown head arch {arch!r}; use 'mlp' or 'linear'")


def _as_matrix(inputs: Any, input_dim: int) -> np.ndarray:
    array = np.asarray(inputs, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != input_dim:
        raise AutoW2SError(f"inputs must have shape (n, {input_dim}); got {array.shape}")
    if not np.isfinite(array).all():
        raise AutoW2SError("inputs contain NaN or inf")
    return array


def _check_vector(name: str, values: np.ndarray | None, n: int) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if array.shape[0] != n:
        raise AutoW2SError(f"{name} has {array.shape[0]} values for {n} inputs; they must match")
    if not np.isfinite(array).all():
        raise AutoW2SError(f"{name} contain NaN or inf")
    return array


class TorchHead:
    """A linear or one-hidden-layer MLP classifier that standardises its inputs."""

    def __init__(self, input_dim: int, config: HeadConfig, seed: int) -> None:
        self.input_dim = input_dim
        self.config = config
        self.seed = seed
        self.device = resolve_device(config.device)
        torch.manual_seed(seed)
        self.network = _build_network(config.arch, input_dim, config.hidden).to(self.device)
        self.mean = np.zeros(input_dim, dtype=np.float32)
        self.scale = np.ones(input_dim, dtype=np.float32)

    # -- inference -----------------------------------------------------------------------
    def _tensor(self, inputs: Any) -> torch.Tensor:
        array = (_as_matrix(inputs, self.input_dim) - self.mean) / self.scale
        return torch.from_numpy(array).to(self.device)

    @torch.no_grad()
    def logits(self, inputs: Any) -> np.ndarray:
        with _intra_op_threads(self.config.threads):
            self.network.eval()
            return self.network(self._tensor(inputs)).squeeze(-1).cpu().numpy()

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """P(label = 1) for each input."""
        return 1.0 / (1.0 + np.exp(-self.logits(inputs).astype(np.float64)))

    @torch.no_grad()
    def features(self, inputs: Any) -> np.ndarray:
        """The representation the head classifies from: hidden activations, or the standardised inputs."""
        with _intra_op_threads(self.config.threads):
            self.network.eval()
            x = self._tensor(inputs)
            if self.config.arch == "mlp":
                x = self.network[1](self.network[0](x))
            return x.cpu().numpy()

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        inputs: Any,
        targets: np.ndarray,
        *,
        loss: str | LossFn = "xent",
        weights: np.ndarray | None = None,
        **loss_params: float,
    ) -> FitReport:
        """Train on soft targets in [0, 1], early-stopping on a held-out slice of these inputs."""
        array = _as_matrix(inputs, self.input_dim)
        n = array.shape[0]
        target_array = _check_vector("targets", targets, n)
        assert target_array is not None
        if (target_array < 0).any() or (target_array > 1).any():
            raise AutoW2SError("targets must be probabilities in [0, 1]")
        weight_array = _check_vector("weights", weights, n)
        if weight_array is not None and ((weight_array < 0).any() or weight_array.sum() <= 0):
            raise AutoW2SError("weights must be non-negative with a positive sum")
        loss_fn = get_loss(loss, **loss_params)
        self.mean = array.mean(axis=0)
        self.scale = array.std(axis=0) + 1e-6
        with _intra_op_threads(self.config.threads):
            return self._train(self._tensor(array), target_array, weight_array, loss_fn)

    def _train(self, x: torch.Tensor, targets: np.ndarray, weights: np.ndarray | None, loss_fn: LossFn) -> FitReport:
        cfg = self.config
        n = x.shape[0]
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(n, generator=generator)
        n_val = int(round(n * cfg.val_frac)) if n >= 20 else 0
        val_idx, train_idx = order[:n_val].to(self.device), order[n_val:].to(self.device)
        y = torch.from_numpy(targets).to(self.device)
        w = torch.from_numpy(weights if weights is not None else np.ones(n, np.float32)).to(self.device)
        optimizer = _AdamW(list(self.network.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, -(-len(train_idx) // cfg.batch_size))
        total_steps = steps_per_epoch * cfg.epochs
        best_state, best_loss, best_epoch, bad_epochs = None, float("inf"), 0, 0
        history: list[float] = []
        step = 0
        for epoch in range(cfg.epochs):
            self.network.train()
            perm = train_idx[torch.randperm(len(train_idx), generator=generator).to(self.device)]
            for start in range(0, len(perm), cfg.batch_size):
                batch = perm[start : start + cfg.batch_size]
                logits = self.network(x[batch]).squeeze(-1)
                per_example = loss_fn(logits, y[batch], step / total_steps)
                batch_w = w[batch]
                loss = (per_example * batch_w).sum() / batch_w.sum().clamp_min(1e-12)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
            if n_val == 0:
                continue
            val_loss = self._val_loss(x[val_idx], y[val_idx], w[val_idx])
            history.append(val_loss)
            if val_loss < best_loss - 1e-5:
                best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
                best_state = copy.deepcopy(self.network.state_dict())
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    break
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return FitReport(epochs_run=epoch + 1, best_epoch=best_epoch, best_val_loss=best_loss, history=history)

    @torch.no_grad()
    def _val_loss(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> float:
        self.network.eval()
        per_example = xent(self.network(x).squeeze(-1), y)
        return float((per_example * w).sum() / w.sum().clamp_min(1e-12))

    # -- persistence ---------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this head, as plain arrays (for the cache and public/)."""
        arrays = {f"param.{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        arrays["mean"], arrays["scale"] = self.mean, self.scale
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> TorchHead:
        state = {k[len("param.") :]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("param.")}
        self.network.load_state_dict(state)
        self.mean, self.scale = np.array(arrays["mean"]), np.array(arrays["scale"])
        return self
