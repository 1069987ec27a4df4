"""The classifier host: an MLP that repeats an activation motif after every hidden layer, trained for ground truth
with a whole population of motifs at once."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics.functional.classification import multiclass_accuracy

from dish.core.epochs import TrainingEpoch
from dish.core.errors import ConfigError
from dish.core.runtime import instantiate_group
from dish.hosts.population import PopulationMLP

OptimizerFactory = Callable[[Iterable[Tensor]], Optimizer]
HISTORY = ("val_loss_history", "val_acc_history", "train_loss_history", "failed_epoch", "failure_reason",
           "train_steps")
"""The module's own per-epoch records, saved in (and restored from) its Lightning checkpoints."""


class ClassifierGroundTruth(pl.LightningModule):
    """Trains ``in -> hidden... -> classes`` with each motif's activation, all motifs in one batched network.

    Every member starts from the same seeded weights and sees the same minibatches; members do not interact
    (the loss is the sum of per-member losses and the optimizer acts elementwise), so a member's numbers are
    those of its own single-motif run up to float reordering. One Lightning step is one epoch: the module loops
    over the epoch's minibatches with manual optimisation and then scores the validation split (the epoch's
    item carries both), so Lightning's per-step and per-validation costs are paid once per epoch, not per batch.
    Inside the epoch it calls the torch optimizer and ``backward`` directly (all but the epoch's last step):
    Lightning's per-call hooks would cost as much as a tiny model's step, and they only matter for mixed
    precision and multi-device runs, which `on_fit_start` refuses. A member whose loss turns NaN/inf is
    recorded as failed; the others go on.
    """

    sections: ClassVar[tuple[str, ...]] = ("data", "model", "optimizer", "trainer", "seed")
    scores: ClassVar[tuple[str, ...]] = ("val_loss", "val_acc", "best_val_loss", "best_val_acc")
    supplied: ClassVar[tuple[str, ...]] = ("motifs", "input_dim", "num_classes", "optimizer", "seed", "activation")
    budget_field: ClassVar[str] = "trainer.max_epochs"
    """The config field of the training budget, in epochs (the optimizer has no schedule over them)."""
    stop_field: ClassVar[str] = "trainer.max_epochs"
    """The config field that stops training early after some epochs of the budget: at a constant step size,
    fewer epochs are the full run's first ones."""

    def __init__(self, motifs: Sequence[Any], input_dim: int, num_classes: int, hidden: Sequence[int],
                 optimizer: OptimizerFactory, seed: int = 0, activation: nn.Module | None = None) -> None:
        """`activation` applies member p's motif to slice p of a (population, ...) tensor; by default the motifs'
        kind's population module."""
        super().__init__()
        self.automatic_optimization = False
        self.motifs = list(motifs)
        self.optimizer_factory = optimizer
        population = len(self.motifs)
        if activation is None:
            activation = type(self.motifs[0]).population(self.motifs)
        self.net = PopulationMLP(input_dim, hidden, num_classes, activation, population, seed)
        self.num_classes = num_classes
        self.val_loss_history: list[Tensor] = []
        self.val_acc_history: list[Tensor] = []
        self.failed_epoch = [-1] * population
        self.failure_reason = [""] * population
        self.train_steps = 0
        self.train_loss_history: list[Tensor] = []

    @classmethod
    def from_config(cls, motifs: Sequence[Any], population: nn.Module, cfg: DictConfig,
                    datamodule: pl.LightningDataModule) -> ClassifierGroundTruth:
        """`motifs` (each applied by its member of `population`) in the MLP of ``cfg.model``, trained with the
        ``optimizer`` group on `datamodule` (which has `input_dim` and `num_classes`)."""
        return cls(motifs, datamodule.input_dim, datamodule.num_classes, optimizer=instantiate_group(cfg, "optimizer"),
                   seed=cfg.seed, activation=population, **cfg.model)

    def on_fit_start(self) -> None:
        if self.trainer.precision != "32-true" or self.trainer.world_size != 1:
            raise ConfigError("trainer", f"ground truth trains in float32 on one device, got precision "
                              f"{self.trainer.precision!r} on {self.trainer.world_size} device(s)",
                              accepted=["precision=32-true with devices=1"])

    def configure_optimizers(self) -> Optimizer:
        return self.optimizer_factory(self.parameters())

    def member_losses(self, logits: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy of each member: logits (P, B, C), labels (B,) -> (P,)."""
        if len(logits) == 1:  # one member: the fused loss costs half as much
            return F.cross_entropy(logits[0], y).unsqueeze(0)
        log_probs = logits.log_softmax(-1)  # cheaper than cross_entropy(reduction="none") on tiny batches
        picked = log_probs.gather(-1, y.view(1, -1, 1).expand(len(log_probs), -1, 1))
        return -picked.squeeze(-1).mean(1)

    def training_step(self, epoch: TrainingEpoch, batch_idx: int) -> None:
        """Train every member on the epoch's minibatches, then score it on the validation split."""
        counted = self.optimizers()
        optimizer = counted.optimizer
        batches = list(epoch.minibatches())
        step_losses = []
        for index, (x, y) in enumerate(batches):
            losses = self.member_losses(self.net(x), y)
            optimizer.zero_grad()
            losses.sum().backward()
            # The epoch's last step goes through Lightning's wrapper, which counts it as the trainer's global
            # step (one per epoch here): checkpointing keys on that counter.
            (counted if index == len(batches) - 1 else optimizer).step()
            step_losses.append(losses.detach())
        self.train_steps += len(step_losses)
        losses = torch.stack(step_losses)
        self._record_failures(torch.isfinite(losses).all(0), "non-finite training loss")
        train_loss = losses.mean(0).cpu()
        val_loss, val_acc = self.evaluate(epoch.x_val, epoch.y_val)
        self._record_failures(torch.isfinite(val_loss), "non-finite validation loss")
        self.train_loss_history.append(train_loss)
        self.val_loss_history.append(val_loss.cpu())
        self.val_acc_history.append(val_acc.cpu())
        self._log_epoch({"train/loss": train_loss, "val/loss": val_loss.cpu(), "val/acc": val_acc.cpu()})
        if all(failed >= 0 for failed in self.failed_epoch):
            self.trainer.should_stop = True

    def progress(self) -> tuple[float, str]:
        """Epochs done, and the last validation loss (the best member's in a population)."""
        epochs, total = len(self.val_loss_history), self.trainer.max_epochs
        loss = float(self.val_loss_history[-1].nan_to_num(math.inf).min())
        best = "" if len(self.motifs) == 1 else f"best of {len(self.motifs)} motifs "
        return epochs / total, f"epoch {epochs}/{total}, {best}val_loss {loss:.4g}"

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Loss and accuracy of every member on a whole split: two (P,) tensors."""
        logits = self.net(x)
        accuracy = multiclass_accuracy(logits.argmax(-1), y.expand(len(self.motifs), -1), self.num_classes,
                                       average="micro", multidim_average="samplewise", validate_args=False)
        return self.member_losses(logits, y), accuracy.reshape(-1)

    # --- what the zero-cost proxies (dish.predictors.zero_cost) read at initialisation -------------------

    def proxy_batch(self, datamodule: Any, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """`size` training samples (x, y) of `datamodule` drawn with `generator` (all of them if it has fewer)."""
        picked = torch.randperm(len(datamodule.x_train), generator=generator)[:size]
        return datamodule.x_train[picked], datamodule.y_train[picked]

    def proxy_losses(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Each member's mean cross-entropy on `batch`: (P,)."""
        return self.member_losses(self.net(batch[0]), batch[1])

    def proxy_inputs(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Each member's own copy of the batch's inputs (P, size, in): the input the proxies differentiate by."""
        x = batch[0]
        return x.expand(len(self.motifs), *x.shape).clone()

    def proxy_outputs(self, inputs: Tensor) -> Tensor:
        """Each member's logits (P, size, classes) on its own inputs (P, size, in)."""
        return self.net(inputs if len(inputs) > 1 else inputs[0])  # a population of one has 2-D weights

    def _log_epoch(self, metrics: dict[str, Tensor]) -> None:
        """Send the epoch's per-member metrics straight to the loggers.

        `self.log` costs ~1.5 ms per key (it aggregates for callbacks and distributed runs); a population logs
        3 keys per member each epoch, which would cost more than training it.
        """
        if not self.loggers:
            return
        row: dict[str, float] = {"epoch": self.current_epoch}
        for name, values in metrics.items():
            if len(self.motifs) == 1:
                row[name] = float(values[0])
            else:
                row.update({f"{name}/{motif.key}": value
                            for motif, value in zip(self.motifs, values.tolist(), strict=True)})
        for logger in self.loggers:
            logger.log_metrics(row, step=self.current_epoch)

    def _record_failures(self, finite: Tensor, reason: str) -> None:
        if finite.all():
            return
        for member in (~finite).nonzero().flatten().tolist():
            if self.failed_epoch[member] < 0:
                self.failed_epoch[member] = self.current_epoch
                self.failure_reason[member] = f"{reason} in epoch {self.current_epoch}"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ground_truth_history"] = {name: getattr(self, name) for name in HISTORY}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resume the per-epoch records with the weights, so a resumed run ends with the numbers of an
        uninterrupted one."""
        for name, value in checkpoint["ground_truth_history"].items():
            setattr(self, name, value)

    def results(self) -> list[dict[str, Any]]:
        """Per motif: status, final and best-epoch validation loss/accuracy, training budget spent."""
        losses = torch.stack(self.val_loss_history)  # (epochs, P)
        accs = torch.stack(self.val_acc_history)
        best_epochs = torch.nan_to_num(losses, nan=math.inf).argmin(0)
        rows = []
        for member, motif in enumerate(self.motifs):
            best = int(best_epochs[member])
            failed = self.failed_epoch[member] >= 0
            rows.append({
                "motif": motif,
                "status": "failed" if failed else "ok",
                "reason": self.failure_reason[member],
                "val_loss": float(losses[-1, member]),
                "val_acc": float(accs[-1, member]),
                "best_val_loss": float(losses[best, member]),
                "best_val_acc": float(accs[best, member]),
                "best_epoch": best,
                "train_loss": float(self.train_loss_history[-1][member]),
                "epochs": len(losses),
                "train_steps": self.train_steps,
            })
        return rows
