"""The comparison: fit every predictor on the same training motifs, score the held-out ones, report."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from hydra import compose
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.errors import ConfigError
from dish.files import write_json_atomic
from dish.ground_truth_job import run_ground_truth
from dish.gt_table import GroundTruthTable, load_table, split_table
from dish.motifs import Motif, motif_class
from dish.petri_dish import DishPredictor
from dish.plots import plot_comparison
from dish.ranking import ranking_metrics
from dish.runtime import config_group, configure_torch, finish_logger, make_logger
from dish.surrogates import SURROGATES
from dish.validation import validate_compare

log = logging.getLogger(__name__)
REPORTED = ("spearman", "kendall", "pearson", "zmse", "precision_at_k", "regret")


class Predictor(Protocol):
    name: str

    def fit(self, motifs: list[Motif], scores: np.ndarray) -> None: ...

    def predict(self, motifs: list[Motif]) -> np.ndarray: ...


def make_predictor(name: str, cfg: DictConfig, motif_type: type[Motif], seed: int,
                   checkpoint_dir: Path | None = None) -> Predictor:
    """The predictor called `name`, configured from ``cfg.dish`` or ``cfg.surrogates.<name>``; a dish with a
    `checkpoint_dir` resumes an interrupted fit from there."""
    if name == "dish":
        options = OmegaConf.to_container(cfg.dish, resolve=True)
        return DishPredictor(motif_type, checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                             seed=seed, **options)
    if name in SURROGATES:
        options = OmegaConf.to_container(cfg.surrogates[name], resolve=True) if name in cfg.surrogates else {}
        return SURROGATES[name](seed=seed, **options)
    raise ConfigError("predictors", f"unknown predictor {name!r}", accepted=["dish", *SURROGATES])


def evaluate_predictor(predictor: Predictor, table: GroundTruthTable, train: GroundTruthTable,
                       heldout: GroundTruthTable, k: int) -> tuple[dict[str, Any], np.ndarray]:
    """Fit on `train` and score the whole table in one call: the held-out ranking metrics, the predicted best
    motif and timings, and the predictions for every motif of `table` (for the figure and the wandb table).

    ``excluded`` says why a report leaves the entry out (else None): a ``non-finite prediction`` or a
    ``constant prediction`` over the held-out motifs (both without metrics: null), or a ``diverged`` dish (its
    metrics are kept but are not results)."""
    start = time.perf_counter()
    predictor.fit(train.motifs, train.scores)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    curve = predictor.predict(table.motifs)
    predict_seconds = time.perf_counter() - start
    position = {motif.key: index for index, motif in enumerate(table.motifs)}
    predicted = curve[[position[motif.key] for motif in heldout.motifs]]
    problem = None
    if not np.isfinite(predicted).all():  # e.g. a dish whose inner loop overflowed
        problem = "non-finite prediction"
    elif np.ptp(predicted) <= 1e-6 * np.abs(predicted).max():  # all tied, up to a few float32 rounding steps
        problem = "constant prediction"
    entry: dict[str, Any]
    if problem is None:
        metrics = ranking_metrics(predicted, heldout.scores, k=k)
        entry = {name: float(metrics[name]) for name in REPORTED}
        entry["best_motif"] = heldout.motifs[int(metrics["best_index"])].encode()
    else:  # no ranking to judge, and the sweep goes on
        log.warning("%s: %s over the %d held-out motifs: no metrics", predictor.name, problem, len(predicted))
        entry = {**dict.fromkeys(REPORTED), "best_motif": None}
    entry["fit_seconds"] = fit_seconds
    entry["predict_seconds_per_motif"] = predict_seconds / len(table)
    if isinstance(predictor, DishPredictor) and predictor.dish is not None and predictor.last is not None:
        # A diverged inner loop can still rank motifs "well": such correlations are not results. Any motif of
        # the table counts, held out or not.
        entry["max_dish_loss"] = predictor.dish.max_dish_loss
        entry["diverged"] = bool(predictor.last.diverged.any())
        entry["diverged_outer_steps"] = predictor.dish.diverged_steps
        if entry["diverged"]:
            log.warning("the dish diverged (max loss %.3g): its numbers are not results",
                        predictor.dish.max_dish_loss)
            problem = "diverged"
    entry["excluded"] = problem
    return entry, curve


def build_ground_truth(cfg: DictConfig) -> None:
    """With ``gt.build`` (overrides of tasks/ground_truth.py), first train what the table at ``gt.path`` lacks."""
    if cfg.gt.get("build") is None:
        return
    overrides = [*cfg.gt.build, f"store.path={cfg.gt.path}"]
    with config_group("gt.build"):  # its bad values are named under gt.build
        run_ground_truth(compose(config_name="ground_truth", overrides=overrides))


def run_compare(cfg: DictConfig) -> dict[str, Any]:
    """Run the comparison of ``cfg.predictors``; write comparison.json and comparison.png in the run dir."""
    validate_compare(cfg)
    build_ground_truth(cfg)
    configure_torch(cfg.seed, cfg.threads)
    output_dir = Path(cfg.paths.output_dir)
    motif_type = motif_class(cfg.gt.motif)
    current = compose(config_name="ground_truth", overrides=list(cfg.gt.get("build") or []))  # its rows are read
    table = load_table(cfg.gt.path, motif_type, cfg.gt.score, config_hash=cfg.gt.get("config_hash"), current=current)
    split = OmegaConf.to_container(cfg.split, resolve=True)
    train, heldout = split_table(table, seed=cfg.seed, **split)
    predictors = {name: make_predictor(name, cfg, motif_type, cfg.seed, output_dir / "dish")
                  for name in cfg.predictors}
    report: dict[str, Any] = {"n_train": len(train), "n_heldout": len(heldout), "split": split,
                              "gt": {"path": str(cfg.gt.path), "score": cfg.gt.score}, "seed": cfg.seed,
                              "dish": OmegaConf.to_container(cfg.dish, resolve=True), "predictors": {}}
    curves = {}
    logger = make_logger(cfg)
    failed = True
    try:
        for name, predictor in predictors.items():
            report["predictors"][name], curves[name] = evaluate_predictor(predictor, table, train, heldout,
                                                                          cfg.metrics.k)
        write_json_atomic(output_dir / "comparison.json", report)
        plot_comparison(table, train, curves, report, output_dir / "comparison.png")
        _log(logger, report, table, train, curves)
        failed = False
    finally:
        finish_logger(logger, failed)
    log.info("held-out ranking of %d motifs (trained on %d)\n%s", len(heldout), len(train), _table(report))
    return report


def _log(logger: Logger | None, report: dict[str, Any], table: GroundTruthTable, train: GroundTruthTable,
         curves: dict[str, np.ndarray]) -> None:
    if logger is None:
        return
    logger.log_metrics({f"{name}/{metric}": value for name, entry in report["predictors"].items()
                        for metric, value in entry.items() if isinstance(value, float)})
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    trained = {motif.key for motif in train.motifs}
    columns = ["motif", *table.motifs[0].encode(), "true", *curves, "train"]
    rows = [[motif.key, *motif.encode().values(), float(table.scores[i]),
             *(float(curve[i]) for curve in curves.values()), motif.key in trained]
            for i, motif in enumerate(table.motifs)]
    predictions = wandb.Table(columns=columns, data=rows)
    plots = {f"predicted_vs_true/{name}": wandb.plot.scatter(predictions, "true", name, title=f"{name} vs true")
             for name in curves}
    logger.experiment.log({"predictions": predictions, **plots,
                           "comparison": wandb.Image(str(Path(logger.save_dir) / "comparison.png"))})


def _table(report: dict[str, Any]) -> str:
    """One line per predictor: its metrics (``-`` where it has none) and why a report leaves it out, if it does."""
    columns = (*REPORTED, "fit_seconds")
    lines = [f"{'predictor':<14}" + "".join(f"{m:>16}" for m in columns) + "  excluded"]
    for name, entry in report["predictors"].items():
        cells = "".join(f"{entry[m]:>16.4f}" if entry[m] is not None and math.isfinite(entry[m]) else f"{'-':>16}"
                        for m in columns)
        lines.append(f"{name:<14}{cells}  {entry['excluded'] or ''}".rstrip())
    return "\n".join(lines)
