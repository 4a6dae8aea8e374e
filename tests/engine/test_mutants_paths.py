"""Endpoints, paths and the peer a rule compares (S5, S6, S8): cases that mutation testing showed the
other tests left open.

docs/semantics.md:
- "Through the Internet between two NICs (a packet addressed to another NIC's EIP, or sent in the
  post-SNAT form from an EIP): both NICs need an EIP, and each side's rules see the other's EIP as the
  peer - never a remote-group member."
- "A packet sent from an EIP (post-SNAT form) to anything but an external address or another EIP has
  no path." (S6: a packet without a path is denied `no_route`, naming the sending instance, S7.)
- "Same address in several VPCs: when an address denotes more than one endpoint, sgdp picks the
  sender/receiver pair that has a path".
S8: "EIPs, virtual IPs and addresses forwarded through another instance are NOT members of a remote
group".
"""

from __future__ import annotations

from sgdp.capture.packet import Verdict


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


def tcp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "dport": dport, **kw}


A, A_EIP = "192.168.0.10", "203.0.113.10"
B, B_EIP = "192.168.0.20", "203.0.113.20"
C = "192.168.0.30"

INTERNET = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]}],
    "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]}],
    "security_groups": [
        # a may send tcp 22 only to b's EIP, and anything on tcp 80
        {"name": "ga", "rules": [
            {"id": "a-to-b-eip", "direction": "egress", "protocol": "tcp", "multiport": "22",
             "remote_ip_prefix": "203.0.113.20/32"},
            {"id": "a-80", "direction": "egress", "protocol": "tcp", "multiport": "80"},
            {"id": "a-dns", "direction": "egress", "protocol": "udp", "multiport": "53"},
        ]},
        # b accepts tcp 22 only from a's EIP, tcp 23 only from a's private address
        {"name": "gb", "rules": [
            {"id": "b-from-a-eip", "direction": "ingress", "protocol": "tcp", "multiport": "22",
             "remote_ip_prefix": "203.0.113.10/32"},
            {"id": "b-from-a-private", "direction": "ingress", "protocol": "tcp", "multiport": "23",
             "remote_ip_prefix": "192.168.0.10/32"},
            {"id": "b-80", "direction": "ingress", "protocol": "tcp", "multiport": "80"},
        ]},
        {"name": "gc", "rules": [{"id": "c-in", "direction": "ingress"}]},
    ],
    "instances": [
        {"name": "a", "subnet": "Subnet-A", "ip": A, "eip": A_EIP, "security_groups": ["ga"]},
        {"name": "b", "subnet": "Subnet-A", "ip": B, "eip": B_EIP, "security_groups": ["gb"]},
        {"name": "c", "subnet": "Subnet-A", "ip": C, "security_groups": ["gc"]},
    ],
}


# a sends from its private address to b's EIP: b's ingress rules see a's EIP as the peer (not the
# private source in the packet): tcp 22 matches b-from-a-eip; tcp 23 (private-address rule) does not.
def test_s8_ingress_via_internet_sees_senders_eip(run):
    out = run(INTERNET, [tcp(A, B_EIP, 22), tcp(A, B_EIP, 23, sport=40001), tcp(A, B, 23, sport=40002)])
    assert out == [V("allow", "rule", "b", "ingress", "gb", "b-from-a-eip"),
                   V("deny", "default", "a", "egress"),
                   V("deny", "default", "a", "egress")]


# a's egress rules see b's EIP as the peer, also in the form captured at b (sent from a's EIP to b's
# private address): a-to-b-eip matches; then b's ingress sees a's EIP.
def test_s8_egress_via_internet_sees_receivers_eip(run):
    out = run(INTERNET, [tcp(A_EIP, B, 22), tcp(A_EIP, B_EIP, 22, sport=40001)])
    assert out == [V("allow", "rule", "b", "ingress", "gb", "b-from-a-eip")] * 2


# Near miss: over the private path (a's private address to b's private address) the peers are the
# private addresses: a-to-b-eip does not match tcp 22, b-from-a-private matches tcp 23 only if a may
# send it (it may not: a has no egress rule for tcp 23).
def test_s8_private_path_sees_private_peers(run):
    out = run(INTERNET, [tcp(A, B, 22), tcp(A, B, 80, sport=40001)])
    assert out == [V("deny", "default", "a", "egress"), V("allow", "rule", "b", "ingress", "gb", "b-80")]


