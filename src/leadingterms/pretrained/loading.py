"""Models and revisions: hub names or local folders, exact revisions, offline first.

A *reference* (:class:`ModelRef`) is one model at one revision. ``--model`` is a hub name
(``EleutherAI/pythia-70m-deduped``) or a local folder (``save_pretrained`` output); revisions are

- for hub names, git revisions of the repository (Pythia's checkpoints are branches
  ``step0`` … ``step143000``; a 40-hex commit works too);
- for local folders, sub-folders: ``--model DIR --revision step4`` is ``DIR/step4``;
  ``--revisions local`` expands to every ``DIR/step<N>`` folder, in step order.

``--revisions pythia`` expands to Pythia's schedule (step0, 1, 2, 4, …, 512, then every 1000 up to
143000: 154 revisions), ``pythia:FIRST-LAST`` to the part of it with FIRST <= step <= LAST.

Offline first: when ``HF_HUB_OFFLINE`` is set or the hub cannot be reached, everything is read
from the local Hugging Face cache (``local_files_only``). A hub revision is resolved to its
snapshot folder ``…/models--ORG--NAME/snapshots/<commit>/`` and the model, config and tokenizer
are all loaded from that folder, so the weights are exactly that commit; the commit (the folder
name) is recorded. ``trust_remote_code`` is passed only when the user asks for it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.pretrained.features import ArchSpec, arch_spec

_STEP_RE = re.compile(r"^step(\d+)$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
#: Weight and tokenizer files fetched from the hub (one weight format is enough).
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "tokenizer*", "merges*", "vocab*"]


def pythia_schedule() -> list[int]:
    """Pythia's checkpoint steps: 0, 1, 2, 4, …, 512, then 1000, 2000, …, 143000 (154 steps)."""
    return [0] + [2**i for i in range(10)] + list(range(1000, 143_001, 1000))


def step_of(name: str) -> int | None:
    """``"step1000"`` -> 1000; anything else -> None."""
    m = _STEP_RE.match(name)
    return int(m.group(1)) if m else None


def _parse_step(text: str, spec: str) -> int:
    s = text.strip()
    s = s[4:] if s.startswith("step") else s
    if not s.isdigit():
        raise LeadingTermsError(f"bad revisions spec {spec!r}; use pythia:FIRST-LAST (e.g. pythia:0-512)")
    return int(s)


def expand_pythia(spec: str) -> list[str]:
    """``pythia`` | ``pythia:FIRST-LAST`` -> revision names ``step<N>`` of Pythia's schedule."""
    steps = pythia_schedule()
    if spec != "pythia":
        rng = spec.split(":", 1)[1]
        if "-" not in rng:
            raise LeadingTermsError(f"bad revisions spec {spec!r}; use pythia:FIRST-LAST (e.g. pythia:0-512)")
        a, b = (_parse_step(x, spec) for x in rng.split("-", 1))
        steps = [s for s in steps if a <= s <= b]
        if not steps:
            raise LeadingTermsError(f"revisions spec {spec!r} selects no Pythia checkpoint")
    return [f"step{s}" for s in steps]


def local_steps(folder: Path) -> list[str]:
    """Names of the ``step<N>`` sub-folders of ``folder``, in step order."""
    names = [p.name for p in folder.iterdir() if p.is_dir() and step_of(p.name) is not None]
    return sorted(names, key=lambda n: step_of(n) or 0)


@dataclass(frozen=True)
class ModelRef:
    """One model at one revision. ``path`` is set for local folders; ``revision`` for hub names
    (None = the default branch) and for local step folders (the sub-folder name)."""

    name: str
    revision: str | None
    path: Path | None
    label: str


def _is_local(name: str) -> bool:
    """A local folder: it exists, starts like a path, or has more slashes than ORG/NAME."""
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def _short(name: str) -> str:
    return Path(name.rstrip("/")).name or name


