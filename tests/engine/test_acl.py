"""Network ACLs (S13): order against security groups, first match, implicit deny, disabled rules,
exemptions, private addresses, the row of an ACL deny, statefulness.

Subnet-A (192.168.0.0/24) has acl-1; Subnet-B (192.168.1.0/24) has none. a1 and a3 live in Subnet-A,
b1 in Subnet-B. sg-a allows everything except the explicit denies listed, so the ACL decides unless a
test says otherwise. Expectations are worked out from S13 (and S7 for the row).
"""

from __future__ import annotations

import copy

import pytest

from sgdp.capture.packet import Verdict

V6A = "2407:c080:802:469"


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": f"{V6A}::/64", "network_acl": "acl-1"},
        {"name": "Subnet-B", "cidr": "192.168.1.0/24"},
    ]}],
    "address_groups": [{"name": "ag-b", "ip_version": 4, "ip_set": ["192.168.1.50-192.168.1.60"]}],
    "network_acls": [{
        "name": "acl-1",
        "inbound_rules": [
            {"id": "in-ssh", "action": "allow", "protocol": "tcp", "destination_port": "22"},               # 1
            {"id": "in-mysql", "action": "allow", "protocol": "tcp", "destination_port": "3306"},           # 2
            {"id": "in-deny-web", "action": "deny", "protocol": "tcp", "destination_port": "80"},           # 3
            {"action": "allow", "protocol": "tcp", "destination_port": "80"},                               # 4
            {"id": "in-off", "action": "allow", "protocol": "udp", "enabled": False},                       # 5
            {"action": "deny", "protocol": "udp", "destination_port": "53"},                                # 6
            {"id": "in-https-priv", "action": "allow", "protocol": "tcp",
             "destination_ip_address": "192.168.0.10/32", "destination_port": "443"},                       # 7
            {"id": "in-eip", "action": "allow", "protocol": "tcp",
             "destination_ip_address": "203.0.113.10/32", "destination_port": "8443"},                      # 8
            {"id": "in-src-port", "action": "allow", "protocol": "udp", "source_port": "123",
             "destination_port": "1-65535"},                                                                # 9
            {"id": "in-ag", "action": "allow", "protocol": "udp", "source_address_group_id": "ag-b",
             "destination_port": "9000"},                                                                   # 10
            {"id": "in-v6-ssh", "action": "allow", "ip_version": 6, "protocol": "tcp", "destination_port": "2222"},  # 11
        ],
        "outbound_rules": [
            {"id": "out-https", "action": "allow", "protocol": "tcp", "destination_port": "443"},           # 1
            {"action": "deny", "protocol": "tcp", "destination_port": "8443"},                              # 2
            {"id": "out-priv-src", "action": "allow", "protocol": "tcp",
             "source_ip_address": "192.168.0.10/32", "destination_port": "7443"},                           # 3
            {"action": "allow", "protocol": "tcp", "source_ip_address": "203.0.113.10/32",
             "destination_port": "7444"},                                                                   # 4
        ],
    }],
    "security_groups": [
        {"name": "sg-a", "rules": [
            {"id": "a-in-deny-3306", "direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "3306"},
            {"id": "a-in-deny-5432", "direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "5432"},
            {"id": "a-in-all4", "direction": "ingress", "priority": 50},
            {"id": "a-in-all6", "direction": "ingress", "priority": 50, "ethertype": "IPv6"},
            {"id": "a-out-deny-25", "direction": "egress", "action": "deny", "protocol": "tcp", "multiport": "25"},
            {"id": "a-out-all4", "direction": "egress", "priority": 50},
            {"id": "a-out-all6", "direction": "egress", "priority": 50, "ethertype": "IPv6"},
        ]},
        {"name": "sg-ssh-only", "rules": [
            {"id": "s-in-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22"},
            {"id": "s-out-https", "direction": "egress", "protocol": "tcp", "multiport": "443"},
        ]},
        {"name": "sg-open", "rules": [
            {"id": "open-in4", "direction": "ingress"},
            {"id": "open-out4", "direction": "egress"},
        ]},
    ],
    "instances": [
        {"name": "a1", "subnet": "Subnet-A", "ip": "192.168.0.10", "ipv6": f"{V6A}::10", "ipv6_internet": True,
         "eip": "203.0.113.10", "security_groups": ["sg-a"]},
        {"name": "a3", "subnet": "Subnet-A", "ip": "192.168.0.30", "security_groups": ["sg-a"]},
        {"name": "a4", "subnet": "Subnet-A", "ip": "192.168.0.40", "eip": "203.0.113.40", "security_groups": ["sg-ssh-only"]},
        {"name": "b1", "subnet": "Subnet-B", "ip": "192.168.1.10", "security_groups": ["sg-open"]},
    ],
    "load_balancers": [{
        "name": "elb-d", "type": "dedicated", "vip": "192.168.1.200", "subnet": "Subnet-B",
        "listeners": [
            {"protocol": "http", "port": 80, "backends": [{"instance": "a1", "port": 8080}]},
            {"protocol": "http", "port": 81, "backends": [{"instance": "b1", "port": 8080}]},
        ],
    }],
}

A1, A3, B1 = "192.168.0.10", "192.168.0.30", "192.168.1.10"
U_B = "192.168.1.99"  # an unlisted host of Subnet-B
NET = "198.51.100.7"


def tcp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "dport": dport, **kw}


