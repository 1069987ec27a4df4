"""Benchmarks of ground-truth training, in seconds per motif.

``python -m dish.bench ground_truth``: activation motifs on the digits, three ways:
(a) a plain PyTorch loop (nn.Linear layers, same init, batches, budget and per-epoch validation),
(b) the Lightning single-motif job (`ClassifierGroundTruth` with one motif, as `tasks/ground_truth.py` runs it),
(c) population mode: 32 motifs in one batched `ClassifierGroundTruth`.

``python -m dish.bench language_model``: recurrent cells on the python_docs corpus (the small preset: hidden 64,
BPTT 35, batch 32), one cell per job vs a population of 13 cells in one module.

``python -m dish.bench cell_jobs`` (from the repository root): whole ``tasks/ground_truth.py task=rnn_cell`` jobs,
seconds per cell: one job per cell (on both cores, and on one thread), two one-thread jobs side by side (what a
process pool would do on 2 cores), and a population of 13 cells in one job.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from dish.core.files import write_json_atomic
from dish.data.corpus import batchify, embedded_corpus
from dish.data.images import DigitsDataModule, InMemoryDataModule
from dish.hosts.classifier import ClassifierGroundTruth
from dish.hosts.language_model import fit_language_models
from dish.hosts.population import PopulationLinear, PopulationMLP
from dish.motifs.rnn_cell import RecurrentCell
from dish.motifs.sigmoid_slope import SigmoidSlope


def plain_loop(dm: InMemoryDataModule, slope: float, epochs: int, lr: float, seed: int) -> tuple[float, float]:
    """Train one motif with a hand-written loop; returns the final validation loss and accuracy."""
    reference = PopulationMLP(dm.input_dim, [100, 100], dm.num_classes, nn.Identity(), 2, seed)
    layers: list[nn.Module] = []
    for layer in reference.children():
        if not isinstance(layer, PopulationLinear):
            continue
        linear = nn.Linear(*layer.weight.shape[1:])
        with torch.no_grad():
            linear.weight.copy_(layer.weight[0].T)
            linear.bias.copy_(layer.bias[0, 0])
        layers += [linear, SigmoidSlope.population([SigmoidSlope(slope)])]
    net = nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    batches = dm.train_dataloader()
    val_loss = val_acc = math.nan
    for epoch in range(epochs):
        batches.sampler.set_epoch(epoch)
        for x, y in next(iter(batches)).minibatches():
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = net(dm.x_val)
            val_loss = float(F.cross_entropy(logits, dm.y_val))
            val_acc = float((logits.argmax(1) == dm.y_val).float().mean())
    return val_loss, val_acc


def lightning_fit(dm: InMemoryDataModule, slopes: list[float], epochs: int, lr: float, seed: int) -> list[float]:
    """Train `slopes` as one `ClassifierGroundTruth` under a Trainer set up like the job's; final val losses."""
    module = ClassifierGroundTruth([SigmoidSlope(s) for s in slopes], dm.input_dim, dm.num_classes, [100, 100],
                               functools.partial(torch.optim.SGD, lr=lr), seed=seed)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, num_sanity_val_steps=0,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    return [row["val_loss"] for row in module.results()]


def bench_ground_truth(epochs: int, population: int, repeats: int, lr: float = 0.1, seed: int = 0) -> dict:
    """Seconds per motif of (a), (b), (c), run in interleaved rounds; min (timeit's estimate) and median."""
    torch.set_flush_denormal(True)
    dm = DigitsDataModule(seed=seed)
    dm.setup()
    slope = 10.0
    grid = torch.logspace(-2, 3, population).tolist()
    runs: dict[str, Callable[[], object]] = {
        "a_plain_pytorch": lambda: plain_loop(dm, slope, epochs, lr, seed),
        "b_lightning_single": lambda: lightning_fit(dm, [slope], epochs, lr, seed),
        f"c_population{population}": lambda: lightning_fit(dm, grid, epochs, lr, seed),
    }
    per_motif = {"a_plain_pytorch": 1, "b_lightning_single": 1, f"c_population{population}": population}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append((time.perf_counter() - start) / per_motif[name])
    figures: dict[str, object] = {"data": "digits", "epochs": epochs, "threads": torch.get_num_threads(),
                                  "repeats": repeats}
    for stat in (min, statistics.median):
        a, b, c = (stat(values) for values in seconds.values())
        figures[stat.__name__] = {"s_per_motif": dict(zip(runs, (a, b, c), strict=True)),
                                  "b_over_a": b / a, "b_over_c": b / c}
    plain_loss = plain_loop(dm, slope, epochs, lr, seed)[0]
    figures["val_loss_plain_minus_lightning"] = plain_loss - lightning_fit(dm, [slope], epochs, lr, seed)[0]
    return figures


