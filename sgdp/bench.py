"""Benchmarks behind ``sgdp bench`` (SPEC §7): measured in-process, reported as plain dicts.

``classbench``: load a ClassBench filter set and header trace (and optionally the first-match file),
build a classifier of the chosen engine, classify every header a few times and keep the best time.
``mpps`` is classification alone (headers already in memory as columns); ``build_s`` is the time to
build the classifier from the RuleTable; ``table_bytes`` the memory of its tables.

The reference engine is brute force (rules x headers comparisons, NumPy over the rules): about 1 s on
the 1k sets, 5-20 s on the 10k sets and 5-6 minutes on the 100k sets here (benchmarks/README.md);
it runs once, not best-of-N.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from sgdp.errors import InputError, UsageError

FAST_REPEATS = 5


def classifier_engine(name: str | None) -> str:
    """The classifier engine that will run for a requested name (None: $SGDP_ENGINE or fast).

    Without the compiled module, ``fast`` falls back to ``reference`` with a warning, or is an error
    when ``SGDP_REQUIRE_EXTENSION=1`` (as for the dataplane engines).
    """
    name = name or os.environ.get("SGDP_ENGINE", "fast")
    if name not in ("fast", "reference"):
        raise UsageError(f"{name!r} is not an engine (choose fast or reference)")
    if name == "fast":
        try:
            import sgdp._fastmatch  # noqa: F401
        except ImportError:
            if os.environ.get("SGDP_REQUIRE_EXTENSION") == "1":
                raise UsageError("the compiled classifier (sgdp._fastmatch) is not available and SGDP_REQUIRE_EXTENSION=1") from None
            print("sgdp: warning: the compiled classifier is not available; using the reference engine", file=sys.stderr)
            return "reference"
    return name


def classbench(rules: str, trace: str, match: str | None = None, engine: str | None = None,
               repeats: int | None = None) -> dict[str, Any]:
    """Classify a ClassBench trace against a filter set; the dict holds the SPEC §7 keys.

    Keys: ``rules``, ``headers``, ``mismatches`` (None without a match file), ``mpps``, ``build_s``,
    ``table_bytes``, ``engine``; and, not printed by ``--json``, ``ns_per_packet``, ``repeats``,
    ``first_mismatches`` (up to 10 ``(header, expected, got)``).
    """
    from sgdp.classbench import load_matches, load_rules, load_trace
    from sgdp.classifier import make_classifier

    engine = classifier_engine(engine)
    table = load_rules(rules)
    headers = load_trace(trace).headers
    expected = None
    if match is not None:
        expected = load_matches(match)
        if len(expected) != len(headers):
            raise InputError(f"{match}: {len(expected)} lines, but {trace} has {len(headers)} headers")
        if len(expected) and int(expected.max()) >= len(table):
            i = int(np.argmax(expected))
            raise InputError(f"{match}: line {i + 1}: filter {int(expected[i])} is past the last filter of {rules} ({len(table) - 1})")
    classifier = make_classifier(table, engine)
    if repeats is None:
        repeats = FAST_REPEATS if engine == "fast" else 1
    out = np.empty(len(headers), np.int32)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        classifier.classify(headers, out)
        best = min(best, time.perf_counter() - start)
    n = len(headers)
    result: dict[str, Any] = {
        "rules": len(table),
        "headers": n,
        "mismatches": None,
        "mpps": float(f"{n / best / 1e6:.4g}") if n and best > 0 else 0.0,  # 4 significant digits
        "build_s": round(classifier.build_s, 4),
        "table_bytes": int(classifier.table_bytes),
        "engine": engine,
        "ns_per_packet": round(best / n * 1e9, 1) if n else 0.0,
        "repeats": max(1, repeats),
        "first_mismatches": [],
    }
    if expected is not None:
        bad = np.flatnonzero(out != expected)
        result["mismatches"] = int(len(bad))
        result["first_mismatches"] = [(int(i), int(expected[i]), int(out[i])) for i in bad[:10]]
    return result


CLASSBENCH_JSON_KEYS = ("rules", "headers", "mismatches", "mpps", "build_s", "table_bytes", "engine")
