"""The explorer's list encoding: lossless ids, values to float16 precision, any sign, ties, short lists."""

from __future__ import annotations

import numpy as np

from leadingterms.explore import NO_TOKEN, decode_list, encode_lists


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    V, k = 6, 4
    groups = {}
    for key, steps in (("a:row", [None]), ("b:row", [1, 5])):
        variants = []
        for step in steps:
            for how in ("none", "freq"):
                ids = rng.integers(0, 50, size=(V, k)).astype(np.uint16)
                vals = -np.sort(-rng.normal(size=(V, k)) * 10.0 ** rng.integers(-9, 4, size=(V, 1)), axis=1)
                vals[0] = [3.0, 3.0, 0.0, -0.0]  # ties and signed zeros
                vals[1, 2:] = np.nan  # a short list
                ids[1, 2:] = NO_TOKEN
                vals[2] = [-1e-8, -2e-8, -1.0, -7.0]  # all negative
                variants.append((step, how, ids, vals))
        groups[key] = variants
    blob, index, layout = encode_lists(groups, V, k)
    meta = {"groups": index, "layout": layout, "pi": [0.5] * V}
    for key, variants in groups.items():
        for step, how, ids, vals in variants:
            for t in range(V):
                got = decode_list(blob, meta, key, step, how, t)
                keep = ids[t] != NO_TOKEN
                assert [i for i, _ in got] == ids[t][keep].tolist()
                want = vals[t][keep]
                scale = np.abs(want).max()
                assert np.allclose([v for _, v in got], want, rtol=1e-3, atol=1e-3 * scale)
                if how == "freq":
                    pmi = decode_list(blob, meta, key, step, "pmi", t)
                    assert [v for _, v in pmi] == [2 * v for _, v in got]
