"""The SGD shadow (docs/theory.md §5): the sparse-cost implementation against the dense recursion
(tests/reference/dense_shadow.py), the naive per-position statistics, SGD itself, and resume."""

from __future__ import annotations

import lzma
import re
from collections import Counter

import numpy as np
import pytest
import torch
from reference.dense_shadow import DenseShadow, batch_statistics
from reference.naive import NaiveBasis, markov_corpus, naive_basis, naive_grads, sgd_train, zero_params

from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import compare
from leadingterms.predict import closed_form
from leadingterms.shadow import Shadow

V_, T_, N_ = 12, 6, 20
STEPS = 8


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||."""
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return markov_corpus(V_, T_, N_, seed=0)


def _batches(corpus: np.ndarray, steps: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [corpus[rng.choice(len(corpus), size=size, replace=False)] for _ in range(steps)]


def assert_equal_to_dense(batches: list[np.ndarray], V: int, lr: float, layers: int = 2, tol: float = 1e-12) -> None:
    """The Shadow after ``batches`` equals the dense recursion (5.2) to ``tol`` relative, every weight."""
    T = batches[0].shape[1] - 1
    sh, ref = Shadow(V, T, layers, lr), DenseShadow(V, T, lr)
    for b in batches:
        sh.update(b)
        ref.update(b)
    got, want = sh.weights(), ref.weights(layers)
    assert set(got) == set(want)
    for name, w in want.items():
        assert float(w.abs().max()) > 0, name  # every term has moved: the comparison can fail
        assert rel(got[name], w) <= tol, (name, rel(got[name], w))


# ----------------------------------------------------------------------------- the reference itself


def test_dense_reference_statistics_equal_naive_loops(corpus: np.ndarray) -> None:
    """tests/reference/dense_shadow.py's vectorised statistics = the per-position loops of naive.py."""
    M = torch.from_numpy(np.random.default_rng(0).normal(size=(V_, V_)))
    want = naive_basis(corpus[:5], V_, M=M.numpy())
    got = batch_statistics(corpus[:5], V_, M=M)
    for k in ("B_bar", "Phi_bar", "Q_bar", "Delta"):
        assert rel(got[k], torch.from_numpy(want[k])) < 1e-13, k


def test_dense_reference_matches_naive_recursion(corpus: np.ndarray) -> None:
    """(5.2) written naively (dense M_r = W_Oᵀ Vᵀ, naive per-batch statistics) = DenseShadow."""
    eta = 0.1
    W_O, Vv, W, P = np.zeros((V_, V_)), np.zeros((V_, V_)), np.zeros((V_, V_)), np.zeros(T_)
    ref = DenseShadow(V_, T_, eta)
    for batch in _batches(corpus, STEPS, 5, seed=1):
        st_ = naive_basis(batch, V_, M=W_O.T @ Vv.T)
        W, P = W + eta * st_["Q_bar"], P + eta * st_["Delta"]
        Vv = Vv + eta * st_["Phi_bar"].T @ W_O.T
        W_O = W_O + eta * st_["B_bar"]
        ref.update(batch)
    for name, want in (("W_O", W_O), ("layers.0.V", Vv), ("layers.0.W", W), ("layers.0.P", P)):
        assert rel(ref.weights(1)[name], torch.from_numpy(want)) < 1e-12, name


# ----------------------------------------------------------------------------- sparse = dense


def test_shadow_equals_dense_recursion_markov(corpus: np.ndarray) -> None:
    assert_equal_to_dense(_batches(corpus, STEPS, 5, seed=1), V_, 0.1)


@pytest.mark.parametrize("V,T,B,seed", [(50, 9, 3, 0), (200, 16, 4, 1), (7, 5, 20, 2)])
def test_shadow_equals_dense_recursion_random(V: int, T: int, B: int, seed: int) -> None:
    """Uniform random ids: few (V=200) or all (V=7: the batch holds every token, no compaction) tokens
    per batch, batches of different sizes."""
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, V, size=(int(rng.integers(1, B + 1)), T + 1)) for _ in range(6)]
    assert_equal_to_dense(batches, V, 0.7)


