"""Readouts of basis matrices and learned weights under every normalisation (docs/theory.md (7.4)–(7.7))
against the naive dense reference (tests/reference/readouts.py), on a random and a real corpus; exact
identities; the tie rule of top_k; memory-mapped readouts equal eager ones."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from reference.naive import markov_corpus
from reference.readouts import dense_basis_matrix, naive_readout, naive_top

from leadingterms.associations import (
    NORMALIZATIONS,
    Readouts,
    basis_readout,
    learned_readouts,
    normalized,
    open_readouts,
    top_k,
)
from leadingterms.basis import compute_basis, save_basis
from leadingterms.errors import LeadingTermsError
from leadingterms.theory import BASIS_NAMES, LEARNED_READOUTS

V_ = 11


def random_basis():
    """A Markov corpus in which token V-1 only ever ends a row: π = 0 for it (exercises (7.5)'s exclusion)."""
    tokens = markov_corpus(V_ - 1, 8, 25, seed=3)
    tokens[::3, -1] = V_ - 1
    return compute_basis(tokens, V_, vocab=[f"w{i}" for i in range(V_)], progress=False)


@functools.lru_cache(maxsize=1)
def _tinystories_basis(path):
    import tempfile

    from leadingterms.basis import load_basis
    from leadingterms.corpus.pipeline import CorpusConfig, run_corpus
    from leadingterms.corpus.store import load_store

    d = tempfile.mkdtemp(prefix="readouts-ts-")
    run_corpus(CorpusConfig(text=str(path), vocab_size=80, unk=True, seq_len=16, max_documents=150,
                            out=f"{d}/corpus"))
    store = load_store(f"{d}/corpus")
    save_basis(f"{d}/stats", compute_basis(store.tokens, store.V, vocab=store.vocab, progress=False))
    return load_basis(f"{d}/stats")


@pytest.fixture(params=["random", "tinystories"])
def basis(request):
    if request.param == "random":
        return random_basis()
    return _tinystories_basis(request.getfixturevalue("tinystories_path"))


def arrays(b) -> dict[str, np.ndarray]:
    return {k: getattr(b, k).double().numpy() for k in ("B_bar", "Phi_bar", "Q_bar")}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative error over the defined entries; NaN patterns must agree."""
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(b)
    return float(np.linalg.norm(a[ok] - b[ok]) / max(np.linalg.norm(b[ok]), 1e-300))


def check_top(got: list[tuple[str, float]], ref_vec: np.ndarray, vocab: list[str], k: int, exclude=None):
    """Tie-robust (rounding may order near-equal entries either way): the listed values are the reference's k
    largest, and each listed token has that value, to 1e-12 of the readout's scale."""
    ref = naive_top(ref_vec, k, exclude)
    tol = 1e-12 * float(np.nanmax(np.abs(ref_vec)))
    assert len(got) == len(ref)
    assert np.allclose([v for _, v in got], [v for _, v in ref], rtol=0, atol=tol)
    for tok, v in got:
        assert ref_vec[vocab.index(tok)] == pytest.approx(v, rel=0, abs=tol)


@pytest.mark.parametrize("how", NORMALIZATIONS)
@pytest.mark.parametrize("column", [False, True])
def test_every_basis_readout_and_normalisation_matches_the_dense_reference(basis, how, column):
    pi = basis.Pi.double().numpy()
    A = arrays(basis)
    vocab = basis.vocab
    ro = Readouts(vocab, basis.Pi, {n: basis_readout(basis, n) for n in BASIS_NAMES})
    tokens = [i for i in range(basis.V) if pi[i] > 0][:4] + [int(np.argmax(pi))]
    for name in BASIS_NAMES:
        Z = dense_basis_matrix(A, name)
        assert np.abs(Z).max() > 0
        for f in tokens:
            ref = naive_readout(Z, f, column, how, pi)
            got = ro.vector(name, f, column=column, normalize=how).numpy()
            assert rel(got, ref) <= 1e-12, (name, f, how, column)
            check_top(ro.top(name, f, k=5, column=column, normalize=how), ref, vocab, 5)
            check_top(ro.top(name, f, k=4, column=column, normalize=how, exclude_self=True), ref, vocab, 4, f)


def test_freq_excludes_tokens_never_seen_as_current_and_pmi_refuses_them():
    b = random_basis()
    assert float(b.Pi[V_ - 1]) == 0 and float(b.B_bar[:, V_ - 1].abs().max()) > 0
    ro = Readouts(b.vocab, b.Pi, {"bigram": basis_readout(b, "bigram")})
    v = ro.vector("bigram", 0, normalize="freq")
    assert torch.isnan(v[V_ - 1]) and not torch.isnan(v[:-1]).any()
    assert "w10" not in [t for t, _ in ro.top("bigram", 0, k=V_, normalize="freq")]
    assert "w10" in [t for t, _ in ro.top("bigram", 0, k=V_)]
    with pytest.raises(LeadingTermsError, match="π = 0") as e:
        ro.vector("bigram", V_ - 1, column=True, normalize="pmi")
    assert "\n" not in str(e.value)
    with pytest.raises(LeadingTermsError, match="normalize must be one of"):
        ro.vector("bigram", 0, normalize="log")


def test_exact_identities_of_the_normalisations():
    b = random_basis()
    ro = Readouts(b.vocab, b.Pi, {n: basis_readout(b, n) for n in BASIS_NAMES})
    pi = b.Pi.double()
    for name in BASIS_NAMES:
        for f in range(V_ - 1):
            for column in (False, True):
                freq = ro.vector(name, f, column=column, normalize="freq")
                pmi = ro.vector(name, f, column=column, normalize="pmi")
                torch.testing.assert_close(pmi, freq / pi[f], rtol=1e-14, atol=0, equal_nan=True)
                assert [t for t, _ in ro.top(name, f, k=V_, column=column, normalize="freq")] == \
                    [t for t, _ in ro.top(name, f, k=V_, column=column, normalize="pmi")]
    # centring changes nothing where the mean row/column vanishes: 1ᵀΦ̄ = 0, B̄1 = 0, Q̄1 = 0 (2.18)–(2.20),
    # hence 1ᵀB̄ᵀB̄ = 0 and Ḡ1 = 0
    zero_mean = [("context", False), ("bigram", True), ("attention", True), ("interchange-next", False),
                 ("interchange-next", True), ("composition", True)]
    for name, column in zero_mean:
        r = ro.get(name)
        scale = max(float(r.vector(f, column).abs().max()) for f in range(V_))
        assert float(r.mean(column).abs().max()) <= 1e-14 * scale, (name, column)
    # ... and it does change the others
    assert float(ro.get("bigram").mean(False).abs().max()) > 1e-6


def test_learned_readouts_match_dense_products_every_layer():
    g = torch.Generator().manual_seed(1)
    L = 2
    w = {"W_O": torch.randn(V_, V_, generator=g, dtype=torch.float64)}
    for l in range(L):
        for k in ("W", "V"):
            w[f"layers.{l}.{k}"] = torch.randn(V_, V_, generator=g, dtype=torch.float64)
        w[f"layers.{l}.P"] = torch.randn(5, generator=g, dtype=torch.float64)
    rs = learned_readouts(w, L)
    assert [r.name for r in rs] == ["W_O", "V^(0)", "V^(0)·W_O", "W^(0)", "V^(1)", "V^(1)·W_O", "W^(1)"]
    pi = torch.rand(V_, generator=g, dtype=torch.float64) + 0.01
    ro = Readouts([f"w{i}" for i in range(V_)], pi, {r.name: r for r in rs})
    dense = {"W_O": w["W_O"].numpy()}
    for l in range(L):
        dense[f"V^({l})"] = w[f"layers.{l}.V"].numpy()
        dense[f"V^({l})·W_O"] = w[f"layers.{l}.V"].numpy() @ w["W_O"].numpy()
        dense[f"W^({l})"] = w[f"layers.{l}.W"].numpy()
    for name, Z in dense.items():
        for how in NORMALIZATIONS:
            for column in (False, True):
                for f in (0, 3, V_ - 1):
                    ref = naive_readout(Z, f, column, how, pi.numpy())
                    assert rel(ro.vector(name, f, column=column, normalize=how).numpy(), ref) <= 1e-12
    assert [r.name for r in learned_readouts(w, L, ["V·W_O"], only_layer=1)] == ["V^(1)·W_O"]
    with pytest.raises(LeadingTermsError, match="layer 5"):
        learned_readouts(w, L, only_layer=5)
    assert set(LEARNED_READOUTS) == {"W_O", "V", "V·W_O", "W"}


def test_block_and_vector_agree():
    b = random_basis()
    for name in BASIS_NAMES:
        r = basis_readout(b, name)
        for column in (False, True):
            blk = r.block([0, 4, 2], column)
            for row, f in zip(blk, (0, 4, 2), strict=True):
                torch.testing.assert_close(row, r.vector(f, column), rtol=1e-12, atol=1e-300)
    Z = torch.randn(6, 4, dtype=torch.float64)
    with pytest.raises(LeadingTermsError, match="square"):
        basis_readout({"B_bar": Z, "Phi_bar": Z, "Q_bar": Z}, "bigram")


def test_top_k_tie_rule_nan_and_exclusion_against_sorted():
    g = torch.Generator().manual_seed(0)
    Z = torch.randint(0, 4, (50, 9), generator=g).double()  # many ties
    Z[Z == 3] = torch.nan
    for k in (1, 3, 9):
        ids, vals = top_k(Z, k, exclude=torch.arange(50) % 9)
        for r in range(50):
            ref = naive_top(Z[r].numpy(), k, exclude=r % 9)
            got = [(int(i), float(v)) for i, v in zip(ids[r], vals[r], strict=True) if int(i) >= 0]
            assert got == ref, (r, k)
            assert all(int(i) == -1 for i in ids[r, len(ref):]) and torch.isnan(vals[r, len(ref):]).all()
    with pytest.raises(LeadingTermsError):
        top_k(Z, 0)


def test_normalized_blocks_use_each_rows_own_token():
    b = random_basis()
    r = basis_readout(b, "value")
    idx = torch.tensor([1, 5, 2])
    blk = normalized(r.block(idx), idx, "pmi", b.Pi)
    for row, f in zip(blk, idx.tolist(), strict=True):
        torch.testing.assert_close(row, normalized(r.vector(f), f, "pmi", b.Pi), rtol=1e-12, atol=0,
                                   equal_nan=True)


def test_open_readouts_memory_mapped_equals_eager(tmp_path):
    b = random_basis()
    save_basis(tmp_path, b)
    mm, eager = open_readouts(tmp_path), open_readouts(tmp_path, mmap=False)
    for name in BASIS_NAMES:
        for how in NORMALIZATIONS[:2] + NORMALIZATIONS[3:]:
            assert mm.top(name, "w2", k=6, normalize=how) == eager.top(name, "w2", k=6, normalize=how)
    with pytest.raises(LeadingTermsError, match="did you mean"):
        mm.index("w22")
    with pytest.raises(LeadingTermsError, match="--stats"):
        open_readouts()
