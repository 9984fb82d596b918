"""``leadingterms inspect``: a run's checkpoint on a prompt — per-layer top predictions (logit lens) and
attention-pattern plots (thin CLI layer over :mod:`leadingterms.lens`)."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.lens import InspectConfig, InspectResult, run_inspect


def show(result: InspectResult) -> Iterator[str]:
    yield (f"step {result.step}: {len(result.tokens)} tokens; top predictions of the next token read through "
           "W_O after each layer (logit lens; the last reading is the model's output)")
    width = max(len(lab) for lab in result.labels)
    for t, tok in enumerate(result.tokens):
        after = f", next in the prompt {result.tokens[t + 1]!r}" if t + 1 < len(result.tokens) else ""
        yield ""
        yield f"position {t}: {tok!r}{after}"
        for lab, rows in zip(result.labels, result.top, strict=True):
            yield f"  {lab:<{width}}  " + "  ".join(f"{w!r} {p:.3f}" for w, p in rows[t])
    yield ""
    for p in result.files:
        yield f"wrote {p}"


COMMAND = Command(
    name="inspect",
    help="a checkpoint on a prompt: per-layer top predictions (logit lens) and attention plots",
    description="Tokenize PROMPT with the run's corpus tokenizer, run the checkpoint with every activation "
    "recorded (leadingterms.lens.run_with_cache: TransformerLens-style hook names), and print, for each "
    "position, the top-k next tokens read through W_O from the residual stream after each layer (the "
    "first reading is W_O alone, the last the model's output). Writes lens.json and the attention "
    "patterns of every layer (attention.png/.svg) to --out (default RUN/inspect).",
    config=InspectConfig,
    run=run_inspect,
    show=show,
)
