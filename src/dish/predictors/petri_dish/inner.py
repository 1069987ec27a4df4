"""The dish's inner optimiser: K differentiable SGD or Adam steps, so the outer loss can back-propagate through
training into the synthetic data."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dish.hosts.base import Params


def train_inner(params: Params, loss: Callable[[Params], Tensor], steps: int, lr: float, optimizer: str,
                create_graph: bool, clip: float | None = None) -> Params:
    """`params` after `steps` steps of `optimizer` (``sgd``, or ``adam`` with betas (0.9, 0.999) as the authors'
    code) at rate `lr` on `loss`; with `create_graph` the result stays differentiable in whatever `loss` and
    `params` depend on. With `clip`, each member's gradient (the leading dim of every param) is first scaled to
    norm at most `clip`, differentiably, so one member that blows up cannot take a step of any size."""
    with torch.enable_grad():
        params = [p.clone().requires_grad_() for p in params]
        first = [torch.zeros_like(p) for p in params]
        second = [torch.zeros_like(p) for p in params]
        for step in range(1, steps + 1):
            grads = torch.autograd.grad(loss(params), params, create_graph=create_graph)
            if clip is not None:
                grads = clip_per_member(grads, clip)
            if optimizer == "adam":
                first = [0.9 * m + 0.1 * g for m, g in zip(first, grads, strict=True)]
                second = [0.999 * v + 0.001 * g * g for v, g in zip(second, grads, strict=True)]
                grads = [(m / (1 - 0.9**step)) / ((v / (1 - 0.999**step) + 1e-16).sqrt() + 1e-8)
                         for m, v in zip(first, second, strict=True)]
            params = [p - lr * g for p, g in zip(params, grads, strict=True)]
    return params


def clip_per_member(grads: Sequence[Tensor], clip: float) -> list[Tensor]:
    """The gradients with each member's (leading dim) joint norm scaled down to at most `clip`."""
    norms = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
    scale = (clip / (norms + 1e-6)).clamp(max=1.0)
    return [g * scale.view(-1, *[1] * (g.dim() - 1)) for g in grads]
