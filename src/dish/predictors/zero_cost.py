"""Zero-cost proxies: training-free scores of each motif's ground-truth network at its seeded initialisation, on
one seeded minibatch of the training split, as their papers compute them. Higher is better for all of them.

- ``grad_norm`` (Abdelfattah et al. 2021): the sum over parameter tensors of the loss gradient's L2 norm.
- ``snip`` (Lee et al. 2019, as Abdelfattah et al. sum it): the sum of ``|θ · ∂L/∂θ|``.
- ``synflow`` (Tanaka et al. 2020): the sum of ``|θ · ∂R/∂θ|`` with every parameter replaced by its absolute value
  and ``R`` the sum of the outputs on an all-ones input, in float64 (Abdelfattah et al.'s absolute value: it
  changes nothing where the activations are monotone).
- ``jacob_cov`` (Mellor et al. 2021, the first NASWOT score): ``-Σ log(λ + k) + 1 / (λ + k)`` over the
  eigenvalues λ of the correlation matrix between the samples' Jacobians of the summed outputs w.r.t. the input
  (a language model's embedded tokens, its outputs those of the last recurrent layer), ``k = 1e-5``.
- ``hidden_cov`` (Serianni & Kalita 2023): the same score of the correlation matrix between the first recurrent
  layer's hidden units, over every sample and step of the minibatch (as their code computes it); language models
  only.

The network is the one ground truth trains (``build_module`` of the ground-truth config, its seed); all motifs
are members of one population, scored in one forward and backward pass (members are independent, so the gradient
of the summed losses is each member's own). What is particular to a host (the minibatch, the loss, the input a
Jacobian is taken by, the outputs, the hidden states) is a ``proxy_*`` method of the host class; a proxy applies
to the hosts that have the methods it `needs`. A member whose score is not finite (its forward overflowed, a
constant row in a correlation) scores -inf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from hydra.utils import get_class
from torch import Tensor

from dish.core.errors import POSITIVE_INT, ConfigError
from dish.core.runtime import config_group, instantiate_group
from dish.ground_truth.job import build_module
from dish.motifs.kind import Motif
from dish.predictors.context import PredictorContext

EIGEN_OFFSET = 1e-5
"""Mellor et al.'s k: keeps log and 1/λ finite at the zero eigenvalues of a rank-deficient correlation matrix."""
PerTensor = Callable[[Tensor, Tensor], Tensor]
"""(each member's flattened parameter (P, n), its gradient (P, n)) -> the member's share of the score (P,)."""


class ZeroCostProxy:
    """One proxy, computed on the motifs' ground-truth network at initialisation (`context.ground_truth`, which
    must be of the motifs' kind) on a minibatch of `batch_size` samples (a language model's: windows of its bptt
    tokens). A motif is scored once per instance; `fit` learns nothing and spends no ground truth."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ("proxy_batch", "proxy_inputs", "proxy_outputs")
    """The host methods the proxy calls."""
    uses_training_scores = False

    def __init__(self, context: PredictorContext, batch_size: int = 64) -> None:
        POSITIVE_INT.check("batch_size", batch_size)
        if not self.applies_to(context.motif_type):
            raise not_applicable(self.name, context.motif_type)
        cfg = context.ground_truth
        if cfg is None:
            raise ConfigError("predictors", f"{self.name} computes on the ground truth's network and got no "
                              "ground-truth config", accepted=["a comparison, which passes its ground-truth config"])
        if get_class(cfg.motif._target_) is not context.motif_type:
            raise ConfigError("gt.build", f"{self.name} scores motif kind {context.motif_type.kind!r} but the "
                              f"ground-truth config is of {cfg.motif._target_}",
                              accepted=[f"the overrides that train the table (motif={context.motif_type.kind} ...)"])
        self.cfg, self.batch_size = cfg, batch_size
        self.datamodule: Any = None
        self.scored: dict[str, float] = {}

    @classmethod
    def applies_to(cls, motif_type: type[Motif]) -> bool:
        """Whether the ground-truth host of `motif_type` offers every method the proxy `needs`."""
        return all(callable(getattr(motif_type.ground_truth, method, None)) for method in cls.needs)

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        """Nothing to learn: a proxy reads no ground truth."""

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        """The motifs' scores (float64, higher = better, -inf where not finite); the motifs not scored yet are
        scored as one population."""
        todo = list({motif.key: motif for motif in motifs if motif.key not in self.scored}.values())
        if todo:
            data = self._data()
            host = build_module(self.cfg, todo, data)
            batch = host.proxy_batch(data, self.batch_size, torch.Generator().manual_seed(self.cfg.seed))
            values = self.scores(host, batch).detach().double().cpu().numpy()
            self.scored.update({motif.key: float(value) for motif, value in zip(todo, values, strict=True)})
        predicted = np.array([self.scored[motif.key] for motif in motifs], dtype=np.float64)
        return np.where(np.isfinite(predicted), predicted, -np.inf)

    def scores(self, host: Any, batch: Any) -> Tensor:
        """Every member's score (P,) on the freshly built `host` and its minibatch `batch`."""
        raise NotImplementedError

    def _data(self) -> Any:
        """The ground truth's datamodule, set up for fitting (once)."""
        if self.datamodule is None:
            datamodule = instantiate_group(self.cfg, "data")
            with config_group("data"):
                datamodule.prepare_data()
                datamodule.setup("fit")
            self.datamodule = datamodule
        return self.datamodule


