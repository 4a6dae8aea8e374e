"""Classification throughput on the ClassBench 10k and 100k sets (pytest-benchmark).

Run (outside the default test run):

    python -m pytest benchmarks/bench_classbench.py --benchmark-columns=min,median,rounds

Each fast-engine round classifies the whole trace (headers already in memory); the reference engine
(brute force) classifies the first 2,000 headers only, once, so both appear side by side. Every
run also checks the answers against the set's ``*.match.gz``. ``extra_info`` holds Mpps (from the
best round), build seconds and table bytes. Skipped when ``../shared/classbench`` is missing.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pytest

from sgdp.bench import rulesets as cb
from sgdp.engine.classifier import FastClassifier, ReferenceClassifier
from sgdp.engine.compiler import Headers

CLASSBENCH = Path(__file__).resolve().parents[2] / "shared" / "classbench"
SETS = ["acl1_10k", "fw1_10k", "ipc1_10k", "acl1_100k", "fw1_100k", "ipc1_100k"]
REFERENCE_HEADERS = 2000


@functools.lru_cache(maxsize=None)
def load(name: str):
    if not CLASSBENCH.is_dir():
        pytest.skip(f"{CLASSBENCH} is missing (the shared folder beside the checkout)")
    table = cb.load_rules(CLASSBENCH / f"{name}.rules.gz")
    trace = cb.load_trace(CLASSBENCH / f"{name}.trace.gz")
    expected = cb.load_matches(CLASSBENCH / f"{name}.match.gz")
    return table, trace.headers, expected


def head(headers: Headers, n: int) -> Headers:
    return Headers(**{name: getattr(headers, name)[:n] for name in headers.__dataclass_fields__})


@pytest.mark.parametrize("name", SETS)
def test_classify_fast(benchmark, name):
    table, headers, expected = load(name)
    start = time.perf_counter()
    classifier = FastClassifier(table)
    build_s = time.perf_counter() - start
    out = np.empty(len(headers), np.int32)
    benchmark.pedantic(classifier.classify, args=(headers, out), rounds=7, iterations=1, warmup_rounds=1)
    assert int((out != expected).sum()) == 0
    benchmark.extra_info.update(
        rules=len(table), headers=len(headers), tuples=len(classifier.space), build_s=round(build_s, 3),
        table_bytes=classifier.table_bytes, mpps=round(len(headers) / benchmark.stats.stats.min / 1e6, 2),
    )


@pytest.mark.parametrize("name", SETS)
def test_classify_reference(benchmark, name):
    table, headers, expected = load(name)
    sample = head(headers, REFERENCE_HEADERS)
    classifier = ReferenceClassifier(table)
    out = benchmark.pedantic(classifier.classify, args=(sample,), rounds=1, iterations=1)
    assert int((out != expected[:REFERENCE_HEADERS]).sum()) == 0
    benchmark.extra_info.update(rules=len(table), headers=len(sample),
                                mpps=round(len(sample) / benchmark.stats.stats.min / 1e6, 4))


@pytest.mark.parametrize("name", SETS)
def test_build_fast(benchmark, name):
    table, _, _ = load(name)
    classifier = benchmark.pedantic(FastClassifier, args=(table,), rounds=3, iterations=1)
    benchmark.extra_info.update(rules=len(table), tuples=len(classifier.space), table_bytes=classifier.table_bytes)
