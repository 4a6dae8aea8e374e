"""Connection tracking (S11): cases that mutation testing showed the other tests left open.

Set-up (as in test_conntrack.py): NIC a1 (192.168.0.10, IPv6 ...::10) whose ingress allows ssh, dns
(IPv4 and IPv6) and ping, whose egress allows only tcp 443; the peer P is an unlisted host of the VPC, so only a1's
stage is checked (S6). Every packet from a1 to P that no egress rule allows is a probe of a1's
connection table: it passes only as `established` or `related`.

Every expectation is worked out from SPEC S11 and docs/semantics.md, never from the engines.
"""

from __future__ import annotations

import pytest

from sgdp.capture.packet import Verdict

T0 = 1_700_000_000.0
A, P = "192.168.0.10", "192.168.0.50"
A6, P6 = "2407:c080:802:469::10", "2407:c080:802:469::50"


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": "2407:c080:802:469::/64"}]}],
    "security_groups": [
        {"name": "srv", "rules": [
            {"id": "srv-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22"},
            {"id": "srv-dns", "direction": "ingress", "protocol": "udp", "multiport": "53"},
            {"id": "srv-ping", "direction": "ingress", "protocol": "icmp", "port_range_min": 8},
            {"id": "srv-https-out", "direction": "egress", "protocol": "tcp", "multiport": "443"},
            {"id": "srv-dns6", "direction": "ingress", "ethertype": "IPv6", "protocol": "udp", "multiport": "53"},
        ]},
    ],
    "instances": [
        {"name": "a1", "subnet": "Subnet-A", "ip": A, "ipv6": A6, "security_groups": ["srv"]},
    ],
}

DNS_IN = V("allow", "rule", "a1", "ingress", "srv", "srv-dns")
SSH_IN = V("allow", "rule", "a1", "ingress", "srv", "srv-ssh")
RELATED_OUT = V("allow", "related", "a1", "egress")
EST_OUT = V("allow", "established", "a1", "egress")
DENY_OUT = V("deny", "default", "a1", "egress")


def dns_query(t=0.0):
    return {"src": P, "dst": A, "proto": "udp", "sport": 40000, "dport": 53, "time": T0 + t}


def icmp_error(icmp_type, icmp_code, t=1.0):
    """An ICMP error a1 sends back to P about P's DNS query (its embedded header)."""
    return {"src": A, "dst": P, "proto": "icmp", "icmp_type": icmp_type, "icmp_code": icmp_code, "time": T0 + t,
            "inner": {"src": P, "dst": A, "proto": "udp", "sport": 40000, "dport": 53}}


# S11 "ICMP/ICMPv6 error messages whose embedded header belongs to a tracked connection pass as
# related"; docs/semantics.md: "ICMPv4 errors are types 3, 4, 5, 11, 12". Every one of them is an error:
# after P's query opened an entry at a1, the error a1 sends about it passes a1's egress as related
# (no egress rule allows ICMP); without the query it is evaluated and denied.
@pytest.mark.parametrize("icmp_type,icmp_code", [(3, 3), (4, 0), (5, 1), (11, 0), (12, 0)])
def test_s11_every_icmpv4_error_type_is_related(run, icmp_type, icmp_code):
    assert run(TOPO, [dns_query(), icmp_error(icmp_type, icmp_code)]) == [DNS_IN, RELATED_OUT]
    assert run(TOPO, [icmp_error(icmp_type, icmp_code, t=0.0)]) == [DENY_OUT]


# docs/semantics.md: "ICMPv6 errors 1–4" (destination unreachable, packet too big, time exceeded,
# parameter problem): each one about a tracked connection is related.
@pytest.mark.parametrize("icmp_type,icmp_code", [(1, 4), (2, 0), (3, 0), (4, 1)])
def test_s11_every_icmpv6_error_type_is_related(run, icmp_type, icmp_code):
    q = {"src": P6, "dst": A6, "proto": "udp", "sport": 40000, "dport": 53, "time": T0}
    err = {"src": A6, "dst": P6, "proto": "icmpv6", "icmp_type": icmp_type, "icmp_code": icmp_code, "time": T0 + 1,
           "inner": {"src": P6, "dst": A6, "proto": "udp", "sport": 40000, "dport": 53}}
    assert run(TOPO, [q, err]) == [V("allow", "rule", "a1", "ingress", "srv", "srv-dns6"), RELATED_OUT]
    assert run(TOPO, [{**err, "time": T0}]) == [DENY_OUT]


