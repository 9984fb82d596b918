"""Checkpoints: RUN/checkpoints/step_{s:06d}.safetensors + step_{s:06d}.json.

The safetensors file holds the tensors under prefixed names: ``model.<param>`` (the model
weights, names as in the state dict: W_O, layers.{l}.W, ...), ``shadow.<name>`` (the shadow
state of docs/theory.md §5, float64) and ``optim.<i>.<key>`` (optimizer state of parameter i,
e.g. Adam's exp_avg, exp_avg_sq, step). The JSON file (also embedded in the safetensors header)
holds the run's ``run_id``, the config, corpus hash, step, data-order state, optimizer
hyper-parameters and whether the shadow is included. The tensors are written first and the JSON
last, both atomically: a checkpoint counts only when its JSON exists. Loading verifies that the
header and the JSON agree, that every tensor is finite and that the run id and corpus hash are the
run's (:func:`load_checkpoint_raw`): a checkpoint copied in from another run is refused.

**Policy** (bounded disk use). Checkpoints are written at the first ``early`` of the log-spaced
steps 0, 1, 4, 16, 64, 256, ... (kept for good: the early dynamics the theory describes), every
``every`` steps and at the last step; of the others only the newest ``keep_last`` are kept. A run
therefore keeps at most ``early + max(keep_last, 1)`` checkpoints however long it is. Only the
periodic and last checkpoints hold the shadow state (three float64 (V, V) matrices, the bulk of a
checkpoint): the shadow is a pure function of the batches seen, so at an early checkpoint it is
rebuilt by replaying those few steps (:mod:`.replay`).

**Zero rows are not written.** A matrix (any group) whose all-zero rows are at least a quarter of
its rows is stored as its other rows plus their indices (``rows.<group>.<name>``, int64); the
metadata's ``row_sparse`` maps its key to its number of rows. Under the theory's zero init the
early checkpoints are mostly zero rows (after one step W_O is nonzero only in the rows of the
batch's tokens, V and W are still zero), so they are a fraction of a dense one. A row counts as
zero only when every bit is zero (-0.0 is kept), so loading restores every bit.

**Background writes.** :class:`CheckpointWriter` copies the tensors and writes them in a
background thread (one checkpoint in flight at a time), so training goes on while they reach
the disk.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import load_tensors, read_json, save_tensors, write_json
from leadingterms.validate import all_finite

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{6,})\.json$")


def checkpoint_paths(run_dir: str | Path, step: int) -> tuple[Path, Path]:
    """(tensor file, JSON file) of the checkpoint at ``step``."""
    d = Path(run_dir) / CHECKPOINT_DIR
    return d / f"step_{step:06d}.safetensors", d / f"step_{step:06d}.json"


#: Ratio of the log-spaced early checkpoint steps 0, 1, 4, 16, 64, 256, ...: six of them cover the
#: first 256 steps (where validity horizons fall at the usual learning rates) for the disk of six.
EARLY_RATIO = 4


def early_steps(early: int) -> list[int]:
    """The first ``early`` of the log-spaced steps 0, 1, 4, 16, 64, ... (powers of EARLY_RATIO)."""
    return ([0] + [EARLY_RATIO**i for i in range(max(early - 1, 0))])[:max(early, 0)]


def checkpoint_due(step: int, total: int, every: int, early: int) -> bool:
    """Whether the policy writes a checkpoint after ``step`` updates (see the module docstring)."""
    return step == total or step % every == 0 or step in early_steps(early)


def holds_shadow(step: int, total: int, every: int) -> bool:
    """Whether the checkpoint of ``step`` holds the shadow state: periodic and last ones (not step 0)."""
    return step > 0 and (step % every == 0 or step == total)


def list_checkpoints(run_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints (JSON and tensor file present), ascending."""
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    steps = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m and checkpoint_paths(run_dir, int(m.group(1)))[0].is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


#: A matrix is stored as its nonzero rows when at most this fraction of its rows are nonzero.
ROW_SPARSE_MAX = 0.75
_ROWS = "rows"  # group of the row indices of the matrices stored as their nonzero rows
_BITS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def nonzero_rows(t: torch.Tensor) -> torch.Tensor:
    """(n,) int64 indices of the rows of a matrix with any bit set (-0.0 counts as nonzero)."""
    bits = t.contiguous().view(_BITS[t.element_size()])
    return bits.ne(0).any(dim=1).nonzero().reshape(-1)


