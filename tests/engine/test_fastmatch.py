"""The compiled first-match classifier (sgdp._fastmatch) against the brute-force reference.

Differential: random rule tables (IPv4 and IPv6, /0 /32 /128 prefixes and arbitrary ranges, edge
ports 0 and 65535, overlapping rules, protocol any / exact / other masks) and random headers, many
of them on the corners of the rules' boxes; the compiled answer must equal
``first_match_reference`` header for header, for several tuple-space parameters (a bucket limit of 1
forces many tuples and over-full buckets). Hostile inputs raise clean errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.engine.classifier import FastClassifier, ReferenceClassifier, make_classifier
from sgdp.engine.compiler import (HEADER_COLUMNS, Headers, Rule, RuleTable, build_tuple_space, first_match_reference)

_fastmatch = pytest.importorskip("sgdp._fastmatch")

BITS = {4: 32, 6: 128}
# A few shared address bases make rules overlap and headers hit several rules.
BASES = {4: [0, 0x0A000000, 0x0A000100, 0xC0A80000, 0xFFFFFFFF],
         6: [0, 0x20010DB8 << 96, (0x20010DB8 << 96) | (1 << 64), (1 << 128) - 1, 0x0A000000]}


@st.composite
def addr_range(draw, l3: int) -> tuple[int, int]:
    bits = BITS[l3]
    top = (1 << bits) - 1
    kind = draw(st.sampled_from(["prefix", "prefix", "range", "host", "any"]))
    base = draw(st.one_of(st.sampled_from(BASES[l3]), st.integers(0, top)))
    if kind == "any":
        return 0, top
    if kind == "host":
        return base, base
    if kind == "prefix":
        length = draw(st.one_of(st.sampled_from([0, 1, bits - 1, bits, bits // 2, 24 if l3 == 4 else 64]), st.integers(0, bits)))
        size = 1 << (bits - length)
        lo = base & ~(size - 1)
        return lo, lo + size - 1
    other = draw(st.one_of(st.sampled_from(BASES[l3]), st.integers(0, top), st.integers(max(0, base - 300), min(top, base + 300))))
    return min(base, other), max(base, other)


ports = st.one_of(
    st.just((0, 65535)),
    st.integers(0, 65535).map(lambda p: (p, p)),
    st.sampled_from([(0, 0), (65535, 65535), (1, 65535), (0, 1023), (1024, 65535), (80, 443), (22, 22)]),
    st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(lambda t: (min(t), max(t))),
)

protos = st.one_of(
    st.just((0, 0)),
    st.sampled_from([6, 17, 1, 58, 47, 0, 255]).map(lambda v: (v, 0xFF)),
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(lambda t: (t[0] & t[1], t[1])),
)


@st.composite
def rules(draw) -> Rule:
    l3 = draw(st.sampled_from([4, 4, 6]))
    return Rule(l3, draw(addr_range(l3)), draw(addr_range(l3)), draw(ports), draw(ports), draw(protos))


def _near(draw, lo: int, hi: int, top: int) -> int:
    return draw(st.sampled_from([lo, hi, max(0, lo - 1), min(top, hi + 1), (lo + hi) // 2]))


@st.composite
def headers_for(draw, table_rules: list[Rule]):
    """Header rows, most of them on or next to the corners of some rule's box."""
    rows = []
    for _ in range(draw(st.integers(1, 60))):
        if table_rules and draw(st.integers(0, 4)):
            r = draw(st.sampled_from(table_rules))
            l3 = r.l3 if draw(st.integers(0, 9)) else 10 - r.l3  # sometimes the other IP version
            top = (1 << BITS[l3]) - 1
            src = min(top, _near(draw, *r.src, top=(1 << BITS[r.l3]) - 1))
            dst = min(top, _near(draw, *r.dst, top=(1 << BITS[r.l3]) - 1))
            sport = _near(draw, *r.sport, top=65535)
            dport = _near(draw, *r.dport, top=65535)
            value, mask = r.proto
            proto = draw(st.sampled_from([value, value | (~mask & 0xFF), value ^ 1, draw(st.integers(0, 255))]))
        else:
            l3 = draw(st.sampled_from([4, 6]))
            top = (1 << BITS[l3]) - 1
            src, dst = draw(st.integers(0, top)), draw(st.integers(0, top))
            sport, dport, proto = draw(st.integers(0, 65535)), draw(st.integers(0, 65535)), draw(st.integers(0, 255))
        rows.append((l3, src, dst, sport, dport, proto))
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_equals_reference(data):
    rule_list = data.draw(st.lists(rules(), min_size=0, max_size=40))
    table = RuleTable.from_rules(rule_list)
    rows = data.draw(headers_for(rule_list))
    headers = Headers.from_tuples(rows)
    expected = first_match_reference(table, headers)
    # the reference agrees with the plain per-rule definition
    for i, row in enumerate(rows):
        plain = next((j for j, r in enumerate(rule_list) if r.matches(*row)), -1)
        assert expected[i] == plain
    step = data.draw(st.sampled_from([16, 8, 1, 64]))
    limit = data.draw(st.sampled_from([16, 1, 2]))
    bits = data.draw(st.sampled_from([None, 0, 1, 7, 16]))  # the tuple filter: default, off, coarse, fine
    space = build_tuple_space(table, address_step=step, bucket_limit=limit, filter_bits=bits)
    got = FastClassifier(table, space).classify(headers)
    assert got.dtype == np.int32
    assert got.tolist() == expected.tolist()


