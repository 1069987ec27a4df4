"""The op library and population module of activation functions built from operations."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from dish.motifs import activation_ops as ops

TOLERANCE = {"atol": 1e-6, "rtol": 1e-6}

UNARY_REFERENCE = {
    "x": lambda v, b: v,
    "neg": lambda v, b: -v,
    "abs": lambda v, b: abs(v),
    "square": lambda v, b: v * v,
    "cube": lambda v, b: v ** 3,
    "sqrt_abs": lambda v, b: math.sqrt(abs(v)),
    "scale": lambda v, b: b * v,
    "shift": lambda v, b: v + b,
    "log_abs": lambda v, b: math.log(abs(v) + 1e-6),
    "exp": lambda v, b: math.exp(v),
    "sin": lambda v, b: math.sin(v),
    "cos": lambda v, b: math.cos(v),
    "sinh": lambda v, b: math.sinh(v),
    "cosh": lambda v, b: math.cosh(v),
    "tanh": lambda v, b: math.tanh(v),
    "asinh": lambda v, b: math.asinh(v),
    "atan": lambda v, b: math.atan(v),
    "sinc": lambda v, b: math.sin(v) / v if v else 1.0,
    "relu": lambda v, b: max(v, 0.0),
    "min0": lambda v, b: min(v, 0.0),
    "sigmoid": lambda v, b: 1 / (1 + math.exp(-v)),
    "softplus": lambda v, b: math.log1p(math.exp(v)),
    "gauss": lambda v, b: math.exp(-v * v),
    "erf": lambda v, b: math.erf(v),
    "zero": lambda v, b: 0.0,
    "one": lambda v, b: 1.0,
}

BINARY_REFERENCE = {
    "add": lambda u, v, b: u + v,
    "mul": lambda u, v, b: u * v,
    "sub": lambda u, v, b: u - v,
    "div": lambda u, v, b: u / (v + 1e-6),
    "max": lambda u, v, b: max(u, v),
    "min": lambda u, v, b: min(u, v),
    "sigmoid_mul": lambda u, v, b: v / (1 + math.exp(-u)),
    "gauss_dist": lambda u, v, b: math.exp(-b * (u - v) ** 2),
    "laplace_dist": lambda u, v, b: math.exp(-b * abs(u - v)),
    "mix": lambda u, v, b: b * u + (1 - b) * v,
}

POINTS = [-3.0, -1.25, -0.5, -1e-3, 0.0, 1e-3, 0.3, 1.0, 2.5, 4.0]
PAIRS = [(-2.0, 1.5), (-0.5, -0.5), (0.0, 0.7), (0.3, -1.2), (1.0, 1.0), (2.5, 0.1), (4.0, -3.0)]

NAMED_REFERENCE = {
    "relu": F.relu, "silu": F.silu, "swish": F.silu, "gelu": F.gelu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "softplus": F.softplus, "elu": F.elu, "leaky_relu": F.leaky_relu, "identity": lambda x: x,
}


def grammar(u1: str, u2: str, b: str, u3: str = "none", u4: str = "none", b2: str = "none",
            beta: float = 1.0) -> dict[str, object]:
    return {"unary1": u1, "unary2": u2, "binary": b, "unary3": u3, "unary4": u4, "binary2": b2, "beta": beta}


def lone(fields: dict[str, object], x: torch.Tensor) -> torch.Tensor:
    """The activation applied by a population of one (one row of x at a time)."""
    return torch.cat([ops.ActivationPopulation([fields])(row.unsqueeze(0)) for row in x])


def population_and_lone(members: list[dict[str, object]], x: torch.Tensor, weights: torch.Tensor,
                        ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(output, gradient, gradient of the gradient) w.r.t. x of the population, and of each member alone."""

    def grad(y: torch.Tensor, inputs: torch.Tensor, w: torch.Tensor, create_graph: bool) -> torch.Tensor:
        result = torch.autograd.grad(y, inputs, w, create_graph=create_graph, allow_unused=True)[0] \
            if y.requires_grad else None
        return torch.zeros_like(inputs) if result is None else result

    def run(module: torch.nn.Module, inputs: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = inputs.detach().requires_grad_()
        y = module(inputs)
        first = grad(y, inputs, w, create_graph=True)
        return y.detach(), first.detach(), grad(first, inputs, w, create_graph=False)

    together = run(ops.ActivationPopulation(members), x, weights)
    alone = [run(ops.ActivationPopulation([m]), x[p:p + 1], weights[p:p + 1]) for p, m in enumerate(members)]
    return together, tuple(torch.cat(parts) for parts in zip(*alone, strict=True))


def test_every_unary_op_matches_its_formula() -> None:
    assert set(UNARY_REFERENCE) == set(ops.UNARY)
    x = torch.tensor(POINTS)
    for name, reference in UNARY_REFERENCE.items():
        expected = torch.tensor([reference(v, 1.7) for v in x.tolist()])
        torch.testing.assert_close(ops.UNARY[name](x, 1.7), expected, **TOLERANCE, msg=name)


def test_every_binary_op_matches_its_formula() -> None:
    assert set(BINARY_REFERENCE) == set(ops.BINARY)
    x1, x2 = (torch.tensor(column) for column in zip(*PAIRS, strict=True))
    for name, reference in BINARY_REFERENCE.items():
        expected = torch.tensor([reference(u, v, 0.3) for u, v in zip(x1.tolist(), x2.tolist(), strict=True)])
        torch.testing.assert_close(ops.BINARY[name](x1, x2, 0.3), expected, **TOLERANCE, msg=name)


def test_op_gradients_match_finite_differences_to_second_order() -> None:
    x = torch.tensor([-2.3, -0.7, 0.4, 1.9], dtype=torch.float64, requires_grad=True)  # away from kinks
    for name, op in ops.UNARY.items():
        if name not in ("zero", "one"):
            assert torch.autograd.gradcheck(lambda v, op=op: op(v, 0.8), (x,)), name
            assert torch.autograd.gradgradcheck(lambda v, op=op: op(v, 0.8), (x,)), name
    zero = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: ops.UNARY["sinc"](v, 1.0), (zero,))
    x1 = torch.tensor([-1.1, 0.3, 2.0, -0.4], dtype=torch.float64, requires_grad=True)
    x2 = torch.tensor([0.6, -0.9, 1.2, -1.5], dtype=torch.float64, requires_grad=True)
    for name, op in ops.BINARY.items():
        assert torch.autograd.gradcheck(lambda a, b, op=op: op(a, b, 0.8), (x1, x2)), name
        assert torch.autograd.gradgradcheck(lambda a, b, op=op: op(a, b, 0.8), (x1, x2)), name
    tie = torch.tensor([1.5], requires_grad=True)
    for name in ("max", "min"):
        (grad,) = torch.autograd.grad(ops.BINARY[name](tie, tie, 1.0), tie)
        assert grad.item() == 1.0, name  # max(x, x) = x


