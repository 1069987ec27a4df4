"""Activation functions built from operations (Ramachandran, Zoph & Le 2017, "Searching for Activation Functions").

An activation is a dict of fields (see `FIELDS`): the core unit ``y1 = binary(unary1(x), unary2(x))``, optionally a
second unit ``y = binary2(unary3(y1), unary4(x))`` (its three fields all ``"none"`` when absent), a fixed constant
``beta`` (not learned) used by the ops in `BETA_OPS`, and a ``name``: ``""`` for a plain grammar expression, or one of
the named functions (`NAMED_EXPRESSIONS`, written in the grammar; `NAMED_EXTRAS`, outside it).

Nothing is clamped: an op that overflows yields inf or NaN, which the training host records as a failed member.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-6
"""The epsilon of ``log_abs`` (``log(|x| + EPS)``) and ``div`` (``x1 / (x2 + EPS)``, as written in the paper)."""

UnaryOp = Callable[[Tensor, float], Tensor]
BinaryOp = Callable[[Tensor, Tensor, float], Tensor]

_select = torch.ops.aten.threshold_backward
"""``_select(g, s, 0)``: g where s > 0, else 0 -- one fast kernel (ReLU's backward), unlike ``torch.where``."""


@dataclasses.dataclass(frozen=True)
class _Derivative:
    """An elementwise op with a hand-written backward ``backward(grad, output, *inputs) -> input grads``.

    The backward is written with differentiable torch ops of the saved inputs and output, so it runs under
    ``create_graph=True`` and gives second derivatives.
    """

    forward: Callable[..., Tensor]
    backward: Callable[..., tuple[Tensor, ...]]

    def __call__(self, *inputs: Tensor) -> Tensor:
        return _Custom.apply(self, *inputs)


class _Custom(torch.autograd.Function):
    """Runs a `_Derivative`."""

    @staticmethod
    def forward(ctx, op: _Derivative, *inputs: Tensor) -> Tensor:  # type: ignore[override]
        output = op.forward(*inputs)
        ctx.op = op
        ctx.save_for_backward(output, *inputs)
        return output

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return None, *ctx.op.backward(grad, *ctx.saved_tensors)


def _sinc(x: Tensor) -> Tensor:
    """``sin(x) / x`` with 1 at 0 (and NaN at NaN or inf); its second derivative at exactly 0 comes out 0."""
    zero = x == 0
    return (x.sin() + zero) / (x + zero)


def _asinh(x: Tensor) -> Tensor:
    """``asinh(x) = sign(x) (log1p(a) + log1p(a^2 / ((1 + sqrt(1 + a^2)) (1 + a))))``, a = |x|: no overflow below inf.

    asinh(+-inf) comes out NaN (non-finite all the same). ``torch.asinh`` is not vectorised on CPU: ten times slower.
    """
    a = x.abs()
    ratio = (a / (torch.hypot(a, a.new_ones(())) + 1)) * (a / (a + 1))
    return (a.log1p() + ratio.log1p()).copysign(x)


def _split(grad: Tensor, first_wins: Tensor) -> tuple[Tensor, Tensor]:
    """The gradient to the first input where `first_wins` > 0, to the second elsewhere (ties included)."""
    first = _select(grad, first_wins, 0)
    return first, grad - first


_MAX = _Derivative(torch.maximum, lambda g, y, a, b: _split(g, a - b))
_MIN = _Derivative(torch.minimum, lambda g, y, a, b: _split(g, b - a))
_MIN0 = _Derivative(lambda x: x.clamp(max=0), lambda g, y, x: (_select(g, -x, 0),))
_SINC = _Derivative(_sinc, lambda g, y, x: (g * (x.cos() - y) / (x + (x == 0)),))
_ASINH = _Derivative(_asinh, lambda g, y, x: (g / torch.hypot(x, x.new_ones(())),))

UNARY: dict[str, UnaryOp] = {
    "x": lambda x, beta: x,
    "neg": lambda x, beta: -x,
    "abs": lambda x, beta: x.abs(),
    "square": lambda x, beta: x.square(),
    "cube": lambda x, beta: x.pow(3),
    "sqrt_abs": lambda x, beta: x.abs().sqrt(),
    "scale": lambda x, beta: x * beta,
    "shift": lambda x, beta: x + beta,
    "log_abs": lambda x, beta: x.abs().add_(EPS).log(),
    "exp": lambda x, beta: x.exp(),
    "sin": lambda x, beta: x.sin(),
    "cos": lambda x, beta: x.cos(),
    "sinh": lambda x, beta: x.sinh(),
    "cosh": lambda x, beta: x.cosh(),
    "tanh": lambda x, beta: x.tanh(),
    "asinh": lambda x, beta: _ASINH(x),
    "atan": lambda x, beta: x.atan(),
    "sinc": lambda x, beta: _SINC(x),
    "relu": lambda x, beta: x.relu(),
    "min0": lambda x, beta: _MIN0(x),
    "sigmoid": lambda x, beta: x.sigmoid(),
    "softplus": lambda x, beta: F.softplus(x),
    "gauss": lambda x, beta: x.square().neg_().exp_(),
    "erf": lambda x, beta: x.erf(),
    "zero": lambda x, beta: torch.zeros_like(x),
    "one": lambda x, beta: torch.ones_like(x),
}
"""Unary ops ``f(x, beta)``. ``sinc`` is the unnormalised ``sin(x) / x`` with ``sinc(0) = 1`` (not ``torch.sinc``,
which is ``sin(pi x) / (pi x)``); ``zero`` and ``one`` are the constants 0 and 1, which let the grammar write a single
unary function exactly. ``min0`` passes no gradient at 0. An op may work in place on tensors it creates, never on its
input."""

BINARY: dict[str, BinaryOp] = {
    "add": lambda x1, x2, beta: x1 + x2,
    "mul": lambda x1, x2, beta: x1 * x2,
    "sub": lambda x1, x2, beta: x1 - x2,
    "div": lambda x1, x2, beta: x1 / (x2 + EPS),
    "max": lambda x1, x2, beta: _MAX(x1, x2),
    "min": lambda x1, x2, beta: _MIN(x1, x2),
    "sigmoid_mul": lambda x1, x2, beta: x1.sigmoid() * x2,
    "gauss_dist": lambda x1, x2, beta: (x1 - x2).square().mul_(-beta).exp_(),
    "laplace_dist": lambda x1, x2, beta: (x1 - x2).abs().mul_(-beta).exp_(),
    "mix": lambda x1, x2, beta: torch.add(x1 * beta, x2, alpha=1 - beta),
}
"""Binary ops ``f(x1, x2, beta)``. At a tie, ``max`` passes the whole gradient to x2 and ``min`` to x2 as well
(``torch.maximum`` would split it); both propagate NaN."""

BETA_OPS = frozenset({"scale", "shift", "gauss_dist", "laplace_dist", "mix"})
"""The ops that read ``beta``."""

NONE = "none"
FIELDS = ("unary1", "unary2", "binary", "unary3", "unary4", "binary2", "beta", "name")
UNARY_SLOTS = ("unary1", "unary2", "unary3", "unary4")
BINARY_SLOTS = ("binary", "binary2")
OP_SLOTS = ("unary1", "unary2", "binary", "unary3", "unary4", "binary2")
SECOND_UNIT = ("unary3", "unary4", "binary2")

NAMED_EXPRESSIONS: dict[str, dict[str, object]] = {
    name: {"unary1": u1, "unary2": u2, "binary": b, "unary3": NONE, "unary4": NONE, "binary2": NONE, "beta": 1.0,
           "name": name}
    for name, u1, u2, b in [
        ("relu", "relu", "zero", "add"),
        ("silu", "x", "x", "sigmoid_mul"),
        ("tanh", "tanh", "zero", "add"),
        ("sigmoid", "sigmoid", "zero", "add"),
        ("softplus", "softplus", "zero", "add"),
        ("identity", "x", "zero", "add"),
    ]
}
"""Named functions that the grammar writes exactly, with their canonical fields."""

NAMED_EXTRAS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
}
"""Named functions outside the grammar (gelu with the exact erf, elu with alpha 1, leaky_relu with slope 0.01)."""

