"""Run every shell command of the README as written, in a temporary copy of the checkout, with small-budget
overrides appended (epochs, budgets, sizes), and check that each exits 0 and writes the outputs it names.

Commands that need a GPU, the network or a cluster, and the set-up steps that CI has just run, are listed and
skipped by name with the reason. Commands run in README order in one copy, so a command finds what the ones
above it made (the store of the main job, a multirun to report on), as for a reader going down the page. The
sections from each heading of `LANES` on read nothing that earlier sections make, so they run in a copy of their own
beside the others (three lanes on CI's two cores: much of each command is Python start-up); `--serial` runs every
command in one copy. Every command gets one torch thread (OMP_NUM_THREADS=1, the only change to a newcomer's
environment besides W&B's folders): processes of two threads each side by side oversubscribe the cores.

    python scripts/check_readme.py             # every command
    python scripts/check_readme.py --list      # what would run (with the appended overrides) or be skipped
    python scripts/check_readme.py -k search   # only the commands containing 'search' (and no other)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[1]
SHELL_FENCE = re.compile(r"^\s*```(?:bash|sh|shell)\s*$")
INLINE = re.compile(r"`((?:python|bash|pytest|ruff|wandb) [^`]+)`")

LANES = ("## Activation functions built from operations",
         "## The estimators practitioners use instead, and what each costs")
"""Headings from which the commands run in a fresh copy of their own, beside the commands above them."""
SKIPPED = (  # (pattern in a command, why it is not run here)
    (r"^pip install", "installs dish: .ci/run has just done it on this checkout"),
    (r"^pytest\b", "the test command: .ci/run runs it before this check"),
    (r"^bash \.ci/run", "CI itself"),
    (r"scripts/check_readme\.py", "this check itself"),
    (r"experiment=paper_rnn_gpu", "needs a GPU (trainer.accelerator=gpu) and downloads PTB"),
    (r"experiment=nb_nlp_paper_gpu", "needs a GPU (trainer.accelerator=gpu) and downloads WikiText-2"),
    (r"data\.download=true", "downloads data (network)"),
    (r"^wandb sync", "uploads to wandb.ai (network and an account)"),
    (r"slurm", "needs a SLURM cluster (tests/test_slurm.py runs the local one in CI)"),
    (r"^dish-", "a console script of a non-editable install: scripts/check_install.sh runs it in a fresh venv"),
)


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of the README (continuation lines joined) and the line it starts on."""

    text: str
    line: int

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text, comments=True)

    @property
    def skip_reason(self) -> str | None:
        return next((why for pattern, why in SKIPPED if re.search(pattern, self.text)), None)


def extract(readme: str) -> list[Command]:
    """The commands of the fenced shell blocks and the inline code spans that start with a program, in order;
    a command written twice counts once, and ``a && b`` is two commands."""
    found: dict[str, Command] = {}
    for command in sorted([*_fenced(readme), *_inline(readme)], key=lambda c: c.line):
        for part in _and_list(command.text):
            found.setdefault(part, Command(part, command.line))
    return list(found.values())


def _fenced(readme: str) -> Iterator[Command]:
    lines = readme.splitlines()
    inside, pending, start = False, "", 0
    for number, line in enumerate(lines, start=1):
        if line.strip().startswith("```"):
            inside = not inside and bool(SHELL_FENCE.match(line))
            continue
        if not inside or (not pending and (not line.strip() or line.lstrip().startswith("#"))):
            continue
        start = start if pending else number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].strip() + " "
            continue
        yield Command(_without_comment(pending + line.strip()), start)
        pending = ""


def _inline(readme: str) -> Iterator[Command]:
    for match in INLINE.finditer(readme):
        yield Command(" ".join(match.group(1).split()), readme.count("\n", 0, match.start()) + 1)


