"""unique_rows (flows, talkers) sorts packed words instead of every column: the same groups, first
rows and order as a lexicographic sort of the columns themselves."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdp.pipeline import unique_rows
from sgdp.pipeline.flows import packed_words


def by_lexsort(*cols):
    order = np.lexsort(cols[::-1])
    start = np.zeros(len(order), bool)
    start[:1] = True
    for col in cols:
        s = col[order]
        start[1:] |= s[1:] != s[:-1]
    inverse = np.empty(len(order), np.int64)
    inverse[order] = np.cumsum(start) - 1
    return order[start], inverse


DTYPES = {"u8": (np.uint8, 0, 255), "u64": (np.uint64, 0, 2**64 - 1), "i32": (np.int32, -2**31, 2**31 - 1),
          "i64": (np.int64, -2**63, 2**63 - 1), "bool": (np.bool_, 0, 1)}


@st.composite
def columns(draw):
    n = draw(st.integers(1, 60))
    cols = []
    for kind in draw(st.lists(st.sampled_from(sorted(DTYPES)), min_size=1, max_size=8)):
        dtype, lo, hi = DTYPES[kind]
        pool = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=4))  # few values: rows repeat
        cols.append(np.array([draw(st.sampled_from(pool)) for _ in range(n)], dtype))
    return cols


@settings(max_examples=300, deadline=None)
@given(columns())
def test_unique_rows_is_a_lexicographic_unique(cols):
    first, inverse = unique_rows(*cols)
    want_first, want_inverse = by_lexsort(*cols)
    assert first.tolist() == want_first.tolist() and inverse.tolist() == want_inverse.tolist()


def test_packed_words_pack_narrow_columns_into_one_word():
    l3 = np.array([4, 4, 4], np.uint8)
    addr = np.array([10, 3, 10], np.uint64)
    port = np.array([80, 80, 443], np.int32)
    words = packed_words([l3, addr, port])
    assert len(words) == 1  # l3 constant, address in 3 bits, port in 9 bits
    assert words[0].tolist() == [(7 << 9) | 0, 0, (7 << 9) | 363]
    wide = np.array([0, 2**64 - 1], np.uint64)
    assert len(packed_words([wide, wide])) == 2
