"""One SGD step (forward + backward + update) of our model vs the paper's dense formulation.

Baseline: a faithful re-implementation of the paper's toy model as written in SPEC §1 — one-hot
inputs ``X`` as dense float matrices, every product dense (``X @ W``, ``(A h) @ V``, ``h @ W_O``),
the positional matrix DM(P) filled by a Python loop over the offsets (one ``torch.diag`` per
offset) on every forward, and a causal mask.  Ours: ``leadingterms.model.AttentionOnlyTransformer``
(gathers for the one-hot first layer, products restricted to the batch's distinct tokens for
the first layer's output, dense later layers).  Both use ``torch.optim.SGD`` on the same weights
and the same batch, timed alternately in the same run; the median of several repeats is reported.

Token batches: uniform random ids (worst case for our distinct-token trick) and, when the
shared corpus is present, TinyStories word tokens (the paper's setting, V = 3000).

FLOP rates count the dense matmul FLOPs of one step (forward + backward, via
``torch.utils.flop_counter.FlopCounterMode``) divided by the step time, next to a plain
(B*T x V) @ (V x V) matmul timed on the same machine.
"""

from __future__ import annotations

import lzma
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from leadingterms.model import AttentionOnlyTransformer, ModelConfig

TINYSTORIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinystories-train-head-2MiB.txt.xz"


class PaperModel(nn.Module):
    """SPEC §1 written as the paper's code does it: dense one-hot products, DM(P) by a loop."""

    def __init__(self, weights: dict[str, torch.Tensor], layers: int) -> None:
        super().__init__()
        self.L = layers
        self.W_O = nn.Parameter(weights["W_O"].clone())
        self.W = nn.ParameterList(nn.Parameter(weights[f"layers.{l}.W"].clone()) for l in range(layers))
        self.Vv = nn.ParameterList(nn.Parameter(weights[f"layers.{l}.V"].clone()) for l in range(layers))
        self.P = nn.ParameterList(nn.Parameter(weights[f"layers.{l}.P"].clone()) for l in range(layers))

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        x, y = tokens[:, :-1], tokens[:, 1:]
        T, V = x.shape[1], self.W_O.shape[0]
        X = F.one_hot(x, V).to(self.W_O.dtype)  # (B, T, V)
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        h = X
        for l in range(self.L):
            DM = torch.zeros(T, T, dtype=X.dtype)
            for m in range(T):  # P[m] on the m-th sub-diagonal
                DM = DM + torch.diag(self.P[l][m] * torch.ones(T - m, dtype=X.dtype), -m)
            S = h @ self.W[l] @ h.transpose(1, 2) + DM
            A = torch.softmax(S.masked_fill(causal, float("-inf")), dim=-1)
            h = h + A @ h @ self.Vv[l]
        logits = h @ self.W_O
        return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))


def tinystories_tokens(V: int, T: int) -> torch.Tensor | None:
    """(N, T+1) word-token ids of the shared TinyStories head (SPEC §6 tokenizer, paper's filter)."""
    if not TINYSTORIES.is_file():
        return None
    stories = lzma.open(TINYSTORIES, "rt", encoding="utf-8").read().split("<|endoftext|>")
    toks = [[t for t in re.findall(r"[^\W\d_]+|.", s.lower(), re.S) if t not in (" ", "\n")] for s in stories]
    counts = Counter(t for ts in toks for t in ts)
    vocab = {w: i for i, (w, _) in enumerate(counts.most_common(V))}
    rows = [[vocab[t] for t in ts[: T + 1]] for ts in toks if len(ts) > T and all(t in vocab for t in ts)]
    return torch.tensor(rows) if rows else None


def step_fn(model: nn.Module, batch: torch.Tensor, lr: float = 0.005) -> Callable[[], float]:
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model.loss(batch)  # type: ignore[operator]
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def step_flops(step: Callable[[], float]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def time_alternating(fns: list[Callable[[], float]], repeats: int) -> list[float]:
    """Median seconds of each fn, called alternately (after one warm-up call each)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def plain_matmul(m: int, k: int, n: int) -> tuple[Callable[[], float], int]:
    """A plain float32 (m x k) @ (k x n) matmul and its FLOP count (the machine's reference rate)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    return (lambda: float((a @ b)[0, 0])), 2 * m * k * n


def run(quick: bool) -> str:
    V, T, B, repeats = (600, 64, 8, 3) if quick else (3000, 200, 8, 5)
    torch.manual_seed(0)
    batches = {"uniform random": torch.randint(0, V, (B, T + 1))}
    ts = tinystories_tokens(V, T)
    if ts is not None and len(ts) >= B:
        g = torch.Generator().manual_seed(0)
        batches["TinyStories words"] = ts[torch.randperm(len(ts), generator=g)[:B]]
    f_ref, fl_ref = plain_matmul(B * T, V, V)
    rows = []
    for layers in (1, 3):
        for name, batch in batches.items():
            ours = AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=layers, init="normal:0.01"), seed=0)
            base = PaperModel(ours.weights(), layers)
            f_ours, f_base = step_fn(ours, batch), step_fn(base, batch)
            assert abs(f_ours() - f_base()) < 1e-4, "models disagree"
            fl_ours, fl_base = step_flops(f_ours), step_flops(f_base)
            t_ours, t_base, t_ref = time_alternating([f_ours, f_base, f_ref], repeats)
            n_u = int(torch.unique(batch[:, :-1]).numel())
            rows.append(
                f"| {layers} | {name} | {n_u} | {t_base * 1e3:.0f} | {t_ours * 1e3:.0f} | **{t_base / t_ours:.2f}×** "
                f"| {fl_base / 1e9:.1f} | {fl_ours / 1e9:.1f} | {fl_base / t_base / 1e9:.0f} | {fl_ours / t_ours / 1e9:.0f} | {fl_ref / t_ref / 1e9:.0f} |"
            )
    return "\n".join([
        f"One optimizer step (forward + backward + `torch.optim.SGD` update), float32, V = {V}, T = {T}, "
        f"batch {B}, CPU, median of {repeats} alternating repeats after a warm-up. Baseline: the paper's dense "
        "formulation (one-hot `X @ W`, `(A h) @ V`, DM(P) filled by a Python loop over offsets each forward). "
        "Ours: `AttentionOnlyTransformer` (gathers for the one-hot first layer, first-layer output products "
        "restricted to the n_u distinct tokens of the batch). GFLOP = dense matmul FLOPs of one step "
        f"(FlopCounterMode), rate = GFLOP / step time; plain matmul = a float32 ({B * T} × {V}) @ ({V} × {V}) "
        "product timed in the same alternation as the two steps (the machine's reference rate at that moment). "
        "On a shared machine absolute times vary with the load; compare within a row.",
        "",
        "| layers | tokens | n_u | baseline ms | ours ms | speed-up | baseline GFLOP | ours GFLOP "
        "| baseline GFLOP/s | ours GFLOP/s | plain matmul GFLOP/s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])


if __name__ == "__main__":
    print(run(quick=True))