def encode_rows(flat: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Tensors to write -> (the tensors with each mostly-zero-rows matrix replaced by its nonzero rows and
    ``rows.<key>`` indices, {key: number of rows} of those matrices)."""
    out: dict[str, torch.Tensor] = {}
    sparse: dict[str, int] = {}
    for key, t in flat.items():
        if t.ndim == 2 and t.shape[0] > 1 and t.element_size() in _BITS:
            rows = nonzero_rows(t)
            if rows.numel() <= ROW_SPARSE_MAX * t.shape[0]:
                out[key], out[f"{_ROWS}.{key}"], sparse[key] = t.index_select(0, rows), rows, int(t.shape[0])
                continue
        out[key] = t
    return out, sparse


def decode_rows(flat: dict[str, torch.Tensor], sparse: Any, where: str) -> dict[str, torch.Tensor]:
    """Inverse of :func:`encode_rows` (``sparse``: the metadata's ``row_sparse``); one-line error naming
    ``where`` for indices that do not fit their matrix."""
    if not isinstance(sparse, dict):
        raise LeadingTermsError(f"{where} is corrupt: its row_sparse metadata is not an object")
    out = {k: t for k, t in flat.items() if not k.startswith(f"{_ROWS}.")}
    for key, n in sparse.items():
        rows, vals = flat.get(f"{_ROWS}.{key}"), out.get(key)
        if not (rows is not None and vals is not None and isinstance(n, int) and rows.dtype == torch.int64
                and rows.ndim == 1 and vals.ndim == 2 and rows.numel() == vals.shape[0] <= n
                and (rows.numel() == 0 or (int(rows[0]) >= 0 and int(rows[-1]) < n
                                           and bool((rows[1:] > rows[:-1]).all())))):
            raise LeadingTermsError(f"{where} is corrupt: the stored rows of {key!r} do not fit its shape")
        out[key] = torch.zeros((n, vals.shape[1]), dtype=vals.dtype).index_copy_(0, rows, vals)
    if len(out) + len(sparse) != len(flat):
        raise LeadingTermsError(f"{where} is corrupt: it holds row indices of no stored matrix")
    return out


def save_checkpoint(run_dir: str | Path, step: int, tensors: Mapping[str, Mapping[str, torch.Tensor]],
                    meta: Mapping[str, Any]) -> int:
    """Write ``{"model": {...}, "shadow": {...}, "optim": {...}}`` tensors and ``meta`` atomically
    -> bytes written (both files). Mostly-zero-rows matrices are stored as their nonzero rows."""
    flat, sparse = encode_rows({f"{group}.{name}": t for group, d in tensors.items() for name, t in d.items()})
    tpath, jpath = checkpoint_paths(run_dir, step)
    full = dict(meta, step=step, tensor_file=tpath.name, shadow=bool(tensors.get("shadow")), row_sparse=sparse)
    save_tensors(tpath, flat, metadata=full)
    try:
        write_json(jpath, full)
    except BaseException:
        tpath.unlink(missing_ok=True)  # no tensor file without its JSON is left behind
        raise
    return os.path.getsize(tpath) + os.path.getsize(jpath)


def checkpoint_bytes(run_dir: str | Path) -> int:
    """Bytes of the complete checkpoints in ``run_dir``."""
    return sum(os.path.getsize(p) for s in list_checkpoints(run_dir) for p in checkpoint_paths(run_dir, s))


def checkpoint_meta(run_dir: str | Path, step: int) -> dict[str, Any]:
    """The JSON metadata of the checkpoint at ``step``."""
    meta = read_json(checkpoint_paths(run_dir, step)[1], what=f"checkpoint metadata of step {step}")
    if not isinstance(meta, dict):
        raise LeadingTermsError(f"checkpoint metadata of step {step} in {run_dir} is not a JSON object")
    return meta


class CheckpointWriter:
    """Writes checkpoints in a background thread, one at a time, and prunes after each.

    :meth:`submit` waits for the previous write, copies the tensors (so training may change them)
    and returns; :meth:`wait` blocks until the write in flight is done. An error in the thread
    (e.g. a full disk) is raised by the next :meth:`submit` / :meth:`wait`. ``bytes_written``
    counts every file written, pruned or not.

    The copies go into buffers allocated by the first checkpoint that needs them and reused by
    every later one (a fresh allocation of a checkpoint's size costs page faults on every write).
    """

    def __init__(self, run_dir: str | Path, *, keep_last: int, early: int) -> None:
        self.run_dir, self.keep_last, self.early = Path(run_dir), keep_last, early
        self.bytes_written = 0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._buffers: dict[str, torch.Tensor] = {}

    def _copy(self, key: str, t: torch.Tensor) -> torch.Tensor:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            buf = self._buffers[key] = torch.empty(t.shape, dtype=t.dtype, device="cpu")
        return buf.copy_(t.detach())

    def submit(self, step: int, tensors: Mapping[str, Mapping[str, torch.Tensor]],
               meta: Mapping[str, Any]) -> None:
        self.wait()  # the previous write is done: its buffers may be reused
        snap = {g: {n: self._copy(f"{g}.{n}", t) for n, t in d.items()} for g, d in tensors.items()}
        self._thread = threading.Thread(target=self._write, args=(step, snap, dict(meta)), daemon=True,
                                        name=f"checkpoint-{step}")
        self._thread.start()

    def _write(self, step: int, tensors: Mapping[str, Mapping[str, torch.Tensor]], meta: dict[str, Any]) -> None:
        try:
            self.bytes_written += save_checkpoint(self.run_dir, step, tensors, meta)
            prune_checkpoints(self.run_dir, self.keep_last, self.early, protect=step)
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc


def load_checkpoint_raw(run_dir: str | Path, step: int, *, expect: Mapping[str, Any] | None = None,
                        mmap: bool = False) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """-> ({"model": {...}, "shadow": {...}, "optim": {...}}, meta) of the checkpoint at ``step``
    (``mmap``: the tensors memory-mapped, :func:`leadingterms.persist.map_tensors`).

    Verified before anything uses it (one-line errors naming the file): the JSON and the metadata in
    the tensor file's header are the same (a swapped or foreign tensor file is refused), it is the
    checkpoint of ``step``, every tensor is finite, and each ``expect`` key (e.g. the run's
    ``run_id`` and ``corpus_hash`` from RUN/config.json) holds the expected value."""
    from leadingterms.persist import map_tensors

    tpath, jpath = checkpoint_paths(run_dir, step)
    meta = read_json(jpath, what=f"checkpoint metadata of step {step}")
    if not isinstance(meta, dict):
        raise LeadingTermsError(f"checkpoint metadata {jpath} is corrupt: not a JSON object")
    flat, header = (map_tensors if mmap else load_tensors)(tpath, what=f"checkpoint of step {step}")
    fix = f"delete step_{step:06d}.* and use an earlier checkpoint, or retrain with --force"
    if header != meta:
        raise LeadingTermsError(f"checkpoint {tpath} does not match its metadata {jpath.name} (a tensor file "
                                f"swapped in from another checkpoint or run); {fix}")
    flat = decode_rows(flat, meta.get("row_sparse", {}), f"checkpoint {tpath}")
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "shadow": {}, "optim": {}}
    for key, t in flat.items():
        group, _, name = key.partition(".")
        if group not in groups:
            raise LeadingTermsError(f"checkpoint {tpath} holds an unexpected tensor {key!r}")
        groups[group][name] = t
    if meta.get("step") != step:
        raise LeadingTermsError(f"checkpoint metadata {jpath} is for step {meta.get('step')!r}, not {step}; {fix}")
    for key, t in flat.items():
        if not all_finite(t):
            raise LeadingTermsError(f"checkpoint {tpath} is corrupt: tensor {key!r} holds NaN or infinite "
                                    f"values; {fix}")
    for key, want in (expect or {}).items():
        if want is not None and meta.get(key) != want:
            raise LeadingTermsError(
                f"checkpoint {tpath} belongs to another run or corpus: its {key} is {meta.get(key)!r}, "
                f"the run's is {want!r}; {fix}")
    return groups, meta


def check_checkpoint_config(meta: Mapping[str, Any], cfg: Any, *, where: str) -> None:
    """Refuse a checkpoint whose recorded config differs from its run's in a field that shapes the weights
    (:data:`leadingterms.training.config.RESUME_MUST_MATCH`): it was written by another run."""
    from leadingterms.training.config import RESUME_MUST_MATCH, TrainConfig, resume_mismatch

    saved = meta.get("config")
    if not isinstance(saved, dict):
        raise LeadingTermsError(f"{where} is corrupt: its metadata has no 'config' object")
    try:
        theirs = TrainConfig.from_json({k: v for k, v in saved.items() if k in RESUME_MUST_MATCH or
                                        k in ("corpus", "out", "layers", "lr", "batch_size", "steps", "epochs")})
    except (TypeError, ValueError) as exc:
        raise LeadingTermsError(f"{where} is corrupt: its config does not load ({exc})") from None
    why = resume_mismatch(theirs, cfg)
    if why:
        raise LeadingTermsError(f"{where} was written by another run: its config differs from the run's ({why})")


def prune_checkpoints(run_dir: str | Path, keep_last: int, early: int, protect: int | None = None) -> list[int]:
    """Delete checkpoints outside the newest ``keep_last`` and the first ``early`` log-spaced steps
    -> deleted steps. ``protect`` (the newest step) is never deleted. JSON goes first, so a
    half-deleted checkpoint is never mistaken for a complete one.
    """
    steps = list_checkpoints(run_dir)
    keep = set(steps[-keep_last:]) if keep_last > 0 else set()
    keep |= set(early_steps(early))
    deleted = []
    for s in steps:
        if s in keep or s == protect:
            continue
        tpath, jpath = checkpoint_paths(run_dir, s)
        jpath.unlink(missing_ok=True)
        tpath.unlink(missing_ok=True)
        deleted.append(s)
    return deleted


def optimizer_tensors(opt: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state as flat tensors ``{"<i>.<key>": t}`` + JSON (param groups, scalar state)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: Any, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                   device: torch.device) -> None:
    """Inverse of :func:`optimizer_tensors`: restore ``opt``'s state exactly."""
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        idx, _, k = key.partition(".")
        state.setdefault(int(idx), {})[k] = t if k == "step" else t.to(device)
    for key, v in meta.get("scalars", {}).items():
        idx, _, k = key.partition(".")
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
