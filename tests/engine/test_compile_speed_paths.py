"""The compiled placement loop of build_tuple_space gives exactly the Python loop's answer, and the
fast engine's tables built from shared per-rule blocks equal the tables built row by row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.engine.classifier import FastClassifier
from sgdp.engine.compiler import Headers, RuleTable, build_tuple_space, default_filter_bits, first_match_reference

from tests.engine.test_fastmatch import headers_for, rules

pytest.importorskip("sgdp._fastmatch")

FIELDS = ("rule_order", "rule_tuple", "src_len", "dst_len", "sport_len", "dport_len", "src_mask_hi", "src_mask_lo",
          "dst_mask_hi", "dst_mask_lo", "sport_mask", "dport_mask", "proto_mask")


def corner_headers(table: RuleTable, seed: int = 0) -> Headers:
    """Headers on both corners of every rule's box (and one step past them), plus random ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(len(table)):
        l3 = int(table.l3[i])
        top = (1 << (32 if l3 == 4 else 128)) - 1
        for end, step in (("min", 0), ("max", 0), ("min", -1), ("max", 1)):
            src = (int(getattr(table, f"src_{end}_hi")[i]) << 64) | int(getattr(table, f"src_{end}_lo")[i])
            dst = (int(getattr(table, f"dst_{end}_hi")[i]) << 64) | int(getattr(table, f"dst_{end}_lo")[i])
            sport, dport = int(getattr(table, f"sport_{end}")[i]), int(getattr(table, f"dport_{end}")[i])
            rows.append((l3, min(top, max(0, src + step)), min(top, max(0, dst + step)), min(65535, max(0, sport + step)),
                         min(65535, max(0, dport + step)), int(table.proto_value[i])))
    for _ in range(50):
        rows.append((4, int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 32)), int(rng.integers(0, 65536)),
                     int(rng.integers(0, 65536)), int(rng.choice([1, 6, 17]))))
    return Headers.from_tuples(rows)


def same_answers(compiled, classifier: FastClassifier, table: RuleTable, headers: Headers | None = None) -> None:
    """A classifier made by build_many answers as the table's own FastClassifier (and the reference)."""
    h = corner_headers(table) if headers is None else headers
    got = np.empty(len(h), np.int32)
    if len(h):
        compiled.classify(h.l3, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport, h.proto, got)
    assert got.tolist() == classifier.classify(h).tolist() == first_match_reference(table, h).tolist()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_build_many_equals_one_classifier_per_table(data):
    """Tables taken from one store (rows repeated, reordered, empty tables) built in one call answer
    as each table's own classifier, with the same number of tuples (the same placement)."""
    from sgdp._fastmatch import build_many

    store_rules = data.draw(st.lists(rules(), min_size=1, max_size=40))
    store = RuleTable.from_rules(store_rules)
    n_tables = data.draw(st.integers(1, 5))
    takes = [np.array(data.draw(st.lists(st.integers(0, len(store_rules) - 1), max_size=60)), np.int64)
             for _ in range(n_tables)]
    offsets = np.cumsum([0] + [len(t) for t in takes]).astype(np.int64)
    rows = np.concatenate(takes + [np.zeros(0, np.int64)])
    limit = data.draw(st.sampled_from([16, 1, 2]))
    built = build_many(store, rows, offsets, 16, limit)
    assert len(built) == n_tables
    for take, compiled in zip(takes, built):
        table = store.take(take)
        rule_list = [store_rules[k] for k in take]
        headers = Headers.from_tuples(data.draw(headers_for(rule_list)))
        same_answers(compiled, FastClassifier(table), table, headers)
        assert compiled.n_tuples == len(build_tuple_space(table, bucket_limit=limit).src_len)


def test_build_many_rejects_bad_offsets_and_rows():
    from sgdp._fastmatch import build_many
    from sgdp.engine.compiler import Rule

    store = RuleTable.from_rules([Rule(4, (1, 1), (2, 2))])
    with pytest.raises(ValueError, match="offsets"):
        build_many(store, np.zeros(2, np.int64), np.array([0, 1], np.int64), 16, 16)
    with pytest.raises(ValueError, match="row 5"):
        build_many(store, np.array([5], np.int64), np.array([0, 1], np.int64), 16, 16)
    with pytest.raises(ValueError, match="never built"):
        from sgdp._fastmatch import TupleClassifier

        h = corner_headers(store)
        TupleClassifier(None, None).classify(h.l3, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport, h.proto,
                                             np.empty(len(h), np.int32))


def test_default_bits_is_default_filter_bits():
    from sgdp._fastmatch import default_bits

    for n in [0, 1, 63, 64, 100, 511, 512, 1000, 8191, 8192, 10 ** 6]:
        assert default_bits(n) == default_filter_bits(n)


