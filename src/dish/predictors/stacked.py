"""Cross-validated stacking (Wolpert 1992; Breiman 1996): a linear model over what several predictors say of a
motif, fitted on their out-of-fold predictions for the training motifs only, with non-negative weights on the
predictions as Breiman's stacked regressions have them; or, where the training motifs say one input alone ranks
them better, that input (the discrete and continuous super learner of van der Laan, Polley and Hubbard 2007)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import lsq_linear
from scipy.stats import kendalltau

from dish.core.errors import ConfigError
from dish.motifs.kind import Motif
from dish.predictors.context import Posterior, Predictor


class StackedPredictor:
    """Leans on each input predictor as far as it predicts the training motifs it did not see.

    The training motifs are dealt (seeded) into `folds` parts; for each part, every input predictor (a fresh one
    from its factory) is fitted on the other parts and scores that part. Each input gives a column: its scores
    standardised by its scores on its own training motifs (so that the folds' models share a scale), and an
    input with a `spread` (a dish ensemble's disagreement between replicas) a second column. The level-1 model is
    least squares on those out-of-fold columns, standardised, with an intercept: a prediction's weight is at least
    0 (Breiman 1996: without that constraint stacking overfits; an input that does not predict the training motifs
    out of fold gets weight 0), a spread's weight of either sign. The inputs refitted on every training motif feed
    it at prediction time. Costs `folds` + 1 fits of each input.

    The stack competes with each input alone, judged on the training motifs only: each ranks every part as
    fitted without it (the stack's level 1 refitted on the other parts' rows), and its Kendall tau within the
    parts, weighted by their pairs, is its score. The best ranks the new motifs (`choice`; a tie goes to the
    higher Kendall over all the parts' predictions pooled, then to the stack), so that a stack whose level-1
    weights are too noisy to fit on a few motifs gives way to the input the training motifs favour.
    """

    uses_training_scores = True

    def __init__(self, inputs: Mapping[str, Callable[[], Predictor]], folds: int = 4, seed: int = 0,
                 name: str = "dish_stacked") -> None:
        if not isinstance(folds, int) or folds < 2:
            raise ConfigError(f"{name}.folds", f"got {folds!r}", accepted=["an integer >= 2"])
        self.inputs, self.folds, self.seed, self.name = dict(inputs), folds, seed, name
        self.fitted: dict[str, Predictor] = {}
        self.references: list[Motif] = []
        self.level1: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        """The columns' means and standard deviations, and the weights (the intercept last)."""
        self.weights: dict[str, float] = {}
        """The level-1 weight of each column (on standardised columns), for the record."""
        self.choice = "stack"
        """What ranks new motifs: ``stack``, or the name of the input that ranked the training motifs best."""
        self.cv_kendall: dict[str, float] = {}
        """Each candidate's Kendall tau on the training motifs, within the parts, as fitted without them."""

    def fit(self, motifs: Sequence[Motif], scores: np.ndarray) -> None:
        motifs, scores = list(motifs), np.asarray(scores, dtype=np.float64)
        if len(motifs) < self.folds:
            raise ConfigError(f"{self.name}.folds", f"{self.folds} folds of {len(motifs)} training motifs",
                              accepted=[f"at most {len(motifs)} folds"])
        parts = np.array_split(np.random.default_rng(self.seed).permutation(len(motifs)), self.folds)
        out_of_fold: np.ndarray | None = None
        for part in parts:
            kept = np.setdiff1d(np.arange(len(motifs)), part)
            train = [motifs[i] for i in kept]
            fitted = self._fit_inputs(train, scores[kept])
            columns, _ = _columns(fitted, _predictions(fitted, [*train, *[motifs[i] for i in part]]), len(train))
            if out_of_fold is None:
                out_of_fold = np.zeros((len(motifs), columns.shape[1]))
            out_of_fold[part] = columns
        self.fitted, self.references = self._fit_inputs(motifs, scores), motifs
        _, names = _columns(self.fitted, _predictions(self.fitted, [*motifs, motifs[0]]), len(motifs))
        mean, std = out_of_fold.mean(0), out_of_fold.std(0)
        std[std == 0] = 1.0
        design = np.column_stack([(out_of_fold - mean) / std, np.ones(len(motifs))])
        lower = np.array([-np.inf if name.endswith("_spread") else 0.0 for name in names] + [-np.inf])
        weights = lsq_linear(design, scores, bounds=(lower, np.inf)).x
        self.level1 = (mean, std, weights)
        self.weights = dict(zip(names, weights[:-1].tolist(), strict=True))
        stacked = np.zeros(len(motifs))
        for part in parts:  # level 1 refitted without each part, as the inputs were
            rest = np.setdiff1d(np.arange(len(motifs)), part)
            stacked[part] = design[part] @ lsq_linear(design[rest], scores[rest], bounds=(lower, np.inf)).x
        candidates = {"stack": stacked, **{name: out_of_fold[:, column] for column, name in enumerate(names)
                                           if not name.endswith("_spread")}}
        self.cv_kendall = {name: within_parts_kendall(predicted, scores, parts)
                           for name, predicted in candidates.items()}
        pooled = {name: within_parts_kendall(predicted, scores, [np.arange(len(motifs))])
                  for name, predicted in candidates.items()}  # finer grained: breaks ties of a few small parts
        self.choice = max(self.cv_kendall, key=lambda name: (self.cv_kendall[name], pooled[name], name == "stack"))

    @property
    def details(self) -> dict[str, Any]:
        """What the fit chose, for a comparison's record: `choice`, `cv_kendall` and the level-1 `weights`."""
        return {"choice": self.choice, "cv_kendall": self.cv_kendall, "weights": self.weights}

    def predict(self, motifs: Sequence[Motif]) -> np.ndarray:
        if self.level1 is None:
            raise RuntimeError("fit the stacked predictor before predicting")
        return self._rank(_predictions(self.fitted, [*self.references, *motifs]))

    def posterior(self, motifs: Sequence[Motif]) -> Posterior:
        """What ranks `motifs`, with the uncertainty of the inputs that have one (a dish ensemble's replicas, the
        GP's samples, the forest's trees): draw k puts every such input's k-th draw (cycling through shorter sets)
        where `predict` puts its score, and the others' scores as they are, each standardised by its own scores of
        the training motifs; draw k is then what `predict` makes of those columns, and the mean what it makes of
        the inputs' means."""
        if self.level1 is None:
            raise RuntimeError("fit the stacked predictor before predicting")
        motifs = [*self.references, *motifs]
        opinions = {name: _opinion(predictor, motifs) for name, predictor in self.fitted.items()}
        if all(len(opinion.draws) == 1 for opinion in opinions.values()):
            raise ConfigError(self.name, f"no input has uncertainty ({', '.join(self.fitted)})",
                              accepted=["inputs that include gp, random_forest or a dish ensemble"])
        count = max(len(opinion.draws) for opinion in opinions.values())
        draws = np.stack([self._rank({name: opinion.draws[k % len(opinion.draws)]
                                      for name, opinion in opinions.items()}) for k in range(count)])
        return Posterior(self._rank({name: opinion.mean for name, opinion in opinions.items()}), draws.std(0), draws)

    def _rank(self, predictions: Mapping[str, np.ndarray]) -> np.ndarray:
        """What `choice` makes of each input's `predictions` of the training motifs and then the new ones."""
        columns, names = _columns(self.fitted, predictions, len(self.references))
        if self.choice != "stack":
            return columns[:, names.index(self.choice)]
        mean, std, weights = self.level1
        return (columns - mean) / std @ weights[:-1] + weights[-1]

    def _fit_inputs(self, motifs: list[Motif], scores: np.ndarray) -> dict[str, Predictor]:
        fitted = {}
        for name, make in self.inputs.items():
            fitted[name] = make()
            fitted[name].fit(motifs, scores)
        return fitted


def _predictions(fitted: Mapping[str, Predictor], motifs: list[Motif]) -> dict[str, np.ndarray]:
    """Each input's scores of `motifs` (one batched call per input)."""
    return {name: predictor.predict(motifs) for name, predictor in fitted.items()}


def _opinion(predictor: Predictor, motifs: list[Motif]) -> Posterior:
    """The input's posterior on `motifs` where it has one; else its scores as the only draw."""
    posterior = getattr(predictor, "posterior", None)
    if posterior is not None:
        try:
            return posterior(motifs)
        except ConfigError:  # a single dish: no replicas to draw from
            pass
    scores = predictor.predict(motifs)
    return Posterior(scores, np.zeros_like(scores), scores[None])


def _columns(fitted: Mapping[str, Predictor], predictions: Mapping[str, np.ndarray],
             references: int) -> tuple[np.ndarray, list[str]]:
    """Each input's scores of the motifs after the first `references` (its training motifs) standardised by its
    scores of those, then its spread where it has one (a dish ensemble's, of its last call); and the columns'
    names."""
    columns, names = [], []
    for name, predictor in fitted.items():
        scores = usable(predictions[name])
        reference, scored = scores[:references], scores[references:]
        columns.append((scored - reference.mean()) / (reference.std() or 1.0))
        names.append(name)
        spread: Any = getattr(predictor, "spread", None)
        if spread is not None:
            columns.append(np.nan_to_num(spread[references:]))
            names.append(f"{name}_spread")
    return np.column_stack(columns), names


def within_parts_kendall(predicted: np.ndarray, scores: np.ndarray, parts: Sequence[np.ndarray]) -> float:
    """The mean over `parts` of Kendall's tau-b of `predicted` against `scores` within the part, weighted by its
    pairs (a part where it is undefined, e.g. tied predictions, counts as 0)."""
    taus = [kendalltau(predicted[part], scores[part]).statistic for part in parts]
    pairs = np.array([len(part) * (len(part) - 1) / 2 for part in parts])
    return float(np.nan_to_num(np.array(taus, dtype=float)) @ pairs / pairs.sum())


def usable(scores: np.ndarray) -> np.ndarray:
    """Scores a regression can read: -inf (a motif the predictor calls unusable) just below the lowest finite
    score, and with no finite score at all (a dish that learned nothing) zeros: no information."""
    finite = scores[np.isfinite(scores)]
    if not len(finite):
        return np.zeros_like(scores)
    low = finite.min() - (np.ptp(finite) or 1.0)
    return np.where(np.isneginf(scores), low, np.where(np.isfinite(scores), scores, finite.mean()))
