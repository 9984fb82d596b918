"""``leadingterms predict``: closed-form weights (docs/theory.md §3, optionally §4) from a basis folder."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.predict import PredictConfig, PredictResult, run_predict
from leadingterms.theory import param_name


def show(result: PredictResult) -> Iterator[str]:
    m = result.meta
    yield f"wrote {result.path} (s={m['steps']}, eta={m['lr']:g}, L={m['layers']}, order {m['order']})"
    yield f"{'weight':<8} {'||predicted||_F':>16} {'paper bound on ||learned - predicted||_F':>42}"
    for kind, bound in m["bounds"].items():
        norm = m["norms"][param_name(kind, 0)]
        yield f"{kind:<8} {norm:>16.4e} {bound:>42.4e}"


COMMAND = Command(
    name="predict",
    help="closed-form weights after S steps of full-batch GD (docs/theory.md §3/§4)",
    description="Write the predicted weights W_O, layers.{l}.W/V/P after S steps of full-batch GD from zero with "
    "learning rate ETA (docs/theory.md §3; --order 2 adds the §4 terms for W_O and V) and print the paper's "
    "(loose) Frobenius bounds.",
    config=PredictConfig,
    run=run_predict,
    show=show,
)
