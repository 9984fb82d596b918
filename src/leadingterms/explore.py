"""``leadingterms explore``: one self-contained HTML page to browse the associations of every token.

The page (no server, no network: inline CSS, JS and data) has a search box with autocomplete over the
vocabulary and a card per token: the top-k of every basis readout of :data:`BASIS_VIEWS` and, with a
run, of the learned weights of :data:`LEARNED_VIEWS` for every layer at the chosen checkpoints (a
slider), under each normalisation of docs/theory.md (7.4)–(7.7) (a toggle); listed tokens are links
to their own cards.

The lists are computed by the same code as ``leadingterms associations``
(:mod:`leadingterms.associations`: :meth:`Readout.block`, :func:`normalized`, :func:`top_k`), in
blocks of rows. ``pmi`` ranks like ``freq`` (it is freq/π_f, docs/theory.md §7.3), so the page stores
the ``freq`` lists and divides by π_f itself. Data layout: one gzip stream (base64 in the page),
decompressed by the browser's ``DecompressionStream``: every table's ids as uint16 (65535 = none; V ≤
65535), then every table's values as float32; table t holds (V, k) entries, row = token id.
"""

from __future__ import annotations

import base64
import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leadingterms.associations import Readout, basis_readout, learned_readouts, normalized, top_k
from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.theory import LEARNED_READOUTS, MATRICES
from leadingterms.validate import nonnegative_int, out_file, positive_int


@dataclass(frozen=True)
class View:
    """One list on a token's card: readout ``name`` read by ``direction``, with a ``caption`` for readers."""

    name: str
    direction: str  # "row" or "column"
    caption: str
    exclude_self: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}:{self.direction}"


#: The basis lists of a card (docs/theory.md §7.3), in display order.
BASIS_VIEWS = (
    View("bigram", "row", "next tokens"),
    View("bigram", "column", "previous tokens"),
    View("context", "column", "next tokens after a window that contains it"),
    View("context", "row", "context tokens in the windows before it"),
    View("attention", "row", "keys it attends to, as query"),
    View("attention", "column", "queries that attend to it, as key"),
    View("value", "row", "residual directions it writes, as context"),
    View("composition", "row", "next tokens it promotes, as context"),
    View("interchange-next", "row", "interchangeable as a next token", True),
    View("interchange-prev", "row", "interchangeable as a current token", True),
)
#: The learned lists of a card, per layer (docs/theory.md §7.3): LEARNED_READOUTS names, rows only.
LEARNED_VIEWS = {
    "W_O": "next tokens",
    "V": "residual directions it writes, as context",
    "V·W_O": "next tokens it promotes, as context",
    "W": "keys it attends to, as query",
}
#: Rankings stored in the page; pmi is freq / π_f and ranks like freq.
STORED = ("none", "freq", "centred")
NO_TOKEN = 65535


