"""Architecture search with a predictor in the loop: fit it on what is known, score every candidate in one
batched call, send the predicted best (plus one random pick) to ground truth, repeat until the budget is spent.

The ledger (JSON, rewritten atomically after every step) holds every evaluation and the picks of the round in
flight, so an interrupted search continues where it stopped: picks already trained are read back from the store,
never retrained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.types import TaskFunction
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from dish.compare.job import table_gt_seconds
from dish.core.errors import ConfigError
from dish.core.files import write_json_atomic
from dish.core.runtime import configure_torch, finish_logger, make_logger
from dish.motifs.kind import Motif
from dish.predictors.petri_dish.harness import DishPredictor
from dish.predictors.petri_dish.options import dish_label
from dish.predictors.registry import PredictorContext, make_predictor
from dish.report.plots import plot_search
from dish.search.acquisition import make_acquisition
from dish.search.cascade import Cascade, EarlyScores
from dish.search.oracles import Oracle, make_oracle
from dish.search.strategies import PredictorSearch, RandomSearch, Strategy, TpeSearch
from dish.search.validation import validate_search

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """One ground-truth evaluation of the search: round 0 holds the starting motifs, which cost no budget."""

    key: str
    motif: dict[str, Any]
    score: float  # higher = better; NaN when training failed
    round: int
    why: str  # start | predicted | explore | random


class Ledger:
    """The search's evaluations and in-flight picks, in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        content = json.loads(path.read_text()) if path.exists() else {}
        # a failed evaluation's score is stored as null (strict JSON) and read back as NaN
        self.evaluations = [Evaluation(**{**entry, "score": math.nan if entry["score"] is None else entry["score"]})
                            for entry in content.get("evaluations", [])]
        self.pending: list[dict[str, Any]] = content.get("pending", [])
        self.screened: dict[str, dict[str, Any]] = content.get("screened", {})
        """A cascade's early-stopped scores by motif key, with the round and the cost (in full evaluations)."""
        self.strategy_seconds: dict[str, float] = content.get("strategy_seconds", {})
        """Seconds the strategy took to choose each round's picks, by round."""

    def save(self) -> None:
        write_json_atomic(self.path, {"evaluations": [asdict(e) for e in self.evaluations], "pending": self.pending,
                                      "screened": self.screened, "strategy_seconds": self.strategy_seconds})

    @property
    def spent(self) -> int:
        return sum(e.round > 0 for e in self.evaluations)

    @property
    def round(self) -> int:
        return max((e.round for e in self.evaluations), default=0)


def candidates(cfg: DictConfig, motif_type: type[Motif], oracle: Oracle, ledger: Ledger,
               rng: random.Random) -> list[Motif]:
    """The motifs a round may pick, none evaluated yet: the oracle's whole pool where it has one (a table), else
    the kind's own candidates (`Motif.candidates`, settings ``search.candidates``)."""
    if oracle.pool is not None:
        pool = oracle.pool
    else:
        evaluated = [(motif_type.decode(e.motif), e.score) for e in ledger.evaluations if math.isfinite(e.score)]
        pool = motif_type.candidates(rng, evaluated, OmegaConf.to_container(cfg.search.candidates, resolve=True))
    seen = {e.key for e in ledger.evaluations}
    unique = {motif.key: motif for motif in pool if motif.key not in seen}
    return list(unique.values())


def choose(strategy: Strategy, ledger: Ledger, pool: list[Motif], top_k: int, explore: int, left: int,
           rng: random.Random) -> list[tuple[Motif, str]]:
    """At most `left` motifs of `pool`: the `top_k` the strategy ranks best and `explore` random others (all
    ``top_k + explore`` from a strategy that `takes_whole_round`: random search)."""
    picks = min(top_k + explore, left, len(pool))
    motif_type = type(pool[0])
    evaluated = [(motif_type.decode(e.motif), e.score) for e in ledger.evaluations if math.isfinite(e.score)]
    best = picks if strategy.takes_whole_round else min(top_k, picks)
    ranked = strategy.rank(evaluated, pool, best, ledger.round + 1, rng)
    if ranked is None:  # e.g. a dish whose every outer step diverged: it ranks nothing
        log.warning("the strategy ranked no candidate: this round's picks are random")
        return [(motif, "random") for motif in rng.sample(pool, picks)]
    order = [*ranked, *(i for i in range(len(pool)) if i not in set(ranked))]
    rest = [pool[i] for i in order[best:]]
    return ([(pool[i], strategy.why) for i in order[:best]]
            + [(motif, "explore") for motif in rng.sample(rest, picks - best)])


