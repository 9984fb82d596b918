"""Helpers of the pretrained tests: tiny corpus, tokenizer and models (random init), naive references."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

WORDS = [f"w{i}" for i in range(40)]


def make_text(n_docs: int = 120, seed: int = 0) -> str:
    """Documents of random words with planted bigrams, separated by <|endoftext|> lines."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        words = []
        for _ in range(rng.randint(8, 30)):
            w = rng.choice(WORDS[: 10 + rng.randint(0, 30)])
            words.append(w)
            if w == "w1":
                words.append("w2")  # planted bigram
        docs.append(" ".join(words))
    return "\n<|endoftext|>\n".join(docs) + "\n<|endoftext|>\n"


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


def save_model(kind: str, folder: Path, seed: int = 0, layers: int = 2, parallel: bool = True) -> Path:
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    tok = make_tokenizer()
    V = len(tok)
    if kind == "neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(
            vocab_size=V, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, rotary_pct=0.25, use_parallel_residual=parallel))
    elif kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=32, n_layer=layers, n_head=4, n_positions=64))
    elif kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=V, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=64, max_position_embeddings=64))
    elif kind == "bert":
        model = BertModel(BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                     intermediate_size=64))
    else:
        raise ValueError(kind)
    with torch.no_grad():  # random biases and norm weights so the test sees them
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or name.split(".")[-2].startswith("ln"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder



def naive_gram(S: np.ndarray) -> np.ndarray:
    n, m = S.shape
    G = np.zeros((n, n))
    for a in range(n):
        ca = S[a] - S[a].mean()
        for b in range(n):
            cb = S[b] - S[b].mean()
            G[a, b] = sum(ca[i] * cb[i] for i in range(m)) / (m - 1)
    return G


def naive_similarity(G1: np.ndarray, G2: np.ndarray) -> float:
    A = G1 / np.sqrt((G1**2).sum())
    B = G2 / np.sqrt((G2**2).sum())
    return float((A * B).sum())



def neox_manual(sd, cfg, ids):
    """GPT-NeoX, one token at position 0: softmax over one key = 1, rotary = identity."""
    p = {k: v.double() for k, v in sd.items()}
    H, d = cfg.num_attention_heads, cfg.hidden_size
    hd = d // H
    eps = cfg.layer_norm_eps
    x = p["gpt_neox.embed_in.weight"][ids]
    pre, mid, post, qs, ks = [], [], [], [], []
    for l in range(cfg.num_hidden_layers):
        g = f"gpt_neox.layers.{l}."
        ln1 = F.layer_norm(x, (d,), p[g + "input_layernorm.weight"], p[g + "input_layernorm.bias"], eps)
        qkv = (ln1 @ p[g + "attention.query_key_value.weight"].T + p[g + "attention.query_key_value.bias"])
        qkv = qkv.view(len(ids), H, 3 * hd)
        q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
        attn = v.reshape(len(ids), d) @ p[g + "attention.dense.weight"].T + p[g + "attention.dense.bias"]

        def mlp(y, g=g):
            ln2 = F.layer_norm(y, (d,), p[g + "post_attention_layernorm.weight"], p[g + "post_attention_layernorm.bias"], eps)
            h = F.gelu(ln2 @ p[g + "mlp.dense_h_to_4h.weight"].T + p[g + "mlp.dense_h_to_4h.bias"])
            return h @ p[g + "mlp.dense_4h_to_h.weight"].T + p[g + "mlp.dense_4h_to_h.bias"]

        pre.append(x)
        mid.append(x + attn)
        x = x + attn + mlp(x) if cfg.use_parallel_residual else (x + attn) + mlp(x + attn)
        post.append(x)
        qs.append(q.transpose(0, 1))
        ks.append(k.transpose(0, 1))
    lnf = F.layer_norm(pre[0], (d,), p["gpt_neox.final_layer_norm.weight"], p["gpt_neox.final_layer_norm.bias"], eps)
    W_U = p["lm_head.weight"] if "lm_head.weight" in p else p["embed_out.weight"]  # name depends on the version
    direct = (lnf @ W_U.T)[:, ids]
    return torch.stack(pre), torch.stack(mid), torch.stack(post), torch.stack(qs), torch.stack(ks), direct
