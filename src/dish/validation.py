"""Up-front checks of a task's config: a bad value, or a key that nothing reads, is a one-line `ConfigError`
before any data is loaded, any logger run is started or anything is trained.

`check_overrides` runs at the start of every job (`dish.cli.task`); `validate_ground_truth`, `validate_compare`
and `validate_search` at the start of their task.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class, get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from dish.cells import RecurrentCell
from dish.errors import (
    BOOLEAN,
    INTEGER,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    NUMBER,
    POSITIVE,
    POSITIVE_INT,
    TEXT,
    ConfigError,
    one_of,
)
from dish.gt_table import SCORE_ORIENTATION, SPLIT_PROTOCOLS, split_table
from dish.language_model import LanguageModelGroundTruth
from dish.motifs import Motif, motif_class
from dish.petri_dish import DISH_OPTIONS, DishPredictor
from dish.runtime import config_group
from dish.surrogates import SURROGATES

INSTANTIATE_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
SEARCH_PREDICTORS = ("dish", *SURROGATES, "random")
"""What `search.predictor` accepts: the dish, a surrogate, or none (random search)."""
STOP_TARGETS = ("best", "top_fraction")
OPTIMIZER_ACCEPTS = {"lr": "a number >= 0", "momentum": "a number >= 0", "dampening": "a number >= 0",
                     "weight_decay": "a number >= 0", "eps": "a number >= 0", "betas": "two numbers in [0, 1)"}
"""What torch's optimizers accept for their common options, for the error when one refuses a value."""


# --- keys that nothing reads --------------------------------------------------------------------------------

