"""``pretrain-small``: a local Pythia-like checkpoint suite, trained on CPU in minutes.

A standard ``GPTNeoXForCausalLM`` (parallel residual, rotary on 25% of each head, untied
embeddings — Pythia's architecture at toy size: 2–4 layers, d_model 128) is trained from a
seeded random init with AdamW (linear warm-up, cosine decay to 10%) on the packed token stream
of a corpus, tokenized by a BPE tokenizer trained on that corpus (the corpus stage's ``bpe``
tokenizer, docs/theory.md §8: Whitespace pre-tokenizer, ``<unk> <pad> <s> </s>``, template
``<s> $A </s>``) and saved with every checkpoint as a ``PreTrainedTokenizerFast``.

Checkpoints follow Pythia's log spacing: ``OUT/step0`` (the init), ``step1``, ``step2``,
``step4``, … up to ``--steps`` (and ``--steps`` itself), each a ``save_pretrained`` folder with
model and tokenizer. ``OUT/suite.json`` records the settings, the checkpoints and the loss curve.
``compare-pretrained --model OUT --revisions local`` then sweeps them.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leadingterms.config import check_config, option
from leadingterms.corpus.sources import SourceConfig, read_documents
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import FILE_MODE, disk_full_error, is_disk_full, read_json, write_json
from leadingterms.pretrained.loading import step_of
from leadingterms.progress import bar
from leadingterms.schema import OBJECT, Field, check_fields
from leadingterms.validate import nonnegative_int, out_folder, positive_float, positive_int, refuse_foreign


@dataclass(kw_only=True)
class SuiteConfig(SourceConfig):
    """``leadingterms pretrain-small``: a corpus source (default: the synthetic stories) -> a small
    GPT-NeoX trained with AdamW, saved at log-spaced steps."""

    out: str = option(help="output folder to create (DIR/step<N>/, DIR/suite.json)", metavar="DIR")
    steps: int = option(128, help="optimizer steps", check=positive_int)
    layers: int = option(2, help="layers", check=positive_int)
    d_model: int = option(128, help="model width", check=positive_int)
    heads: int = option(4, help="attention heads", check=positive_int)
    vocab_size: int = option(2048, help="BPE vocabulary", metavar="K", check=positive_int)
    seq_len: int = option(128, help="training context", metavar="T", check=positive_int)
    batch_size: int = option(16, help="sequences per step", metavar="B", check=positive_int)
    lr: float = option(3e-3, help="peak AdamW learning rate", check=positive_float)
    warmup: int = option(16, help="linear warm-up steps", check=nonnegative_int)
    seed: int = option(0, help="seed of the initialisation and the data order", check=nonnegative_int)
    threads: int | None = option(None, help="torch CPU threads (default: torch's choice)", metavar="N",
                                 check=positive_int)
    force: bool = option(False, help="replace a suite in DIR made with other settings (its step folders too)")

    def check(self) -> None:
        SourceConfig.check(self)
        if self.d_model % self.heads:
            raise LeadingTermsError(f"--d-model {self.d_model} is not divisible by --heads {self.heads}")


@dataclass
class SuiteResult:
    """The suite folder and its suite.json record (settings, checkpoints, loss curve, time)."""

    path: Path
    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def checkpoint_steps(steps: int) -> list[int]:
    """0, 1, 2, 4, …, 2^k <= steps, and ``steps`` itself."""
    out = [0]
    s = 1
    while s <= steps:
        out.append(s)
        s *= 2
    if out[-1] != steps:
        out.append(steps)
    return out


def lr_at(step: int, cfg: SuiteConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10% at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def train_tokenizer(docs: list[str], vocab_size: int) -> tuple[Any, list[np.ndarray]]:
    """The corpus stage's BPE (docs/theory.md §8) trained on ``docs``, as a PreTrainedTokenizerFast,
    and the encoded docs."""
    from transformers import PreTrainedTokenizerFast

    from leadingterms.corpus.tokenizers import make_tokenizer

    bpe = make_tokenizer("bpe", vocab_size)
    ids = bpe.fit_encode(docs)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe.tok, unk_token="<unk>", pad_token="<pad>",  # type: ignore[attr-defined]
                                  bos_token="<s>", eos_token="</s>")
    return tok, ids


def make_model(cfg: SuiteConfig, vocab: int, bos: int, eos: int) -> Any:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(cfg.seed)
    config = GPTNeoXConfig(
        vocab_size=vocab, hidden_size=cfg.d_model, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
        intermediate_size=4 * cfg.d_model, max_position_embeddings=max(2 * (cfg.seq_len + 1), 256),
        use_parallel_residual=True,  # rotary on 25% of each head: the config's default
        tie_word_embeddings=False, bos_token_id=bos,
        eos_token_id=eos, hidden_dropout=0.0, attention_dropout=0.0,
    )
    return GPTNeoXForCausalLM(config)


def _save(model: Any, tokenizer: Any, folder: Path) -> None:
    """save_pretrained into a temporary sibling, then rename (atomic for readers)."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise disk_full_error(folder) from None
        raise
    for f in tmp.iterdir():
        os.chmod(f, FILE_MODE)  # save_pretrained writes model.safetensors 0600; results are shared
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