def udp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "udp", "dport": dport, **kw}


def acl_deny(inst, direction, rule=""):
    return V("deny", "acl", inst, direction, "acl-1", rule)


# ------------------------------------------------------------------------------ order against SGs

# S13: "Inbound, the subnet's ACL is checked before the security groups": tcp 5432 is denied by both
# (no ACL rule -> implicit deny; sg-a has a deny rule) -> the ACL's row.
def test_s13_inbound_acl_before_security_groups(run):
    assert run(TOPO, [tcp(U_B, A1, 5432)]) == [acl_deny("a1", "ingress")]


# S13: ACL allows (in-mysql), then the security group denies: the SG's row.
def test_s13_inbound_acl_allows_then_security_group_denies(run):
    assert run(TOPO, [tcp(U_B, A1, 3306)]) == [V("deny", "rule", "a1", "ingress", "sg-a", "a-in-deny-3306")]


def test_s13_inbound_both_allow(run):
    assert run(TOPO, [tcp(U_B, A1, 22)]) == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4")]


# S13: "outbound, after them": tcp 25 is denied by sg-a's deny rule and by the ACL's implicit deny ->
# the SG's row.
def test_s13_outbound_security_groups_before_acl(run):
    assert run(TOPO, [tcp(A1, U_B, 25)]) == [V("deny", "rule", "a1", "egress", "sg-a", "a-out-deny-25")]


# S13: SG allows, ACL denies outbound: the ACL's row, egress, default id `<acl>:out:<n>`.
def test_s13_outbound_acl_deny_after_security_group_allow(run):
    out = run(TOPO, [tcp(A1, U_B, 8443), tcp(A1, U_B, 9999)])
    assert out == [acl_deny("a1", "egress", "acl-1:out:2"), acl_deny("a1", "egress")]


# S13 + S7: an ACL deny at the receiver's ingress after the sender's egress allowed it.
def test_s13_acl_at_receiver_ingress_between_two_nics(run):
    out = run(TOPO, [tcp(B1, A1, 9999), tcp(B1, A1, 22, sport=40001)])
    assert out == [acl_deny("a1", "ingress"), V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4")]


# ------------------------------------------------------------------------------------- rule order

# S13: first match in list order: in-deny-web comes before the allow of tcp 80.
def test_s13_first_match_in_list_order(run):
    assert run(TOPO, [tcp(U_B, A1, 80)]) == [acl_deny("a1", "ingress", "in-deny-web")]


# S13: "disabled rules are skipped": in-off (allow all udp) is disabled, so udp 53 reaches rule 6
# (deny, no id -> acl-1:in:6) ...
def test_s13_disabled_rule_skipped_and_default_id(run):
    assert run(TOPO, [udp(U_B, A1, 53)]) == [acl_deny("a1", "ingress", "acl-1:in:6")]


# ... and other udp falls to the implicit final deny (empty rule).
def test_s13_implicit_final_deny_has_empty_rule(run):
    assert run(TOPO, [udp(U_B, A1, 7)]) == [acl_deny("a1", "ingress")]


# S13 rule fields: the ACL compares the source port as well (in-src-port: udp from port 123).
def test_s13_acl_rule_matches_source_port(run):
    out = run(TOPO, [udp(U_B, A1, 5000, sport=123), udp(U_B, A1, 5000, sport=124)])
    assert out == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4"), acl_deny("a1", "ingress")]


# S13 rule fields: ip_version defaults to 4, so no rule of acl-1 matches IPv6: implicit deny.
def test_s13_ipv6_packet_needs_ipv6_rules(run):
    assert run(TOPO, [tcp("2001:db8::7", f"{V6A}::10", 22)]) == [acl_deny("a1", "ingress")]


# S13 rule fields: ip_version 6 rules match IPv6 packets.
def test_s13_ipv6_rule_matches_ipv6(run):
    assert run(TOPO, [tcp("2001:db8::7", f"{V6A}::10", 2222)]) == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all6")]


# S13 rule fields: source_address_group_id (an inclusive range here).
@pytest.mark.parametrize("src,allowed", [("192.168.1.50", True), ("192.168.1.60", True), ("192.168.1.61", False),
                                         ("192.168.1.49", False)])
def test_s13_acl_rule_with_address_group(run, src, allowed):
    out = run(TOPO, [udp(src, A1, 9000)])
    assert out == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4") if allowed else acl_deny("a1", "ingress")]


# ------------------------------------------------------------------------------------ exemptions

# S13: "Traffic within one subnet ... is never filtered by an ACL" - NIC to NIC and unlisted host to
# NIC in Subnet-A; tcp 9999 has no ACL rule either way.
def test_s13_same_subnet_exempt(run):
    out = run(TOPO, [tcp(A3, A1, 9999), tcp("192.168.0.99", A1, 9999, sport=40001), tcp(A1, "192.168.0.99", 9999, sport=40002)])
    assert out == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4"),
                   V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4"),
                   V("allow", "rule", "a1", "egress", "sg-a", "a-out-all4")]


