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

from sgdp.engine.choice import fast_available
from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import PacketBatch
from sgdp.engine.reference import ReferenceEngine
from tests.topogen import packet_sequences, topologies

pytestmark = pytest.mark.skipif(not fast_available(), reason="the compiled engine is not built")

COLUMNS = ("verdict", "reason", "instance", "direction", "group", "rule")


def _run_both(topo_dict, packets, cuts):
    from sgdp.engine.fast import FastEngine

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
    from sgdp.capture.packet import VerdictBatch

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


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fast_equals_reference_across_a_rule_change(data):
    """S12: both engines keep their state across a topology version that drops, adds and reorders
    rules; every column still agrees."""
    import copy

    from sgdp.engine.fast import FastEngine
    from sgdp.pipeline.timeline import plan_change, union_names

    old_dict = data.draw(topologies())
    new_dict = copy.deepcopy(old_dict)
    for group in new_dict["security_groups"]:
        rules = group["rules"]
        if rules and data.draw(st.booleans()):
            rules.pop(data.draw(st.integers(0, len(rules) - 1)))
        if data.draw(st.booleans()):
            rules.append({"direction": data.draw(st.sampled_from(["ingress", "egress"])), "remote_ip_prefix": "0.0.0.0/0"})
        rules.reverse()
    old, new = topology_from_data(old_dict, "v1.yaml"), topology_from_data(new_dict, "v2.yaml")
    names = union_names([old, new])
    ref, fast = ReferenceEngine(old, names=names), FastEngine(old, names=names)
    packets = data.draw(packet_sequences(old_dict))
    cut = data.draw(st.integers(0, len(packets)))
    change = plan_change(old, new)
    for part, retarget in ((packets[:cut], True), (packets[cut:], False)):
        want, got = ref.process(PacketBatch.from_packets(part)), fast.process(PacketBatch.from_packets(part))
        for c in COLUMNS:
            assert getattr(got, c).tolist() == getattr(want, c).tolist(), c
        if retarget:
            for engine in (ref, fast):
                engine.retarget(new, names, change.nic_map, change.drop_sg, change.drop_acl)
