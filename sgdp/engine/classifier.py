"""The two first-match classifiers over a :class:`~sgdp.engine.compiler.RuleTable`, with one interface.

* :class:`FastClassifier`: the compiled tuple-space classifier of :mod:`sgdp._fastmatch`, built from
  the tuples that :func:`sgdp.engine.compiler.build_tuple_space` chooses.
* :class:`ReferenceClassifier`: :func:`sgdp.engine.compiler.first_match_reference`, brute force.

Both answer ``classify(headers) -> int32 array`` (the index of the first matching rule, -1 for
none) and report ``build_s`` (seconds to build) and ``table_bytes`` (memory of their tables). This
module is where header columns are validated before they enter compiled code: a wrong dtype, a
wrong shape or columns of different lengths raise ValueError here; an empty batch gives an empty
answer.
"""

from __future__ import annotations

import time

import numpy as np

from sgdp.engine.compiler import HEADER_COLUMNS, Headers, RuleTable, TupleSpace, build_tuple_space, first_match_reference

ENGINES = ("fast", "reference")


def _check_headers(headers: Headers) -> Headers:
    if not isinstance(headers, Headers):
        raise TypeError(f"classify() takes a sgdp.engine.compiler.Headers batch, not {type(headers).__name__}")
    n = len(headers.l3)
    for name, dtype in HEADER_COLUMNS.items():  # Headers validated this at construction; re-check cheaply
        col = getattr(headers, name)
        if col.dtype != dtype or col.ndim != 1 or len(col) != n or not col.flags.c_contiguous:
            raise ValueError(f"headers: column {name!r} must be 1-D contiguous {dtype} of length {n}")
    return headers


class FastClassifier:
    """The compiled classifier (tuple-space search) for one RuleTable."""

    engine = "fast"

    def __init__(self, table: RuleTable, space: TupleSpace | None = None, lengths: tuple[np.ndarray, ...] | None = None):
        """``lengths``: the table's prefix lengths when known already (see ``build_tuple_space``)."""
        from sgdp._fastmatch import TupleClassifier

        if not isinstance(table, RuleTable):
            raise TypeError(f"FastClassifier takes a RuleTable, not {type(table).__name__}")
        start = time.perf_counter()
        self.table = table
        self.space = space if space is not None else build_tuple_space(table, lengths=lengths)
        self._compiled = TupleClassifier(table, self.space)
        self.build_s = time.perf_counter() - start

    @property
    def table_bytes(self) -> int:
        """Bytes of the compiled tables (the C copy of the rules, the tuples and the hash slots)."""
        return int(self._compiled.nbytes)

    nbytes = table_bytes

    def classify(self, headers: Headers, out: np.ndarray | None = None) -> np.ndarray:
        """First matching rule index of every header (int32, -1 for none)."""
        h = _check_headers(headers)
        n = len(h)
        if out is None:
            out = np.empty(n, np.int32)
        elif not (isinstance(out, np.ndarray) and out.dtype == np.int32 and out.shape == (n,) and out.flags.c_contiguous
                  and out.flags.writeable):
            raise ValueError(f"out must be a writable contiguous int32 array of shape ({n},)")
        if n:
            self._compiled.classify(h.l3, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport, h.proto, out)
        return out


class ReferenceClassifier:
    """The brute-force classifier (obviously right, O(rules x headers))."""

    engine = "reference"

    def __init__(self, table: RuleTable):
        if not isinstance(table, RuleTable):
            raise TypeError(f"ReferenceClassifier takes a RuleTable, not {type(table).__name__}")
        start = time.perf_counter()
        self.table = table
        self.build_s = time.perf_counter() - start

    @property
    def table_bytes(self) -> int:
        return self.table.nbytes

    nbytes = table_bytes

    def classify(self, headers: Headers, out: np.ndarray | None = None) -> np.ndarray:
        result = first_match_reference(self.table, _check_headers(headers))
        if out is not None:
            out[...] = result
            return out
        return result


def make_classifier(table: RuleTable, engine: str = "fast") -> FastClassifier | ReferenceClassifier:
    """A classifier of the named engine (``fast`` or ``reference``) for ``table``."""
    if engine == "fast":
        return FastClassifier(table)
    if engine == "reference":
        return ReferenceClassifier(table)
    raise ValueError(f"{engine!r} is not a classifier engine (choose fast or reference)")


Classifier = FastClassifier  # the compiled classifier under its short name
