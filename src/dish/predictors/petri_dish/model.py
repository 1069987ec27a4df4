"""The Synthetic Petri Dish: learned synthetic data on which tiny motif-networks are trained to rank motifs.

Bilevel training. Inner loop: every motif instantiates the same tiny motif-network (one shared, seeded
initialisation), trains it for K differentiable SGD (or Adam) steps on the synthetic training samples, and is scored by
its loss on the synthetic validation samples. Outer loop: the MSE between the z-scored (negated) dish
validation losses and the z-scored ground-truth scores of the same motifs, back-propagated through the unrolled
inner loop into the synthetic samples. All motifs of a batch run at once: weights carry a leading motif dim.

An ensemble of dishes (independent synthetic data and initialisations) trains as one batch too: members are
(replica, motif) pairs. Its score is the replicas' mean (or median, `ensemble_score`), each replica standardised
by its own losses on the training motifs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dish.core.stats import zscore
from dish.hosts.base import Params
from dish.motifs.kind import Motif
from dish.predictors.petri_dish.inner import train_inner
from dish.predictors.petri_dish.options import check_dish_options


@dataclass(frozen=True)
class DishScores:
    """What a dish says of some motifs: scores (higher = better), their ranking, the raw dish losses, which
    diverged, the spread of an ensemble's replicas (the sd of their standardised scores; 0 for one dish) and
    each replica's own scores (replicas, motifs; a diverged motif -inf)."""

    scores: np.ndarray
    ranking: np.ndarray
    losses: np.ndarray
    diverged: np.ndarray
    spread: np.ndarray
    replica_scores: np.ndarray


def balanced_targets(num_samples: int, outputs: int, generator: torch.Generator) -> Tensor:
    """0/1 targets, half of each column ones, in a seeded random order."""
    columns = [torch.randperm(num_samples, generator=generator) % 2 for _ in range(outputs)]
    return torch.stack(columns, 1).float()


MIN_KEPT = 3
"""The fewest training motifs an outer step ranks (fewer, and the step is skipped)."""


