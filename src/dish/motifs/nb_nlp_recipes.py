"""Recurrent cells of NAS-Bench-NLP (Klyuchnikov et al. 2020, arXiv 2006.07116) as recipes.

A recipe maps node names to ``{"op": OP, "input": [names]}``. An input is another node, ``x`` (the step's input)
or ``h_prev_i`` (hidden state i of the step before); the nodes ``h_new_0 .. h_new_{k-1}`` are the new hidden tuple
(``h_new_0`` is also the cell's output). Ops (`ARITY`): ``linear`` (a weight matrix per input plus one bias),
``blend`` ((z, a, b) -> z * a + (1 - z) * b), ``elementwise_prod``, ``elementwise_sum`` and three activations.

This module holds what needs no framework: validation to a canonical form and its digest, the named cells, seeded
sampling by the benchmark's generator rules, mutation, features for surrogates, and `RecipeCell`, the plain
one-recipe module that batched populations are checked against.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Recipe = dict[str, dict[str, Any]]
"""A checked recipe: node name -> ``{"input": [names], "op": op}``, keys sorted, dead nodes removed."""

ACTIVATIONS = ("activation_tanh", "activation_sigm", "activation_leaky_relu")
ARITY: dict[str, tuple[int, ...]] = {
    "linear": (2, 3), "blend": (3,), "elementwise_prod": (2,), "elementwise_sum": (2,),
    **dict.fromkeys(ACTIVATIONS, (1,)),
}
"""Each op and the numbers of inputs it takes."""
OPS = tuple(ARITY)
COMMUTATIVE = frozenset({"linear", "elementwise_prod", "elementwise_sum"})
"""Ops whose inputs can be reordered without changing what the cell can compute (a linear has a matrix per input)."""
SAME_ARITY = {n: tuple(op for op in OPS if n in ARITY[op]) for n in (1, 2, 3)}
"""The ops a node with n inputs can have: what an op mutation chooses from."""
MAX_TUPLE = 5
"""The largest hidden tuple the features encode (the benchmark's cells carry 1 to 5 hidden states)."""
MAX_BODY = 24
"""The most non-input nodes the features encode."""
OUTPUT = re.compile(r"h_new_(\d+)")
PREVIOUS = re.compile(r"h_prev_(\d+)")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _node(op: str, *inputs: str) -> dict[str, Any]:
    return {"input": list(inputs), "op": op}


NAMED: dict[str, Recipe] = {
    "rnn": {"f": _node("linear", "x", "h_prev_0"), "h_new_0": _node("activation_tanh", "f")},
    "lstm": {  # h_prev_0: the output h, h_prev_1: the memory c
        "i": _node("linear", "x", "h_prev_0"), "i_act": _node("activation_sigm", "i"),
        "f": _node("linear", "x", "h_prev_0"), "f_act": _node("activation_sigm", "f"),
        "g": _node("linear", "x", "h_prev_0"), "g_act": _node("activation_tanh", "g"),
        "o": _node("linear", "x", "h_prev_0"), "o_act": _node("activation_sigm", "o"),
        "kept": _node("elementwise_prod", "f_act", "h_prev_1"), "written": _node("elementwise_prod", "i_act", "g_act"),
        "h_new_1": _node("elementwise_sum", "kept", "written"), "c_act": _node("activation_tanh", "h_new_1"),
        "h_new_0": _node("elementwise_prod", "o_act", "c_act"),
    },
    "gru": {  # h' = z * h + (1 - z) * tanh(W x + U (r * h))
        "r": _node("linear", "x", "h_prev_0"), "r_act": _node("activation_sigm", "r"),
        "z": _node("linear", "x", "h_prev_0"), "z_act": _node("activation_sigm", "z"),
        "reset": _node("elementwise_prod", "r_act", "h_prev_0"),
        "n": _node("linear", "x", "reset"), "n_act": _node("activation_tanh", "n"),
        "h_new_0": _node("blend", "z_act", "h_prev_0", "n_act"),
    },
}
"""Known cells written in the format (the gates as in torch's LSTMCell; the GRU with the reset before U)."""


def validate(recipe: Mapping[str, Any] | str) -> Recipe:
    """A recipe (a mapping, its JSON, or a name of `NAMED`) checked, with its own node names, or ValueError naming
    the node.

    Checks: known ops with their number of inputs, inputs that exist (``h_prev_i`` below the tuple size), outputs
    ``h_new_0 .. h_new_{k-1}`` without a gap, no cycle, and a path from every input (x and each h_prev_i) to an
    output. Nodes no output reads are dropped.
    """
    nodes = _as_mapping(recipe)
    size = tuple_size(nodes)
    cleaned: Recipe = {}
    for name, spec in nodes.items():
        if not isinstance(name, str) or not NAME.fullmatch(name) or PREVIOUS.fullmatch(name) or name == "x":
            raise ValueError(f"{name}: not a node name (a name other than x and h_prev_i)")
        if not isinstance(spec, Mapping) or set(spec) != {"op", "input"}:
            raise ValueError(f"{name}: must be {{\"op\": ..., \"input\": [...]}}, got {spec!r}")
        op, inputs = spec["op"], spec["input"]
        if op not in ARITY:
            raise ValueError(f"{name}: unknown op {op!r} (accepted: {', '.join(OPS)})")
        if not isinstance(inputs, Sequence) or isinstance(inputs, str) or len(inputs) not in ARITY[op]:
            counts = " or ".join(map(str, ARITY[op]))
            raise ValueError(f"{name}: {op} takes {counts} inputs, got {inputs!r}")
        for item in inputs:
            if item not in nodes and not _is_input(item, size):
                accepted = ", ".join(["x", *(f"h_prev_{i}" for i in range(size)), "a node of the recipe"])
                raise ValueError(f"{name}: input {item!r} does not exist (accepted: {accepted})")
        cleaned[name] = {"input": list(inputs), "op": op}
    _check_acyclic(cleaned)
    live = _read_by_outputs(cleaned, size)
    result = {name: cleaned[name] for name in sorted(live)}
    reached = {item for spec in result.values() for item in spec["input"]}
    for item in ["x", *(f"h_prev_{i}" for i in range(size))]:
        if item not in reached:
            raise ValueError(f"{item}: no path from this input to an output h_new_i")
    return result


def canonical(recipe: Mapping[str, Any] | str) -> Recipe:
    """The validated recipe with its intermediate nodes renamed ``node_0, node_1, ...`` by their structure, and the
    inputs of `COMMUTATIVE` ops sorted: two recipes that differ only in names or in such input orders get one form.

    A node's structure is what it computes from the inputs (its op and its inputs' structures) and where it is
    used (its readers' structures and positions, and the output it is). Nodes alike in both are interchangeable
    in all but contrived graphs; they keep their order by name.
    """
    checked = validate(recipe)
    renamed, below = _structure(checked)
    result: Recipe = {}
    for name, spec in checked.items():
        inputs = list(spec["input"])
        if spec["op"] in COMMUTATIVE:
            inputs.sort(key=lambda item: (item != "x", below[item], renamed.get(item, item)))
        result[renamed.get(name, name)] = {"input": [renamed.get(item, item) for item in inputs], "op": spec["op"]}
    return dict(sorted(result.items()))


def canonical_names(recipe: Mapping[str, Any] | str) -> dict[str, str]:
    """Each node of the validated `recipe` and its name in `canonical` form."""
    return _structure(validate(recipe))[0]


def _structure(checked: Recipe) -> tuple[dict[str, str], dict[str, str]]:
    """The canonical name of every node, and every node's (and input's) hash of what it computes."""
    order = topological_order(checked)
    below = {name: name for name in ("x", *(f"h_prev_{i}" for i in range(MAX_TUPLE)))}
    for name in order:
        spec = checked[name]
        inputs = [below[item] for item in spec["input"]]
        below[name] = _hash(spec["op"], *(sorted(inputs) if spec["op"] in COMMUTATIVE else inputs))
    above: dict[str, list[str]] = {name: [name] if OUTPUT.fullmatch(name) else [] for name in order}
    for name in reversed(order):
        spec = checked[name]
        mark = _hash(below[name], *sorted(above[name]))
        for slot, item in enumerate(spec["input"]):
            if item in above:
                above[item].append(_hash(mark, "" if spec["op"] in COMMUTATIVE else str(slot)))
    inner = sorted((name for name in order if not OUTPUT.fullmatch(name)),
                   key=lambda name: (below[name], sorted(above[name]), name))
    renamed = {name: f"node_{i}" for i, name in enumerate(inner)}
    return {**renamed, **{name: name for name in order if OUTPUT.fullmatch(name)}}, below


def to_json(recipe: Mapping[str, Any] | str) -> str:
    """The canonical recipe as compact JSON with sorted keys: what a store row holds."""
    return json.dumps(canonical(recipe), sort_keys=True, separators=(",", ":"))


def digest(recipe: Mapping[str, Any] | str) -> str:
    """A short stable name of the canonical recipe: the first 12 hex digits of its JSON's SHA-256."""
    return hashlib.sha256(to_json(recipe).encode()).hexdigest()[:12]


def tuple_size(nodes: Mapping[str, Any]) -> int:
    """How many hidden states the cell carries (its outputs h_new_i); ValueError on a gap or none."""
    found = sorted(int(match[1]) for name in nodes if (match := OUTPUT.fullmatch(str(name))))
    if not found:
        raise ValueError("h_new_0: missing (the outputs are h_new_0 .. h_new_{k-1})")
    for expected, index in enumerate(found):
        if index != expected:
            raise ValueError(f"h_new_{expected}: missing while h_new_{found[-1]} is present "
                             "(the outputs are h_new_0 .. h_new_{k-1})")
    if len(found) > MAX_TUPLE:
        raise ValueError(f"h_new_{MAX_TUPLE}: a hidden tuple of {len(found)} (accepted: 1 to {MAX_TUPLE})")
    return len(found)


def topological_order(recipe: Recipe) -> list[str]:
    """The nodes, each after its inputs; ties broken by name, so the order is a function of the recipe."""
    waiting = {name: {item for item in spec["input"] if item in recipe} for name, spec in recipe.items()}
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, needs in waiting.items() if not needs)
        order += ready
        for name in ready:
            del waiting[name]
        for needs in waiting.values():
            needs.difference_update(ready)
    return order


