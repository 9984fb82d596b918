"""Single-token features of a causal LM, read with forward hooks on the raw HF weights (docs/theory.md §8).

Each of the n selected tokens is fed alone (a batch of n sequences of length 1, position 0).
For every layer l (0-indexed) the hooks record, all before any final layer norm:

- ``resid_pre[l]``  the residual stream entering block l (for l = 0: the token embedding, plus
  the learned position-0 embedding for GPT-2);
- ``resid_mid[l]``  ``resid_pre[l] + attn_out[l]``, the residual after the attention sub-layer.
  ``attn_out`` is the attention module's output (after its output projection and bias). For
  sequential blocks (GPT-2, Llama, GPT-NeoX with ``use_parallel_residual=False``) this is exactly
  the stream the MLP reads. For parallel-residual blocks (GPT-NeoX/Pythia default) the MLP reads
  ``resid_pre`` instead and ``resid_post = resid_pre + attn_out + mlp_out``; ``resid_mid`` is then
  the (virtual) stream with the attention contribution only — the same definition in both cases;
- ``resid_post[l]`` the block's output (= ``resid_pre[l+1]``; for the last block, before the
  final norm);
- ``queries[l]``, ``keys[l]`` (H, n, d_head): the query and key projections as the forward pass
  computes them, i.e. of ``input_layernorm(resid_pre[l])`` (GPT-2: ``ln_1``) with the projection
  biases included. At position 0 rotary embeddings are the identity, so no rotation is applied.
  Grouped-query attention (Llama ``num_key_value_heads < num_attention_heads``) repeats each key
  head for the query heads that share it.

The attention score of head h for query token a and key token b is
``queries[l,h,a] · keys[l,h,b] / sqrt(d_head)`` — the pre-softmax score the head would give a key
token b seen earlier in the context at the same position (both at position 0, i.e. ignoring
position). Layer-norm weights are not folded and nothing is centred (unlike TransformerLens'
default processing used by the paper's code): these are the raw HF modules' own outputs.

Model-level matrices (n, n), rows = current token a, columns = next token b:

- ``logits``: the full model's logits at position 0 for the input token a (its one-token
  "bigram" prediction), restricted to the n tokens;
- ``direct``: the direct path ``W_U · final_norm(resid_pre[0])`` (unembedding ∘ embedding with the
  final norm applied to the embedding, the "virtual weights" that play the role of W_O).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from leadingterms.errors import LeadingTermsError


@dataclass(frozen=True)
class ArchSpec:
    """Where the pieces live in an HF causal LM of one ``model_type``."""

    blocks: str  # dotted path (from the model) to the ModuleList of blocks
    attention: str  # attribute of a block: the attention module
    final_norm: str  # dotted path (from the model) to the final norm
    qk: str  # "neox": fused query_key_value, per head [q|k|v]; "gpt2": fused c_attn [q|k|v];
    #          "separate": q_proj / k_proj


_LLAMA = ArchSpec("model.layers", "self_attn", "model.norm", "separate")
#: Supported ``config.model_type`` values.
ARCHS: dict[str, ArchSpec] = {
    "gpt_neox": ArchSpec("gpt_neox.layers", "attention", "gpt_neox.final_layer_norm", "neox"),
    "gpt2": ArchSpec("transformer.h", "attn", "transformer.ln_f", "gpt2"),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
}


def arch_spec(model_type: str) -> ArchSpec:
    if model_type not in ARCHS:
        raise LeadingTermsError(
            f"unsupported model type {model_type!r}; supported: {', '.join(sorted(ARCHS))}"
        )
    return ARCHS[model_type]


@dataclass
class SingleTokenFeatures:
    """Features of n tokens fed alone (float32, CPU). L layers, H heads, d model dim."""

    resid_pre: Tensor  # (L, n, d) row = token
    resid_mid: Tensor  # (L, n, d)
    resid_post: Tensor  # (L, n, d)
    queries: Tensor  # (L, H, n, d_head) row = query token
    keys: Tensor  # (L, H, n, d_head) row = key token
    logits: Tensor  # (n, n) row = input (current) token, col = next token
    direct: Tensor  # (n, n) row = current token, col = next token

    @property
    def L(self) -> int:
        return int(self.resid_pre.shape[0])

    @property
    def H(self) -> int:
        return int(self.queries.shape[1])

    def scores(self, layer: int, head: int | None = None) -> Tensor:
        """(n, n) attention scores q_a·k_b/sqrt(d_head), row = query token, col = key token;
        ``head=None``: averaged over heads. (For plots and tests; the Gram never forms it.)"""
        q, k = self.queries[layer].double(), self.keys[layer].double()
        s = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
        return s.mean(0) if head is None else s[head]


def _get(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _first(output: Any) -> Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def _heads(config: Any) -> tuple[int, int, int]:
    """(H, H_kv, d_head) of an HF config."""
    H = int(config.num_attention_heads)
    H_kv = int(getattr(config, "num_key_value_heads", None) or H)
    d = int(config.hidden_size)
    d_head = int(getattr(config, "head_dim", None) or d // H)
    return H, H_kv, d_head


def split_qk(spec: ArchSpec, config: Any, captured: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Queries and keys (H, B, d_head) from the captured projection outputs (B, width) of one layer."""
    H, H_kv, d_head = _heads(config)
    if spec.qk == "neox":  # (B, 3d) viewed as (B, H, 3·d_head): per head [q | k | v]
        qkv = captured["qkv"].view(-1, H, 3 * d_head)
        q, k = qkv[..., :d_head], qkv[..., d_head:2 * d_head]
    elif spec.qk == "gpt2":  # (B, 3d) = [q | k | v], each (B, H·d_head)
        q_all, k_all, _ = captured["qkv"].split(H * d_head, dim=-1)
        q, k = q_all.reshape(-1, H, d_head), k_all.reshape(-1, H, d_head)
    else:
        q = captured["q"].reshape(-1, H, d_head)
        k = captured["k"].reshape(-1, H_kv, d_head).repeat_interleave(H // H_kv, dim=1)
    return q.transpose(0, 1), k.transpose(0, 1)


def _qk_modules(spec: ArchSpec, attn: nn.Module) -> dict[str, nn.Module]:
    """The modules whose outputs hold the queries and keys (captured by hooks)."""
    if spec.qk == "neox":
        names = {"qkv": "query_key_value"}
    elif spec.qk == "gpt2":
        names = {"qkv": "c_attn"}
    else:
        if hasattr(attn, "q_norm") or hasattr(attn, "k_norm"):
            raise LeadingTermsError("models with query/key norms are not supported")
        names = {"q": "q_proj", "k": "k_proj"}
    return {key: _get(attn, attr) for key, attr in names.items()}


@torch.no_grad()
def extract_features(
    model: nn.Module,
    spec: ArchSpec,
    token_ids: Sequence[int],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> SingleTokenFeatures:
    """Run the n tokens alone through ``model`` (batched) and collect :class:`SingleTokenFeatures`."""
    config = model.config  # type: ignore[attr-defined]
    blocks = list(_get(model, spec.blocks))
    final_norm = _get(model, spec.final_norm)
    unembed = model.get_output_embeddings()  # type: ignore[operator]
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    L = len(blocks)
    store: dict[tuple[str, int], list[Tensor]] = {}
    captured: dict[int, dict[str, Tensor]] = {}

    def keep(name: str, l: int, x: Tensor) -> None:
        store.setdefault((name, l), []).append(x[:, 0, :].detach().float().cpu())

    handles = []
    for l, block in enumerate(blocks):
        def pre(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], l: int = l) -> None:
            keep("pre", l, args[0] if args else kwargs["hidden_states"])

        def post(_m: nn.Module, _a: Any, out: Any, l: int = l) -> None:
            keep("post", l, _first(out))

        def attn_hook(_m: nn.Module, _a: Any, out: Any, l: int = l) -> None:
            keep("attn", l, _first(out))

        attn = getattr(block, spec.attention)
        handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(block.register_forward_hook(post))
        handles.append(attn.register_forward_hook(attn_hook))
        for key, mod in _qk_modules(spec, attn).items():
            def qk_hook(_m: nn.Module, _a: Any, out: Tensor, l: int = l, key: str = key) -> None:
                captured.setdefault(l, {})[key] = out[:, 0, :].detach().float().cpu()

            handles.append(mod.register_forward_hook(qk_hook))

    logits, direct, queries, keys = [], [], [], []
    try:
        for start in range(0, len(ids), batch_size):
            batch = ids[start:start + batch_size]
            captured.clear()
            out = model(input_ids=batch[:, None].to(device), use_cache=False)
            logits.append(out.logits[:, 0, :][:, ids.to(out.logits.device)].float().cpu())
            emb = store[("pre", 0)][-1].to(device=device, dtype=next(model.parameters()).dtype)
            direct.append(unembed(final_norm(emb))[:, ids.to(device)].float().cpu())
            qk = [split_qk(spec, config, captured[l]) for l in range(L)]
            queries.append(torch.stack([q for q, _ in qk]))
            keys.append(torch.stack([k for _, k in qk]))
    finally:
        for h in handles:
            h.remove()

    def cat(name: str) -> Tensor:
        return torch.stack([torch.cat(store[(name, l)]) for l in range(L)])

    pre_ = cat("pre")
    return SingleTokenFeatures(
        resid_pre=pre_,
        resid_mid=pre_ + cat("attn"),
        resid_post=cat("post"),
        queries=torch.cat(queries, dim=2),
        keys=torch.cat(keys, dim=2),
        logits=torch.cat(logits),
        direct=torch.cat(direct),
    )
