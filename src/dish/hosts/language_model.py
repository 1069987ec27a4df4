"""The language-model host: a word-level language model that repeats a recurrent cell, many cells at once.

Embedding -> the cell unrolled over truncated-BPTT windows -> decoder tied to the embedding. Every member of a
population starts from the same seeded weights, sees the same windows, and has its gradient clipped by its own
norm, so its numbers are those of a run on its own up to float reordering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from dish.core.epochs import OncePerEpoch
from dish.core.errors import ConfigError
from dish.core.init import uniform
from dish.data.corpus import bptt_windows
from dish.data.text import TokenStreams


class PopulationLanguageModel(nn.Module):
    """One language model per cell, all in batched weights with a leading population dim."""

    def __init__(self, cell: nn.Module, population: int, vocab_size: int, hidden: int, seed: int = 0) -> None:
        """`cell` steps all `population` members at once: the cell kind's population module, which draws its
        initial weights (`initial_weights`), splits them once per window (`prepare`) and says what a state is
        (`initial_state`, `output`)."""
        super().__init__()
        self.cell = cell
        generator = torch.Generator().manual_seed(seed)

        def shared(value: Tensor) -> nn.Parameter:  # the same initial values for every member
            return nn.Parameter(value.expand(population, *value.shape).clone())

        self.embedding = shared(uniform(vocab_size, hidden, bound=0.1, generator=generator))  # the decoder's too
        self.cell_weights = nn.ParameterDict({name: shared(value) for name, value in
                                              cell.initial_weights(hidden, generator).items()})
        self.decoder_bias = nn.Parameter(torch.zeros(population, vocab_size))
        self.hidden = hidden

    def initial_state(self, batch: int) -> Tensor:
        return self.cell.initial_state(batch, self.hidden, self.embedding)

    def forward(self, tokens: Tensor, targets: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's mean next-token cross-entropy (P,) on a window of tokens and targets (batch, steps),
        and its last state.

        The tied decoder runs a few members at a time, so that no logits block exceeds `DECODER_BLOCK_BYTES`."""
        prepared = self.cell.prepare(**self.cell_weights)
        outputs = []
        for inputs in self.embedding[:, tokens].unbind(2):  # (P, batch, hidden) per step
            state = self.cell(inputs, state, prepared)
            outputs.append(self.cell.output(state))
        hidden = torch.stack(outputs, 2).flatten(1, 2)  # (P, batch * steps, hidden)
        block = max(1, DECODER_BLOCK_BYTES // (hidden.shape[1] * self.embedding.shape[1] * hidden.element_size()))
        losses = [decoder_losses(*members, targets.flatten())
                  for members in zip(hidden.split(block), self.embedding.split(block), self.decoder_bias.split(block),
                                     strict=True)]
        return torch.cat(losses), state


OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
"""The update rules a language model may train with (``model.optimizer``)."""
DECODER_BLOCK_BYTES = 32 * 2**20
"""The largest logits block the decoder makes at once. glibc serves larger allocations with fresh mmaps that the
kernel zero-fills page by page, again on every window: at 13 cells that cost about a fifth of the training time."""


def decoder_losses(hidden: Tensor, embedding: Tensor, bias: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy (P,) of the tied decoder: hidden (P, tokens, H), embedding (P, vocab, H), bias
    (P, vocab), targets (tokens,)."""
    logits = torch.baddbmm(bias[:, None, :], hidden, embedding.transpose(1, 2))
    losses = F.cross_entropy(logits.flatten(0, 1), targets.repeat(len(logits)), reduction="none")
    return losses.view(len(logits), -1).mean(1)


class LanguageModelGroundTruth(pl.LightningModule):
    """Trains a population of cell language models with truncated BPTT for a budget of `max_steps` windows.

    SGD (or Adam, `optimizer`) with a cosine-decayed step size, each member's gradient clipped to `clip` by its own
    norm (manual
    optimisation: one Lightning step is one pass over the training stream, window by window). Validation perplexity
    of every member is the score.
    """

    sections: ClassVar[tuple[str, ...]] = ("data", "model", "trainer", "seed")
    scores: ClassVar[tuple[str, ...]] = ("val_loss", "val_ppl")
    supplied: ClassVar[tuple[str, ...]] = ("cells", "vocab_size", "seed", "cell")

    def __init__(self, cells: Sequence[Any], vocab_size: int, hidden: int = 64, bptt: int = 35, lr: float = 20.0,
                 clip: float = 0.25, max_steps: int = 280, seed: int = 0, cell: nn.Module | None = None,
                 optimizer: str = "sgd", weight_decay: float = 0.0) -> None:
        """`cell` steps every member's cell at once; by default the cells' kind's population module."""
        super().__init__()
        self.automatic_optimization = False
        self.cells = list(cells)
        if cell is None:
            cell = type(self.cells[0]).population(self.cells)
        self.net = PopulationLanguageModel(cell, len(self.cells), vocab_size, hidden, seed)
        if optimizer not in OPTIMIZERS:
            raise ConfigError("model.optimizer", f"got {optimizer!r}", accepted=list(OPTIMIZERS))
        self.bptt, self.lr, self.clip, self.max_steps = bptt, lr, clip, max_steps
        self.optimizer_name, self.weight_decay = optimizer, weight_decay
        self.steps_done = 0
        self.final_val_loss: Tensor | None = None  # (P,), once training is done

    @classmethod
    def from_config(cls, motifs: Sequence[Any], population: nn.Module, cfg: DictConfig,
                    datamodule: pl.LightningDataModule) -> LanguageModelGroundTruth:
        """The cells (stepped by `population`) in the language model of ``cfg.model`` on `datamodule`'s corpus."""
        return cls(motifs, datamodule.vocab_size, seed=cfg.seed, cell=population, **cfg.model)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = OPTIMIZERS[self.optimizer_name](self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        cosine = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, self.max_steps) / self.max_steps)))
        return {"optimizer": optimizer, "lr_scheduler": cosine}

    def training_step(self, streams: TokenStreams, batch_idx: int) -> None:
        counted = self.optimizers()
        cosine = self.lr_schedulers()
        state = self.net.initial_state(streams.train.shape[0])
        batches = list(bptt_windows(streams.train, self.bptt))[:self.max_steps - self.steps_done]
        for index, (inputs, targets) in enumerate(batches):
            losses, state = self.net(inputs, targets, state.detach())
            counted.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            self._clip_per_member()
            # the epoch's last step goes through Lightning's wrapper, so checkpointing sees a global step
            (counted if index == len(batches) - 1 else counted.optimizer).step()
            cosine.step()
            self.steps_done += 1
        if self.steps_done >= self.max_steps:
            self.trainer.should_stop = True
        if self.trainer.should_stop or self.current_epoch == self.trainer.max_epochs - 1:  # only the last counts
            self.final_val_loss = self.evaluate(streams.valid)

    def progress(self) -> tuple[float, str]:
        """Training windows done of `max_steps`."""
        return self.steps_done / self.max_steps, f"window {self.steps_done}/{self.max_steps}"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["language_model_history"] = {"steps_done": self.steps_done, "final_val_loss": self.final_val_loss}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        progress = checkpoint["language_model_history"]
        self.steps_done, self.final_val_loss = progress["steps_done"], progress.get("final_val_loss")

    @torch.no_grad()
    def _clip_per_member(self) -> None:
        """Scale each member's gradient to norm at most `clip` (a global clip would couple the members)."""
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        norms = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()  # (P,)
        scale = (self.clip / (norms + 1e-6)).clamp(max=1.0)
        for grad in grads:
            grad.mul_(scale.view(-1, *[1] * (grad.dim() - 1)))

    @torch.no_grad()
    def evaluate(self, stream: Tensor) -> Tensor:
        """Mean cross-entropy of every member on a whole (batch, steps) stream: (P,)."""
        state = self.net.initial_state(stream.shape[0])
        total, count = state.new_zeros(len(self.cells)), 0  # summed where the model runs, moved once
        for inputs, targets in bptt_windows(stream, self.bptt):
            losses, state = self.net(inputs, targets, state)
            total += losses * targets.numel()
            count += targets.numel()
        return (total / count).cpu()

    def results(self) -> list[dict[str, Any]]:
        """Per cell: status, final validation loss and perplexity, the steps trained."""
        if self.final_val_loss is None:
            raise RuntimeError("the language models have not finished training")
        return [{"motif": cell, "status": "ok" if math.isfinite(float(loss)) else "failed",
                 "val_loss": float(loss), "val_ppl": math.exp(min(float(loss), 700.0)),
                 "train_steps": self.steps_done} for cell, loss in zip(self.cells, self.final_val_loss, strict=True)]


def fit_language_models(cells: Sequence[Any], train: Tensor, valid: Tensor, vocab_size: int, max_epochs: int,
                        **options: Any) -> LanguageModelGroundTruth:
    """Train `cells` at once on batchified token streams; the module holds the results."""
    module = LanguageModelGroundTruth(cells, vocab_size, **options)
    trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=OncePerEpoch(TokenStreams(train, valid)))
    return module