ALIASES = {"swish": "silu"}
_NAMES = ("", *NAMED_EXPRESSIONS, *NAMED_EXTRAS, *ALIASES)
_BY_WRITING = {tuple(fields[slot] for slot in OP_SLOTS): name for name, fields in NAMED_EXPRESSIONS.items()}


def _ops(slot: str) -> list[str]:
    """The ops a slot draws from."""
    return list(UNARY if slot in UNARY_SLOTS else BINARY)


def _accepted(slot: str) -> list[str]:
    """The values a slot accepts: its ops, and ``"none"`` in the second unit."""
    return [*_ops(slot), NONE] if slot in SECOND_UNIT else _ops(slot)


def canonical(fields: Mapping[str, object]) -> dict[str, object]:
    """The normal form of an activation description: all of `FIELDS`, in order.

    Aliases resolve (swish -> silu); a named function gets its fields (all ops ``"none"`` for a named extra); a grammar
    expression field-for-field equal to a `NAMED_EXPRESSIONS` writing gets that name; ``beta`` is 1.0 when no op reads
    it. Missing fields default to ``"none"``, beta 1.0, name ``""``. Raises ValueError naming the offending field.
    """
    for key in fields:
        if key not in FIELDS:
            raise ValueError(f"{key}: unknown field (accepted: {', '.join(FIELDS)})")
    name = str(fields.get("name", ""))
    if name not in _NAMES:
        raise ValueError(f"name: unknown function {name!r} (accepted: {', '.join(map(repr, _NAMES))})")
    name = ALIASES.get(name, name)
    ops = {slot: str(fields.get(slot, NONE)) for slot in OP_SLOTS}
    try:
        beta = float(fields.get("beta", 1.0))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        beta = math.nan
    if not math.isfinite(beta):
        raise ValueError(f"beta: {fields.get('beta')!r} is not a finite number")
    if name:
        writing = NAMED_EXPRESSIONS.get(name, dict.fromkeys(OP_SLOTS, NONE))
        for slot, op in ops.items():
            if op not in (NONE, writing[slot]):
                raise ValueError(f"{slot}: {op!r} contradicts name {name!r}, which has {slot}={writing[slot]!r}")
        ops = {slot: str(writing[slot]) for slot in OP_SLOTS}
    else:
        for slot, op in ops.items():
            if op not in _accepted(slot):
                raise ValueError(f"{slot}: unknown op {op!r} (accepted: {', '.join(_accepted(slot))})")
        second = [slot for slot in SECOND_UNIT if ops[slot] != NONE]
        if second and len(second) < len(SECOND_UNIT):
            slot = next(slot for slot in SECOND_UNIT if ops[slot] == NONE)
            raise ValueError(f"{slot}: 'none' while {', '.join(second)} set; the second unit needs all of "
                             f"{', '.join(SECOND_UNIT)} (accepted: {', '.join(_ops(slot))})")
        name = _BY_WRITING.get(tuple(ops.values()), "")
    if not BETA_OPS.intersection(ops.values()):
        beta = 1.0
    return {**ops, "beta": beta, "name": name}


