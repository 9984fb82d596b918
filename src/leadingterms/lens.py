"""Looking inside the toy model on a prompt: activations under TransformerLens-style hook names and a
per-layer logit lens (docs/theory.md §1).

:func:`run_with_cache` is a readable dense forward of (1.1)–(1.4) — one-hot inputs, explicit matrix
products — that records every intermediate; it is independent of the optimised
:meth:`leadingterms.model.AttentionOnlyTransformer.forward` (and tested equal to it). For code layer
l = 0..L−1 (the equations' layer l+1) and inputs x (B, T') the cache holds:

    hook_embed                     (B, T', V)  h^(0) = X, the one-hot inputs (1.1)
    blocks.{l}.hook_resid_pre      (B, T', V)  the residual stream entering layer l
    blocks.{l}.attn.hook_attn_scores (B, T', T') h W hᵀ + DM(P), −inf above the diagonal (1.2)
    blocks.{l}.attn.hook_pattern   (B, T', T') A^(l): row = query position t, col = key position j
    blocks.{l}.attn.hook_v         (B, T', V)  h V^(l): what each position would write if attended
    blocks.{l}.hook_attn_out       (B, T', V)  A^(l) h V^(l)
    blocks.{l}.hook_resid_post     (B, T', V)  h + A h V (1.3): the residual stream leaving layer l
    hook_logits                    (B, T', V)  h^(L) W_O (1.4): row t predicts x_{t+1}

The model has a single attention head, so there is no head axis. The **logit lens** reads the
residual stream after each layer through W_O: ``resid @ W_O`` for ``hook_embed`` (the direct path, W_O
alone: the bigram term) and each ``blocks.{l}.hook_resid_post``; the last one is the model's logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.model import AttentionOnlyTransformer
from leadingterms.validate import nonnegative_int, positive_int

#: TransformerLens-style short names: ``cache["pattern", 0]`` is ``cache["blocks.0.attn.hook_pattern"]``
SHORT_NAMES = {
    "resid_pre": "blocks.{l}.hook_resid_pre",
    "attn_scores": "blocks.{l}.attn.hook_attn_scores",
    "pattern": "blocks.{l}.attn.hook_pattern",
    "v": "blocks.{l}.attn.hook_v",
    "attn_out": "blocks.{l}.hook_attn_out",
    "resid_post": "blocks.{l}.hook_resid_post",
}


class ActivationCache(Mapping[str, Tensor]):
    """Recorded activations by hook name; ``cache["pattern", l]`` is short for the layer-l hook."""

    def __init__(self, tensors: dict[str, Tensor], layers: int) -> None:
        self._t = tensors
        self.layers = layers

    def __getitem__(self, key: str | tuple[str, int]) -> Tensor:  # type: ignore[override]
        if isinstance(key, tuple):
            short, layer = key
            if short not in SHORT_NAMES:
                raise KeyError(f"unknown short hook name {short!r}; one of {', '.join(SHORT_NAMES)}")
            l = layer + self.layers if layer < 0 else layer
            key = SHORT_NAMES[short].format(l=l)
        return self._t[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)


def _weights(model: AttentionOnlyTransformer) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in model.named_parameters()}


def run_with_cache(model: AttentionOnlyTransformer, tokens: Any) -> tuple[Tensor, ActivationCache]:
    """Dense forward of docs/theory.md (1.1)–(1.4) on ``tokens`` (B, T') or (T',) ids, 1 <= T' <= T, recording
    every activation -> (logits (B, T', V), cache). No gradients; the model's dtype and device."""
    ids = torch.as_tensor(tokens)
    x = model._tokens(ids[None, :] if ids.ndim == 1 else ids, 0, "input ids")
    w = _weights(model)
    V, L = model.cfg.V, model.cfg.layers
    Tp = x.shape[1]
    dtype = w["W_O"].dtype
    t = torch.arange(Tp, device=x.device)
    offset = t[:, None] - t[None, :]  # (T', T') offset t - j of query t, key j
    cache: dict[str, Tensor] = {}
    with torch.no_grad():
        h = F.one_hot(x, V).to(dtype)  # (1.1)
        cache["hook_embed"] = h
        for l in range(L):
            W, Vl, P = (w[f"layers.{l}.{k}"] for k in ("W", "V", "P"))
            cache[f"blocks.{l}.hook_resid_pre"] = h
            scores = h @ W @ h.transpose(1, 2) + P[offset.clamp(min=0)]  # h W hᵀ + DM(P) (1.6)
            scores = scores.masked_fill(offset < 0, -math.inf)
            A = torch.softmax(scores, dim=-1)  # (1.2)
            hV = h @ Vl
            out = A @ hV
            h = h + out  # (1.3)
            cache[f"blocks.{l}.attn.hook_attn_scores"] = scores
            cache[f"blocks.{l}.attn.hook_pattern"] = A
            cache[f"blocks.{l}.attn.hook_v"] = hV
            cache[f"blocks.{l}.hook_attn_out"] = out
            cache[f"blocks.{l}.hook_resid_post"] = h
        logits = h @ w["W_O"]  # (1.4)
        cache["hook_logits"] = logits
    return logits, ActivationCache(cache, L)


def lens_labels(layers: int) -> list[str]:
    """Names of the logit-lens readings: ``embed`` (W_O alone), then ``layer 0`` ... ``layer L-1``."""
    return ["embed"] + [f"layer {l}" for l in range(layers)]


def logit_lens(cache: ActivationCache, W_O: Tensor) -> Tensor:
    """The residual stream after each layer read through W_O -> (L+1, B, T', V): index 0 is ``hook_embed``
    @ W_O, index l+1 is ``blocks.{l}.hook_resid_post`` @ W_O (the last equals ``hook_logits``)."""
    streams = [cache["hook_embed"]] + [cache["resid_post", l] for l in range(cache.layers)]
    W = W_O.detach().to(streams[0].dtype)
    return torch.stack([s @ W for s in streams])


# ----------------------------------------------------------------------------- plots


def plot_attention(patterns: Sequence[Tensor], labels: Sequence[str], out_dir: str | Path,
                   stem: str = "attention") -> list[Path]:
    """One heatmap per layer of the attention pattern (T', T') of one prompt (row = query position, col =
    key position; tick labels = the prompt's tokens) -> the PNG and SVG paths."""
    from leadingterms.plotting import pyplot, save_figure

    plt = pyplot()
    n = len(patterns)
    Tp = len(labels)
    side = min(2.6 + 0.32 * Tp, 9.0)
    fig, axes = plt.subplots(1, n, figsize=(side * n + 0.8, side + 0.6), squeeze=False)
    for l, (ax, A) in enumerate(zip(axes[0], patterns, strict=True)):
        im = ax.imshow(A.detach().to("cpu", torch.float64).numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(f"layer {l}: A^({l + 1})")
        if Tp <= 40:
            ax.set_xticks(range(Tp), [repr(s)[1:-1] for s in labels], rotation=90, fontsize=8)
            ax.set_yticks(range(Tp), [repr(s)[1:-1] for s in labels], fontsize=8)
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position t")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="attention weight")
    return save_figure(fig, out_dir, stem, tight=True)


# ----------------------------------------------------------------------------- the inspect stage


@dataclass(kw_only=True)
class InspectConfig:
    """``leadingterms inspect``: a run's checkpoint on a prompt: per-layer top predictions, attention plots."""

    run: str = option(help="run folder from `leadingterms train`", metavar="RUN")
    text: str = option(help="the prompt, tokenized with the run's corpus tokenizer", metavar="PROMPT")
    step: int | None = option(None, help="checkpoint step (default: the latest)", metavar="S",
                              check=nonnegative_int)
    k: int = option(5, help="top-k predictions per layer and position", check=positive_int)
    out: str | None = option(None, help="folder for the attention plots and lens.json (default RUN/inspect)",
                             metavar="DIR")
    plots: bool = option(True, flag="--no-plots", negate=True, help="skip the attention-pattern plots")


@dataclass
class InspectResult:
    """The prompt's tokens, and per lens reading (embed, layer 0, ...) and position the top-k (token, prob)."""

    step: int
    tokens: list[str]
    labels: list[str]
    top: list[list[list[tuple[str, float]]]]  # [reading][position] -> top-k (token, probability)
    out: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "tokens": self.tokens, "readings": [
            {"reading": lab, "positions": [[{"token": t, "prob": p} for t, p in pos] for pos in rows]}
            for lab, rows in zip(self.labels, self.top, strict=True)]}


def encode_prompt(text: str, corpus: str | Path) -> tuple[list[int], list[str]]:
    """Token ids of ``text`` under the tokenizer of the token store ``corpus`` -> (ids, token strings);
    a one-line error for an empty prompt or tokens outside the vocabulary."""
    from leadingterms.corpus.tokenizers import load_tokenizer

    tok = load_tokenizer(corpus)
    ids = tok.encode(text)
    if not ids:
        raise LeadingTermsError("the prompt has no tokens")
    vocab = tok.vocab
    if any(i < 0 for i in ids):
        from leadingterms.corpus.tokenizers import word_tokens

        oov = sorted({w for w, i in zip(word_tokens(text), ids, strict=False) if i < 0})
        raise LeadingTermsError(f"the prompt has tokens outside the run's vocabulary: {', '.join(map(repr, oov))}")
    return ids, [vocab[i] for i in ids]


def run_inspect(cfg: InspectConfig) -> InspectResult:
    """Tokenize the prompt, run the checkpoint with :func:`run_with_cache` (float64, CPU), read the logit lens,
    write lens.json and the attention plots to ``--out``."""
    from leadingterms.persist import write_json
    from leadingterms.training import load_run

    check_config(cfg)
    run = load_run(cfg.run)
    step = run._step(cfg.step)
    run.store()  # the run's own corpus (hash checked): its tokenizer and vocabulary are the run's
    ids, toks = encode_prompt(cfg.text, run.config.corpus)
    model = run.load_checkpoint(step).to(torch.float64)
    if len(ids) > model.cfg.T:
        raise LeadingTermsError(f"the prompt has {len(ids)} tokens; the model reads at most T={model.cfg.T}")
    _, cache = run_with_cache(model, torch.tensor([ids]))
    lens = logit_lens(cache, model.W_O)[:, 0]  # (L+1, T', V)
    probs = torch.softmax(lens, dim=-1)
    k = min(cfg.k, model.cfg.V)
    vals, idx = torch.topk(probs, k, dim=-1)
    vocab = run_vocab(run, model.cfg.V)
    top = [[[(vocab[int(i)], float(p)) for i, p in zip(idx[r, t], vals[r, t], strict=True)]
            for t in range(len(ids))] for r in range(lens.shape[0])]
    out = Path(cfg.out) if cfg.out else run.path / "inspect"
    result = InspectResult(step, toks, lens_labels(model.cfg.layers), top, out)
    from leadingterms.locks import output_lock

    with output_lock(out, folder=True, what="inspect output"):  # one writer per output folder
        write_json(out / "lens.json", result.to_json())
        result.files.append(out / "lens.json")
        if cfg.plots:
            patterns = [cache["pattern", l][0] for l in range(model.cfg.layers)]
            result.files += plot_attention(patterns, toks, out)
    return result


def run_vocab(run: Any, V: int) -> list[str]:
    """The token strings of ``run``'s corpus (V of them)."""
    store = run.store()
    assert store is not None
    vocab = list(store.vocab)
    if len(vocab) != V:
        raise LeadingTermsError(f"the run's corpus has {len(vocab)} tokens, its model V={V}")
    return vocab