def sample(rng: random.Random, size: int, intermediate: int = 7) -> Recipe:
    """A random valid cell by the benchmark's generator rules, with a hidden tuple of `size`.

    Nodes are drawn until `size` + `intermediate` exist: linear (3 times as likely as each other op) on 2 (p 0.8)
    or 3 distinct inputs among x, the h_prev and the activations so far, always followed by an activation (uniform)
    of it; blend on 3, elementwise product or sum on 2 distinct inputs among the h_prev and the nodes so far. `size`
    nodes become the outputs, nodes no output reads are dropped, and a cell where an input is unused or an h_prev
    feeds an output directly is drawn again.
    """
    if not 1 <= size <= MAX_TUPLE:
        raise ValueError(f"size: {size} (accepted: 1 to {MAX_TUPLE})")
    previous = [f"h_prev_{i}" for i in range(size)]
    while True:
        nodes: Recipe = {}
        activations: list[str] = []
        while len(nodes) < size + intermediate:
            op = rng.choices(("linear", "blend", "elementwise_prod", "elementwise_sum"), weights=(3, 1, 1, 1))[0]
            if op == "linear":
                pool = ["x", *previous, *activations]
                inputs = rng.sample(pool, min(rng.choices((2, 3), weights=(4, 1))[0], len(pool)))
                linear = f"node_{len(nodes)}"
                nodes[linear] = _node("linear", *inputs)
                activation = f"node_{len(nodes)}"
                nodes[activation] = _node(rng.choice(ACTIVATIONS), linear)
                activations.append(activation)
            else:
                pool = [*previous, *nodes]
                count = 3 if op == "blend" else 2
                if count <= len(pool):
                    nodes[f"node_{len(nodes)}"] = _node(op, *rng.sample(pool, count))
        outputs = {name: f"h_new_{i}" for i, name in enumerate(rng.sample(sorted(nodes), size))}
        renamed = {outputs.get(name, name): {"input": [outputs.get(item, item) for item in spec["input"]],
                                             "op": spec["op"]} for name, spec in nodes.items()}
        try:
            recipe = canonical(renamed)
        except ValueError:
            continue
        if not _output_reads_previous(recipe):
            return recipe