def sample(rng: random.Random, two_units_probability: float = 0.5) -> dict[str, object]:
    """A canonical expression with every op drawn uniformly; the second unit with `two_units_probability`.

    beta stays 1.0 (the paper's search fixes it too), so a sampled expression is determined by its ops alone.
    """
    ops = {slot: rng.choice(_ops(slot)) for slot in OP_SLOTS}
    if rng.random() >= two_units_probability:
        ops.update(dict.fromkeys(SECOND_UNIT, NONE))
    return canonical(ops)


def mutate(fields: Mapping[str, object], rng: random.Random) -> dict[str, object]:
    """A canonical neighbour that differs from `fields` in exactly one op slot, or gains or loses the second unit.

    One of the used slots or the toggle of the second unit is picked uniformly, then a different op of that slot
    uniformly (a new second unit has every op drawn uniformly). A named extra has no slots: it mutates into another
    named function, uniformly.
    """
    current = canonical(fields)
    if current["name"] in NAMED_EXTRAS:
        others = [name for name in (*NAMED_EXPRESSIONS, *NAMED_EXTRAS) if name != current["name"]]
        return canonical({"name": rng.choice(others)})
    two_units = current["binary2"] != NONE
    slot = rng.choice([*(OP_SLOTS if two_units else OP_SLOTS[:3]), "toggle"])
    if slot != "toggle":
        change = {slot: rng.choice([op for op in _ops(slot) if op != current[slot]])}
    elif two_units:
        change = dict.fromkeys(SECOND_UNIT, NONE)
    else:
        change = {slot: rng.choice(_ops(slot)) for slot in SECOND_UNIT}
    return canonical({**current, **change, "name": ""})


