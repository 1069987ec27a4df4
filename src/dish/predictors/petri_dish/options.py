"""The Petri dish's options: what each accepts, their defaults, and how reports name a dish setting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dish.core.errors import BOOLEAN, NON_NEGATIVE, POSITIVE, POSITIVE_INT, ConfigError, Rule, one_of

MODEL_DEFAULTS: dict[str, Any] = {
    "sizes": (2, 1, 1, 1), "output_activation": False, "num_samples": 20, "inner_steps": 30, "inner_lr": 0.5,
    "outer_lr": 0.1, "lr_decay": 1.0, "learn_targets": False, "divergence_factor": 10.0, "inner_optimizer": "sgd",
    "loss": "mse", "init_scale": None, "sequence_length": 5, "ensemble": 1, "ensemble_score": "mean",
    "input_scale": 1.0, "chance_penalty": 0.0, "weight_gain": 1.0, "inner_clip": None, "readout": "linear",
}
"""`PetriDish`'s options and their defaults (a test keeps them equal to its signature)."""
FIT_DEFAULTS: dict[str, Any] = {"steps": 200, "gradient_clip_val": 1.0, "resume": True, "warm_start": False}
"""`DishPredictor`'s own options and their defaults."""
DISH_OPTIONS = [*MODEL_DEFAULTS, *FIT_DEFAULTS]
"""The options a dish config (``dish.<option>``) may set."""
DISH_RULES: dict[str, Rule] = {
    **dict.fromkeys(("num_samples", "inner_steps", "sequence_length", "ensemble", "steps"), POSITIVE_INT),
    **dict.fromkeys(("inner_lr", "outer_lr", "lr_decay", "divergence_factor", "input_scale", "weight_gain"),
                    POSITIVE),
    "chance_penalty": NON_NEGATIVE, "init_scale": POSITIVE.or_null(), "inner_clip": POSITIVE.or_null(),
    "gradient_clip_val": NON_NEGATIVE.or_null(),
    "output_activation": BOOLEAN, "learn_targets": BOOLEAN, "resume": BOOLEAN, "warm_start": BOOLEAN,
    "inner_optimizer": one_of("sgd", "adam"), "loss": one_of("mse", "bce"), "readout": one_of("linear", "sigmoid"),
    "ensemble_score": one_of("mean", "median"),
}
"""What each option of `PetriDish` and `DishPredictor` accepts."""


def check_dish_options(options: Mapping[str, Any]) -> None:
    """Raise a `ConfigError` naming ``dish.<option>`` for the first option value a dish cannot use."""
    for name, value in options.items():
        if name in DISH_RULES:
            DISH_RULES[name].check(f"dish.{name}", value)
    if options.get("readout") == "sigmoid" and options.get("loss") == "bce":
        raise ConfigError("dish.readout", "got 'sigmoid' with dish.loss=bce, which reads the outputs as logits",
                          accepted=["linear (with dish.loss=bce)", "sigmoid (with dish.loss=mse)"])
    sizes = options.get("sizes", [1, 1])
    if not (isinstance(sizes, Sequence) and len(sizes) >= 2 and all(POSITIVE_INT.test(size) for size in sizes)):
        raise ConfigError("dish.sizes", f"got {sizes!r}", accepted=["a list of at least two integers >= 1"])


def dish_label(options: Mapping[str, Any]) -> str:
    """How reports name a dish setting: motif-network sizes, inner steps and rate, then every other `PetriDish`
    option that differs from its default, e.g. ``dish[2, 1, 1, 1]x30@0.5 ensemble=8 input_scale=6.0``."""
    named = ("sizes", "inner_steps", "inner_lr")
    changed = [f"{key}={options[key]}" for key, default in MODEL_DEFAULTS.items()
               if key not in named and key in options and options[key] != default]
    return " ".join([f"dish{list(options['sizes'])}x{options['inner_steps']}@{options['inner_lr']}", *changed])
