"""The comparison: fit every predictor on the same training motifs, score the held-out ones, report."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.compare.ranking import ranking_metrics
from dish.compare.validation import host_overrides, validate_compare
from dish.core.errors import ConfigError
from dish.core.files import write_json_atomic
from dish.core.runtime import config_group, configure_torch, finish_logger, make_logger
from dish.ground_truth.job import run_ground_truth
from dish.motifs.kind import motif_class
from dish.predictors.petri_dish.harness import DishPredictor
from dish.predictors.registry import Predictor, PredictorContext, chosen_predictors, make_predictor
from dish.report.plots import plot_comparison
from dish.store.tables import GroundTruthTable, load_table, split_table

log = logging.getLogger(__name__)
MAX_DIVERGED = 0.5
"""A dish whose inner loop blows up on more than this fraction of the table's motifs has diverged as a whole."""
REPORTED = ("spearman", "kendall", "pearson", "zmse", "precision_at_k", "regret")


def evaluate_predictor(predictor: Predictor, table: GroundTruthTable, train: GroundTruthTable,
                       heldout: GroundTruthTable, k: int,
                       gt_seconds: float | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Fit on `train` and score the whole table in one call: the held-out ranking metrics, the predicted best
    motif, timings and `cost` (see `predictor_cost`; `gt_seconds`: one ground-truth evaluation of the table),
    and the predictions for every motif of `table` (for the figure and the wandb table).

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
    predicted = worst_last(curve[[position[motif.key] for motif in heldout.motifs]])
    problem = None
    if isinstance(predictor, DishPredictor) and not predictor.trained:
        problem = "diverged"  # every outer step: no ranking at all
    elif not np.isfinite(predicted).all():  # e.g. a dish whose inner loop overflowed
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
    entry.update(getattr(predictor, "details", {}))  # e.g. what the stacked dish chose
    entry["cost"] = predictor_cost(predictor, fit_seconds, predict_seconds / len(table), len(train), len(heldout),
                                   gt_seconds)
    if isinstance(predictor, DishPredictor) and predictor.dish is not None and predictor.last is not None:
        # A motif whose own dish run blows up is ranked last (`PetriDish.score`). A dish that learned nothing, or
        # blows up on most motifs, can still rank motifs "well": such correlations are not results.
        diverged = predictor.last.diverged
        entry["max_dish_loss"] = predictor.dish.max_dish_loss
        entry["diverged"] = not predictor.trained or bool(diverged.mean() > MAX_DIVERGED)
        entry["diverged_motifs"] = int(diverged.sum())
        entry["diverged_outer_steps"] = predictor.dish.diverged_steps
        if entry["diverged"]:
            log.warning("the dish diverged (max loss %.3g): its numbers are not results",
                        predictor.dish.max_dish_loss)
            problem = "diverged"
    entry["excluded"] = problem
    return entry, curve


def predictor_cost(predictor: Predictor, fit_seconds: float, predict_seconds_per_motif: float, n_train: int,
                   n_scored: int, gt_seconds: float | None) -> dict[str, float | None]:
    """What a predictor costs: seconds to fit; seconds per scored motif (its prediction, plus the training a
    table column recorded); the ground-truth evaluations it consumed (the training motifs it learns from, plus
    the fraction of one that it trains for each of the `n_scored` motifs); and the same seconds in ground-truth
    evaluations (`gt_seconds` each; null when the table has no timing)."""
    seconds_per_motif = predict_seconds_per_motif + getattr(predictor, "recorded_seconds_per_motif", 0.0)
    per_motif = getattr(predictor, "gt_evaluations_per_motif", 0.0)
    trained = n_train if getattr(predictor, "uses_training_scores", True) else 0
    return {"fit_seconds": fit_seconds, "seconds_per_motif": seconds_per_motif,
            "gt_evaluations": trained + per_motif * n_scored, "gt_evaluations_per_motif": per_motif,
            "gt_seconds": gt_seconds,
            "gt_equivalents_per_motif": None if not gt_seconds else seconds_per_motif / gt_seconds,
            "fit_gt_equivalents": None if not gt_seconds else fit_seconds / gt_seconds}


def table_gt_seconds(table: GroundTruthTable, column: str | None, scale: float) -> float | None:
    """Mean seconds of one ground-truth evaluation of `table`: its `column` times `scale` (e.g. seconds per epoch
    times epochs), or without a column the project's own rows' share of their population's wall time; None where
    neither is known."""
    if column is not None:
        if column not in table.extra:
            raise ConfigError("gt.timing_column", f"the table has no numeric column {column!r}",
                              accepted=sorted(table.extra))
        return float(np.nanmean(table.extra[column])) * scale
    if {"wall_seconds", "population_size"} <= set(table.extra):
        return float(np.nanmean(table.extra["wall_seconds"] / table.extra["population_size"]))
    return None


def worst_last(predicted: np.ndarray) -> np.ndarray:
    """Predictions with -inf (a motif the predictor calls unusable, e.g. one whose dish run diverged) placed just
    below the lowest finite one, so that rankings put them last; NaN stays NaN."""
    finite = predicted[np.isfinite(predicted)]
    if not np.isneginf(predicted).any() or not len(finite):
        return predicted
    spread = np.ptp(finite) or 1.0
    return np.where(np.isneginf(predicted), finite.min() - spread, predicted)


def build_ground_truth(cfg: DictConfig) -> None:
    """With ``gt.build`` (overrides of tasks/ground_truth.py), first train what the table at ``gt.path`` lacks."""
    if cfg.gt.get("build") is None:
        return
    overrides = [*cfg.gt.build, f"store.path={cfg.gt.path}"]
    with config_group("gt.build"):  # its bad values are named under gt.build
        run_ground_truth(compose(config_name="ground_truth", overrides=overrides))


def run_compare(cfg: DictConfig) -> dict[str, Any]:
    """Run the comparison of ``cfg.predictors`` (null: every one that applies to the kind); write comparison.json
    and comparison.png in the run dir."""
    validate_compare(cfg)
    build_ground_truth(cfg)
    configure_torch(cfg.seed, cfg.threads)
    output_dir = Path(cfg.paths.output_dir)
    motif_type = motif_class(cfg.gt.motif)
    current = compose(config_name="ground_truth", overrides=list(cfg.gt.get("build") or []))  # its rows are read
    table = load_table(cfg.gt.path, motif_type, cfg.gt.score, config_hash=cfg.gt.get("config_hash"), current=current)
    split = OmegaConf.to_container(cfg.split, resolve=True)
    train, heldout = split_table(table, seed=cfg.seed, **split)
    if split.get("folds") is not None:  # cross-validation inside the training motifs: the rest stay unseen
        table = train.join(heldout)
    gt_seconds = table_gt_seconds(table, cfg.gt.get("timing_column"), cfg.gt.get("timing_scale", 1.0))
    host = current if cfg.gt.get("build") is not None else compose(config_name="ground_truth",
                                                                     overrides=host_overrides(cfg))
    context = PredictorContext(motif_type, cfg.seed, host, cfg.gt.get("build") is not None, table, gt_seconds,
                               output_dir)
    predictors = {name: make_predictor(name, cfg, context) for name in chosen_predictors(cfg.predictors, motif_type)}
    report: dict[str, Any] = {"n_train": len(train), "n_heldout": len(heldout), "split": split,
                              "gt": {"path": str(cfg.gt.path), "score": cfg.gt.score}, "seed": cfg.seed,
                              "dish": OmegaConf.to_container(cfg.dish, resolve=True), "predictors": {}}
    curves = {}
    logger = make_logger(cfg)
    failed = True
    try:
        for name, predictor in predictors.items():
            report["predictors"][name], curves[name] = evaluate_predictor(predictor, table, train, heldout,
                                                                          cfg.metrics.k, gt_seconds)
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