# S13: to 255.255.255.255 and to 224.0.0.0/24 exempt; 224.0.1.1 is outside 224.0.0.0/24.
def test_s13_broadcast_and_link_local_multicast_exempt(run):
    out = run(TOPO, [udp(A1, "255.255.255.255", 67, sport=68), {"src": A1, "dst": "224.0.0.5", "proto": 89},
                     udp(A1, "224.0.0.251", 5353, sport=5353), udp(A1, "224.0.1.1", 5353, sport=5353)])
    assert out == [V("allow", "rule", "a1", "egress", "sg-a", "a-out-all4")] * 3 + [acl_deny("a1", "egress")]


# S13: "to 169.254.169.254 TCP 80" only: tcp 8080 to the metadata address is filtered.
def test_s13_metadata_tcp_80_exempt_only(run):
    out = run(TOPO, [tcp(A1, "169.254.169.254", 80), tcp(A1, "169.254.169.254", 8080, sport=40001),
                     udp(A1, "169.254.169.254", 80, sport=40002)])
    assert out == [V("allow", "rule", "a1", "egress", "sg-a", "a-out-all4"), acl_deny("a1", "egress"),
                   acl_deny("a1", "egress")]


# S13: the reply of an exempt metadata request is part of the same traffic ("never filtered by an
# ACL"); a user of the real cloud reads the metadata with any ACL in place.
def test_s13_metadata_reply_not_filtered(run):
    out = run(TOPO, [tcp(A1, "169.254.169.254", 80),
                     tcp("169.254.169.254", A1, 40000, sport=80, flags="SA")])
    assert out[1].verdict == "allow" and out[1].reason != "acl"


# S13: "from or to 100.125.0.0/16" exempt, both directions.
def test_s13_cloud_services_range_exempt_both_ways(run):
    out = run(TOPO, [tcp("100.125.1.1", A1, 9999), udp(A1, "100.125.2.2", 53)])
    assert out == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4"),
                   V("allow", "rule", "a1", "egress", "sg-a", "a-out-all4")]


# S13: "from or to a load balancer's own address": a1 (behind acl-1) sends to the LB VIP in Subnet-B:
# tcp 81 has no outbound ACL rule, yet the ACL does not filter it; the backend b1 (no ACL) allows.
def test_s13_traffic_to_load_balancer_exempt(run):
    out = run(TOPO, [tcp(A1, "192.168.1.200", 81)])
    assert out == [V("allow", "rule", "b1", "ingress", "sg-open", "open-in4")]


# S13/S14: the dedicated LB (VIP in Subnet-B) forwards an HTTP request to backend a1:8080 from its
# backend-side address - not in Subnet-A, and acl-1 has no rule for tcp 8080 - but traffic from a load
# balancer's address is not filtered by the ACL: sg-a decides.
def test_s13_traffic_from_load_balancer_exempt(run):
    out = run(TOPO, [tcp(B1, "192.168.1.200", 80)])
    assert out == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4")]


# --------------------------------------------------------------------------- private addresses

# S13: "ACLs see private addresses (inbound EIP traffic after translation)": in-https-priv names the
# private IP and matches traffic to the EIP; in-eip names the EIP and never matches.
def test_s13_acl_sees_private_address_inbound(run):
    out = run(TOPO, [tcp(NET, "203.0.113.10", 443), tcp(NET, "192.168.0.10", 443, sport=40001),
                     tcp(NET, "203.0.113.10", 8443, sport=40002)])
    assert out == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4")] * 2 + [acl_deny("a1", "ingress")]