def best_curve(evaluations: list[Evaluation], screened: dict[str, dict[str, Any]] | None = None,
               strategy_seconds: dict[str, float] | None = None, gt_seconds: float | None = None
               ) -> list[dict[str, Any]]:
    """The best true score found so far, after the starting motifs (spent 0) and after each budgeted one, with
    the compute spent by then: `gt_equivalents` (full evaluations plus a cascade's screened motifs at their
    cost, up to that evaluation's round) and, where one evaluation's `gt_seconds` is known, `seconds` (that
    work plus the strategy's own seconds)."""
    best: Evaluation | None = None
    screens = sorted((entry["round"], entry["cost"]) for entry in (screened or {}).values())
    chosen = sorted((int(round_), seconds) for round_, seconds in (strategy_seconds or {}).items())
    curve = []

    def point(spent: int, round_: int) -> dict[str, Any]:
        work = spent + sum(cost for r, cost in screens if r <= round_)
        seconds = None if gt_seconds is None else work * gt_seconds + sum(t for r, t in chosen if r <= round_)
        return {"spent": spent, "best_score": best.score if best else -math.inf,
                "best_motif": best.motif if best else None, "gt_equivalents": work, "seconds": seconds}

    for e in [e for e in evaluations if e.round == 0]:
        if math.isfinite(e.score) and (best is None or e.score > best.score):
            best = e
    curve.append(point(0, 0))
    for spent, e in enumerate((e for e in evaluations if e.round > 0), start=1):
        if math.isfinite(e.score) and (best is None or e.score > best.score):
            best = e
        curve.append(point(spent, e.round))
    return curve


def reached(curve: list[dict[str, Any]], threshold: float, measure: str = "spent") -> float | None:
    """The `measure` of the curve (budgeted evaluations, ``gt_equivalents`` or ``seconds``) when the best score
    first reached `threshold` (None: never)."""
    return next((point[measure] for point in curve if point["best_score"] >= threshold), None)


ADDED_WITH_DEFAULTS: dict[str, Any] = {"acquisition": "greedy", "kappa": 2.0, "min_distance": 0.5,
                                       "cascade": {"screen": None, "table": None, "column": None,
                                                   "score": "val_loss", "fraction": None, "epochs": None}}
"""Search settings added after ledgers were first written, with the values that behave as before them."""


