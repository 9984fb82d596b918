"""Corpus stage: text sources -> tokenizer -> sequences -> token store."""

from leadingterms.corpus.store import TokenStore, load_store, write_store

__all__ = ["TokenStore", "load_store", "write_store"]