def same_space(table: RuleTable, **kw) -> None:
    a = build_tuple_space(table, compiled=True, **kw)
    b = build_tuple_space(table, compiled=False, **kw)
    for f in FIELDS:
        assert np.array_equal(getattr(a, f), getattr(b, f)), f


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rules(), max_size=60), st.sampled_from([1, 8, 16, 32]), st.sampled_from([1, 2, 16]))
def test_compiled_placement_equals_python(table_rules, step, limit):
    same_space(RuleTable.from_rules(table_rules), address_step=step, bucket_limit=limit)


def test_compiled_placement_overfull_buckets_and_empty_table():
    from sgdp.engine.compiler import Rule

    same_space(RuleTable.from_rules([]))
    many = [Rule(4, (0x0A000000, 0x0A0000FF), (0, 0xFFFFFFFF), (0, 65535), (80, 80), (6, 0xFF))] * 70
    same_space(RuleTable.from_rules(many), bucket_limit=4)


def test_engine_tables_equal_row_by_row_tables():
    """The per-rule blocks (sgdp.engine.fast._RuleRows) give each NIC table the rows of the walk,
    in walk order, as the boxes FastEngine._rule_boxes makes them one by one."""
    from sgdp.capture.synth import generated_topology
    from sgdp.engine.compiler import RULE_COLUMNS
    from sgdp.engine.fast import FastEngine
    from sgdp.topology.model import topology_from_data

    pytest.importorskip("sgdp.engine._dataplane")
    topo = topology_from_data(generated_topology(instances=24, groups=6, rules_per_group=20), "t")
    engine = FastEngine(topo)
    from sgdp.engine.fast import _RuleRows

    store = _RuleRows(engine).store  # the engine keeps no rule store once its tables are built
    seen = set()
    for nic in topo.nics:
        for direction, code in (("ingress", 1), ("egress", 2)):
            k = int(engine.nic_table[nic.index, code])
            if k in seen:
                continue
            seen.add(k)
            rows = engine._sg_rows(nic, direction)
            want = RuleTable.from_rules([b for b, _ in rows])
            got = engine.sg_tables[k]
            for name in RULE_COLUMNS:
                assert np.array_equal(getattr(store.take(got.rows), name), getattr(want, name)), name
            assert got.compiled.n_rules == len(want)
            same_answers(got.compiled, FastClassifier(want), want)
            assert got.row_rule.tolist() == [engine.rule_index[r.id] for _, r in rows]
            assert got.row_allow.tolist() == [int(r.action == "allow") for _, r in rows]
    assert len(seen) > 5


def test_take_is_the_rows_of_the_table():
    """RuleTable.take: the given rows in the given order (repeats allowed), read-only, equal to the
    table built from those rules."""
    from sgdp.engine.compiler import RULE_COLUMNS, Rule

    rules = [Rule(4, (k, k + 9), (0, 1), (0, 65535), (k, k + 1), (6, 0xFF)) for k in range(10)]
    rules.append(Rule(6, (1 << 100, (1 << 101) - 1), (1, 1)))
    table = RuleTable.from_rules(rules)
    rows = np.array([10, 3, 3, 0], np.int64)
    got = table.take(rows)
    want = RuleTable.from_rules([rules[k] for k in rows])
    for name in RULE_COLUMNS:
        col = getattr(got, name)
        assert np.array_equal(col, getattr(want, name)) and col.dtype == RULE_COLUMNS[name], name
        assert not col.flags.writeable
    assert len(table.take(np.zeros(0, np.int64))) == 0


