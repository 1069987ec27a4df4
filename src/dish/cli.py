"""Entry-point helpers of the Hydra tasks: environment defaults and one-line errors for bad input."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dotenv import load_dotenv
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dish.errors import ConfigError, StoreError

Result = TypeVar("Result")
_full_trace = False


def user_error(exc: BaseException) -> str | None:
    """A one-line description if `exc` (or an exception it was raised from) is bad user input, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConfigError):
            return seen.message
        if isinstance(seen, StoreError):
            return str(seen)
        if isinstance(seen, MissingConfigException) and seen.missing_cfg_file and seen.options:
            group, _, option = seen.missing_cfg_file.rpartition("/")
            return f"{group}: unknown option {option!r} (accepted: {', '.join(sorted(seen.options))})"
        seen = seen.__cause__ or seen.__context__
    return None


def _exit_with(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def task(function: Callable[[DictConfig], Result]) -> Callable[[DictConfig], Result]:
    """Wrap a task function: in a single run, bad input ends the process with its one-line error.

    In a multirun the error goes up to Hydra, which names the failed job's overrides first.
    """

    @functools.wraps(function)
    def run_task(cfg: DictConfig) -> Result:
        try:
            return function(cfg)
        except Exception as exc:
            message = None if _full_trace else user_error(exc)
            if message is None or HydraConfig.get().mode == RunMode.MULTIRUN:
                raise
            _exit_with(message)
            raise  # unreachable: _exit_with raises

    return run_task


def run(main: Callable[[], Any]) -> None:
    """Run a `hydra.main` function: load ``.env``, default W&B to offline, report bad input in one line, and
    exit with status 143 when SIGTERM stops training.

    Set HYDRA_FULL_ERROR=1 to get Hydra's full traceback instead.
    """
    global _full_trace
    load_dotenv(Path.cwd() / ".env")
    os.environ.setdefault("WANDB_MODE", "offline")
    _full_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach us instead of Hydra's printer
    try:
        main()
    except SIGTERMException:  # Lightning stops training on SIGTERM with a SystemExit that reads as success
        print("error: stopped by SIGTERM; finished work is stored, and a rerun resumes the rest", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as exc:
        message = None if _full_trace else user_error(exc)
        if message is None:
            raise
        _exit_with(message)
