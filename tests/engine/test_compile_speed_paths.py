"""The compiled placement loop of build_tuple_space gives exactly the Python loop's answer, and the
fast engine's tables built from shared per-rule blocks equal the tables built row by row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.engine.compiler import RuleTable, build_tuple_space

from tests.engine.test_fastmatch import rules

pytest.importorskip("sgdp.engine._tuplespace")

FIELDS = ("rule_order", "rule_tuple", "src_len", "dst_len", "sport_len", "dport_len", "src_mask_hi", "src_mask_lo",
          "dst_mask_hi", "dst_mask_lo", "sport_mask", "dport_mask", "proto_mask")


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
                assert np.array_equal(getattr(got.table, name), getattr(want, name)), name
            space = build_tuple_space(want)  # lengths computed from the table itself, not taken from the store
            for name in ("rule_order", "rule_tuple", "src_len", "dst_len", "sport_len", "dport_len", "src_mask_hi",
                         "src_mask_lo", "dst_mask_hi", "dst_mask_lo", "sport_mask", "dport_mask", "proto_mask"):
                assert np.array_equal(getattr(got.classifier.space, name), getattr(space, name)), name
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