def view_lists(r: Readout, view: View, Pi: torch.Tensor, k: int, chunk: int = 512
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The top-k of every token's row (column) of readout ``r`` under each stored ranking ->
    {ranking: (ids (V, k) uint16, values (V, k) float32)}; the same arithmetic as a single query."""
    V = r.V
    column = view.direction == "column"
    out = {s: (np.full((V, k), NO_TOKEN, dtype=np.uint16), np.full((V, k), np.nan, dtype=np.float32))
           for s in STORED}
    mean = r.mean(column)
    for start in range(0, V, chunk):
        idx = torch.arange(start, min(start + chunk, V))
        block = r.block(idx, column)
        for how in STORED:
            vals = normalized(block, idx, how, Pi, mean if how == "centred" else None)
            ids, top = top_k(vals, k, idx if view.exclude_self else None)
            out[how][0][start:start + len(idx)] = np.where(ids.numpy() < 0, NO_TOKEN, ids.numpy())
            out[how][1][start:start + len(idx)] = top.numpy().astype(np.float32)
    return out


def _planes(a: np.ndarray) -> bytes:
    """Byte planes of a little-endian array: every element's byte 0, then every byte 1, ... (numbers whose
    high bytes repeat compress far better this way)."""
    b = np.ascontiguousarray(a).view(np.uint8).reshape(-1, a.dtype.itemsize)
    return b.T.tobytes()


def _unplanes(buf: bytes, dtype: str, n: int) -> np.ndarray:
    """Inverse of :func:`_planes` for ``n`` elements of ``dtype``."""
    size = np.dtype(dtype).itemsize
    return np.frombuffer(buf, np.uint8, count=n * size).reshape(size, n).T.copy().view(dtype).reshape(-1)


def _f16_keys(vals: np.ndarray) -> np.ndarray:
    """float16 bit patterns -> uint16 keys in the order of the values (−0 taken as +0, NaN as 0)."""
    bits = vals.astype("<f2").view("<u2").astype(np.int64)
    bits[bits == 0x8000] = 0
    keys = np.where(bits & 0x8000, ~bits & 0xFFFF, bits | 0x8000)
    keys[np.isnan(vals)] = 0
    return keys


def _f16_from_keys(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys & 0x8000, keys & 0x7FFF, ~keys & 0xFFFF).astype("<u2")
    return bits.view("<f2").astype(np.float64)


def encode_lists(groups: dict[str, list[tuple[int | None, str, np.ndarray, np.ndarray]]], V: int, k: int
                 ) -> tuple[bytes, list[dict[str, Any]], dict[str, int]]:
    """Pack the lists into one byte string -> (bytes, group index, plane offsets).

    Per group (one view; its variants = (step, ranking) pairs) the variants of a token are adjacent, so
    consecutive checkpoints of one token's list repeat each other within gzip's window. Each list of n
    lists (``layout["lists"]``) is stored as: k ids (uint16, 65535 = none); a scale s = max |value|
    (float32); k values as float16 of value / s, coded as order-preserving uint16 keys and, since a list
    is sorted, as differences: d₀ = 65535 − key₀, d_r = key_{r−1} − key_r ≥ 0 (small numbers). The three
    planes (ids, scales, differences) are each stored as byte planes (:func:`_planes`).
    """
    index, ids_p, scale_p, val_p = [], [], [], []
    base = 0
    for key, variants in groups.items():
        ids = np.stack([v[2] for v in variants], axis=1).reshape(-1, k)  # (V·n, k)
        vals = np.stack([v[3] for v in variants], axis=1).astype(np.float64).reshape(-1, k) + 0.0
        scale = np.nanmax(np.abs(np.nan_to_num(vals, nan=0.0)), axis=1)
        scale[scale == 0] = 1.0
        keys = _f16_keys(vals / scale[:, None])
        diffs = np.concatenate([0xFFFF - keys[:, :1], keys[:, :-1] - keys[:, 1:]], axis=1)
        diffs[ids == NO_TOKEN] = 0
        assert (diffs >= 0).all(), "lists must be sorted"
        index.append({"key": key, "base": base, "variants": [[v[0], v[1]] for v in variants]})
        base += ids.shape[0]
        ids_p.append(ids.astype("<u2").reshape(-1))
        scale_p.append(scale.astype("<f4"))
        val_p.append(diffs.astype("<u2").reshape(-1))
    ids_b = _planes(np.concatenate(ids_p))
    scale_b = _planes(np.concatenate(scale_p))
    layout = {"lists": base, "k": k, "scales": len(ids_b), "values": len(ids_b) + len(scale_b)}
    return ids_b + scale_b + _planes(np.concatenate(val_p)), index, layout


def decode_list(blob: bytes, meta: dict[str, Any], key: str, step: int | None, ranking: str,
                token: int) -> list[tuple[int, float]]:
    """One stored list back as (id, value) pairs: the page's decoder, in Python (``pmi`` = freq / π_f)."""
    lay, k = meta["layout"], meta["layout"]["k"]
    n = lay["lists"]
    g = next(g for g in meta["groups"] if g["key"] == key)
    stored = "freq" if ranking == "pmi" else ranking
    slot = g["base"] + token * len(g["variants"]) + g["variants"].index([step, stored])
    ids = _unplanes(blob[:lay["scales"]], "<u2", n * k)[slot * k:(slot + 1) * k]
    scale = float(_unplanes(blob[lay["scales"]:lay["values"]], "<f4", n)[slot])
    diffs = _unplanes(blob[lay["values"]:], "<u2", n * k)[slot * k:(slot + 1) * k].astype(np.int64)
    vals = _f16_from_keys(0xFFFF - np.cumsum(diffs)) * scale
    if ranking == "pmi":
        vals = vals / meta["pi"][token]
    return [(int(i), float(v)) for i, v in zip(ids, vals, strict=True) if i != NO_TOKEN]


