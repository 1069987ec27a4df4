"""The early_stop predictor: live ground truth cut to a fraction of its budget (the whole budget is the ground
truth itself), a learning-curve column of the table, the language model stopped early with its full schedule,
and one-line errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_module

from dish.core.epochs import OncePerEpoch
from dish.core.errors import ConfigError
from dish.core.provenance import ground_truth_hash
from dish.data.corpus import batchify, embedded_corpus
from dish.data.text import TokenStreams
from dish.ground_truth.job import run_ground_truth
from dish.hosts.language_model import LanguageModelGroundTruth
from dish.motifs.rnn_cell import RecurrentCell
from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.predictors.context import PredictorContext
from dish.predictors.early_stop import EarlyStopPredictor
from dish.store.csv_store import GroundTruthStore
from dish.store.tables import load_table

pytestmark = pytest.mark.usefixtures("flush_denormal")

SLOPES = [0.5, 2.0, 8.0]
MOTIFS = [SigmoidSlope(slope) for slope in SLOPES]
TINY = ["logger=none", "trainer.max_epochs=4", "model.hidden=[8]", "trainer.enable_progress_bar=false", "threads=1",
        f"population.slopes={SLOPES}"]


def composed(*overrides: str) -> object:
    """The ground-truth config of tasks/ground_truth.py with `overrides`, as a comparison composes it."""
    with initialize_config_module("dish.conf", version_base=None):
        return compose("ground_truth", list(overrides))


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    """A tiny ground-truth config (3 slopes, 4 epochs) and the rows of its full run."""
    folder = tmp_path_factory.mktemp("gt")
    cfg = composed(*TINY, f"store.path={folder / 'gt.csv'}", f"trainer.default_root_dir={folder}")
    return cfg, run_ground_truth(cfg)


def live(ground_truth, output_dir, fraction):
    cfg, _ = ground_truth
    context = PredictorContext(SigmoidSlope, ground_truth=cfg, built=True, output_dir=output_dir)
    return EarlyStopPredictor(context, "val_loss", fraction=fraction)


def test_the_whole_budget_is_the_ground_truth(ground_truth, tmp_path):
    cfg, rows = ground_truth
    predictor = live(ground_truth, tmp_path, 1)
    assert predictor.predict(MOTIFS).tolist() == [-row["val_loss"] for row in rows]
    assert predictor.gt_evaluations_per_motif == 1.0
    assert predictor.recorded_seconds_per_motif == 0.0
    stored = GroundTruthStore(tmp_path / "early_stop.csv", SigmoidSlope).read()
    assert {row["config_hash"] for row in stored} == {ground_truth_hash(cfg)}  # the ground truth's own config


def test_a_fraction_trains_fewer_epochs_and_a_rerun_trains_nothing(ground_truth, tmp_path):
    predictor = live(ground_truth, tmp_path, 0.3)  # 1.2 of 4 epochs: rounded up to 2
    assert predictor.gt_evaluations_per_motif == 0.5
    first = predictor.predict(MOTIFS)
    stored = GroundTruthStore(tmp_path / "early_stop.csv", SigmoidSlope).read()
    assert [(row["epochs"], row["train_steps"]) for row in stored] == [("2", "30")] * 3  # 15 steps per epoch
    assert np.all(np.isfinite(first))
    again = live(ground_truth, tmp_path, 0.3).predict(MOTIFS[::-1])
    assert GroundTruthStore(tmp_path / "early_stop.csv", SigmoidSlope).read() == stored
    assert again.tolist() == first[::-1].tolist()


def test_the_language_model_stops_early_on_its_full_schedule():
    """Stopping after 8 of 12 windows is the 12-window run cut after its second pass (4 windows each)."""
    corpus = embedded_corpus()
    cells = [RecurrentCell("darts_v2"), RecurrentCell.sample(random.Random(0))]
    epochs = OncePerEpoch(TokenStreams(batchify(corpus.train, 16)[:, :41], batchify(corpus.valid[:2000], 8)))

    def train(max_epochs: int, **options: int) -> LanguageModelGroundTruth:
        module = LanguageModelGroundTruth(cells, len(corpus.vocab), hidden=8, bptt=10, max_steps=12, **options)
        trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=epochs)
        return module

    stopped = train(max_epochs=10, stop_after=8)
    assert stopped.steps_done == 8
    assert stopped.results() == train(max_epochs=2).results()


def test_the_language_model_budget_is_cut_in_windows():
    cfg = composed("task=rnn_cell")
    context = PredictorContext(RecurrentCell, ground_truth=cfg, built=True)
    predictor = EarlyStopPredictor(context, "val_loss", fraction=0.04)  # 11.2 of 280 windows
    assert (predictor.job.model.stop_after, predictor.job.model.max_steps) == (12, 280)
    assert predictor.gt_evaluations_per_motif == 12 / 280
    assert "stop_after" not in EarlyStopPredictor(context, "val_loss", fraction=1).job.model


@pytest.fixture
def curve_table(tmp_path):
    path = tmp_path / "curves.csv"
    path.write_text("slope,val_loss,val_loss_epoch1,zc_score\n0.5,2.0,2.3,1\n2,1.0,1.5,2\n8,0.5,,3\n32,0.7,1.1,4\n")
    return load_table(path, SigmoidSlope, "val_loss")


def test_a_curve_column_scores_by_its_values(curve_table):
    context = PredictorContext(SigmoidSlope, table=curve_table, gt_seconds=100.0)
    predictor = EarlyStopPredictor(context, "val_loss", column="val_loss_epoch1", epochs=50)
    predictor.fit(curve_table.motifs[:2], curve_table.scores[:2])
    motifs = [SigmoidSlope(slope) for slope in (0.5, 2.0, 8.0, 32.0)]
    assert predictor.predict(motifs).tolist() == [-2.3, -1.5, -1.5, -1.1]  # the missing one: the median
    assert predictor.gt_evaluations_per_motif == 1 / 50
    assert predictor.recorded_seconds_per_motif == pytest.approx(2.0)
    assert EarlyStopPredictor(context, "val_loss", column="zc_score", fraction=0.1).predict(motifs).tolist() == [
        1.0, 2.0, 3.0, 4.0]  # higher is better by its name
    untimed = PredictorContext(SigmoidSlope, table=curve_table)
    assert EarlyStopPredictor(untimed, "val_loss", column="val_loss_epoch1", epochs=50).recorded_seconds_per_motif == 0


def test_errors_are_one_line(curve_table, ground_truth):
    context = PredictorContext(SigmoidSlope, table=curve_table, ground_truth=ground_truth[0], built=False)
    cases = {
        "early_stop.fraction: re-training at a fraction of the budget needs a table this project trained "
        "(gt.build); this one comes from outside (accepted: early_stop.column=val_loss_epoch1, gt.build=<the "
        "ground-truth overrides that train the table>)": {"fraction": 0.1},
        "early_stop.fraction: got 0 (accepted: a number in (0, 1], null)": {"fraction": 0},
        "early_stop.fraction: got 1.5 (accepted: a number in (0, 1], null)": {"fraction": 1.5},
        "early_stop.epochs: got None; the table's full budget in epochs tells what fraction 'val_loss_epoch1' "
        "spends (accepted: an integer >= 1 (50 for NAS-Bench-NLP))": {"column": "val_loss_epoch1"},
        "early_stop.fraction: is needed: column 'zc_score' does not say its epoch (..._epoch<N>) (accepted: a "
        "number in (0, 1]: the fraction of the budget it spends)": {"column": "zc_score"},
    }
    for message, options in cases.items():
        with pytest.raises(ConfigError) as raised:
            EarlyStopPredictor(context, "val_loss", **options)
        assert str(raised.value) == message
    unknown = EarlyStopPredictor(context, "val_loss", column="val_loss_epoch2", epochs=50)
    with pytest.raises(ConfigError) as raised:
        unknown.predict(curve_table.motifs)
    assert str(raised.value) == ("early_stop.column: the table has no numeric column 'val_loss_epoch2' (accepted: "
                                 "val_loss_epoch1, zc_score)")
