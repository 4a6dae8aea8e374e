"""Connection tracking (S11): per-NIC entries, states, timeouts, related ICMP errors, EIP = private IP.

Set-up: NIC a1 (192.168.0.10, EIP 203.0.113.10) whose ingress allows a few services and whose egress
allows almost nothing; the peer is an unlisted host of the VPC (192.168.0.50), so only a1's stage is
checked (S6). A packet from a1 back to the peer can then only pass as `established`/`related`: it is a
probe of whether a1's entry is alive. Every probe is its own run where it would refresh the entry.

Boundaries (S11): "An entry expires when the idle gap exceeds its timeout" - a gap equal to the
timeout is still alive, a gap just over it is not.
"""

from __future__ import annotations

import pytest

from sgdp.capture.packet import Verdict

T0 = 1_700_000_000.0
A, P = "192.168.0.10", "192.168.0.50"
EIP = "203.0.113.10"
NET = "198.51.100.7"
A6, P6 = "2407:c080:802:469::10", "2407:c080:802:469::50"


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


EST_OUT = V("allow", "established", "a1", "egress")
EST_IN = V("allow", "established", "a1", "ingress")
DENY_OUT = V("deny", "default", "a1", "egress")
DENY_IN = V("deny", "default", "a1", "ingress")

TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24",
                                                                         "ipv6_cidr": "2407:c080:802:469::/64"}]}],
    "security_groups": [
        {"name": "srv", "rules": [
            {"id": "srv-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22"},
            {"id": "srv-dns", "direction": "ingress", "protocol": "udp", "multiport": "53"},
            {"id": "srv-ping", "direction": "ingress", "protocol": "icmp", "port_range_min": 8},
            {"id": "srv-ts", "direction": "ingress", "protocol": "icmp", "port_range_min": 13},
            {"id": "srv-gre", "direction": "ingress", "protocol": "gre"},
            {"id": "srv-https-out", "direction": "egress", "protocol": "tcp", "multiport": "443"},
            {"id": "srv-ntp-out", "direction": "egress", "protocol": "udp", "multiport": "123"},
            {"id": "srv-dns6", "direction": "ingress", "ethertype": "IPv6", "protocol": "udp", "multiport": "53"},
            {"id": "srv-ping6", "direction": "ingress", "ethertype": "IPv6", "protocol": "icmpv6", "port_range_min": 128},
        ]},
        {"name": "sb", "rules": [{"id": "sb-in", "direction": "ingress", "protocol": "tcp", "multiport": "5000"}]},
        {"name": "closed", "rules": []},
    ],
    "instances": [
        {"name": "a1", "subnet": "Subnet-A", "ip": A, "ipv6": A6, "eip": EIP, "security_groups": ["srv"]},
        {"name": "b1", "subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["sb"]},
        {"name": "b2", "subnet": "Subnet-A", "ip": "192.168.0.30", "security_groups": ["closed"]},
    ],
}

SSH_IN = V("allow", "rule", "a1", "ingress", "srv", "srv-ssh")
DNS_IN = V("allow", "rule", "a1", "ingress", "srv", "srv-dns")
PING_IN = V("allow", "rule", "a1", "ingress", "srv", "srv-ping")
GRE_IN = V("allow", "rule", "a1", "ingress", "srv", "srv-gre")


def tin(t, flags="S"):
    """Peer -> a1:22."""
    return {"src": P, "dst": A, "proto": "tcp", "sport": 40000, "dport": 22, "flags": flags, "time": T0 + t}


def tout(t, flags="A"):
    """a1:22 -> peer (the reply direction); no egress rule allows it."""
    return {"src": A, "dst": P, "proto": "tcp", "sport": 22, "dport": 40000, "flags": flags, "time": T0 + t}


def uin(t):
    return {"src": P, "dst": A, "proto": "udp", "sport": 40000, "dport": 53, "time": T0 + t}


def uout(t):
    return {"src": A, "dst": P, "proto": "udp", "sport": 53, "dport": 40000, "time": T0 + t}


def gin(t):
    return {"src": P, "dst": A, "proto": "gre", "time": T0 + t}


def gout(t):
    return {"src": A, "dst": P, "proto": "gre", "time": T0 + t}


def ping_in(t, ident=7):
    return {"src": P, "dst": A, "proto": "icmp", "icmp_type": 8, "icmp_code": 0, "icmp_id": ident, "time": T0 + t}


def pong_out(t, ident=7):
    return {"src": A, "dst": P, "proto": "icmp", "icmp_type": 0, "icmp_code": 0, "icmp_id": ident, "time": T0 + t}