def check_overrides(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """Refuse a key added on the command line (``+key=value``) that nothing reads, and any key of a section with
    a ``_target_`` that its target does not take. ``hydra.*`` keys and config groups are Hydra's business; a
    ``++key`` outside the sections dish passes on as keyword arguments may override an existing key, so only
    its section is checked."""
    choices = HydraConfig.get().runtime.choices
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    added = {o.key_or_group: o.is_add() for o in parsed if (o.is_add() or o.is_force_add())
             and o.key_or_group.partition(".")[0] != "hydra" and o.key_or_group not in choices}
    readers = keyword_readers(cfg)
    for key, strictly in sorted(added.items()):
        _check_added(cfg, key, readers, set(added), strictly)
    for section, accepted in readers.items():
        node = OmegaConf.select(cfg, section)
        if accepted is not None and "_target_" in node:
            for key in node:
                if key not in (*INSTANTIATE_KEYS, *accepted):
                    raise ConfigError(f"{section}.{key}", f"{node._target_} takes no argument {key!r}",
                                      accepted=sorted(accepted))


def keyword_readers(cfg: DictConfig) -> dict[str, list[str] | None]:
    """The config sections dish passes on as keyword arguments, with the keywords they take (None: any)."""
    readers: dict[str, list[str] | None] = {
        section: keywords(get_object(node._target_)) for section, node in cfg.items()
        if isinstance(node, DictConfig) and "_target_" in node}
    if "dish" in cfg:
        readers["dish"] = DISH_OPTIONS
    if "split" in cfg:
        readers["split"] = [name for name in keywords(split_table) or [] if name not in ("table", "seed")]
    for name in cfg.get("surrogates") or {}:
        if name in SURROGATES:
            readers[f"surrogates.{name}"] = [key for key in keywords(SURROGATES[name]) or [] if key != "seed"]
    if "motif" in cfg and issubclass(get_class(cfg.motif._target_), RecurrentCell):
        supplied = ("cells", "vocab_size", "seed")
        readers["model"] = [key for key in keywords(LanguageModelGroundTruth) or [] if key not in supplied]
    return readers


def keywords(target: Callable[..., Any]) -> list[str] | None:
    """The keyword arguments `target` takes, or None when it takes any. A class's ``**kwargs`` are taken to go
    on to its base class's ``__init__`` (the Python convention), so those count too."""
    owners = [owner.__init__ for owner in inspect.getmro(target) if "__init__" in vars(owner)] \
        if inspect.isclass(target) else [target]
    names: list[str] = []
    for function in owners:
        parameters = inspect.signature(function).parameters.values()
        names += [p.name for p in parameters if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                                                 p.KEYWORD_ONLY)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names
    return None


def _check_added(cfg: DictConfig, key: str, readers: dict[str, list[str] | None], added: set[str],
                 strictly: bool) -> None:
    """An added `key` must be an argument of the section it is in (and, added with one ``+``, in a section that
    dish passes on at all)."""
    section = next((name for name in readers if key.startswith(f"{name}.")), None)
    if section is None:
        if strictly:
            raise ConfigError(key, "no config file defines this key and nothing reads it",
                              accepted=_defined_keys(cfg, key, added))
        return
    accepted = readers[section]
    argument = key[len(section) + 1:].partition(".")[0]
    if accepted is not None and argument not in accepted:
        taker = OmegaConf.select(cfg, f"{section}._target_") or section
        raise ConfigError(key, f"{taker} takes no argument {argument!r}", accepted=sorted(accepted) or ["none"])


def _defined_keys(cfg: DictConfig, key: str, added: set[str]) -> list[str]:
    """The keys the config files define next to `key`: at its parent, or further up where the parent is itself
    made only of added keys."""
    parent = key
    while parent:
        parent = parent.rpartition(".")[0]
        node = OmegaConf.select(cfg, parent) if parent else cfg
        defined = [name for name in node if not _only_added(cfg, f"{parent}.{name}".lstrip("."), added)]
        if defined:
            return sorted(defined)
    return []


def _only_added(cfg: DictConfig, path: str, added: set[str]) -> bool:
    node = OmegaConf.select(cfg, path)
    return path in added or (isinstance(node, DictConfig) and all(_only_added(cfg, f"{path}.{name}", added)
                                                                   for name in node))


# --- the tasks' values ----------------------------------------------------------------------------------------

def validate_ground_truth(cfg: DictConfig) -> None:
    """The ground-truth job's settings: budget, optimizer, seed, threads, checkpoints and the population list."""
    POSITIVE_INT.check("trainer.max_epochs", cfg.trainer.max_epochs)
    INTEGER.check("seed", cfg.seed)
    POSITIVE_INT.or_null().check("threads", cfg.threads)
    BOOLEAN.check("force", cfg.force)
    POSITIVE_INT.or_null().check("checkpoint.every_n_epochs", cfg.checkpoint.every_n_epochs)
    POSITIVE.or_null().check("checkpoint.every_minutes", cfg.checkpoint.every_minutes)
    _check_population(cfg, get_class(cfg.motif._target_))
    if cfg.get("optimizer"):  # optimizer=none: the model's own update rule
        _check_optimizer(cfg.optimizer)


def validate_compare(cfg: DictConfig) -> None:
    """The comparison's settings: the table (``gt.*``), the split's types and every predictor's options."""
    if OmegaConf.is_missing(cfg.gt, "path"):
        raise ConfigError("gt.path", "is required: the ground-truth CSV to compare the predictors on",
                          accepted=["a CSV file, e.g. gt.path=store/sigmoid_slope_digits.csv"])
    if cfg.gt.get("build") is None and not Path(cfg.gt.path).is_file():
        raise ConfigError("gt.path", f"no such file {cfg.gt.path}",
                          accepted=["an existing ground-truth CSV", "gt.build=[...] to train it first"])
    one_of(*SCORE_ORIENTATION).check("gt.score", cfg.gt.score)
    try:
        motif_type = motif_class(cfg.gt.motif)
    except ConfigError as exc:
        raise ConfigError("gt.motif", exc.problem, exc.accepted) from None
    INTEGER.check("seed", cfg.seed)
    POSITIVE_INT.or_null().check("threads", cfg.threads)
    POSITIVE_INT.check("metrics.k", cfg.metrics.k)
    _check_split(cfg.split)
    for name in cfg.predictors:
        _check_predictor(cfg, name, motif_type)


def validate_search(cfg: DictConfig) -> None:
    """The search's settings, its predictor's options and, for live ground truth, the ground-truth job's."""
    settings = cfg.search
    if settings.predictor not in SEARCH_PREDICTORS:
        raise ConfigError("search.predictor", f"unknown predictor {settings.predictor!r}", accepted=SEARCH_PREDICTORS)
    for field in ("budget", "top_k"):
        if not POSITIVE_INT.test(settings[field]):
            raise ConfigError(f"search.{field}", f"must be a positive integer, got {settings[field]!r}")
    if not NON_NEGATIVE_INT.test(settings.explore):
        raise ConfigError("search.explore", f"must be a non-negative integer, got {settings.explore!r}")
    if settings.stop_at is not None and settings.stop_at not in STOP_TARGETS:
        raise ConfigError("search.stop_at", f"unknown target {settings.stop_at!r}", accepted=[*STOP_TARGETS, None])
    INTEGER.check("search.seed", settings.seed)
    NON_NEGATIVE_INT.check("search.start.random", settings.start.random)
    POSITIVE_INT.check("search.candidates.slopes", settings.candidates.slopes)
    for field in ("random", "mutations", "parents"):
        NON_NEGATIVE_INT.check(f"search.candidates.{field}", settings.candidates[field])
    for field in ("slope_min", "slope_max"):
        POSITIVE.check(f"search.candidates.{field}", settings.candidates[field])
    NON_NEGATIVE.check("search.tolerance", settings.tolerance)
    if settings.predictor != "random":
        _check_predictor(cfg, settings.predictor, get_class(cfg.motif._target_))
    if cfg.ground_truth.oracle == "live":  # (the oracle's own settings: `dish.oracles.check_settings`)
        validate_ground_truth(cfg)


def _check_population(cfg: DictConfig, motif_type: type[Motif]) -> None:
    """Only the chosen motif kind's list (``population.<its field>``) is read; a list of another kind is not."""
    for field, values in cfg.population.items():
        if values is not None and field != motif_type.population_field:
            raise ConfigError(f"population.{field}", f"lists motifs of another kind than {motif_type.kind}, "
                              "the chosen motif, so nothing would read it",
                              accepted=[f"population.{motif_type.population_field}", f"population.{field}=null"])


def _check_optimizer(optimizer: DictConfig) -> None:
    """Build the optimizer on a dummy parameter; a value torch refuses names its field."""
    parameter = [torch.nn.Parameter(torch.zeros(1))]
    try:
        instantiate(optimizer)(parameter)
    except (TypeError, ValueError) as exc:
        target = get_object(optimizer._target_)
        options = {key: value for key, value in OmegaConf.to_container(optimizer, resolve=True).items()
                   if key not in INSTANTIATE_KEYS}
        for field, value in options.items():  # the option torch refuses on its own
            try:
                target(parameter, **{field: value})
            except (TypeError, ValueError) as refused:
                accepted = OPTIMIZER_ACCEPTS.get(field, f"what {optimizer._target_} accepts")
                raise ConfigError(f"optimizer.{field}", f"got {value!r}; {optimizer._target_} says: {refused}",
                                  accepted=[accepted]) from None
        raise ConfigError("optimizer", f"{optimizer._target_} refuses these options together: {exc}",
                          accepted=[f"options {optimizer._target_} accepts together"]) from None


def _check_split(split: DictConfig) -> None:
    """The types of the split's fields (how many motifs it selects is checked once the table is read)."""
    one_of(*SPLIT_PROTOCOLS).check("split.protocol", split.protocol)
    rules = {"n": NON_NEGATIVE_INT, "slope_min": NUMBER.or_null(), "slope_max": NUMBER.or_null(), "column": TEXT}
    for field, rule in rules.items():
        if field in split:
            rule.check(f"split.{field}", split[field])


def _check_predictor(cfg: DictConfig, name: str, motif_type: type[Motif]) -> None:
    """Build the predictor `name` from its options (``dish.*`` or ``surrogates.<name>.*``), which checks them."""
    if name == "dish":
        DishPredictor(motif_type, **OmegaConf.to_container(cfg.dish, resolve=True))  # type: ignore[arg-type]
    elif name in SURROGATES:
        options = OmegaConf.to_container(cfg.surrogates[name], resolve=True) if name in cfg.surrogates else {}
        with config_group(f"surrogates.{name}"):
            SURROGATES[name](**options)  # type: ignore[arg-type]
    else:
        raise ConfigError("predictors", f"unknown predictor {name!r}", accepted=["dish", *SURROGATES])
