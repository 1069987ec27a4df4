"""Time a training step of the population MLP with ActivationPopulation against SlopedSigmoid.

Per population size P: a 784-100-100-10 PopulationMLP, a batch of 100 random inputs, forward + cross-entropy +
backward + SGD step, once with ``SlopedSigmoid`` (random slopes) and once with an ``ActivationPopulation`` of P sampled
expressions. The two are interleaved, repeat by repeat, and each repeat times `--steps` steps. Prints seconds per motif
per step (min and median over repeats) and the ratio ActivationPopulation / SlopedSigmoid (target <= 1.5).

The ops' own cost, with no row gathered or moved: the first `--floor` of the P expressions, each applied directly to
the whole (P, ...) tensor (as if every member had it), their mean over SlopedSigmoid's.

    python scripts/bench_activation.py [--sizes 64 200] [--repeats 9] [--steps 5] [--floor 10] [--threads N]
                                       [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from torch import Tensor, nn

from dish.hosts.population import PopulationMLP
from dish.motifs.activation_ops import ActivationPopulation, evaluate, sample
from dish.motifs.sigmoid_slope import SlopedSigmoid

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class Expression(nn.Module):
    """One expression applied to the whole input: the ops' cost with no gather and no routing."""

    def __init__(self, fields: dict[str, object]) -> None:
        super().__init__()
        self.fields = fields

    def forward(self, x: Tensor) -> Tensor:
        return evaluate(self.fields, x)


def step_seconds(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor, labels: Tensor,
                 steps: int, clock: str = "wall") -> float:
    """Mean seconds of one forward + backward + SGD step over `steps` steps, on `clock`."""
    now = CLOCKS[clock]
    start = now()
    for _ in range(steps):
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.repeat(len(logits)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (now() - start) / steps


def bench(population_size: int, repeats: int, steps: int, seed: int, clock: str, floor: int) -> None:
    """Print the timings and ratios for one population size."""
    rng = random.Random(seed)
    slopes = [10 ** rng.uniform(-1, 1) for _ in range(population_size)]
    expressions = [sample(rng) for _ in range(population_size)]
    activations = {
        "SlopedSigmoid": SlopedSigmoid(slopes),
        "ActivationPopulation": ActivationPopulation(expressions),
        **{f"alone_{i}": Expression(expression) for i, expression in enumerate(expressions[:floor])},
    }
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(100, 784, generator=generator)
    labels = torch.randint(10, (100,), generator=generator)
    runs = {}
    for name, activation in activations.items():
        model = PopulationMLP(in_features=784, hidden=[100, 100], out_features=10, activation=activation,
                              population_size=population_size, seed=0)
        runs[name] = (model, torch.optim.SGD(model.parameters(), lr=0.01))
        step_seconds(*runs[name], inputs, labels, steps)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(step_seconds(*run, inputs, labels, steps, clock) / population_size)
    alone = [times.pop(f"alone_{i}") for i in range(min(floor, population_size))]
    if alone:
        times["ops alone"] = [statistics.mean(run) for run in zip(*alone, strict=True)]
    for name, values in times.items():
        print(f"P={population_size:4d} {name:21s} s/motif/step  min {min(values):.3e}  "
              f"median {statistics.median(values):.3e}")
    baseline = times.pop("SlopedSigmoid")
    for name, values in times.items():
        print(f"P={population_size:4d} ratio {name}/SlopedSigmoid  min {min(values) / min(baseline):.2f}  "
              f"median {statistics.median(values) / statistics.median(baseline):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 200])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floor", type=int, default=10, help="expressions timed alone (0: none)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (steadier on a shared machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock")
    for population_size in args.sizes:
        bench(population_size, args.repeats, args.steps, args.seed, args.clock, args.floor)


if __name__ == "__main__":
    main()
