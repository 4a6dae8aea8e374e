"""IP fragments (S15): "A non-first IP fragment carries no ports: it gets the verdict of its datagram's
first fragment (the same row: verdict, reason, instance, direction, group, rule) when that was seen,
else it is evaluated with no ports (only rules without ports can match)."

b1's ingress: a deny of tcp 23 and allows of tcp 22 / udp 53 / ICMP echo (all with ports or an ICMP
type), plus an allow of every protocol from a1 only (no ports, priority 50). a1 and a2 may send
anything. Non-first fragments below still carry the port numbers in their spec: the engine must ignore
them, as a real non-first fragment has none.
"""

from __future__ import annotations

import pytest

from sgdp.capture.packet import Verdict

V6A = "2407:c080:802:469"
A1, A2, B1 = "192.168.0.10", "192.168.0.20", "192.168.0.30"


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": f"{V6A}::/64"}]}],
    "security_groups": [
        {"name": "senders", "rules": [
            {"id": "s-out4", "direction": "egress"},
            {"id": "s-out6", "direction": "egress", "ethertype": "IPv6"},
        ]},
        {"name": "frag", "rules": [
            {"id": "f-deny-23", "direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "23"},
            {"id": "f-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22"},
            {"id": "f-dns", "direction": "ingress", "protocol": "udp", "multiport": "53"},
            {"id": "f-ping", "direction": "ingress", "protocol": "icmp", "port_range_min": 8},
            {"id": "f-ssh6", "direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "multiport": "22"},
            {"id": "f-any-a1", "direction": "ingress", "priority": 50, "remote_ip_prefix": "192.168.0.10/32"},
        ]},
    ],
    "instances": [
        {"name": "a1", "subnet": "Subnet-A", "ip": A1, "security_groups": ["senders"]},
        {"name": "a2", "subnet": "Subnet-A", "ip": A2, "ipv6": f"{V6A}::20", "security_groups": ["senders"]},
        {"name": "b1", "subnet": "Subnet-A", "ip": B1, "ipv6": f"{V6A}::30", "security_groups": ["frag"]},
    ],
}


def first(src, dst, proto="tcp", dport=22, frag_id=100, **kw):
    spec = {"src": src, "dst": dst, "proto": proto, "frag_id": frag_id, "frag_offset": 0, "more_fragments": True, **kw}
    if proto in ("tcp", "udp"):
        spec["dport"] = dport
    return spec


def later(src, dst, proto="tcp", dport=22, frag_id=100, offset=185, more=False, **kw):
    spec = {"src": src, "dst": dst, "proto": proto, "frag_id": frag_id, "frag_offset": offset, "more_fragments": more, **kw}
    if proto in ("tcp", "udp"):
        spec["dport"] = dport
    return spec


SSH = V("allow", "rule", "b1", "ingress", "frag", "f-ssh")
DENY = V("deny", "default", "b1", "ingress")


# ---------------------------------------------------------------------------- with the first seen

def test_s15_non_first_fragments_copy_first_fragment_allow_row(run):
    out = run(TOPO, [first(A2, B1), later(A2, B1, offset=185, more=True), later(A2, B1, offset=370)])
    assert out == [SSH, SSH, SSH]


# The copy is the same row: reason `rule` and its rule, not `established` from the entry the first
# fragment opened.
def test_s15_copied_row_keeps_reason_rule_not_established(run):
    out = run(TOPO, [first(A2, B1), {**later(A2, B1), "time": 0.5}])
    assert out[1] == SSH


# The first fragment is denied by f-deny-23; evaluated alone (no ports) the later fragment would be
# allowed by f-any-a1 - but it copies the deny.
def test_s15_non_first_fragment_copies_first_fragment_deny_row(run):
    out = run(TOPO, [first(A1, B1, dport=23), later(A1, B1, dport=23)])
    assert out == [V("deny", "rule", "b1", "ingress", "frag", "f-deny-23")] * 2


def test_s15_non_first_fragment_copies_no_route_row(run):
    out = run(TOPO, [first("8.8.8.8", B1), later("8.8.8.8", B1)])
    assert out == [V("deny", "no_route", "b1")] * 2


def test_s15_non_first_fragment_copies_icmp_row(run):
    ping = {"icmp_type": 8, "icmp_code": 0, "icmp_id": 5}
    out = run(TOPO, [first(A2, B1, "icmp", frag_id=200, **ping), later(A2, B1, "icmp", frag_id=200)])
    assert out == [V("allow", "rule", "b1", "ingress", "frag", "f-ping")] * 2


def test_s15_non_first_fragment_copies_ipv6_row(run):
    out = run(TOPO, [first(f"{V6A}::20", f"{V6A}::30", frag_id=300), later(f"{V6A}::20", f"{V6A}::30", frag_id=300)])
    assert out == [V("allow", "rule", "b1", "ingress", "frag", "f-ssh6")] * 2


# --------------------------------------------------------------------------- without the first

# Without its first fragment the packet is evaluated without ports: f-ssh (ports) cannot match, and
# nothing portless allows a2 -> default deny, whatever port numbers the spec carries.
def test_s15_non_first_fragment_without_first_has_no_ports(run):
    assert run(TOPO, [later(A2, B1)]) == [DENY]


def test_s15_non_first_fragment_without_first_udp(run):
    assert run(TOPO, [later(A2, B1, "udp", dport=53)]) == [DENY]


def test_s15_non_first_fragment_without_first_ipv6(run):
    assert run(TOPO, [later(f"{V6A}::20", f"{V6A}::30", frag_id=301)]) == [DENY]


# Only rules without ports can match: f-any-a1 (no ports) matches a1's fragment; f-deny-23 (ports)
# cannot, even though the spec says dport 23.
def test_s15_non_first_fragment_without_first_matches_portless_rules(run):
    out = run(TOPO, [later(A1, B1, dport=22), later(A1, B1, dport=23, frag_id=101)])
    assert out == [V("allow", "rule", "b1", "ingress", "frag", "f-any-a1")] * 2


# An ICMP type lives in the first fragment; a later fragment alone cannot match a typed ICMP rule.
def test_s15_non_first_icmp_fragment_without_first_cannot_match_icmp_type(run):
    assert run(TOPO, [later(A2, B1, "icmp", frag_id=201)]) == [DENY]


# The datagram is identified by its fragment id (and addresses, protocol): another id, another source
# or another protocol is not the same datagram.
@pytest.mark.parametrize("other", [
    later(A2, B1, frag_id=101),
    later(A2, B1, "udp", dport=22),
    later(f"{V6A}::20", f"{V6A}::30"),
])
def test_s15_fragment_of_another_datagram_does_not_copy(run, other):
    out = run(TOPO, [first(A2, B1), other])
    assert out == [SSH, DENY]


def test_s15_fragment_from_another_source_does_not_copy(run):
    # a1's first fragment is allowed by f-ssh; a2's later fragment with the same id is evaluated alone
    out = run(TOPO, [first(A1, B1), later(A2, B1)])
    assert out == [SSH, DENY]


# docs/semantics.md: a later fragment without its first is evaluated "without connection tracking":
# b1 has no egress rule, so its reply fragment is denied even though the flow is established.
def test_s15_non_first_fragment_without_first_not_tracked(run):
    syn = {"src": A2, "dst": B1, "proto": "tcp", "dport": 22}
    frag = {"src": B1, "dst": A2, "proto": "tcp", "sport": 22, "dport": 40000, "flags": "A",
            "frag_id": 400, "frag_offset": 185, "more_fragments": False, "time": 1.0}
    assert run(TOPO, [syn, frag]) == [SSH, V("deny", "default", "b1", "egress")]