# A packet from a's EIP (post-SNAT form) to an unlisted host of the VPC, a cloud service address, a
# joined private network, or a NIC without an EIP has no path: no_route naming the sender.
def test_s6_from_eip_to_non_internet_address_is_no_route(run):
    out = run(INTERNET, [tcp(A_EIP, "192.168.0.99", 80), {"src": A_EIP, "dst": "100.125.1.250", "proto": "udp", "dport": 53},
                         tcp(A_EIP, "172.16.0.5", 80), tcp(A_EIP, C, 80)])
    assert out == [V("deny", "no_route", "a")] * 4
    # near miss: from a's private address the same destinations have their paths
    out = run(INTERNET, [tcp(A, "192.168.0.99", 80), {"src": A, "dst": "100.125.1.250", "proto": "udp", "dport": 53},
                         tcp(A, "172.16.0.5", 80), tcp(A, C, 80)])
    assert out == [V("allow", "rule", "a", "egress", "ga", "a-80"), V("allow", "rule", "a", "egress", "ga", "a-dns"),
                   V("allow", "rule", "a", "egress", "ga", "a-80"), V("allow", "rule", "c", "ingress", "gc", "c-in")]


# ----------------------------------------------------------------- a virtual IP is not a member

# Two unpeered VPCs with the same CIDR. 10.0.0.21 is w1's fixed IP in VPC-W (w1 is in `members`) and a
# virtual IP held by c1 in VPC-X. From a1 (VPC-X) the address denotes the virtual IP (the only
# endpoint with a path): a1's egress compares the virtual IP, which is not a member of `members`
# even though the same number is a member's fixed IP elsewhere - src-to-members does not match.
# From a2 (VPC-W) it is w1's fixed IP: the rule matches.
OVERLAP = {
    "vpcs": [
        {"name": "VPC-X", "cidr": "10.0.0.0/16", "subnets": [{"name": "Subnet-X", "cidr": "10.0.0.0/24"}]},
        {"name": "VPC-W", "cidr": "10.0.0.0/16", "subnets": [{"name": "Subnet-W", "cidr": "10.0.0.0/24"}]},
    ],
    "security_groups": [
        {"name": "src", "rules": [{"id": "src-to-members", "direction": "egress", "remote_group_id": "members"}]},
        {"name": "members", "rules": [{"id": "members-in", "direction": "ingress"}]},
        {"name": "holder", "rules": [{"id": "holder-in", "direction": "ingress"}]},
    ],
    "instances": [
        {"name": "a1", "subnet": "Subnet-X", "ip": "10.0.0.10", "security_groups": ["src"]},
        {"name": "c1", "subnet": "Subnet-X", "ip": "10.0.0.30", "security_groups": ["holder"]},
        {"name": "w1", "subnet": "Subnet-W", "ip": "10.0.0.21", "security_groups": ["members"]},
        {"name": "a2", "subnet": "Subnet-W", "ip": "10.0.0.50", "security_groups": ["src"]},
    ],
    "virtual_ips": [{"ip": "10.0.0.21", "subnet": "Subnet-X", "instances": ["c1"]}],
}


def test_s8_egress_to_virtual_ip_is_not_remote_group_member(run):
    out = run(OVERLAP, [tcp("10.0.0.10", "10.0.0.21", 80), tcp("10.0.0.50", "10.0.0.21", 80)])
    assert out == [V("deny", "default", "a1", "egress"), V("allow", "rule", "w1", "ingress", "members", "members-in")]


# S8 "EIPs ... are NOT members of a remote group", also when an EIP happens to be the same number as
# a member's private fixed IP in another VPC (the validator accepts it: EIPs are unique among EIPs, fixed
# IPs within a VPC). a sends to b's EIP: b's ingress compares a's EIP 10.0.0.5 - w's fixed IP, w is in
# `m` - and t-from-m must not match it. From w itself (a genuine member, over the Internet too) the
# peer is w's EIP, not a member either; over a peering the private address is a member.
EIP_NUMBER = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]},
             {"name": "VPC-W", "cidr": "10.0.0.0/16", "subnets": [{"name": "Subnet-W", "cidr": "10.0.0.0/24"}]}],
    "peerings": [{"name": "xw", "vpcs": ["VPC-X", "VPC-W"]}],
    "security_groups": [{"name": "m", "rules": [{"id": "m-out", "direction": "egress"}]},
                        {"name": "t", "rules": [{"id": "t-from-m", "direction": "ingress", "remote_group_id": "m"}]}],
    "instances": [
        {"name": "a", "subnet": "Subnet-A", "ip": "192.168.0.10", "eip": "10.0.0.5", "security_groups": ["m"]},
        {"name": "w", "subnet": "Subnet-W", "ip": "10.0.0.5", "eip": "203.0.113.5", "security_groups": ["m"]},
        {"name": "b", "subnet": "Subnet-A", "ip": "192.168.0.20", "eip": "203.0.113.20", "security_groups": ["t"]},
    ],
}


def test_s8_eip_equal_to_a_members_fixed_ip_is_not_a_member(run):
    out = run(EIP_NUMBER, [tcp("192.168.0.10", "203.0.113.20", 22), tcp("10.0.0.5", "203.0.113.20", 22, sport=40001),
                           tcp("10.0.0.5", "192.168.0.20", 22, sport=40002)])
    assert out == [V("deny", "default", "b", "ingress"), V("deny", "default", "b", "ingress"),
                   V("allow", "rule", "b", "ingress", "t", "t-from-m")]