def test_build_tuple_space_rejects_lengths_of_another_table():
    from sgdp.engine.compiler import Rule, prefix_lengths

    table = RuleTable.from_rules([Rule(4, (0, 255), (0, 1))] * 3)
    other = prefix_lengths(RuleTable.from_rules([Rule(4, (0, 255), (0, 1))] * 2))
    with pytest.raises(ValueError, match="prefix_lengths"):
        build_tuple_space(table, lengths=other)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_chained_parts_answer_as_one_table(data):
    """A table cut into consecutive parts, each compiled alone and chained, answers as the whole
    table compiled at once: the first part with a match holds the first match."""
    from sgdp._fastmatch import build_many, chain

    rule_list = data.draw(st.lists(rules(), min_size=1, max_size=50))
    table = RuleTable.from_rules(rule_list)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(rule_list)), max_size=5))) | {0, len(rule_list)})
    parts = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    offsets = np.array([0] + [b for _, b in parts], np.int64)
    built = build_many(table, np.arange(len(rule_list), dtype=np.int64), offsets, 16, 16)
    chained = chain(built, np.array([a for a, _ in parts], np.int64))
    assert chained.n_rules == len(rule_list)
    same_answers(chained, FastClassifier(table), table, Headers.from_tuples(data.draw(headers_for(rule_list))))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_unordered_chain_answers_the_first_part_with_a_match_at_its_offset(data):
    """chain(..., ordered=False): parts placed anywhere in one row space (in any order, with gaps)
    answer as the same parts chained in order, each answer moved from the part's place in the
    ordered chain to its place in that space: the first part (in the order given) with a match wins."""
    from sgdp._fastmatch import build_many, chain

    rule_list = data.draw(st.lists(rules(), min_size=1, max_size=40))
    table = RuleTable.from_rules(rule_list)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(rule_list)), max_size=4))) | {0, len(rule_list)})
    parts = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    built = build_many(table, np.arange(len(rule_list), dtype=np.int64),
                       np.array([0] + [b for _, b in parts], np.int64), 16, 16)
    ordered = chain(built, np.array([a for a, _ in parts], np.int64))
    # each part somewhere in a larger space: shuffled, with a gap before each
    order = data.draw(st.permutations(range(len(parts))))
    place, at = {}, 0
    for k in order:
        at += data.draw(st.integers(0, 5))
        place[k] = at
        at += parts[k][1] - parts[k][0]
    spread = chain(built, np.array([place[k] for k in range(len(parts))], np.int64), ordered=False)
    assert spread.n_rules == max(place[k] + b - a for k, (a, b) in enumerate(parts))
    h = Headers.from_tuples(data.draw(headers_for(rule_list)))
    want = np.empty(len(h), np.int32)
    got = np.empty(len(h), np.int32)
    if len(h):
        ordered.classify(h.l3, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport, h.proto, want)
        spread.classify(h.l3, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport, h.proto, got)
    for w, g in zip(want.tolist(), got.tolist()):
        if w < 0:
            assert g == -1
        else:
            k = next(k for k, (a, b) in enumerate(parts) if a <= w < b)
            assert g == place[k] + w - parts[k][0]


def test_the_dataplane_tables_name_the_rules_of_the_engine_tables():
    """The security-group tables the dataplane reads answer in the rows of every group walk; the
    rule and action they name are those the NIC table's own classifier names by its rows."""
    from sgdp.capture.synth import generated_topology
    from sgdp.engine.fast import FastEngine
    from sgdp.topology.model import topology_from_data

    pytest.importorskip("sgdp.engine._dataplane")
    topo = topology_from_data(generated_topology(instances=24, groups=6, rules_per_group=20), "t")
    engine = FastEngine(topo)
    rng = np.random.default_rng(5)
    n = 4000
    h = Headers(l3=np.full(n, 4, np.uint8), src_hi=np.zeros(n, np.uint64),
                src_lo=np.where(rng.random(n) < 0.5, rng.integers(0x0A000000, 0x0A0003FF, n),
                                rng.integers(0, 1 << 32, n)).astype(np.uint64),
                dst_hi=np.zeros(n, np.uint64), dst_lo=rng.integers(0, 2, n).astype(np.uint64),
                sport=np.zeros(n, np.uint16), dport=rng.integers(0, 1200, n).astype(np.uint16),
                proto=rng.choice(np.array([1, 6, 17], np.uint8), n))
    matched = 0
    for t in engine.sg_tables:
        want = np.empty(n, np.int32)
        got = np.empty(n, np.int32)
        t.compiled.classify(h.l3, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport, h.proto, want)
        t.walk_compiled.classify(h.l3, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport, h.proto, got)
        assert ((want < 0) == (got < 0)).all()
        hit = want >= 0
        assert (t.row_rule[want[hit]] == engine._walk_rule[got[hit]]).all()
        assert (t.row_allow[want[hit]] == engine._walk_allow[got[hit]]).all()
        matched += int(hit.sum())
    assert matched > 1000


def test_chain_rejects_overlapping_offsets_and_chains():
    from sgdp._fastmatch import build_many, chain
    from sgdp.engine.compiler import Rule

    table = RuleTable.from_rules([Rule(4, (1, 1), (2, 2)), Rule(4, (3, 3), (4, 4))])
    a, b = build_many(table, np.arange(2, dtype=np.int64), np.array([0, 1, 2], np.int64), 16, 16)
    with pytest.raises(ValueError, match="room"):
        chain([a, b], np.array([0, 0], np.int64))
    with pytest.raises(ValueError, match="one offset per part"):
        chain([a, b], np.array([0], np.int64))
    with pytest.raises(ValueError, match="plain tables"):
        chain([chain([a, b], np.array([0, 1], np.int64))], np.array([0], np.int64))
