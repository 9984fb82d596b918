"""Independent, naive, dense float64 reference implementation of docs/theory.md §1 and §2.

Written straight from the paper's definitions (as restated in docs/theory.md) with one-hot matrices, explicit loops and an explicit softmax
Jacobian ``J_t`` per position. It is deliberately slow and shares no code with the package, so
that tests of ``leadingterms`` can compare against it. Other test modules import it.

- :func:`naive_basis` -> dict of float64 numpy arrays (docs/theory.md §2).
- :func:`naive_forward`, :func:`naive_loss` -> the model of docs/theory.md §1 on dense one-hot inputs.
- :func:`sgd_train` / :func:`gd_train` -> plain (full-batch) gradient descent via autograd.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch


def _one_hot(ids: np.ndarray, V: int) -> np.ndarray:
    """(T,) ids -> (T, V) one-hot rows, float64."""
    out = np.zeros((len(ids), V))
    for t, a in enumerate(ids):
        out[t, int(a)] = 1.0
    return out


def uniform_causal_attention(T: int) -> np.ndarray:
    """A0 (T, T): A0[t, j] = 1/(t+1) for j <= t, else 0 (docs/theory.md §2)."""
    A0 = np.zeros((T, T))
    for t in range(T):
        for j in range(t + 1):
            A0[t, j] = 1.0 / (t + 1)
    return A0


def naive_basis(tokens: np.ndarray, V: int, M: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every docs/theory.md §2 statistic of ``tokens`` (N, T+1), normalised once by 1/(N*T).

    ``M`` (V, V) replaces B_bar^T B_bar Phi_bar in Q_bar/Delta (docs/theory.md §5 uses Q_r(M), Delta_r(M)).

    Returns float64 arrays: B_bar (V,V) current->next, Phi_bar (V,V) next x context,
    Q_bar (V,V) query x key, Delta (T,) offset m = t - j, Pi (V,) = diag(Pi),
    A_bar (V,V) context x query, and M = B_bar^T B_bar Phi_bar (V,V).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    N, T1 = tokens.shape
    T = T1 - 1
    u = 1.0 / V
    A0 = uniform_causal_attention(T)
    B = np.zeros((V, V))
    Phi = np.zeros((V, V))
    Pi = np.zeros((V, V))
    A_bar = np.zeros((V, V))
    Xs, Rs = [], []
    for i in range(N):
        X = _one_hot(tokens[i, :-1], V)
        Y = _one_hot(tokens[i, 1:], V)
        R = Y - u * np.ones((T, V))
        Xs.append(X)
        Rs.append(R)
        B += X.T @ R
        Phi += R.T @ A0 @ X
        Pi += X.T @ X
        A_bar += X.T @ A0.T @ X
    NT = N * T
    B /= NT
    Phi /= NT
    Pi /= NT
    A_bar /= NT
    if M is None:
        M = B.T @ B @ Phi
    Q = np.zeros((V, V))
    Delta = np.zeros(T)
    for X, R in zip(Xs, Rs, strict=True):
        D = R @ M @ X.T  # (T, T): D[t, j] = r_t^T M e_{x_j}
        K = np.zeros((T, T))
        for t in range(T):
            a = A0[t, :]
            J = np.diag(a) - np.outer(a, a)  # zero outside the first t+1 rows/cols
            K[t, :] = J @ D[t, :]
        Q += X.T @ K @ X
        for m in range(T):
            for t in range(m, T):
                Delta[m] += K[t, t - m]
    Q /= NT
    Delta /= NT
    return {
        "B_bar": B,
        "Phi_bar": Phi,
        "Q_bar": Q,
        "Delta": Delta,
        "Pi": np.diag(Pi).copy(),
        "A_bar": A_bar,
        "M": M,
    }


def zero_params(V: int, T: int, L: int) -> dict[str, torch.Tensor]:
    """All-zero float64 parameters named as in docs/theory.md §1."""
    p = {"W_O": torch.zeros(V, V, dtype=torch.float64)}
    for l in range(L):
        p[f"layers.{l}.W"] = torch.zeros(V, V, dtype=torch.float64)
        p[f"layers.{l}.V"] = torch.zeros(V, V, dtype=torch.float64)
        p[f"layers.{l}.P"] = torch.zeros(T, dtype=torch.float64)
    return p


def naive_forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """docs/theory.md §1 forward pass with dense one-hot inputs: x (B, T') ids -> logits (B, T', V)."""
    V = params["W_O"].shape[0]
    L = sum(1 for k in params if k.endswith(".W") and k.startswith("layers."))
    X = torch.nn.functional.one_hot(x.long(), V).to(torch.float64)
    Tp = x.shape[1]
    t_idx = torch.arange(Tp).unsqueeze(1)
    j_idx = torch.arange(Tp).unsqueeze(0)
    causal = j_idx <= t_idx
    offset = (t_idx - j_idx).clamp(min=0)
    h = X
    for l in range(L):
        W, Vv, P = params[f"layers.{l}.W"], params[f"layers.{l}.V"], params[f"layers.{l}.P"]
        scores = h @ W @ h.transpose(1, 2) + P[offset]  # DM(P)[t, j] = P[t - j]
        scores = scores.masked_fill(~causal, float("-inf"))
        A = torch.softmax(scores, dim=-1)
        h = h + A @ h @ Vv
    return h @ params["W_O"]


def naive_loss(params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all N*T predicted positions of ``tokens`` (N, T+1)."""
    logits = naive_forward(params, tokens[:, :-1])
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1).long())


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny torch ops on one thread (multi-thread spin-waits make them ~100x slower on a busy
    machine); restores the previous setting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def naive_grads(params: dict[str, torch.Tensor], tokens: np.ndarray) -> dict[str, torch.Tensor]:
    """Autograd gradients of the mean cross-entropy w.r.t. every parameter."""
    ps = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    names = list(ps)
    with single_thread():
        loss = naive_loss(ps, torch.as_tensor(np.asarray(tokens, dtype=np.int64)))
        grads = torch.autograd.grad(loss, [ps[k] for k in names])
    return dict(zip(names, grads, strict=True))


