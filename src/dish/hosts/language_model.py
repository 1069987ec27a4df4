"""The language-model host: a word-level language model that repeats a recurrent cell, many cells at once.

Embedding -> `layers` layers of the cell unrolled over truncated-BPTT windows -> decoder tied to the embedding.
As in AWD-LSTM, the inner layers are `hidden` wide and the last is as wide as the embedding, and training may drop
out the embedded input, the outputs between layers and the last output (one mask per window, "locked" over its
steps) and the cell's weights (weight drop, one mask per window). Every member of a population starts from the
same seeded weights, sees the same windows and the same dropout masks, and has its gradient clipped by its own
norm, so its numbers are those of a run on its own up to float reordering.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from dish.core.epochs import OncePerEpoch
from dish.core.errors import POSITIVE_INT, ConfigError
from dish.core.init import uniform
from dish.data.corpus import bptt_windows
from dish.data.text import TokenStreams


@dataclass(frozen=True)
class Dropouts:
    """Dropout rates of a stacked language model in training (AWD-LSTM's dropouti, dropouth, dropout and
    wdrop): the embedded input, the outputs between layers, the last output, the cell's weight matrices."""

    input: float = 0.0
    between: float = 0.0
    output: float = 0.0
    weights: float = 0.0

    def __post_init__(self) -> None:
        for name, rate in vars(self).items():
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"model.dropout.{name}", f"got {rate!r}", accepted=["a rate in [0, 1)"])


class PopulationLanguageModel(nn.Module):
    """One language model per cell, all in batched weights with a leading population dim."""

    def __init__(self, cell: nn.Module, population: int, vocab_size: int, hidden: int, seed: int = 0,
                 layers: int = 1, embedding: int | None = None, dropouts: Dropouts = Dropouts()) -> None:
        """`cell` steps all `population` members at once: the cell kind's population module, which draws its
        initial weights (`initial_weights`), splits them once per window (`prepare`) and says what a state is
        (`initial_state`, `output`). `embedding` defaults to `hidden`; with one layer, the cell is
        `embedding` wide."""
        super().__init__()
        self.cell = cell
        self.dropouts = dropouts
        embedding = embedding or hidden
        self.widths = [embedding, *[hidden] * (layers - 1), embedding]  # each layer reads widths[l], is widths[l+1]
        generator = torch.Generator().manual_seed(seed)

        def shared(value: Tensor) -> nn.Parameter:  # the same initial values for every member
            return nn.Parameter(value.expand(population, *value.shape).clone())

        self.embedding = shared(uniform(vocab_size, embedding, bound=0.1, generator=generator))  # the decoder's too
        self.cell_weights = nn.ModuleList(
            nn.ParameterDict({name: shared(value) for name, value in
                              cell.initial_weights(width, generator, inputs=inputs).items()})
            for inputs, width in zip(self.widths[:-1], self.widths[1:], strict=True))
        self.decoder_bias = nn.Parameter(torch.zeros(population, vocab_size))
        self.seed = seed

    def initial_state(self, batch: int) -> list[Tensor]:
        return [self.cell.initial_state(batch, width, self.embedding) for width in self.widths[1:]]

    def forward(self, tokens: Tensor, targets: Tensor, state: Sequence[Tensor],
                window: int | None = None) -> tuple[Tensor, list[Tensor]]:
        """Each member's mean next-token cross-entropy (P,) on a window of tokens and targets (batch, steps),
        and its last states (one per layer). In training, `window` (its index) seeds the dropout masks, so a
        resumed run draws the same ones.

        The tied decoder runs a few members at a time, so that no logits block exceeds `DECODER_BLOCK_BYTES`."""
        rates = self.dropouts if window is not None else Dropouts()
        noise = None
        if window is not None and rates != Dropouts():
            noise = torch.Generator(self.embedding.device).manual_seed(self.seed * 1_000_003 + window)
        inputs = _drop(self.embedding[:, tokens], rates.input, noise)  # (P, batch, steps, E)
        outputs, last = self.unroll(inputs, state, rates, noise)
        hidden = outputs.flatten(1, 2)  # (P, batch * steps, E)
        block = max(1, DECODER_BLOCK_BYTES // (hidden.shape[1] * self.embedding.shape[1] * hidden.element_size()))
        losses = [decoder_losses(*members, targets.flatten())
                  for members in zip(hidden.split(block), self.embedding.split(block), self.decoder_bias.split(block),
                                     strict=True)]
        return torch.cat(losses), last

    def unroll(self, inputs: Tensor, state: Sequence[Tensor], rates: Dropouts = Dropouts(),
               noise: torch.Generator | None = None, layers: int | None = None) -> tuple[Tensor, list[Tensor]]:
        """The outputs (P, batch, steps, width) of the first `layers` layers (all by default) on embedded inputs
        (P, batch, steps, E) from `state`, after their dropout of `rates` (masks drawn with `noise`), and each
        of those layers' last state."""
        drop = functools.partial(_drop, generator=noise)
        last = []
        for layer, (weights, layer_state) in enumerate(zip(self.cell_weights[:layers], state[:layers], strict=True)):
            weights = {name: drop(value, rates.weights, locked=False) if name in self.cell.dropped else value
                       for name, value in weights.items()}
            prepared = self.cell.prepare(**weights)
            outputs = []
            for step in inputs.unbind(2):  # (P, batch, width) per step
                layer_state = self.cell(step, layer_state, prepared)
                outputs.append(self.cell.output(layer_state))
            last.append(layer_state)
            rate = rates.output if layer == len(self.cell_weights) - 1 else rates.between
            inputs = drop(torch.stack(outputs, 2), rate)
        return inputs, last


def _drop(values: Tensor, rate: float, generator: torch.Generator | None, locked: bool = True) -> Tensor:
    """`values` (P, ...) times one dropout mask for every member, scaled by 1 / (1 - rate); a `locked` mask of
    (P, batch, steps, width) values is the same at every step."""
    if rate == 0.0:
        return values
    shape = (1, values.shape[1], 1, values.shape[3]) if locked else (1, *values.shape[1:])
    keep = torch.empty(shape, device=values.device, dtype=values.dtype).bernoulli_(1 - rate, generator=generator)
    return values * keep / (1 - rate)


OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
"""The update rules a language model may train with (``model.optimizer``)."""
SCHEDULES = {"cosine": lambda step, total: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)),
             "constant": lambda step, total: 1.0}