def pick_checkpoints(steps: Sequence[int], n: int) -> list[int]:
    """At most ``n`` of ``steps`` (ascending, step 0 left out), spread evenly in log(step), the last kept."""
    s = sorted(x for x in steps if x > 0)
    if len(s) <= n:
        return s
    logs = np.log(np.asarray(s, dtype=np.float64))
    targets = np.linspace(logs[0], logs[-1], n)
    chosen = {s[int(np.argmin(np.abs(logs - t)))] for t in targets} | {s[-1]}
    return sorted(chosen)


# ----------------------------------------------------------------------------- the explore stage


@dataclass(kw_only=True)
class ExploreConfig:
    """``leadingterms explore``: a self-contained HTML page to browse every token's associations."""

    stats: str | None = option(None, help="basis folder from `leadingterms stats` (default with --run: the "
                               "run's own basis)", metavar="DIR")
    run: str | None = option(None, help="also show the learned weights of this training run", metavar="RUN")
    out: str = option(help="the HTML file to create", metavar="FILE.html")
    k: int = option(20, help="top-k of each list", check=positive_int)
    checkpoints: list[int] | None = option(None, sep=",", metavar="S1,S2,...",
                                           help="checkpoints of --run on the slider (default: up to "
                                           "--max-checkpoints, spread in log(step), the last included)")
    max_checkpoints: int = option(4, help="checkpoints on the slider when --checkpoints is not given",
                                  metavar="N", check=positive_int)
    force: bool = option(False, help="replace an existing FILE.html")

    def check(self) -> None:
        if self.stats is None and self.run is None:
            raise LeadingTermsError("give a basis (--stats DIR) or a run (--run RUN)")
        if self.checkpoints is not None:
            if self.run is None:
                raise LeadingTermsError("--checkpoints reads a training run: give --run RUN")
            for s in self.checkpoints:
                nonnegative_int(s, "checkpoints")
        if not str(self.out).endswith((".html", ".htm")):
            raise LeadingTermsError(f"--out must name an .html file, got {self.out}")


@dataclass
class ExploreResult:
    """The page written, its size and what it holds."""

    out: Path
    bytes: int
    V: int
    k: int
    steps: list[int]
    layers: int
    notes: list[str] = field(default_factory=list)