def test_ops_keep_overflow_visible() -> None:
    big = torch.tensor([100.0, -100.0])
    assert torch.isinf(ops.UNARY["exp"](big, 1.0)[0])
    assert torch.isinf(ops.UNARY["cube"](torch.tensor([1e20]), 1.0)).all()
    assert torch.isinf(ops.BINARY["div"](torch.tensor([1.0]), torch.tensor([-1e-6]), 1.0)).all()
    assert torch.isnan(ops.BINARY["max"](torch.tensor([1.0, math.nan]), torch.tensor([math.nan, 1.0]), 1.0)).all()
    assert torch.isnan(ops.BINARY["min"](torch.tensor([1.0, math.nan]), torch.tensor([math.nan, 1.0]), 1.0)).all()
    assert torch.isnan(ops.UNARY["min0"](torch.tensor([math.nan]), 1.0)).all()
    assert ops.UNARY["asinh"](torch.tensor([3e38, -3e38]), 1.0).tolist() == pytest.approx([math.asinh(3e38),
                                                                                          -math.asinh(3e38)])


@pytest.mark.parametrize("name", sorted(NAMED_REFERENCE))
def test_named_functions_match_torch(name: str) -> None:
    x = torch.linspace(-6, 6, 97, requires_grad=True)  # no point at 0, where relu-like kinks have no derivative
    y = ops.evaluate({"name": name}, x)
    expected = NAMED_REFERENCE[name](x)
    torch.testing.assert_close(y, expected, **TOLERANCE)
    (grad,) = torch.autograd.grad(y.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, expected_grad, **TOLERANCE)


def test_named_grammar_functions_are_written_by_the_grammar() -> None:
    assert set(ops.NAMED_EXPRESSIONS) | set(ops.NAMED_EXTRAS) | set(ops.ALIASES) == set(NAMED_REFERENCE)
    for name, fields in ops.NAMED_EXPRESSIONS.items():
        unnamed = {**fields, "name": ""}
        assert ops.canonical(unnamed)["name"] == name
        assert ops.canonical({"name": name}) == fields
    for name in ops.NAMED_EXTRAS:
        assert ops.canonical({"name": name}) == {**dict.fromkeys(ops.OP_SLOTS, "none"), "beta": 1.0, "name": name}