def ledger_path(cfg: DictConfig) -> Path:
    """Where this search keeps its ledger: named by a digest of everything that decides its picks, so a rerun
    of the same command continues (also with a larger budget) and any other search starts afresh."""
    if cfg.search.ledger:
        return Path(cfg.search.ledger)
    stacked = ["dish_stacked"] if cfg.search.predictor == "dish_stacked" else []  # added later, read by it only
    decided_by = OmegaConf.to_container(OmegaConf.masked_copy(cfg, ["search", "ground_truth", "dish", "surrogates",
                                                                     "data", "model", "optimizer", "trainer",
                                                                     "motif", "seed", *stacked]), resolve=False)
    for reporting_only in ("ledger", "budget", "tolerance", "top_fraction"):
        decided_by["search"].pop(reporting_only, None)
    if decided_by["ground_truth"].get("config_hash") is None:  # added later: older ledgers keep their names
        decided_by["ground_truth"].pop("config_hash", None)
    for name, default in ADDED_WITH_DEFAULTS.items():  # so do searches that leave these at their defaults
        if decided_by["search"].get(name, default) == default:
            decided_by["search"].pop(name, None)
    digest = hashlib.sha256(json.dumps(decided_by, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(cfg.store.dir) / "searches" / f"{cfg.search.predictor}-seed{cfg.search.seed}-{digest}.json"


def make_strategy(cfg: DictConfig, motif_type: type[Motif], oracle: Oracle, ledger: Ledger) -> Strategy:
    """The strategy ``search.predictor`` names (``random``, ``tpe`` or a predictor, through
    ``search.acquisition``), wrapped in the cascade when ``search.cascade.screen`` is set."""
    settings = cfg.search
    if settings.predictor == "random":
        strategy: Strategy = RandomSearch()
    elif settings.predictor == "tpe":
        strategy = TpeSearch(settings.seed)
    else:
        predictor = make_predictor(settings.predictor, cfg, PredictorContext(motif_type, settings.seed))
        if isinstance(predictor, DishPredictor):
            predictor.warm_start = settings.warm_start
        strategy = PredictorSearch(predictor, make_acquisition(settings.acquisition, settings.kappa),
                                   settings.min_distance, settings.seed)
    if settings.cascade.screen is None:
        return strategy
    early = EarlyScores(settings.cascade, getattr(oracle, "table", None), motif_type)
    return Cascade(strategy, early, settings.cascade.screen, ledger.screened)


def run_search(cfg: DictConfig, oracle: Oracle | None = None,
               ground_truth_task: TaskFunction | None = None) -> dict[str, Any]:
    """Search until ``search.budget`` ground-truth evaluations are spent; write search.json and search.png.
    `oracle`: the ground truth (None: the one ``ground_truth.oracle`` names; the Hydra sweeper passes its
    launcher's); `ground_truth_task`: what a job that ``ground_truth.launcher`` launches runs (the task of
    tasks/ground_truth.py)."""
    validate_search(cfg)
    settings = cfg.search
    configure_torch(settings.seed, cfg.threads)
    output_dir = Path(cfg.paths.output_dir)
    motif_type: type[Motif] = get_class(cfg.motif._target_)
    oracle = oracle or make_oracle(cfg, motif_type, output_dir / "ground_truth", ground_truth_task)
    ledger = Ledger(ledger_path(cfg))
    if ledger.evaluations or ledger.pending:
        log.info("continuing the search in %s: %d evaluation(s) done, %d of %d budgeted", ledger.path,
                 len(ledger.evaluations), ledger.spent, settings.budget)
    strategy = make_strategy(cfg, motif_type, oracle, ledger)
    logger = make_logger(cfg)
    failed = True
    try:
        start = round_start = time.perf_counter()
        if not ledger.evaluations and not ledger.pending:
            _start(cfg, motif_type, oracle, ledger)
        while True:
            if ledger.pending:
                _evaluate_pending(motif_type, oracle, ledger, round_start)
            left = settings.budget - ledger.spent
            if left <= 0 or _target_reached(oracle, ledger, settings):
                break
            rng = random.Random(f"{settings.seed}-{ledger.round + 1}")
            pool = candidates(cfg, motif_type, oracle, ledger, rng)
            if not pool:
                log.info("every candidate is evaluated: stopping with %d of %d budgeted", ledger.spent,
                         settings.budget)
                break
            round_start = time.perf_counter()
            picks = choose(strategy, ledger, pool, settings.top_k, settings.explore, left, rng)
            ledger.strategy_seconds[str(ledger.round + 1)] = time.perf_counter() - round_start
            ledger.pending = [{"motif": m.encode(), "why": why, "round": ledger.round + 1} for m, why in picks]
            ledger.save()
        result = _result(cfg, oracle, ledger, time.perf_counter() - start)
        write_json_atomic(output_dir / "search.json", result)
        plot_search({result["label"]: [result]}, output_dir / "search.png")
        _log(logger, result, output_dir)
        failed = False
    finally:
        finish_logger(logger, failed)
    log.info("best motif after %d evaluation(s): %s (score %.4f)%s", result["spent"], result["best_motif"],
             result["best_score"], _reach_line(result))
    return result


def _start(cfg: DictConfig, motif_type: type[Motif], oracle: Oracle, ledger: Ledger) -> None:
    """Round 0: the motifs already known (the store, or a table's flagged rows) and ``search.start.random``
    random candidates, evaluated before the budget starts."""
    start = cfg.search.start
    known = list(oracle.known().values()) if start.store else []
    if start.flag is not None:
        table = getattr(oracle, "table", None)
        if table is None or start.flag not in table.extra:
            raise ConfigError("search.start.flag", f"{start.flag!r} is not a 0/1 column of ground_truth.table")
        known += [(motif, float(score)) for motif, score, flag in
                  zip(table.motifs, table.scores, table.extra[start.flag], strict=True) if flag == 1]
    for motif, score in known:
        ledger.evaluations.append(Evaluation(motif.key, motif.encode(), score, 0, "start"))
    rng = random.Random(f"{cfg.search.seed}-0")
    pool = candidates(cfg, motif_type, oracle, ledger, rng)
    ledger.pending = [{"motif": m.encode(), "why": "start", "round": 0}
                      for m in rng.sample(pool, min(start.random, len(pool)))]
    if not ledger.evaluations and not ledger.pending:
        raise ConfigError("search.start", "starts from nothing: set search.start.random, or start.flag with a "
                          "table, or start.store with a store that has rows for this config")
    ledger.save()


def _evaluate_pending(motif_type: type[Motif], oracle: Oracle, ledger: Ledger, since: float) -> None:
    """Score the round's picks and log one line on the round: its picks and their scores, the best score so
    far and the seconds since `since` (when the round began choosing)."""
    motifs = [motif_type.decode(entry["motif"]) for entry in ledger.pending]
    round_ = ledger.pending[0]["round"]
    scores = oracle.evaluate(motifs, f"round_{round_}")
    for motif, entry, score in zip(motifs, ledger.pending, scores, strict=True):
        ledger.evaluations.append(Evaluation(motif.key, motif.encode(), float(score), entry["round"], entry["why"]))
    picks = ", ".join(f"{motif.key} ({entry['why']}) {score:.4f}"
                      for motif, entry, score in zip(motifs, ledger.pending, scores, strict=True))
    best = max((e for e in ledger.evaluations if math.isfinite(e.score)), key=lambda e: e.score, default=None)
    so_far = f"{best.score:.4f} ({best.key})" if best else "none"
    log.info("round %d: %s; best so far %s; %.1f s", round_, picks, so_far, time.perf_counter() - since)
    ledger.pending = []
    ledger.save()


def _target_reached(oracle: Oracle, ledger: Ledger, settings: DictConfig) -> bool:
    """Whether a table search asked to stop at a target (``stop_at``) has found it: a motif within `tolerance`
    of the table's best (``best``), or one of its top `top_fraction` (``top_fraction``)."""
    table = getattr(oracle, "table", None)
    if settings.stop_at is None or table is None:
        return False
    best = max((e.score for e in ledger.evaluations if math.isfinite(e.score)), default=-math.inf)
    return best >= _thresholds(table.scores, settings)[settings.stop_at]


def _thresholds(scores: np.ndarray, settings: DictConfig) -> dict[str, float]:
    """The scores that count as having found the table's best, and its top fraction."""
    ranked = np.sort(scores)[::-1]
    top = ranked[max(math.ceil(settings.top_fraction * len(ranked)) - 1, 0)]
    return {"best": float(ranked[0] - settings.tolerance), "top_fraction": float(top)}


def _result(cfg: DictConfig, oracle: Oracle, ledger: Ledger, seconds: float) -> dict[str, Any]:
    """search.json's content; ``ground_truth`` names the searched table (or the live store) and score column.
    Nothing found yet is NaN (best_score) or -inf (a curve's best_score): null in the file."""
    evaluations = ledger.evaluations
    searched = cfg.ground_truth.table if cfg.ground_truth.oracle == "table" else cfg.store.path
    table = getattr(oracle, "table", None)
    gt_seconds = None if table is None else table_gt_seconds(table, None, 1.0)
    curve = best_curve(evaluations, ledger.screened, ledger.strategy_seconds, gt_seconds)
    finite = [e for e in evaluations if math.isfinite(e.score)]
    best = max(finite, key=lambda e: e.score) if finite else None
    result: dict[str, Any] = {
        "predictor": cfg.search.predictor, "strategy": _strategy(cfg.search.predictor), "label": _label(cfg),
        "acquisition": cfg.search.acquisition, "cascade": cfg.search.cascade.screen,
        "seed": cfg.search.seed, "budget": cfg.search.budget,
        "spent": ledger.spent, "started_with": sum(e.round == 0 for e in evaluations),
        "best_motif": best.motif if best else None, "best_score": best.score if best else math.nan,
        "curve": curve, "evaluations": [asdict(e) for e in evaluations], "ledger": str(ledger.path),
        "seconds": seconds, "screened": len(ledger.screened), "gt_equivalents": curve[-1]["gt_equivalents"],
        "strategy_seconds": sum(ledger.strategy_seconds.values()), "gt_seconds": gt_seconds,
        "ground_truth": {"oracle": cfg.ground_truth.oracle, "source": Path(searched).name,
                                             "score": cfg.ground_truth.score},
    }
    if table is not None:  # a table knows its optimum: how fast was it reached?
        thresholds = _thresholds(table.scores, cfg.search)
        result.update(pool_best=float(table.scores.max()), pool_size=len(table),
                      evals_to_best=reached(curve, thresholds["best"]),
                      evals_to_top_fraction=reached(curve, thresholds["top_fraction"]),
                      gt_equivalents_to_top_fraction=reached(curve, thresholds["top_fraction"], "gt_equivalents"),
                      seconds_to_top_fraction=reached(curve, thresholds["top_fraction"], "seconds"),
                      top_fraction=cfg.search.top_fraction)
    return result


def _strategy(predictor: str) -> str:
    """dish, surrogate, tpe or random."""
    return predictor if predictor in ("dish", "random", "tpe") else "surrogate"


def _label(cfg: DictConfig) -> str:
    """The strategy as reports name it: the surrogate by its model, the dish by its settings (`dish_label`, as in
    the comparison's report)."""
    predictor = cfg.search.predictor
    if predictor in ("random", "tpe"):
        label = predictor
    else:
        label = (dish_label(OmegaConf.to_container(cfg.dish, resolve=True)) if predictor == "dish"
                 else f"surrogate:{predictor}")
        if cfg.search.acquisition != "greedy":
            label += f"+{cfg.search.acquisition}"
    return label if cfg.search.cascade.screen is None else f"{label}+cascade{cfg.search.cascade.screen}"


def _reach_line(result: dict[str, Any]) -> str:
    """For a table search: how far the best found is from the table's best, and when the best and the top
    fraction were reached (or that they were not, within the budget)."""
    if "pool_best" not in result:
        return ""

    def when(spent: int | None) -> str:
        return "not within the budget" if spent is None else f"after {spent} evaluation(s)"

    gap = result["pool_best"] - result["best_score"]
    distance = f"within {gap:.4g} of the table's best" if math.isfinite(gap) else "no score found"
    return (f"; {distance}; the best reached {when(result['evals_to_best'])}, the top "
            f"{result['top_fraction']:.0%} {when(result['evals_to_top_fraction'])}")


def _log(logger: Logger | None, result: dict[str, Any], output_dir: Path) -> None:
    """The curve as a metric over evaluations spent, the final numbers, and with W&B a table of evaluations, a
    line plot and the figure."""
    if logger is None:
        return
    found = [point for point in result["curve"] if math.isfinite(point["best_score"])]  # -inf: nothing found yet
    for point in found:
        logger.log_metrics({"search/best_score": point["best_score"]}, step=point["spent"])
    summary = {f"final/{key}": value for key, value in result.items()
               if isinstance(value, int | float) and math.isfinite(value)}
    logger.log_metrics(summary)
    if isinstance(logger, WandbLogger):
        import wandb

        rows = [[e["round"], e["why"], e["key"], e["score"]] for e in result["evaluations"]]
        evaluations = wandb.Table(columns=["round", "why", "motif", "score"], data=rows)
        curve = wandb.Table(columns=["spent", "best_score"],
                            data=[[p["spent"], p["best_score"]] for p in found])
        logger.experiment.log({"evaluations": evaluations,
                               "best_vs_spent": wandb.plot.line(curve, "spent", "best_score",
                                                                title="best true score vs evaluations"),
                               "search": wandb.Image(str(output_dir / "search.png"))})
