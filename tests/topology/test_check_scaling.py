"""`check` at scale: the indexed, exact coverage test of shadowing gives the answer of plain box
subtraction; walks shared by NICs; remote ranges merged; a topology at the cloud's limits checks
without quadratic work."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.topology.findings import Box, _covered
from sgdp.topology.policy import merge_ranges


def subtract(box: Box, cut: Box) -> list[Box]:
    """``box`` minus ``cut`` as up to 8 boxes."""
    for d in range(4):
        if cut[2 * d] > box[2 * d + 1] or cut[2 * d + 1] < box[2 * d]:
            return [box]
    out = []
    rest = list(box)
    for d in range(4):
        lo, hi = rest[2 * d], rest[2 * d + 1]
        clo, chi = cut[2 * d], cut[2 * d + 1]
        if lo < clo:
            piece = list(rest)
            piece[2 * d], piece[2 * d + 1] = lo, clo - 1
            out.append(tuple(piece))
        if hi > chi:
            piece = list(rest)
            piece[2 * d], piece[2 * d + 1] = chi + 1, hi
            out.append(tuple(piece))
        rest[2 * d], rest[2 * d + 1] = max(lo, clo), min(hi, chi)
    return out  # type: ignore[return-value]


def by_subtraction(box, cuts) -> bool:
    """The old test of shadowing, kept as the reference: subtract every cut, nothing may be left."""
    pieces = [box]
    for cut in cuts:
        pieces = [p for piece in pieces for p in subtract(piece, cut)]
    return not pieces


def _axis(draw, top: int, edges: list[int]) -> tuple[int, int]:
    a = draw(st.sampled_from(edges + [draw(st.integers(0, top))]))
    b = draw(st.sampled_from(edges + [draw(st.integers(0, top))]))
    return min(a, b), max(a, b)


@st.composite
def boxes(draw):
    proto = draw(st.sampled_from([(0, 255), (6, 6), (17, 17), (1, 1)]))
    x = _axis(draw, 65535, [0, 22, 23, 80, 443, 65535])
    addr = _axis(draw, 255, [0, 1, 10, 11, 128, 255])
    genuine = draw(st.sampled_from([(0, 1), (1, 1)]))
    return (*proto, *x, *addr, *genuine)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxes(), st.lists(boxes(), max_size=12))
def test_exact_cover_equals_subtraction(box, cuts):
    assert _covered(box, cuts) == by_subtraction(box, cuts)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1]))))
def test_merge_ranges_is_the_same_union(ranges):
    merged = merge_ranges(ranges)
    assert {v for lo, hi in ranges for v in range(lo, hi + 1)} == {v for lo, hi in merged for v in range(lo, hi + 1)}
    assert all(a[1] + 1 < b[0] for a, b in zip(merged, merged[1:]))


def test_limits_topology_checks_in_linear_time():
    """6,000 instances in one group, 5 groups per NIC, 120 quota-counted rules per group and
    direction, 1,000-entry address groups: `check` runs in seconds (it took minutes when each of
    the 6,000 NICs' walks was searched on its own)."""
    from sgdp.capture.synth import limits_topology
    from sgdp.topology.findings import check
    from sgdp.topology.model import topology_from_data

    topo = topology_from_data(limits_topology(6000), "limits")
    start = time.process_time()
    found = check(topo)
    assert time.process_time() - start < 30  # generous: about 1 s on a quiet core
    kinds = {f.kind for f in found}
    assert "not_effective" in kinds  # the legacy and Kai1 instances
    shadowed = [f for f in found if f.kind == "shadowed"]
    assert shadowed and all(f.instance is None for f in shadowed)  # summaries, not 6,000 findings a rule
    assert len({(f.security_group, f.rule) for f in shadowed}) == len(shadowed)
    assert any("of the 6,000 instances bound to it" in f.message for f in shadowed)
