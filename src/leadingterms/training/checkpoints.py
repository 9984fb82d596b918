"""Checkpoints: RUN/checkpoints/step_{s:06d}.safetensors + step_{s:06d}.json.

The safetensors file holds the tensors under prefixed names: ``model.<param>`` (the model
weights, names as in the state dict: W_O, layers.{l}.W, ...), ``shadow.<name>`` (the SPEC §5
shadow state) and ``optim.<i>.<key>`` (optimizer state of parameter i, e.g. Adam's exp_avg,
exp_avg_sq, step). The JSON file (also embedded in the safetensors header) holds the config,
corpus hash, step, data-order state and optimizer hyper-parameters. The tensors are written
first and the JSON last, both atomically: a checkpoint counts only when its JSON exists.

Retention: the last ``keep_last`` checkpoints plus the log-spaced set (steps 0, 1, 2, 4, 8, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import load_tensors, read_json, save_tensors, write_json

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{6,})\.json$")


def checkpoint_paths(run_dir: str | Path, step: int) -> tuple[Path, Path]:
    """(tensor file, JSON file) of the checkpoint at ``step``."""
    d = Path(run_dir) / CHECKPOINT_DIR
    return d / f"step_{step:06d}.safetensors", d / f"step_{step:06d}.json"


def is_log_spaced(step: int) -> bool:
    """Steps 0, 1, 2, 4, 8, ... (kept forever)."""
    return step == 0 or (step & (step - 1)) == 0


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


def save_checkpoint(run_dir: str | Path, step: int, tensors: Mapping[str, Mapping[str, torch.Tensor]],
                    meta: Mapping[str, Any]) -> Path:
    """Write ``{"model": {...}, "shadow": {...}, "optim": {...}}`` tensors and ``meta`` atomically."""
    flat = {f"{group}.{name}": t for group, d in tensors.items() for name, t in d.items()}
    tpath, jpath = checkpoint_paths(run_dir, step)
    full = dict(meta, step=step, tensor_file=tpath.name)
    save_tensors(tpath, flat, metadata=full)
    write_json(jpath, full)
    return tpath


def load_checkpoint_raw(run_dir: str | Path,
                        step: int) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """-> ({"model": {...}, "shadow": {...}, "optim": {...}}, meta) of the checkpoint at ``step``."""
    tpath, jpath = checkpoint_paths(run_dir, step)
    meta = read_json(jpath, what=f"checkpoint metadata of step {step}")
    flat, _ = load_tensors(tpath, what=f"checkpoint of step {step}")
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "shadow": {}, "optim": {}}
    for key, t in flat.items():
        group, _, name = key.partition(".")
        if group not in groups:
            raise LeadingTermsError(f"checkpoint {tpath} holds an unexpected tensor {key!r}")
        groups[group][name] = t
    if int(meta.get("step", -1)) != step:
        raise LeadingTermsError(f"checkpoint metadata {jpath} is for step {meta.get('step')}, not {step}")
    return groups, meta


def prune_checkpoints(run_dir: str | Path, keep_last: int, protect: int | None = None) -> list[int]:
    """Delete checkpoints outside the last ``keep_last`` and the log-spaced set -> deleted steps.

    ``protect`` (the newest step) is never deleted. JSON goes first, so a half-deleted
    checkpoint is never mistaken for a complete one.
    """
    steps = list_checkpoints(run_dir)
    recent = set(steps[-keep_last:]) if keep_last > 0 else set()
    deleted = []
    for s in steps:
        if s in recent or is_log_spaced(s) or s == protect:
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