def mutate(recipe: Mapping[str, Any], rng: random.Random) -> Recipe:
    """A valid neighbour of the canonical form of `recipe`, with that form's node names (`canonical` it for its
    key): one node's op changed to another of the same number of inputs, or one input rewired to another input,
    node or h_prev that keeps the graph acyclic (a node no output reads any more is dropped). Stays in the
    generator's space: no output reads an h_prev directly, and only linear nodes read x."""
    current = canonical(recipe)
    size = tuple_size(current)
    moves = [("op", name, None) for name, spec in current.items() if len(SAME_ARITY[len(spec["input"])]) > 1]
    moves += [("input", name, slot) for name, spec in current.items() for slot in range(len(spec["input"]))]
    for _ in range(1000):
        what, name, slot = rng.choice(moves)
        spec = current[name]
        if what == "op":
            ops = [op for op in SAME_ARITY[len(spec["input"])] if op != spec["op"]
                   and (op == "linear" or "x" not in spec["input"])]
            if not ops:
                continue
            changed = _node(rng.choice(ops), *spec["input"])
        else:
            later = _descendants(current, name)
            pool = ["x"] * (spec["op"] == "linear") + [*(f"h_prev_{i}" for i in range(size)),
                                                       *(n for n in current if n not in later)]
            choices = [item for item in pool if item not in spec["input"]]
            if not choices:
                continue
            inputs = list(spec["input"])
            inputs[slot] = rng.choice(choices)
            changed = _node(spec["op"], *inputs)
        try:
            neighbour = validate({**current, name: changed})
        except ValueError:
            continue
        if not _output_reads_previous(neighbour) and canonical(neighbour) != current:
            return neighbour
    raise ValueError(f"recipe: no valid mutation found for {to_json(current)}")


