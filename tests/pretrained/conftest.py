"""Tiny models, tokenizer and corpus built here (random init), saved locally; HF offline."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("text") / "corpus.txt"
    p.write_text(make_text(), encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def tiny_neox(tmp_path_factory) -> Path:
    return save_model("neox", tmp_path_factory.mktemp("neox") / "tiny-neox")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return save_model("gpt2", tmp_path_factory.mktemp("gpt2") / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return save_model("llama", tmp_path_factory.mktemp("llama") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return save_model("bert", tmp_path_factory.mktemp("bert") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_steps(tmp_path_factory) -> Path:
    """A local checkpoint suite: DIR/step0, DIR/step1, DIR/step4 (different random weights)."""
    root = tmp_path_factory.mktemp("suite") / "suite"
    for i, s in enumerate((0, 1, 4)):
        save_model("neox", root / f"step{s}", seed=10 + i)
    return root
