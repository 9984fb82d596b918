"""The paper's attention-only transformer on one-hot tokens (docs/theory.md §1), as a fast torch module.

    h^(0) = X                                          (T, V) one-hot inputs
    A^(l) = softmax_rows(mask(h W h^T + DM(P)))         (T, T) row = query position t, col = key j
    h^(l) = h^(l-1) + A^(l) h^(l-1) V^(l)               (T, V) residual stream in token space
    logits = h^(L) W_O                                  (T, V) row = position, col = next token
    loss = mean cross-entropy over all N*T predicted positions

Parameters (exact state-dict names): ``W_O`` (V, V) row = current token, col = next token;
``layers.{l}.W`` (V, V) row = query token, col = key token; ``layers.{l}.V`` (V, V) row =
attended (context) token, col = residual direction; ``layers.{l}.P`` (T,) ``P[m]`` = bias of
offset m = t - j (``P[0]`` on the diagonal).

The computation never forms a one-hot matrix or a product ``X @ M``:

* layer 0: scores ``W[x_t, x_j]`` are a gather, and ``A X V = A @ V[x]`` gathers rows of V;
* the first layer's output ``h1 = onehot(x) + U1`` with ``U1 = A1 @ V[x]``: any product
  ``h1 @ M`` is ``M[x] + A1 @ (V[u] @ M)[inv]`` where ``u`` are the distinct tokens of the batch
  (``x = u[inv]``), so the V x V products cost ``n_u V^2`` instead of ``B T V^2``. This gives the
  logits for L = 1 and the second layer's ``h1 W`` and ``h1 V`` for L >= 2;
* later layers are dense (``(h W) h^T`` via ``baddbmm`` with the positional bias and causal mask).

DM(P) is ``P[rel]`` with a precomputed (T, T) index ``rel[t, j] = max(t - j, 0)`` plus a
precomputed additive causal mask (0 for j <= t, -inf for j > t): no Python loop per forward.
Autograd through the gathers gives the exact gradients (their backward is a scatter-add).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leadingterms.errors import LeadingTermsError
from leadingterms.theory import count_layers, param_names, parse_param
from leadingterms.validate import dtype_to_name, parse_dtype, parse_init, positive_int, token_rows


@dataclasses.dataclass
class ModelConfig:
    """Size and initialisation of an :class:`AttentionOnlyTransformer`.

    ``init`` is ``"zero"`` (the theory's setting) or ``"normal:STD"`` (every parameter, P
    included, i.i.d. Gaussian with standard deviation STD, drawn from a seeded generator).
    """

    V: int
    T: int
    layers: int
    init: str = "zero"
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if isinstance(self.dtype, str):
            self.dtype = parse_dtype(self.dtype)
        for name in ("V", "T", "layers"):
            positive_int(getattr(self, name), name)
        dtype_to_name(self.dtype)
        self.init_std()  # validates init

    def init_std(self) -> float:
        """0.0 for zero init, STD for ``"normal:STD"`` (STD > 0); one-line error for anything else."""
        return parse_init(self.init)[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (dtype as ``"float32"``/``"float64"``)."""
        return {"V": self.V, "T": self.T, "layers": self.layers, "init": self.init,
                "dtype": dtype_to_name(self.dtype)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - names
        missing = {"V", "T", "layers"} - set(d)
        if extra or missing:
            raise LeadingTermsError(
                f"bad model config: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        return cls(**dict(d))


def _rows(M: Tensor, idx: Tensor) -> Tensor:
    """M[idx] for M (n, k), idx (m,) -> (m, k); backward sums the rows of the gradient per index.

    ``F.embedding`` is used because its backward (sort + segment sum) is markedly faster on CPU
    than that of ``index_select`` (a scatter-add over an expanded index).
    """
    return F.embedding(idx, M)


class AttentionLayer(nn.Module):
    """One attention layer: ``W`` (V, V) query x key, ``V`` (V, V) context -> residual, ``P`` (T,)."""

    def __init__(self, V: int, T: int, dtype: torch.dtype, device: torch.device | str | None) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(V, V, dtype=dtype, device=device))
        self.V = nn.Parameter(torch.zeros(V, V, dtype=dtype, device=device))
        self.P = nn.Parameter(torch.zeros(T, dtype=dtype, device=device))


class AttentionOnlyTransformer(nn.Module):
    """The model of docs/theory.md §1. ``forward(x)`` -> logits, ``loss(tokens)`` -> mean cross-entropy.

    ``seed`` seeds the Gaussian init (``None`` means 0, so construction is deterministic); the
    values are drawn on the CPU in float64 and then cast, so they agree across devices/dtypes.
    """

    rel: Tensor
    mask_add: Tensor

    def __init__(self, cfg: ModelConfig, *, seed: int | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        V, T = cfg.V, cfg.T
        self.W_O = nn.Parameter(torch.zeros(V, V, dtype=cfg.dtype, device=device))
        self.layers = nn.ModuleList(AttentionLayer(V, T, cfg.dtype, device) for _ in range(cfg.layers))
        t = torch.arange(T, device=device)
        offset = t[:, None] - t[None, :]  # (T, T) offset t - j of query t, key j
        self.register_buffer("rel", offset.clamp(min=0), persistent=False)
        self.register_buffer(
            "mask_add",
            torch.zeros(T, T, dtype=cfg.dtype, device=device).masked_fill(offset < 0, float("-inf")),
            persistent=False,
        )
        std = cfg.init_std()
        if std > 0.0:
            gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
            with torch.no_grad():
                for p in self.parameters():  # order: W_O, layers.0.W, layers.0.V, layers.0.P, ...
                    p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).mul_(std))

    # ------------------------------------------------------------------ inputs
    def _tokens(self, x: Any, extra: int, what: str) -> Tensor:
        """Validate an integer id array (B, T' + extra) with 1 <= T' <= T, ids in [0, V)."""
        x = token_rows(torch.as_tensor(x), what=what, min_width=1 + extra, max_width=self.cfg.T + extra)
        x = x.to(device=self.W_O.device, dtype=torch.long)
        lo, hi = torch.aminmax(x)
        if int(lo) < 0 or int(hi) >= self.cfg.V:
            raise LeadingTermsError(
                f"{what} has token ids outside [0, {self.cfg.V}): min {int(lo)}, max {int(hi)}"
            )
        return x

    # ------------------------------------------------------------------ model
    def forward(self, x: Tensor) -> Tensor:
        """x (B, T') input token ids, 1 <= T' <= T -> logits (B, T', V); row t predicts x_{t+1}."""
        x = self._tokens(x, 0, "input ids")
        return self._logits(x)

    def _logits(self, x: Tensor) -> Tensor:
        B, T = x.shape
        V = self.cfg.V
        rel, mask_add = self.rel[:T, :T], self.mask_add[:T, :T]
        flat = x.reshape(-1)  # (B*T,)

        # layer 0 on one-hot inputs: scores W[x_t, x_j], value A @ V[x].
        layers = cast("list[AttentionLayer]", list(self.layers))
        l0 = layers[0]
        pair = (x[:, :, None] * V + x[:, None, :]).reshape(-1)  # flat index of W[x_t, x_j]
        scores = _rows(l0.W.reshape(-1, 1), pair).view(B, T, T) + (l0.P[rel] + mask_add)
        A1 = torch.softmax(scores, dim=-1)  # (B, T, T)
        u, inv = torch.unique(flat, return_inverse=True)  # distinct tokens of the batch, x = u[inv]
        Vu = _rows(l0.V, u)  # (n_u, V)

        def h1_times(M: Tensor) -> Tensor:
            """h1 @ M for M (V, k) -> (B, T, k), h1 = onehot(x) + A1 @ V[x]."""
            k = M.shape[1]
            return torch.baddbmm(_rows(M, flat).view(B, T, k), A1, _rows(Vu @ M, inv).view(B, T, k))

        if self.cfg.layers == 1:
            return h1_times(self.W_O)

        U1 = A1 @ _rows(Vu, inv).view(B, T, V)  # (B, T, V) = A1 X V
        h = U1.scatter_add(2, x[:, :, None], torch.ones(B, T, 1, dtype=U1.dtype, device=U1.device))
        for i, layer in enumerate(layers[1:]):
            if i == 0:
                hW, hV = h1_times(layer.W), h1_times(layer.V)
            else:
                hW, hV = h @ layer.W, h @ layer.V
            bias = (layer.P[rel] + mask_add).expand(B, T, T)
            A = torch.softmax(torch.baddbmm(bias, hW, h.transpose(1, 2)), dim=-1)
            h = torch.baddbmm(h, A, hV)  # h + A h V
        return h @ self.W_O

    def loss(self, tokens: Tensor, *, check: bool = True) -> Tensor:
        """tokens (B, T'+1): mean cross-entropy of predicting tokens[:, 1:] from tokens[:, :-1].

        ``check=False``: ``tokens`` is already an int64 tensor on the model's device with ids in
        [0, V) (e.g. rows of a checked token store), so no host synchronisation is spent checking it."""
        if check:
            tokens = self._tokens(tokens, 1, "token batch")
        logits = self._logits(tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, self.cfg.V), tokens[:, 1:].reshape(-1))

    # ------------------------------------------------------------------ persistence
    def weights(self) -> dict[str, Tensor]:
        """Detached parameters by name (W_O, layers.{l}.W, layers.{l}.V, layers.{l}.P)."""
        return {k: v.detach() for k, v in self.named_parameters()}

    @classmethod
    def from_state_dict(cls, tensors: Mapping[str, Tensor], *, init: str = "zero",
                        device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None) -> AttentionOnlyTransformer:
        """Build a model from named tensors (e.g. a safetensors file); sizes inferred from shapes.

        ``dtype`` defaults to that of ``W_O`` (float32 or float64). ``init`` is only recorded.
        """
        if "W_O" not in tensors:
            raise LeadingTermsError("model weights lack W_O")
        W_O = tensors["W_O"]
        if W_O.dim() != 2 or W_O.shape[0] != W_O.shape[1]:
            raise LeadingTermsError(f"W_O must be square (V, V), got {tuple(W_O.shape)}")
        for key in tensors:
            try:
                parse_param(key)
            except ValueError:
                raise LeadingTermsError(f"unexpected model weight {key!r}") from None
        L = count_layers(tensors)
        present = {layer for k in tensors if (layer := parse_param(k)[1]) is not None}
        if L == 0 or present != set(range(L)):
            raise LeadingTermsError(f"model weights must have layers 0..L-1, got {sorted(present)}")
        P0 = tensors.get("layers.0.P")
        if P0 is None or P0.dim() != 1:
            raise LeadingTermsError("model weights lack a 1-D layers.0.P")
        if dtype is None:
            dtype = W_O.dtype if W_O.dtype in (torch.float32, torch.float64) else torch.float32
        cfg = ModelConfig(V=int(W_O.shape[0]), T=int(P0.shape[0]), layers=L, init=init, dtype=dtype)
        model = cls(cfg, device=device)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert list(expected) == param_names(L)
        for key, shape in expected.items():
            if key not in tensors:
                raise LeadingTermsError(f"model weights lack {key}")
            if tuple(tensors[key].shape) != shape:
                raise LeadingTermsError(
                    f"model weight {key} has shape {tuple(tensors[key].shape)}, expected {shape}"
                )
        with torch.no_grad():
            for key, p in model.named_parameters():
                p.copy_(tensors[key].to(dtype=dtype))
        return model


