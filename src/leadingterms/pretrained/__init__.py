"""Compare the predicted features with pretrained causal language models (docs/theory.md §8).

Modules: :mod:`~leadingterms.pretrained.loading` (models, revisions, offline cache),
:mod:`~leadingterms.pretrained.features` (single-token residual streams and query/key forms via
hooks), :mod:`~leadingterms.pretrained.similarity` (Gram similarity),
:mod:`~leadingterms.pretrained.stats` (top-K corpus statistics with the model's tokenizer, cached),
:mod:`~leadingterms.pretrained.compare` (the runner), :mod:`~leadingterms.pretrained.plots`
(figures and the report's HTML section) and :mod:`~leadingterms.pretrained.suite`
(a small Pythia-like checkpoint suite trained locally).
"""