class PetriDish(pl.LightningModule):
    """A Petri dish for one motif kind; `training_step` runs the inner loop and returns the outer MSE.

    Motif-network: ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with the motif's activation after every hidden
    layer, and after the output layer too when `output_activation` (the authors' ``[10, 1, 1, 10]``);
    otherwise the read-out is linear. Synthetic inputs (training and validation) are learned; targets are fixed,
    balanced 0/1 (learned too with `learn_targets`). The inner loop is plain SGD on MSE by default; the authors'
    code used Adam on binary cross-entropy (outputs as logits) from small Gaussian weights (`init_scale`).

    `ensemble` dishes, each with its own seeded synthetic data and initialisation, train side by side; the outer
    loss is their mean. `input_scale` sets the spread of the initial synthetic inputs and `weight_gain` multiplies
    the motif-network's initial weight matrices (not its biases). `chance_penalty` adds
    that weight times the mean excess of training-motif dish losses over the chance level: a motif-network that
    ends worse than always answering 0.5 has not learned, so the dish is kept from ranking by it. `inner_clip`
    scales each member's inner gradient to that norm at most (cells that blow up in one step otherwise), and
    ``readout: sigmoid`` squashes the motif-network's outputs into (0, 1), so that an MSE on the 0/1 targets is
    at most 1: with both, no inner step is larger than the rate and no loss can reach the divergence threshold.
    """

    def __init__(self, motif_type: type[Motif], train_motifs: Sequence[Motif], sizes: Sequence[int] = (2, 1, 1, 1),
                 output_activation: bool = False, num_samples: int = 20, inner_steps: int = 30,
                 inner_lr: float = 0.5, outer_lr: float = 0.1, lr_decay: float = 1.0,
                 learn_targets: bool = False, divergence_factor: float = 10.0, inner_optimizer: str = "sgd",
                 loss: str = "mse", init_scale: float | None = None, sequence_length: int = 5,
                 ensemble: int = 1, ensemble_score: str = "mean", input_scale: float = 1.0,
                 chance_penalty: float = 0.0, weight_gain: float = 1.0, inner_clip: float | None = None,
                 readout: str = "linear", seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["motif_type", "train_motifs"])
        check_dish_options(self.hparams)
        self.motif_type = motif_type
        self.train_motifs = list(train_motifs)
        self.train_population = self.population(self.train_motifs)
        self.network = motif_type.dish_network
        sample_shape = self.network.sample_shape(sizes, sequence_length)
        replicas = [self._replica(seed + 1_000_003 * replica, sizes, sample_shape) for replica in range(ensemble)]
        self.x_train, self.x_val, self.y_train, self.y_val = (
            nn.Parameter(torch.stack([r[name] for r in replicas]), requires_grad=name.startswith("x") or learn_targets)
            for name in ("x_train", "x_val", "y_train", "y_val"))
        for name in replicas[0]["weights"]:
            self.register_buffer(name, torch.stack([r["weights"][name] for r in replicas]))
        self.names = list(replicas[0]["weights"])
        # The loss of always answering 0.5 on balanced 0/1 targets; far above it means the inner loop blew up.
        self.chance_loss = 0.25 if loss == "mse" else math.log(2)
        self.max_dish_loss = 0.0
        self.diverged_steps = 0
        self.counted_step = -1
        self.kept_populations: dict[tuple[int, ...], nn.Module] = {}

    def synthetic_data(self) -> dict[str, Tensor]:
        """The learned synthetic samples and targets, by state-dict name (what a warm start carries over)."""
        return {name: getattr(self, name).detach().clone() for name in ("x_train", "x_val", "y_train", "y_val")}

    def _replica(self, seed: int, sizes: Sequence[int], sample_shape: tuple[int, ...]) -> dict:
        """One dish's seeded synthetic data and motif-network initialisation."""
        generator = torch.Generator().manual_seed(seed)
        samples, scale = self.hparams.num_samples, self.hparams.input_scale
        replica: dict = {"x_train": torch.randn(samples, *sample_shape, generator=generator) * scale,
                         "x_val": torch.randn(samples, *sample_shape, generator=generator) * scale,
                         "y_train": balanced_targets(samples, sizes[-1], generator),
                         "y_val": balanced_targets(samples, sizes[-1], generator)}
        weights = self.network.init_weights(sizes, self.hparams.init_scale, generator, self.train_population)
        gain = self.hparams.weight_gain
        replica["weights"] = {name: value if name.startswith("b") else value * gain for name, value in weights.items()}
        return replica

    def population(self, motifs: Sequence[Motif]) -> nn.Module:
        """The motifs once per ensemble replica, replica-major: member ``r * len(motifs) + i``."""
        return self.motif_type.population(list(motifs) * self.hparams.ensemble)

    @staticmethod
    def per_member(replicated: Tensor, motifs: int) -> Tensor:
        """(replicas, ...) -> (replicas * motifs, ...): each replica's tensor for each of its motifs."""
        return replicated[:, None].expand(-1, motifs, *replicated.shape[1:]).flatten(0, 1)

    def initial_params(self, motifs: int) -> Params:
        """Each replica's initialisation, one copy per motif."""
        return [self.per_member(getattr(self, name), motifs) for name in self.names]

    def motif_network(self, params: Params, x: Tensor, motifs: nn.Module) -> Tensor:
        """Outputs (members, samples, out) of every member's motif-network (the kind's `dish_network`), through a
        sigmoid with ``readout: sigmoid``."""
        outputs = self.network.forward(params, x, motifs, self.hparams.output_activation)
        return torch.sigmoid(outputs) if self.hparams.readout == "sigmoid" else outputs

    def member_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Each member's mean loss: MSE, or binary cross-entropy with the outputs taken as logits."""
        if self.hparams.loss == "bce":
            targets = targets.expand_as(outputs)
            return F.binary_cross_entropy_with_logits(outputs, targets, reduction="none").mean((1, 2))
        return (outputs - targets).pow(2).mean((1, 2))

    def dish_losses(self, motifs: nn.Module, population: int, create_graph: bool) -> Tensor:
        """Validation loss of every member's network after the inner loop; (replicas, P) for `motifs` built by
        `population` from P motifs."""
        x_train, y_train, x_val, y_val = (self.per_member(data, population)
                                          for data in (self.x_train, self.y_train, self.x_val, self.y_val))
        def train_loss(params: Params) -> Tensor:
            return self.member_loss(self.motif_network(params, x_train, motifs), y_train).sum()

        params = train_inner(self.initial_params(population), train_loss, self.hparams.inner_steps,
                             self.hparams.inner_lr, self.hparams.inner_optimizer, create_graph,
                             self.hparams.inner_clip)
        losses = self.member_loss(self.motif_network(params, x_val, motifs), y_val)
        return losses.view(self.hparams.ensemble, population)

    def diverged(self, losses: Tensor) -> Tensor:
        """Members whose inner loop blew up: non-finite loss or far above the synthetic task's chance level."""
        return ~torch.isfinite(losses) | (losses > self.hparams.divergence_factor * self.chance_loss)

    def training_step(self, scores: Tensor, batch_idx: int) -> Tensor | None:
        """The outer MSE over the training motifs. Motifs whose inner loop blew up in this step are left out: the
        step is rerun on the others (their values never meet the others' gradients), and skipped (None) when fewer
        than `MIN_KEPT` remain."""
        losses = self.dish_losses(self.train_population, len(scores), create_graph=True)
        self._note_losses(losses)
        diverged = self.diverged(losses).any(0)
        if diverged.any():
            self._count_diverged_step()
            kept = (~diverged).nonzero().flatten().tolist()
            if len(kept) < MIN_KEPT:
                return None
            population = self.kept_population(tuple(kept))
            losses, scores = self.dish_losses(population, len(kept), create_graph=True), scores[kept]
            if self.diverged(losses).any():
                return None
        outer = F.mse_loss(zscore(-losses), zscore(scores).expand_as(losses))
        if self.hparams.chance_penalty:
            outer = outer + self.hparams.chance_penalty * torch.relu(losses - self.chance_loss).mean()
        self.log("train/outer_loss", outer, prog_bar=True)
        return outer

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip an outer step whose gradient is not finite, as mixed-precision training does: a motif that
        overflows inside (an exp of an exp) can leave its squashed loss finite and its backward NaN, and one NaN
        step would turn the synthetic data, and every later step, into NaN."""
        learned = [p for p in self.parameters() if p.grad is not None]
        if all(bool(torch.isfinite(p.grad).all()) for p in learned):
            return
        for p in learned:
            p.grad = None  # the optimizer leaves a parameter without a gradient as it is
        self._count_diverged_step()

    def _count_diverged_step(self) -> None:
        """Count this outer step once among those where something blew up."""
        if self.counted_step != self.current_epoch:
            self.counted_step = self.current_epoch
            self.diverged_steps += 1
            self.log("train/diverged_steps", float(self.diverged_steps))

    def kept_population(self, kept: tuple[int, ...]) -> nn.Module:
        """The population module of the training motifs at positions `kept` (built once per subset)."""
        if kept not in self.kept_populations:
            self.kept_populations[kept] = self.population([self.train_motifs[i] for i in kept]).to(self.device)
        return self.kept_populations[kept]

    def progress(self) -> tuple[float, str]:
        """Outer steps done, and the last outer loss."""
        done, total = self.current_epoch + 1, self.trainer.max_epochs
        loss = self.trainer.callback_metrics.get("train/outer_loss")
        return done / total, f"outer step {done}/{total}" + ("" if loss is None else f", outer loss {float(loss):.4g}")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dish_health"] = {"max_dish_loss": self.max_dish_loss, "diverged_steps": self.diverged_steps}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.max_dish_loss = checkpoint["dish_health"]["max_dish_loss"]
        self.diverged_steps = checkpoint["dish_health"]["diverged_steps"]

    def _note_losses(self, losses: Tensor) -> None:
        worst = float(losses.detach().max()) if bool(torch.isfinite(losses).all()) else math.inf
        self.max_dish_loss = max(self.max_dish_loss, worst)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.outer_lr)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def score(self, motifs: Sequence[Motif]) -> DishScores:
        """Score any motifs in one batched call (higher = better) and rank them (best first). A single dish
        scores by its negated loss; an ensemble by the mean (or, with `ensemble_score: median`, the median, which
        one replica that extrapolates wildly cannot sway) over replicas of each replica's negated loss
        standardised by its losses on the training motifs. A motif whose inner loop diverged scores -inf, the
        worst. `losses` are the replicas' mean."""
        references = self.train_motifs if self.hparams.ensemble > 1 else []
        batch = [*references, *motifs]  # an ensemble's training motifs ride along in the same batched call
        with torch.no_grad():
            losses = self.dish_losses(self.population(batch).to(self.device), len(batch), create_graph=False)
            reference, losses = losses.split([len(references), len(motifs)], dim=1)
            if self.hparams.ensemble == 1:
                standardised = -losses
                scores, spread = -losses[0], torch.zeros_like(losses[0])
            else:
                mean, std = reference.mean(1, keepdim=True), reference.std(1, correction=0, keepdim=True)
                standardised = (mean - losses) / std.clamp_min(1e-8)
                scores = (standardised.mean(0) if self.hparams.ensemble_score == "mean"
                          else torch.quantile(standardised, 0.5, dim=0))
                spread = standardised.std(0, correction=0)
        self._note_losses(losses)
        diverged = self.diverged(losses).any(0).cpu().numpy()
        scores = np.where(diverged, -np.inf, scores.cpu().double().numpy())  # a motif that blows up is the worst
        replicas = np.where(diverged, -np.inf, standardised.cpu().double().numpy())
        return DishScores(scores, np.argsort(-scores, kind="stable"), losses.mean(0).cpu().double().numpy(), diverged,
                          spread.cpu().double().numpy(), replicas)