"""The step-size schedules (``model.schedule``): a factor of the rate at a step of `total`."""
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

    SGD (or Adam, `optimizer`) with a cosine-decayed (or constant, `schedule`) step size, each member's gradient
    clipped to `clip` by its own norm (manual optimisation: one Lightning step is one pass over the training
    stream, window by window). Validation perplexity of every member is the score. `layers`, `embedding` and
    `dropout` (a mapping of `Dropouts` rates) shape the stacked model of `PopulationLanguageModel`. `stop_after`
    windows (null: all `max_steps`) stops training early with the full budget's schedule.
    """

    sections: ClassVar[tuple[str, ...]] = ("data", "model", "trainer", "seed")
    scores: ClassVar[tuple[str, ...]] = ("val_loss", "val_ppl")
    supplied: ClassVar[tuple[str, ...]] = ("cells", "vocab_size", "seed", "cell")
    budget_field: ClassVar[str] = "model.max_steps"
    """The config field of the training budget, in windows (the step-size schedule's length)."""
    stop_field: ClassVar[str] = "model.stop_after"
    """The config field that stops training early after some windows of the budget, schedule unchanged."""

    def __init__(self, cells: Sequence[Any], vocab_size: int, hidden: int = 64, bptt: int = 35, lr: float = 20.0,
                 clip: float = 0.25, max_steps: int = 280, seed: int = 0, cell: nn.Module | None = None,
                 optimizer: str = "sgd", weight_decay: float = 0.0, schedule: str = "cosine", layers: int = 1,
                 embedding: int | None = None, dropout: Mapping[str, float] | None = None,
                 stop_after: int | None = None) -> None:
        """`cell` steps every member's cell at once; by default the cells' kind's population module."""
        super().__init__()
        self.automatic_optimization = False
        self.cells = list(cells)
        for field, value, accepted in (("optimizer", optimizer, OPTIMIZERS), ("schedule", schedule, SCHEDULES)):
            if value not in accepted:
                raise ConfigError(f"model.{field}", f"got {value!r}", accepted=list(accepted))
        if layers < 1:
            raise ConfigError("model.layers", f"got {layers!r}", accepted=["an integer >= 1"])
        POSITIVE_INT.or_null().check("model.stop_after", stop_after)
        if cell is None:
            cell = type(self.cells[0]).population(self.cells)
        self.net = PopulationLanguageModel(cell, len(self.cells), vocab_size, hidden, seed, layers=layers,
                                           embedding=embedding, dropouts=Dropouts(**(dropout or {})))
        self.schedule = schedule
        self.bptt, self.lr, self.clip, self.max_steps = bptt, lr, clip, max_steps
        self.stop_after = max_steps if stop_after is None else min(stop_after, max_steps)
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
        scale = SCHEDULES[self.schedule]
        return {"optimizer": optimizer,
                "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: scale(step, self.max_steps))}

    def training_step(self, streams: TokenStreams, batch_idx: int) -> None:
        counted = self.optimizers()
        schedule = self.lr_schedulers()
        state = self.net.initial_state(streams.train.shape[0])
        batches = list(bptt_windows(streams.train, self.bptt))[:self.stop_after - self.steps_done]
        for index, (inputs, targets) in enumerate(batches):
            losses, state = self.net(inputs, targets, [layer.detach() for layer in state], window=self.steps_done)
            counted.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            self._clip_per_member()
            # the epoch's last step goes through Lightning's wrapper, so checkpointing sees a global step
            (counted if index == len(batches) - 1 else counted.optimizer).step()
            schedule.step()
            self.steps_done += 1
        if self.steps_done >= self.stop_after:
            self.trainer.should_stop = True
        if self.trainer.should_stop or self.current_epoch == self.trainer.max_epochs - 1:  # only the last counts
            self.final_val_loss = self.evaluate(streams.valid)

    def progress(self) -> tuple[float, str]:
        """Training windows done of `stop_after`."""
        return self.steps_done / self.stop_after, f"window {self.steps_done}/{self.stop_after}"

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
        total, count = state[0].new_zeros(len(self.cells)), 0  # summed where the model runs, moved once
        for inputs, targets in bptt_windows(stream, self.bptt):
            losses, state = self.net(inputs, targets, state)
            total += losses * targets.numel()
            count += targets.numel()
        return (total / count).cpu()

    # --- what the zero-cost proxies (dish.predictors.zero_cost) read at initialisation -------------------

    def proxy_batch(self, datamodule: Any, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """`size` windows of `bptt` tokens (inputs, targets: (size, bptt)) from places of `datamodule`'s training
        stream drawn with `generator`."""
        stream = datamodule.corpus.train
        starts = torch.randint(len(stream) - self.bptt, (size,), generator=generator)
        windows = stream[starts[:, None] + torch.arange(self.bptt + 1)]
        return windows[:, :-1], windows[:, 1:]

    def proxy_losses(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Each member's mean next-token cross-entropy on `batch` from zero states, without dropout: (P,)."""
        inputs, targets = batch
        return self.net(inputs, targets, self.net.initial_state(len(inputs)))[0]

    def proxy_inputs(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Each member's embedded input tokens (P, size, bptt, E), detached: the input the proxies differentiate
        by."""
        return self.net.embedding[:, batch[0]].detach()

    def proxy_outputs(self, inputs: Tensor) -> Tensor:
        """Each member's last-layer outputs (P, size, bptt, E) on embedded `inputs`, from zero states."""
        return self.net.unroll(inputs, self.net.initial_state(inputs.shape[1]))[0]

    def proxy_hidden_states(self, inputs: Tensor) -> Tensor:
        """Each member's first-layer hidden states (P, size, bptt, width) on embedded `inputs`, from zero states."""
        return self.net.unroll(inputs, self.net.initial_state(inputs.shape[1]), layers=1)[0]

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

