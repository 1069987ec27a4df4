"""Black-box baselines that learn score(motif) from a ground-truth table and predict it for new motifs.

Every surrogate has the same interface: `fit(motifs, scores)`, `predict(motifs)` (same scale as the training
scores, higher = better) and a `name`, its key in `SURROGATES`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from numpy.polynomial import Polynomial
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

from dish.core.epochs import OncePerEpoch
from dish.core.errors import POSITIVE, POSITIVE_INT, ConfigError
from dish.motifs.kind import Motif
from dish.predictors.context import Posterior


def motif_features(motifs: Sequence[Motif]) -> np.ndarray:
    """The motifs' `features()` as a (motifs, features) float64 array."""
    return np.array([motif.features() for motif in motifs], dtype=np.float64)


class Surrogate(ABC):
    """A regressor from motif to score; every constructor accepts `seed` and keyword options."""

    name: ClassVar[str]
    needs_scalar_field: ClassVar[bool] = False
    """Whether it works only for motif kinds with a scalar axis (`Motif.scalar_field`)."""

    @abstractmethod
    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        """Learn from `motifs` and their `scores` (higher = better)."""

    @abstractmethod
    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        """Predicted scores of `motifs`, on the scale of the training scores."""


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the caller's thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _lightning_info_hidden() -> Iterator[None]:
    """Hide the info lines every Trainer prints (GPU available, fit stopped): noise when fitting many surrogates."""
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class SurrogateMLP(pl.LightningModule):
    """``features -> hidden -> hidden -> 1`` with tanh, trained full-batch by MSE with Adam.

    `epochs` is the number of full-batch Adam iterations. One Lightning training step runs `chunk` of them with
    manual optimisation: Lightning's per-epoch cost is larger than an iteration of this net, and on 2 cores 500
    one-step epochs took 0.7 s, 10 epochs of 50 iterations 0.4 s.
    """

    def __init__(self, in_features: int, hidden: int = 10, lr: float = 0.01, epochs: int = 500,
                 chunk: int = 50) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))
        self.lr = lr
        self.epochs = epochs
        self.chunk = chunk

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        optimizer = self.optimizers(use_pl_optimizer=False)
        for _ in range(min(self.chunk, self.epochs - self.current_epoch * self.chunk)):
            loss = F.mse_loss(self(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


class NNSurrogate(Surrogate):
    """The Synthetic Petri Dish paper's control: an MLP (two hidden layers of `hidden`) regressing score on features.

    Inputs are the motifs' `features()` standardised with the training mean/std (for `SigmoidSlope`: slope and
    log-slope), targets the z-scored training scores; predictions are mapped back to the scores' scale. The
    whole table is one batch, trained for `epochs` Adam steps from weights drawn with `seed` (global RNG state
    is left as it was). Hidden units are tanh, chosen by a check on the digits slope table (24 slopes, 8 random
    12/12 splits x 3 seeds): held-out Spearman 0.72 (sd 0.19) and regret 0.007 with tanh, 0.67 (sd 0.37) and
    0.29 with ReLU; on a smooth U in log-slope tanh ranked perfectly for every seed, ReLU 0.93-1.0.
    Fitting and predicting run on one torch thread (restored afterwards): on tensors this small a second thread
    only spins, and while another process held the other core a fit took 1.7 s on two threads, 0.36 s on one.
    """

    name = "nn_surrogate"

    def __init__(self, hidden: int = 10, lr: float = 0.01, epochs: int = 500, seed: int = 0) -> None:
        POSITIVE_INT.check("hidden", hidden)
        POSITIVE.check("lr", lr)
        POSITIVE_INT.check("epochs", epochs)
        self.hidden = hidden
        self.lr = lr
        self.epochs = epochs
        self.seed = seed
        self.x_scaler = StandardScaler()
        self.y_scaler = StandardScaler()
        self.module: SurrogateMLP | None = None

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        x = torch.from_numpy(self.x_scaler.fit_transform(motif_features(motifs))).float()
        y = torch.from_numpy(self.y_scaler.fit_transform(np.reshape(scores, (-1, 1)))).float().squeeze(-1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module = SurrogateMLP(x.shape[1], self.hidden, self.lr, self.epochs)
        with _one_thread(), _lightning_info_hidden():
            trainer = pl.Trainer(max_epochs=math.ceil(self.epochs / self.module.chunk), accelerator="cpu",
                                 devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, num_sanity_val_steps=0)
            trainer.fit(self.module, train_dataloaders=OncePerEpoch((x, y)))

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        x = torch.from_numpy(self.x_scaler.transform(motif_features(motifs))).float()
        self.module.eval()
        with _one_thread(), torch.no_grad():
            z = self.module(x).double().numpy()
        return self.y_scaler.inverse_transform(z.reshape(-1, 1)).ravel()


class GaussianProcessSurrogate(Surrogate):
    """A Gaussian process on the standardised motif features (for `SigmoidSlope`: slope and log-slope).

    Kernel ``C * RBF + white noise``, with one length scale per feature (so an unhelpful feature, like the raw
    slope next to its log, can be switched off by a long length scale) and wide bounds; targets normalised;
    hyperparameters by marginal likelihood with 5 seeded restarts.
    """

    name = "gp"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.model: Pipeline | None = None

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        x = motif_features(motifs)
        kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(x.shape[1]), (1e-2, 1e3))
                  + WhiteKernel(1e-2, (1e-10, 1e1)))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=5, random_state=self.seed)
        self.model = make_pipeline(StandardScaler(), gp)
        with warnings.catch_warnings():
            # Hitting a bound is the optimum on such tables, not a failure: a noise-free table drives the noise to
            # its floor, a smooth bowl drives amplitude and length scale to their ceilings (the parabola limit),
            # a feature that does not help drives its length scale up; a restart whose line search stalls is
            # outscored by the best restart.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x, scores)

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        return self.model.predict(motif_features(motifs))

    def posterior(self, motifs: Sequence[Motif], draws: int = 32) -> Posterior:
        """The GP's predictive mean and sd, and `draws` joint samples of its posterior (seeded)."""
        x = self.model[:-1].transform(motif_features(motifs))
        gp: GaussianProcessRegressor = self.model[-1]
        mean, std = gp.predict(x, return_std=True)
        samples = gp.sample_y(x, n_samples=draws, random_state=self.seed).T
        return Posterior(mean, std, samples)


