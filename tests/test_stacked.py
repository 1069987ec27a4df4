"""Cross-validated stacking, and the model-based surrogates it can stack."""

from __future__ import annotations

import numpy as np
import pytest

from dish.compare.ranking import ranking_metrics
from dish.core.errors import ConfigError
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.predictors.stacked import StackedPredictor, usable
from dish.predictors.surrogates import GradientBoostingSurrogate, RandomForestSurrogate
from dish.predictors.table_column import TableColumnPredictor, column_scores
from dish.store.tables import GroundTruthTable


def half_and_half_table(size: int = 60, seed: int = 0) -> GroundTruthTable:
    """Scores that are a bowl in log-slope (what an encoding model can learn) plus an equally large part that
    only the column ``zc_half`` carries (what no encoding shows)."""
    rng = np.random.default_rng(seed)
    slopes = np.exp(rng.uniform(-3, 3, size))
    bowl = -np.log(slopes) ** 2 / 9.0
    hidden = rng.normal(0.0, bowl.std(), size)
    motifs = [SigmoidSlope(float(slope)) for slope in slopes]
    return GroundTruthTable(motifs, bowl + hidden, {"zc_half": hidden})


def test_stacking_beats_each_input_that_carries_half_of_the_signal() -> None:
    table = half_and_half_table()
    train, heldout = table.subset(range(30)), table.subset(range(30, 60))
    inputs = {"encoding": lambda: RandomForestSurrogate(seed=0),
              "column": lambda: TableColumnPredictor("half", table, "zc_half", "zero_cost.columns.half")}
    stacked = StackedPredictor(inputs, folds=5, seed=0)
    stacked.fit(train.motifs, train.scores)
    kendall = {}
    for name, make in {**inputs, "stacked": lambda: stacked}.items():
        predictor = make()
        if name != "stacked":
            predictor.fit(train.motifs, train.scores)
        kendall[name] = ranking_metrics(predictor.predict(heldout.motifs), heldout.scores)["kendall"]
    assert kendall["stacked"] > max(kendall["encoding"], kendall["column"]) + 0.1
    assert stacked.weights["encoding"] > 0 and stacked.weights["column"] > 0  # it leans on both
    assert stacked.choice == "stack" and stacked.cv_kendall["stack"] >= max(stacked.cv_kendall["encoding"],
                                                                          stacked.cv_kendall["column"])


def test_stacking_gives_way_to_an_input_that_alone_ranks_the_training_motifs_best() -> None:
    """A column that is a monotone but far from linear function of the score ranks perfectly; least squares
    over it and a noisy linear column does not, so the training motifs pick the column alone."""
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.0, 4.0, 40)
    motifs = [SigmoidSlope(float(slope)) for slope in np.exp(rng.uniform(-3, 3, 40))]
    table = GroundTruthTable(motifs, scores, {"zc_exact": np.exp(3 * scores),
                                              "zc_noisy": scores + rng.normal(0.0, 1.0, 40)})
    inputs = {name: (lambda name=name: TableColumnPredictor(name, table, f"zc_{name}", name))
              for name in ("exact", "noisy")}
    train, heldout = table.subset(range(20)), table.subset(range(20, 40))
    stacked = StackedPredictor(inputs, folds=4, seed=0)
    stacked.fit(train.motifs, train.scores)
    assert stacked.cv_kendall["exact"] == pytest.approx(1.0)
    assert stacked.cv_kendall["stack"] < 1.0
    assert stacked.choice == "exact"
    assert ranking_metrics(stacked.predict(heldout.motifs), heldout.scores)["kendall"] == pytest.approx(1.0)


def test_stacking_sees_only_the_training_motifs_out_of_fold() -> None:
    table = half_and_half_table(size=12)
    seen: list[list[str]] = []

    class Recorder(RandomForestSurrogate):
        def fit(self, motifs, scores):
            seen.append([motif.key for motif in motifs])
            super().fit(motifs, scores)

    StackedPredictor({"encoding": lambda: Recorder(seed=0)}, folds=3, seed=1).fit(table.motifs, table.scores)
    assert [len(keys) for keys in seen] == [8, 8, 8, 12]  # three folds, then every training motif
    every = {motif.key for motif in table.motifs}
    held_out = [every - set(keys) for keys in seen[:3]]
    assert set().union(*held_out) == every and sum(map(len, held_out)) == 12  # each motif held out exactly once


def test_stacking_refuses_more_folds_than_motifs() -> None:
    table = half_and_half_table(size=3)
    with pytest.raises(ConfigError, match=r"^dish_stacked.folds: 4 folds of 3 training motifs"):
        StackedPredictor({"encoding": lambda: RandomForestSurrogate()}).fit(table.motifs, table.scores)
    with pytest.raises(ConfigError, match=r"^dish_stacked.folds: got 1 \(accepted: an integer >= 2\)"):
        StackedPredictor({}, folds=1)


def test_unusable_scores_rank_last_and_an_empty_input_carries_nothing() -> None:
    assert usable(np.array([1.0, -np.inf, 3.0])).tolist() == [1.0, -1.0, 3.0]
    assert usable(np.array([np.nan, np.nan])).tolist() == [0.0, 0.0]


def test_a_column_reads_oriented_by_its_name_and_fills_gaps_with_the_median() -> None:
    motifs = [SigmoidSlope(slope) for slope in (0.5, 1.0, 2.0, 4.0)]
    table = GroundTruthTable(motifs, np.zeros(4), {"val_loss_epoch1": np.array([3.0, np.nan, 1.0, 2.0])})
    assert column_scores(table, "val_loss_epoch1", motifs[::-1], "early_stop.column").tolist() == [-2, -1, -2, -3]
    with pytest.raises(ConfigError, match=r"^zero_cost.columns.x: the table has no numeric column 'zc_x' "
                                          r"\(accepted: val_loss_epoch1\)$"):
        column_scores(table, "zc_x", motifs, "zero_cost.columns.x")


@pytest.mark.parametrize("surrogate", [RandomForestSurrogate, GradientBoostingSurrogate])
def test_tree_surrogates_rank_a_bowl_and_are_seeded(surrogate: type) -> None:
    table = half_and_half_table(size=80)
    bowl = table.scores - table.extra["zc_half"]
    train, heldout = slice(0, 40), slice(40, 80)
    predictions = []
    for _ in range(2):
        model = surrogate(seed=3)
        model.fit(table.motifs[train], bowl[train])
        predictions.append(model.predict(table.motifs[heldout]))
    assert np.array_equal(*predictions)
    assert ranking_metrics(predictions[0], bowl[heldout])["spearman"] > 0.9
