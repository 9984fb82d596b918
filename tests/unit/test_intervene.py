"""Causal intervention against the naive dense float64 forward pass and closed forms of tests/reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference.naive import naive_loss as reference_loss
from reference.naive import reference_closed_form, reference_direction

from leadingterms.basis import compute_basis
from leadingterms.errors import LeadingTermsError
from leadingterms.intervene import format_table, intervene, project_out, remove_random
from leadingterms.model import AttentionOnlyTransformer, ModelConfig

V, T, N, L = 7, 6, 9, 2


def naive_loss(weights: dict[str, torch.Tensor], tokens: np.ndarray) -> float:
    return float(reference_loss({k: v.double() for k, v in weights.items()}, torch.as_tensor(tokens)))


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, V, size=(N, T + 1))
    tokens[:, 1::2] = (tokens[:, 0::2][:, : tokens[:, 1::2].shape[1]] + 1) % V  # some bigram structure
    basis = compute_basis(tokens, V, progress=False)
    return tokens, basis


def make_model(weights: dict[str, torch.Tensor]) -> AttentionOnlyTransformer:
    m = AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=L, dtype=torch.float64))
    with torch.no_grad():
        for k, p in m.named_parameters():
            p.copy_(weights[k])
    return m


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_model_equal_to_prediction(corpus):
    tokens, basis = corpus
    s, eta = 6, 2.0  # large enough that every weight moves the loss
    pred = {k: reference_closed_form(basis, k, s, eta) for k in ["W_O"] + [f"layers.{l}.{x}" for l in range(L) for x in "WVP"]}
    model = make_model(pred)
    res = intervene(model, basis, tokens, step=s, lr=eta, batch_size=4)
    original = naive_loss(pred, tokens)
    assert rel(res.original_loss, original) < 1e-12
    assert [r["param"] for r in res.rows] == ["W_O", "layers.0.W", "layers.0.V", "layers.0.P",
                                                 "layers.1.W", "layers.1.V", "layers.1.P"]
    for r in res.rows:
        # replacing a weight by its own prediction changes nothing
        assert rel(r["loss_replaced"], original) < 1e-12
        # the weight lies on its direction: removing the projection zeroes it
        zeroed = dict(pred, **{r["param"]: torch.zeros_like(pred[r["param"]])})
        assert rel(r["loss_removed"], naive_loss(zeroed, tokens)) < 1e-12, r["param"]
        assert r["cos"] == pytest.approx(1.0, abs=1e-12)
    # W_O = 0 gives uniform predictions: loss log V exactly
    assert res.rows[0]["loss_removed"] == pytest.approx(math.log(V), rel=1e-12)
    assert res.rows[0]["loss_removed"] - original > 1e-3  # not a vacuous comparison
    assert "layers.1.P" in format_table(res)


def test_random_weights_removed_and_replaced(corpus):
    tokens, basis = corpus
    g = torch.Generator().manual_seed(1)
    dirs = {k: reference_direction(basis, k) for k in ["W_O"] + [f"layers.{l}.{x}" for l in range(L) for x in "WVP"]}
    weights = {k: 0.8 * d / d.norm() + 0.3 * torch.randn(d.shape, generator=g, dtype=torch.float64)
               for k, d in dirs.items()}
    model = make_model(weights)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s, eta = 4, 1.5
    res = intervene(model, basis, tokens, step=s, lr=eta)
    for k, v in model.state_dict().items():  # pure: weights restored
        assert torch.equal(v, before[k])
    assert rel(res.original_loss, naive_loss(weights, tokens)) < 1e-12
    for r in res.rows:
        name = r["param"]
        W, Tdir = weights[name], dirs[name]
        removed = W - ((W * Tdir).sum() / (Tdir * Tdir).sum()) * Tdir  # docs/theory.md §7.2 formula, written here
        assert rel(r["loss_removed"], naive_loss(dict(weights, **{name: removed}), tokens)) < 1e-12, name
        replaced = dict(weights, **{name: reference_closed_form(basis, name, s, eta)})
        assert rel(r["loss_replaced"], naive_loss(replaced, tokens)) < 1e-12, name


def test_projection_removal_is_orthogonal():
    g = torch.Generator().manual_seed(0)
    for shape in [(5, 5), (11,), (30, 30)]:
        W = torch.randn(shape, generator=g, dtype=torch.float64)
        Tdir = torch.randn(shape, generator=g, dtype=torch.float64) * 1e-4
        R = project_out(W, Tdir)
        assert abs(float((R * Tdir).sum())) / (float(R.norm()) * float(Tdir.norm())) < 1e-12
        # what was removed is a multiple of T: W - R is parallel to T
        D = W - R
        cos = float((D * Tdir).sum()) / (float(D.norm()) * float(Tdir.norm()))
        assert abs(abs(cos) - 1) < 1e-12
    # float32 weights are handled in float64
    W32 = torch.randn(6, 6, generator=g)
    T64 = torch.randn(6, 6, generator=g, dtype=torch.float64)
    assert abs(float((project_out(W32, T64) * T64).sum())) < 1e-10
    # a zero direction leaves the weight unchanged
    assert torch.equal(project_out(W32, torch.zeros(6, 6)), W32.double())


def test_random_control_removes_the_same_norm_along_a_random_direction(corpus):
    """docs/theory.md (7.3) written here: W - (|<W,T>|/||T||) R/||R||, R i.i.d. N(0,1) from the seed."""
    tokens, basis = corpus
    g = torch.Generator().manual_seed(2)
    names = ["W_O"] + [f"layers.{l}.{x}" for l in range(L) for x in "WVP"]
    dirs = {k: reference_direction(basis, k) for k in names}
    weights = {k: 0.8 * d / d.norm() + 0.3 * torch.randn(d.shape, generator=g, dtype=torch.float64)
               for k, d in dirs.items()}
    model = make_model(weights)
    res = intervene(model, basis, tokens, step=3, lr=1.0, control_seeds=[5, 6])
    assert res.control == "random" and res.control_seeds == [5, 6]
    for r in res.rows:
        name = r["param"]
        W, Tdir = weights[name], dirs[name]
        removed_norm = abs(float((W * Tdir).sum())) / float(Tdir.norm())
        assert float((W - project_out(W, Tdir)).norm()) == pytest.approx(removed_norm, rel=1e-12)
        assert len(r["loss_control"]) == 2
        for seed, loss in zip((5, 6), r["loss_control"], strict=True):
            R = torch.randn(W.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            assert float((W - remove_random(W, Tdir, R)).norm()) == pytest.approx(removed_norm, rel=1e-12)
            ref = naive_loss(dict(weights, **{name: W - removed_norm * R / R.norm()}), tokens)
            assert rel(loss, ref) < 1e-12, name
        assert r["loss_control"][0] != r["loss_control"][1]  # two seeds, two directions
    table = format_table(res)
    assert "random, Δloss mean" in table and "seeds [5, 6]" in table
    assert "loss_control" not in intervene(model, basis, tokens, step=3, lr=1.0).rows[0]


def test_remove_random_edge_cases():
    W = torch.ones(3, 3, dtype=torch.float64)
    assert torch.equal(remove_random(W, torch.zeros(3, 3), torch.ones(3, 3)), W)  # nothing to remove
    with pytest.raises(LeadingTermsError):
        remove_random(W, W, torch.ones(4))
