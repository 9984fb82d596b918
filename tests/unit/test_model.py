"""AttentionOnlyTransformer against a naive dense float64 implementation written from docs/theory.md §1."""

from __future__ import annotations

import math

import pytest
import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.model import AttentionOnlyTransformer, ModelConfig, dataset_loss, load_model, save_model

V, T = 13, 9


def naive_loss_and_logits(params: dict[str, torch.Tensor], tokens: torch.Tensor, layers: int):
    """docs/theory.md §1 literally: one-hot X, dense products, DM(P) filled with loops, per-sequence loops."""
    N, T1 = tokens.shape
    Tn = T1 - 1
    total = torch.zeros((), dtype=torch.float64)
    all_logits = []
    for i in range(N):
        X = torch.zeros(Tn, V, dtype=torch.float64)
        for t in range(Tn):
            X[t, int(tokens[i, t])] = 1.0
        h = X
        for l in range(layers):
            W, Vm, P = params[f"layers.{l}.W"], params[f"layers.{l}.V"], params[f"layers.{l}.P"]
            DM = torch.zeros(Tn, Tn, dtype=torch.float64)
            for t in range(Tn):
                for j in range(Tn):
                    DM[t, j] = P[t - j] if j <= t else -math.inf
            S = h @ W @ h.T + DM
            A = torch.exp(S - S.max(dim=1, keepdim=True).values)
            A = A / A.sum(dim=1, keepdim=True)
            h = h + A @ h @ Vm
        F_ = h @ params["W_O"]
        all_logits.append(F_)
        for t in range(Tn):
            y = int(tokens[i, t + 1])
            total = total - (F_[t, y] - torch.logsumexp(F_[t], dim=0))
    return total / (N * Tn), torch.stack(all_logits)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm())


def random_tokens(n: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (n, length), generator=g)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_forward_loss_and_gradients_match_naive(layers):
    cfg = ModelConfig(V=V, T=T, layers=layers, init="normal:0.7", dtype=torch.float64)
    model = AttentionOnlyTransformer(cfg, seed=layers)
    tokens = random_tokens(3, T + 1, seed=10 + layers)
    tokens[0, :4] = 5  # repeated tokens within a row
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    naive, naive_logits = naive_loss_and_logits(params, tokens, layers)
    naive.backward()
    ours = model.loss(tokens)
    ours.backward()
    assert abs(float(ours.detach()) - float(naive.detach())) / abs(float(naive.detach())) < 1e-12
    assert rel(model(tokens[:, :-1]).detach(), naive_logits.detach()) < 1e-12
    for name, p in model.named_parameters():
        assert p.grad is not None and float(params[name].grad.norm()) > 0, name
        assert rel(p.grad, params[name].grad) < 1e-11, name


@pytest.mark.parametrize("layers", [1, 3])
def test_shorter_inputs_are_the_prefix(layers):
    cfg = ModelConfig(V=V, T=T, layers=layers, init="normal:0.5", dtype=torch.float64)
    model = AttentionOnlyTransformer(cfg, seed=0)
    tokens = random_tokens(2, T + 1, seed=3)
    short = tokens[:, :5]
    params = {k: v.detach() for k, v in model.named_parameters()}
    naive, naive_logits = naive_loss_and_logits(params, short, layers)
    assert rel(model(short[:, :-1]), naive_logits) < 1e-12
    assert abs(float(model.loss(short).detach()) - float(naive)) < 1e-12 * abs(float(naive))
    # causality: logits of a prefix equal the first positions of the full logits
    full = model(tokens[:, :-1])
    assert rel(model(tokens[:, :4]), full[:, :4]) < 1e-12
    assert model(tokens[:, :1]).shape == (2, 1, V)


def test_zero_init_only_W_O_gets_gradient():
    model = AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=3), seed=1)
    tokens = random_tokens(4, T + 1, seed=4)
    loss = model.loss(tokens)
    assert abs(float(loss.detach()) - math.log(V)) < 1e-6
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None
        if name == "W_O":
            assert float(p.grad.abs().max()) > 0
        else:
            assert float(p.grad.abs().max()) == 0.0, name


def test_parameter_names_shapes_and_dtypes():
    for dtype in (torch.float32, torch.float64):
        model = AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=2, dtype=dtype))
        sd = model.state_dict()
        assert list(sd) == ["W_O", "layers.0.W", "layers.0.V", "layers.0.P", "layers.1.W", "layers.1.V", "layers.1.P"]
        assert sd["W_O"].shape == (V, V) and sd["layers.1.W"].shape == (V, V) and sd["layers.0.P"].shape == (T,)
        assert all(t.dtype == dtype for t in sd.values())
        out = model(random_tokens(2, T, seed=0))
        assert out.dtype == dtype and out.shape == (2, T, V)