SUITE_FILE = "suite.json"
_SUITE_FIELDS = {"config": OBJECT, "checkpoints": Field(
    lambda v: isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) and step_of(x) is not None
                                                          for x in v),
    "a non-empty list of step<N> folder names")}


def read_suite(folder: Path) -> dict[str, Any] | None:
    """``folder/suite.json`` schema-checked (one-line errors naming the file and field), or None without one."""
    p = folder / SUITE_FILE
    if not p.is_file():
        return None
    return check_fields(read_json(p, what="suite record"), _SUITE_FIELDS, where=p,
                        fix=f"rebuild the suite with `leadingterms pretrain-small --out {folder} --force`")


def suite_members(folder: Path) -> list[str] | None:
    """The checkpoints a pretrain-small suite lists (every one must exist), or None when ``folder`` holds no
    suite.json. Step folders the suite does not list (left by an earlier suite) are never read."""
    rec = read_suite(folder)
    if rec is None:
        return None
    missing = [c for c in rec["checkpoints"] if not (folder / c).is_dir()]
    if missing:
        raise LeadingTermsError(f"{folder / SUITE_FILE} lists {missing[0]}, which is missing from {folder}; "
                                f"rebuild the suite with `leadingterms pretrain-small --out {folder} --force`")
    return list(rec["checkpoints"])


def _claim(out: Path, cfg: SuiteConfig) -> None:
    """The overwrite policy: DIR may be new, empty, an interrupted suite (step folders, no suite.json), or a
    suite of the same settings; another suite (or other files) is replaced only with --force."""
    out_folder(out)
    if cfg.force or not out.is_dir():
        return
    try:
        rec = read_suite(out)
    except LeadingTermsError:
        rec = {"config": None}
    if rec is not None:
        old = {k: v for k, v in (rec.get("config") or {}).items() if k not in ("force", "out", "threads")}
        new = {k: v for k, v in asdict(cfg).items() if k not in ("force", "out", "threads")}
        if old != new:
            diff = next((k for k in new if old.get(k) != new[k]), "config")
            raise LeadingTermsError(
                f"--out {out} holds a suite made with other settings ({diff} {old.get(diff)!r} there, "
                f"{new.get(diff)!r} now); pass --force to replace it, or choose another --out")
        return
    refuse_foreign(out, "a pretrain-small suite", lambda p: step_of(p.name) is not None)


