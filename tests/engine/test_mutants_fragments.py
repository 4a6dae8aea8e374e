"""IP fragments (S15): cases that mutation testing showed the other tests left open.

S15: "A non-first IP fragment carries no ports: it gets the verdict of its datagram's first fragment
(the same row ...) when that was seen, else it is evaluated with no ports (only rules without ports can
match)." docs/semantics.md: "A first fragment (offset 0, more-fragments set) remembers its row under
(IP version, source, destination, protocol, identification) for 30 s (Linux's ipfrag_time); later
fragments of the datagram within that time get the same row", and the dataplane clock (the latest
capture timestamp) never goes back, so an out-of-order packet never revives "a remembered fragment".
The boundary follows the clock rule of S11 in docs/semantics.md: still remembered at exactly 30 s.

b1's ingress allows tcp 22 (a rule with ports) and every protocol from a1 only (no ports); a2 sends.
A non-first fragment from a2 evaluated on its own therefore matches nothing: default deny.
"""

from __future__ import annotations

import pytest

from sgdp.capture.packet import Verdict

A1, A2, B1 = "192.168.0.10", "192.168.0.20", "192.168.0.30"


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]}],
    "security_groups": [
        {"name": "senders", "rules": [{"id": "s-out4", "direction": "egress"}]},
        {"name": "frag", "rules": [
            {"id": "f-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22"},
            {"id": "f-any-a1", "direction": "ingress", "priority": 50, "remote_ip_prefix": "192.168.0.10/32"},
        ]},
    ],
    "instances": [
        {"name": "a1", "subnet": "Subnet-A", "ip": A1, "security_groups": ["senders"]},
        {"name": "a2", "subnet": "Subnet-A", "ip": A2, "security_groups": ["senders"]},
        {"name": "b1", "subnet": "Subnet-A", "ip": B1, "security_groups": ["frag"]},
    ],
}

SSH = V("allow", "rule", "b1", "ingress", "frag", "f-ssh")
DENY = V("deny", "default", "b1", "ingress")


def first(t=0.0, frag_id=100, **kw):
    return {"src": A2, "dst": B1, "proto": "tcp", "dport": 22, "frag_id": frag_id, "frag_offset": 0,
            "more_fragments": True, "time": t, **kw}


def later(t, frag_id=100, **kw):
    return {"src": A2, "dst": B1, "proto": "tcp", "dport": 22, "frag_id": frag_id, "frag_offset": 185,
            "more_fragments": False, "time": t, **kw}


# The first fragment's row is remembered for 30 s: a later fragment 30 s after it still copies it;
# one more millisecond and the later fragment is evaluated alone (no ports: f-ssh cannot match).
@pytest.mark.parametrize("gap,copied", [(10.0, True), (29.999, True), (30.0, True), (30.001, False), (300.0, False)])
def test_s15_first_fragment_row_remembered_for_30s(run, gap, copied):
    assert run(TOPO, [first(0.0), later(gap)]) == [SSH, SSH if copied else DENY]


# Each later fragment is measured from the first fragment, not from the previous later fragment: a
# middle fragment does not extend the memory.
def test_s15_later_fragments_do_not_extend_the_memory(run):
    mid = later(20.0, more_fragments=True, frag_offset=100)
    assert run(TOPO, [first(0.0), mid, later(35.0)]) == [SSH, SSH, DENY]


# The clock never goes back: a later fragment captured out of order (its timestamp is within 30 s of
# the first fragment) but read after a packet 40 s later is past the memory.
def test_s15_out_of_order_fragment_does_not_revive_memory(run):
    other = {"src": A1, "dst": B1, "proto": "udp", "dport": 9, "time": 40.0}
    assert run(TOPO, [first(0.0), other, later(10.0)]) == [
        SSH, V("allow", "rule", "b1", "ingress", "frag", "f-any-a1"), DENY]


# An unfragmented packet (offset 0, more-fragments clear) is a whole datagram, not a first fragment:
# a later non-first fragment that happens to carry the same identification is not part of it and is
# evaluated without ports.
@pytest.mark.parametrize("frag_id", [0, 100])
def test_s15_unfragmented_packet_is_not_a_first_fragment(run, frag_id):
    whole = {**first(0.0, frag_id=frag_id), "more_fragments": False}
    assert run(TOPO, [whole, later(1.0, frag_id=frag_id)]) == [SSH, DENY]


# A new first fragment with the same identification (a later datagram reusing the id) replaces the
# remembered row and restarts the 30 s.
def test_s15_new_first_fragment_restarts_memory(run):
    out = run(TOPO, [first(0.0), later(1.0), first(20.0, dport=23), later(45.0)])
    assert out == [SSH, SSH, DENY, DENY]
    out = run(TOPO, [first(0.0, dport=23), first(20.0), later(45.0)])
    assert out == [DENY, SSH, SSH]


# The memory of one datagram is not lost because many other first fragments are remembered after it
# (other datagrams, or the same later datagram sent again and again), while it is within its 30 s.
def test_s15_fragment_memory_survives_other_datagrams(run):
    others = ([first(10.0, frag_id=1000 + (k % 3), sport=1000 + k) for k in range(120)]
              + [first(12.0, frag_id=2000 + k, sport=2000 + k) for k in range(100)])
    out = run(TOPO, [first(0.0)] + others + [later(20.0)])
    assert out == [SSH] * 222