# Outbound in the post-SNAT form (from the EIP): the ACL sees the private source: out-priv-src
# (source 192.168.0.10) matches, rule 4 (source 203.0.113.10) does not.
def test_s13_acl_sees_private_address_outbound(run):
    out = run(TOPO, [tcp("203.0.113.10", NET, 7443), tcp("203.0.113.10", NET, 7444, sport=40001)])
    assert (out[0].verdict, out[0].reason, out[0].instance, out[0].direction) == ("allow", "rule", "a1", "egress")
    assert out[1] == acl_deny("a1", "egress")


# ------------------------------------------------------------------------------------- stateful

# S13: ACLs are stateful. The reply of an inbound SSH session: sg-a allows a1's egress anyway, but the
# ACL has no outbound rule for tcp to port 40000 - it passes only because the ACL tracks the session.
def test_s13_stateful_reply_to_inbound(run):
    out = run(TOPO, [tcp(U_B, A1, 22), tcp(A1, U_B, 40000, sport=22, flags="SA")])
    assert out[0] == V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4")
    assert (out[1].verdict, out[1].instance, out[1].direction) == ("allow", "a1", "egress")


# With a group that has no rule for the reply either (a4: sg-ssh-only), the reply is established at
# both filters.
def test_s13_stateful_reply_established(run):
    out = run(TOPO, [tcp(U_B, "192.168.0.40", 22), tcp("192.168.0.40", U_B, 40000, sport=22, flags="SA")])
    assert out == [V("allow", "rule", "a4", "ingress", "sg-ssh-only", "s-in-ssh"), V("allow", "established", "a4", "egress")]


# The reply of an outbound HTTPS session (out-https) has no inbound ACL rule (tcp to 40000).
def test_s13_stateful_reply_to_outbound(run):
    out = run(TOPO, [tcp("192.168.0.40", NET, 443), tcp(NET, "203.0.113.40", 40000, sport=443, flags="SA")])
    # (which rule an outbound row names when both the group and the ACL allowed by rule is not fixed by
    # the SPEC; only the stage is checked for the first packet)
    assert (out[0].verdict, out[0].reason, out[0].instance, out[0].direction) == ("allow", "rule", "a4", "egress")
    assert out[1] == V("allow", "established", "a4", "ingress")


# S13 + S11: an ICMP error about a tracked session is related at the ACL as well (acl-1 has no ICMP
# rule, sg-ssh-only neither).
def test_s13_related_icmp_error_passes_acl(run):
    err = {"src": "192.168.0.40", "dst": U_B, "proto": "icmp", "icmp_type": 3, "icmp_code": 4,
           "inner": {"src": U_B, "dst": "192.168.0.40", "proto": "tcp", "sport": 40000, "dport": 22}}
    out = run(TOPO, [tcp(U_B, "192.168.0.40", 22), err])
    assert out == [V("allow", "rule", "a4", "ingress", "sg-ssh-only", "s-in-ssh"), V("allow", "related", "a4", "egress")]


def test_s13_reply_without_session_denied_by_acl(run):
    out = run(TOPO, [tcp(NET, "203.0.113.40", 40000, sport=443, flags="SA"), tcp("192.168.0.40", U_B, 40000, sport=22, flags="SA")])
    assert out == [acl_deny("a4", "ingress"), V("deny", "default", "a4", "egress")]


# ------------------------------------------------------------------------------- no ACL / toggles

# S13: ACLs are optional per subnet: without acl-1 the same packets are decided by the groups.
def test_s13_subnet_without_acl_not_filtered(run):
    topo = copy.deepcopy(TOPO)
    del topo["vpcs"][0]["subnets"][0]["network_acl"]
    out = run(topo, [tcp(U_B, A1, 5432), tcp(U_B, A1, 9999, sport=40001), tcp(A1, U_B, 9999, sport=40002)])
    assert out == [V("deny", "rule", "a1", "ingress", "sg-a", "a-in-deny-5432"),
                   V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4"),
                   V("allow", "rule", "a1", "egress", "sg-a", "a-out-all4")]


# S13: disabling the matching rule moves the decision to the next one (in-deny-web off -> the allow
# of tcp 80, rule 4).
def test_s13_disabling_rule_moves_first_match(run):
    topo = copy.deepcopy(TOPO)
    topo["network_acls"][0]["inbound_rules"][2]["enabled"] = False
    assert run(topo, [tcp(U_B, A1, 80)]) == [V("allow", "rule", "a1", "ingress", "sg-a", "a-in-all4")]