def features(recipe: Mapping[str, Any]) -> list[float]:
    """Op counts and tuple size, then the DAG as an adjacency and op one-hot (as graph predictors encode cells).

    Slots: x, h_prev_0 .. h_prev_{MAX_TUPLE-1}, then the nodes in `topological_order`, padded to `MAX_BODY`. Per
    slot a one-hot op and a one-hot of the output it is (h_new_i); then the upper triangle of the adjacency
    (slot i feeds slot j). Counts let a regressor see the gross shape; the one-hots keep which op reads which.
    """
    current = canonical(recipe)
    order = topological_order(current)
    if len(order) > MAX_BODY:
        raise ValueError(f"recipe: {len(order)} nodes, more than the {MAX_BODY} the features encode")
    slots = ["x", *(f"h_prev_{i}" for i in range(MAX_TUPLE)), *order]
    index = {name: i for i, name in enumerate(slots)}
    width = 1 + MAX_TUPLE + MAX_BODY
    counts = [float(sum(spec["op"] == op for spec in current.values())) for op in OPS]
    vector = [*counts, float(tuple_size(current)), float(len(current))]
    for i in range(width):
        name = slots[i] if i < len(slots) else None
        spec = current.get(name) if name else None
        vector += [float(spec is not None and spec["op"] == op) for op in OPS]
        output = OUTPUT.fullmatch(name or "")
        vector += [float(output is not None and int(output[1]) == k) for k in range(MAX_TUPLE)]
    edges = {(index[item], index[name]) for name, spec in current.items() for item in spec["input"]}
    vector += [float((i, j) in edges) for i in range(width) for j in range(i + 1, width)]
    return vector