def parameter_sum(host: Any, members: int, per_tensor: PerTensor) -> Tensor:
    """`per_tensor` summed over the host's parameters with a gradient, for each member: (P,) in float64. Every
    parameter has the population as its leading dim (a population of one may have none)."""
    total = torch.zeros(members, dtype=torch.float64)
    for parameter in host.parameters():
        if parameter.grad is not None:
            share = per_tensor(parameter.detach().reshape(members, -1), parameter.grad.reshape(members, -1))
            total += share.double().cpu()
    return total


def saliency(parameter: Tensor, grad: Tensor) -> Tensor:
    """Each member's sum of ``|θ · ∂/∂θ|``."""
    return (parameter * grad).abs().sum(1)


def correlation_score(rows: Tensor) -> Tensor:
    """``-Σ log(λ + k) + 1 / (λ + k)`` over the eigenvalues λ of each member's correlation matrix between its rows
    (P, N, D) (numpy's corrcoef of the rows), in float64: at most -N (uncorrelated rows), very low when rows are
    alike; NaN where a row is constant."""
    rows = rows.double()
    centred = rows - rows.mean(-1, keepdim=True)
    normed = centred / centred.norm(dim=-1, keepdim=True)
    correlation = normed @ normed.transpose(1, 2)
    finite = torch.isfinite(correlation).flatten(1).all(1)
    eye = torch.eye(rows.shape[1], dtype=torch.float64)
    eigenvalues = torch.linalg.eigvalsh(torch.where(finite[:, None, None], correlation, eye))
    shifted = eigenvalues + EIGEN_OFFSET
    return torch.where(finite, -(shifted.log() + 1 / shifted).sum(1), torch.nan)


class LossGradientProxy(ZeroCostProxy):
    """A score summed over parameter tensors from each tensor and the minibatch loss's gradient (`per_tensor`)."""

    needs = ("proxy_batch", "proxy_losses")
    per_tensor: ClassVar[PerTensor]

    def scores(self, host: Any, batch: Any) -> Tensor:
        losses = host.proxy_losses(batch)
        losses.sum().backward()
        return parameter_sum(host, len(losses), self.per_tensor)


class GradNorm(LossGradientProxy):
    """Sum over parameter tensors of the L2 norm of the minibatch loss's gradient."""

    name = "grad_norm"
    per_tensor = staticmethod(lambda parameter, grad: grad.norm(dim=1))


class Snip(LossGradientProxy):
    """Sum of ``|θ · ∂L/∂θ|`` of the minibatch loss L (connection sensitivity)."""

    name = "snip"
    per_tensor = staticmethod(saliency)


class Synflow(ZeroCostProxy):
    """Sum of ``|θ · ∂R/∂θ|`` with |θ| for every parameter and R the summed outputs on one all-ones input sample,
    in float64 (the host is built for this score alone, so it is changed in place)."""

    name = "synflow"

    def scores(self, host: Any, batch: Any) -> Tensor:
        host.double()
        with torch.no_grad():
            for parameter in host.parameters():
                parameter.abs_()
        ones = torch.ones_like(host.proxy_inputs(batch)[:, :1], dtype=torch.float64)
        host.proxy_outputs(ones).sum().backward()
        return parameter_sum(host, len(ones), saliency)


class JacobCov(ZeroCostProxy):
    """Mellor et al.'s score of the correlations between the samples' input Jacobians of the summed outputs."""

    name = "jacob_cov"

    def scores(self, host: Any, batch: Any) -> Tensor:
        inputs = host.proxy_inputs(batch).requires_grad_()
        host.proxy_outputs(inputs).sum().backward()
        return correlation_score(inputs.grad.flatten(2))


class HiddenCov(ZeroCostProxy):
    """Serianni & Kalita's score of the correlations between the first recurrent layer's hidden units, each a row
    of its values over the minibatch's samples and steps."""

    name = "hidden_cov"
    needs = ("proxy_batch", "proxy_inputs", "proxy_hidden_states")

    def scores(self, host: Any, batch: Any) -> Tensor:
        with torch.no_grad():
            states = host.proxy_hidden_states(host.proxy_inputs(batch))  # (P, samples, steps, units)
        return correlation_score(states.flatten(1, 2).transpose(1, 2))


PROXIES: dict[str, type[ZeroCostProxy]] = {proxy.name: proxy for proxy in (GradNorm, Snip, Synflow, JacobCov,
                                                                            HiddenCov)}


def proxy_applies(name: str, motif_type: type[Motif]) -> bool:
    """Whether proxy `name` is defined on the ground-truth host of `motif_type`."""
    if name not in PROXIES:
        raise ConfigError("predictors", f"unknown zero-cost proxy {name!r}", accepted=PROXIES)
    return PROXIES[name].applies_to(motif_type)


def not_applicable(name: str, motif_type: type[Motif]) -> ConfigError:
    """The one-line error for proxy `name` asked of a motif kind whose host it is not defined on."""
    return ConfigError("predictors", f"{name} does not apply to motif kind {motif_type.kind!r}",
                       accepted=[other for other in PROXIES if proxy_applies(other, motif_type)])
