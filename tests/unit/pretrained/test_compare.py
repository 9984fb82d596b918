"""End to end: docs/theory.md §8 similarities recomputed independently (naive statistics, manual forward, loops)."""

from __future__ import annotations

import math

import numpy as np
import torch
from reference.ptiny import make_tokenizer, naive_gram, naive_similarity, neox_manual

from leadingterms.persist import load_tensors, read_json
from leadingterms.pretrained.compare import CompareConfig, run_compare
from leadingterms.pretrained.loading import load_model, resolve_refs

K, T = 12, 8


def naive_stats(text: str):
    """docs/theory.md §2 B̄, Φ̄, Q̄ over the top-K tokens + <other>, with one-hot loops (float64)."""
    tok = make_tokenizer()
    docs = [d.strip() for d in text.split("<|endoftext|>") if d.strip()]
    seqs = [ids[: T + 1] for ids in (tok(d)["input_ids"] for d in docs) if len(ids) >= T + 1]
    counts = np.bincount(np.concatenate(seqs), minlength=len(tok))
    top = sorted(range(len(tok)), key=lambda i: (-counts[i], i))[:K]
    remap = {t: i for i, t in enumerate(top)}
    X = [[remap.get(t, K) for t in s] for s in seqs]
    V, N, u = K + 1, len(X), 1.0 / (K + 1)
    B, Phi = np.zeros((V, V)), np.zeros((V, V))
    for s in X:
        for t in range(T):
            r = -u * np.ones(V)
            r[s[t + 1]] += 1
            B[s[t]] += r
            for j in range(t + 1):
                Phi[:, s[j]] += r / (t + 1)
    B /= N * T
    Phi /= N * T
    M = B.T @ B @ Phi
    Q = np.zeros((V, V))
    for s in X:
        for t in range(T):
            r = -u * np.ones(V)
            r[s[t + 1]] += 1
            D = np.array([r @ M[:, s[j]] for j in range(t + 1)])
            Kt = (D - D.mean()) / (t + 1)  # J_t applied to the row
            for j in range(t + 1):
                Q[s[t], s[j]] += Kt[j]
    Q /= N * T
    return top, B, Phi, Q


def test_similarity_json_matches_independent_computation(tiny_neox, tiny_text, tmp_path):
    out = tmp_path / "out"
    run_compare(CompareConfig(models=[str(tiny_neox)], out=str(out), top_k=K, text=str(tiny_text), seq_len=T,
                              cache_dir=str(tmp_path / "cache"), plots=False))
    top, B, Phi, Q = naive_stats(tiny_text.read_text())
    info = read_json(out / "basis.json")
    assert info["token_ids"] == top
    saved, _ = load_tensors(out / "basis.safetensors")
    VD = (Phi.T @ B.T)[:K, :K]
    for name, want in (("B_bar", B[:K, :K]), ("Phi_bar", Phi[:K, :K]), ("Q_bar", Q[:K, :K]), ("value", VD)):
        got = saved[name].numpy()
        assert got.shape == (K, K)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-10, name

    rec = read_json(out / "tiny-neox" / "similarity.json")
    assert rec["commit"] is None and rec["revision"] is None and rec["model"] == str(tiny_neox)
    lm = load_model(resolve_refs([str(tiny_neox)])[0])
    pre, mid, post, q, k, direct = neox_manual(lm.model.state_dict(), lm.model.config, torch.tensor(top))
    G_value = naive_gram(VD / np.linalg.norm(VD, axis=1, keepdims=True))
    Qn = Q[:K, :K]
    G_att = naive_gram(Qn / np.linalg.norm(Qn, axis=1, keepdims=True))
    assert len(rec["layers"]) == 2
    for l, row in enumerate(rec["layers"]):
        assert row["layer"] == l
        for key, states in (("resid_pre", pre), ("resid_mid", mid), ("resid_post", post)):
            want = naive_similarity(naive_gram(states[l].numpy()), G_value)
            assert abs(row[key] - want) < 1e-5, (l, key)
            Hc = np.eye(K) - 1.0 / K  # token centring: linear CKA
            want = naive_similarity(Hc @ naive_gram(states[l].numpy()) @ Hc, Hc @ G_value @ Hc)
            assert abs(row["token_centred"][key] - want) < 1e-5, (l, key)
        hd = q.shape[-1]
        S = [(q[l, h] @ k[l, h].T / math.sqrt(hd)).numpy() for h in range(q.shape[1])]
        for h, s in enumerate(S):
            assert abs(row["qk_heads"][h] - naive_similarity(naive_gram(s), G_att)) < 1e-5
        assert abs(row["qk_mean"] - naive_similarity(naive_gram(np.mean(S, axis=0)), G_att)) < 1e-5
    Bk = B[:K, :K]
    d = direct.numpy()
    want_cos = naive_similarity(d - d.mean(1, keepdims=True), Bk - Bk.mean(1, keepdims=True))
    assert abs(rec["model_level"]["direct_cos"] - want_cos) < 1e-5
    want_gram = naive_similarity(naive_gram(d), naive_gram(Bk / np.linalg.norm(Bk, axis=1, keepdims=True)))
    assert abs(rec["model_level"]["direct_gram"] - want_gram) < 1e-5
    # the statistics are cached under the tokenizer fingerprint + corpus hash + T + K
    (entry,) = list((tmp_path / "cache").iterdir())
    assert entry.name.endswith(f"-T{T}") and (entry / f"K{K}" / "stats.safetensors").is_file()


def test_a_comparison_stopped_part_way_is_rerun_without_force(tmp_path):
    """What a comparison writes before its index.json (a model failed part-way) is no reason to refuse the
    rerun; any other file is."""
    import pytest

    from leadingterms.errors import LeadingTermsError
    from leadingterms.pretrained.compare import _claim

    out = tmp_path / "cmp"
    (out / "step0").mkdir(parents=True)
    (out / "step0" / "similarity.json").write_text("{}")
    for name in ("basis.json", "basis.safetensors", "basis-0123abcd.json", "similarity_lines.png", "report.html"):
        (out / name).write_text("x")
    cfg = CompareConfig(models=["m"], out=str(out), text="t.txt", top_k=10)
    _claim(out, cfg)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(LeadingTermsError, match=r"holds 'notes.txt'\) and is not a comparison; pass --force"):
        _claim(out, cfg)