def _word_rows(path, K: int, T: int, chars: int = 400_000) -> tuple[np.ndarray, int]:
    """Word tokens of a shared text: the K most frequent words + <other> (id K), rows of T+1 tokens."""
    with lzma.open(path, "rt", encoding="utf-8") as f:
        words = re.findall(r"[^\W\d_]+|[^\s]", f.read(chars).lower())
    ids = {w: i for i, (w, _) in enumerate(Counter(words).most_common(K))}
    seq = np.array([ids.get(w, K) for w in words], dtype=np.int64)
    n = len(seq) // (T + 1)
    return seq[: n * (T + 1)].reshape(n, T + 1), K + 1


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tinystories", "wikitext"])
def test_shadow_equals_dense_recursion_real_corpora(which: str, tinystories_path, wikitext_path) -> None:
    """Real text at a realistic ratio of batch tokens to vocabulary (a few hundred of 1500)."""
    toks, V = _word_rows(tinystories_path if which == "tinystories" else wikitext_path, K=1499, T=48)
    rng = np.random.default_rng(3)
    batches = [toks[np.sort(rng.choice(len(toks), 6, replace=False))] for _ in range(5)]
    assert_equal_to_dense(batches, V, 2.0, layers=1)


@pytest.mark.parametrize("density", [0.0, 1.0])
def test_sparse_and_dense_products_agree(density: float, monkeypatch, tinystories_path) -> None:
    """Both ways of a step's two products (CSR below SPARSE_DENSITY, dense above) equal the dense recursion."""
    import leadingterms.shadow as shadow_mod

    monkeypatch.setattr(shadow_mod, "SPARSE_DENSITY", density)  # 0: always dense, 1: always sparse
    toks, V = _word_rows(tinystories_path, K=799, T=32)
    rng = np.random.default_rng(4)
    assert_equal_to_dense([toks[np.sort(rng.choice(len(toks), 5, replace=False))] for _ in range(5)], V, 2.0, 1)


def test_shadow_equals_closed_form_for_full_batches(corpus: np.ndarray) -> None:
    basis = NaiveBasis(corpus, V_)
    sh = Shadow(V_, T_, 2, 0.05)
    for _ in range(STEPS):
        sh.update(corpus)
    assert sh.step == STEPS
    w, pred = sh.weights(), closed_form(basis, STEPS, 0.05, 2)
    assert set(w) == set(pred)
    for name in pred:
        assert rel(w[name], pred[name]) < 1e-12, name


def test_increments_do_not_change_the_state(corpus: np.ndarray) -> None:
    """increments() is pure; apply(increments(b)) is update(b); increments live in the batch's rows."""
    batches = _batches(corpus, 4, 3, seed=5)
    a, b = Shadow(V_, T_, 1, 0.3), Shadow(V_, T_, 1, 0.3)
    for x in batches[:3]:
        a.update(x)
        b.update(x)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    inc = a.increments(batches[3])
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    present = np.unique(batches[3])
    assert inc.ids.tolist() == (present.tolist() if 2 * len(present) <= V_ else list(range(V_)))
    a.apply(inc)
    b.update(batches[3])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert a.step == 4
    # q is S 1 (kept by increments), and the rows of W_O = S - u q 1ᵀ sum to zero (docs/theory.md (2.18))
    assert rel(a.q, a.S_T.sum(0)) < 1e-14
    W_O = a.W_O()
    assert float(W_O.sum(1).abs().max()) <= 1e-15 * float(W_O.abs().max()) * V_
    # weight_rows (what a logged step compares) gives the rows of weights(), bit for bit
    rows, full = a.weight_rows(), a.weights()
    assert set(rows) == set(full)
    assert torch.equal(torch.cat([rows["W_O"](i, min(i + 3, V_)) for i in range(0, V_, 3)]), full["W_O"])
    assert all(rows[k] is full[k] for k in full if k != "W_O")


# ----------------------------------------------------------------------------- against SGD