def _without_comment(text: str) -> str:
    """`text` up to a ``#`` that starts a shell comment (outside quotes, after a blank)."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index].rstrip()
    return text.rstrip()


def _and_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(" && ")]


def small_budget(command: Command) -> list[str]:
    """Overrides appended to `command` so that it runs in seconds: few epochs, windows, outer steps, seeds, and
    fewer Fashion-MNIST images."""
    words = command.words
    cells = any(word in ("task=rnn_cell", "gt.motif=rnn_cell", "experiment=paper_rnn_small", "motif=nb_nlp_cell",
                         "gt.motif=nb_nlp_cell") for word in words) or _builds_cells(words)
    ground_truth = ["model.max_steps=3"] if cells else ["trainer.max_epochs=2"]
    if words[:2] == ["python", "tasks/ground_truth.py"]:
        sweeper = []
        if "hydra/sweeper=dish" in words:  # replaces the command's own list of search overrides
            sweeper = ['hydra.sweeper.search=["search.budget=2","dish.steps=2","search.start.random=2"]']
        if "experiment=optuna_slope" in words:
            sweeper = ["hydra.sweeper.n_trials=3"]
        return [*ground_truth, *_fewer_images("ground_truth", words[2:]), *sweeper]
    if words[:2] == ["python", "tasks/compare.py"]:
        return ["dish.steps=2", *_smaller_sweep(words), *_small_ground_truth(words[2:], ground_truth)]
    if words[:2] == ["python", "tasks/search.py"]:
        seeds = [] if any(word.startswith("search.seed=") for word in words) else ["search.seed=0"]
        return [*ground_truth, *_fewer_images("search", words[2:]), "search.budget=2", "dish.steps=2", *seeds]
    if words[:3] == ["python", "-m", "dish.bench"]:
        return ["--repeats", "1", "--epochs", "2", "--steps", "2", "--population", "2"]
    if words[:2] == ["python", "scripts/bench_activation.py"]:
        return ["--sizes", "8", "--repeats", "1", "--steps", "1", "--floor", "2"]
    if words[:2] == ["python", "scripts/bench_nb_nlp.py"]:
        return ["--sizes", "4", "--repeats", "1"]
    return []


def _builds_cells(words: list[str]) -> bool:
    """Whether a comparison's ground-truth build (``gt.build``, e.g. an experiment's) trains cells."""
    if words[:2] != ["python", "tasks/compare.py"]:
        return False
    return "task=rnn_cell" in (_composed("compare", words[2:]).gt.get("build") or [])


def _smaller_sweep(words: list[str]) -> list[str]:
    """An experiment's sweep over seeds, cut to one seed (its report still aggregates), and over training sizes
    (``split.n``), to its first size; one over cross-validation folds (``split.fold``), to two folds of one seed.
    A seed or size the command sets itself is kept."""
    if not _multirun(words):
        return []
    swept = _experiments(words)
    if "split.fold:" in swept:
        return ["seed=0", "split.fold=0,1"]
    smaller = []
    if re.search(r"^\s+seed:", swept, re.MULTILINE) and not any(word.startswith("seed=") for word in words):
        smaller.append("seed=0")
    sizes = re.search(r"^\s+split\.n:\s*(\d+),", swept, re.MULTILINE)
    if sizes and not any(word.startswith("split.n=") for word in words):
        smaller.append(f"split.n={sizes[1]}")
    return smaller


def _small_ground_truth(arguments: list[str], budget: list[str]) -> list[str]:
    """A comparison on the small-budget ground truth: a build (``gt.build``) gets the `budget` overrides too; a
    comparison on a store table without a build picks the rows of the default config at that budget
    (``gt.config_hash``), since the README's default-budget rows are not in the check's store."""
    gt = _composed("compare", arguments).gt
    if gt.get("build") is not None:
        return [_list_override("gt.build", [*gt.build, *budget, *_fewer_images("ground_truth", list(gt.build))])]
    if not str(gt.path).startswith("store/"):
        return []
    from dish.core.provenance import ground_truth_hash

    task = ["task=rnn_cell"] if gt.motif == "rnn_cell" else []
    return [f"gt.config_hash={ground_truth_hash(_composed('ground_truth', [*task, *budget]))}"]


def _fewer_images(config: str, arguments: list[str]) -> list[str]:
    """1k of Fashion-MNIST's 10k training and 10k validation images, where `config` under `arguments` trains on it."""
    target = str(_composed(config, arguments).data._target_)
    return ["data.subset=1000", "data.val_subset=1000"] if target.endswith("FashionMnistDataModule") else []