class RecipeCell(nn.Module):
    """One recipe as a plain module: ``forward(x, hidden) -> new hidden tuple``, for x (batch, input_size) and a
    tuple of (batch, hidden_size) states. Every weight and bias is uniform in +-1/sqrt(hidden_size), as in the
    benchmark; a linear node has one matrix per input and one bias."""

    def __init__(self, recipe: Mapping[str, Any] | str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.recipe = validate(recipe)
        self.order = topological_order(self.recipe)
        self.size = tuple_size(self.recipe)
        bound = 1 / math.sqrt(hidden_size)
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        for name in self.order:
            spec = self.recipe[name]
            if spec["op"] != "linear":
                continue
            for slot, item in enumerate(spec["input"]):
                rows = input_size if item == "x" else hidden_size
                self.weights[f"{name}__{slot}"] = nn.Parameter(torch.empty(rows, hidden_size).uniform_(-bound, bound))
            self.biases[name] = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))

    def forward(self, x: Tensor, hidden: Sequence[Tensor]) -> tuple[Tensor, ...]:
        values = {"x": x, **{f"h_prev_{i}": h for i, h in enumerate(hidden)}}
        for name in self.order:
            spec = self.recipe[name]
            inputs = [values[item] for item in spec["input"]]
            if spec["op"] == "linear":
                values[name] = sum((value @ self.weights[f"{name}__{slot}"] for slot, value in enumerate(inputs)),
                                   self.biases[name])
            else:
                values[name] = _APPLY[spec["op"]](*inputs)
        return tuple(values[f"h_new_{i}"] for i in range(self.size))


_APPLY = {
    "blend": lambda z, a, b: z * a + (1 - z) * b,
    "elementwise_prod": torch.mul,
    "elementwise_sum": torch.add,
    "activation_tanh": torch.tanh,
    "activation_sigm": torch.sigmoid,
    "activation_leaky_relu": F.leaky_relu,
}


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _as_mapping(recipe: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(recipe, Mapping):
        return recipe
    text = str(recipe).strip()
    if text in NAMED:
        return NAMED[text]
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"recipe: neither JSON nor a named cell ({', '.join(NAMED)}): {exc}") from None
    if not isinstance(loaded, Mapping):
        raise ValueError(f"recipe: a JSON object of nodes is needed, got {type(loaded).__name__}")
    return loaded


def _is_input(name: Any, size: int) -> bool:
    match = PREVIOUS.fullmatch(str(name))
    return name == "x" or (match is not None and int(match[1]) < size)


def _check_acyclic(recipe: Recipe) -> None:
    """ValueError naming a node on a cycle and the cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for item in recipe[name]["input"]:
            if item not in recipe or state.get(item) == 2:
                continue
            if state.get(item) == 1:
                cycle = [*path[path.index(item):], item]
                raise ValueError(f"{item}: in a cycle {' -> '.join(reversed(cycle))}")
            visit(item, [*path, item])
        state[name] = 2

    for name in sorted(recipe):
        if name not in state:
            visit(name, [name])


def _read_by_outputs(recipe: Recipe, size: int) -> set[str]:
    """The nodes some output depends on (the outputs included)."""
    live: set[str] = set()
    stack = [f"h_new_{i}" for i in range(size)]
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        stack += [item for item in recipe[name]["input"] if item in recipe]
    return live


def _descendants(recipe: Recipe, name: str) -> set[str]:
    """`name` and every node that depends on it."""
    found = {name}
    changed = True
    while changed:
        changed = False
        for other, spec in recipe.items():
            if other not in found and found.intersection(spec["input"]):
                found.add(other)
                changed = True
    return found


def _output_reads_previous(recipe: Recipe) -> bool:
    return any(PREVIOUS.fullmatch(item) for name, spec in recipe.items() if OUTPUT.fullmatch(name)
               for item in spec["input"])