# ------------------------------------------------------------------------------------------- TCP

# S11: "A TCP entry opened by a SYN without ACK starts not yet established" (30 s).
@pytest.mark.parametrize("gap,alive", [(0.5, True), (30.0, True), (30.001, False), (31.0, False)])
def test_s11_tcp_syn_opens_not_established_30s(run, gap, alive):
    out = run(TOPO, [tin(0), tout(gap, "SA")])
    assert out == [SSH_IN, EST_OUT if alive else DENY_OUT]


# S11: "established (a packet seen in the reply direction) 600 s".
@pytest.mark.parametrize("gap,alive", [(300.0, True), (600.0, True), (600.001, False)])
def test_s11_tcp_established_timeout_600(run, gap, alive):
    out = run(TOPO, [tin(0), tout(1, "SA"), tout(1 + gap)])
    assert out == [SSH_IN, EST_OUT, EST_OUT if alive else DENY_OUT]


# S11: packets in the original direction only do not establish: the entry keeps the 30 s timeout,
# refreshed by each packet.
@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_tcp_original_direction_only_stays_not_established(run, gap, alive):
    out = run(TOPO, [tin(0), tin(20, "A"), tout(20 + gap)])
    assert out == [SSH_IN, EST_IN, EST_OUT if alive else DENY_OUT]


# S11: traffic in either direction refreshes an established entry.
def test_s11_tcp_established_refreshed_by_either_direction(run):
    out = run(TOPO, [tin(0), tout(1, "SA"), tin(500, "A"), tout(1100), tin(1700, "PA"), tout(2300.001)])
    assert out == [SSH_IN, EST_OUT, EST_IN, EST_OUT, EST_IN, DENY_OUT]


# S11: "closing (after a FIN or RST in either direction) 30 s".
@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_tcp_closing_timeout_30_after_fin(run, gap, alive):
    out = run(TOPO, [tin(0), tout(1, "SA"), tin(2, "A"), tin(10, "FA"), tout(10 + gap)])
    assert out == [SSH_IN, EST_OUT, EST_IN, EST_IN, EST_OUT if alive else DENY_OUT]


@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_tcp_closing_timeout_30_after_fin_from_nic_side(run, gap, alive):
    out = run(TOPO, [tin(0), tout(1, "SA"), tout(10, "FA"), tout(10 + gap)])
    assert out == [SSH_IN, EST_OUT, EST_OUT, EST_OUT if alive else DENY_OUT]


@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_tcp_closing_timeout_30_after_rst(run, gap, alive):
    out = run(TOPO, [tin(0), tout(1, "SA"), tin(5, "R"), tout(5 + gap)])
    assert out == [SSH_IN, EST_OUT, EST_IN, EST_OUT if alive else DENY_OUT]


# S11: "closing is final": packets after the FIN, in both directions, do not bring the entry back to
# established (600 s); it expires 30 s after the last one.
def test_s11_tcp_closing_is_final(run):
    out = run(TOPO, [tin(0), tout(1, "SA"), tin(10, "FA"), tout(20, "A"), tin(30, "A"), tout(40, "PA"),
                     tout(70.001)])
    assert out == [SSH_IN, EST_OUT, EST_IN, EST_OUT, EST_IN, EST_OUT, DENY_OUT]


def test_s11_tcp_closing_is_final_alive_at_exact_gap(run):
    out = run(TOPO, [tin(0), tout(1, "SA"), tin(10, "FA"), tout(20, "A"), tin(30, "A"), tout(60)])
    assert out == [SSH_IN, EST_OUT, EST_IN, EST_OUT, EST_IN, EST_OUT]


# S11: "one opened by a FIN or RST starts closing".
@pytest.mark.parametrize("flags", ["FA", "F", "R", "RA", "SF"])
@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_tcp_entry_opened_by_fin_or_rst_starts_closing(run, flags, gap, alive):
    out = run(TOPO, [tin(0, flags), tout(gap)])
    assert out == [SSH_IN, EST_OUT if alive else DENY_OUT]


# S11 loose pickup: "A mid-stream TCP packet with no entry is evaluated as new and, if allowed,
# starts an established entry"; "any other TCP packet starts it established" (SYN+ACK included).
@pytest.mark.parametrize("flags", ["A", "PA", "SA"])
@pytest.mark.parametrize("gap,alive", [(100.0, True), (600.0, True), (600.001, False)])
def test_s11_tcp_loose_pickup_mid_stream_starts_established(run, flags, gap, alive):
    out = run(TOPO, [tin(0, flags), tout(gap)])
    assert out == [SSH_IN, EST_OUT if alive else DENY_OUT]