def _check_finite(finite: bool, what: str, step: int, cfg: SuiteConfig) -> None:
    """Stop (one line) where ``what`` (the loss, the weights) is not finite at ``step``: no NaN model is saved."""
    if not finite:
        raise LeadingTermsError(f"training diverged: non-finite {what} at step {step}; lower --lr ({cfg.lr:g}). "
                                "The checkpoints saved before it are kept; no suite.json was written")


def run_suite(cfg: SuiteConfig) -> SuiteResult:
    """Train and save the checkpoints; return the suite.json record."""
    from leadingterms.corpus.sequences import pack
    from leadingterms.locks import new_output
    from leadingterms.pretrained.loading import quiet_transformers

    check_config(cfg)
    out = Path(cfg.out)
    _claim(out, cfg)
    quiet_transformers()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    documents = read_documents(cfg)
    docs, source = documents.texts, documents.source
    tokenizer, ids = train_tokenizer(docs, cfg.vocab_size)
    if len(tokenizer) > cfg.vocab_size:
        raise LeadingTermsError(
            f"--vocab-size {cfg.vocab_size} is smaller than the {len(tokenizer)} characters and special tokens "
            f"the BPE tokenizer of this corpus needs; use --vocab-size {len(tokenizer)} or more")
    data = torch.from_numpy(np.array(pack(ids, cfg.seq_len)))  # (N, T+1) windows of the packed stream
    if len(data) < cfg.batch_size:
        raise LeadingTermsError(
            f"the corpus gives {len(data)} sequences of {cfg.seq_len + 1} tokens, fewer than --batch-size "
            f"{cfg.batch_size}; give more text or lower --seq-len"
        )
    with new_output(out, what="suite folder", claim=lambda: _claim(out, cfg)):  # _claim again, holding the lock
        return _train(cfg, out, tokenizer, data, docs, source, t0)


def _train(cfg: SuiteConfig, out: Path, tokenizer: Any, data: torch.Tensor, docs: list[str], source: Any,
           t0: float) -> SuiteResult:
    """Train and save every checkpoint into ``out`` (holding its lock): step folders an earlier suite left and
    the new one does not make are removed first, and suite.json, written last, lists the members."""
    from leadingterms.budget import check_disk

    saves = set(checkpoint_steps(cfg.steps))
    model = make_model(cfg, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    check_disk(out, len(saves) * (n_bytes + 2**20), f"the {len(saves)} checkpoints of the suite",
               hint="lower --steps, --layers or --d-model")
    (out / SUITE_FILE).unlink(missing_ok=True)  # the suite is incomplete until suite.json is rewritten
    for p in out.iterdir():
        if p.is_dir() and (step_of(p.name) is not None and step_of(p.name) not in saves
                           or p.name.startswith(".step") and p.name.endswith(".tmp")):
            shutil.rmtree(p)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(data), generator=gen)
    pos = 0
    losses: list[float] = []
    model.train()
    _save(model, tokenizer, out / "step0")
    for step in bar(range(cfg.steps), total=cfg.steps, desc="pretrain-small", unit="step"):
        if pos + cfg.batch_size > len(order):
            order, pos = torch.randperm(len(data), generator=gen), 0
        batch = data[order[pos:pos + cfg.batch_size]].long()
        pos += cfg.batch_size
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(input_ids=batch, labels=batch).loss
        value = float(loss.detach())
        _check_finite(math.isfinite(value), f"loss ({value})", step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(round(float(loss.detach()), 5))
        if step + 1 in saves:
            _check_finite(all(bool(torch.isfinite(p).all()) for p in model.parameters()), "weights", step + 1, cfg)
            _save(model, tokenizer, out / f"step{step + 1}")
    record = {
        "config": asdict(cfg),
        "source": source,
        "n_documents": len(docs),
        "n_sequences": int(len(data)),
        "vocab_size": len(tokenizer),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "checkpoints": [f"step{s}" for s in sorted(saves)],
        "loss": losses,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / SUITE_FILE, record)
    return SuiteResult(out, record)
