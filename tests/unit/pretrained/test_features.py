"""Single-token features against an independent float64 forward pass written from the weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference.ptiny import neox_manual, save_model

from leadingterms.pretrained.features import extract_features
from leadingterms.pretrained.loading import load_model, resolve_refs

IDS = [2, 5, 7, 11, 3, 20, 41, 9, 13]


def rel(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("parallel", [True, False])
def test_neox_features_match_manual_forward(tmp_path, parallel):
    folder = save_model("neox", tmp_path / "m", seed=3, layers=3, parallel=parallel)
    lm = load_model(resolve_refs([str(folder)])[0])
    feats = extract_features(lm.model, lm.spec, IDS, batch_size=4)  # several batches
    pre, mid, post, q, k, direct = neox_manual(lm.model.state_dict(), lm.model.config, torch.tensor(IDS))
    assert feats.resid_pre.shape == (3, len(IDS), 32) and feats.queries.shape == (3, 4, len(IDS), 8)
    for got, want in ((feats.resid_pre, pre), (feats.resid_mid, mid), (feats.resid_post, post),
                      (feats.queries, q), (feats.keys, k), (feats.direct, direct)):
        assert rel(got, want) < 1e-5
    # the HF forward's own hidden states agree (resid_post of the last block is before the final norm)
    out = lm.model(input_ids=torch.tensor(IDS)[:, None], output_hidden_states=True)
    for l in range(3):
        assert rel(feats.resid_pre[l], out.hidden_states[l][:, 0]) < 1e-6
    assert rel(feats.logits, out.logits[:, 0][:, IDS]) < 1e-6
    scores = feats.scores(1, head=2)
    assert rel(scores, q[1, 2] @ k[1, 2].T / math.sqrt(8)) < 1e-5


def test_gpt2_features_match_manual_forward(tiny_gpt2):
    lm = load_model(resolve_refs([str(tiny_gpt2)])[0])
    cfg = lm.model.config
    p = {k: v.double() for k, v in lm.model.state_dict().items()}
    ids = torch.tensor(IDS)
    feats = extract_features(lm.model, lm.spec, IDS)
    d, H = cfg.n_embd, cfg.n_head
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][0]
    for l in range(cfg.n_layer):
        g = f"transformer.h.{l}."
        ln1 = F.layer_norm(x, (d,), p[g + "ln_1.weight"], p[g + "ln_1.bias"], cfg.layer_norm_epsilon)
        qkv = ln1 @ p[g + "attn.c_attn.weight"] + p[g + "attn.c_attn.bias"]  # Conv1D: x @ W
        q, k, v = qkv.split(d, dim=1)
        attn = v @ p[g + "attn.c_proj.weight"] + p[g + "attn.c_proj.bias"]
        assert rel(feats.resid_pre[l], x) < 1e-5
        assert rel(feats.resid_mid[l], x + attn) < 1e-5
        assert rel(feats.queries[l], q.view(-1, H, d // H).transpose(0, 1)) < 1e-5
        assert rel(feats.keys[l], k.view(-1, H, d // H).transpose(0, 1)) < 1e-5
        x = feats.resid_post[l].double()
    assert feats.logits.shape == feats.direct.shape == (len(IDS), len(IDS))


def test_llama_grouped_query_keys_are_repeated(tiny_llama):
    lm = load_model(resolve_refs([str(tiny_llama)])[0])
    p = {k: v.double() for k, v in lm.model.state_dict().items()}
    cfg = lm.model.config
    feats = extract_features(lm.model, lm.spec, IDS)
    x = p["model.embed_tokens.weight"][torch.tensor(IDS)]
    w = p["model.layers.0.input_layernorm.weight"]
    ln = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * w
    k = (ln @ p["model.layers.0.self_attn.k_proj.weight"].T).view(len(IDS), 2, 8)  # 2 key heads for 4 query heads
    assert feats.keys.shape == (2, 4, len(IDS), 8)
    for h in range(4):
        assert rel(feats.keys[0, h], k[:, h // 2]) < 1e-5
    q = (ln @ p["model.layers.0.self_attn.q_proj.weight"].T).view(len(IDS), 4, 8).transpose(0, 1)
    assert rel(feats.queries[0], q) < 1e-5
