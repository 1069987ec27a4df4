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

import hashlib
import inspect
import itertools
import json
import math
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from torch import Tensor, nn

from dish.cells import RecurrentCell
from dish.errors import BOOLEAN, NON_NEGATIVE, POSITIVE, POSITIVE_INT, ConfigError, Rule, one_of
from dish.motifs import Motif
from dish.runtime import progress_callback

Params = list[Tensor]
DISH_RULES: dict[str, Rule] = {
    **dict.fromkeys(("num_samples", "inner_steps", "sequence_length", "ensemble", "steps"), POSITIVE_INT),
    **dict.fromkeys(("inner_lr", "outer_lr", "lr_decay", "divergence_factor", "input_scale", "weight_gain"),
                    POSITIVE),
    "chance_penalty": NON_NEGATIVE, "init_scale": POSITIVE.or_null(), "gradient_clip_val": NON_NEGATIVE.or_null(),
    "output_activation": BOOLEAN, "learn_targets": BOOLEAN, "resume": BOOLEAN, "warm_start": BOOLEAN,
    "inner_optimizer": one_of("sgd", "adam"), "loss": one_of("mse", "bce"), "ensemble_score": one_of("mean", "median"),
}
"""What each option of `PetriDish` and `DishPredictor` accepts."""


@dataclass(frozen=True)
class DishScores:
    """What a dish says of some motifs: scores (higher = better), their ranking and the raw dish losses."""

    scores: np.ndarray
    ranking: np.ndarray
    losses: np.ndarray
    diverged: np.ndarray


