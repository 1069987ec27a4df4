"""The Synthetic Petri Dish: learned synthetic data on which tiny motif-networks are trained to rank motifs.

Bilevel training. Inner loop: every motif instantiates the same tiny motif-network (one shared, seeded
initialisation), trains it for K differentiable SGD (or Adam) steps on the synthetic training samples, and is scored by
its loss on the synthetic validation samples. Outer loop: the MSE between the z-scored (negated) dish
validation losses and the z-scored ground-truth scores of the same motifs, back-propagated through the unrolled
inner loop into the synthetic samples. All motifs of a batch run at once: weights carry a leading motif dim.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor, nn

from dish.cells import RecurrentCell
from dish.errors import ConfigError
from dish.motifs import Motif

Params = list[Tensor]


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
    """Standardise across the batch (population std); a constant batch maps to zeros."""
    centred = values - values.mean()
    return centred / centred.std(correction=0).clamp_min(1e-8)


class PetriDish(pl.LightningModule):
    """A Petri dish for one motif kind; `training_step` runs the inner loop and returns the outer MSE.

    Motif-network: ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with the motif's activation after every hidden
    layer, and after the output layer too when `output_activation` (the authors' ``[10, 1, 1, 10]``);
    otherwise the read-out is linear. Synthetic inputs (training and validation) are learned; targets are fixed,
    balanced 0/1 (learned too with `learn_targets`). The inner loop is plain SGD on MSE by default; the authors'
    code used Adam on binary cross-entropy (outputs as logits) from small Gaussian weights (`init_scale`).
    """

    def __init__(self, motif_type: type[Motif], train_motifs: Sequence[Motif], sizes: Sequence[int] = (2, 1, 1, 1),
                 output_activation: bool = False, num_samples: int = 20, inner_steps: int = 30,
                 inner_lr: float = 0.5, outer_lr: float = 0.1, lr_decay: float = 1.0,
                 learn_targets: bool = False, divergence_factor: float = 10.0, inner_optimizer: str = "sgd",
                 loss: str = "mse", init_scale: float | None = None, sequence_length: int = 5,
                 seed: int = 0) -> None:
        super().__init__()
        if inner_optimizer not in ("sgd", "adam"):
            raise ConfigError("dish.inner_optimizer", f"unknown {inner_optimizer!r}", accepted=["sgd", "adam"])
        if loss not in ("mse", "bce"):
            raise ConfigError("dish.loss", f"unknown {loss!r}", accepted=["mse", "bce"])
        self.save_hyperparameters(ignore=["motif_type", "train_motifs"])
        self.motif_type = motif_type
        self.train_population = motif_type.population(train_motifs)
        generator = torch.Generator().manual_seed(seed)
        self.recurrent = issubclass(motif_type, RecurrentCell)
        sample_shape = (sequence_length, sizes[0]) if self.recurrent else (sizes[0],)
        self.x_train = nn.Parameter(torch.randn(num_samples, *sample_shape, generator=generator))
        self.x_val = nn.Parameter(torch.randn(num_samples, *sample_shape, generator=generator))
        self.y_train = nn.Parameter(balanced_targets(num_samples, sizes[-1], generator), requires_grad=learn_targets)
        self.y_val = nn.Parameter(balanced_targets(num_samples, sizes[-1], generator), requires_grad=learn_targets)
        if self.recurrent:
            self._init_cell_network(sizes, len(train_motifs[0].nodes), init_scale, generator)  # type: ignore[attr-defined]
        else:
            self._init_mlp(sizes, init_scale, generator)
        # The loss of always answering 0.5 on balanced 0/1 targets; far above it means the inner loop blew up.
        self.chance_loss = 0.25 if loss == "mse" else math.log(2)
        self.max_dish_loss = 0.0
        self.diverged_steps = 0

    def synthetic_data(self) -> dict[str, Tensor]:
        """The learned synthetic samples and targets, by state-dict name (what a warm start carries over)."""
        return {name: getattr(self, name).detach().clone() for name in ("x_train", "x_val", "y_train", "y_val")}

    def _init_mlp(self, sizes: Sequence[int], init_scale: float | None, generator: torch.Generator) -> None:
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            if init_scale is None:  # PyTorch's nn.Linear scheme
                bound = 1 / math.sqrt(fan_in)
                weight = (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound
                bias = (torch.rand(1, fan_out, generator=generator) * 2 - 1) * bound
            else:  # the authors' scheme: small Gaussian weights
                weight = torch.randn(fan_in, fan_out, generator=generator) * init_scale
                bias = torch.randn(1, fan_out, generator=generator) * init_scale
            self.register_buffer(f"w{index}", weight)
            self.register_buffer(f"b{index}", bias)
        self.names = [f"{kind}{index}" for index in range(len(sizes) - 1) for kind in ("w", "b")]

    def _init_cell_network(self, sizes: Sequence[int], nodes: int, init_scale: float | None,
                           generator: torch.Generator) -> None:
        """The cell's weights (node 0 and nodes 1..N) and a linear read-out of its last state."""
        if len(sizes) != 3:
            raise ConfigError("dish.sizes", f"a cell dish takes [inputs, hidden, outputs], got {list(sizes)}")
        inputs, hidden, outputs = sizes
        scale = init_scale if init_scale is not None else 1 / math.sqrt(hidden)
        shapes = {"w0": (inputs + hidden, 2 * hidden), "ws": (nodes, hidden, 2 * hidden), "w_out": (hidden, outputs),
                  "b_out": (1, outputs)}
        for name, shape in shapes.items():
            self.register_buffer(name, (torch.rand(*shape, generator=generator) * 2 - 1) * scale)
        self.names = list(shapes)

    def initial_params(self, population: int) -> Params:
        """The shared initialisation, one copy per motif (expanded views, no memory per motif)."""
        return [getattr(self, name).expand(population, *getattr(self, name).shape) for name in self.names]

    def motif_network(self, params: Params, x: Tensor, motifs: nn.Module) -> Tensor:
        """Outputs (P, samples, out) of every motif's network on shared inputs x: (samples, in) for activations
        (an MLP), (samples, steps, in) for cells (the cell unrolled from a zero state, then a linear read-out)."""
        population = len(params[0])
        if self.recurrent:
            w0, ws, w_out, b_out = params
            state, node_weights = x.new_zeros(population, len(x), w_out.shape[1]), ws.unbind(1)
            for inputs in x.unbind(1):
                state = motifs(inputs.expand(population, -1, -1), state, w0, node_weights)
            return torch.baddbmm(b_out, state, w_out)
        h = x.expand(population, *x.shape)
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
        """Validation loss of every motif's network after the inner loop; (P,)."""
        lr = self.hparams.inner_lr
        with torch.enable_grad():
            params = [p.clone().requires_grad_() for p in self.initial_params(population)]
            first = [torch.zeros_like(p) for p in params]
            second = [torch.zeros_like(p) for p in params]
            for step in range(1, self.hparams.inner_steps + 1):
                loss = self.member_loss(self.motif_network(params, self.x_train, motifs), self.y_train).sum()
                grads = torch.autograd.grad(loss, params, create_graph=create_graph)
                if self.hparams.inner_optimizer == "adam":  # differentiable Adam (0.9, 0.999), as the authors'
                    first = [0.9 * m + 0.1 * g for m, g in zip(first, grads, strict=True)]
                    second = [0.999 * v + 0.001 * g * g for v, g in zip(second, grads, strict=True)]
                    grads = [(m / (1 - 0.9**step)) / ((v / (1 - 0.999**step) + 1e-16).sqrt() + 1e-8)
                             for m, v in zip(first, second, strict=True)]
                params = [p - lr * g for p, g in zip(params, grads, strict=True)]
        return self.member_loss(self.motif_network(params, self.x_val, motifs), self.y_val)

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
        outer = F.mse_loss(zscore(-losses), zscore(scores))
        self.log("train/outer_loss", outer, prog_bar=True)
        return outer

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
        """Score any motifs in one batched call (higher = better) and rank them (best first)."""
        with torch.no_grad():
            losses = self.dish_losses(self.motif_type.population(motifs).to(self.device), len(motifs),
                                      create_graph=False)
        self._note_losses(losses)
        scores = (-losses).cpu().double().numpy()
        return DishScores(scores, np.argsort(-scores, kind="stable"), losses.cpu().double().numpy(),
                          self.diverged(losses).cpu().numpy())


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
            trainer = pl.Trainer(max_epochs=self.steps, gradient_clip_val=self.gradient_clip_val, callbacks=[best],
                                 logger=False, enable_progress_bar=False, enable_model_summary=False,
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