def mixed_members() -> list[dict[str, object]]:
    """About 30 expressions: sampled (one and two units), named, and ones whose beta is not 1."""
    rng = random.Random(3)
    members = [ops.sample(rng) for _ in range(18)]
    members += [ops.canonical({"name": name}) for name in ("gelu", "elu", "leaky_relu", "silu", "relu", "gelu")]
    members += [ops.canonical(grammar("scale", "x", "mix", beta=0.25)),
                ops.canonical(grammar("shift", "tanh", "gauss_dist", "sin", "scale", "laplace_dist", beta=2.0)),
                ops.canonical(grammar("x", "x", "sigmoid_mul", "x", "one", "add")),
                ops.canonical(grammar("sinc", "asinh", "max", "min0", "x", "min")),
                ops.canonical(grammar("x", "x", "sigmoid_mul")),
                ops.canonical(grammar("zero", "one", "add", "neg", "zero", "sub"))]
    return members


def test_population_equals_each_member_alone() -> None:
    members = mixed_members()
    assert len(members) == 30 and any(m["binary2"] != "none" for m in members)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(len(members), 7, 5, generator=generator)
    weights = torch.randn(len(members), 7, 5, generator=generator)  # a different upstream gradient per element
    together, alone = population_and_lone(members, x, weights)
    for name, a, b in zip(("output", "gradient"), together[:2], alone[:2], strict=True):
        finite = b.isfinite()
        assert finite.float().mean() > 0.9, name
        torch.testing.assert_close(a, b, **TOLERANCE, equal_nan=True, msg=name)
    torch.testing.assert_close(together[2], alone[2], atol=1e-5, rtol=1e-5, equal_nan=True)


def test_population_of_shared_ops_across_one_and_two_units() -> None:
    two_units = ops.canonical(grammar("tanh", "sin", "mul", "exp", "cos", "add"))
    one_unit = ops.canonical(grammar("tanh", "sin", "mul"))
    members = [two_units, one_unit, one_unit, two_units, {"name": "elu"}, two_units]
    x = torch.randn(len(members), 4, 3)
    together, alone = population_and_lone(members, x, torch.randn_like(x))
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE)


def test_population_of_one_and_any_trailing_shape() -> None:
    members = mixed_members()
    for shape in [(len(members),), (len(members), 2, 3, 4)]:
        x = torch.randn(shape)
        y = ops.ActivationPopulation(members)(x)
        assert y.shape == x.shape
        expected = torch.stack([ops.evaluate(m, x[p]) for p, m in enumerate(members)])
        torch.testing.assert_close(y, expected, **TOLERANCE, equal_nan=True)
    x = torch.randn(1, 4)
    torch.testing.assert_close(ops.ActivationPopulation([{"name": "swish"}])(x), F.silu(x), **TOLERANCE)


def test_an_overflowing_member_stays_in_its_own_slice() -> None:
    exp_exp = ops.canonical(grammar("exp", "zero", "add", "exp", "zero", "add"))
    cube_cube = ops.canonical(grammar("cube", "zero", "add", "cube", "zero", "add"))
    inf_minus_inf = ops.canonical(grammar("exp", "exp", "sub"))
    safe = [ops.canonical({"name": name}) for name in ("relu", "gelu", "tanh", "silu")]
    safe += [ops.canonical(grammar("sin", "atan", "add", "tanh", "erf", "mul")),
             ops.canonical(grammar("x", "x", "max"))]
    members = [safe[0], exp_exp, *safe[1:3], cube_cube, *safe[3:5], inf_minus_inf, safe[5]]
    failing = [1, 4, 7]
    x = torch.randn(len(members), 6, 3)
    x[failing] = 1e5
    together, alone = population_and_lone(members, x, torch.ones_like(x))
    for p in range(len(members)):
        for a, b in zip(together[:2], alone[:2], strict=True):
            if p in failing:
                assert not a[p].isfinite().all()
            else:
                assert a[p].isfinite().all()
                torch.testing.assert_close(a[p], b[p], **TOLERANCE)
    assert together[0][7].isnan().all()


def test_population_buffers_and_gradients_under_create_graph() -> None:
    members = mixed_members()
    population = ops.ActivationPopulation(members)
    assert len(list(population.buffers())) > 0 and not population.state_dict()
    assert all(buffer.dtype == torch.long for buffer in population.buffers())
    x = torch.randn(len(members), 3, requires_grad=True)
    (grad,) = torch.autograd.grad(population(x).nan_to_num().sum(), x, create_graph=True)
    assert grad.requires_grad
    with pytest.raises(ValueError, match=r"^members: "):
        ops.ActivationPopulation([])