class MotifTable:
    """A training table as the dish's data: one item per epoch, the ground-truth scores of the training motifs
    (in the order the dish was built with)."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = torch.as_tensor(np.asarray(scores, dtype=np.float64), dtype=torch.float32)

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Tensor]:
        yield self.scores


def balanced_targets(num_samples: int, outputs: int, generator: torch.Generator) -> Tensor:
    """0/1 targets, half of each column ones, in a seeded random order."""
    columns = [torch.randperm(num_samples, generator=generator) % 2 for _ in range(outputs)]
    return torch.stack(columns, 1).float()


def zscore(values: Tensor) -> Tensor:
    """Standardise along the last dim (population std); a constant row maps to zeros."""
    centred = values - values.mean(-1, keepdim=True)
    return centred / centred.std(-1, correction=0, keepdim=True).clamp_min(1e-8)


def check_dish_options(options: Mapping[str, Any]) -> None:
    """Raise a `ConfigError` naming ``dish.<option>`` for the first option value a dish cannot use."""
    for name, value in options.items():
        if name in DISH_RULES:
            DISH_RULES[name].check(f"dish.{name}", value)
    sizes = options.get("sizes", [1, 1])
    if not (isinstance(sizes, Sequence) and len(sizes) >= 2 and all(POSITIVE_INT.test(size) for size in sizes)):
        raise ConfigError("dish.sizes", f"got {sizes!r}", accepted=["a list of at least two integers >= 1"])


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
    ends worse than always answering 0.5 has not learned, so the dish is kept from ranking by it.
    """

    def __init__(self, motif_type: type[Motif], train_motifs: Sequence[Motif], sizes: Sequence[int] = (2, 1, 1, 1),
                 output_activation: bool = False, num_samples: int = 20, inner_steps: int = 30,
                 inner_lr: float = 0.5, outer_lr: float = 0.1, lr_decay: float = 1.0,
                 learn_targets: bool = False, divergence_factor: float = 10.0, inner_optimizer: str = "sgd",
                 loss: str = "mse", init_scale: float | None = None, sequence_length: int = 5,
                 ensemble: int = 1, ensemble_score: str = "mean", input_scale: float = 1.0,
                 chance_penalty: float = 0.0, weight_gain: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["motif_type", "train_motifs"])
        check_dish_options(self.hparams)
        self.motif_type = motif_type
        self.train_motifs = list(train_motifs)
        self.train_population = self.population(self.train_motifs)
        self.recurrent = issubclass(motif_type, RecurrentCell)
        sample_shape = (sequence_length, sizes[0]) if self.recurrent else (sizes[0],)
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
        if self.recurrent:
            nodes = len(self.train_motifs[0].nodes)  # type: ignore[attr-defined]
            weights = self._cell_weights(sizes, nodes, self.hparams.init_scale, generator)
        else:
            weights = self._mlp_weights(sizes, self.hparams.init_scale, generator)
        gain = self.hparams.weight_gain
        replica["weights"] = {name: value if name.startswith("b") else value * gain for name, value in weights.items()}
        return replica

    def population(self, motifs: Sequence[Motif]) -> nn.Module:
        """The motifs once per ensemble replica, replica-major: member ``r * len(motifs) + i``."""
        return self.motif_type.population(list(motifs) * self.hparams.ensemble)

    @staticmethod
    def _mlp_weights(sizes: Sequence[int], init_scale: float | None, generator: torch.Generator) -> dict:
        weights = {}
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            if init_scale is None:  # PyTorch's nn.Linear scheme
                bound = 1 / math.sqrt(fan_in)
                weight = (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound
                bias = (torch.rand(1, fan_out, generator=generator) * 2 - 1) * bound
            else:  # the authors' scheme: small Gaussian weights
                weight = torch.randn(fan_in, fan_out, generator=generator) * init_scale
                bias = torch.randn(1, fan_out, generator=generator) * init_scale
            weights[f"w{index}"], weights[f"b{index}"] = weight, bias
        return weights

    @staticmethod
    def _cell_weights(sizes: Sequence[int], nodes: int, init_scale: float | None,
                      generator: torch.Generator) -> dict:
        """The cell's weights (node 0 and nodes 1..N) and a linear read-out of its last state."""
        if len(sizes) != 3:
            raise ConfigError("dish.sizes", f"a cell dish takes [inputs, hidden, outputs], got {list(sizes)}")
        inputs, hidden, outputs = sizes
        scale = init_scale if init_scale is not None else 1 / math.sqrt(hidden)
        shapes = {"w0": (inputs + hidden, 2 * hidden), "ws": (nodes, hidden, 2 * hidden), "w_out": (hidden, outputs),
                  "b_out": (1, outputs)}
        return {name: (torch.rand(*shape, generator=generator) * 2 - 1) * scale for name, shape in shapes.items()}

    @staticmethod
    def per_member(replicated: Tensor, motifs: int) -> Tensor:
        """(replicas, ...) -> (replicas * motifs, ...): each replica's tensor for each of its motifs."""
        return replicated[:, None].expand(-1, motifs, *replicated.shape[1:]).flatten(0, 1)

    def initial_params(self, motifs: int) -> Params:
        """Each replica's initialisation, one copy per motif."""
        return [self.per_member(getattr(self, name), motifs) for name in self.names]

    def motif_network(self, params: Params, x: Tensor, motifs: nn.Module) -> Tensor:
        """Outputs (members, samples, out) of every member's network on its replica's inputs x: (members, samples,
        in) for activations (an MLP), (members, samples, steps, in) for cells (the cell unrolled from a zero
        state, then a linear read-out)."""
        if self.recurrent:
            w0, ws, w_out, b_out = params
            state, node_weights = x.new_zeros(*x.shape[:2], w_out.shape[1]), ws.unbind(1)
            for inputs in x.unbind(2):
                state = motifs(inputs, state, w0, node_weights)
            return torch.baddbmm(b_out, state, w_out)
        h = x
        layers = len(params) // 2
        for index in range(layers):
            h = torch.baddbmm(params[2 * index + 1], h, params[2 * index])
            if index < layers - 1 or self.hparams.output_activation:
                h = motifs(h)
        return h

    def member_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Each member's mean loss: MSE, or binary cross-entropy with the outputs taken as logits."""
        if self.hparams.loss == "bce":
            targets = targets.expand_as(outputs)
            return F.binary_cross_entropy_with_logits(outputs, targets, reduction="none").mean((1, 2))
        return (outputs - targets).pow(2).mean((1, 2))

    def dish_losses(self, motifs: nn.Module, population: int, create_graph: bool) -> Tensor:
        """Validation loss of every member's network after the inner loop; (replicas, P) for `motifs` built by
        `population` from P motifs."""
        lr = self.hparams.inner_lr
        x_train, y_train, x_val, y_val = (self.per_member(data, population)
                                          for data in (self.x_train, self.y_train, self.x_val, self.y_val))
        with torch.enable_grad():
            params = [p.clone().requires_grad_() for p in self.initial_params(population)]
            first = [torch.zeros_like(p) for p in params]
            second = [torch.zeros_like(p) for p in params]
            for step in range(1, self.hparams.inner_steps + 1):
                loss = self.member_loss(self.motif_network(params, x_train, motifs), y_train).sum()
                grads = torch.autograd.grad(loss, params, create_graph=create_graph)
                if self.hparams.inner_optimizer == "adam":  # differentiable Adam (0.9, 0.999), as the authors'
                    first = [0.9 * m + 0.1 * g for m, g in zip(first, grads, strict=True)]
                    second = [0.999 * v + 0.001 * g * g for v, g in zip(second, grads, strict=True)]
                    grads = [(m / (1 - 0.9**step)) / ((v / (1 - 0.999**step) + 1e-16).sqrt() + 1e-8)
                             for m, v in zip(first, second, strict=True)]
                params = [p - lr * g for p, g in zip(params, grads, strict=True)]
        losses = self.member_loss(self.motif_network(params, x_val, motifs), y_val)
        return losses.view(self.hparams.ensemble, population)

    def diverged(self, losses: Tensor) -> Tensor:
        """Members whose inner loop blew up: non-finite loss or far above the synthetic task's chance level."""
        return ~torch.isfinite(losses) | (losses > self.hparams.divergence_factor * self.chance_loss)

    def training_step(self, scores: Tensor, batch_idx: int) -> Tensor | None:
        losses = self.dish_losses(self.train_population, len(scores), create_graph=True)
        self._note_losses(losses)
        if self.diverged(losses).any():
            self.diverged_steps += 1
            self.log("train/diverged_steps", float(self.diverged_steps))
            return None
        outer = F.mse_loss(zscore(-losses), zscore(scores).expand_as(losses))
        if self.hparams.chance_penalty:
            outer = outer + self.hparams.chance_penalty * torch.relu(losses - self.chance_loss).mean()
        self.log("train/outer_loss", outer, prog_bar=True)
        return outer

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
        standardised by its losses on the training motifs. `losses` are the replicas' mean."""
        references = self.train_motifs if self.hparams.ensemble > 1 else []
        batch = [*references, *motifs]  # an ensemble's training motifs ride along in the same batched call
        with torch.no_grad():
            losses = self.dish_losses(self.population(batch).to(self.device), len(batch), create_graph=False)
            reference, losses = losses.split([len(references), len(motifs)], dim=1)
            if self.hparams.ensemble == 1:
                scores = -losses[0]
            else:
                mean, std = reference.mean(1, keepdim=True), reference.std(1, correction=0, keepdim=True)
                standardised = (mean - losses) / std.clamp_min(1e-8)
                scores = (standardised.mean(0) if self.hparams.ensemble_score == "mean"
                          else torch.quantile(standardised, 0.5, dim=0))
        self._note_losses(losses)
        scores = scores.cpu().double().numpy()
        return DishScores(scores, np.argsort(-scores, kind="stable"), losses.mean(0).cpu().double().numpy(),
                          self.diverged(losses).any(0).cpu().numpy())


def dish_label(options: Mapping[str, Any]) -> str:
    """How reports name a dish setting: motif-network sizes, inner steps and rate, then every other `PetriDish`
    option that differs from its default, e.g. ``dish[2, 1, 1, 1]x30@0.5 ensemble=8 input_scale=6.0``."""
    named = ("self", "motif_type", "train_motifs", "seed", "sizes", "inner_steps", "inner_lr")
    defaults = {key: parameter.default for key, parameter in inspect.signature(PetriDish.__init__).parameters.items()
                if key not in named}
    changed = [f"{key}={options[key]}" for key, default in defaults.items()
               if key in options and options[key] != default]
    return " ".join([f"dish{list(options['sizes'])}x{options['inner_steps']}@{options['inner_lr']}", *changed])


class DishPredictor:
    """Fit a `PetriDish` on scored motifs with a Lightning Trainer and score new motifs with it.

    The same interface as the surrogates (`fit`, `predict`, `name`). The outer step with the lowest outer loss
    is kept (Lightning's `ModelCheckpoint`) and restored after training. With a `checkpoint_dir`, the last
    outer step is saved too, and a fit of the same work that finds it (a requeued or rerun job) resumes from it
    with the numbers of an uninterrupted fit (`resumed_from` says from which step). With `warm_start`, each fit
    after the first starts from the synthetic data the previous fit learned (a search refits every round).
    """

    name = "dish"

    def __init__(self, motif_type: type[Motif], steps: int = 200, gradient_clip_val: float = 1.0,
                 checkpoint_dir: str | None = None, resume: bool = True, seed: int = 0, warm_start: bool = False,
                 **dish_options: object) -> None:
        unknown = sorted(set(dish_options) - set(DISH_OPTIONS))
        if unknown:
            raise ConfigError(f"dish.{unknown[0]}", "is not a dish option", accepted=DISH_OPTIONS)
        check_dish_options({"steps": steps, "gradient_clip_val": gradient_clip_val, "resume": resume,
                            "warm_start": warm_start, **dish_options})
        self.motif_type, self.steps, self.gradient_clip_val = motif_type, steps, gradient_clip_val
        self.checkpoint_dir, self.resume, self.seed, self.dish_options = checkpoint_dir, resume, seed, dish_options
        self.warm_start = warm_start
        self.resumed_from: int | None = None
        self.dish: PetriDish | None = None
        self.last: DishScores | None = None

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        pl.seed_everything(self.seed, verbose=False)
        previous = self.dish
        self.dish = PetriDish(self.motif_type, motifs, seed=self.seed, **self.dish_options)  # type: ignore[arg-type]
        if self.warm_start and previous is not None:
            self.dish.load_state_dict(previous.synthetic_data(), strict=False)
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(self.checkpoint_dir or scratch) / self.work_key(motifs, scores)
            last = folder / "last.ckpt"
            resume = self.resume and last.exists()
            # our own file, holding the callbacks' state besides tensors
            self.resumed_from = (torch.load(last, map_location="cpu", weights_only=False)["global_step"]
                                 if resume else None)
            best = ModelCheckpoint(dirpath=folder, filename="dish-best", monitor="train/outer_loss", mode="min",
                                   save_top_k=1, save_last=True, enable_version_counter=False)
            progress = progress_callback("dish fit")
            trainer = pl.Trainer(max_epochs=self.steps, gradient_clip_val=self.gradient_clip_val,
                                 callbacks=[best, progress], logger=False,
                                 enable_progress_bar=isinstance(progress, ProgressBar), enable_model_summary=False,
                                 num_sanity_val_steps=0, accelerator="cpu", devices=1, default_root_dir=scratch)
            with warnings.catch_warnings():
                if resume:  # the folder holds the checkpoints we resume from, as it should
                    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
                trainer.fit(self.dish, MotifTable(scores), ckpt_path=last if resume else None)
            if best.best_model_path:
                state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
                self.dish.load_state_dict(state)

    def work_key(self, motifs: Sequence[Motif], scores: np.ndarray) -> str:
        """A digest of what the fit learns from (options, seed, motifs, scores and the synthetic data it starts
        from; not the step budget), naming its checkpoint folder: a rerun of the same fit resumes, any other fit
        starts afresh."""
        start = self.dish.synthetic_data() if self.dish is not None else {}
        start_digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in start.values())).hexdigest()
        work = json.dumps([self.dish_options, self.seed, [m.key for m in motifs], np.asarray(scores).tolist(),
                           start_digest], sort_keys=True, default=str)
        return hashlib.sha256(work.encode()).hexdigest()[:12]

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        if self.dish is None:
            raise RuntimeError("fit the dish before predicting")
        self.last = self.dish.score(motifs)
        return self.last.scores


DISH_OPTIONS = [name for cls in (PetriDish, DishPredictor) for name in inspect.signature(cls.__init__).parameters
                if name not in ("self", "motif_type", "train_motifs", "seed", "checkpoint_dir", "dish_options")]
"""The options a dish config (``dish.<option>``) may set."""