def resolve_refs(models: Sequence[str], revisions: Sequence[str] = (), revisions_spec: str | None = None
                 ) -> list[ModelRef]:
    """The references to compare, in order: every model × every revision.

    ``revisions`` (explicit names) and ``revisions_spec`` (``pythia``, ``pythia:A-B``, ``local``)
    are exclusive. Labels are unique: the revision (or the folder name of a local model without
    revision; the short hub name without revision), prefixed by the model's short name when
    several models are given with revisions.
    """
    if not models:
        raise LeadingTermsError("no model given; pass --model NAME_OR_PATH")
    if revisions and revisions_spec:
        raise LeadingTermsError("--revision and --revisions are exclusive")
    known = revisions_spec in ("pythia", "local") or str(revisions_spec).startswith("pythia:")
    if revisions_spec is not None and not known:
        raise LeadingTermsError(f"unknown --revisions {revisions_spec!r}; use pythia, pythia:FIRST-LAST or local")
    refs: list[ModelRef] = []
    prefix = len(models) > 1
    for name in models:
        local = _is_local(name)
        folder = Path(name).expanduser() if local else None
        if folder is not None and not folder.is_dir():
            raise LeadingTermsError(f"model folder not found: {folder}")
        revs: list[str | None]
        if revisions_spec == "local":
            if folder is None:
                raise LeadingTermsError(f"--revisions local needs local folders; {name!r} is a hub name")
            from leadingterms.pretrained.suite import suite_members

            listed = suite_members(folder)  # a pretrain-small suite: only its listed checkpoints
            revs = list(local_steps(folder)) if listed is None else list(listed)
            if not revs:
                raise LeadingTermsError(f"no step<N> checkpoint folders in {folder}")
        elif revisions_spec is not None:
            revs = list(expand_pythia(revisions_spec))
        else:
            revs = list(revisions) or [None]
        for rev in revs:
            path = folder
            if folder is not None and rev is not None:
                path = folder / rev
                if not path.is_dir():
                    have = ", ".join(local_steps(folder)[:8]) or "none"
                    raise LeadingTermsError(f"revision {rev!r} not found in {folder} (step folders: {have})")
            if rev is None:
                label = _short(name)
            else:
                label = f"{_short(name)}-{rev}" if prefix else rev
            refs.append(ModelRef(name=name, revision=rev, path=path, label=label))
    seen: dict[str, int] = {}
    out = []
    for r in refs:  # make labels unique
        n = seen.get(r.label, 0)
        seen[r.label] = n + 1
        out.append(r if n == 0 else ModelRef(r.name, r.revision, r.path, f"{r.label}-{n + 1}"))
    return out


@functools.lru_cache(maxsize=1)
def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set or huggingface.co:443 is unreachable."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return True
    return False


def _hub_cache() -> str | None:
    return os.environ.get("HF_HUB_CACHE") or None


