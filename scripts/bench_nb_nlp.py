"""Time NAS-Bench-NLP cells stepped as one `RecipePopulation` against a loop over plain per-recipe `RecipeCell`s.

Two workloads, per population size P (cells drawn from the dev table, or sampled when it is absent):
- ``ground_truth``: the language model's cell work in one window: the cell unrolled over `--steps` (35) steps on
  (batch 32, hidden 64) inputs from zero states, the sum of its outputs back-propagated (the embedding and the
  decoder cost the same either way and are left out);
- ``dish``: the dish's inner loop: the cell at hidden 4 unrolled over 5 steps of 16 synthetic sequences with a
  linear read-out, 5 differentiable SGD steps on an MSE, then the validation loss back-propagated into the
  synthetic inputs (what one outer step costs).
Prints seconds per cell (min and median over `--repeats`) of the loop and the population, and their ratio.

    python scripts/bench_nb_nlp.py [--sizes 8 32 100] [--repeats 5] [--threads 1] [--workload ground_truth dish]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from dish.motifs import nb_nlp_recipes as recipes
from dish.motifs.nb_nlp_population import RecipePopulation

DEV_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb_nlp_dev.csv"
WORKLOADS = {"ground_truth": {"batch": 32, "hidden": 64, "steps": 35, "inner": 0},
             "dish": {"batch": 16, "hidden": 4, "steps": 5, "inner": 5}}


def cells(count: int) -> list[recipes.Recipe]:
    """`count` recipes: the dev table's first distinct ones, then sampled ones."""
    found: dict[str, recipes.Recipe] = {}
    if DEV_TABLE.is_file():
        with DEV_TABLE.open(newline="") as handle:
            for row in csv.DictReader(handle):
                found.setdefault(recipes.digest(row["recipe"]), recipes.canonical(row["recipe"]))
    rng = random.Random(0)
    while len(found) < count:
        drawn = recipes.sample(rng, rng.choice((1, 2, 3)))
        found.setdefault(recipes.digest(drawn), drawn)
    return list(found.values())[:count]


def unroll(step: Callable[[Tensor, Tensor, object], Tensor], prepared: object, x: Tensor, state: Tensor) -> Tensor:
    for inputs in x.unbind(-2):
        state = step(inputs, state, prepared)
    return state


def population_run(population: RecipePopulation, bank: list[Tensor], read_out: Tensor, x: Tensor, work: dict) -> None:
    """One window (ground truth) or one outer step (dish) of the population."""
    members, hidden = population.members, work["hidden"]

    def outputs(params: list[Tensor], data: Tensor) -> Tensor:
        state = population.initial_state(data.shape[1], hidden, data)
        final = unroll(population, population.prepare(*params[:2]), data, state)
        return population.output(final) @ params[2] if work["inner"] else population.output(final)

    run(outputs, [*bank, read_out.expand(members, -1, -1)], x, work)


def loop_run(cell_modules: list[recipes.RecipeCell], read_out: Tensor, x: Tensor, work: dict) -> None:
    """The same work, one plain per-recipe module after the other."""
    for member, cell in enumerate(cell_modules):
        names = list(dict(cell.named_parameters()))

        def outputs(params: list[Tensor], data: Tensor, cell: recipes.RecipeCell = cell,
                    names: list[str] = names) -> Tensor:
            weights = dict(zip(names, params[:-1], strict=True))
            hidden = [data.new_zeros(data.shape[1], work["hidden"])] * cell.size
            for inputs in data[0].unbind(-2):
                hidden = list(torch.func.functional_call(cell, weights, (inputs, hidden)))
            return (hidden[0] @ params[-1])[None] if work["inner"] else hidden[0][None]

        run(outputs, [p.detach() for p in cell.parameters()] + [read_out], x[member:member + 1], work)


def run(outputs: Callable[[list[Tensor], Tensor], Tensor], params: list[Tensor], x: Tensor, work: dict) -> None:
    """Ground truth: back-propagate the outputs' sum into the weights. Dish: `inner` differentiable SGD steps on
    the read-out's MSE to zero, then the final loss back-propagated into the inputs."""
    x = x.detach().requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in params]
    if not work["inner"]:
        torch.autograd.grad(outputs(params, x).sum(), params, allow_unused=True)
        return
    for _ in range(work["inner"]):
        grads = torch.autograd.grad(outputs(params, x).pow(2).mean(), params, create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
        params = [p - 0.5 * g for p, g in zip(params, grads, strict=True)]
    torch.autograd.grad(outputs(params, x).pow(2).mean(), x)


def bench(size: int, name: str, repeats: int) -> None:
    work = WORKLOADS[name]
    hidden, batch = work["hidden"], work["batch"]
    chosen = cells(size)
    population = RecipePopulation(chosen)
    torch.manual_seed(0)
    weights = population.initial_weights(hidden, torch.Generator().manual_seed(0))
    bank = [value.expand(size, *value.shape).clone() for value in weights.values()]
    modules = [recipes.RecipeCell(recipe, hidden, hidden) for recipe in chosen]
    read_out = torch.randn(hidden, 1) * 0.5
    x = torch.randn(size, batch, work["steps"], hidden)
    timings: dict[str, list[float]] = {"loop": [], "population": []}
    for _ in range(repeats):
        for label, job in (("loop", lambda: loop_run(modules, read_out, x, work)),
                           ("population", lambda: population_run(population, bank, read_out, x, work))):
            start = time.perf_counter()
            job()
            timings[label].append((time.perf_counter() - start) / size)
    loop, together = (min(timings[k]) for k in ("loop", "population"))
    medians = {k: statistics.median(v) for k, v in timings.items()}
    print(f"{name:<13}{size:>6}{loop * 1e3:>12.3f}{together * 1e3:>12.3f}{loop / together:>10.2f}"
          f"{medians['loop'] / medians['population']:>12.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 100])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'workload':<13}{'cells':>6}{'loop ms':>12}{'pop. ms':>12}{'ratio':>10}{'med. ratio':>12}"
          "   (ms per cell, min over repeats; ratio = loop / population)")
    for name in args.workload:
        for size in args.sizes:
            bench(size, name, args.repeats)


if __name__ == "__main__":
    main()
