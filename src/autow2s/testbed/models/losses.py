"""Training losses as pure callables: (logits, targets, step_frac) -> per-example loss.

Targets are soft probabilities of the positive class. Adding a loss is one registry entry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from autow2s.errors import UnknownNameError

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def _warmup(step_frac: float, warmup_frac: float) -> float:
    """Linear ramp from 0 to 1 over the first warmup_frac of training."""
    if warmup_frac <= 0:
        return 1.0
    return min(1.0, max(0.0, step_frac) / warmup_frac)


def xent(logits: torch.Tensor, targets: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
    """Cross-entropy against (soft) targets: the vanilla W2S loss."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def _balanced_hard_predictions(logits: torch.Tensor, prior: float = 0.5) -> torch.Tensor:
    """Harden the student's predictions at the quantile that keeps the class prior (Burns et al.)."""
    probs = torch.sigmoid(logits.detach())
    threshold = torch.quantile(probs, 1.0 - prior)
    return (probs > threshold).to(logits.dtype)


def make_logconf(aux_coef: float = 0.5, warmup_frac: float = 0.2) -> LossFn:
    """Auxiliary confidence loss: mix the weak targets with the student's own hardened predictions.

    The mixing weight ramps from 0 to aux_coef over warmup_frac of training, so the student first
    learns from the weak labels and only later trusts itself.
    """

    def logconf(logits: torch.Tensor, targets: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
        coef = aux_coef * _warmup(step_frac, warmup_frac)
        mixed = (1.0 - coef) * targets + coef * _balanced_hard_predictions(logits)
        return F.binary_cross_entropy_with_logits(logits, mixed, reduction="none")

    return logconf


def make_product(alpha: float = 1.0, beta: float = 1.0, warmup_frac: float = 0.1) -> LossFn:
    """Product loss: the target is proportional to weak^alpha * student^beta (beta ramps in)."""

    def product(logits: torch.Tensor, targets: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
        b = beta * _warmup(step_frac, warmup_frac)
        eps = 1e-6
        log_pos = alpha * torch.log(targets.clamp(eps, 1)) + b * F.logsigmoid(logits.detach())
        log_neg = alpha * torch.log((1 - targets).clamp(eps, 1)) + b * F.logsigmoid(-logits.detach())
        mixed = torch.sigmoid(log_pos - log_neg)
        return F.binary_cross_entropy_with_logits(logits, mixed, reduction="none")

    return product


LOSSES: dict[str, Callable[..., LossFn]] = {
    "xent": lambda: xent,
    "logconf": make_logconf,
    "product": make_product,
}


def get_loss(loss: str | LossFn, **params: float) -> LossFn:
    """Look a loss up by name (with parameters) or pass a callable through."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise UnknownNameError(f"unknown loss {loss!r}; known losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[loss](**params)