def features(fields: Mapping[str, object]) -> list[float]:
    """One-hot per op slot (its ops plus ``"none"``), one-hot over `NAMED_EXTRAS` (all 0 for the grammar), beta."""
    current = canonical(fields)
    vector: list[float] = []
    for slot in OP_SLOTS:
        vector += [float(current[slot] == op) for op in (*_ops(slot), NONE)]
    vector += [float(current["name"] == name) for name in NAMED_EXTRAS]
    return [*vector, float(current["beta"])]  # type: ignore[arg-type]


def _evaluate(f: Mapping[str, object], x: Tensor) -> Tensor:
    """The activation of canonical fields `f` applied to `x`."""
    if f["name"] in NAMED_EXTRAS:
        return NAMED_EXTRAS[str(f["name"])](x)
    beta = float(f["beta"])  # type: ignore[arg-type]
    y = BINARY[str(f["binary"])](UNARY[str(f["unary1"])](x, beta), UNARY[str(f["unary2"])](x, beta), beta)
    if f["binary2"] == NONE:
        return y
    return BINARY[str(f["binary2"])](UNARY[str(f["unary3"])](y, beta), UNARY[str(f["unary4"])](x, beta), beta)


def evaluate(fields: Mapping[str, object], x: Tensor) -> Tensor:
    """The activation described by `fields` applied elementwise to `x`."""
    return _evaluate(canonical(fields), x)


Group = tuple[str, float, int]
"""A run of rows that share an op: (op, beta, number of rows)."""


def _runs(keys: Sequence[tuple[str, float]]) -> list[Group]:
    """The runs of equal consecutive keys."""
    runs: list[Group] = []
    for op, beta in keys:
        if runs and runs[-1][:2] == (op, beta):
            runs[-1] = (op, beta, runs[-1][2] + 1)
        else:
            runs.append((op, beta, 1))
    return runs


def _cat(parts: Sequence[Tensor]) -> Tensor:
    """The parts stacked along dim 0, without a copy for a single part."""
    return parts[0] if len(parts) == 1 else torch.cat(list(parts))


def _sizes(groups: Sequence[Group]) -> list[int]:
    return [n for *_, n in groups]


def _scatter(parts: Sequence[Tensor], places: Tensor, rows: int) -> Tensor:
    """A new tensor of `rows` rows holding the rows of the stacked parts at `places` (one per row, each once).

    One ``index_copy_`` per part, each row copied once (on CPU, torch 2.13's ``cat`` then ``index_select`` took
    seven times as long). Differentiable, so it also runs under ``create_graph=True``.
    """
    out = parts[0].new_empty((rows, *parts[0].shape[1:]))
    start = 0
    for part in parts:
        out.index_copy_(0, places[start:start + len(part)], part)
        start += len(part)
    return out


