"""Fitting a Petri dish: a Lightning Trainer over the outer steps, the best step kept, an interrupted fit resumed."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar

from dish.core.epochs import OncePerEpoch
from dish.core.errors import ConfigError
from dish.core.runtime import progress_callback
from dish.motifs.kind import Motif
from dish.predictors.context import Posterior
from dish.predictors.petri_dish.model import DishScores, PetriDish
from dish.predictors.petri_dish.options import DISH_OPTIONS, MODEL_DEFAULTS, check_dish_options

log = logging.getLogger(__name__)


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
        unknown = sorted(set(dish_options) - set(MODEL_DEFAULTS))
        if unknown:
            raise ConfigError(f"dish.{unknown[0]}", "is not a dish option", accepted=DISH_OPTIONS)
        check_dish_options({"steps": steps, "gradient_clip_val": gradient_clip_val, "resume": resume,
                            "warm_start": warm_start, **dish_options})
        self.motif_type, self.steps, self.gradient_clip_val = motif_type, steps, gradient_clip_val
        self.checkpoint_dir, self.resume, self.seed, self.dish_options = checkpoint_dir, resume, seed, dish_options
        self.warm_start = warm_start
        self.trained = False
        """Whether the last fit took an outer step: one whose every step diverged scores nothing."""
        self.resumed_from: int | None = None
        self.dish: PetriDish | None = None
        self.last: DishScores | None = None

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        pl.seed_everything(self.seed, verbose=False)
        table = torch.as_tensor(np.asarray(scores, dtype=np.float64), dtype=torch.float32)
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
                # a diverged outer step is skipped on purpose (no loss to log): counted in `diverged_steps`
                warnings.filterwarnings("ignore", message="`training_step` returned `None`")
                warnings.filterwarnings("ignore", message=r"`ModelCheckpoint\(monitor='train/outer_loss'\)` could not")
                trainer.fit(self.dish, OncePerEpoch(table), ckpt_path=last if resume else None)
            self.trained = bool(best.best_model_path)
            if self.trained:
                state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
                self.dish.load_state_dict(state)
            else:
                log.warning("every outer step of the dish diverged: it learned nothing and scores no motif")

    def work_key(self, motifs: Sequence[Motif], scores: np.ndarray) -> str:
        """A digest of what the fit learns from (options, seed, motifs, scores and the synthetic data it starts
        from; not the step budget), naming its checkpoint folder: a rerun of the same fit resumes, any other fit
        starts afresh."""
        start = self.dish.synthetic_data() if self.dish is not None else {}
        start_digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in start.values())).hexdigest()
        work = json.dumps([self.dish_options, self.seed, [m.key for m in motifs], np.asarray(scores).tolist(),
                           start_digest], sort_keys=True, default=str)
        return hashlib.sha256(work.encode()).hexdigest()[:12]

    @property
    def spread(self) -> np.ndarray | None:
        """How much an ensemble's replicas disagree on each motif of the last `predict` (None for one dish)."""
        return None if self.last is None or self.dish_options.get("ensemble", 1) == 1 else self.last.spread

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        if self.dish is None:
            raise RuntimeError("fit the dish before predicting")
        self.last = self.dish.score(motifs)
        if not self.trained:  # untrained synthetic data: no ranking at all, not the initial weights' ranking
            self.last = DishScores(np.full(len(motifs), np.nan), np.arange(len(motifs)), self.last.losses,
                                   np.ones(len(motifs), dtype=bool), self.last.spread,
                                   np.full_like(self.last.replica_scores, np.nan))
        return self.last.scores

    def posterior(self, motifs: Sequence[Motif]) -> Posterior:
        """An ensemble's replicas are the draws (each standardised on the training motifs), its score the mean;
        a single dish has no spread to draw from."""
        if self.dish_options.get("ensemble", 1) == 1:
            raise ConfigError("dish.ensemble", "is 1: a single dish has no uncertainty to draw from",
                              accepted=["an integer >= 2 (dish=ensemble)"])
        scores = self.predict(motifs)
        return Posterior(scores, self.last.spread, self.last.replica_scores)