@pytest.mark.parametrize("L", [1, 2])
def test_shadow_tracks_sgd_better_than_closed_form(corpus: np.ndarray, L: int) -> None:
    eta = 1e-2
    basis = NaiveBasis(corpus, V_)
    batches = _batches(corpus, STEPS, 4, seed=2)
    learned = sgd_train(batches, V_, L, eta)
    sh = Shadow(V_, T_, L, eta)
    for batch in batches:
        sh.update(batch)
    shadow = compare(learned, sh.weights())
    closed = compare(learned, closed_form(basis, STEPS, eta, L))
    for name in closed:
        assert shadow[name]["rel"] < 0.02, (name, shadow[name])
        assert shadow[name]["rel"] * 20 < closed[name]["rel"], (name, shadow[name], closed[name])


def test_shadow_gradient_accumulation_is_the_union(corpus: np.ndarray) -> None:
    """One optimizer step over two equal micro-batches = one step on their union."""
    eta = 1e-2
    micro = _batches(corpus, 2 * 4, 3, seed=3)
    steps = [np.concatenate(micro[2 * i: 2 * i + 2]) for i in range(4)]
    # accumulated gradient of two equal-size micro-batches (mean of means) = gradient of the union
    p = zero_params(V_, T_, 1)
    for i in range(4):
        g1, g2 = naive_grads(p, micro[2 * i]), naive_grads(p, micro[2 * i + 1])
        p = {k: p[k] - eta * (g1[k] + g2[k]) / 2 for k in p}
    sh = Shadow(V_, T_, 1, eta)
    for batch in steps:
        sh.update(batch)
    for name, r in compare(p, sh.weights()).items():
        assert r["rel"] < 0.01, (name, r)


# ----------------------------------------------------------------------------- state, errors, CUDA


def test_shadow_state_dict_resume(corpus: np.ndarray, tmp_path) -> None:
    from leadingterms.persist import load_tensors, save_tensors

    eta = 0.05
    batches = _batches(corpus, STEPS, 5, seed=4)
    full = Shadow(V_, T_, 2, eta)
    for b in batches:
        full.update(b)
    first = Shadow(V_, T_, 2, eta)
    for b in batches[:3]:
        first.update(b)
    save_tensors(tmp_path / "shadow.safetensors", first.state_dict())
    state, _ = load_tensors(tmp_path / "shadow.safetensors")
    resumed = Shadow(V_, T_, 2, eta)
    resumed.load_state_dict(state)
    assert resumed.step == 3
    for b in batches[3:]:
        resumed.update(b)
    assert resumed.step == full.step == STEPS
    for name, t in full.weights().items():
        assert torch.equal(resumed.weights()[name], t), name
    with pytest.raises(LeadingTermsError, match="lr"):
        Shadow(V_, T_, 2, 0.1).load_state_dict(state)
    with pytest.raises(LeadingTermsError, match="shape"):
        Shadow(V_ + 1, T_, 2, eta).load_state_dict(state)
    with pytest.raises(LeadingTermsError, match="lacks W"):
        Shadow(V_, T_, 2, eta).load_state_dict({k: v for k, v in state.items() if k != "W"})


def test_shadow_bad_batches(corpus: np.ndarray) -> None:
    sh = Shadow(V_, T_, 1, 0.1)
    with pytest.raises(LeadingTermsError):
        sh.update(corpus[:, :-1])
    with pytest.raises(LeadingTermsError):
        sh.update(np.full((2, T_ + 1), V_))
    with pytest.raises(LeadingTermsError):
        sh.update(corpus.astype(np.float64))
    with pytest.raises(LeadingTermsError):
        Shadow(V_, T_, 0, 0.1)
    assert sh.step == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_shadow_on_cuda_matches_cpu(corpus: np.ndarray) -> None:
    batches = _batches(corpus, STEPS, 5, seed=6)
    cpu, gpu = Shadow(V_, T_, 1, 0.05), Shadow(V_, T_, 1, 0.05, device="cuda")
    for b in batches:
        cpu.update(b)
        gpu.update(torch.from_numpy(b).cuda())
    for name, t in cpu.weights().items():
        assert gpu.weights()[name].device.type == "cuda"
        assert rel(gpu.weights()[name].cpu(), t) < 1e-12, name
