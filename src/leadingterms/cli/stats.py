"""``leadingterms stats``: token store -> basis functions in OUT/basis.safetensors + basis.json."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.basis.runner import StatsConfig, StatsResult, run_stats
from leadingterms.budget import format_bytes
from leadingterms.cli import Command


def show(result: StatsResult) -> Iterator[str]:
    basis, m = result.basis, result.basis.meta
    if result.reused:
        yield f"basis in {result.path} is up to date (corpus {m.get('corpus_hash')}); use --force to recompute"
    else:
        resumed = sum((m.get("shards_resumed") or {}).values())
        n = int(m.get("shards", 1))
        where = f"{n} shard{'s' if n != 1 else ''}, {m.get('engine', 'in-process')}, {m.get('device', 'cpu')}" + (
            f", {resumed} shard passes resumed" if resumed else "")
        yield (f"basis: N={basis.N} T={basis.T} V={basis.V} {m.get('dtype')} in {m.get('seconds', 0):.2f} s "
               f"({m.get('tokens_per_second', 0):,.0f} tokens/s; {where}; peak memory of this process "
               f"{format_bytes(int(m.get('peak_memory_bytes', 0)))}) -> {result.path}/basis.safetensors")


COMMAND = Command(
    name="stats",
    help="compute the corpus statistics (B_bar, Phi_bar, Q_bar, Delta, Pi, A_bar)",
    description="Compute every statistic of docs/theory.md §2 of a token store, exactly, normalised by 1/(N*T), "
    "as a map-reduce over shards of the store (docs/theory.md §2.7): in this process, on a local Dask cluster "
    "(--workers N) or on a running one (--scheduler ADDRESS), with the same result. Writes OUT/basis.safetensors "
    "and OUT/basis.json; reuses OUT if it already holds the basis of the same corpus with the same settings; a "
    "killed run resumes from its checkpoints in OUT/.partial.",
    config=StatsConfig,
    run=run_stats,
    show=show,
)
