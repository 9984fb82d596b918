"""Closed-form predictions (docs/theory.md §3), second-order terms (§4), bounds and metric,
checked against the naive dense float64 model and basis in tests/naive.py."""

from __future__ import annotations

import lzma
import math
import re
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference.naive import NaiveBasis, gd_train, markov_corpus, naive_grads, zero_params

from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import compare
from leadingterms.predict import closed_form, paper_bounds, predict, second_order
from leadingterms.theory import S2, c_s

V_, T_, N_ = 12, 6, 20
STEPS = 8
KINDS = ("W_O", "W", "V", "P")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||."""
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return markov_corpus(V_, T_, N_, seed=0)


@pytest.fixture(scope="module")
def basis(corpus: np.ndarray) -> NaiveBasis:
    return NaiveBasis(corpus, V_)


@pytest.fixture(scope="module")
def gd_runs(corpus: np.ndarray) -> dict[tuple[int, float], dict[str, torch.Tensor]]:
    """Full-batch GD of the naive model for L in (1, 2) and eta in (1e-2, 1e-3), STEPS steps."""
    return {(L, eta): gd_train(corpus, V_, L, eta, STEPS) for L in (1, 2) for eta in (1e-2, 1e-3)}


# ----------------------------------------------------------------------------- reference sanity


def test_naive_basis_identities(basis: NaiveBasis) -> None:
    """docs/theory.md §2 exact identities of the reference statistics (rows/columns summing to zero)."""
    B, Phi, Q, D = basis.B_bar, basis.Phi_bar, basis.Q_bar, basis.Delta
    assert float(B.abs().max()) > 1e-3 and float(Q.abs().max()) > 0
    assert float(B.sum(1).abs().max()) < 1e-15
    assert float(Phi.sum(0).abs().max()) < 1e-15
    assert float(Q.sum(1).abs().max()) < 1e-15
    assert abs(float(D.sum())) < 1e-15
    assert abs(float(basis.Pi.sum()) - 1.0) < 1e-14


def test_coefficients() -> None:
    for s in range(0, 40):
        assert c_s(s) == sum(r * math.comb(r, 2) for r in range(s))
        assert 24 * c_s(s) == s * (s - 1) * (s - 2) * (3 * s - 1)
        assert S2(s) == sum(r * r for r in range(s))
    assert c_s(3) == 2 and c_s(4) == 11


# ----------------------------------------------------------------------------- exact identities


def test_gradients_at_zero_init(corpus: np.ndarray, basis: NaiveBasis) -> None:
    """At theta = 0 only W_O has a gradient and it equals -B_bar (docs/theory.md §3)."""
    g = naive_grads(zero_params(V_, T_, 2), corpus)
    assert rel(-g["W_O"], basis.B_bar) < 1e-13
    for l in range(2):
        for kind in ("W", "V", "P"):
            assert float(g[f"layers.{l}.{kind}"].abs().max()) == 0.0


@pytest.mark.parametrize("L", [1, 2])
def test_one_step_is_exact_and_normalisation_pinned(corpus: np.ndarray, basis: NaiveBasis, L: int) -> None:
    """W_O(1) = eta B_bar exactly; a 1/N (not 1/(N T)) normalisation would be off by a factor T."""
    eta = 0.37
    learned = gd_train(corpus, V_, L, eta, 1)
    pred = closed_form(basis, 1, eta, L)
    res = compare(learned, pred)
    assert set(res) == {"W_O"}  # V, W, P are still exactly zero after one step
    assert res["W_O"]["rel"] < 1e-14
    # the same comparison with per-sequence (1/N) normalisation fails by T - 1 in relative terms
    wrong = compare(learned, {"W_O": pred["W_O"] * T_})
    assert abs(wrong["W_O"]["rel"] - (T_ - 1)) < 1e-12
    for l in range(L):
        for kind in ("W", "V", "P"):
            assert float(pred[f"layers.{l}.{kind}"].abs().max()) == 0.0


@settings(max_examples=15, deadline=None)
@given(
    V=st.integers(2, 6),
    T=st.integers(1, 5),
    N=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    eta=st.floats(1e-3, 3.0),
)
def test_one_step_exact_random_corpora(V: int, T: int, N: int, seed: int, eta: float) -> None:
    """On random corpora: W_O(1) = eta B_bar to rounding, and at s = 2 the W, P of GD are still 0."""
    toks = np.random.default_rng(seed).integers(0, V, size=(N, T + 1))
    b = NaiveBasis(toks, V)
    learned = gd_train(toks, V, 1, eta, 2)
    assert float(learned["layers.0.W"].abs().max()) == 0.0
    assert float(learned["layers.0.P"].abs().max()) == 0.0
    one = gd_train(toks, V, 1, eta, 1)
    assert torch.allclose(one["W_O"], closed_form(b, 1, eta, 1)["W_O"], rtol=0, atol=1e-15 * max(1.0, eta))


# ----------------------------------------------------------------------------- against GD


@pytest.mark.parametrize("L", [1, 2])
def test_closed_form_error_is_first_order_in_eta(basis: NaiveBasis, gd_runs, L: int) -> None:
    """rel error of the §3 terms falls linearly in eta: ratio at eta=1e-2 vs 1e-3 ~ 10."""
    errs = {eta: compare(gd_runs[(L, eta)], closed_form(basis, STEPS, eta, L)) for eta in (1e-2, 1e-3)}
    for l in range(L):
        for name in ("W_O", f"layers.{l}.W", f"layers.{l}.V", f"layers.{l}.P"):
            small, big = errs[1e-3][name]["rel"], errs[1e-2][name]["rel"]
            assert small < 1e-3, (name, small)
            assert 5 < big / small < 20, (name, big, small)
            assert 1 - errs[1e-3][name]["cos"] < 1e-6


@pytest.mark.parametrize("L", [1, 2])
def test_second_order_terms(basis: NaiveBasis, gd_runs, L: int) -> None:
    """§4: W_O error falls as eta^3 and V as eta^2 (relative), >= 5x better than §3 at small eta;
    W and P are the §3 terms. L = 2 checks the L·C(s,3) B̄Φ̄Φ̄ᵀ term."""
    first = {eta: compare(gd_runs[(L, eta)], closed_form(basis, STEPS, eta, L)) for eta in (1e-2, 1e-3)}
    second = {eta: compare(gd_runs[(L, eta)], second_order(basis, STEPS, eta, L)) for eta in (1e-2, 1e-3)}
    names = ["W_O"] + [f"layers.{l}.V" for l in range(L)]
    for name in names:
        assert second[1e-3][name]["rel"] * 5 < first[1e-3][name]["rel"], name
        ratio = second[1e-2][name]["rel"] / second[1e-3][name]["rel"]
        expected = 1e3 if name == "W_O" else 1e2
        assert expected / 2.5 < ratio < expected * 2.5, (name, ratio)
    for l in range(L):
        for kind in ("W", "P"):
            name = f"layers.{l}.{kind}"
            assert second[1e-3][name] == first[1e-3][name]


def test_second_order_layer_term_matters(basis: NaiveBasis, gd_runs) -> None:
    """Using L = 1 in the W_O η³ term for a 2-layer model is visibly worse (the term can fail)."""
    learned = gd_runs[(2, 1e-2)]
    right = compare(learned, second_order(basis, STEPS, 1e-2, 2))["W_O"]["rel"]
    wrong = compare(learned, {"W_O": second_order(basis, STEPS, 1e-2, 1)["W_O"]})["W_O"]["rel"]
    assert wrong > 10 * right


def test_paper_bounds_values_and_they_hold(basis: NaiveBasis, gd_runs) -> None:
    b = paper_bounds(10, 0.1, 7)
    assert b["W_O"] == pytest.approx(3.0) and b["V"] == pytest.approx(12.0)
    assert b["W"] == pytest.approx(13 * 7) and b["P"] == pytest.approx(13 * 7)
    for eta in (1e-2, 1e-3):
        learned, pred = gd_runs[(1, eta)], closed_form(basis, STEPS, eta, 1)
        bounds = paper_bounds(STEPS, eta, T_)
        for kind in KINDS:
            name = "W_O" if kind == "W_O" else f"layers.0.{kind}"
            assert float(torch.linalg.vector_norm(learned[name] - pred[name])) <= bounds[kind]


def test_predict_order_dispatch_and_shapes(basis: NaiveBasis) -> None:
    p1, p2 = predict(basis, 5, 0.1, 3, order=1), predict(basis, 5, 0.1, 3, order=2)
    assert set(p1) == set(p2) == {"W_O"} | {f"layers.{l}.{k}" for l in range(3) for k in "WVP"}
    assert p1["W_O"].shape == (V_, V_) and p1["layers.2.P"].shape == (T_,)
    assert p1["layers.0.V"] is p1["layers.2.V"]  # layers share the same leading terms
    assert rel(p1["layers.1.V"], 10 * 0.01 * basis.Phi_bar.T @ basis.B_bar.T) < 1e-15
    assert rel(p1["layers.1.W"], c_s(5) * 1e-4 * basis.Q_bar) < 1e-15
    assert not torch.equal(p1["W_O"], p2["W_O"])
    with pytest.raises(LeadingTermsError):
        predict(basis, 5, 0.1, 3, order=3)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(lr=0.0), dict(lr=-1.0), dict(lr=float("nan")), dict(layers=0)])
def test_bad_schedule(basis: NaiveBasis, bad: dict) -> None:
    args = dict(steps=3, lr=0.1, layers=1) | bad
    with pytest.raises(LeadingTermsError):
        closed_form(basis, **args)


# ----------------------------------------------------------------------------- compare


def test_compare_metric() -> None:
    a = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    res = compare({"x": a, "zero": torch.zeros(2), "nopred": a, "y": a}, {"x": b, "zero": a, "y": torch.zeros(2, 2)})
    assert set(res) == {"x", "y"}  # learned == 0 omitted; names missing from predicted omitted
    assert res["x"]["cos"] == pytest.approx(3 / 5, abs=1e-15)
    assert res["x"]["rel"] == pytest.approx(4 / 5, abs=1e-15)
    assert res["y"] == {"cos": 0.0, "rel": 1.0}


# ----------------------------------------------------------------------------- real corpus


def _word_corpus(path, K: int, T: int, N: int) -> tuple[np.ndarray, int]:
    """A tiny word-tokenised corpus from the shared TinyStories head: K most frequent words + <other>."""
    with lzma.open(path, "rt", encoding="utf-8") as f:
        text = f.read(200_000).lower()
    words = re.findall(r"[^\W\d_]+|[^\s]", text)
    top = [w for w, _ in Counter(words).most_common(K)]
    ids = {w: i for i, w in enumerate(top)}
    seq = np.array([ids.get(w, K) for w in words], dtype=np.int64)
    return seq[: N * (T + 1)].reshape(N, T + 1), K + 1


def test_closed_form_on_real_corpus(tinystories_path) -> None:
    toks, V = _word_corpus(tinystories_path, K=24, T=8, N=24)
    b = NaiveBasis(toks, V)
    learned = gd_train(toks, V, 2, 1e-3, 10)
    res = compare(learned, closed_form(b, 10, 1e-3, 2))
    assert set(res) == {"W_O"} | {f"layers.{l}.{k}" for l in range(2) for k in "WVP"}
    for name, r in res.items():
        assert r["rel"] < 2e-3, (name, r)
    res2 = compare(learned, second_order(b, 10, 1e-3, 2))
    assert res2["W_O"]["rel"] < res["W_O"]["rel"] / 100
    assert res2["layers.0.V"]["rel"] < res["layers.0.V"]["rel"] / 10


# ----------------------------------------------------------------------------- Predictions (fixed matrices)


def _random_basis(V: int, T: int, N: int, seed: int):
    from leadingterms.basis import compute_basis

    toks = np.random.default_rng(seed).integers(0, V, size=(N, T + 1))
    return compute_basis(toks, V, progress=False)


@pytest.mark.parametrize("which", ["naive", "random", "tinystories"])
def test_predictions_equal_the_dense_formulas(which: str, basis: NaiveBasis, tinystories_path) -> None:
    """Predictions (fixed matrices formed once, combined per call) = (3.1)–(3.4), (4.3), (4.4) written
    densely, to 1e-12 relative, at several (s, η) from ONE Predictions object."""
    from reference.naive import reference_closed_form
    from reference.second_order import reference_second_order

    from leadingterms.predict import Predictions

    if which == "naive":
        b = basis
    elif which == "random":
        b = _random_basis(40, 10, 30, seed=1)
    else:
        from leadingterms.basis import compute_basis

        toks, V = _word_corpus(tinystories_path, K=299, T=24, N=60)
        b = compute_basis(toks, V, progress=False)
    L = 3
    p = Predictions(b, L)
    for s, eta in ((1, 0.5), (2, 0.1), (5, 0.03), (40, 1e-3)):
        cf, so = p.closed_form(s, eta), p.second_order(s, eta)
        for name, t in cf.items():
            want = reference_closed_form(b, name, s, eta)
            if float(want.abs().max()) > 0:
                assert rel(t, want) < 1e-12, (which, s, name)
        W_O, V_ = reference_second_order(b.B_bar, b.Phi_bar, b.A_bar, b.Pi, s, eta, L)
        assert rel(so["W_O"], W_O) < 1e-12, (which, s)
        for l in range(L):
            assert rel(so[f"layers.{l}.V"], V_) < 1e-12 if s > 1 else float(so[f"layers.{l}.V"].abs().max()) == 0
            assert so[f"layers.{l}.W"] is cf[f"layers.{l}.W"] or torch.equal(so[f"layers.{l}.W"], cf[f"layers.{l}.W"])
    fixed = dict(p._fixed)
    p.second_order(7, 0.01)
    assert all(p._fixed[k] is v for k, v in fixed.items())  # formed once, reused