def test_many_rules_with_one_key_share_an_overfull_bucket():
    # 200 rules that only port ranges (not prefixes) tell apart: one key, a bucket over the limit
    rule_list = [Rule(4, (0, 2**32 - 1), (0, 2**32 - 1), (0, 65535), (i * 7 + 1, i * 7 + 5), (6, 0xFF)) for i in range(200)]
    rule_list.append(Rule(4, (0, 2**32 - 1), (0, 2**32 - 1)))
    table = RuleTable.from_rules(rule_list)
    headers = Headers.from_tuples([(4, 1, 2, 9, i, p) for i in range(0, 1500, 3) for p in (6, 17)])
    space = build_tuple_space(table, bucket_limit=4)
    assert len(space) < 50
    got = FastClassifier(table, space).classify(headers)
    assert got.tolist() == first_match_reference(table, headers).tolist()


@pytest.mark.parametrize("bits", [0, 4, 16])
def test_more_than_63_tuples(bits):
    # nested prefixes around one source and one destination address, of distinct length pairs: with a
    # bucket limit of 1 and exact lengths every rule makes its own tuple (its key's bucket is full in
    # every earlier tuple), so the filter's last bit stands for the tuples from 63 on, which a lookup
    # then tries in turn
    rng = np.random.default_rng(7)
    pairs = [(a, b) for a in range(33) for b in range(33)]
    rule_list = []
    for i in rng.permutation(len(pairs))[:120].tolist():
        slen, dlen = pairs[i]
        src = 0x0A010203 & ~((1 << (32 - slen)) - 1)
        dst = 0xC0A80709 & ~((1 << (32 - dlen)) - 1)
        rule_list.append(Rule(4, (src, src + (1 << (32 - slen)) - 1), (dst, dst + (1 << (32 - dlen)) - 1),
                              (0, 65535), (0, 65535) if i % 3 else (80, 80), (6, 0xFF) if i % 2 else (0, 0)))
    table = RuleTable.from_rules(rule_list)
    space = build_tuple_space(table, address_step=1, bucket_limit=1, filter_bits=bits)
    assert len(space) > 63
    rows = [(4, r.src[k], r.dst[k], 5, port, p) for r in rule_list for k in (0, 1) for port in (80, 81) for p in (6, 17)]
    rows += [(4, int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)), 1, int(rng.integers(0, 65536)), 6) for _ in range(500)]
    headers = Headers.from_tuples(rows)
    assert FastClassifier(table, space).classify(headers).tolist() == first_match_reference(table, headers).tolist()


