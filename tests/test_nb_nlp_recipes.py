"""NAS-Bench-NLP recipes: validation, canonical form and digest, named cells, sampling, mutation, features."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch

from dish.motifs import nb_nlp_recipes as recipes

DEV_TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb_nlp_dev.csv"


def dev_rows() -> list[dict[str, str]]:
    if not DEV_TABLE.exists():
        pytest.skip(f"the NAS-Bench-NLP dev table is not at {DEV_TABLE}")
    with DEV_TABLE.open(newline="") as file:
        return list(csv.DictReader(file))


def renamed(recipe: dict, rng: random.Random) -> dict:
    """`recipe` with its intermediate nodes given other names, its keys shuffled and the inputs of commutative ops
    reordered: the same cell."""
    inner = [name for name in recipe if not name.startswith("h_new_")]
    names = dict(zip(inner, rng.sample([f"n{i}" for i in range(50)], len(inner)), strict=True))
    result = {}
    for name in rng.sample(list(recipe), len(recipe)):
        inputs = [names.get(item, item) for item in recipe[name]["input"]]
        if recipe[name]["op"] in recipes.COMMUTATIVE:
            rng.shuffle(inputs)
        result[names.get(name, name)] = {"op": recipe[name]["op"], "input": inputs}
    return result


def test_every_dev_recipe_is_valid_and_its_key_ignores_names_and_orders() -> None:
    rows = dev_rows()
    rng = random.Random(0)
    losses: dict[str, list[float]] = {}
    for row in rows:
        recipe = recipes.canonical(row["recipe"])
        assert recipes.tuple_size(recipe) == int(row["hidden_tuple_size"])
        assert len(recipe) == int(row["nodes"])  # the benchmark's cells have no dead node
        assert recipes.canonical(json.loads(recipes.to_json(recipe))) == recipe == recipes.canonical(recipe)
        assert recipes.digest(renamed(json.loads(row["recipe"]), rng)) == recipes.digest(row["recipe"])
        losses.setdefault(recipes.digest(recipe), []).append(float(row["test_loss"]))
    # The table trains some cells more than once under other ids and node names: one key each, and their losses
    # agree to the benchmark's retraining noise (the losses of the table span 4.8 to 7.3).
    repeated = [values for values in losses.values() if len(values) > 1]
    assert 90 <= len(losses) < len(rows) and len(repeated) >= 2
    assert max(max(values) - min(values) for values in repeated) < 0.1


def test_dead_nodes_and_names_do_not_change_the_digest() -> None:
    rnn = recipes.NAMED["rnn"]
    with_dead = {"unused": {"op": "activation_sigm", "input": ["f"]}, **dict(reversed(list(rnn.items())))}
    assert recipes.validate(with_dead) == recipes.validate(rnn) == dict(sorted(rnn.items()))
    assert recipes.digest(with_dead) == recipes.digest("rnn")
    assert len({recipes.digest(name) for name in recipes.NAMED}) == len(recipes.NAMED)
    blend = recipes.canonical("gru")["h_new_0"]["input"]
    swapped = {**recipes.NAMED["gru"], "h_new_0": {"op": "blend", "input": ["z_act", "n_act", "h_prev_0"]}}
    assert recipes.digest(swapped) != recipes.digest("gru") and len(blend) == 3  # blend's inputs keep their order


@pytest.mark.parametrize(("recipe", "message"), [
    ({"f": {"op": "conv", "input": ["x", "h_prev_0"]}, "h_new_0": {"op": "activation_tanh", "input": ["f"]}},
     r"^f: unknown op 'conv' \(accepted: linear, "),
    ({"f": {"op": "linear", "input": ["x", "g"]}, "h_new_0": {"op": "activation_tanh", "input": ["f"]}},
     r"^f: input 'g' does not exist \(accepted: x, h_prev_0, a node of the recipe\)$"),
    ({"f": {"op": "linear", "input": ["x", "h_prev_1"]}, "h_new_0": {"op": "activation_tanh", "input": ["f"]}},
     r"^f: input 'h_prev_1' does not exist"),
    ({"a": {"op": "linear", "input": ["x", "b"]}, "b": {"op": "activation_tanh", "input": ["a"]},
      "h_new_0": {"op": "elementwise_sum", "input": ["b", "h_prev_0"]}}, r"^a: in a cycle a -> b -> a$"),
    ({"f": {"op": "linear", "input": ["x", "h_prev_0"]}, "h_new_1": {"op": "activation_tanh", "input": ["f"]}},
     r"^h_new_0: missing while h_new_1 is present"),
    ({"f": {"op": "linear", "input": ["x", "h_prev_0"]}}, r"^h_new_0: missing"),
    ({"f": {"op": "linear", "input": ["h_prev_0", "h_prev_0"]}, "h_new_0": {"op": "activation_tanh", "input": ["f"]}},
     r"^x: no path from this input to an output h_new_i$"),
    ({"h_new_0": {"op": "activation_tanh", "input": ["x", "h_prev_0"]}},
     r"^h_new_0: activation_tanh takes 1 inputs, got \['x', 'h_prev_0'\]$"),
    ("{not json", r"^recipe: neither JSON nor a named cell \(rnn, lstm, gru\)"),
])
def test_a_bad_recipe_is_one_line_naming_the_node(recipe: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        recipes.canonical(recipe)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def _copy_weights(cell: recipes.RecipeCell, gates: list[str], weight_ih: torch.Tensor, weight_hh: torch.Tensor,
                  bias: torch.Tensor) -> None:
    """Give the recipe's gate linears (inputs x, h_prev_0) the rows of a torch cell's stacked gate weights."""
    hidden = weight_hh.shape[1]
    with torch.no_grad():
        for k, gate in enumerate(gates):
            rows = slice(k * hidden, (k + 1) * hidden)
            cell.weights[f"{gate}__0"].copy_(weight_ih[rows].T)
            cell.weights[f"{gate}__1"].copy_(weight_hh[rows].T)
            cell.biases[gate].copy_(bias[rows])


def test_named_rnn_and_lstm_equal_torch_cells() -> None:
    torch.manual_seed(0)
    x, h, c = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 4)
    reference = torch.nn.RNNCell(3, 4)
    rnn = recipes.RecipeCell("rnn", 3, 4)
    _copy_weights(rnn, ["f"], reference.weight_ih, reference.weight_hh, reference.bias_ih + reference.bias_hh)
    torch.testing.assert_close(rnn(x, (h,))[0], reference(x, h))

    reference = torch.nn.LSTMCell(3, 4)
    lstm = recipes.RecipeCell("lstm", 3, 4)
    _copy_weights(lstm, ["i", "f", "g", "o"], reference.weight_ih, reference.weight_hh,
                  reference.bias_ih + reference.bias_hh)
    expected_h, expected_c = reference(x, (h, c))
    new_h, new_c = lstm(x, (h, c))
    torch.testing.assert_close(new_h, expected_h)
    torch.testing.assert_close(new_c, expected_c)


def test_named_gru_follows_its_formula() -> None:
    torch.manual_seed(1)
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    gru = recipes.RecipeCell("gru", 3, 4)
    w, b = gru.weights, gru.biases
    r = torch.sigmoid(x @ w["r__0"] + h @ w["r__1"] + b["r"])
    z = torch.sigmoid(x @ w["z__0"] + h @ w["z__1"] + b["z"])
    n = torch.tanh(x @ w["n__0"] + (r * h) @ w["n__1"] + b["n"])
    torch.testing.assert_close(gru(x, (h,))[0], z * h + (1 - z) * n)


def test_recipe_cell_weights_follow_the_benchmark_init_and_gradients_reach_them() -> None:
    torch.manual_seed(2)
    cell = recipes.RecipeCell("lstm", 3, 16)
    assert all(p.abs().max() <= 0.25 for p in cell.parameters())
    assert len(cell.weights) == 8 and len(cell.biases) == 4
    new_h, new_c = cell(torch.randn(2, 3), (torch.randn(2, 16), torch.randn(2, 16)))
    (new_h.sum() + new_c.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_sampling_is_seeded_and_keeps_the_generator_rules(size: int) -> None:
    drawn = [recipes.sample(random.Random(f"{size}-{i}"), size) for i in range(60)]
    assert drawn == [recipes.sample(random.Random(f"{size}-{i}"), size) for i in range(60)]
    assert len({recipes.digest(r) for r in drawn}) > 30
    for recipe in drawn:
        assert recipes.canonical(recipe) == recipe
        assert recipes.tuple_size(recipe) == size
        assert len(recipe) <= size + 7 + 1
        for name, spec in recipe.items():
            if name.startswith("h_new_"):
                assert not any(item.startswith("h_prev_") for item in spec["input"])
            if spec["op"] == "linear":
                assert all(item == "x" or item.startswith("h_prev_") or recipe.get(item, {}).get("op", "")
                           .startswith("activation_") or item.startswith("h_new_") for item in spec["input"])
    with pytest.raises(ValueError, match=r"^size: 6 \(accepted: 1 to 5\)$"):
        recipes.sample(random.Random(0), 6)


def test_mutation_changes_one_op_or_input_and_stays_valid() -> None:
    rng = random.Random(3)
    parents = [recipes.sample(random.Random(i), 1 + i % 3) for i in range(40)] + [recipes.canonical("lstm")]
    for parent in parents:
        child = recipes.mutate(parent, rng)
        assert recipes.canonical(child) != parent and recipes.validate(child) == child
        assert recipes.tuple_size(child) == recipes.tuple_size(parent)
        changed = [name for name in child if name in parent and child[name] != parent[name]]
        assert len(changed) == 1
        before, after = parent[changed[0]], child[changed[0]]
        differences = (before["op"] != after["op"]) + sum(
            a != b for a, b in zip(before["input"], after["input"], strict=True))
        assert differences == 1
    assert recipes.mutate(parents[0], random.Random(9)) == recipes.mutate(parents[0], random.Random(9))


def test_features_have_one_length_and_tell_cells_apart() -> None:
    cells = [recipes.canonical(name) for name in recipes.NAMED]
    cells += [recipes.sample(random.Random(i), 1 + i % 5) for i in range(40)]
    vectors = [recipes.features(cell) for cell in cells]
    assert len({len(v) for v in vectors}) == 1
    assert len({tuple(v) for v in vectors}) == len({recipes.digest(c) for c in cells})
    lstm = recipes.features("lstm")
    counts = dict(zip(recipes.OPS, lstm[:len(recipes.OPS)], strict=True))
    assert counts == {"linear": 4, "blend": 0, "elementwise_prod": 3, "elementwise_sum": 1, "activation_tanh": 2,
                      "activation_sigm": 3, "activation_leaky_relu": 0}
    assert lstm[len(recipes.OPS):len(recipes.OPS) + 2] == [2.0, 13.0]