def _composed(config: str, arguments: list[str]) -> DictConfig:
    """The config `config` of conf/ under the plain overrides among `arguments` (no flags, no sweeps)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain = [argument for argument in arguments if not argument.startswith("-")]
    overrides = [argument for argument, parsed in zip(plain, OverridesParser.create().parse_overrides(plain),
                                                      strict=True) if not parsed.is_sweep_override()]
    with COMPOSING, initialize_config_dir(str(REPO / "conf"), version_base="1.3"):  # one global Hydra at a time
        return compose(config, overrides=overrides)


COMPOSING = threading.Lock()
"""Held while Hydra's global state composes a config for `small_budget` (lanes run in threads)."""


def _list_override(key: str, items: list[str]) -> str:
    return f"{key}=[{','.join(f'{chr(34)}{item}{chr(34)}' for item in items)}]"


def expected_outputs(command: Command) -> list[str]:
    """Globs (relative to the checkout) of what `command` must have written, as the README says (``a|b``: either;
    a leading ``?``: the file may be older, e.g. a store whose motifs were all stored before and skipped)."""
    words = command.words
    if words[:2] == ["python", "tasks/report.py"]:  # its folder is a shell expression: any sweep's report
        return ["outputs/*/multiruns/*/report.json|outputs/*/multiruns/*/search_report.json"]
    if words[:3] == ["python", "-m", "dish.bench"]:
        return [words[words.index("--json") + 1]] if "--json" in words else []
    if words[0] != "python" or not words[1].startswith("tasks/"):
        return []
    task = Path(words[1]).stem
    folder = f"outputs/{task}/multiruns/*/*" if _multirun(words) else f"outputs/{task}/runs/*"
    written = {"ground_truth": "?store/*.csv", "compare": f"{folder}/comparison.json",
               "search": f"{folder}/search.json"}
    return [f"{folder}/.hydra/config.yaml", written[task]]


def _multirun(words: list[str]) -> bool:
    """Whether the command sweeps: ``-m``, or an experiment in MULTIRUN mode that ``hydra.mode=RUN`` does not undo."""
    return "-m" in words or ("mode: MULTIRUN" in _experiments(words) and "hydra.mode=RUN" not in words)


def _experiments(words: list[str]) -> str:
    """The text of the experiment files that `words` select, and of the experiments they extend (their defaults)."""
    names = [word.partition("=")[2] for word in words if word.startswith("experiment=")]
    texts = []
    while names:
        text = (REPO / "conf" / "experiment" / f"{names.pop()}.yaml").read_text()
        texts.append(text)
        names += [entry for entry in OmegaConf.create(text).get("defaults", [])
                  if isinstance(entry, str) and entry != "_self_"]
    return "\n".join(texts)


def copy_checkout(target: Path) -> None:
    """The files git tracks plus the untracked ones it does not ignore (what a fresh clone of a commit of the
    working tree holds), and ``../shared`` beside it when the checkout has one."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_symlink():  # e.g. conf -> src/dish/conf
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).symlink_to(os.readlink(REPO / name))
        elif (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    if (REPO.parent / "shared").is_dir():
        (target.parent / "shared").symlink_to(REPO.parent / "shared")


def environment(home: Path, checkout: Path) -> dict[str, str]:
    """A newcomer's environment: W&B offline with its files under `home`, nothing redirected, the copy's code;
    one torch thread per process, since the lanes run side by side."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WANDB_", "HYDRA_")) and key not in ("DATA_DIR", "DISH_STORE")}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(home), WANDB_CACHE_DIR=str(home / "cache"),
               WANDB_CONFIG_DIR=str(home / "config"), WANDB_DATA_DIR=str(home / "data"),
               PYTHONPATH=str(checkout / "src"), PYTHONUNBUFFERED="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    return env


