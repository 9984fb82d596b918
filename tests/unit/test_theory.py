"""The theory's tables (leadingterms.theory): parameter names, coefficients, directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference.naive import NaiveBasis, c_of_s, markov_corpus, reference_closed_form, reference_direction

from leadingterms.predict import closed_form
from leadingterms.theory import (
    LAYER_KINDS,
    LEARNED_READOUTS,
    MATRICES,
    S2,
    WEIGHTS,
    c_s,
    count_layers,
    directions,
    layered,
    param_name,
    param_names,
    parse_param,
)


def test_parameter_names_round_trip_and_order():
    assert param_names(2) == ["W_O", "layers.0.W", "layers.0.V", "layers.0.P", "layers.1.W", "layers.1.V",
                              "layers.1.P"]
    for name in param_names(3):
        kind, layer = parse_param(name)
        assert param_name(kind, layer) == name
    assert count_layers(param_names(4)) == 4 and count_layers(["W_O"]) == 0
    assert param_names(2, kinds=("W_O", "V")) == ["W_O", "layers.0.V", "layers.1.V"]
    for bad in ("layers.x.W", "W", "layers.0.Q", "layers.0.W.extra", "w_o"):
        with pytest.raises(ValueError):
            parse_param(bad)
    with pytest.raises(ValueError):
        param_name("V")  # a per-layer weight needs its layer
    assert LAYER_KINDS == ("W", "V", "P")


def test_coefficients_match_their_definitions():
    for s in range(40):
        assert c_s(s) == sum(r * math.comb(r, 2) for r in range(s)) == c_of_s(s)
        assert S2(s) == sum(r * r for r in range(s))
        assert WEIGHTS["W_O"].coefficient(s) == s and WEIGHTS["V"].coefficient(s) == math.comb(s, 2)
        assert WEIGHTS["W"].coefficient(s) == WEIGHTS["P"].coefficient(s) == c_s(s)
    assert [WEIGHTS[k].eta_power for k in ("W_O", "V", "W", "P")] == [1, 2, 4, 4]
    assert WEIGHTS["V"].coef(5, 0.1) == pytest.approx(10 * 0.01, rel=1e-15)
    assert WEIGHTS["V"].leading_term() == "C(s,2)·η²·Φ̄ᵀB̄ᵀ" and WEIGHTS["W_O"].leading_term() == "s·η·B̄"


def test_directions_and_closed_form_against_the_reference():
    V, T = 9, 5
    basis = NaiveBasis(markov_corpus(V, T, 14, seed=2), V)
    dirs = directions(basis, 2)
    for name in param_names(2):
        assert torch.allclose(dirs[name].double(), reference_direction(basis, name), rtol=1e-13, atol=1e-15), name
    pred = closed_form(basis, 7, 0.3, 2)
    for name in param_names(2):
        ref = reference_closed_form(basis, name, 7, 0.3)
        assert float((pred[name].double() - ref).norm() / ref.norm()) < 1e-13, name
    assert pred["layers.0.V"] is pred["layers.1.V"]  # layers share one tensor


def test_layered_and_tables_are_consistent():
    t = {k: torch.full((2,), float(i)) for i, k in enumerate(("W_O", "W", "V", "P"))}
    out = layered(t, 3)
    assert list(out) == param_names(3) and out["layers.2.P"] is t["P"]
    assert {w.direction for w in WEIGHTS.values()} == {"bigram", "value", "attention", "positional"}
    for r in LEARNED_READOUTS.values():
        assert r.matrix in MATRICES
    assert LEARNED_READOUTS["V·W_O"].label(3) == "V^(3)·W_O" and LEARNED_READOUTS["W_O"].label(None) == "W_O"
    weights = {n: torch.randn(4, 4, dtype=torch.float64) for n in param_names(1, ("W_O", "V", "W"))}
    got = LEARNED_READOUTS["V·W_O"].learned(weights, 0)
    assert torch.allclose(got, weights["layers.0.V"] @ weights["W_O"])
    np.testing.assert_array_equal(LEARNED_READOUTS["W"].learned(weights, 0).numpy(), weights["layers.0.W"].numpy())