# S11: a mid-stream packet with no entry is evaluated by the rules: here no egress rule allows it.
def test_s11_tcp_mid_stream_without_entry_is_evaluated_as_new(run):
    assert run(TOPO, [tout(0, "PA")]) == [DENY_OUT]


# S11: "an expired connection is new again and re-evaluated" - the SYN after expiry is re-evaluated by
# the rule (reason rule, not established).
def test_s11_expired_connection_is_new_again(run):
    out = run(TOPO, [tin(0), tin(30.5), tout(31, "SA"), tin(32, "A")])
    assert out == [SSH_IN, SSH_IN, EST_OUT, EST_IN]


# ------------------------------------------------------------------------------------ UDP and others

# S11: "UDP and other protocols: 30 s until a packet is seen in the reply direction, then 180 s".
@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_udp_unreplied_timeout_30(run, gap, alive):
    assert run(TOPO, [uin(0), uout(gap)]) == [DNS_IN, EST_OUT if alive else DENY_OUT]


@pytest.mark.parametrize("gap,alive", [(31.0, True), (180.0, True), (180.001, False)])
def test_s11_udp_replied_timeout_180(run, gap, alive):
    assert run(TOPO, [uin(0), uout(10), uout(10 + gap)]) == [DNS_IN, EST_OUT, EST_OUT if alive else DENY_OUT]


def test_s11_udp_same_direction_does_not_make_it_replied(run):
    out = run(TOPO, [uin(0), uin(20), uin(40), uout(70.001)])
    assert out == [DNS_IN, EST_IN, EST_IN, DENY_OUT]


@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_other_protocol_unreplied_timeout_30(run, gap, alive):
    assert run(TOPO, [gin(0), gout(gap)]) == [GRE_IN, EST_OUT if alive else DENY_OUT]


@pytest.mark.parametrize("gap,alive", [(180.0, True), (180.001, False)])
def test_s11_other_protocol_replied_timeout_180(run, gap, alive):
    assert run(TOPO, [gin(0), gout(10), gout(10 + gap)]) == [GRE_IN, EST_OUT, EST_OUT if alive else DENY_OUT]


# ------------------------------------------------------------------------------------------- ICMP

# S11: "ICMP: 30 s", also after a reply; keyed by (addresses, identifier).
@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_icmp_echo_timeout_30(run, gap, alive):
    assert run(TOPO, [ping_in(0), pong_out(gap)]) == [PING_IN, EST_OUT if alive else DENY_OUT]


def test_s11_icmp_echo_stays_30_after_reply(run):
    out = run(TOPO, [ping_in(0), pong_out(10), pong_out(40), pong_out(70.001)])
    assert out == [PING_IN, EST_OUT, EST_OUT, DENY_OUT]


def test_s11_icmp_echo_keyed_by_identifier(run):
    out = run(TOPO, [ping_in(0, 7), pong_out(1, 8), pong_out(2, 7)])
    assert out == [PING_IN, DENY_OUT, EST_OUT]


# S11: "ICMP messages other than echo and errors open no entry and are evaluated by the rules every
# time": a timestamp request allowed in leaves nothing for the timestamp reply, and the next request
# is matched by the rule again.
def test_s11_icmp_timestamp_opens_nothing(run):
    ts_in = {"src": P, "dst": A, "proto": "icmp", "icmp_type": 13, "icmp_code": 0, "icmp_id": 9, "time": T0}
    ts_out = {"src": A, "dst": P, "proto": "icmp", "icmp_type": 14, "icmp_code": 0, "icmp_id": 9, "time": T0 + 1}
    ts_in2 = {**ts_in, "time": T0 + 2}
    out = run(TOPO, [ts_in, ts_out, ts_in2])
    assert out == [V("allow", "rule", "a1", "ingress", "srv", "srv-ts"), DENY_OUT,
                   V("allow", "rule", "a1", "ingress", "srv", "srv-ts")]


# S11: "ICMP/ICMPv6 error messages whose embedded header belongs to a tracked connection pass as
# related" - no egress rule allows ICMP, so without the connection they are denied.
def port_unreachable(t, dport=53, proto="udp"):
    return {"src": A, "dst": P, "proto": "icmp", "icmp_type": 3, "icmp_code": 3, "time": T0 + t,
            "inner": {"src": P, "dst": A, "proto": proto, "sport": 40000, "dport": dport}}


def test_s11_icmp_error_with_embedded_header_is_related(run):
    assert run(TOPO, [uin(0), port_unreachable(1)]) == [DNS_IN, V("allow", "related", "a1", "egress")]


