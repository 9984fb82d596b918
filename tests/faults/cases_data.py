"""Campaign cases of the data side (issue 10): ``corpus``, ``stats``, ``predict``, ``associations``,
``explore``, ``pretrain-small``, ``compare-pretrained`` and the environment.

Fault classes: stale store, tampered JSON, NaN tensors, overwrite policy, stale suite members, concurrent
writers, stale lock, temp-file cleanup, disk full, memory refusal, listed tracebacks, bad arguments,
missing / empty / corrupt input, output path, and correct requests that must still work.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from faults.harness import Case, run_command
from faults.workspace import BASIS, CORPUS, SUITE

DELETE = object()
Setup = Callable[[Path], None]

STATS = ["stats", "--corpus", "{W}/corpus"]
PREDICT = ["predict", "--stats", "{W}/basis", "--steps", "3", "--lr", "0.1", "--layers", "1"]
SUITE_ARGS = ["pretrain-small", "--text", "{W}/text.txt", "--layers", "1", "--d-model", "16", "--heads", "2",
              "--vocab-size", "200", "--seq-len", "12", "--batch-size", "4"]
COMPARE = ["compare-pretrained", "--model", "{W}/suite", "--revisions", "local", "--text", "{W}/text.txt",
           "--seq-len", "12", "--top-k", "8", "--cache-dir", "{W}/cache", "--out", "{W}/cmp", "--no-plots"]


# ----------------------------------------------------------------------------- setups


def edit_json(rel: str, **changes: Any) -> Setup:
    def setup(ws: Path) -> None:
        p = ws / rel
        meta = json.loads(p.read_text())
        for k, v in changes.items():
            if v is DELETE:
                meta.pop(k, None)
            else:
                meta[k] = v(meta[k]) if callable(v) else v
        p.write_text(json.dumps(meta))
    return setup


def write(rel: str, data: str | bytes) -> Setup:
    def setup(ws: Path) -> None:
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def remove(rel: str) -> Setup:
    def setup(ws: Path) -> None:
        p = ws / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return setup


def both(*setups: Setup) -> Setup:
    def setup(ws: Path) -> None:
        for s in setups:
            s(ws)
    return setup


def swap_token_rows(ws: Path) -> None:
    """Same size, other content (what rebuilding from other text with the same V and T looks like)."""
    p = ws / CORPUS / "tokens.npy"
    a = np.load(p)
    a[[0, 1]] = a[[1, 0]]
    a[2, 3] = (int(a[2, 3]) + 1) % 30
    np.save(p, a)


def truncate(rel: str, keep: int) -> Setup:
    def setup(ws: Path) -> None:
        p = ws / rel
        p.write_bytes(p.read_bytes()[:keep])
    return setup


def touch(rel: str) -> Setup:
    return lambda ws: os.utime(ws / rel)


def nan_basis(*, keep_record: bool) -> Setup:
    def setup(ws: Path) -> None:
        from leadingterms.persist import load_tensors, save_tensors

        p = ws / BASIS / "basis.safetensors"
        tensors, header = load_tensors(p)
        tensors["B_bar"][3, 4] = float("nan")
        tensors["Q_bar"][0, 0] = float("inf")
        save_tensors(p, tensors, header)
        if not keep_record:
            edit_json(f"{BASIS}/basis.json", files=DELETE)(ws)
    return setup


def pickle_at(rel: str) -> Setup:
    def setup(ws: Path) -> None:
        import pickle

        (ws / rel).write_bytes(pickle.dumps({"evil": list(range(5))}))
    return setup


def cli(*argv: str) -> Setup:
    """Run a command in the workspace as part of the setup (in this process)."""
    def setup(ws: Path) -> None:
        import contextlib
        import io

        from leadingterms.cli import main

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            rc = main([a.replace("{W}", str(ws)) for a in argv])
        assert rc == 0, argv
    return setup


def dead_lock(rel: str) -> Setup:
    """A lock file left by a process that died (its pid is not running; the kernel released the flock)."""
    return write(f"{rel}/.leadingterms.lock", json.dumps({"pid": 999_999_999, "command": "leadingterms killed",
                                                          "time": 0}))


# ----------------------------------------------------------------------------- runs


def holding(rel: str, *, folder: bool = True) -> Callable[[Path, list[str], dict[str, str]],
                                                          subprocess.CompletedProcess[str]]:
    """Run the command while this process holds the output lock of ``rel`` (a concurrent writer)."""
    def run(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        from leadingterms.locks import output_lock

        with output_lock(ws / rel, folder=folder, what="output"):
            return run_command(ws, argv, env)
    return run


def fsize_limited(nbytes: int) -> Callable[[Path, list[str], dict[str, str]], subprocess.CompletedProcess[str]]:
    """Run the command with ``ulimit -f`` (RLIMIT_FSIZE) of ``nbytes``: a full disk as a writer meets it."""
    def run(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "LEADINGTERMS_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", **env}
        return subprocess.run([sys.executable, "-m", "leadingterms", *argv], cwd=ws, env=full_env,
                               capture_output=True, text=True, timeout=300,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes)))
    return run


# ----------------------------------------------------------------------------- checks


def gone(*rels: str) -> Callable[[Path, Any], str | None]:
    def check(ws: Path, proc: Any) -> str | None:
        left = [r for r in rels if list(ws.glob(r))]
        return f"left behind: {left}" if left else None
    return check


def finite_prediction(rel: str) -> Callable[[Path, Any], str | None]:
    def check(ws: Path, proc: Any) -> str | None:
        import torch

        from leadingterms.persist import load_tensors

        tensors, meta = load_tensors(ws / rel)
        if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
            return "non-finite predicted weights written"
        return None if meta.get("basis_hash") else "prediction does not record its basis_hash"
    return check


def finite_basis(ws: Path, proc: Any) -> str | None:
    from leadingterms.basis import load_basis

    b = load_basis(ws / BASIS)
    return None if bool(b.B_bar.isfinite().all()) else "the NaN basis was kept"


def no_nan_output(ws: Path, proc: Any) -> str | None:
    return "nan in the output" if "nan" in proc.stdout.lower().split() else None


def suite_is(members: list[str]) -> Callable[[Path, Any], str | None]:
    def check(ws: Path, proc: Any) -> str | None:
        rec = json.loads((ws / SUITE / "suite.json").read_text())
        steps = sorted(p.name for p in (ws / SUITE).iterdir() if p.is_dir() and p.name.startswith("step"))
        if rec["checkpoints"] != members or sorted(members) != steps:
            return f"suite lists {rec['checkpoints']}, folder holds {steps}"
        return None
    return check


def compared(labels: list[str]) -> Callable[[Path, Any], str | None]:
    def check(ws: Path, proc: Any) -> str | None:
        got = [e["label"] for e in json.loads((ws / "cmp" / "index.json").read_text())["entries"]]
        return None if got == labels else f"compared {got}, not the suite's members {labels}"
    return check


# ----------------------------------------------------------------------------- the cases


def _corpus_cases() -> list[Case]:
    c = ["corpus", "--text", "{W}/text.txt"]
    return [
        Case("data-corpus-missing-text", "missing input", [*c[:2], "{W}/nope.txt", "--out", "{W}/c2"], match="nope"),
        Case("data-corpus-empty-text", "empty input", [*c[:2], "{W}/e.txt", "--out", "{W}/c2"],
             setup=write("e.txt", "")),
        Case("data-corpus-text-is-dir", "missing input", [*c[:2], "{W}/corpus", "--out", "{W}/c2"]),
        Case("data-corpus-seq-len-0", "bad argument", [*c, "--seq-len", "0", "--out", "{W}/c2"], match="--seq-len"),
        Case("data-corpus-seq-len-neg", "bad argument", [*c, "--seq-len", "-1", "--out", "{W}/c2"]),
        Case("data-corpus-seq-len-abc", "bad argument", [*c, "--seq-len", "abc", "--out", "{W}/c2"]),
        Case("data-corpus-seed-negative", "bad argument", [*c, "--val-fraction", "0.1", "--seed", "-1", "--out",
                                                           "{W}/c2"], match="--seed"),
        Case("data-corpus-max-documents-huge", "bad argument",
             [*c, "--max-documents", "100000000000000000000", "--out", "{W}/c2"], match="at most 2^63 - 1"),
        Case("data-corpus-into-a-run-folder", "overwrite policy", [*c, "--out", "{W}/run"],
             match="is not a token store; pass --force"),
        Case("data-corpus-jsonl-lone-surrogate", "corrupt input", ["corpus", "--jsonl", "{W}/d.jsonl", "--out", "{W}/c2"],
             setup=write("d.jsonl", '{"text": "a \\ud800 b"}\n'), match="lone surrogate"),
        Case("data-corpus-seq-len-huge", "bad argument", [*c, "--seq-len", "100000", "--out", "{W}/c2"],
             match="lower --seq-len"),
        Case("data-corpus-vocab-size-0", "bad argument", [*c, "--vocab-size", "0", "--out", "{W}/c2"]),
        Case("data-corpus-val-fraction-nan", "bad argument", [*c, "--val-fraction", "nan", "--out", "{W}/c2"]),
        Case("data-corpus-val-fraction-1", "bad argument", [*c, "--val-fraction", "1.5", "--out", "{W}/c2"]),
        Case("data-corpus-data-files-without-dataset", "silently wrong input",
             ["corpus", "--data-files", "{W}/text.txt", "--out", "{W}/c2"], match="needs --dataset"),
        Case("data-corpus-stride-without-pack", "bad argument", [*c, "--stride", "3", "--out", "{W}/c2"]),
        Case("data-corpus-bogus-tokenizer", "bad argument", [*c, "--tokenizer", "foo", "--out", "{W}/c2"]),
        Case("data-corpus-hf-tokenizer-missing", "missing input",
             [*c, "--tokenizer", "hf:{W}/nope", "--out", "{W}/c2"]),
        Case("data-corpus-jsonl-corrupt", "corrupt input",
             ["corpus", "--jsonl", "{W}/d.jsonl", "--out", "{W}/c2"], setup=write("d.jsonl", '{"text": "a b"}\n{oops\n')),
        Case("data-corpus-jsonl-no-field", "corrupt input",
             ["corpus", "--jsonl", "{W}/d.jsonl", "--out", "{W}/c2"], setup=write("d.jsonl", '{"body": "a b"}\n')),
        Case("data-corpus-out-is-file", "output path", [*c, "--out", "{W}/text.txt"], match="not a folder"),
        Case("data-corpus-other-inputs", "overwrite policy", [*c, "--seq-len", "8", "--out", "{W}/corpus"],
             match="made from other inputs"),
        Case("data-corpus-other-inputs-force", "overwrite policy",
             [*c, "--seq-len", "8", "--out", "{W}/corpus", "--force"], expect="ok", may_change=["corpus/"]),
        Case("data-corpus-same-inputs-reuse", "overwrite policy", [*c, "--seq-len", "12", "--out", "{W}/c2"],
             expect="ok", setup=cli(*c, "--seq-len", "12", "--out", "{W}/c2")),
        Case("data-corpus-new-out", "correct request", [*c, "--seq-len", "10", "--out", "{W}/c2"], expect="ok"),
        Case("data-corpus-concurrent", "concurrent writers", [*c, "--force", "--out", "{W}/corpus"],
             run=holding(CORPUS), match="is being written by process", ci=False),
        Case("data-corpus-stale-lock", "stale lock", [*c, "--seq-len", "12", "--force", "--out", "{W}/corpus"],
             setup=dead_lock(CORPUS), expect="ok", may_change=["corpus/"]),
        Case("data-corpus-stale-build", "temp-file cleanup", [*c, "--seq-len", "9", "--force", "--out", "{W}/corpus"],
             setup=write(".corpus.build-x1/raw.bin", b"\0" * 4096), expect="ok",
             may_change=["corpus/", ".corpus.build-x1/"], check=gone(".corpus.build-*")),
        Case("data-corpus-disk-full", "disk full", [*c, "--out", "{W}/c3"], run=fsize_limited(1000),
             match="file-size limit", ci=False),
    ]


def _store_cases() -> list[Case]:
    cj = f"{CORPUS}/corpus.json"
    b2 = [*STATS, "--out", "{W}/b2"]
    reuse = [*STATS, "--out", "{W}/basis"]
    cases = [
        Case("data-store-tokens-edited", "stale store", b2, setup=swap_token_rows, match="changed after it was written"),
        Case("data-store-tokens-edited-stale-basis", "stale store", reuse, setup=swap_token_rows,
             match="changed after it was written"),
        Case("data-store-tokens-touched", "stale store", reuse, setup=touch(f"{CORPUS}/tokens.npy"), expect="ok"),
        Case("data-store-tokens-truncated", "corrupt input", b2, setup=truncate(f"{CORPUS}/tokens.npy", 200)),
        Case("data-store-tokens-missing", "missing input", b2, setup=remove(f"{CORPUS}/tokens.npy"), match="missing"),
        Case("data-store-tokens-pickle", "corrupt input", b2, setup=pickle_at(f"{CORPUS}/tokens.npy")),
        Case("data-store-json-missing", "missing input", b2, setup=remove(cj)),
        Case("data-store-json-not-json", "corrupt input", b2, setup=write(cj, "{not json")),
        Case("data-store-json-list", "tampered JSON", b2, setup=write(cj, "[1, 2]"), match="not a JSON object"),
        Case("data-store-content-hash-edited", "tampered JSON", reuse, setup=edit_json(cj, content_hash="0" * 16),
             match="made from other inputs"),
        Case("data-store-files-malformed", "tampered JSON", b2, setup=edit_json(cj, files={"tokens.npy": 5}),
             match="malformed"),
        Case("data-store-swapped-store", "stale store", b2,
             setup=both(write("t2.txt", "a b c d e f g h i j k l m n o p q\n\n" * 40),
                        cli("corpus", "--text", "{W}/t2.txt", "--seq-len", "12", "--out", "{W}/c9"),
                        lambda ws: shutil.copy(ws / "c9" / "tokens.npy", ws / CORPUS / "tokens.npy"))),
    ]
    fields: list[tuple[str, Any, str]] = [
        ("seq_len", "abc", "'seq_len' must be"), ("seq_len", None, "'seq_len' is missing"),
        ("vocab", 5, "'vocab' must be"), ("vocab", "abcde", "'vocab' must be"),
        ("content_hash", DELETE, "'content_hash' is missing"), ("n_sequences", "many", "'n_sequences' must be"),
        ("V", 31, "field 'V' is 31"), ("vocab", lambda v: v[::-1], "'vocab' was changed"),
        ("vocab", lambda v: [v[0], *v[:-1]], "twice"), ("shards", {"tokens": "tokens.npy"}, "shards wrongly"),
        ("n_sequences", 7, "'n_sequences' is 7"), ("seq_len", 11, "shape"),
    ]
    for i, (f, v, words) in enumerate(fields):
        for cmd, argv in (("stats", b2),):
            cases.append(Case(f"data-store-field-{f}-{i}-{cmd}", "tampered JSON", argv,
                              setup=edit_json(cj, **{f: v}), match=words))
    cases.append(Case("data-store-vocab-string-corpus-reuse", "tampered JSON",
                      ["corpus", "--text", "{W}/text.txt", "--seq-len", "12", "--out", "{W}/c2"],
                      setup=both(cli("corpus", "--text", "{W}/text.txt", "--seq-len", "12", "--out", "{W}/c2"),
                                 edit_json("c2/corpus.json", vocab="abc")),
                      expect="ok", may_change=["c2/"]))  # a broken store of the same inputs is rebuilt, with a note
    return cases


def _basis_cases() -> list[Case]:
    bj = f"{BASIS}/basis.json"
    bt = f"{BASIS}/basis.safetensors"
    assoc = ["associations", "--stats", "{W}/basis", "the"]
    explore = ["explore", "--stats", "{W}/basis", "--out", "{W}/x.html"]
    return [
        Case("data-basis-nan-predict", "NaN tensors", [*PREDICT, "--out", "{W}/p.safetensors"],
             setup=nan_basis(keep_record=True), match="changed after it was written"),
        Case("data-basis-nan-norecord-predict", "NaN tensors", [*PREDICT, "--out", "{W}/p.safetensors"],
             setup=nan_basis(keep_record=False), match="NaN or infinite"),
        Case("data-basis-nan-associations", "NaN tensors", assoc, setup=nan_basis(keep_record=True)),
        Case("data-basis-nan-norecord-associations", "NaN tensors", assoc, setup=nan_basis(keep_record=False),
             match="NaN or infinite"),
        Case("data-basis-nan-explore", "NaN tensors", explore, setup=nan_basis(keep_record=False),
             match="NaN or infinite"),
        Case("data-basis-nan-stats-not-reused", "NaN tensors", [*STATS, "--out", "{W}/basis"],
             setup=nan_basis(keep_record=True), expect="ok", may_change=["basis/"], check=finite_basis),
        Case("data-basis-vocab-reversed", "tampered JSON", assoc,
             setup=edit_json(bj, vocab=lambda v: v[::-1]), match="differs from the vocabulary"),
        Case("data-basis-vocab-string", "tampered JSON", assoc, setup=edit_json(bj, vocab="x" * 30),
             match="field 'vocab'"),
        Case("data-basis-vocab-short", "tampered JSON", [*PREDICT, "--out", "{W}/p.safetensors"],
             setup=edit_json(bj, vocab=["a", "b"]), match="field 'vocab'"),
        Case("data-basis-V-string", "tampered JSON", [*PREDICT, "--out", "{W}/p.safetensors"],
             setup=edit_json(bj, V="30"), match="field 'V'"),
        Case("data-basis-N-changed", "tampered JSON", [*PREDICT, "--out", "{W}/p.safetensors"],
             setup=edit_json(bj, N=5), match="inconsistent"),
        Case("data-basis-json-list", "tampered JSON", explore, setup=write(bj, "[]")),
        Case("data-basis-json-truncated", "corrupt input", explore, setup=truncate(bj, 40)),
        Case("data-basis-json-missing", "missing input", assoc, setup=remove(bj)),
        Case("data-basis-tensors-missing", "missing input", assoc, setup=remove(bt), match="missing"),
        Case("data-basis-tensors-garbage", "corrupt input", [*PREDICT, "--out", "{W}/p.safetensors"],
             setup=write(bt, b"\x00garbage" * 50)),
        Case("data-basis-tensors-pickle", "corrupt input", assoc, setup=pickle_at(bt)),
        Case("data-basis-tensors-truncated", "corrupt input", [*STATS, "--out", "{W}/basis"],
             setup=truncate(bt, 1000), expect="ok", may_change=["basis/"], check=finite_basis),
        Case("data-basis-other-corpus", "overwrite policy", [*STATS, "--out", "{W}/basis"],
             setup=edit_json(bj, corpus_hash="f" * 16), match="made from other inputs"),
        Case("data-basis-tensors-touched", "stale store", assoc, setup=touch(bt), expect="ok", check=no_nan_output),
    ]


def _stats_cases() -> list[Case]:
    b2 = [*STATS, "--out", "{W}/b2"]
    return [
        Case("data-stats-out-is-file", "output path", [*STATS, "--out", "{W}/text.txt"], match="not a folder"),
        Case("data-stats-other-settings", "overwrite policy", [*STATS, "--out", "{W}/basis", "--dtype", "float32"],
             match="made from other inputs"),
        Case("data-stats-other-settings-force", "overwrite policy",
             [*STATS, "--out", "{W}/basis", "--dtype", "float32", "--force"], expect="ok", may_change=["basis/"]),
        Case("data-stats-same-inputs", "overwrite policy", [*STATS, "--out", "{W}/basis"], expect="ok"),
        Case("data-stats-top-k-0", "bad argument", [*b2, "--top-k", "0"]),
        Case("data-stats-top-k-neg", "bad argument", [*b2, "--top-k", "-3"]),
        Case("data-stats-shard-tokens-0", "bad argument", [*b2, "--shard-tokens", "0"]),
        Case("data-stats-device-bogus", "bad argument", [*b2, "--device", "tpu"]),
        Case("data-stats-dtype-bogus", "bad argument", [*b2, "--dtype", "float8"]),
        Case("data-stats-corpus-is-basis", "missing input", ["stats", "--corpus", "{W}/basis", "--out", "{W}/b2"]),
        Case("data-stats-corpus-empty-dir", "missing input", ["stats", "--corpus", "{W}/e", "--out", "{W}/b2"],
             setup=lambda ws: (ws / "e").mkdir()),
        Case("data-stats-memory-share-abc", "listed traceback", b2, env={"LEADINGTERMS_MAX_MEMORY_SHARE": "abc"},
             match="LEADINGTERMS_MAX_MEMORY_SHARE"),
        Case("data-stats-memory-share-0", "bad argument", b2, env={"LEADINGTERMS_MAX_MEMORY_SHARE": "0"},
             match="LEADINGTERMS_MAX_MEMORY_SHARE"),
        Case("data-stats-memory-share-nan", "bad argument", b2, env={"LEADINGTERMS_MAX_MEMORY_SHARE": "nan"},
             match="LEADINGTERMS_MAX_MEMORY_SHARE"),
        Case("data-stats-memory-tiny", "memory refusal", b2, env={"LEADINGTERMS_MAX_MEMORY_SHARE": "1e-12"},
             match="needs about"),
        Case("data-stats-stale-temp", "temp-file cleanup", [*STATS, "--out", "{W}/basis", "--force"],
             setup=write(f"{BASIS}/.basis.safetensors.abc123.tmp", b"\0" * 10000), expect="ok",
             may_change=["basis/"], check=gone(f"{BASIS}/.basis.safetensors.*.tmp")),
        Case("data-stats-concurrent", "concurrent writers", [*STATS, "--out", "{W}/basis", "--force"],
             run=holding(BASIS), match="is being written by process", ci=False),
        Case("data-stats-stale-lock", "stale lock", [*STATS, "--out", "{W}/basis", "--force"],
             setup=dead_lock(BASIS), expect="ok", may_change=["basis/"]),
        Case("data-stats-disk-full", "disk full", [*STATS, "--out", "{W}/b3"], run=fsize_limited(20_000),
             match="file-size limit", ci=False),
        Case("data-stats-disk-full-existing", "disk full", [*STATS, "--out", "{W}/basis", "--force"],
             run=fsize_limited(20_000), match="file-size limit", ci=False),
        Case("data-stats-new-out", "correct request", [*b2, "--extras"], expect="ok"),
    ]


def _predict_cases() -> list[Case]:
    out = ["--out", "{W}/p.safetensors"]
    base = PREDICT[:3]
    def p(*args: str) -> list[str]:
        given = dict(zip(args[::2], args[1::2], strict=True))
        kv = {"--steps": "3", "--lr": "0.1", "--layers": "1", **given}
        return [*base, *[x for item in kv.items() for x in item], *out]
    return [
        Case("data-predict-lr-1e80", "listed traceback", p("--lr", "1e80"), match="overflows"),
        Case("data-predict-lr-1e308-order2", "listed traceback", p("--lr", "1e308", "--order", "2"), match="overflows"),
        Case("data-predict-lr-1e200", "listed traceback", p("--lr", "1e200"), match="overflows"),
        Case("data-predict-steps-huge", "listed traceback", p("--steps", "10000000000000000", "--lr", "1e30",
                                                              "--order", "2"), match="overflows"),
        Case("data-predict-lr-nan", "bad argument", p("--lr", "nan")),
        Case("data-predict-lr-inf", "bad argument", p("--lr", "inf")),
        Case("data-predict-lr-neg", "bad argument", p("--lr", "-1")),
        Case("data-predict-lr-0", "bad argument", p("--lr", "0")),
        Case("data-predict-steps-0", "bad argument", p("--steps", "0")),
        Case("data-predict-layers-0", "bad argument", p("--layers", "0")),
        Case("data-predict-order-3", "bad argument", p("--order", "3")),
        Case("data-predict-layers-10000-memory", "memory refusal", p("--layers", "10000"),
             env={"LEADINGTERMS_MAX_MEMORY_SHARE": "0.0000001"}, match="predicting 10000 layers"),
        Case("data-predict-memory-share-abc", "listed traceback", p(), env={"LEADINGTERMS_MAX_MEMORY_SHARE": "abc"},
             match="LEADINGTERMS_MAX_MEMORY_SHARE"),
        Case("data-predict-out-is-dir", "output path", [*PREDICT, "--out", "{W}/basis"], match="is a directory"),
        Case("data-predict-out-is-its-basis", "output path", [*PREDICT, "--out", "{W}/basis/basis.safetensors",
                                                               "--force"], match="is the basis it is computed from"),
        Case("data-predict-foreign-file", "overwrite policy", [*PREDICT, "--out", "{W}/text.txt"],
             match="not a prediction file"),
        Case("data-predict-other-prediction", "overwrite policy", p("--layers", "2"),
             setup=cli(*PREDICT, *out), match="holds another prediction"),
        Case("data-predict-other-prediction-force", "overwrite policy", [*p("--layers", "2"), "--force"],
             setup=cli(*PREDICT, *out), expect="ok", may_change=["p.safetensors"]),
        Case("data-predict-same-inputs", "overwrite policy", p(), setup=cli(*PREDICT, *out), expect="ok",
             may_change=["p.safetensors"], check=finite_prediction("p.safetensors")),
        Case("data-predict-ok", "correct request", p("--order", "2", "--layers", "3"), expect="ok",
             check=finite_prediction("p.safetensors")),
        Case("data-predict-missing-stats", "missing input", ["predict", "--stats", "{W}/nope", *PREDICT[3:], *out]),
        Case("data-predict-concurrent", "concurrent writers", p(), setup=cli(*PREDICT, *out),
             run=holding("p.safetensors", folder=False), match="is being written by process", ci=False),
    ]


def _readout_cases() -> list[Case]:
    assoc = ["associations", "--stats", "{W}/basis"]
    explore = ["explore", "--stats", "{W}/basis"]
    return [
        Case("data-assoc-unknown-token", "bad argument", [*assoc, "zebra"], match="zebra"),
        Case("data-assoc-k-0", "bad argument", [*assoc, "--k", "0", "the"]),
        Case("data-assoc-missing-stats", "missing input", ["associations", "--stats", "{W}/nope", "the"]),
        Case("data-assoc-ok", "correct request", [*assoc, "the", "bird"], expect="ok", check=no_nan_output),
        Case("data-explore-not-html", "output path", [*explore, "--out", "{W}/x.txt"]),
        Case("data-explore-existing", "overwrite policy", [*explore, "--out", "{W}/x.html"],
             setup=write("x.html", "mine"), match="--force"),
        Case("data-explore-k-0", "bad argument", [*explore, "--k", "0", "--out", "{W}/x.html"]),
        Case("data-explore-out-is-dir", "output path", [*explore, "--out", "{W}/d.html", "--force"],
             match="is a directory", setup=lambda ws: (ws / "d.html").mkdir()),
        Case("data-explore-ok", "correct request", [*explore, "--out", "{W}/x.html"], expect="ok"),
    ]


def _suite_cases() -> list[Case]:
    sj = f"{SUITE}/suite.json"
    return [
        Case("data-suite-vocab-size-5", "silently wrong input", [*SUITE_ARGS, "--vocab-size", "5", "--out", "{W}/s2"],
             match="--vocab-size 5 is smaller"),
        Case("data-suite-lr-nan", "listed traceback", [*SUITE_ARGS, "--lr", "nan", "--out", "{W}/s2"], match="--lr"),
        Case("data-suite-steps-0", "bad argument", [*SUITE_ARGS, "--steps", "0", "--out", "{W}/s2"]),
        Case("data-suite-heads-mismatch", "bad argument", [*SUITE_ARGS, "--heads", "3", "--out", "{W}/s2"]),
        Case("data-suite-batch-huge", "bad argument", [*SUITE_ARGS, "--batch-size", "100000", "--out", "{W}/s2"],
             match="--batch-size"),
        Case("data-suite-out-is-file", "output path", [*SUITE_ARGS, "--out", "{W}/text.txt"], match="not a folder"),
        Case("data-suite-other-settings", "overwrite policy", [*SUITE_ARGS, "--steps", "2", "--out", "{W}/suite"],
             match="other settings"),
        Case("data-suite-foreign-folder", "overwrite policy", [*SUITE_ARGS, "--steps", "2", "--out", "{W}/corpus"],
             match="not a pretrain-small suite"),
        Case("data-suite-fewer-steps-force", "stale suite members",
             [*SUITE_ARGS, "--steps", "2", "--out", "{W}/suite", "--force"], expect="ok", may_change=["suite/"],
             check=suite_is(["step0", "step1", "step2"]), ci=False),
        Case("data-suite-concurrent", "concurrent writers", [*SUITE_ARGS, "--steps", "2", "--out", "{W}/suite",
                                                             "--force"],
             run=holding(SUITE), match="is being written by process", ci=False),
        Case("data-suite-disk-full", "disk full", [*SUITE_ARGS, "--steps", "2", "--out", "{W}/s3"],
             run=fsize_limited(10_000), match="file-size limit", ci=False),
        Case("data-compare-stale-member", "stale suite members", COMPARE,
             setup=lambda ws: shutil.copytree(ws / SUITE / "step4", ws / SUITE / "step8"), expect="ok",
             check=compared(["step0", "step1", "step2", "step4"]), ci=False),
        Case("data-compare-listed-member-missing", "stale suite members", COMPARE, setup=remove(f"{SUITE}/step2"),
             match="lists step2, which is missing"),
        Case("data-compare-suite-json-corrupt", "tampered JSON", COMPARE, setup=write(sj, "{oops")),
        Case("data-compare-suite-json-members", "tampered JSON", COMPARE,
             setup=edit_json(sj, checkpoints="step0"), match="field 'checkpoints'"),
        Case("data-compare-foreign-out", "overwrite policy", [*COMPARE[:-2], "{W}/corpus", "--no-plots"],
             match="is not a comparison"),
        Case("data-compare-out-is-file", "output path", [*COMPARE[:-2], "{W}/text.txt", "--no-plots"],
             match="not a folder"),
        Case("data-compare-other-settings", "overwrite policy", [*COMPARE[:-6], "6", *COMPARE[-5:]],
             setup=cli(*COMPARE), match="other settings", ci=False),
        Case("data-compare-rerun-drops-stale", "stale suite members", COMPARE,
             setup=both(cli(*COMPARE), write("cmp/step16/similarity.json", "{}")), expect="ok",
             may_change=["cmp/"], check=gone("cmp/step16"), ci=False),
        Case("data-compare-top-k-0", "bad argument", [*COMPARE[:-5], "--top-k", "0", *COMPARE[-5:]]),
        Case("data-compare-local-hub-name", "bad argument",
             ["compare-pretrained", "--model", "org/name", "--revisions", "local", "--text", "{W}/text.txt",
              "--top-k", "8", "--out", "{W}/cmp"]),
        Case("data-compare-remote-code", "bad argument",
             ["compare-pretrained", "--model", "{W}/suite", "--revision", "step9", "--text", "{W}/text.txt",
              "--top-k", "8", "--out", "{W}/cmp"], match="step9"),
    ]


def cases() -> list[Case]:
    out = [*_corpus_cases(), *_store_cases(), *_basis_cases(), *_stats_cases(), *_predict_cases(),
           *_readout_cases(), *_suite_cases()]
    assert all(c.name.startswith("data-") for c in out)
    return out