def missing_outputs(checkout: Path, globs: list[str], since: float) -> list[str]:
    """The globs of `expected_outputs` with no file under `checkout` written at or after `since`."""
    def fresh(pattern: str) -> bool:
        if pattern.startswith("?"):
            return any(checkout.glob(pattern[1:]))
        return any(path.stat().st_mtime >= since for path in checkout.glob(pattern))

    return [alternatives for alternatives in globs if not any(fresh(p) for p in alternatives.split("|"))]


def lanes(readme: str, commands: list[Command]) -> list[list[Command]]:
    """`commands` split at the headings of `LANES` (each must be a line of `readme`), in README order."""
    lines = readme.splitlines()
    starts = []
    for heading in LANES:
        if heading not in lines:
            raise SystemExit(f"check_readme: the lane heading {heading!r} is not a line of the README")
        starts.append(lines.index(heading) + 1)
    split: list[list[Command]] = [[] for _ in range(len(starts) + 1)]
    for command in commands:
        split[sum(command.line > start for start in starts)].append(command)
    return [lane for lane in split if lane]


def run(commands: list[Command], timeout: float) -> int:
    """Run `commands` in one temporary checkout; print a line per command; the failure count."""
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="dish-readme-") as scratch:
        checkout, home = Path(scratch, "repo"), Path(scratch, "home")
        home.mkdir()
        copy_checkout(checkout)
        env = environment(home, checkout)
        for command in commands:
            text = " ".join([command.text, *map(shlex.quote, small_budget(command))])
            since = time.time() - 1  # file systems keep mtimes to the second or coarser
            start = time.perf_counter()
            try:
                done = subprocess.run(["bash", "-c", text], cwd=checkout, env=env, capture_output=True, text=True,
                                      timeout=timeout, check=False)
                status, output = done.returncode, done.stdout + done.stderr
            except subprocess.TimeoutExpired as exc:
                status, output = f"timed out after {timeout:.0f} s", str(exc.stdout or "") + str(exc.stderr or "")
            missing = missing_outputs(checkout, expected_outputs(command), since) if status == 0 else []
            seconds = time.perf_counter() - start
            if status == 0 and not missing:
                passed += 1
                print(f"ok    {seconds:6.1f} s  README:{command.line}  {text}", flush=True)
                continue
            failed += 1
            problem = f"exit status {status}" if status != 0 else f"wrote nothing at {', '.join(missing)}"
            print(f"FAIL  {seconds:6.1f} s  README:{command.line}  {text}\n      {problem}; its output ends:\n"
                  + "\n".join(f"      | {line}" for line in output.splitlines()[-30:]), flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("-k", dest="keyword", help="only the commands that contain this text")
    parser.add_argument("--list", action="store_true", help="print the plan and run nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one command may take")
    parser.add_argument("--serial", action="store_true", help="every command in one copy, one after another")
    args = parser.parse_args()
    readme = args.readme.read_text()
    commands = [c for c in extract(readme) if args.keyword is None or args.keyword in c.text]
    skipped = [c for c in commands if c.skip_reason]
    for command in skipped:
        print(f"skip  README:{command.line}  {command.text}  ({command.skip_reason})")
    runnable = [c for c in commands if not c.skip_reason]
    if args.list:
        for command in runnable:
            print(f"run   README:{command.line}  {' '.join([command.text, *map(shlex.quote, small_budget(command))])}")
        return
    split = [runnable] if args.serial else lanes(readme, runnable)
    with ThreadPoolExecutor(max(1, len(split))) as pool:
        failed = sum(pool.map(lambda lane: run(lane, args.timeout), split))
    print(f"readme: {len(runnable) - failed} passed, {failed} failed, {len(skipped)} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