def test_canonical_resolves_names_and_aliases() -> None:
    assert ops.canonical({"name": "swish"}) == ops.NAMED_EXPRESSIONS["silu"]
    assert ops.canonical(grammar("x", "x", "sigmoid_mul"))["name"] == "silu"
    assert ops.canonical({"name": "relu", "unary1": "relu"})["name"] == "relu"
    assert ops.canonical(grammar("zero", "relu", "add"))["name"] == ""  # field-for-field equality only
    assert ops.canonical(grammar("tanh", "x", "mul", beta=3.0))["beta"] == 1.0  # no op reads beta
    assert ops.canonical(grammar("tanh", "x", "mix", beta=3.0))["beta"] == 3.0
    assert list(ops.canonical({"name": "gelu"})) == list(ops.FIELDS)
    fields = ops.canonical(grammar("sin", "x", "add", "exp", "abs", "div"))
    assert ops.canonical(fields) == fields


@pytest.mark.parametrize(("fields", "message"), [
    (grammar("foo", "x", "add"), "unary1: unknown op 'foo' (accepted: x, neg,"),
    (grammar("x", "x", "tanh"), "binary: unknown op 'tanh' (accepted: add, mul,"),
    (grammar("x", "none", "add"), "unary2: unknown op 'none'"),
    (grammar("x", "x", "add", "tanh", "none", "add"), "unary4: 'none' while unary3, binary2 set"),
    (grammar("x", "x", "add", "tanh", "x", "pow"), "binary2: unknown op 'pow' (accepted: add, mul, "),
    ({"name": "mish"}, "name: unknown function 'mish' (accepted: '', 'relu',"),
    ({"name": "gelu", "unary1": "x"}, "unary1: 'x' contradicts name 'gelu'"),
    ({"name": "relu", "binary": "max"}, "binary: 'max' contradicts name 'relu', which has binary='add'"),
    ({"unary5": "x"}, "unary5: unknown field (accepted: unary1,"),
    ({**grammar("x", "x", "mix"), "beta": "big"}, "beta: 'big' is not a finite number"),
    ({**grammar("x", "x", "mix"), "beta": math.inf}, "beta: inf is not a finite number"),
])
def test_canonical_rejects_bad_fields_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as error:
        ops.canonical(fields)
    text = str(error.value)
    assert text.startswith(message) and "\n" not in text


def test_sample_is_seeded_canonical_and_honours_the_second_unit_probability() -> None:
    first = [ops.sample(random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(1)
    drawn = [ops.sample(rng) for _ in range(300)]
    assert all(ops.canonical(fields) == fields for fields in drawn)
    assert 0.4 < sum(fields["binary2"] != "none" for fields in drawn) / len(drawn) < 0.6
    assert all(fields["beta"] == 1.0 for fields in drawn)
    assert len({tuple(fields.values()) for fields in drawn}) > 290
    assert all(ops.sample(rng, 0.0)["binary2"] == "none" for _ in range(50))
    assert all(ops.sample(rng, 1.0)["binary2"] != "none" for _ in range(50))


def test_mutate_changes_exactly_one_slot_or_toggles_the_second_unit() -> None:
    rng = random.Random(5)
    toggles = 0
    for _ in range(500):
        parent = ops.sample(rng)
        child = ops.mutate(parent, rng)
        assert ops.canonical(child) == child and child != parent
        changed = [slot for slot in ops.OP_SLOTS if child[slot] != parent[slot]]
        if changed == list(ops.SECOND_UNIT):
            toggles += 1
            assert "none" in (child["binary2"], parent["binary2"])
        else:
            assert len(changed) == 1
    assert 50 < toggles < 150
    assert ops.mutate(first := ops.sample(random.Random(2)), random.Random(9)) == ops.mutate(first, random.Random(9))
    for name in ops.NAMED_EXTRAS:
        child = ops.mutate({"name": name}, rng)
        assert child["name"] in set(ops.NAMED_EXPRESSIONS) | set(ops.NAMED_EXTRAS) and child["name"] != name


def test_features_have_a_constant_length_and_one_hot_slots() -> None:
    length = 4 * (len(ops.UNARY) + 1) + 2 * (len(ops.BINARY) + 1) + len(ops.NAMED_EXTRAS) + 1
    rng = random.Random(0)
    described = [ops.sample(rng) for _ in range(20)] + [{"name": name} for name in NAMED_REFERENCE]
    for fields in described:
        vector = ops.features(fields)
        assert len(vector) == length
        assert sum(vector[:-1]) == 6 + (ops.canonical(fields)["name"] in ops.NAMED_EXTRAS)
    assert ops.features(grammar("tanh", "x", "mix", beta=0.5))[-1] == 0.5
    assert ops.features({"name": "gelu"}) != ops.features({"name": "elu"})
