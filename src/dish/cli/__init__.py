"""Entry-point helpers of the Hydra tasks: environment defaults and one-line errors for bad input."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from dotenv import load_dotenv
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dish.cli.validation import check_overrides
from dish.core.errors import ConfigError, JobError, StoreError

Result = TypeVar("Result")
FULL_ERROR = "HYDRA_FULL_ERROR"
SET_BY_DISH = "DISH_SET_HYDRA_FULL_ERROR"
"""Marks a HYDRA_FULL_ERROR=1 that `run` set (so that exceptions reach it), not the user."""


def full_trace() -> bool:
    """Whether the user asked for Hydra's full tracebacks (HYDRA_FULL_ERROR=1)."""
    return os.environ.get(FULL_ERROR) == "1" and SET_BY_DISH not in os.environ


def user_error(exc: BaseException) -> str | None:
    """A one-line description if `exc` (or an exception it was raised from) is bad user input, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        message = _describe(seen)
        if message is not None:
            return message
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(exc: BaseException) -> str | None:
    if isinstance(exc, ConfigError):
        return exc.message
    if isinstance(exc, StoreError | JobError):
        return str(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        return f"{group}: unknown option {option!r} (accepted: {', '.join(sorted(exc.options))})"
    if isinstance(exc, MissingMandatoryValue):
        return f"{exc.full_key}: is required (accepted: {exc.full_key}=<value> on the command line)"
    if isinstance(exc, ConfigCompositionException):
        return _unknown_key(exc.__cause__) or " ".join(str(exc).split())
    if isinstance(exc, OverrideParseException):
        return "bad override: " + " ".join(str(exc).split())
    return None


def _unknown_key(cause: BaseException | None) -> str | None:
    """``key: ...`` for a composition error that OmegaConf raised on a key its parent does not have."""
    parent = getattr(cause, "parent_node", None)
    if not isinstance(cause, OmegaConfBaseException) or not isinstance(parent, DictConfig):
        return None
    accepted = sorted(key for key in map(str, parent) if key != "hydra" and not key.startswith("_"))
    return f"{cause.full_key}: no such config key or group (accepted: {', '.join(accepted)})"


@contextlib.contextmanager
def _job_environment() -> Iterator[None]:
    """Hide the HYDRA_FULL_ERROR=1 that `run` set for Hydra's sake from the job and everything it launches."""
    hidden = {name: os.environ.pop(name) for name in (FULL_ERROR, SET_BY_DISH)} if SET_BY_DISH in os.environ else {}
    try:
        yield
    finally:
        os.environ.update(hidden)


def _exit_with(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _job_failed(message: str) -> NoReturn:
    """End the run, or the multirun, on a job's bad input with one line; in a multirun the line names the job.

    A submitit job hands back only exceptions (a job that exits leaves no result), and dish's sweeper (also
    behind tasks/search.py's launchers) reads a failed job's exception from its return, so there the error
    travels back to the launching process as an exception, which `run` prints as the line.
    """
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        _exit_with(message)
    message = f"job {hydra.job.num} ({' '.join(hydra.overrides.task)}): {message}"
    if "submitit" in hydra.launcher._target_ or "dish_sweeper" in hydra.sweeper._target_:
        raise JobError(message)
    _exit_with(message)  # in this process or in a joblib worker, whose SystemExit joblib re-raises here


def task(function: Callable[[DictConfig], Result]) -> Callable[[DictConfig], Result]:
    """Wrap a task function: refuse keys that nothing reads, keep HYDRA_FULL_ERROR from the job unless the user
    set it, and end the run on bad input with its one-line error."""

    @functools.wraps(function)
    def run_task(cfg: DictConfig) -> Result:
        traced = full_trace()
        with _job_environment():
            try:
                check_overrides(cfg, HydraConfig.get().overrides.task)
                return function(cfg)
            except Exception as exc:
                message = None if traced else user_error(exc)
                if message is None:
                    raise
                _job_failed(message)

    return run_task


def run(main: Callable[[], Any]) -> None:
    """Run a `hydra.main` function: load ``.env``, default W&B to offline, report bad input in one line, and
    exit with status 143 when SIGTERM stops training.

    Set HYDRA_FULL_ERROR=1 to get Hydra's full traceback instead.
    """
    load_dotenv(Path.cwd() / ".env")
    os.environ.setdefault("WANDB_MODE", "offline")
    if not full_trace():  # let exceptions reach us instead of Hydra's printer; `task` hides it from the jobs
        os.environ.update({FULL_ERROR: "1", SET_BY_DISH: "1"})
    try:
        main()
    except SIGTERMException:  # Lightning stops training on SIGTERM with a SystemExit that reads as success
        print("error: stopped by SIGTERM; finished work is stored, and a rerun resumes the rest", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as exc:
        message = None if full_trace() else user_error(exc)
        if message is None:
            raise
        _exit_with(message)
