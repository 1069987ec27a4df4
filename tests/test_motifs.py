"""Motifs: canonical encoding, validation with one-line errors, and the population activation."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from dish.core.errors import ConfigError
from dish.motifs.kind import MOTIF_KINDS, decode_motif, motif_class
from dish.motifs.sigmoid_slope import SigmoidSlope


@pytest.mark.parametrize("slope", [0.5, 1, 3.25, 1e-3, 250.0])
def test_encode_decode_round_trip(slope):
    motif = SigmoidSlope(slope)
    encoded = motif.encode()
    assert encoded == {"slope": float(slope)}
    assert decode_motif({"kind": "sigmoid_slope", **encoded}) == motif
    # decoding ignores extra keys, e.g. the other columns of a store row
    assert decode_motif({"kind": "sigmoid_slope", "val_loss": "0.1", **encoded}) == motif


def test_key_format():
    assert SigmoidSlope(0.5).key == "sigmoid_slope(slope=0.5)"
    assert SigmoidSlope(2).key == "sigmoid_slope(slope=2.0)"


def test_key_is_canonical():
    assert 0.1 + 0.2 != 0.3
    assert SigmoidSlope(0.1 + 0.2).key == SigmoidSlope(0.3).key
    assert SigmoidSlope(0.1 + 0.2) == SigmoidSlope(0.3)
    assert SigmoidSlope("2").key == SigmoidSlope(2.0).key
    assert SigmoidSlope(0.3).key != SigmoidSlope(0.30001).key


def test_features():
    assert SigmoidSlope(4.0).features() == [4.0, math.log(4.0)]
    assert SigmoidSlope(0.25).features() == [0.25, math.log(0.25)]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "abc", None])
def test_invalid_slope(bad):
    with pytest.raises(ConfigError) as info:
        SigmoidSlope(bad)
    assert info.value.field == "slope"
    assert repr(bad) in info.value.problem


def test_unknown_kind_lists_accepted_kinds():
    with pytest.raises(ConfigError) as info:
        motif_class("nope")
    err = info.value
    assert "nope" in err.problem
    assert err.accepted == sorted(MOTIF_KINDS)
    assert "sigmoid_slope" in err.accepted
    assert err.message.endswith("(accepted: " + ", ".join(sorted(MOTIF_KINDS)) + ")")
    with pytest.raises(ConfigError):
        decode_motif({"slope": 1.0})  # no kind at all


def test_decode_reports_missing_field():
    with pytest.raises(ConfigError) as info:
        decode_motif({"kind": "sigmoid_slope", "val_acc": 0.5})
    assert info.value.accepted == ["slope"]


def test_population_config_drops_duplicates_keeping_order():
    motifs = SigmoidSlope.from_population_config({"slopes": [2, 0.5, 2.0, 8, 0.1 + 0.2, 0.3, 0.5]})
    assert [m.slope for m in motifs] == [2.0, 0.5, 8.0, 0.3]
    assert all(isinstance(m, SigmoidSlope) for m in motifs)


@pytest.mark.parametrize("values", [[1, -2], [1, "abc"], [0], [1, float("inf")]])
def test_population_config_reports_bad_values_under_slopes(values):
    with pytest.raises(ConfigError) as info:
        SigmoidSlope.from_population_config({"slopes": values})
    assert info.value.field == "population.slopes"
    assert repr(values[-1]) in info.value.problem


def test_population_activation_applies_each_slope_to_its_member():
    motifs = [SigmoidSlope(0.5), SigmoidSlope(2.0), SigmoidSlope(10.0)]
    activation = SigmoidSlope.population(motifs)
    x = torch.tensor([[[-1.0, 0.0, 2.0], [0.5, -3.0, 1.0]]]).repeat(3, 1, 1)  # (P=3, batch=2, 3)
    x[1] *= -1
    expected = torch.stack([torch.sigmoid(0.5 * x[0]), torch.sigmoid(2.0 * x[1]), torch.sigmoid(10.0 * x[2])])
    torch.testing.assert_close(activation(x), expected)
    # also for (P, features) inputs
    flat = torch.linspace(-2, 2, 12).view(3, 4)
    torch.testing.assert_close(activation(flat), torch.sigmoid(torch.tensor([[0.5], [2.0], [10.0]]) * flat))
    assert torch.equal(activation(torch.zeros(3, 5)), torch.full((3, 5), 0.5))


def test_config_error_message_and_within():
    err = ConfigError("slope", "must be positive", accepted=[1, "b"])
    assert err.message == "slope: must be positive (accepted: 1, b)"
    assert str(err) == err.message
    nested = err.within("motif")
    assert nested.field == "motif.slope"
    assert nested.message == "motif.slope: must be positive (accepted: 1, b)"
    assert ConfigError("x", "bad").message == "x: bad"


def test_config_error_survives_pickling():
    for err in (ConfigError("slope", "must be positive", accepted=["1", "2"]), ConfigError("data", "oops")):
        clone = pickle.loads(pickle.dumps(err))
        assert isinstance(clone, ConfigError)
        assert clone.message == err.message
        assert (clone.field, clone.problem, clone.accepted) == (err.field, err.problem, err.accepted)


@pytest.mark.parametrize("slope", [1e39, 1e-50])
def test_accepted_slope_stays_positive_and_finite_in_the_activation(slope):
    try:
        motif = SigmoidSlope(slope)
    except ConfigError:
        return  # rejecting the slope is as good
    slopes = SigmoidSlope.population([motif]).slopes
    assert torch.isfinite(slopes).all()
    assert (slopes > 0).all()