def sgd_train(batches: Sequence[np.ndarray], V: int, L: int, lr: float,
              params: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Plain SGD from zero (or ``params``): one step per batch (B, T+1), theta -= lr * grad."""
    T = int(np.asarray(batches[0]).shape[1]) - 1
    p = zero_params(V, T, L) if params is None else {k: v.clone() for k, v in params.items()}
    for batch in batches:
        g = naive_grads(p, batch)
        p = {k: p[k] - lr * g[k] for k in p}
    return p


def gd_train(tokens: np.ndarray, V: int, L: int, lr: float, steps: int) -> dict[str, torch.Tensor]:
    """Full-batch GD from zero for ``steps`` steps (docs/theory.md §1 / §3 setting)."""
    return sgd_train([tokens] * steps, V, L, lr)


def c_of_s(s: int) -> int:
    """c(s) = s(s-1)(s-2)(3s-1)/24 (the product form; the package uses 3C(s,4) + 2C(s,3))."""
    return s * (s - 1) * (s - 2) * (3 * s - 1) // 24


def reference_direction(basis: NaiveBasis | object, name: str) -> torch.Tensor:
    """The predicted direction of parameter ``name`` written out from docs/theory.md §3: B_bar for W_O,
    Phi_bar^T B_bar^T for V, Q_bar for W, Delta for P (float64)."""
    b = basis
    kind = name.split(".")[-1]
    out = {"W_O": lambda: b.B_bar, "V": lambda: b.Phi_bar.T @ b.B_bar.T,  # type: ignore[attr-defined]
           "W": lambda: b.Q_bar, "P": lambda: b.Delta}[kind]()  # type: ignore[attr-defined]
    return out.double()


def reference_closed_form(basis: NaiveBasis | object, name: str, s: int, eta: float) -> torch.Tensor:
    """docs/theory.md §3 closed form of parameter ``name`` after s steps at learning rate eta, written out here."""
    kind = name.split(".")[-1]
    coef = {"W_O": s * eta, "V": math.comb(s, 2) * eta**2, "W": c_of_s(s) * eta**4, "P": c_of_s(s) * eta**4}[kind]
    return coef * reference_direction(basis, name)


class NaiveBasis:
    """The :func:`naive_basis` statistics as torch float64 tensors with the attribute names and
    derived products of ``leadingterms.basis.Basis`` (products formed densely, naively)."""

    def __init__(self, tokens: np.ndarray, V: int, vocab: list[str] | None = None) -> None:
        d = naive_basis(tokens, V)
        self.arrays = d
        self.B_bar = torch.from_numpy(d["B_bar"])
        self.Phi_bar = torch.from_numpy(d["Phi_bar"])
        self.Q_bar = torch.from_numpy(d["Q_bar"])
        self.Delta = torch.from_numpy(d["Delta"])
        self.Pi = torch.from_numpy(d["Pi"])
        self.A_bar = torch.from_numpy(d["A_bar"])
        self.N, self.T, self.V = int(np.asarray(tokens).shape[0]), int(np.asarray(tokens).shape[1]) - 1, V
        self.vocab = vocab
        self.meta: dict[str, object] = {}

    def value_direction(self) -> torch.Tensor:  # Φ̄ᵀ B̄ᵀ
        return self.Phi_bar.T @ self.B_bar.T

    def G_bar(self) -> torch.Tensor:  # Φ̄ᵀ B̄ᵀ B̄
        return self.Phi_bar.T @ self.B_bar.T @ self.B_bar

    def interchange_next(self) -> torch.Tensor:  # B̄ᵀ B̄
        return self.B_bar.T @ self.B_bar

    def interchange_prev(self) -> torch.Tensor:  # B̄ B̄ᵀ
        return self.B_bar @ self.B_bar.T


def markov_corpus(V: int, T: int, N: int, seed: int = 0, concentration: float = 0.3) -> np.ndarray:
    """(N, T+1) int64 tokens from a random first-order Markov chain (peaked transitions)."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(V, concentration), size=V)
    toks = np.zeros((N, T + 1), dtype=np.int64)
    for i in range(N):
        toks[i, 0] = rng.integers(V)
        for t in range(T):
            toks[i, t + 1] = rng.choice(V, p=trans[toks[i, t]])
    return toks