def dataset_loss(model: AttentionOnlyTransformer, tokens: Any, *, batch_size: int = 64,
                 check: bool = True) -> float:
    """Mean cross-entropy of ``model`` over every row of ``tokens`` (N, T+1), ``batch_size`` rows at a
    time, without gradients; rows are moved to the model's device as they are used (``check=False``:
    ids already known to be in [0, V)). One host synchronisation at the end."""
    import numpy as np

    n = int(tokens.shape[0])
    if n < 1:
        raise LeadingTermsError("the loss needs at least one sequence")
    chunk = positive_int(batch_size, "batch_size")
    device = model.W_O.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for i in range(0, n, chunk):
            batch = torch.from_numpy(np.asarray(tokens[i:i + chunk], dtype=np.int64)).to(device)
            total += model.loss(batch, check=check).double() * batch.shape[0]
    return float(total) / n


def save_model(path: Any, model: AttentionOnlyTransformer, metadata: Mapping[str, Any] | None = None) -> None:
    """Atomically write the parameters to safetensors; the header holds ``{"model": cfg, **metadata}``."""
    from leadingterms.persist import save_tensors

    save_tensors(path, model.weights(), {"model": model.cfg.to_dict(), **dict(metadata or {})})


def load_model(path: Any, *, device: torch.device | str | None = None
               ) -> tuple[AttentionOnlyTransformer, dict[str, Any]]:
    """Read a file written by :func:`save_model` (or any safetensors with the parameter names)."""
    from leadingterms.persist import load_tensors

    tensors, meta = load_tensors(path, "model weights")
    cfg_d = meta.get("model") if isinstance(meta.get("model"), dict) else None
    init = str(cfg_d.get("init", "zero")) if cfg_d else "zero"
    dtype = parse_dtype(str(cfg_d["dtype"])) if cfg_d and "dtype" in cfg_d else None
    return AttentionOnlyTransformer.from_state_dict(tensors, init=init, device=device, dtype=dtype), meta