def snapshot_folder(name: str, revision: str | None, *, offline: bool) -> Path:
    """The local snapshot folder ``…/snapshots/<commit>`` of hub model ``name`` at ``revision``.

    Offline: looked up in the cache (``refs/<revision>`` -> commit). Online: the revision is
    resolved to its commit and the config, tokenizer and one weight format are downloaded.
    """
    from huggingface_hub import snapshot_download

    rev = revision or "main"
    try:
        if offline:
            return Path(snapshot_download(repo_id=name, revision=rev, local_files_only=True,
                                          cache_dir=_hub_cache()))
        from huggingface_hub import HfApi

        info = HfApi().model_info(name, revision=rev)
        files = [s.rfilename for s in (info.siblings or [])]
        weights = ["*.safetensors"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
        return Path(snapshot_download(repo_id=name, revision=info.sha, allow_patterns=_HUB_PATTERNS + weights,
                                      cache_dir=_hub_cache()))
    except Exception as exc:
        where = "in the local Hugging Face cache (hub offline)" if offline else "on the Hugging Face hub"
        what = f"revision {rev!r} of model {name!r}" if revision else f"model {name!r}"
        raise LeadingTermsError(
            f"{what} not found {where}: {type(exc).__name__}; pass a local folder or download it first"
        ) from None


def weights_fingerprint(folder: Path) -> str:
    """sha256 (16 hex) over the names, sizes and first MiB of the weight files of ``folder``."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file())
    for p in files:
        h.update(f"{p.name}|{p.stat().st_size}|".encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


@dataclass
class LoadedModel:
    ref: ModelRef
    model: Any  # a transformers PreTrainedModel (causal LM), eval mode
    tokenizer: Any  # a transformers tokenizer
    spec: ArchSpec
    folder: Path  # the folder everything was loaded from (local model or hub snapshot)
    commit: str | None  # hub commit (snapshot folder name), None for a plain local folder
    info: dict[str, Any] = field(default_factory=dict)  # recorded in similarity.json


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


def quiet_transformers() -> None:
    """No transformers progress bars (ours show progress over models); its warnings stay."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_config(folder: Path, *, trust_remote_code: bool = False) -> tuple[Any, ArchSpec]:
    """The model config of ``folder`` and its :class:`ArchSpec`; refuses non-causal models."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except Exception as exc:
        suite = folder.is_dir() and any(p.is_dir() and step_of(p.name) is not None for p in folder.iterdir())
        hint = "; it holds checkpoint folders (stepN): pass --revisions local to compare them" if suite else ""
        raise LeadingTermsError(f"cannot read a model config in {folder}{hint}: {_one_line(exc)}") from None
    archs = list(getattr(config, "architectures", None) or [])
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise LeadingTermsError(
            f"{folder} is not a causal language model (architectures: {', '.join(archs)}); "
            "compare-pretrained needs a *ForCausalLM model"
        )
    return config, arch_spec(str(config.model_type))


#: A model folder holds at least one of these when its tokenizer was saved with it.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                    "spiece.model")


def load_model(ref: ModelRef, *, device: torch.device | str = "cpu", trust_remote_code: bool = False,
               before_weights: Callable[[Path, Any], None] | None = None) -> LoadedModel:
    """Load ``ref`` (float32, eval mode) with its own tokenizer; record where it came from.

    ``before_weights(folder, config)`` runs after the config is read and before the weights are
    (e.g. a memory check that refuses).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    if ref.path is not None:
        folder = ref.path
        m = _COMMIT_RE.match(folder.resolve().name)
        commit = m.group(0) if m and folder.resolve().parent.name == "snapshots" else None
        source = "local"
    else:
        folder = snapshot_folder(ref.name, ref.revision, offline=hub_offline())
        commit = folder.name if _COMMIT_RE.match(folder.name) else None
        source = "hub"
        if ref.revision and _COMMIT_RE.match(ref.revision) and commit != ref.revision:
            raise LeadingTermsError(f"asked for commit {ref.revision} of {ref.name} but the cache gave {commit}")
    config, spec = load_config(folder, trust_remote_code=trust_remote_code)
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise LeadingTermsError(f"model folder {folder} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); "
                                "save the model's tokenizer next to it")
    if before_weights is not None:
        before_weights(folder, config)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch.float32, trust_remote_code=trust_remote_code, local_files_only=True,
            attn_implementation="eager",
        )
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code,
                                                  local_files_only=True)
    except LeadingTermsError:
        raise
    except Exception as exc:
        raise LeadingTermsError(f"cannot load model or tokenizer from {folder}: {_one_line(exc)}") from None
    bad = next((name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())), None)
    if bad is not None:
        raise LeadingTermsError(f"the model in {folder} has NaN or inf weights ({bad}): a diverged checkpoint?")
    model.eval().to(device)
    info = {
        "model": ref.name,
        "revision": ref.revision,
        "commit": commit,
        "source": source,
        "folder": str(folder.resolve()),
        "weights_fingerprint": weights_fingerprint(folder),
        "model_type": str(config.model_type),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "parallel_residual": bool(getattr(config, "use_parallel_residual", False)),
        "trust_remote_code": trust_remote_code,
    }
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer, spec=spec, folder=folder, commit=commit,
                       info=info)
