"""The fast engine agrees with the reference engine on every column, packet by packet (issue 3).

Random topologies (several VPCs and peerings, 1–4 groups per NIC, every rule kind including address
groups with ranges and IPv6, legacy and Kai1 flavours, virtual IPs, EIPs, load balancers, ACLs) and
packet sequences (replies, retransmissions, FIN and RST, ICMP errors, fragments, time gaps across
every timeout, out-of-order timestamps), split into batches at random points.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.engine import fast_available
from sgdp.model import topology_from_data
from sgdp.packet import PacketBatch
from sgdp.reference import ReferenceEngine
from tests.topogen import packet_sequences, topologies

pytestmark = pytest.mark.skipif(not fast_available(), reason="the compiled engine is not built")

COLUMNS = ("verdict", "reason", "instance", "direction", "group", "rule")


def _run_both(topo_dict, packets, cuts):
    from sgdp.fast import FastEngine

    topo = topology_from_data(topo_dict, "generated.yaml")
    ref, fast = ReferenceEngine(topo), FastEngine(topo)
    expected = ref.process(PacketBatch.from_packets(packets))
    got = {c: [] for c in COLUMNS}
    bounds = [0] + sorted(set(min(c, len(packets)) for c in cuts)) + [len(packets)]
    for a, b in zip(bounds, bounds[1:]):
        out = fast.process(PacketBatch.from_packets(packets[a:b]))
        for c in COLUMNS:
            got[c].extend(getattr(out, c).tolist())
    for i in range(len(packets)):
        want = ref.names.decode(expected, i)
        have = tuple(got[c][i] for c in COLUMNS)
        have_v = fast.names.decode(_one(have), 0)
        assert have_v == want, f"packet {i}: {packets[i]}\nreference {want}\nfast      {have_v}"
    assert fast.rule_hits() == ref.rule_hits()


def _one(row):
    from sgdp.packet import VerdictBatch

    vb = VerdictBatch(1)
    for c, v in zip(COLUMNS, row):
        getattr(vb, c)[0] = v
    return vb


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fast_equals_reference_on_random_topologies(data):
    topo = data.draw(topologies())
    packets = data.draw(packet_sequences(topo))
    cuts = data.draw(st.lists(st.integers(0, len(packets)), max_size=3))
    _run_both(topo, packets, cuts)