def build_explorer(cfg: ExploreConfig) -> ExploreResult:
    """Compute every card's lists and write the page atomically."""
    from leadingterms._explore_page import render
    from leadingterms.associations import checkpoint_weights
    from leadingterms.basis import load_basis
    from leadingterms.budget import check_memory
    from leadingterms.persist import atomic_path
    from leadingterms.progress import bar

    check_config(cfg)
    out = out_file(cfg.out, ".html")
    if out.exists() and not cfg.force:
        raise LeadingTermsError(f"{out} exists; pass --force to replace it")
    run = None
    if cfg.run is not None:
        from leadingterms.training import load_run

        run = load_run(cfg.run)
    # with a run, the basis (its own, or the one given) must be of the run's corpus
    basis = run.basis(mmap=True, stats=cfg.stats) if run is not None else load_basis(str(cfg.stats), mmap=True)
    if basis.vocab is None:
        raise LeadingTermsError("the basis has no vocabulary; rebuild it with `leadingterms stats`")
    V, k = basis.V, min(cfg.k, basis.V)
    if V > NO_TOKEN:
        raise LeadingTermsError(f"the explorer holds at most {NO_TOKEN} tokens; this basis has V={V}")
    steps: list[int] = []
    layers = 0
    if run is not None:
        have = sorted(run.checkpoints)
        if cfg.checkpoints is not None:
            missing = sorted(set(cfg.checkpoints) - set(have))
            if missing:
                raise LeadingTermsError(f"run {run.path} has no checkpoint at step(s) {missing}; "
                                        f"available: {have}")
            steps = sorted(set(cfg.checkpoints))
        else:
            steps = pick_checkpoints(have, cfg.max_checkpoints) or have[-1:]
        layers = run.config.layers
    n_learned = len(steps) * (1 + 3 * layers)
    check_memory(8 * V * V * 3 + 6 * V * k * (len(BASIS_VIEWS) + n_learned) * len(STORED),
                 "the explorer's products and lists", "use a smaller basis (--top-k in `leadingterms stats`)")

    groups: dict[str, list[tuple[int | None, str, np.ndarray, np.ndarray]]] = {}

    def add(key: str, step: int | None, lists: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        groups.setdefault(key, []).extend((step, how, ids, vals) for how, (ids, vals) in lists.items())

    jobs = [(v, None) for v in BASIS_VIEWS] + [(None, s) for s in steps]
    for view, step in bar(jobs, total=len(jobs), desc="explore", unit="list"):
        if view is not None:
            add(view.key, None, view_lists(basis_readout(basis, view.name), view, basis.Pi, k))
            continue
        weights, _ = checkpoint_weights(run, step)
        if weights["W_O"].shape[0] != V:
            raise LeadingTermsError(f"the run's weights (V={weights['W_O'].shape[0]}) do not match the basis "
                                    f"(V={V}); give the run's own basis")
        for r in learned_readouts(weights, layers):
            add(f"{r.name}:row", step, view_lists(r, View(r.name, "row", ""), basis.Pi, k))

    meta = page_meta(basis, k, steps, layers, cfg)
    blob, meta["groups"], meta["layout"] = encode_lists(groups, V, k)
    meta["raw_bytes"] = len(blob)
    data = base64.b64encode(gzip.compress(blob, compresslevel=9, mtime=0)).decode("ascii")
    html = render(meta, data)
    from leadingterms.locks import output_lock

    with output_lock(out, folder=False, what="page"), atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    size = out.stat().st_size
    notes = [] if size <= 10 * 2**20 else [
        f"the page is {size / 2**20:.1f} MiB; fewer --checkpoints or a smaller --k make it lighter"]
    return ExploreResult(out, size, V, k, steps, layers, notes)


def page_meta(basis: Any, k: int, steps: list[int], layers: int, cfg: ExploreConfig) -> dict[str, Any]:
    """Everything the page shows besides the lists: vocabulary, π, the views and their captions."""
    pi = basis.Pi.detach().to("cpu", torch.float64)
    views = []
    for v in BASIS_VIEWS:
        m = MATRICES[v.name]
        index, listed = (m.rows, m.cols) if v.direction == "row" else (m.cols, m.rows)
        views.append({"key": v.key, "name": v.name, "symbol": m.symbol, "direction": v.direction,
                      "caption": v.caption, "index": index, "listed": listed, "exclude_self": v.exclude_self})
    learned = []
    for name, caption in LEARNED_VIEWS.items():
        r = LEARNED_READOUTS[name]
        for layer in range(layers) if r.per_layer else [None]:
            if layers:
                learned.append({"key": f"{r.label(layer)}:row", "name": r.label(layer), "symbol": name,
                                "layer": layer, "caption": caption, "listed": MATRICES[r.matrix].cols})
    return {
        "title": f"leadingterms explorer: {Path(str(cfg.stats or cfg.run)).name}",
        "source": {"stats": cfg.stats, "run": cfg.run, "N": basis.N, "T": basis.T,
                   "corpus_hash": basis.meta.get("corpus_hash")},
        "V": basis.V, "k": k, "vocab": list(basis.vocab),
        "pi": [float(f"{x:.6g}") for x in pi.tolist()],
        "views": views, "learned": learned, "steps": steps, "layers": layers,
        "rankings": list(STORED), "no_token": NO_TOKEN,
        "log10_V": round(math.log10(max(basis.V, 1)), 3),
    }