def test_key_hash_spreads_keys_that_differ_only_in_high_address_bits():
    # /16 destination prefixes under a /0 source: the keys differ only in bits 16-31 of the
    # destination; the low bits of their hashes (which choose the slot) must still differ
    n = 4096
    zero = np.zeros(n, np.uint64)
    dst = (np.arange(n, dtype=np.uint64) << np.uint64(16))
    for l3, dst_hi, dst_lo in ((4, zero, dst), (6, dst << np.uint64(32), zero)):
        h = _fastmatch.key_hashes(np.full(n, l3, np.uint8), zero, zero, dst_hi, dst_lo, np.zeros(n, np.uint16),
                                  np.full(n, 80, np.uint16), np.full(n, 6, np.uint8))
        assert len(np.unique(h & np.uint64(n * 2 - 1))) > n * 3 // 4


def test_lookup_stats_only_in_a_counting_build():
    stats = _fastmatch.lookup_stats()
    assert stats is None or set(stats) == {"lookups", "candidate_tuples", "tuples_probed", "slots_visited", "rules_compared"}


def test_ipv4_rules_do_not_match_ipv6_headers():
    table = RuleTable.from_rules([Rule(4, (0, 2**32 - 1), (0, 2**32 - 1)), Rule(6, (0, 2**128 - 1), (0, 2**128 - 1))])
    headers = Headers.from_tuples([(4, 5, 6, 1, 2, 6), (6, 5, 6, 1, 2, 6), (0, 5, 6, 1, 2, 6)])
    for engine in ("fast", "reference"):
        assert make_classifier(table, engine).classify(headers).tolist() == [0, 1, -1]


def test_empty_table_and_empty_batch():
    empty_table = RuleTable.from_rules([])
    headers = Headers.from_tuples([(4, 1, 2, 3, 4, 6)])
    assert FastClassifier(empty_table).classify(headers).tolist() == [-1]
    table = RuleTable.from_rules([Rule(4, (0, 10), (0, 10))])
    none = Headers.from_tuples([])
    for c in (FastClassifier(table), ReferenceClassifier(table)):
        out = c.classify(none)
        assert out.dtype == np.int32 and out.shape == (0,)


def _columns(n: int = 3) -> dict[str, np.ndarray]:
    return {name: np.zeros(n, dtype) for name, dtype in HEADER_COLUMNS.items()}


def test_headers_reject_wrong_dtype_shape_and_length():
    cols = _columns()
    cols["sport"] = cols["sport"].astype(np.int64)
    with pytest.raises(ValueError, match="sport"):
        Headers(**cols)
    cols = _columns()
    cols["dst_lo"] = np.zeros(4, np.uint64)
    with pytest.raises(ValueError, match="dst_lo"):
        Headers(**cols)
    cols = _columns()
    cols["l3"] = np.zeros((3, 1), np.uint8)
    with pytest.raises(ValueError, match="l3"):
        Headers(**cols)
    cols = _columns()
    cols["proto"] = [0, 0, 0]
    with pytest.raises(ValueError, match="proto"):
        Headers(**cols)


def test_compiled_entry_points_reject_hostile_arrays():
    table = RuleTable.from_rules([Rule(4, (0, 10), (0, 10))])
    fast = FastClassifier(table)
    with pytest.raises(TypeError):
        fast.classify(_columns())  # a dict, not Headers
    with pytest.raises(ValueError):
        fast.classify(Headers(**_columns()), out=np.zeros(3, np.int64))
    with pytest.raises(ValueError):
        fast.classify(Headers(**_columns()), out=np.zeros(2, np.int32))
    compiled = fast._compiled
    cols = _columns()
    args = [cols[name] for name in HEADER_COLUMNS]
    out = np.zeros(3, np.int32)
    compiled.classify(*args, out)  # the right arrays work
    assert out.tolist() == [-1, -1, -1]  # l3 0 is no IP version
    for i, name in enumerate(HEADER_COLUMNS):
        bad = list(args)
        bad[i] = args[i].astype(np.float64)
        with pytest.raises(ValueError):
            compiled.classify(*bad, out)
        bad[i] = args[i][:2]
        with pytest.raises(ValueError, match="same length"):
            compiled.classify(*bad, out)
    with pytest.raises(ValueError):
        compiled.classify(*args, np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match="same length"):
        compiled.classify(*args, np.zeros(4, np.int32))
    empty = [np.zeros(0, a.dtype) for a in args]
    compiled.classify(*empty, np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="different lengths"):
        _fastmatch.key_hashes(*args[:-1], args[-1][:1])


