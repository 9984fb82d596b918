"""The word tokenizer of docs/theory.md §7.1 written literally, per character (independent of the package)."""

from __future__ import annotations


def naive_word_tokens(text: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Lowercase, maximal ``str.isalpha`` runs, every other character alone, drop ' ' and '\\n'.

    ``keep`` (lowercase strings, the §7.1 extension): wherever a token would start, the longest kept
    string found there is one token, unless it ends in a letter that a letter follows."""
    low = text.lower()
    out: list[str] = []
    i = 0
    while i < len(low):
        hit = None
        for k in sorted(keep, key=len, reverse=True):
            end = i + len(k)
            if low.startswith(k, i) and not (k[-1].isalpha() and end < len(low) and low[end].isalpha()):
                hit = k
                break
        if hit is not None:
            out.append(hit)
            i += len(hit)
        elif low[i].isalpha():
            j = i
            while j < len(low) and low[j].isalpha():
                j += 1
            out.append(low[i:j])
            i = j
        else:
            out.append(low[i])
            i += 1
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