def test_s11_icmp_error_for_tcp_connection_is_related(run):
    assert run(TOPO, [tin(0), port_unreachable(1, 22, "tcp")]) == [SSH_IN, V("allow", "related", "a1", "egress")]


def test_s11_icmp_error_without_connection_is_evaluated(run):
    assert run(TOPO, [port_unreachable(0)]) == [DENY_OUT]


def test_s11_icmp_error_for_other_connection_is_evaluated(run):
    assert run(TOPO, [uin(0), port_unreachable(1, dport=54)]) == [DNS_IN, DENY_OUT]


def test_s11_icmp_error_after_expiry_is_evaluated(run):
    assert run(TOPO, [uin(0), port_unreachable(30.001)]) == [DNS_IN, DENY_OUT]


# docs/semantics.md: "a related error does not refresh the entry it refers to".
def test_s11_related_error_does_not_refresh(run):
    assert run(TOPO, [uin(0), port_unreachable(20), uout(30.001)]) == [DNS_IN, V("allow", "related", "a1", "egress"), DENY_OUT]


# S11 + EIP: an ICMP error from a router on the path, inbound to the EIP, whose embedded header is the
# post-SNAT form (EIP) - or the private form - of a1's outbound NTP query: related at a1's ingress.
# No ingress rule allows ICMP type 11.
@pytest.mark.parametrize("inner_src", [EIP, A])
@pytest.mark.parametrize("outer_dst", [EIP, A])
def test_s11_icmp_error_embedded_eip_and_private_are_one_connection(run, inner_src, outer_dst):
    query = {"src": A, "dst": NET, "proto": "udp", "sport": 40000, "dport": 123, "time": T0}
    err = {"src": "192.0.2.1", "dst": outer_dst, "proto": "icmp", "icmp_type": 11, "icmp_code": 0, "time": T0 + 1,
           "inner": {"src": inner_src, "dst": NET, "proto": "udp", "sport": 40000, "dport": 123}}
    out = run(TOPO, [query, err])
    assert out == [V("allow", "rule", "a1", "egress", "srv", "srv-ntp-out"), V("allow", "related", "a1", "ingress")]


def test_s11_icmp_error_inbound_without_connection_denied(run):
    err = {"src": "192.0.2.1", "dst": EIP, "proto": "icmp", "icmp_type": 11, "icmp_code": 0, "time": T0,
           "inner": {"src": EIP, "dst": NET, "proto": "udp", "sport": 40000, "dport": 123}}
    assert run(TOPO, [err]) == [DENY_IN]


# ----------------------------------------------------------------------------- EIP = private IP

# S11: "A NIC's EIP and its private IP are one endpoint for connection tracking".
@pytest.mark.parametrize("out_src,in_dst", [(A, EIP), (EIP, A), (A, A), (EIP, EIP)])
def test_s11_eip_and_private_ip_are_one_connection(run, out_src, in_dst):
    syn = {"src": out_src, "dst": NET, "proto": "tcp", "sport": 40000, "dport": 443, "flags": "S", "time": T0}
    synack = {"src": NET, "dst": in_dst, "proto": "tcp", "sport": 443, "dport": 40000, "flags": "SA", "time": T0 + 1}
    out = run(TOPO, [syn, synack])
    assert out == [V("allow", "rule", "a1", "egress", "srv", "srv-https-out"), EST_IN]


def test_s11_reply_from_internet_without_connection_denied(run):
    synack = {"src": NET, "dst": EIP, "proto": "tcp", "sport": 443, "dport": 40000, "flags": "SA", "time": T0}
    assert run(TOPO, [synack]) == [DENY_IN]


# --------------------------------------------------------------------------------------- time order

# S11: "packets out of time order are processed in file order": the reply stamped before the request
# but read after it belongs to the entry the request opened.
def test_s11_out_of_order_timestamps_processed_in_file_order(run):
    assert run(TOPO, [uin(100), uout(50)]) == [DNS_IN, EST_OUT]


def test_s11_out_of_order_reply_read_first_is_denied(run):
    assert run(TOPO, [uout(50), uin(100)]) == [DENY_OUT, DNS_IN]


# docs/semantics.md: "The dataplane clock is the latest capture timestamp seen so far ... an
# out-of-order packet never revives an expired entry". The unrelated packet at +100 moves the clock;
# the entry opened at 0 is then 100 s idle (> 30 s) when the reply stamped +10 arrives.
def test_s11_out_of_order_packet_does_not_revive_expired_entry(run):
    other = {"src": "192.168.0.51", "dst": A, "proto": "tcp", "sport": 41000, "dport": 22, "flags": "S", "time": T0 + 100}
    out = run(TOPO, [uin(0), other, uout(10)])
    assert out == [DNS_IN, SSH_IN, DENY_OUT]