def test_compiled_build_checks_the_tuple_space():
    table = RuleTable.from_rules([Rule(4, (0, 255), (0, 10)), Rule(4, (7, 7), (1, 1), (5, 5), (6, 6), (6, 0xFF))])
    space = build_tuple_space(table)
    TupleClassifier = _fastmatch.TupleClassifier

    def variant(**changes):
        from dataclasses import replace

        return replace(space, **{k: np.asarray(v, getattr(space, k).dtype) for k, v in changes.items()})

    with pytest.raises(ValueError, match="twice"):
        TupleClassifier(table, variant(rule_order=[0, 0]))
    with pytest.raises(ValueError, match="out of range"):
        TupleClassifier(table, variant(rule_order=[0, 5]))
    with pytest.raises(ValueError, match="places"):
        TupleClassifier(table, variant(rule_order=[0], rule_tuple=[0]))
    nt = len(space)
    with pytest.raises(ValueError, match="prefix mask"):
        TupleClassifier(table, variant(sport_mask=[0x00FF] * nt))
    with pytest.raises(ValueError, match="not inside"):
        TupleClassifier(table, variant(src_mask_hi=[2**64 - 1] * nt, src_mask_lo=[2**64 - 1] * nt))
    with pytest.raises(AttributeError):
        TupleClassifier(table, object())


def test_rule_table_rejects_bad_rows():
    with pytest.raises(ValueError, match="l3"):
        RuleTable.from_rules([Rule(5, (0, 1), (0, 1))])
    with pytest.raises(ValueError, match="src"):
        RuleTable.from_rules([Rule(4, (0, 2**32), (0, 1))])
    with pytest.raises(ValueError, match="dport"):
        RuleTable.from_rules([Rule(4, (0, 1), (0, 1), (0, 1), (9, 8))])
    with pytest.raises(ValueError, match="protocol"):
        RuleTable.from_rules([Rule(4, (0, 1), (0, 1), proto=(0x16, 0x0F))])
    good = RuleTable.from_rules([Rule(6, (0, 1), (0, 1))])
    cols = {name: getattr(good, name) for name in good.__dataclass_fields__}
    cols["src_min_lo"] = np.array([2], np.uint64)
    with pytest.raises(ValueError, match="row 0: src"):
        RuleTable(**cols)
    cols["src_min_lo"] = np.array([0], np.int64)
    with pytest.raises(ValueError, match="src_min_lo"):
        RuleTable(**cols)
    assert good.rules() == [Rule(6, (0, 1), (0, 1), (0, 65535), (0, 65535), (0, 0))]


def test_rule_table_columns_are_read_only_copies():
    src = RuleTable.from_rules([Rule(4, (0, 1), (0, 1))])
    cols = {name: getattr(src, name).copy() for name in src.__dataclass_fields__}
    table = RuleTable(**cols)
    cols["dport_max"][0] = 7
    assert int(table.dport_max[0]) == 65535
    with pytest.raises(ValueError):
        table.dport_max[0] = 1


def test_engine_exposes_the_compiled_classifier():
    from sgdp.engine import Classifier

    table = RuleTable.from_rules([Rule(4, (0, 9), (0, 9), dport=(80, 80), proto=(6, 0xFF))])
    c = Classifier(table)
    assert c.nbytes == c.table_bytes > 0
    assert c.classify(Headers.from_tuples([(4, 1, 2, 3, 80, 6), (4, 1, 2, 3, 81, 6)])).tolist() == [0, -1]