class QuadraticSurrogate(Surrogate):
    """A least-squares parabola in the log of the motifs' scalar field (``log(slope)`` for `SigmoidSlope`): only
    for kinds with a `scalar_field`.

    `seed` is accepted like every surrogate's; a least-squares fit draws nothing.
    """

    name = "quadratic"
    needs_scalar_field = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.polynomial: Polynomial | None = None

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        self.polynomial = Polynomial.fit(log_axis(motifs), scores, deg=2)

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        return self.polynomial(log_axis(motifs))


def log_axis(motifs: Sequence[Motif]) -> np.ndarray:
    """The log of each motif's scalar field; a kind without one is a `ConfigError`."""
    field = type(motifs[0]).scalar_field
    if field is None:
        raise ConfigError("predictors", f"quadratic needs motifs with a scalar field; {motifs[0].kind} has none",
                          accepted=[name for name, cls in SURROGATES.items() if not cls.needs_scalar_field])
    return np.log(np.array([getattr(motif, field) for motif in motifs], dtype=np.float64))


class RandomForestSurrogate(Surrogate):
    """A random forest on the motif features (scikit-learn), the model-based predictor White et al. (2021) found
    strong among NAS performance predictors at small training sets; trees need no feature scaling."""

    name = "random_forest"

    def __init__(self, trees: int = 200, min_samples_leaf: int = 1, seed: int = 0) -> None:
        POSITIVE_INT.check("trees", trees)
        POSITIVE_INT.check("min_samples_leaf", min_samples_leaf)
        self.model = RandomForestRegressor(n_estimators=trees, min_samples_leaf=min_samples_leaf, random_state=seed,
                                           n_jobs=1)

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        self.model.fit(motif_features(motifs), scores)

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        return self.model.predict(motif_features(motifs))

    def posterior(self, motifs: Sequence[Motif]) -> Posterior:
        """Every tree's prediction is one draw; their mean is the forest's."""
        x = motif_features(motifs)
        return Posterior.of_members(np.stack([tree.predict(x) for tree in self.model.estimators_]))


class GradientBoostingSurrogate(Surrogate):
    """Gradient-boosted regression trees on the motif features (scikit-learn): shallow trees, shrinkage and row
    subsampling, the settings that suit a few dozen training motifs."""

    name = "gbt"

    def __init__(self, trees: int = 100, depth: int = 2, lr: float = 0.1, subsample: float = 0.8,
                 seed: int = 0) -> None:
        POSITIVE_INT.check("trees", trees)
        POSITIVE_INT.check("depth", depth)
        POSITIVE.check("lr", lr)
        if not POSITIVE.test(subsample) or subsample > 1:
            raise ConfigError("subsample", f"got {subsample!r}", accepted=["a fraction in (0, 1]"])
        self.model = GradientBoostingRegressor(n_estimators=trees, max_depth=depth, learning_rate=lr,
                                               subsample=subsample, random_state=seed)

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        self.model.fit(motif_features(motifs), scores)

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        return self.model.predict(motif_features(motifs))


SURROGATES: dict[str, type[Surrogate]] = {
    NNSurrogate.name: NNSurrogate,
    GaussianProcessSurrogate.name: GaussianProcessSurrogate,
    QuadraticSurrogate.name: QuadraticSurrogate,
    RandomForestSurrogate.name: RandomForestSurrogate,
    GradientBoostingSurrogate.name: GradientBoostingSurrogate,
}
