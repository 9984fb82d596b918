"""The word tokenizer of docs/theory.md §7.1 written literally, per character (independent of the package)."""

from __future__ import annotations


def naive_word_tokens(text: str) -> list[str]:
    """Lowercase, maximal ``str.isalpha`` runs, every other character alone, drop ' ' and '\\n'."""
    out: list[str] = []
    run = ""
    for ch in text.lower():
        if ch.isalpha():
            run += ch
        else:
            if run:
                out.append(run)
                run = ""
            out.append(ch)
    if run:
        out.append(run)
    return [t for t in out if t not in (" ", "\n")]


def naive_counts(docs: list[list[str]]) -> tuple[list[str], dict[str, int]]:
    """(every token by decreasing count, ties by first appearance; the counts)."""
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    for toks in docs:
        for t in toks:
            first.setdefault(t, len(first))
            count[t] = count.get(t, 0) + 1
    return sorted(count, key=lambda t: (-count[t], first[t])), count


def naive_vocab(docs: list[list[str]], K: int) -> list[str]:
    """The K most frequent tokens, ties by first appearance."""
    return naive_counts(docs)[0][:K]
