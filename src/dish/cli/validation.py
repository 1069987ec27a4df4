"""Keys that nothing reads: a key added on the command line that no config defines or no target takes is a one-line
`ConfigError` at the start of every job (`dish.cli.task`), before anything loads or trains. Each task checks its
values itself (`dish.ground_truth.validation`, `dish.compare.validation`, `dish.search.validation`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class, get_object
from omegaconf import DictConfig, OmegaConf

from dish.core.errors import ConfigError
from dish.predictors.petri_dish.options import DISH_OPTIONS
from dish.predictors.surrogates import SURROGATES
from dish.store.tables import split_table

INSTANTIATE_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


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
    if "motif" in cfg:
        host = get_class(cfg.motif._target_).ground_truth
        readers["model"] = [key for key in keywords(host) or [] if key not in host.supplied]
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