# S11 "An entry expires when the idle gap exceeds its timeout" holds for the related check too: an
# error exactly 30 s after the unreplied UDP query is still related; just after, it is evaluated.
@pytest.mark.parametrize("gap,related", [(30.0, True), (30.001, False)])
def test_s11_related_at_exact_timeout_boundary(run, gap, related):
    assert run(TOPO, [dns_query(), icmp_error(3, 3, t=gap)]) == [DNS_IN, RELATED_OUT if related else DENY_OUT]


# The same boundary for an established TCP connection (600 s): P's ssh session got a1's reply, then
# an error about it 600 s after the last packet is related.
@pytest.mark.parametrize("gap,related", [(600.0, True), (600.001, False)])
def test_s11_related_tcp_established_boundary(run, gap, related):
    syn = {"src": P, "dst": A, "proto": "tcp", "sport": 40000, "dport": 22, "flags": "S", "time": T0}
    synack = {"src": A, "dst": P, "proto": "tcp", "sport": 22, "dport": 40000, "flags": "SA", "time": T0 + 1}
    err = {"src": A, "dst": P, "proto": "icmp", "icmp_type": 3, "icmp_code": 1, "time": T0 + 1 + gap,
           "inner": {"src": P, "dst": A, "proto": "tcp", "sport": 40000, "dport": 22}}
    assert run(TOPO, [syn, synack, err]) == [SSH_IN, EST_OUT, RELATED_OUT if related else DENY_OUT]


# An error about an ICMP echo is related to the echo's entry, which is keyed by the identifier (S11
# "ICMP echo (addresses, identifier)"; docs/semantics.md: "An embedded ICMP header is looked up as an
# echo with the embedded identifier"): P pings a1 with identifier 7; a1's error about that echo is
# related, an error about an echo with identifier 8 is not.
@pytest.mark.parametrize("ident,related", [(7, True), (8, False)])
def test_s11_error_about_echo_matches_identifier(run, ident, related):
    ping = {"src": P, "dst": A, "proto": "icmp", "icmp_type": 8, "icmp_code": 0, "icmp_id": 7, "time": T0}
    err = {"src": A, "dst": P, "proto": "icmp", "icmp_type": 3, "icmp_code": 1, "time": T0 + 1,
           "inner": {"src": P, "dst": A, "proto": "icmp", "icmp_id": ident}}
    assert run(TOPO, [ping, err]) == [V("allow", "rule", "a1", "ingress", "srv", "srv-ping"),
                                      RELATED_OUT if related else DENY_OUT]


# An ICMP type that is neither echo nor an error (router advertisement 9, information request 15) is
# never related, even with an embedded-looking header: S11 "ICMP messages other than echo and errors
# open no entry and are evaluated by the rules every time".
@pytest.mark.parametrize("icmp_type", [9, 15])
def test_s11_non_error_icmp_type_is_never_related(run, icmp_type):
    assert run(TOPO, [dns_query(), icmp_error(icmp_type, 0)]) == [DNS_IN, DENY_OUT]


# ------------------------------------------------------------------------------ many connections

def _udp_in(sport, t):
    return {"src": P, "dst": A, "proto": "udp", "sport": sport, "dport": 53, "time": T0 + t}


def _udp_out(sport, t):
    return {"src": A, "dst": P, "proto": "udp", "sport": 53, "dport": sport, "time": T0 + t}


# S11 at scale: each entry lives and expires on its own clock, however many other entries come and go
# around it. 300 queries at t=0, 300 at t=10; at t=35 every reply is tried: the first 300 entries are
# 35 s idle (> 30 s unreplied: expired, the reply is evaluated and denied), the other 300 are 25 s idle
# (alive: established). Expired entries are forgotten on the way, which must not lose live ones.
def test_s11_many_connections_expire_independently(run):
    old, new = range(20000, 20300), range(30000, 30300)
    packets = [_udp_in(s, 0.0) for s in old] + [_udp_in(s, 10.0) for s in new]
    replies = [x for pair in zip(old, new) for x in pair]
    packets += [_udp_out(s, 35.0) for s in replies]
    out = run(TOPO, packets)
    assert out[:600] == [DNS_IN] * 600
    assert out[600:] == [DENY_OUT if s < 30000 else EST_OUT for s in replies]


# An entry that is alive is never forgotten because other connections are opened later: 400 new
# queries 20 s after the first one (the first entry is then 20 s idle, within its 30 s) leave it alive.
def test_s11_live_entry_survives_many_later_connections(run):
    packets = [_udp_in(10000, 0.0)] + [_udp_in(s, 20.0) for s in range(20000, 20400)] + [_udp_out(10000, 21.0)]
    out = run(TOPO, packets)
    assert out[-1] == EST_OUT
    assert out[:-1] == [DNS_IN] * 401
