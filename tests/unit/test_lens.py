"""run_with_cache and the logit lens: logits equal the optimised forward and the naive reference to 1e-12
(float64); every cached activation checked against a per-position loop written from docs/theory.md §1."""

from __future__ import annotations

import math

import pytest
import torch
from reference.naive import naive_forward

from leadingterms.errors import LeadingTermsError
from leadingterms.lens import SHORT_NAMES, lens_labels, logit_lens, plot_attention, run_with_cache
from leadingterms.model import AttentionOnlyTransformer, ModelConfig


def model_of(V=9, T=7, L=2, std=0.7, seed=1):
    return AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=L, init=f"normal:{std}", dtype=torch.float64),
                                    seed=seed)


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("L", [1, 2, 3])
def test_logits_equal_the_optimised_forward_and_the_naive_reference(L):
    m = model_of(L=L)
    x = torch.randint(0, 9, (3, 6), generator=torch.Generator().manual_seed(L))
    logits, cache = run_with_cache(m, x)
    with torch.no_grad():
        fast = m(x)
    assert rel(logits, fast) <= 1e-12
    assert rel(logits, naive_forward(m.weights(), x)) <= 1e-12
    assert torch.equal(cache["hook_logits"], logits)
    one, _ = run_with_cache(m, x[1])  # a single (T',) prompt
    assert one.shape == (1, 6, 9) and rel(one[0], logits[1]) <= 1e-12


def test_cache_against_a_per_position_loop():
    m = model_of(L=2)
    w = m.weights()
    x = torch.tensor([[3, 1, 4, 1, 5]])
    _, cache = run_with_cache(m, x)
    h = torch.nn.functional.one_hot(x[0], 9).double()
    assert torch.equal(cache["hook_embed"][0], h)
    Tp = 5
    for l in range(2):
        W, Vl, P = w[f"layers.{l}.W"], w[f"layers.{l}.V"], w[f"layers.{l}.P"]
        assert torch.allclose(cache[f"blocks.{l}.hook_resid_pre"][0], h, rtol=1e-13, atol=1e-13)
        A = torch.zeros(Tp, Tp, dtype=torch.float64)
        for t in range(Tp):
            s = [float(h[t] @ W @ h[j]) + float(P[t - j]) for j in range(t + 1)]
            z = sum(math.exp(v) for v in s)
            for j in range(t + 1):
                A[t, j] = math.exp(s[j]) / z
                assert cache[f"blocks.{l}.attn.hook_attn_scores"][0, t, j] == pytest.approx(s[j], rel=1e-12)
            assert all(math.isinf(float(v)) for v in cache[f"blocks.{l}.attn.hook_attn_scores"][0, t, t + 1:])
        assert torch.allclose(cache["pattern", l][0], A, rtol=1e-12, atol=1e-15)
        out = torch.stack([sum(A[t, j] * (h[j] @ Vl) for j in range(t + 1)) for t in range(Tp)])
        assert torch.allclose(cache["attn_out", l][0], out, rtol=1e-12, atol=1e-13)
        assert torch.allclose(cache["v", l][0], h @ Vl, rtol=1e-13, atol=1e-14)
        h = h + out
        assert torch.allclose(cache[f"blocks.{l}.hook_resid_post"][0], h, rtol=1e-12, atol=1e-13)
    assert cache["resid_post", -1] is cache["blocks.1.hook_resid_post"]
    assert set(SHORT_NAMES) <= {k.split(".")[-1].removeprefix("hook_") for k in cache}
    with pytest.raises(KeyError):
        cache["nope", 0]


def test_logit_lens_reads_each_layer_through_W_O():
    m = model_of(L=3)
    x = torch.tensor([[0, 2, 8, 2]])
    logits, cache = run_with_cache(m, x)
    lens = logit_lens(cache, m.W_O)
    assert lens.shape == (4, 1, 4, 9) and lens_labels(3) == ["embed", "layer 0", "layer 1", "layer 2"]
    assert torch.allclose(lens[0, 0], m.W_O.detach()[x[0]], rtol=0, atol=1e-15)  # the direct path: W_O[x_t]
    assert torch.allclose(lens[-1], logits, rtol=1e-14, atol=1e-14)
    one_layer = {k: v for k, v in m.weights().items() if not k.startswith(("layers.1.", "layers.2."))}
    with torch.no_grad():
        ref = naive_forward(one_layer, x)  # the model cut after layer 0, read through W_O
    assert rel(lens[1], ref) <= 1e-12


def test_bad_prompts_are_one_line_errors():
    m = model_of(T=4)
    with pytest.raises(LeadingTermsError):
        run_with_cache(m, torch.tensor([[0, 1, 2, 3, 4]]))  # longer than T
    with pytest.raises(LeadingTermsError):
        run_with_cache(m, torch.tensor([[0, 99]]))


def test_plot_attention_writes_png_and_svg(tmp_path):
    m = model_of(L=2)
    _, cache = run_with_cache(m, torch.tensor([[1, 2, 3]]))
    paths = plot_attention([cache["pattern", l][0] for l in range(2)], ["the", "bird", "flew"], tmp_path)
    assert sorted(p.name for p in paths) == ["attention.png", "attention.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert "bird" in (tmp_path / "attention.svg").read_text()