def bench_language_model(steps: int, population: int, repeats: int) -> dict:
    """Seconds per cell per training window, one cell alone vs `population` cells at once (interleaved)."""
    corpus = embedded_corpus()
    train, valid = batchify(corpus.train, 32), batchify(corpus.valid[:3500], 10)
    cells = [RecurrentCell.sample(random.Random(seed)) for seed in range(population)]
    options = {"max_epochs": 10, "hidden": 64, "bptt": 35, "max_steps": steps}
    runs = {"single": [cells[0]], f"population{population}": cells}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, members in runs.items():
            start = time.perf_counter()
            fit_language_models(members, train, valid, len(corpus.vocab), **options)
            seconds[name].append((time.perf_counter() - start) / len(members) / steps)
    figures: dict[str, object] = {"data": "python_docs", "steps": steps, "threads": torch.get_num_threads(),
                                  "repeats": repeats}
    for stat in (min, statistics.median):
        single, batched = (stat(values) for values in seconds.values())
        figures[stat.__name__] = {"s_per_cell_step": dict(zip(runs, (single, batched), strict=True)),
                                  "single_over_population": single / batched}
    return figures


def bench_cell_jobs(population: int, repeats: int, windows: int | None = None) -> dict:
    """Seconds per cell of whole cell ground-truth jobs (small preset, or `windows` training windows; no
    logger), four ways, interleaved."""
    script = Path("tasks/ground_truth.py")
    if not script.exists():
        raise SystemExit("cell_jobs launches tasks/ground_truth.py: run it from the repository root")
    cells = [RecurrentCell.sample(random.Random(seed)).genotype for seed in range(max(population, 2))]
    ways = {"one_job_per_cell": [[f"motif.genotype={cells[0]}"]],
            "one_job_per_cell_one_thread": [[f"motif.genotype={cells[0]}", "threads=1"]],
            "two_one_thread_jobs_side_by_side": [[f"motif.genotype={cell}", "threads=1"] for cell in cells[:2]],
            f"population{population}": [[f"population.cells=[{','.join(cells[:population])}]"]]}
    counts = {name: len(jobs) for name, jobs in ways.items()} | {f"population{population}": population}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            for name, jobs in ways.items():
                folders = [Path(scratch, f"{name}-{repeat}-{index}") for index in range(len(jobs))]
                start = time.perf_counter()
                budget = [] if windows is None else [f"model.max_steps={windows}"]
                running = [subprocess.Popen([sys.executable, str(script), "task=rnn_cell", "logger=none", *budget, *job,
                                             f"store.dir={folder}", f"hydra.run.dir={folder}"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                           for job, folder in zip(jobs, folders, strict=True)]
                for process in running:
                    _, stderr = process.communicate()
                    if process.returncode != 0:
                        raise SystemExit(f"a {name} job failed:\n{stderr[-2000:]}")
                seconds[name].append((time.perf_counter() - start) / counts[name])
    figures: dict[str, object] = {"data": "python_docs", "cores": len(os.sched_getaffinity(0)), "repeats": repeats}
    for stat in (min, statistics.median):
        per_cell = {name: stat(values) for name, values in seconds.items()}
        population_cost = per_cell[f"population{population}"]
        figures[stat.__name__] = {"s_per_cell": per_cell,
                                  "over_population": {name: cost / population_cost for name, cost in per_cell.items()}}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dish.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["ground_truth", "language_model", "cell_jobs"])
    parser.add_argument("--epochs", type=int, default=50, help="ground_truth: epochs per run")
    parser.add_argument("--steps", type=int, help="training windows per run (language_model: 20; cell_jobs: the "
                        "small preset's)")
    parser.add_argument("--population", type=int, help="motifs trained at once (default 32 / 13)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    if args.what == "ground_truth":
        figures = bench_ground_truth(args.epochs, args.population or 32, args.repeats)
    elif args.what == "language_model":
        figures = bench_language_model(args.steps or 20, args.population or 13, args.repeats)
    else:
        figures = bench_cell_jobs(args.population or 13, args.repeats, args.steps)
    print(json.dumps(figures, indent=2))
    if args.json:
        write_json_atomic(Path(args.json), figures)


if __name__ == "__main__":
    main()