class _Gather(torch.autograd.Function):
    """Rows ``x[index]`` for each index. Backward: each present gradient added in place into one zero tensor by an
    accumulating ``index_put_`` (on CPU, torch 2.13's ``index_add_`` took 13 ms for 48 rows of 20 values,
    ``index_put_`` 6 us; an out-of-place ``index_put`` per index copied the whole tensor each time).

    The backward is made of differentiable ops, so it also runs under ``create_graph=True``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, indices: tuple[Tensor, ...]) -> tuple[Tensor, ...]:  # type: ignore[override]
        ctx.set_materialize_grads(False)
        ctx.rows, ctx.indices = len(x), indices
        return tuple(x.index_select(0, index) for index in indices)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, None]:  # type: ignore[override]
        total = None
        for index, grad in zip(ctx.indices, grads, strict=True):
            if grad is not None:
                if total is None:
                    total = grad.new_zeros((ctx.rows, *grad.shape[1:]))
                total.index_put_((index,), grad, accumulate=True)
        return total, None


class _Route(torch.autograd.Function):
    """Moves every row of the parts to its place in the chunks: ``cat(parts)[back]``, split into the chunks.

    `back` holds the row (in the stacked parts) of each row of the stacked chunks and `to` its inverse; each row goes to
    exactly one place, so both ways are one scatter (`_scatter`): forward with `to`, backward with `back`.
    """

    @staticmethod
    def forward(ctx, to: Tensor, back: Tensor, chunks: list[int],  # type: ignore[override]
                *parts: Tensor) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.back, ctx.chunks, ctx.sizes = back, chunks, [len(part) for part in parts]
        return _scatter(parts, to, len(back)).split(chunks)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        present = next((grad for grad in grads if grad is not None), None)
        if present is None:
            return (None,) * (3 + len(ctx.sizes))
        filled = [present.new_zeros((n, *present.shape[1:])) if grad is None else grad
                  for grad, n in zip(grads, ctx.chunks, strict=True)]
        return None, None, None, *_scatter(filled, ctx.back, sum(ctx.sizes)).split(ctx.sizes)


class ActivationPopulation(nn.Module):
    """Member p's activation applied to ``x[p]``, for x of shape (P, ...): the contract of ``SlopedSigmoid``.

    Each op runs on the rows of just the members that use it, in stages: the unary ops on x (one row per member and
    slot unary1, unary2, unary4) and the named extras; binary; unary3; binary2. Rows are gathered from x once; between
    stages one gather moves every row to its place in the next stage, where each op's rows form one contiguous chunk;
    a last gather restores member order. A member's values never meet another member's (an overflow stays in its
    own slice), and every index tensor is a buffer. A population of one evaluates its expression directly.
    """

    def __init__(self, members: Sequence[Mapping[str, object]]) -> None:
        super().__init__()
        self.members = [canonical(fields) for fields in members]
        if not self.members:
            raise ValueError("members: the population is empty")
        grammar = [p for p, f in enumerate(self.members) if f["name"] not in NAMED_EXTRAS]
        two = {p for p in grammar if self.members[p]["binary2"] != NONE}
        extras = sorted((p for p in range(len(self.members)) if p not in grammar), key=lambda p: (self._name(p), p))
        self._chunks: dict[str, list[int]] = {}

        on_x = sorted((self._key(p, slot), p, slot) for p in grammar for slot in ("unary1", "unary2", "unary4")
                      if slot != "unary4" or p in two)
        self._a = _runs([key for key, _, _ in on_x])
        self._extras = _runs([(self._name(p), 1.0) for p in extras])
        self.register_buffer("gather", torch.tensor([p for _, p, _ in on_x] + extras), persistent=False)

        order_b = sorted(grammar, key=lambda p: (p in two, self._key(p, "binary"), p))
        one_unit = [p for p in order_b if p not in two]
        order_c = sorted(two, key=lambda p: (self._key(p, "unary3"), p))
        order_d = sorted(two, key=lambda p: (self._key(p, "binary2"), p))
        one_unit_groups = _runs([self._key(p, "binary") for p in one_unit])
        self._b = one_unit_groups + _runs([self._key(p, "binary") for p in order_b[len(one_unit):]])
        self._b_one = len(one_unit_groups)
        self._c = _runs([self._key(p, "unary3") for p in order_c])
        self._d = _runs([self._key(p, "binary2") for p in order_d])
        operands: list[tuple[str, int]] = []
        start = 0
        for n in _sizes(self._b):
            operands += [(slot, p) for slot in ("unary1", "unary2") for p in order_b[start:start + n]]
            start += n
        operands += [("unary4", p) for p in order_d]
        self._route("ab", [(slot, p) for _, p, slot in on_x], operands,
                    [n for n in _sizes(self._b) for _ in "12"] + _sizes(self._d))
        self._route("c", order_b[len(one_unit):], order_c, _sizes(self._c))
        self._route("d", order_c, order_d, _sizes(self._d))
        self._route("out", one_unit + order_d + extras, range(len(self.members)), [len(self.members)])

    def _key(self, p: int, slot: str) -> tuple[str, float]:
        """Member p's op in `slot` and the beta it reads (1.0 for an op that reads none)."""
        op = str(self.members[p][slot])
        return op, float(self.members[p]["beta"]) if op in BETA_OPS else 1.0  # type: ignore[arg-type]

    def _name(self, p: int) -> str:
        return str(self.members[p]["name"])

    def _route(self, name: str, source: Sequence[object], target: Sequence[object], chunks: list[int]) -> None:
        """Buffers for moving the rows `source` (stacked parts) to `target` (stacked chunks of sizes `chunks`).

        Both buffers are None when the rows keep their order.
        """
        origin = {row: i for i, row in enumerate(source)}
        back = [origin[row] for row in target]
        to = [0] * len(back)
        for i, j in enumerate(back):
            to[j] = i
        kept = back == list(range(len(back)))
        self.register_buffer(f"{name}_to", None if kept else torch.tensor(to), persistent=False)
        self.register_buffer(f"{name}_back", None if kept else torch.tensor(back), persistent=False)
        self._chunks[name] = chunks

    def _move(self, name: str, parts: Sequence[Tensor]) -> tuple[Tensor, ...]:
        to, back = getattr(self, f"{name}_to"), getattr(self, f"{name}_back")
        if back is None:
            return _cat(parts).split(self._chunks[name])
        return _Route.apply(to, back, self._chunks[name], *parts)

    def forward(self, x: Tensor) -> Tensor:
        if len(self.members) == 1:
            return _evaluate(self.members[0], x)
        chunks = _Gather.apply(x, self.gather.split(_sizes(self._a + self._extras)))
        on_x = [UNARY[op](chunk, beta) for (op, beta, _), chunk in zip(self._a, chunks, strict=False)]
        extras = [NAMED_EXTRAS[name](chunk) for (name, _, _), chunk in zip(self._extras, chunks[len(self._a):],
                                                                              strict=True)]
        results = []
        if self._b:
            operands = self._move("ab", on_x)
            y1 = [BINARY[op](operands[2 * j], operands[2 * j + 1], beta) for j, (op, beta, _) in enumerate(self._b)]
            results = y1[:self._b_one]
            if self._c:
                u3 = [UNARY[op](chunk, beta) for (op, beta, _), chunk in zip(self._c, self._move("c", y1[self._b_one:]),
                                                                             strict=True)]
                pairs = zip(self._d, self._move("d", u3), operands[2 * len(self._b):], strict=True)
                results += [BINARY[op](x1, x2, beta) for (op, beta, _), x1, x2 in pairs]
        return self._move("out", results + extras)[0]
