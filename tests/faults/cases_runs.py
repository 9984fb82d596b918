"""Campaign cases of the run side (issue 10): ``train`` (fresh, ``--resume``, ``--force``), ``intervene``,
``report``, ``inspect``, ``compare``, ``sweep``, ``demo`` -- every fault class of the issue in that area.

The workspace's run (``run/``: 12 steps, logged every 4, checkpoints 0, 1, 4, 12, an intervention at
step 12) records absolute paths of the base workspace's corpus and basis; cases that change the corpus
first point the run at the copy's (:func:`_relocate`), as a user who moved the folders would.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faults.harness import Case, run_command

W = "{W}"
RUN = "run"
CK = "run/checkpoints"
LATEST = 12
RESUME = ["train", "--out", f"{W}/run", "--resume", "--steps", "16"]
INTERVENE = ["intervene", "--run", f"{W}/run", "--max-sequences", "8"]
REPORT = ["report", "--run", f"{W}/run", "--out", f"{W}/r.html"]
INSPECT = ["inspect", "--run", f"{W}/run", "--text", "the bird flew", "--no-plots", "--out", f"{W}/lens"]
COMPARE = ["compare", f"{W}/run", "--out", f"{W}/cmp"]
CONSUMERS = {"intervene": INTERVENE, "report": REPORT, "inspect": INSPECT, "compare": COMPARE}
TRAIN_NEW = ["train", "--corpus", f"{W}/corpus", "--stats", f"{W}/basis", "--layers", "1", "--lr", "0.5",
             "--batch-size", "8", "--steps", "12", "--log-every", "4"]
RESUME_MAY_CHANGE = ("run/*",)


# ----------------------------------------------------------------------------------------------- setups

def _json_edit(rel: str, fn: Callable[[Any], Any]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        p = ws / rel
        p.write_text(json.dumps(fn(json.loads(p.read_text()))))
    return setup


def _config_edit(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def edit(d: dict[str, Any]) -> Any:
        return fn(d)
    return _json_edit("run/config.json", edit)


def _set(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    d[key] = value
    return d


def _set_cfg(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    d["config"][key] = value
    return d


def _write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def _unlink(*rels: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        for rel in rels:
            (ws / rel).unlink()
    return setup


def _chain(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        for s in setups:
            s(ws)
    return setup


def _ckpt(step: int, ext: str) -> str:
    return f"{CK}/step_{step:06d}.{ext}"


def _relocate(ws: Path) -> None:
    """Point the copy's run at the copy's corpus and basis (the base workspace records its own paths)."""
    for rel in ("run/config.json",):
        p = ws / rel
        d = json.loads(p.read_text())
        d["config"]["corpus"], d["config"]["stats"], d["corpus"] = str(ws / "corpus"), str(ws / "basis"), \
            str(ws / "corpus")
        p.write_text(json.dumps(d, indent=2))


def _cli(ws: Path, *argv: str) -> None:
    proc = run_command(ws, list(argv), {})
    if proc.returncode != 0:
        raise RuntimeError(f"setup: leadingterms {' '.join(argv)} failed: {proc.stderr[-500:]}")


def _rebuild_store(ws: Path) -> None:
    """The corpus store rebuilt from other text with the same vocabulary and sizes (sentences reordered)."""
    _relocate(ws)
    docs = (ws / "text.txt").read_text().split("\n\n")
    (ws / "other.txt").write_text("\n\n".join(reversed(docs)))
    _cli(ws, "corpus", "--text", str(ws / "other.txt"), "--seq-len", "12", "--out", str(ws / "corpus"), "--force")


def _other_run(ws: Path, seed: int = 0) -> None:
    """A second run trained like run/ (same config when seed = 0): only its run id differs."""
    _cli(ws, "train", "--corpus", str(ws / "corpus"), "--stats", str(ws / "basis"), "--layers", "1", "--lr", "0.5",
         "--batch-size", "8", "--steps", "12", "--log-every", "4", "--seed", str(seed), "--out", str(ws / "other"))


def _swap_in(step: int, exts: tuple[str, ...], seed: int = 0) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        _other_run(ws, seed)
        for ext in exts:
            shutil.copy2(ws / "other" / "checkpoints" / f"step_{step:06d}.{ext}", ws / _ckpt(step, ext))
    return setup


def _tamper_tensor(step: int, fn: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    """Rewrite a checkpoint's tensor file with the same header metadata but tensors changed by ``fn``."""
    def setup(ws: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import save_file

        p = ws / _ckpt(step, "safetensors")
        with safe_open(str(p), framework="pt") as f:  # type: ignore[no-untyped-call]
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        fn(tensors)
        save_file(tensors, str(p), metadata=meta)
    return setup


def _nan(key: str = "model.W_O", value: float = float("nan")) -> Callable[[dict[str, Any]], None]:
    def fn(t: dict[str, Any]) -> None:
        t[key] = t[key].clone()
        t[key].view(-1)[0] = value
    return fn


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def fn(t: dict[str, Any]) -> None:
        del t[key]
    return fn


def _truncate(rel: str, keep: float = 0.5) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        p = ws / rel
        b = p.read_bytes()
        p.write_bytes(b[: int(len(b) * keep)])
    return setup


def _metrics_lines(fn: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        p = ws / "run" / "metrics.jsonl"
        p.write_text("".join(line + "\n" for line in fn(p.read_text().splitlines())))
    return setup


def _row_edit(i: int, key: str, value: Any) -> Callable[[Path], None]:
    def fn(lines: list[str]) -> list[str]:
        row = json.loads(lines[i])
        row[key] = value
        return [*lines[:i], json.dumps(row), *lines[i + 1:]]
    return _metrics_lines(fn)


# ------------------------------------------------------------------------------------------------ runs

def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "LEADINGTERMS_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", **(extra or {})}


def _cmd(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "leadingterms", *argv]


def _with_fsize_limit(limit: int) -> Callable[[Path, list[str], dict[str, str]], subprocess.CompletedProcess[str]]:
    """Run the command with RLIMIT_FSIZE = ``limit`` bytes (``ulimit -f``): a full disk mid-write."""
    def run(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        def pre() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        proc = subprocess.run(_cmd(argv), cwd=ws, env=_env(env), capture_output=True, text=True, timeout=300,
                              preexec_fn=pre)
        left = [str(p.relative_to(ws)) for p in ws.rglob("*.tmp")]
        if left and proc.returncode == 2:
            return subprocess.CompletedProcess(argv, 0, proc.stdout, f"temp files left behind: {left}")
        return proc
    return run


def _while_locked(target: str, folder: bool = True
                  ) -> Callable[[Path, list[str], dict[str, str]], subprocess.CompletedProcess[str]]:
    """Run the command while another process holds ``target``'s output lock (a concurrent writer)."""
    def run(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        code = ("import sys, time\nfrom leadingterms.locks import output_lock\n"
                f"with output_lock({str(ws / target)!r}, folder={folder}, what='run'):\n"
                "    print('locked', flush=True)\n    time.sleep(60)\n")
        holder = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None
            holder.stdout.readline()
            return subprocess.run(_cmd(argv), cwd=ws, env=_env(env), capture_output=True, text=True, timeout=300)
        finally:
            holder.kill()
            holder.wait()
    return run


def _two_trains(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A long ``train --out two`` started first; the command (a second train on the same folder) meanwhile."""
    first_argv = [a.replace(W, str(ws)) for a in TRAIN_NEW] + ["--out", str(ws / "two")]
    first_argv[first_argv.index("--steps") + 1] = "100000"
    first = subprocess.Popen(_cmd(first_argv), cwd=ws, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        lock = ws / "two" / ".leadingterms.lock"
        t0 = time.time()
        while time.time() - t0 < 60 and not (lock.is_file() and lock.stat().st_size > 0):
            time.sleep(0.1)
        return subprocess.run(_cmd(argv), cwd=ws, env=_env(env), capture_output=True, text=True, timeout=300)
    finally:
        first.kill()
        first.wait()


def _delete_metrics_mid_run(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start a long train, delete its metrics.jsonl once rows are there, and wait for it to stop."""
    proc = subprocess.Popen(_cmd(argv), cwd=ws, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    m = ws / "live" / "metrics.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and not (m.is_file() and m.read_text().count("\n") >= 2):
        time.sleep(0.05)
    m.unlink(missing_ok=True)
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode == 2 and (ws / "live" / "summary.json").exists():
        return subprocess.CompletedProcess(argv, 0, out, "summary.json written from a partial log")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _kill_then_resume(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Kill a train after some checkpoints, then run the command (the resume)."""
    first_argv = [a.replace(W, str(ws)) for a in TRAIN_NEW] + ["--out", str(ws / "k"), "--checkpoint-every", "4"]
    first_argv[first_argv.index("--steps") + 1] = "400"
    first = subprocess.Popen(_cmd(first_argv), cwd=ws, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    ck = ws / "k" / "checkpoints"
    t0 = time.time()
    while time.time() - t0 < 120 and len(list(ck.glob("step_*.json")) if ck.is_dir() else []) < 5:
        time.sleep(0.05)
    first.kill()
    first.wait()
    return subprocess.run(_cmd(argv), cwd=ws, env=_env(env), capture_output=True, text=True, timeout=300)


def _refuse_and(check: Callable[[Path], str | None]
                ) -> Callable[[Path, list[str], dict[str, str]], subprocess.CompletedProcess[str]]:
    """The command in a subprocess; a refusal that still left ``check``'s problem is reported as wrong."""
    def run(ws: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        proc = run_command(ws, argv, env)
        problem = check(ws) if proc.returncode == 2 else None
        return subprocess.CompletedProcess(argv, 0, proc.stdout, problem) if problem else proc
    return run


def _absent(rel: str) -> Callable[[Path], str | None]:
    return lambda ws: f"{rel} was created by a refused command" if (ws / rel).exists() else None


# ---------------------------------------------------------------------------------------------- checks

def _resumed_ok(ws: Path, proc: subprocess.CompletedProcess[str]) -> str | None:
    rows = [json.loads(x) for x in (ws / "run" / "metrics.jsonl").read_text().splitlines()]
    if [r["step"] for r in rows] != [0, 4, 8, 12, 16]:
        return f"metrics steps {[r['step'] for r in rows]}"
    summary = json.loads((ws / "run" / "summary.json").read_text())
    return None if summary["steps"] == 16 else "summary not at step 16"


def _no_temps(ws: Path, proc: subprocess.CompletedProcess[str]) -> str | None:
    left = [str(p) for p in ws.rglob("*.tmp")]
    return f"temp files left: {left}" if left else _resumed_ok(ws, proc)


def _killed_resumed_ok(ws: Path, proc: subprocess.CompletedProcess[str]) -> str | None:
    rows = [json.loads(x)["step"] for x in (ws / "k" / "metrics.jsonl").read_text().splitlines()]
    if rows != list(range(0, 401, 4)):
        return f"metrics steps after kill + resume: {rows[:5]} ... {rows[-3:]} ({len(rows)} rows)"
    return None


# ----------------------------------------------------------------------------------------------- cases

def cases() -> list[Case]:  # noqa: PLR0915 - one list, read top to bottom
    c: list[Case] = []

    # 1. stale inputs: the run's corpus rebuilt from other text (same V and T)
    for name, argv in CONSUMERS.items():
        c.append(Case(f"run-stale-store-{name}", "stale store", argv, match="hash", setup=_rebuild_store,
                      ci=False))
    c.append(Case("run-stale-store-resume", "stale store", RESUME, match="hash", setup=_rebuild_store, ci=False))
    c.append(Case("run-stale-basis-report", "stale store", REPORT, match="corpus",
                  setup=_chain(_relocate, _json_edit("basis/basis.json",
                                                     lambda d: _set(d, "corpus_hash", "0" * 32)))))
    c.append(Case("run-stale-basis-intervene", "stale store", INTERVENE, match="corpus",
                  setup=_chain(_relocate, _json_edit("basis/basis.json",
                                                     lambda d: _set(d, "corpus_hash", "0" * 32)))))
    c.append(Case("run-moved-store-report-ok", "stale store", REPORT, expect="ok",
                  setup=_chain(_relocate, lambda ws: shutil.rmtree(ws / "corpus")), may_change=("r.html", "run/*")))

    # 2. checkpoints not tied to their run
    c.append(Case("run-swapped-tensor-file-intervene", "swapped checkpoint", INTERVENE, match="does not match",
                  setup=lambda ws: shutil.copy2(ws / _ckpt(4, "safetensors"), ws / _ckpt(12, "safetensors"))))
    c.append(Case("run-swapped-tensor-file-report", "swapped checkpoint", REPORT, match="does not match",
                  setup=lambda ws: shutil.copy2(ws / _ckpt(4, "safetensors"), ws / _ckpt(12, "safetensors"))))
    c.append(Case("run-swapped-tensor-file-inspect", "swapped checkpoint", INSPECT, match="does not match",
                  setup=lambda ws: shutil.copy2(ws / _ckpt(4, "safetensors"), ws / _ckpt(12, "safetensors"))))
    c.append(Case("run-swapped-json-resume", "swapped checkpoint", RESUME, match="does not match",
                  setup=lambda ws: shutil.copy2(ws / _ckpt(4, "json"), ws / _ckpt(12, "json"))))
    for name, argv in (("intervene", INTERVENE), ("report", REPORT), ("resume", RESUME), ("inspect", INSPECT)):
        c.append(Case(f"run-foreign-checkpoint-{name}", "swapped checkpoint", argv, match="another run",
                      setup=_swap_in(LATEST, ("safetensors", "json")), ci=False))
    c.append(Case("run-foreign-tensor-only-intervene", "swapped checkpoint", INTERVENE, match="does not match",
                  setup=_swap_in(LATEST, ("safetensors",), seed=3), ci=False))
    c.append(Case("run-foreign-intervention-report", "swapped checkpoint", REPORT, match="another run",
                  setup=_chain(_other_run, lambda ws: _cli(ws, "intervene", "--run", str(ws / "other"),
                                                           "--max-sequences", "8"),
                               lambda ws: shutil.copy2(ws / "other/intervention.json", ws / "run/intervention.json")),
                  ci=False))
    c.append(Case("run-stale-intervention-after-force", "swapped checkpoint", REPORT, expect="ok",
                  setup=lambda ws: _cli(ws, *[a.replace(W, str(ws)) for a in TRAIN_NEW], "--seed", "2", "--out",
                                        str(ws / "run"), "--force"),
                  may_change=("r.html", "run/*"),
                  check=lambda ws, p: "stale intervention.json kept" if (ws / "run/intervention.json").exists()
                  else None, ci=False))

    # 3. one writer per output
    c.append(Case("run-locked-resume", "concurrent writers", RESUME, match="being written by",
                  run=_while_locked("run"), ci=False))
    c.append(Case("run-locked-force", "concurrent writers", [*TRAIN_NEW, "--out", f"{W}/run", "--force"],
                  match="being written by", run=_while_locked("run"), ci=False))
    c.append(Case("run-two-trains-same-out", "concurrent writers", [*TRAIN_NEW, "--out", f"{W}/two"],
                  match="being written by", run=_two_trains, ci=False))
    c.append(Case("run-two-trains-second-resume", "concurrent writers",
                  ["train", "--out", f"{W}/two", "--resume", "--steps", "20"], match="being written by",
                  run=_two_trains, ci=False))
    c.append(Case("run-locked-compare-out", "concurrent writers", COMPARE, match="being written by",
                  run=_while_locked("cmp"), ci=False))
    c.append(Case("run-compare-into-the-run", "overwrite policy", [*COMPARE[:-1], f"{W}/run"],
                  match="is not a comparison; pass --force"))
    c.append(Case("run-report-step-0", "bad argument", [*REPORT, "--step", "0"], match="--step 0 is the initialisation"))
    c.append(Case("run-locked-intervention", "concurrent writers", INTERVENE, match="being written by",
                  run=_while_locked("run/intervention.json", folder=False), ci=False))
    c.append(Case("run-locked-report", "concurrent writers", REPORT, match="being written by",
                  run=_while_locked("r.html", folder=False), ci=False))
    c.append(Case("run-locked-inspect-out", "concurrent writers", INSPECT, match="being written by",
                  run=_while_locked("lens"), ci=False))
    c.append(Case("run-refused-report-keeps-figures", "swapped checkpoint", REPORT, match="another run",
                  setup=_chain(lambda ws: _cli(ws, *[a.replace(W, str(ws)) for a in REPORT]),
                               _json_edit("run/intervention.json",
                                          lambda d: _set(d, "provenance", {**d["provenance"], "run_id": "x"}))),
                  ci=False))
    c.append(Case("run-dead-lock-holder-ok", "concurrent writers", RESUME, expect="ok", check=_resumed_ok,
                  setup=_write("run/.leadingterms.lock", json.dumps({"pid": 999999, "command": "x", "time": 0})),
                  may_change=RESUME_MAY_CHANGE))

    # 4. metrics.jsonl deleted, cut or mixed
    for name, argv in (("report", REPORT), ("intervene", INTERVENE), ("compare", COMPARE), ("resume", RESUME)):
        c.append(Case(f"run-deleted-metrics-{name}", "deleted metrics", argv, match="lacks the rows",
                      setup=_unlink("run/metrics.jsonl")))
    c.append(Case("run-cut-metrics-report", "deleted metrics", REPORT, match="lacks the rows",
                  setup=_metrics_lines(lambda ls: ls[:-1])))
    c.append(Case("run-middle-row-gone-report", "deleted metrics", REPORT, match="lacks the rows",
                  setup=_metrics_lines(lambda ls: [ls[0], *ls[2:]])))
    c.append(Case("run-middle-row-gone-resume", "deleted metrics", RESUME, match="lacks the rows",
                  setup=_metrics_lines(lambda ls: [ls[0], *ls[2:]])))
    c.append(Case("run-empty-metrics-report", "deleted metrics", REPORT, match="lacks the rows",
                  setup=_write("run/metrics.jsonl", "")))
    c.append(Case("run-interleaved-metrics-report", "deleted metrics", REPORT, match="after step",
                  setup=_metrics_lines(lambda ls: [ls[0], ls[2], ls[1], ls[3]])))
    c.append(Case("run-duplicated-rows-report", "deleted metrics", REPORT, match="after step",
                  setup=_metrics_lines(lambda ls: ls + ls)))
    c.append(Case("run-torn-last-row-resume-ok", "deleted metrics", RESUME, expect="ok", check=_resumed_ok,
                  setup=_metrics_lines(lambda ls: [*ls, ls[-1][:20]]), may_change=RESUME_MAY_CHANGE))
    c.append(Case("run-metrics-deleted-mid-run", "deleted metrics",
                  [*TRAIN_NEW[:TRAIN_NEW.index("--steps")], "--steps", "3000", "--log-every", "1", "--out",
                   f"{W}/live", "--track", "none"],
                  match="deleted or changed", run=_delete_metrics_mid_run, ci=False))

    # 5. NaN / inf tensors
    for name, argv in (("intervene", INTERVENE), ("report", REPORT), ("inspect", INSPECT), ("resume", RESUME),
                       ("compare", COMPARE)):
        c.append(Case(f"run-nan-checkpoint-{name}", "NaN tensors", argv, match="NaN" if name != "compare" else None,
                      setup=_tamper_tensor(LATEST, _nan())))
    c.append(Case("run-inf-checkpoint-resume", "NaN tensors", RESUME, match="NaN",
                  setup=_tamper_tensor(LATEST, _nan("model.layers.0.W", float("inf")))))
    c.append(Case("run-nan-shadow-resume", "NaN tensors", RESUME, match="NaN",
                  setup=_tamper_tensor(LATEST, _nan("shadow.W"))))
    c.append(Case("run-nan-early-checkpoint-intervene", "NaN tensors", [*INTERVENE, "--step", "4"], match="NaN",
                  setup=_tamper_tensor(4, _nan())))

    # 6. tampered metadata: config.json, checkpoint JSON, metrics rows, intervention.json
    bad_configs: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
        ("config-empty", lambda d: _set(d, "config", {}), "config"),
        ("config-number", lambda d: _set(d, "config", 5), "config"),
        ("lr-fast", lambda d: _set_cfg(d, "lr", "fast"), "lr"),
        ("lr-string-number", lambda d: _set_cfg(d, "lr", "0.5"), "lr"),
        ("lr-negative", lambda d: _set_cfg(d, "lr", -0.5), "lr"),
        ("layers-two", lambda d: _set_cfg(d, "layers", "two"), "layers"),
        ("layers-zero", lambda d: _set_cfg(d, "layers", 0), "layers"),
        ("track-string", lambda d: _set_cfg(d, "track", "shadow"), "track"),
        ("track-unknown", lambda d: _set_cfg(d, "track", ["magic"]), "track"),
        ("log-every-null", lambda d: _set_cfg(d, "log_every", None), "log_every"),
        ("corpus-hash-missing", lambda d: {k: v for k, v in d.items() if k != "corpus_hash"}, "corpus_hash"),
        ("V-many", lambda d: _set(d, "V", "many"), "'V'"),
        ("total-steps-null", lambda d: _set(d, "total_steps", None), "total_steps"),
        ("run-id-number", lambda d: _set(d, "run_id", 5), "run_id"),
        ("list", lambda d: [d], "JSON object"),
    ]
    for name, fn, match in bad_configs:
        for cmd, argv in (("report", REPORT), ("resume", RESUME)):
            c.append(Case(f"run-config-{name}-{cmd}", "tampered JSON", argv, match=match, setup=_config_edit(fn)))
    c.append(Case("run-config-not-json-intervene", "tampered JSON", INTERVENE, match="corrupt",
                  setup=_write("run/config.json", "{not json")))
    c.append(Case("run-config-empty-file-inspect", "tampered JSON", INSPECT, match="corrupt",
                  setup=_write("run/config.json", "")))
    c.append(Case("run-config-missing-report", "tampered JSON", REPORT, match="not found",
                  setup=_unlink("run/config.json")))
    for i, key, value in ((1, "step", "four"), (2, "closed_form", "good"), (1, "loss", "low"),
                          (2, "closed_form", {"W_O": {"cos": "x", "rel": 0.1}}), (0, "layer_spread", 3)):
        c.append(Case(f"run-metrics-row{i}-{key}-{type(value).__name__}-report", "tampered JSON", REPORT,
                      match=key, setup=_row_edit(i, key, value)))
    c.append(Case("run-metrics-row-list-report", "tampered JSON", REPORT, match="JSON object",
                  setup=_metrics_lines(lambda ls: [ls[0], "[1, 2]", *ls[1:]])))
    c.append(Case("run-metrics-middle-garbage-report", "tampered JSON", REPORT, match="not JSON",
                  setup=_metrics_lines(lambda ls: [ls[0], "{garbage", *ls[1:]])))
    c.append(Case("run-checkpoint-json-step-report", "tampered JSON", REPORT, match="does not match",
                  setup=_json_edit(_ckpt(LATEST, "json"), lambda d: _set(d, "step", 4))))
    c.append(Case("run-checkpoint-json-list-intervene", "tampered JSON", INTERVENE, match="not a JSON object",
                  setup=_json_edit(_ckpt(LATEST, "json"), lambda d: [d])))
    c.append(Case("run-intervention-rows-string-report", "tampered JSON", REPORT, match="rows",
                  setup=_json_edit("run/intervention.json", lambda d: _set(d, "rows", "many"))))
    c.append(Case("run-intervention-loss-string-compare", "tampered JSON", COMPARE, match="original_loss",
                  setup=_json_edit("run/intervention.json", lambda d: _set(d, "original_loss", "low"))))
    c.append(Case("run-intervention-no-provenance-report", "tampered JSON", REPORT, match="provenance",
                  setup=_json_edit("run/intervention.json",
                                   lambda d: {k: v for k, v in d.items() if k != "provenance"})))
    c.append(Case("run-summary-list-report", "tampered JSON", REPORT, match="summary",
                  setup=_write("run/summary.json", "[]")))

    # 7. a refused resume leaves every file byte-identical (the five cases and more)
    refused: list[tuple[str, Callable[[Path], None], str]] = [
        ("corrupt", _write(_ckpt(LATEST, "safetensors"), b"\x00garbage" * 50), "corrupt"),
        ("swapped", lambda ws: shutil.copy2(ws / _ckpt(1, "safetensors"), ws / _ckpt(LATEST, "safetensors")),
         "does not match"),
        ("truncated", _truncate(_ckpt(LATEST, "safetensors")), "corrupt"),
        ("bad-json", _write(_ckpt(LATEST, "json"), "{\"step\": 12,"), "corrupt"),
        ("pickle", _write(_ckpt(LATEST, "safetensors"), pickle.dumps({"model.W_O": [1.0]})), "corrupt"),
        ("empty-tensor-file", _write(_ckpt(LATEST, "safetensors"), b""), "corrupt"),
        ("missing-weight", _tamper_tensor(LATEST, _drop("model.W_O")), "lacks weight"),
        ("data-order", _chain(_json_edit(_ckpt(LATEST, "json"), lambda d: _set(d, "data_order", {"seed": 9}))),
         "does not match"),
        ("checkpoints-folder-file", lambda ws: (shutil.rmtree(ws / CK), (ws / CK).write_text("x")), "complete checkpoint"),
        ("no-checkpoints", lambda ws: shutil.rmtree(ws / CK), "complete checkpoint"),
    ]
    for name, setup, match in refused:
        c.append(Case(f"run-refused-resume-{name}", "refused resume", RESUME, match=match, setup=setup))
    c.append(Case("run-refused-resume-other-corpus", "refused resume",
                  ["train", "--out", f"{W}/run", "--resume", "--steps", "16", "--corpus", f"{W}/c2"],
                  match="hash", setup=lambda ws: _cli(ws, "corpus", "--text", str(ws / "text.txt"), "--seq-len", "11",
                                                      "--out", str(ws / "c2")), ci=False))
    c.append(Case("run-refused-resume-other-lr", "refused resume", [*RESUME, "--lr", "0.1"], match="config differs"))
    c.append(Case("run-refused-resume-fewer-steps", "refused resume",
                  ["train", "--out", f"{W}/run", "--resume", "--steps", "8"], match="beyond"))
    c.append(Case("run-resume-ok", "refused resume", RESUME, expect="ok", check=_resumed_ok,
                  may_change=RESUME_MAY_CHANGE))
    c.append(Case("run-existing-without-resume", "overwrite policy", [*TRAIN_NEW, "--out", f"{W}/run"],
                  match="already exists"))
    c.append(Case("run-force-ok", "overwrite policy", [*TRAIN_NEW, "--out", f"{W}/run", "--force"], expect="ok",
                  may_change=("run/*",)))

    # 8. arguments refused before anything is made
    bad_args = [
        ("seed-negative", ["--seed", "-1"], "--seed"), ("lr-nan", ["--lr", "nan"], "--lr"),
        ("lr-inf", ["--lr", "inf"], "--lr"), ("lr-zero", ["--lr", "0"], "--lr"),
        ("layers-zero", ["--layers", "0"], "--layers"), ("batch-zero", ["--batch-size", "0"], "--batch-size"),
        ("log-every-zero", ["--log-every", "0"], "--log-every"),
        ("eval-zero", ["--eval-sequences", "0"], "--eval-sequences"),
        ("init-bad", ["--init", "normal:-1"], "--init"), ("device-bad", ["--device", "tpu"], "--device"),
        ("precision-bf16-float64", ["--precision", "bf16", "--dtype", "float64"], "--precision"),
        ("track-bad", ["--track", "magic"], "--track"),
    ]
    for name, extra, match in bad_args:
        argv = [*TRAIN_NEW, "--out", f"{W}/fresh", *extra]
        c.append(Case(f"run-train-{name}", "bad argument", argv, match=match, run=_refuse_and(_absent("fresh")),
                      ci=name == "seed-negative"))
    c.append(Case("run-train-seed-negative-inproc", "bad argument", [*TRAIN_NEW, "--out", f"{W}/fresh", "--seed",
                                                                       "-1"], match="--seed"))
    c.append(Case("run-train-out-is-file", "bad argument", [*TRAIN_NEW, "--out", f"{W}/text.txt"],
                  match="not a folder"))
    c.append(Case("run-train-missing-corpus", "bad argument",
                  [*TRAIN_NEW[:2], f"{W}/nope", *TRAIN_NEW[3:], "--out", f"{W}/fresh"], match="nope",
                  run=_refuse_and(_absent("fresh")), ci=False))
    c.append(Case("run-train-resume-nothing", "bad argument", ["train", "--out", f"{W}/nothing", "--resume"],
                  match="holds no run to resume"))
    c.append(Case("run-intervene-step-missing", "bad argument", [*INTERVENE, "--step", "7"], match="step 7"))
    c.append(Case("run-intervene-step-zero", "bad argument", [*INTERVENE, "--step", "0"], match="step 0"))
    c.append(Case("run-intervene-no-run", "bad argument", ["intervene", "--run", f"{W}/nope"], match="nope"))
    c.append(Case("run-report-step-missing", "bad argument", [*REPORT, "--step", "99"], match="99"))
    c.append(Case("run-report-unknown-token", "bad argument", [*REPORT, "--tokens", "zzzz"], match="zzzz"))
    c.append(Case("run-inspect-unknown-token", "bad argument",
                  [*INSPECT[:INSPECT.index("--text")], "--text", "qqq", *INSPECT[INSPECT.index("--text") + 2:]],
                  match="qqq"))
    c.append(Case("run-inspect-empty-prompt", "bad argument",
                  [*INSPECT[:INSPECT.index("--text")], "--text", "", *INSPECT[INSPECT.index("--text") + 2:]],
                  match=None))
    c.append(Case("run-compare-missing-run", "bad argument", ["compare", f"{W}/nope", "--out", f"{W}/cmp"],
                  match="nope"))
    c.append(Case("run-demo-heatmap-1", "bad argument", ["demo", "--out", f"{W}/demo", "--heatmap-tokens", "1"],
                  match="--heatmap-tokens", run=_refuse_and(_absent("demo"))))
    c.append(Case("run-demo-steps-zero", "bad argument", ["demo", "--out", f"{W}/demo", "--steps", "0"],
                  match="--steps", run=_refuse_and(_absent("demo"))))
    c.append(Case("run-sweep-lr-nan", "bad argument",
                  ["sweep", "--corpora", f"{W}/corpus", "--lrs", "nan", "--batch-sizes", "8", "--layer-counts", "1",
                   "--steps", "4", "--out", f"{W}/sw"], match=None, run=_refuse_and(_absent("sw"))))
    c.append(Case("run-sweep-batch-too-big", "bad argument",
                  ["sweep", "--corpora", f"{W}/corpus", "--lrs", "0.5", "--batch-sizes", "100000", "--layer-counts",
                   "1", "--steps", "4", "--out", f"{W}/sw"], match="exceeds", run=_refuse_and(_absent("sw"))))
    sweep = ["sweep", "--corpora", f"{W}/corpus", "--lrs", "0.5", "--batch-sizes", "8", "--layer-counts", "1",
             "--steps", "4", "--out", f"{W}/sw"]
    c.append(Case("run-sweep-locked", "concurrent writers", sweep, match="being written by", run=_while_locked("sw"),
                  ci=False))
    c.append(Case("run-sweep-record-list", "tampered JSON", sweep, match="JSON object",
                  setup=_write("sw/sweep.json", "[]")))
    c.append(Case("run-sweep-record-points-string", "tampered JSON", sweep, match="points",
                  setup=_write("sw/sweep.json", json.dumps({"points": "all"}))))

    # 9. budgets, disk full, temp files, kill and resume
    c.append(Case("run-train-memory-share", "memory refusal", [*TRAIN_NEW, "--out", f"{W}/fresh"],
                  match="needs about", env={"LEADINGTERMS_MAX_MEMORY_SHARE": "0.000001"},
                  run=_refuse_and(_absent("fresh")), ci=False))
    c.append(Case("run-train-huge-layers", "memory refusal", [*TRAIN_NEW, "--out", f"{W}/fresh", "--layers",
                                                             "10000000"], match="needs about"))
    c.append(Case("run-train-disk-full", "disk full", [*TRAIN_NEW, "--out", f"{W}/full"], match="disk is full",
                  run=_with_fsize_limit(20_000), ci=False))
    c.append(Case("run-resume-disk-full", "disk full", RESUME, match="disk is full", run=_with_fsize_limit(20_000),
                  may_change=RESUME_MAY_CHANGE, ci=False))
    c.append(Case("run-temp-files-cleaned", "temp-file cleanup", RESUME, expect="ok", check=_no_temps,
                  setup=_chain(_write("run/.config.json.abc123.tmp", "x" * 100),
                               _write(f"{CK}/.step_000012.safetensors.x1y2.tmp", b"\0" * 1000)),
                  may_change=RESUME_MAY_CHANGE))
    c.append(Case("run-orphan-tensor-file-resume-ok", "temp-file cleanup", RESUME, expect="ok", check=_resumed_ok,
                  setup=lambda ws: shutil.copy2(ws / _ckpt(LATEST, "safetensors"), ws / _ckpt(13, "safetensors")),
                  may_change=RESUME_MAY_CHANGE))
    c.append(Case("run-kill-then-resume", "kill and resume",
                  ["train", "--out", f"{W}/k", "--resume", "--steps", "400"], expect="ok", run=_kill_then_resume,
                  check=_killed_resumed_ok, ci=False))
    return c
