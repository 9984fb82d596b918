"""Token access for the basis passes: validation, top-K remapping, compact ids and chunking.

The statistics are accumulated over a *compact* vocabulary: the ``Vc`` output ids that occur
in the tokens when they are at most half of V (a few hundred for one optimizer batch), else
all V ids (a whole corpus). Scatter
buffers are ``Vc x Vc``; the results are expanded to ``V x V`` at the end. This keeps the
per-batch statistics of docs/theory.md §5 cheap and is exact (absent tokens contribute nothing to the
raw sums; the rank-one centring terms are applied after expansion).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from leadingterms.errors import LeadingTermsError
from leadingterms.progress import bar
from leadingterms.validate import token_rows

TokenArray = np.ndarray | Tensor

#: The token string of the extra row/column that collects every token outside the top K.
OTHER_TOKEN = "<other>"

#: Rows per counting chunk (frequency / presence passes: no pair work, only bincount).
_COUNT_ROWS = 8192


def _to_long(block: TokenArray, device: torch.device) -> Tensor:
    if isinstance(block, Tensor):
        return block.to(device=device, dtype=torch.long)
    arr = np.asarray(block).astype(np.int64, copy=True)  # writable int64 copy (memmaps are read-only)
    return torch.from_numpy(arr).to(device=device)


def row_blocks(tokens: TokenArray, rows: int, device: torch.device) -> Iterator[Tensor]:
    """Yield consecutive (n, T+1) int64 blocks of ``tokens`` (n <= rows) on ``device``."""
    N = int(tokens.shape[0])
    for start in range(0, N, rows):
        yield _to_long(tokens[start : start + rows], device)


def token_counts(tokens: TokenArray, V: int, device: torch.device | None = None) -> Tensor:
    """(V,) int64: occurrences of each id over *all* positions 0..T of all rows.

    Raises a one-line error for ids outside ``[0, V)``.
    """
    dev = torch.device("cpu") if device is None else device
    counts = torch.zeros(V, dtype=torch.long, device=dev)
    for block in row_blocks(tokens, _COUNT_ROWS, dev):
        flat = block.reshape(-1)
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= V:
            raise LeadingTermsError(f"token id {hi if hi >= V else lo} out of range for V={V}")
        counts += torch.bincount(flat, minlength=V)
    return counts


def top_k_map(counts: Tensor, k: int) -> tuple[Tensor, list[int]]:
    """Map ids onto the ``k`` most frequent plus ``<other>`` (id ``k``).

    ``counts`` (V,) frequencies over all positions. Ranking: decreasing frequency, ties by
    lower id. Returns ``lut`` (V,) int64 old id -> new id, and ``token_ids`` (k+1 entries):
    the original id of each new row, -1 for ``<other>``.
    """
    order = np.lexsort((np.arange(len(counts)), -counts.cpu().numpy()))[:k]
    lut = torch.full((len(counts),), k, dtype=torch.long, device=counts.device)
    lut[torch.from_numpy(order).to(counts.device)] = torch.arange(k, device=counts.device)
    return lut, [int(i) for i in order] + [-1]


@dataclass
class Source:
    """Tokens prepared for a pass.

    ``tokens`` (N, T+1) in input ids; ``lut`` (V_in,) input id -> compact id (-1: absent);
    ``ids`` (Vc,) compact id -> output id; ``V`` the output vocabulary size.
    """

    tokens: TokenArray
    lut: Tensor
    ids: Tensor
    V: int
    device: torch.device

    @property
    def N(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def T(self) -> int:
        return int(self.tokens.shape[1]) - 1

    @property
    def Vc(self) -> int:
        return int(self.ids.numel())

    @classmethod
    def build(
        cls,
        tokens: Any,
        V: int,
        *,
        remap: Tensor | None = None,
        V_out: int | None = None,
        counts: Tensor | None = None,
        device: torch.device | None = None,
    ) -> Source:
        """Validate ``tokens`` (ids < ``V``), apply ``remap`` (V,) -> ids < ``V_out``, compact.

        ``counts`` (V,): precomputed :func:`token_counts` (saves one pass).
        """
        tokens = token_rows(tokens)
        dev = torch.device("cpu") if device is None else device
        if V < 1:
            raise LeadingTermsError(f"vocabulary size must be >= 1, got {V}")
        if counts is None:
            counts = token_counts(tokens, V, dev)
        counts = counts.to(dev)
        lut_in = torch.arange(V, device=dev) if remap is None else remap.to(dev)
        V_o = V if V_out is None else V_out
        present = torch.zeros(V_o, dtype=torch.bool, device=dev)
        present[lut_in[counts > 0]] = True
        ids = torch.nonzero(present).reshape(-1)
        if 2 * ids.numel() > V_o:  # compaction would not pay for the final expansion
            ids = torch.arange(V_o, device=dev)
        compact = torch.full((V_o,), -1, dtype=torch.long, device=dev)
        compact[ids] = torch.arange(ids.numel(), device=dev)
        return cls(tokens=tokens, lut=compact[lut_in], ids=ids, V=V_o, device=dev)

    def blocks(self, rows: int, *, desc: str = "", progress: bool = False) -> Iterator[Tensor]:
        """Yield (n, T+1) compact-id int64 blocks of at most ``rows`` rows."""
        n_blocks = -(-self.N // rows)
        it = row_blocks(self.tokens, rows, self.device)
        if progress:
            it = bar(it, total=n_blocks, desc=desc, unit="chunk")
        for block in it:
            yield self.lut[block]