# ------------------------------------------------------------------------------------------ per NIC

# S11: "Security groups are stateful, per NIC". a1's egress has no rule for tcp 5000, b1's ingress
# allows it, b2's allows nothing. The SYN from the peer to b1 opens an entry at b1 only: b1's reply
# passes, but the same flow seen at b2 (another NIC) is evaluated by b2's rules.
def test_s11_conntrack_is_per_nic(run):
    syn = {"src": P, "dst": "192.168.0.20", "proto": "tcp", "sport": 40000, "dport": 5000, "flags": "S", "time": T0}
    reply_b1 = {"src": "192.168.0.20", "dst": P, "proto": "tcp", "sport": 5000, "dport": 40000, "flags": "SA", "time": T0 + 1}
    out = run(TOPO, [syn, reply_b1])
    assert out == [V("allow", "rule", "b1", "ingress", "sb", "sb-in"), V("allow", "established", "b1", "egress")]


def test_s11_entry_of_one_nic_does_not_pass_another(run):
    # a1 -> b2 is allowed out of a1 only if a rule allows it: tcp 443 does (srv-https-out). b2 denies it,
    # so only a1 has the entry; b2's answer is evaluated by b2's (empty) egress.
    syn = {"src": A, "dst": "192.168.0.30", "proto": "tcp", "sport": 40000, "dport": 443, "flags": "S", "time": T0}
    reply = {"src": "192.168.0.30", "dst": A, "proto": "tcp", "sport": 443, "dport": 40000, "flags": "SA", "time": T0 + 1}
    out = run(TOPO, [syn, reply])
    assert out == [V("deny", "default", "b2", "ingress"), V("deny", "default", "b2", "egress")]


# S11 keys: TCP/UDP are keyed by the 5-tuple, so another source port is another connection.
def test_s11_tcp_key_is_five_tuple(run):
    out = run(TOPO, [tin(0), {**tout(1, "SA"), "dport": 40001}])
    assert out == [SSH_IN, DENY_OUT]


# S11 keys: "other protocols (addresses, protocol)": GRE from another address is another connection.
def test_s11_other_protocol_key_is_addresses_and_protocol(run):
    out = run(TOPO, [gin(0), {**gout(1), "dst": "192.168.0.51"}, {"src": A, "dst": P, "proto": 4, "time": T0 + 2}])
    assert out == [GRE_IN, DENY_OUT, DENY_OUT]


# ------------------------------------------------------------------------------------------- IPv6

# S11 applies to IPv6 alike: ICMPv6 echo (128/129) 30 s keyed by identifier; ICMPv6 errors (type 1)
# with the embedded header of a tracked connection are related.
@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_icmpv6_echo_timeout_30(run, gap, alive):
    req = {"src": P6, "dst": A6, "proto": "icmpv6", "icmp_type": 128, "icmp_id": 3, "time": T0}
    rep = {"src": A6, "dst": P6, "proto": "icmpv6", "icmp_type": 129, "icmp_id": 3, "time": T0 + gap}
    assert run(TOPO, [req, rep]) == [V("allow", "rule", "a1", "ingress", "srv", "srv-ping6"), EST_OUT if alive else DENY_OUT]


def test_s11_icmpv6_error_is_related(run):
    q = {"src": P6, "dst": A6, "proto": "udp", "sport": 40000, "dport": 53, "time": T0}
    err = {"src": A6, "dst": P6, "proto": "icmpv6", "icmp_type": 1, "icmp_code": 4, "time": T0 + 1,
           "inner": {"src": P6, "dst": A6, "proto": "udp", "sport": 40000, "dport": 53}}
    assert run(TOPO, [q, err]) == [V("allow", "rule", "a1", "ingress", "srv", "srv-dns6"), V("allow", "related", "a1", "egress")]
    assert run(TOPO, [err]) == [DENY_OUT]


@pytest.mark.parametrize("gap,alive", [(30.0, True), (30.001, False)])
def test_s11_udp_ipv6_unreplied_timeout_30(run, gap, alive):
    q = {"src": P6, "dst": A6, "proto": "udp", "sport": 40000, "dport": 53, "time": T0}
    r = {"src": A6, "dst": P6, "proto": "udp", "sport": 53, "dport": 40000, "time": T0 + gap}
    assert run(TOPO, [q, r]) == [V("allow", "rule", "a1", "ingress", "srv", "srv-dns6"), EST_OUT if alive else DENY_OUT]
