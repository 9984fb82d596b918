"""leadingterms.basis statistics against a naive dense float64 implementation of docs/theory.md §2.

The reference below is written straight from docs/theory.md §2 — one-hot X_i, Y_i, R_i, the A0 matrix,
an explicit J_t = diag(a_t) − a_t a_tᵀ per position — and shares no code with the package.
"""

from __future__ import annotations

import collections
import functools
import lzma
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadingterms.basis import (
    OTHER_TOKEN,
    Basis,
    attention_kernel,
    attention_stats,
    bigram_context_stats,
    compute_basis,
    estimate_bytes,
)
from leadingterms.basis.stats import reduce_basis
from leadingterms.errors import LeadingTermsError

NAMES = ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar")


# ---------------------------------------------------------------------------------------
# naive reference (docs/theory.md §2, literally)
# ---------------------------------------------------------------------------------------
def one_hot(ids: np.ndarray, V: int) -> np.ndarray:
    out = np.zeros((len(ids), V))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def naive_stats(tokens: np.ndarray, V: int, M: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All docs/theory.md §2 statistics (float64), K_i per sequence under key "K" (N, T, T), and M."""
    tokens = np.asarray(tokens, dtype=np.int64)
    N, T = tokens.shape[0], tokens.shape[1] - 1
    u = 1.0 / V
    A0 = np.zeros((T, T))
    for t in range(T):
        A0[t, : t + 1] = 1.0 / (t + 1)
    B, Phi, Pi, A = (np.zeros((V, V)) for _ in range(4))
    XR = []
    for seq in tokens:
        X, Y = one_hot(seq[:-1], V), one_hot(seq[1:], V)
        R = Y - u * np.ones((T, V))
        XR.append((X, R))
        B += X.T @ R
        Phi += R.T @ A0 @ X
        Pi += X.T @ X
        A += X.T @ A0.T @ X
    NT = N * T
    B, Phi, Pi, A = B / NT, Phi / NT, Pi / NT, A / NT
    if M is None:
        M = B.T @ B @ Phi
    Q, Delta, Ks = np.zeros((V, V)), np.zeros(T), []
    for X, R in XR:
        D = R @ M @ X.T
        K = np.zeros((T, T))
        for t in range(T):
            a = A0[t]
            J = np.diag(a) - np.outer(a, a)
            K[t, :] = J @ D[t, :]
        Ks.append(K)
        Q += X.T @ K @ X
        for m in range(T):
            Delta[m] += sum(K[t, t - m] for t in range(m, T))
    return {"B_bar": B, "Phi_bar": Phi, "Q_bar": Q / NT, "Delta": Delta / NT, "Pi": np.diag(Pi).copy(),
            "A_bar": A, "M": M, "K": np.array(Ks)}


def rel(a: torch.Tensor | np.ndarray, b: np.ndarray, floor: float = 1e-300) -> float:
    """‖a − b‖ / max(‖b‖, floor): relative error; ``floor`` is the scale below which b is rounding noise."""
    a = a.detach().double().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), floor))


def assert_basis_matches(basis: Basis, ref: dict[str, np.ndarray], tol: float = 1e-12) -> None:
    """Relative error <= tol; Q_bar and Delta, which can cancel to rounding noise (e.g. M ≈ 0 on
    degenerate corpora), are compared with the scale floor ‖M‖_F·1e-3."""
    for name in NAMES:
        assert getattr(basis, name).shape == ref[name].shape, name
        floor = max(1e-3 * float(np.linalg.norm(ref["M"])), 1e-300) if name in ("Q_bar", "Delta") else 1e-300
        err = rel(getattr(basis, name), ref[name], floor)
        assert err <= tol, (name, err)


corpora = st.integers(2, 8).flatmap(
    lambda V: st.tuples(
        st.just(V),
        st.integers(1, 7).flatmap(
            lambda T: st.lists(st.lists(st.integers(0, V - 1), min_size=T + 1, max_size=T + 1),
                               min_size=1, max_size=5)),
        st.integers(1, 5),
    )
)


# ``kernel``: each CPU kernel (tests/fixtures/kernels.py); it is the same for every example
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corpora)
def test_every_statistic_matches_naive_on_random_corpora(kernel, case):
    V, rows, chunk_rows = case
    tokens = np.array(rows, dtype=np.int64)
    ref = naive_stats(tokens, V)
    basis = compute_basis(tokens, V, progress=False, chunk_rows=chunk_rows)
    assert (basis.N, basis.T, basis.V) == (tokens.shape[0], tokens.shape[1] - 1, V)
    assert_basis_matches(basis, ref)
    scale = max(1e-3 * float(np.linalg.norm(ref["M"])), 1e-300)
    assert rel(basis.M(), ref["M"], 1e-18) <= 1e-12
    assert rel(attention_kernel(tokens, V, torch.from_numpy(ref["M"])), ref["K"], scale) <= 1e-12


def test_compact_vocabulary_path_matches_naive(kernel):
    # few distinct tokens in a large vocabulary: statistics are accumulated over the present ids
    rng = np.random.default_rng(1)
    V = 40
    ids = np.array([3, 7, 8, 20, 39])
    tokens = ids[rng.integers(0, len(ids), size=(6, 9))]
    ref = naive_stats(tokens, V)
    basis = compute_basis(tokens, V, progress=False, chunk_rows=4)
    assert_basis_matches(basis, ref)
    # absent rows of B_bar are 0, absent columns carry the -u·pi rank-one part
    assert torch.all(basis.B_bar[0] == 0) and torch.all(basis.B_bar[3, 0] < 0)
    M = torch.from_numpy(rng.standard_normal((V, V)))
    Q, Delta = attention_stats(tokens, V, M, chunk_rows=5)
    ref_M = naive_stats(tokens, V, M.numpy())
    assert rel(Q, ref_M["Q_bar"]) <= 1e-12 and rel(Delta, ref_M["Delta"]) <= 1e-12
    b32 = compute_basis(tokens, V, dtype=torch.float32, progress=False)
    for name in NAMES:
        assert getattr(b32, name).dtype == torch.float32
        assert rel(getattr(b32, name), ref[name]) <= 1e-5, name


# ---------------------------------------------------------------------------------------
# the real corpus (TinyStories head), simple word tokenization written here
# ---------------------------------------------------------------------------------------
def tinystories_tokens(path: Path, T: int, K: int, n_docs: int) -> tuple[np.ndarray, list[str]]:
    """Lowercase; runs of letters are tokens, every other char its own token; drop ' ' and '\\n'.

    Vocabulary: the K most frequent tokens plus ``<unk>`` (id K) for the rest — no story of the
    2 MiB head has all its tokens in a top-60 vocabulary, so the paper's filter would keep
    nothing. Stories split at ``<|endoftext|>`` lines; kept with >= T+1 tokens, truncated to T+1.
    """
    text = lzma.open(path, "rt", encoding="utf-8").read()
    docs = [d for d in re.split(r"^<\|endoftext\|>$", text, flags=re.M)][:n_docs]
    toks = [[w for w in re.findall(r"[^\W\d_]+|.", d.lower(), flags=re.S) if w not in (" ", "\n")] for d in docs]
    counts = collections.Counter(w for d in toks for w in d)
    vocab = [w for w, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:K]]
    index = {w: i for i, w in enumerate(vocab)}
    rows = [[index.get(w, K) for w in d[: T + 1]] for d in toks if len(d) >= T + 1]
    return np.array(rows, dtype=np.int64), vocab + ["<unk>"]


@functools.lru_cache(maxsize=1)
def _tiny_corpus(path: Path) -> tuple[np.ndarray, list[str]]:
    return tinystories_tokens(path, T=16, K=60, n_docs=200)


@pytest.fixture
def tiny_corpus(tinystories_path):
    return _tiny_corpus(tinystories_path)


def test_matches_naive_on_tinystories(tiny_corpus, kernel):
    tokens, vocab = tiny_corpus
    V = len(vocab)
    assert tokens.shape[0] > 100
    ref = naive_stats(tokens, V)
    basis = compute_basis(tokens, V, vocab=vocab, progress=False, chunk_rows=37)
    assert_basis_matches(basis, ref)
    assert rel(basis.M(), ref["M"]) <= 1e-12
    assert basis.vocab == vocab
    # derived products (sparse counts path) equal the dense products
    B, Phi = ref["B_bar"], ref["Phi_bar"]
    assert rel(basis.value_direction(), Phi.T @ B.T) <= 1e-12
    assert rel(basis.G_bar(), Phi.T @ B.T @ B) <= 1e-12
    assert rel(basis.interchange_next(), B.T @ B) <= 1e-12
    assert rel(basis.interchange_prev(), B @ B.T) <= 1e-12


def test_float32_is_close_to_float64(tiny_corpus, kernel):
    tokens, vocab = tiny_corpus
    b64 = compute_basis(tokens, len(vocab), progress=False)
    b32 = compute_basis(tokens, len(vocab), dtype=torch.float32, progress=False)
    for name in NAMES:
        t32 = getattr(b32, name)
        assert t32.dtype == torch.float32
        assert rel(t32, getattr(b64, name).numpy()) <= 1e-5, name
    assert b32.meta["dtype"] == "float32" and b64.meta["dtype"] == "float64"


# ---------------------------------------------------------------------------------------
# exact identities (docs/theory.md §2)
# ---------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corpora)
def test_exact_identities(kernel, case):
    V, rows, _ = case
    tokens = np.array(rows, dtype=np.int64)
    b = compute_basis(tokens, V, progress=False)
    scale = max(float(b.B_bar.abs().max()), 1e-300)
    assert float(b.B_bar.sum(1).abs().max()) <= 1e-14 * max(scale, 1.0)
    # B_bar[a, :] = pi_a (p(.|a) - u)
    x, y = tokens[:, :-1].reshape(-1), tokens[:, 1:].reshape(-1)
    counts = np.zeros((V, V))
    np.add.at(counts, (x, y), 1.0)
    pi = counts.sum(1) / len(x)
    cond = np.divide(counts, counts.sum(1, keepdims=True), out=np.zeros_like(counts), where=counts.sum(1, keepdims=True) > 0)
    expected = pi[:, None] * (cond - 1.0 / V) * (counts.sum(1, keepdims=True) > 0)
    assert np.abs(b.B_bar.numpy() - expected).max() <= 1e-15
    assert np.abs(b.Pi.numpy() - pi).max() <= 1e-15
    assert float(b.Phi_bar.sum(0).abs().max()) <= 1e-15
    # attention statistics are sums of K entries, |K| <= 2·max|M|: that is the scale of their rounding
    ms = max(float(b.M().abs().max()), 1e-300)
    assert float(b.Q_bar.sum(1).abs().max()) <= 1e-12 * ms
    assert abs(float(b.Delta.sum())) <= 1e-12 * ms
    K = attention_kernel(tokens, V, b.M())
    assert float(K[:, 0, :].abs().max()) == 0.0
    assert float(K.sum(2).abs().max()) <= 1e-12 * ms
    assert float(torch.triu(K, diagonal=1).abs().max()) == 0.0


# ---------------------------------------------------------------------------------------
# attention_stats: factored M, linearity, per-batch normalisation
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("V,present", [(9, 9), (60, 6)])
def test_factored_M_equals_dense_and_naive(V, present):
    rng = np.random.default_rng(V)
    tokens = rng.integers(0, present, size=(7, 12)) * (V // present)
    Lf = torch.from_numpy(rng.standard_normal((V, 4)))
    Rf = torch.from_numpy(rng.standard_normal((4, V)))
    Qf, Df = attention_stats(tokens, V, (Lf, Rf), chunk_rows=3)
    Qd, Dd = attention_stats(tokens, V, Lf @ Rf)
    ref = naive_stats(tokens, V, (Lf @ Rf).numpy())
    assert rel(Qf, ref["Q_bar"]) <= 1e-12 and rel(Df, ref["Delta"]) <= 1e-12
    assert rel(Qd, ref["Q_bar"]) <= 1e-12 and rel(Dd, ref["Delta"]) <= 1e-12


def test_attention_stats_is_linear_in_M():
    rng = np.random.default_rng(3)
    V, tokens = 7, rng.integers(0, 7, size=(5, 10))
    M1, M2 = (torch.from_numpy(rng.standard_normal((V, V))) for _ in range(2))
    Q1, D1 = attention_stats(tokens, V, M1)
    Q2, D2 = attention_stats(tokens, V, M2)
    Q, D = attention_stats(tokens, V, 2.5 * M1 - 0.75 * M2)
    assert rel(Q, (2.5 * Q1 - 0.75 * Q2).numpy()) <= 1e-12
    assert rel(D, (2.5 * D1 - 0.75 * D2).numpy()) <= 1e-12
    # a constant added to a column of M (u·colsum part) does not change K: rows of J_t sum to 0,
    # but a per-row constant c_b added to M[b, :] does not change it either
    Qc, _ = attention_stats(tokens, V, M1 + torch.arange(V, dtype=torch.float64)[:, None])
    assert rel(Qc, Q1.numpy()) <= 1e-12


def test_per_batch_statistics_normalise_by_batch_size():
    rng = np.random.default_rng(4)
    V = 6
    tokens = rng.integers(0, V, size=(9, 8))
    a, b = tokens[:4], tokens[4:]
    M = torch.from_numpy(rng.standard_normal((V, V)))
    full = bigram_context_stats(tokens, V)
    parts = [bigram_context_stats(p, V) for p in (a, b)]
    for k in range(4):
        ref_a = naive_stats(a, V)[["B_bar", "Phi_bar", "Pi", "A_bar"][k]]
        assert rel(parts[0][k], ref_a) <= 1e-12
        # weighted average of the per-batch statistics (weights n_batch / N) = full statistic
        avg = (4 * parts[0][k] + 5 * parts[1][k]) / 9
        assert rel(avg, full[k].numpy()) <= 1e-12
    Qa, Da = attention_stats(a, V, M)
    ref = naive_stats(a, V, M.numpy())
    assert rel(Qa, ref["Q_bar"]) <= 1e-12 and rel(Da, ref["Delta"]) <= 1e-12
    # duplicating every row leaves every statistic unchanged (1/(N·T), not a plain sum)
    twice = np.concatenate([tokens, tokens])
    for x, y in zip(bigram_context_stats(twice, V), full, strict=True):
        assert rel(x, y.numpy()) <= 1e-12
    Qt, _ = attention_stats(twice, V, M)
    assert rel(Qt, attention_stats(tokens, V, M)[0].numpy()) <= 1e-12


def test_accepts_torch_and_memmap_tokens(tmp_path):
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 5, size=(4, 7)).astype(np.uint16)
    np.save(tmp_path / "t.npy", tokens)
    mm = np.load(tmp_path / "t.npy", mmap_mode="r")
    ref = naive_stats(tokens, 5)
    for tok in (mm, torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(tokens.astype(np.int32))):
        B, Phi, Pi, A = bigram_context_stats(tok, 5)
        assert rel(B, ref["B_bar"]) <= 1e-12 and rel(A, ref["A_bar"]) <= 1e-12
        assert B.dtype == torch.float64


# ---------------------------------------------------------------------------------------
# top-k
# ---------------------------------------------------------------------------------------
def remap_top_k(tokens: np.ndarray, V: int, K: int) -> tuple[np.ndarray, list[int]]:
    counts = np.bincount(tokens.reshape(-1), minlength=V)
    order = sorted(range(V), key=lambda i: (-counts[i], i))[:K]
    lut = np.full(V, K)
    lut[order] = np.arange(K)
    return lut[tokens], order + [-1]


def test_top_k_equals_remap_then_compute():
    rng = np.random.default_rng(6)
    V, K = 12, 4
    tokens = np.minimum(rng.geometric(0.3, size=(6, 10)) - 1, V - 1)
    vocab = [f"w{i}" for i in range(V)]
    b = compute_basis(tokens, V, vocab=vocab, top_k=K, progress=False)
    remapped, ids = remap_top_k(tokens, V, K)
    ref = naive_stats(remapped, K + 1)
    assert b.V == K + 1
    assert_basis_matches(b, ref)
    assert b.meta["token_ids"] == ids and b.meta["top_k"] == K
    assert b.vocab == [vocab[i] for i in ids[:-1]] + [OTHER_TOKEN]


def test_top_k_ties_by_lower_id_and_counts_all_positions():
    # ids 2 and 1 tie (3 occurrences each, counting the last column), 0 is rarest
    tokens = np.array([[2, 1, 0, 2], [1, 3, 3, 3], [2, 1, 3, 3]])
    b = compute_basis(tokens, 4, top_k=2, progress=False)
    assert b.meta["token_ids"] == [3, 1, -1]
    b_all = compute_basis(tokens, 4, top_k=4, progress=False)
    assert b_all.V == 4 and b_all.meta["top_k"] is None


# ---------------------------------------------------------------------------------------
# bad input and memory refusal
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tokens,V",
    [
        (np.array([[0, 1, 5]]), 5),
        (np.array([[0, -1, 2]]), 5),
        (np.array([[0.0, 1.0]]), 5),
        (np.array([0, 1, 2]), 5),
        (np.zeros((3, 1), dtype=np.int64), 5),
        (np.zeros((0, 4), dtype=np.int64), 5),
    ],
)
def test_bad_tokens_one_line_error(tokens, V):
    with pytest.raises(LeadingTermsError) as e:
        compute_basis(tokens, V, progress=False)
    assert "\n" not in str(e.value)


def test_bad_M_and_options():
    tokens = np.array([[0, 1, 2, 1]])
    with pytest.raises(LeadingTermsError, match="M must be"):
        attention_stats(tokens, 3, torch.zeros(4, 4))
    with pytest.raises(LeadingTermsError, match="factors"):
        attention_stats(tokens, 3, (torch.zeros(3, 2), torch.zeros(3, 3)))
    with pytest.raises(LeadingTermsError, match="top-k"):
        compute_basis(tokens, 3, top_k=0, progress=False)
    with pytest.raises(LeadingTermsError, match="dtype"):
        compute_basis(tokens, 3, dtype=torch.float16, progress=False)
    with pytest.raises(LeadingTermsError, match="vocab"):
        compute_basis(tokens, 3, vocab=["a"], progress=False)


def test_refuses_before_allocating_when_memory_is_short(monkeypatch):
    monkeypatch.setenv("LEADINGTERMS_MAX_MEMORY_SHARE", "1e-9")
    with pytest.raises(LeadingTermsError, match="--top-k") as e:
        compute_basis(np.array([[0, 1, 2]]), 3, progress=False)
    assert "\n" not in str(e.value)
    assert estimate_bytes(2000, 10) > 4 * estimate_bytes(1000, 10) - 5 * 2**28
    assert estimate_bytes(1000, 10, torch.float32) < estimate_bytes(1000, 10, torch.float64)


def test_memory_estimate_counts_each_worker_thread(monkeypatch):
    """Worker threads of this process (stats --workers N) each hold pass-1 sums (3 V×V) and a chunk."""
    from leadingterms.basis.stats import DEFAULT_CHUNK_BYTES

    V = 1000
    one, three = estimate_bytes(V, 10, tasks=1), estimate_bytes(V, 10, tasks=3)
    assert three - one == 2 * (3 * 8 * V * V + DEFAULT_CHUNK_BYTES)
    assert estimate_bytes(V, 10, tasks=0) == one  # tasks on other processes: only this process's own
    monkeypatch.setenv("LEADINGTERMS_MAX_MEMORY_SHARE", "1")
    monkeypatch.setattr("leadingterms.budget.available_memory_bytes", lambda: (one + three) // 2)
    tokens = np.random.default_rng(0).integers(0, V, size=(4, 11))
    reduce_basis([tokens], V, progress=False, tasks_here=1)  # fits
    with pytest.raises(LeadingTermsError, match="needs about") as e:
        reduce_basis([tokens], V, progress=False, tasks_here=3)
    assert "\n" not in str(e.value)