def test_float32_agrees_with_float64():
    cfg64 = ModelConfig(V=V, T=T, layers=3, init="normal:0.5", dtype=torch.float64)
    m64 = AttentionOnlyTransformer(cfg64, seed=7)
    m32 = AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=3, init="normal:0.5"), seed=7)
    tokens = random_tokens(3, T + 1, seed=5)
    assert rel(m32(tokens[:, :-1]).double(), m64(tokens[:, :-1])) < 1e-5


def test_seeded_normal_init_is_deterministic():
    cfg = ModelConfig(V=V, T=T, layers=2, init="normal:0.1")
    a, b = AttentionOnlyTransformer(cfg, seed=3), AttentionOnlyTransformer(cfg, seed=3)
    c = AttentionOnlyTransformer(cfg, seed=4)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
        assert not torch.equal(v, c.state_dict()[k])
        assert 0.05 < float(v.std()) < 0.2
    zero = AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=2), seed=3)
    assert all(float(v.abs().max()) == 0.0 for v in zero.state_dict().values())


def test_config_dict_round_trip_and_validation():
    cfg = ModelConfig(V=V, T=T, layers=2, init="normal:0.02", dtype=torch.float64)
    d = cfg.to_dict()
    assert d == {"V": V, "T": T, "layers": 2, "init": "normal:0.02", "dtype": "float64"}
    assert ModelConfig.from_dict(d) == cfg
    for bad in ({"V": 0, "T": T, "layers": 1}, {"V": V, "T": T, "layers": 1, "init": "uniform"},
                {"V": V, "T": T, "layers": 1, "init": "normal:-1"}, {"V": V, "T": T, "layers": 1, "dtype": "int8"},
                {"V": V, "T": T}, {"V": V, "T": T, "layers": 1, "colour": 1}):
        with pytest.raises(LeadingTermsError):
            ModelConfig.from_dict(bad)


def test_bad_inputs_raise_one_line_errors():
    model = AttentionOnlyTransformer(ModelConfig(V=V, T=T, layers=1))
    for bad in (torch.zeros(3, dtype=torch.long), torch.zeros(2, T + 1, dtype=torch.long),
                torch.full((2, 3), V), torch.full((2, 3), -1), torch.zeros(2, 3)):
        with pytest.raises(LeadingTermsError) as exc:
            model(bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(LeadingTermsError):
        model.loss(torch.zeros(2, 1, dtype=torch.long))


def test_save_load_and_from_state_dict(tmp_path):
    cfg = ModelConfig(V=V, T=T, layers=3, init="normal:0.3", dtype=torch.float64)
    model = AttentionOnlyTransformer(cfg, seed=9)
    save_model(tmp_path / "m.safetensors", model, {"step": 5})
    loaded, meta = load_model(tmp_path / "m.safetensors")
    assert meta["step"] == 5 and loaded.cfg == cfg
    tokens = random_tokens(2, T + 1, seed=1)
    assert float(loaded.loss(tokens).detach()) == float(model.loss(tokens).detach())
    sd = dict(model.state_dict())
    sd32 = {k: v.float() for k, v in sd.items()}
    assert AttentionOnlyTransformer.from_state_dict(sd32).cfg.dtype == torch.float32
    for broken in ({k: v for k, v in sd.items() if k != "layers.1.V"},
                   {**sd, "extra": sd["W_O"]},
                   {k: v for k, v in sd.items() if not k.startswith("layers.1.")},
                   {**sd, "layers.0.W": torch.zeros(V, V + 1, dtype=torch.float64)}):
        with pytest.raises(LeadingTermsError):
            AttentionOnlyTransformer.from_state_dict(broken)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_matches_cpu():
    cfg = ModelConfig(V=V, T=T, layers=3, init="normal:0.5", dtype=torch.float64)
    cpu = AttentionOnlyTransformer(cfg, seed=2)
    gpu = AttentionOnlyTransformer(cfg, seed=2, device="cuda")
    tokens = random_tokens(3, T + 1, seed=2)
    lc, lg = cpu.loss(tokens), gpu.loss(tokens.cuda())
    lc.backward()
    lg.backward()
    assert abs(float(lc.detach()) - float(lg.detach())) < 1e-12 * abs(float(lc.detach()))
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        assert rel(q.grad.cpu(), p.grad) < 1e-10, name


def test_unchecked_loss_is_the_checked_loss():
    """``check=False`` (trusted int64 rows on the device) skips only the validation."""
    cfg = ModelConfig(V=11, T=6, layers=2, init="normal:0.3", dtype=torch.float64)
    model = AttentionOnlyTransformer(cfg, seed=1)
    tokens = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.loss(tokens), model.loss(tokens, check=False))
    assert dataset_loss(model, tokens.numpy(), batch_size=2) == dataset_loss(model, tokens.numpy(), batch_size=2,
                                                                               check=False)
    with pytest.raises(LeadingTermsError):
        model.loss(tokens + 11)  # checked: refused
