"""Endpoints and paths (S5, S6), the two-stage check and its verdict row (S7), and matching at one
NIC (S8).

Every expectation below is derived by hand from SPEC §3 (and docs/semantics.md where the SPEC leaves
a choice open); the comment above a block says which sentence decides it.
"""

from __future__ import annotations

import copy

import pytest

from sgdp.engine.choice import make_engine
from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import PacketBatch, Verdict
from sgdp.testing.scenario import packet_from_spec


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


def open_group(name):
    """A group that allows everything, both directions, both IP versions."""
    return {"name": name, "rules": [
        {"id": f"{name}-in4", "direction": "ingress"},
        {"id": f"{name}-in6", "direction": "ingress", "ethertype": "IPv6"},
        {"id": f"{name}-out4", "direction": "egress"},
        {"id": f"{name}-out6", "direction": "egress", "ethertype": "IPv6"},
    ]}


# ----------------------------------------------------------------------------------------- topology

V6A = "2407:c080:802:469"

PATHS = {
    "vpcs": [
        {"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
            {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": f"{V6A}::/64"},
            {"name": "Subnet-B", "cidr": "192.168.1.0/24"},
        ]},
        {"name": "VPC-Y", "cidr": "10.0.0.0/16", "subnets": [{"name": "Subnet-Y", "cidr": "10.0.0.0/24"}]},
        {"name": "VPC-Z", "cidr": "172.20.0.0/16", "subnets": [{"name": "Subnet-Z", "cidr": "172.20.0.0/24"}]},
    ],
    "peerings": [{"name": "peer-XY", "vpcs": ["VPC-X", "VPC-Y"]}],
    "private_networks": [
        {"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]},
        {"name": "lab", "cidr": "172.17.0.0/24", "vpcs": ["VPC-Z"]},
    ],
    "security_groups": [
        open_group("open"),
        {"name": "closed", "rules": []},
        {"name": "vh-sg", "rules": [
            {"id": "vh-in", "direction": "ingress"},
            {"id": "vh-out-80", "direction": "egress", "protocol": "tcp", "multiport": "80"},
        ]},
    ],
    "instances": [
        {"name": "a1", "flavor": "s6.large.2", "subnet": "Subnet-A", "ip": "192.168.0.10", "ipv6": f"{V6A}::10",
         "extra_ips": ["192.168.0.11", f"{V6A}::11"], "eip": "203.0.113.10", "security_groups": ["open"]},
        {"name": "a2", "subnet": "Subnet-A", "ip": "192.168.0.20", "ipv6": f"{V6A}::20", "ipv6_internet": True,
         "security_groups": ["open"]},
        {"name": "lc", "subnet": "Subnet-A", "ip": "192.168.0.50", "extra_ips": ["192.168.0.51"],
         "security_groups": ["closed"]},
        {"name": "b1", "subnet": "Subnet-B", "ip": "192.168.1.10", "security_groups": ["open"]},
        {"name": "y1", "subnet": "Subnet-Y", "ip": "10.0.0.10", "security_groups": ["open"]},
        {"name": "z1", "subnet": "Subnet-Z", "ip": "172.20.0.10", "eip": "203.0.113.30", "security_groups": ["open"]},
        {"name": "vh", "subnet": "Subnet-A", "ip": "192.168.0.30", "security_groups": ["vh-sg"]},
        {"name": "vo", "subnet": "Subnet-A", "ip": "192.168.0.40", "security_groups": ["open"]},
    ],
    "virtual_ips": [{"ip": "192.168.0.21", "subnet": "Subnet-A", "instances": ["vh", "vo"]}],
}


def tcp(src, dst, dport=80, **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "dport": dport, **kw}


# ------------------------------------------------------------------------------------------- S6 paths

# S6: "A path exists between two NICs in the same VPC" -> checked at a1 egress (allowed) then b1
# ingress; the row is the last stage (S7).
def test_s6_same_vpc_two_nics_have_a_path(run):
    assert run(PATHS, [tcp("192.168.0.10", "192.168.1.10")]) == [V("allow", "rule", "b1", "ingress", "open", "open-in4")]


# S6: "... or in VPCs joined by a peering" - both ways.
def test_s6_peered_vpcs_have_a_path_both_ways(run):
    out = run(PATHS, [tcp("192.168.0.10", "10.0.0.10"), tcp("10.0.0.10", "192.168.1.10")])
    assert out == [V("allow", "rule", "y1", "ingress", "open", "open-in4"),
                   V("allow", "rule", "b1", "ingress", "open", "open-in4")]


# S6: no peering -> no path -> deny no_route; S7: no_route names the sending instance, no direction.
def test_s6_unpeered_vpcs_no_route_names_sender(run):
    out = run(PATHS, [tcp("192.168.0.10", "172.20.0.10"), tcp("172.20.0.10", "192.168.1.10")])
    assert out == [V("deny", "no_route", "a1"), V("deny", "no_route", "z1")]


# S6: a peering joins exactly the two VPCs it names; it is not transitive.
def test_s6_peering_is_not_transitive(run):
    topo = copy.deepcopy(PATHS)
    topo["peerings"].append({"name": "peer-YZ", "vpcs": ["VPC-Y", "VPC-Z"]})
    out = run(topo, [tcp("10.0.0.10", "172.20.0.10"), tcp("192.168.0.10", "172.20.0.10")])
    assert out == [V("allow", "rule", "z1", "ingress", "open", "open-in4"), V("deny", "no_route", "a1")]


# S6: a private network joined to the NIC's VPC has a path (only the NIC side is modelled).
def test_s6_private_network_joined_has_path(run):
    out = run(PATHS, [tcp("172.16.0.5", "192.168.0.10", 22), tcp("192.168.1.10", "172.16.0.5", 443)])
    assert out == [V("allow", "rule", "a1", "ingress", "open", "open-in4"),
                   V("allow", "rule", "b1", "egress", "open", "open-out4")]


# S6: a private network not joined to the NIC's VPC -> no_route; the sender is not modelled, so the
# row names the receiving instance (S7). It does reach the VPC it is joined to.
def test_s6_private_network_not_joined_no_route(run):
    out = run(PATHS, [tcp("172.17.0.5", "192.168.0.10", 22), tcp("192.168.0.10", "172.17.0.5", 22),
                      tcp("172.17.0.5", "172.20.0.10", 22), tcp("172.16.0.5", "172.20.0.10", 22)])
    assert out == [V("deny", "no_route", "a1"), V("deny", "no_route", "a1"),
                   V("allow", "rule", "z1", "ingress", "open", "open-in4"), V("deny", "no_route", "z1")]


# S5: "An address outside every VPC and every private network is external" -- so an address of a
# private network is never external, even to a NIC with an EIP; S6: "an EIP gives no path to an
# on-premises network" not joined to the NIC's VPC. a1 (EIP 203.0.113.10, VPC-X) and lab
# (172.17.0.0/24, joined to VPC-Z only): no path either way, neither to/from the private IP nor in
# the EIP's form (docs/semantics.md).
def test_s5_s6_private_network_is_never_external_and_an_eip_gives_no_path_to_it(run):
    out = run(PATHS, [tcp("172.17.0.5", "192.168.0.10", 22), tcp("172.17.0.5", "203.0.113.10", 22),
                      tcp("192.168.0.10", "172.17.0.5", 443), tcp("203.0.113.10", "172.17.0.5", 443)])
    assert out == [V("deny", "no_route", "a1")] * 4


# S6 is open on an ICMP error from a VPC address to a NIC's EIP (a router or host of the VPC
# answering traffic it saw in the EIP's form): sgdp keeps the EIP rules -- to an EIP only through the
# Internet, which an address of the VPC without an EIP does not reach -- so it is no_route, naming
# the sender when it is a NIC, else the receiver (docs/semantics.md).
def test_s6_icmp_error_from_a_vpc_address_to_an_eip_is_no_route(run):
    error = {"proto": "icmp", "icmp_type": 3, "icmp_code": 3,
             "inner": {"src": "203.0.113.10", "dst": "192.168.1.10", "proto": "udp", "sport": 40000, "dport": 53}}
    out = run(PATHS, [{"src": "192.168.1.10", "dst": "203.0.113.10", **error},
                      {"src": "192.168.0.200", "dst": "203.0.113.10", **error}])
    assert out == [V("deny", "no_route", "b1"), V("deny", "no_route", "a1")]


# S6: external traffic needs an EIP on the NIC, both directions.
def test_s6_external_without_eip_no_route(run):
    out = run(PATHS, [tcp("192.168.1.10", "93.184.216.34", 443), tcp("93.184.216.34", "192.168.1.10", 22)])
    assert out == [V("deny", "no_route", "b1"), V("deny", "no_route", "b1")]


# S6: with an EIP the NIC reaches external addresses both from its private IP and in EIP form.
def test_s6_external_with_eip_has_path(run):
    # distinct source ports: the EIP and the private IP are one endpoint for conntrack (S11)
    out = run(PATHS, [tcp("192.168.0.10", "93.184.216.34", 443, sport=40001), tcp("93.184.216.34", "203.0.113.10", 22, sport=40002),
                      tcp("93.184.216.34", "192.168.0.10", 22, sport=40003), tcp("203.0.113.10", "93.184.216.34", 443, sport=40004)])
    assert out == [V("allow", "rule", "a1", "egress", "open", "open-out4"),
                   V("allow", "rule", "a1", "ingress", "open", "open-in4"),
                   V("allow", "rule", "a1", "ingress", "open", "open-in4"),
                   V("allow", "rule", "a1", "egress", "open", "open-out4")]


# S6: "for IPv6, only if the NIC sets ipv6_internet: true" - an EIP does not give IPv6 Internet, and
# ipv6_internet does not give IPv4 Internet.
def test_s6_ipv6_internet_only_with_ipv6_internet(run):
    out = run(PATHS, [
        tcp(f"{V6A}::10", "2001:db8::1", 443),  # a1: EIP, but no ipv6_internet
        tcp("2001:db8::1", f"{V6A}::10", 22),
        tcp(f"{V6A}::20", "2001:db8::1", 443),  # a2: ipv6_internet
        tcp("2001:db8::1", f"{V6A}::20", 22),
        tcp("192.168.0.20", "93.184.216.34", 443),  # a2 has no EIP
    ])
    assert out == [V("deny", "no_route", "a1"), V("deny", "no_route", "a1"),
                   V("allow", "rule", "a2", "egress", "open", "open-out6"),
                   V("allow", "rule", "a2", "ingress", "open", "open-in6"),
                   V("deny", "no_route", "a2")]


# S6: IPv6 between two NICs of one VPC needs no Internet.
def test_s6_ipv6_inside_vpc_has_path(run):
    out = run(PATHS, [tcp(f"{V6A}::10", f"{V6A}::20", 22)])
    assert out == [V("allow", "rule", "a2", "ingress", "open", "open-in6")]


# S6: unlisted hosts of a VPC have that VPC's paths and only the modelled side is checked.
def test_s6_unlisted_host_of_vpc_only_modelled_side(run):
    out = run(PATHS, [
        tcp("192.168.0.99", "192.168.0.10", 3306),   # unlisted, same subnet -> a1 ingress only
        tcp("192.168.0.10", "192.168.7.7", 3306),    # unlisted, inside VPC CIDR but no subnet -> a1 egress only
        tcp("10.0.0.99", "192.168.1.10", 22),        # unlisted host of the peered VPC
        tcp("192.168.1.10", "10.0.0.99", 22),
        tcp("172.20.0.99", "192.168.0.10", 22),      # unlisted host of an unpeered VPC -> no path
        tcp("192.168.0.10", "172.20.0.99", 22),
    ])
    assert out == [V("allow", "rule", "a1", "ingress", "open", "open-in4"),
                   V("allow", "rule", "a1", "egress", "open", "open-out4"),
                   V("allow", "rule", "b1", "ingress", "open", "open-in4"),
                   V("allow", "rule", "b1", "egress", "open", "open-out4"),
                   V("deny", "no_route", "a1"), V("deny", "no_route", "a1")]


# S6: the unlisted host's side is not checked: a closed NIC denies at its own stage, by default.
def test_s6_unlisted_host_to_closed_nic_checks_only_its_ingress(run):
    out = run(PATHS, [tcp("192.168.0.99", "192.168.0.50", 22), tcp("192.168.0.50", "192.168.0.99", 22)])
    assert out == [V("deny", "default", "lc", "ingress"), V("deny", "default", "lc", "egress")]


# S6 (IPv6): an address in a subnet's IPv6 CIDR that no NIC holds is an unlisted host of that VPC,
# not an external address, so no ipv6_internet is needed.
def test_s6_unlisted_ipv6_host_of_vpc(run):
    out = run(PATHS, [tcp(f"{V6A}::99", f"{V6A}::10", 22)])
    assert out == [V("allow", "rule", "a1", "ingress", "open", "open-in6")]


# S5: "A packet with no modelled endpoint on either side is unmodelled".
def test_s5_unmodelled_when_neither_side_modelled(run):
    out = run(PATHS, [tcp("8.8.8.8", "1.1.1.1", 53), tcp("172.16.0.5", "8.8.8.8", 443),
                      tcp("192.168.0.99", "192.168.0.98", 22), tcp("8.8.8.8", "192.168.0.99", 22),
                      {"src": "2001:db8::1", "dst": "2001:db8::2", "proto": "udp", "dport": 53}])
    assert out == [V("unmodelled", "unmodelled")] * 5


# S7: "Traffic between two IPs of the same NIC is allowed, unfiltered, with reason local"; the row
# names the instance, no direction, no group, no rule. lc's groups have no rule at all.
def test_s7_local_between_two_ips_of_one_nic(run):
    out = run(PATHS, [tcp("192.168.0.50", "192.168.0.51", 22), tcp("192.168.0.51", "192.168.0.50", 9999, flags="A"),
                      {"src": f"{V6A}::10", "dst": f"{V6A}::11", "proto": "udp", "dport": 5},
                      tcp("192.168.0.10", "192.168.0.11", 22)])
    assert out == [V("allow", "local", "lc"), V("allow", "local", "lc"), V("allow", "local", "a1"),
                   V("allow", "local", "a1")]


# ------------------------------------------------------------------------------------------ S5 EIPs

EIP = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]}],
    "security_groups": [
        {"name": "web", "rules": [
            {"id": "web-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22",
             "remote_ip_prefix": "198.51.100.0/24"},
            {"id": "web-https", "direction": "egress", "protocol": "tcp", "multiport": "443"},
        ]},
        open_group("open"),
    ],
    "instances": [
        {"name": "e1", "subnet": "Subnet-A", "ip": "192.168.0.10", "eip": "203.0.113.10", "security_groups": ["web"]},
        {"name": "n1", "subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["open"]},
    ],
}


# S5: an EIP as destination is translated to its NIC; S8: ingress via EIP compares the real external
# source with the remote.
def test_s5_inbound_to_eip_checked_at_its_nic_with_real_source(run):
    out = run(EIP, [tcp("198.51.100.7", "203.0.113.10", 22), tcp("192.0.2.9", "203.0.113.10", 22),
                    tcp("198.51.100.7", "203.0.113.10", 23)])
    assert out == [V("allow", "rule", "e1", "ingress", "web", "web-ssh"),
                   V("deny", "default", "e1", "ingress"), V("deny", "default", "e1", "ingress")]


# S6: "a capture taken on the instance shows inbound Internet traffic addressed to the private IP:
# for a NIC with an EIP that is the same path".
def test_s5_inbound_capture_to_private_ip_of_nic_with_eip(run):
    out = run(EIP, [tcp("198.51.100.7", "192.168.0.10", 22), tcp("192.0.2.9", "192.168.0.10", 22)])
    assert out == [V("allow", "rule", "e1", "ingress", "web", "web-ssh"), V("deny", "default", "e1", "ingress")]


# S5: outbound from the private IP and from the EIP (the post-SNAT form) is the NIC's egress.
def test_s5_outbound_from_private_ip_and_from_eip_form(run):
    out = run(EIP, [tcp("192.168.0.10", "93.184.216.34", 443), tcp("203.0.113.10", "93.184.216.34", 443, sport=40001),
                    tcp("203.0.113.10", "93.184.216.34", 80), tcp("192.168.0.10", "93.184.216.34", 80, sport=40002)])
    assert out == [V("allow", "rule", "e1", "egress", "web", "web-https"),
                   V("allow", "rule", "e1", "egress", "web", "web-https"),
                   V("deny", "default", "e1", "egress"), V("deny", "default", "e1", "egress")]


# S6 + docs/semantics.md: a NIC without an EIP has no Internet path in either direction.
def test_s6_nic_without_eip_next_to_one_with_eip(run):
    out = run(EIP, [tcp("192.168.0.20", "93.184.216.34", 443), tcp("198.51.100.7", "192.168.0.20", 22)])
    assert out == [V("deny", "no_route", "n1"), V("deny", "no_route", "n1")]


# S6 + docs/semantics.md ("Through the Internet between two NICs"): a packet to another NIC's EIP
# needs an EIP at both ends.
def test_s6_to_another_nics_eip_needs_both_eips(run):
    out = run(PATHS, [tcp("192.168.0.10", "203.0.113.30", 22), tcp("192.168.1.10", "203.0.113.30", 22)])
    assert out == [V("allow", "rule", "z1", "ingress", "open", "open-in4"), V("deny", "no_route", "b1")]


# docs/semantics.md: cloud service addresses are reachable from every NIC (no EIP needed), only the
# NIC's side is checked.
def test_s6_cloud_service_addresses_reachable_without_eip(run):
    out = run(PATHS, [{"src": "192.168.1.10", "dst": "100.125.1.250", "proto": "udp", "dport": 53},
                      tcp("192.168.1.10", "169.254.169.254", 80)])
    assert out == [V("allow", "rule", "b1", "egress", "open", "open-out4")] * 2


# ----------------------------------------------------------------------------------------- S5 VIPs

# S5: a virtual IP as destination is delivered to its current holder (the first instance), as a sender
# it is the holder sending. vh's egress allows only tcp 80; vo (not the holder) allows everything.
def test_s5_virtual_ip_delivered_to_holder(run):
    out = run(PATHS, [tcp("192.168.1.10", "192.168.0.21", 5000)])
    assert out == [V("allow", "rule", "vh", "ingress", "vh-sg", "vh-in")]


def test_s5_virtual_ip_sent_by_holder(run):
    out = run(PATHS, [{"src": "192.168.0.21", "dst": "192.168.1.10", "proto": "udp", "dport": 5000},
                      tcp("192.168.0.21", "192.168.1.10", 80)])
    assert out == [V("deny", "default", "vh", "egress"), V("allow", "rule", "b1", "ingress", "open", "open-in4")]


# ------------------------------------------------------------------------------------------ S5 MACs

MACS = {
    "vpcs": [
        {"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]},
        {"name": "VPC-W", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-W", "cidr": "192.168.0.0/24"}]},
    ],
    "security_groups": [open_group("open"), {"name": "closed", "rules": []}],
    "instances": [
        {"name": "x1", "subnet": "Subnet-A", "ip": "192.168.0.10", "mac": "fa:16:3e:00:00:01", "security_groups": ["open"]},
        {"name": "w1", "subnet": "Subnet-W", "ip": "192.168.0.10", "mac": "fa:16:3e:00:00:02", "security_groups": ["closed"]},
        {"name": "x2", "subnet": "Subnet-A", "ip": "192.168.0.20", "mac": "fa:16:3e:00:00:03",
         "source_dest_check": False, "security_groups": ["closed"]},
        {"name": "x3", "subnet": "Subnet-A", "ip": "192.168.0.30", "security_groups": ["open"]},
    ],
}


# S5: "by source MAC when the NIC has a mac and the frame is Ethernet" - the same IP in two VPCs is
# told apart by the MAC.
def test_s5_sender_by_mac_when_ip_is_ambiguous(run):
    out = run(MACS, [tcp("192.168.0.10", "192.168.0.99", src_mac="fa:16:3e:00:00:02"),
                     tcp("192.168.0.10", "192.168.0.99", src_mac="fa:16:3e:00:00:01")])
    assert out == [V("deny", "default", "w1", "egress"), V("allow", "rule", "x1", "egress", "open", "open-out4")]


# S5: the MAC wins over the source IP: x2 (source/destination check off) forwarding x3's address is
# x2's egress; without a MAC, or with a MAC no NIC has, the sender is found by IP (x3).
def test_s5_sender_by_mac_beats_source_ip(run):
    out = run(MACS, [tcp("192.168.0.30", "192.168.0.99", src_mac="fa:16:3e:00:00:03"),
                     tcp("192.168.0.30", "192.168.0.99", sport=40001),
                     tcp("192.168.0.30", "192.168.0.99", sport=40002, src_mac="fa:16:3e:99:99:99")])
    assert out == [V("deny", "default", "x2", "egress"),
                   V("allow", "rule", "x3", "egress", "open", "open-out4"),
                   V("allow", "rule", "x3", "egress", "open", "open-out4")]


# docs/semantics.md: forwarded traffic from a NIC with source/destination check on is dropped,
# no_route naming that instance.
def test_s5_forwarded_with_source_dest_check_on_is_no_route(run):
    out = run(MACS, [tcp("192.168.0.30", "192.168.0.99", src_mac="fa:16:3e:00:00:01")])
    assert out == [V("deny", "no_route", "x1")]


# -------------------------------------------------------------------------------------------- S7

S7 = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]}],
    "security_groups": [
        {"name": "sa", "rules": [
            {"id": "sa-out-5000", "direction": "egress", "protocol": "tcp", "multiport": "5000"},
            {"id": "sa-out-6000", "direction": "egress", "protocol": "tcp", "multiport": "6000"},
        ]},
        {"name": "sb1", "rules": [
            {"id": "sb1-deny", "direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "5000",
             "remote_ip_prefix": "192.168.0.10/32"},
            {"id": "sb1-in", "direction": "ingress", "protocol": "tcp", "multiport": "6000-7000"},
            {"id": "sb1-out", "direction": "egress"},
        ]},
        {"name": "sb2", "rules": []},
    ],
    "instances": [
        {"name": "a", "subnet": "Subnet-A", "ip": "192.168.0.10", "security_groups": ["sa"]},
        {"name": "b1", "subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["sb1"]},
        {"name": "b2", "subnet": "Subnet-A", "ip": "192.168.0.30", "security_groups": ["sb2"]},
    ],
}


# S7: allowed at both stages -> the row is the receiver's ingress rule.
def test_s7_allowed_row_is_receiver_ingress(run):
    assert run(S7, [tcp("192.168.0.10", "192.168.0.20", 6000)]) == [V("allow", "rule", "b1", "ingress", "sb1", "sb1-in")]


# S7: "checked at the sender's egress, then (if allowed) at the receiver's ingress; the first deny
# decides": 6500 is open at b1 but not out of a -> a's egress default deny is the row.
def test_s7_egress_deny_decides_before_ingress(run):
    assert run(S7, [tcp("192.168.0.10", "192.168.0.20", 6500)]) == [V("deny", "default", "a", "egress")]


# S7: allowed out of a, denied into b1 by a deny rule -> the row is b1's ingress and that rule.
def test_s7_ingress_deny_row_names_rule(run):
    assert run(S7, [tcp("192.168.0.10", "192.168.0.20", 5000)]) == [V("deny", "rule", "b1", "ingress", "sb1", "sb1-deny")]


# S7: "a SYN allowed out of A but denied into B leaves an entry at A". B's SYN-ACK: b1's egress allows
# it by rule (b1 has no entry), then a's ingress - which has no rule at all - passes it as established
# from the entry the SYN left; the row is that last stage.
def test_s7_syn_denied_at_receiver_leaves_entry_at_sender(run):
    out = run(S7, [tcp("192.168.0.10", "192.168.0.20", 5000, time=0.0),
                   tcp("192.168.0.20", "192.168.0.10", 40000, sport=5000, flags="SA", time=0.1),
                   tcp("192.168.0.10", "192.168.0.20", 5000, flags="A", time=0.2)])
    assert out == [V("deny", "rule", "b1", "ingress", "sb1", "sb1-deny"),
                   V("allow", "established", "a", "ingress"),
                   # the SYN-ACK allowed out of b1 by rule opened an entry at b1 too, so a's ACK passes
                   # a's egress and b1's ingress as established
                   V("allow", "established", "b1", "ingress")]


# S7/S11: without the SYN (fresh dataplane) the same SYN-ACK is denied at a's ingress by default.
def test_s7_reply_without_sender_entry_is_denied_at_sender_ingress(run):
    out = run(S7, [tcp("192.168.0.20", "192.168.0.10", 40000, sport=5000, flags="SA")])
    assert out == [V("deny", "default", "a", "ingress")]


# S7 + S11 ("per NIC"): a's entry does not open b2's egress: b2's SYN-ACK is denied at b2's egress.
def test_s7_entry_at_sender_does_not_pass_receiver_egress(run):
    out = run(S7, [tcp("192.168.0.10", "192.168.0.30", 5000),
                   tcp("192.168.0.30", "192.168.0.10", 40000, sport=5000, flags="SA")])
    assert out == [V("deny", "default", "b2", "ingress"), V("deny", "default", "b2", "egress")]


# S7: established rows name the NIC's instance and the direction of the last stage.
def test_s7_established_row_fields(run):
    out = run(S7, [tcp("192.168.0.10", "192.168.0.20", 6000),
                   tcp("192.168.0.20", "192.168.0.10", 40000, sport=6000, flags="SA"),
                   tcp("192.168.0.10", "192.168.0.20", 6000, flags="A")])
    assert out == [V("allow", "rule", "b1", "ingress", "sb1", "sb1-in"),
                   V("allow", "established", "a", "ingress"),
                   V("allow", "established", "b1", "ingress")]


# S7: "Rule hit counters count every stage's match" (and docs/semantics.md: deny rules included).
def test_s7_rule_hits_count_every_stage(engine_name):
    engine = make_engine(topology_from_data(S7, "s7.yaml"), engine_name)
    pkts = [tcp("192.168.0.10", "192.168.0.20", 6000), tcp("192.168.0.10", "192.168.0.20", 5000, sport=40001),
            tcp("192.168.0.10", "192.168.0.20", 6000, sport=40002), tcp("192.168.0.10", "192.168.0.20", 6001, sport=40003)]
    engine.process(PacketBatch.from_packets([packet_from_spec(p, f"p[{i}]", "t") for i, p in enumerate(pkts)]))
    hits = {(h["security_group"], h["rule"], h["direction"]): h["hits"] for h in engine.rule_hits()}
    assert hits.get(("sa", "sa-out-6000", "egress")) == 2
    assert hits.get(("sa", "sa-out-5000", "egress")) == 1
    assert hits.get(("sb1", "sb1-in", "ingress")) == 2
    assert hits.get(("sb1", "sb1-deny", "ingress")) == 1
    assert not hits.get(("sb1", "sb1-out", "egress"))


# ------------------------------------------------------------------------------------------ S8

MATCH = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": f"{V6A}::/64"}]}],
    "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]}],
    "address_groups": [{"name": "ag-db", "ip_version": 4,
                        "ip_set": ["192.168.0.50-192.168.0.60", "192.168.5.0/24", "192.168.0.77"]}],
    "security_groups": [
        {"name": "members", "rules": [
            {"id": "m-out4", "direction": "egress"},
            {"id": "m-out6", "direction": "egress", "ethertype": "IPv6"},
        ]},
        {"name": "others", "rules": [{"id": "o-out4", "direction": "egress"}]},
        {"name": "target", "rules": [
            {"id": "tg-members4", "direction": "ingress", "remote_group_id": "members"},
            {"id": "tg-members6", "direction": "ingress", "ethertype": "IPv6", "remote_group_id": "members"},
            {"id": "tg-ag", "direction": "ingress", "protocol": "tcp", "multiport": "3306",
             "remote_address_group_id": "ag-db"},
            {"id": "tg-echo", "direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
            {"id": "tg-unreach", "direction": "ingress", "protocol": "icmp", "port_range_min": 3},
            {"id": "tg-office", "direction": "ingress", "remote_ip_prefix": "172.16.0.0/24"},
            {"id": "tg-22", "direction": "ingress", "protocol": "tcp", "multiport": "22",
             "remote_ip_prefix": "192.168.0.99/32"},
            {"id": "tg-out-443", "direction": "egress", "protocol": "tcp", "multiport": "443"},
        ]},
    ],
    "instances": [
        {"name": "m1", "subnet": "Subnet-A", "ip": "192.168.0.10", "ipv6": f"{V6A}::10", "eip": "203.0.113.10",
         "mac": "fa:16:3e:00:00:10", "source_dest_check": False, "security_groups": ["members"]},
        {"name": "m2", "subnet": "Subnet-A", "ip": "192.168.0.20", "ipv6": f"{V6A}::20", "extra_ips": ["192.168.0.22"],
         "security_groups": ["members"]},
        {"name": "mm", "nics": [
            {"subnet": "Subnet-A", "ip": "192.168.0.40", "security_groups": ["members"]},
            {"subnet": "Subnet-A", "ip": "192.168.0.41", "security_groups": ["others"]},
        ]},
        {"name": "t", "subnet": "Subnet-A", "ip": "192.168.0.30", "ipv6": f"{V6A}::30", "eip": "203.0.113.30",
         "security_groups": ["target"]},
    ],
    "virtual_ips": [{"ip": "192.168.0.21", "subnet": "Subnet-A", "instances": ["m2"]}],
}


# S8: a remote group's members are the private fixed IPs (of the rule's ethertype) of its NICs.
def test_s8_remote_group_matches_member_fixed_ips(run):
    out = run(MATCH, [tcp("192.168.0.20", "192.168.0.30", 9999), tcp("192.168.0.10", "192.168.0.30", 9999),
                      tcp(f"{V6A}::20", f"{V6A}::30", 9999), tcp("192.168.0.99", "192.168.0.30", 9999)])
    assert out == [V("allow", "rule", "t", "ingress", "target", "tg-members4"),
                   V("allow", "rule", "t", "ingress", "target", "tg-members4"),
                   V("allow", "rule", "t", "ingress", "target", "tg-members6"),
                   V("deny", "default", "t", "ingress")]


# S8: every fixed IP of a member NIC counts (extra_ips too); membership is per NIC: the second NIC
# of instance mm is bound to another group, so its address is not a member.
def test_s8_remote_group_membership_is_per_nic_fixed_ips(run):
    out = run(MATCH, [tcp("192.168.0.22", "192.168.0.30", 9999), tcp("192.168.0.40", "192.168.0.30", 9999),
                      tcp("192.168.0.41", "192.168.0.30", 9999)])
    assert out == [V("allow", "rule", "t", "ingress", "target", "tg-members4")] * 2 + [V("deny", "default", "t", "ingress")]


# S8: "EIPs, virtual IPs and addresses forwarded through another instance are NOT members of a
# remote group". m2 sending from its VIP; m1 reaching t through the Internet (t sees m1's EIP);
# m1 (source/destination check off) forwarding a packet whose source is m2's fixed IP.
def test_s8_remote_group_excludes_vip_source(run):
    assert run(MATCH, [tcp("192.168.0.21", "192.168.0.30", 9999)]) == [V("deny", "default", "t", "ingress")]


def test_s8_remote_group_excludes_eip_source(run):
    out = run(MATCH, [tcp("192.168.0.10", "203.0.113.30", 9999), tcp("203.0.113.10", "203.0.113.30", 9999, sport=40001)])
    assert out == [V("deny", "default", "t", "ingress")] * 2


def test_s8_remote_group_excludes_forwarded_source(run):
    out = run(MATCH, [tcp("192.168.0.20", "192.168.0.30", 9999, src_mac="fa:16:3e:00:00:10")])
    assert out == [V("deny", "default", "t", "ingress")]


# S8: address-group entries are IPs, CIDRs and inclusive ranges.
@pytest.mark.parametrize("src,allowed", [
    ("192.168.0.50", True), ("192.168.0.55", True), ("192.168.0.60", True), ("192.168.0.49", False),
    ("192.168.0.61", False), ("192.168.5.200", True), ("192.168.0.77", True), ("192.168.0.78", False),
])
def test_s8_address_group_ranges_cidrs_and_ips(run, src, allowed):
    out = run(MATCH, [tcp(src, "192.168.0.30", 3306)])
    assert out == [V("allow", "rule", "t", "ingress", "target", "tg-ag") if allowed else V("deny", "default", "t", "ingress")]


# S8: "for icmp/icmpv6 with a type (and optionally code), those match".
@pytest.mark.parametrize("itype,icode,rule", [
    (8, 0, "tg-echo"), (8, 1, None), (13, 0, None), (0, 0, None), (3, 4, "tg-unreach"), (3, 13, "tg-unreach"),
])
def test_s8_icmp_type_and_code(run, itype, icode, rule):
    out = run(MATCH, [{"src": "192.168.0.99", "dst": "192.168.0.30", "proto": "icmp", "icmp_type": itype,
                       "icmp_code": icode, "icmp_id": 77}])
    assert out == [V("allow", "rule", "t", "ingress", "target", rule) if rule else V("deny", "default", "t", "ingress")]


# S8: a rule with no protocol matches every IP protocol.
@pytest.mark.parametrize("spec", [
    {"proto": "gre"}, {"proto": 132}, {"proto": "udp", "dport": 9}, {"proto": "tcp", "dport": 1},
    {"proto": "icmp", "icmp_type": 13}, {"proto": 89},
])
def test_s8_protocol_all_matches_every_protocol(run, spec):
    out = run(MATCH, [{"src": "172.16.0.5", "dst": "192.168.0.30", **spec}])
    assert out == [V("allow", "rule", "t", "ingress", "target", "tg-office")]


# S8: ports are the destination port in both directions.
def test_s8_ports_are_destination_ports_egress(run):
    out = run(MATCH, [tcp("192.168.0.30", "192.168.0.99", 443),
                      tcp("192.168.0.30", "192.168.0.98", 40000, sport=443, flags="A")])
    assert out == [V("allow", "rule", "t", "egress", "target", "tg-out-443"), V("deny", "default", "t", "egress")]


def test_s8_ports_are_destination_ports_ingress(run):
    out = run(MATCH, [tcp("192.168.0.99", "192.168.0.30", 22),
                      tcp("192.168.0.99", "192.168.0.30", 40000, sport=22, flags="A")])
    assert out == [V("allow", "rule", "t", "ingress", "target", "tg-22"), V("deny", "default", "t", "ingress")]


# S8: "Only rules of the packet's IP version apply": tg-22 is IPv4; there is no IPv6 rule for .99.
def test_s8_only_rules_of_packet_ip_version(run):
    out = run(MATCH, [tcp(f"{V6A}::99", f"{V6A}::30", 22)])
    assert out == [V("deny", "default", "t", "ingress")]


ORDER = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]}],
    "security_groups": [
        {"name": "g1", "rules": [
            {"id": "g1-allow-100", "direction": "ingress", "priority": 100, "protocol": "tcp", "multiport": "80"},
            {"id": "g1-a8080", "direction": "ingress", "priority": 5, "protocol": "tcp", "multiport": "8080"},
            {"id": "g1-d8080", "direction": "ingress", "priority": 5, "action": "deny", "protocol": "tcp", "multiport": "8080"},
            {"id": "g1-d9001", "direction": "ingress", "priority": 3, "action": "deny", "protocol": "tcp", "multiport": "9001"},
            {"id": "g1-a9001", "direction": "ingress", "priority": 2, "protocol": "tcp", "multiport": "9001"},
            {"id": "g1-first", "direction": "ingress", "priority": 7, "protocol": "tcp", "multiport": "7000",
             "remote_ip_prefix": "192.168.0.0/24"},
            {"id": "g1-second", "direction": "ingress", "priority": 7, "protocol": "tcp", "multiport": "7000-7001"},
        ]},
        {"name": "g2", "rules": [
            {"id": "g2-deny-1", "direction": "ingress", "priority": 1, "action": "deny"},
        ]},
        {"name": "g3", "rules": [
            {"id": "g3-late", "direction": "ingress", "priority": 1, "protocol": "udp", "created_at": "2024-05-01T00:00:00Z"},
            {"id": "g3-early", "direction": "ingress", "priority": 1, "protocol": "udp", "created_at": "2023-05-01T00:00:00Z"},
        ]},
    ],
    "instances": [
        {"name": "o1", "subnet": "Subnet-A", "ip": "192.168.0.10", "security_groups": ["g1", "g2"]},
        {"name": "o3", "subnet": "Subnet-A", "ip": "192.168.0.30", "security_groups": ["g3"]},
    ],
}


# S8: "An allow at priority 100 in the first group therefore beats a deny at priority 1 in the second."
def test_s8_first_group_allow_priority_100_beats_second_group_deny_priority_1(run):
    assert run(ORDER, [tcp("192.168.0.99", "192.168.0.10", 80)]) == [V("allow", "rule", "o1", "ingress", "g1", "g1-allow-100")]


# S8: within a group, deny before allow at equal priority, whatever the creation order.
def test_s8_deny_before_allow_at_equal_priority(run):
    assert run(ORDER, [tcp("192.168.0.99", "192.168.0.10", 8080)]) == [V("deny", "rule", "o1", "ingress", "g1", "g1-d8080")]


# S8: priority first: an allow at priority 2 beats a deny at priority 3.
def test_s8_smaller_priority_first(run):
    assert run(ORDER, [tcp("192.168.0.99", "192.168.0.10", 9001)]) == [V("allow", "rule", "o1", "ingress", "g1", "g1-a9001")]


# S8: then creation order (file order here).
def test_s8_creation_order_breaks_ties(run):
    assert run(ORDER, [tcp("192.168.0.99", "192.168.0.10", 7000)]) == [V("allow", "rule", "o1", "ingress", "g1", "g1-first")]


# S2 + S8: with created_at, creation order is by timestamp, not file position.
def test_s8_creation_order_from_created_at(run):
    out = run(ORDER, [{"src": "192.168.0.99", "dst": "192.168.0.30", "proto": "udp", "dport": 53}])
    assert out == [V("allow", "rule", "o3", "ingress", "g3", "g3-early")]


# S8: no rule of the first group matches -> the second group's deny decides; then default deny rows
# have empty group and rule (S7).
def test_s8_falls_through_to_second_group(run):
    assert run(ORDER, [tcp("192.168.0.99", "192.168.0.10", 1234)]) == [V("deny", "rule", "o1", "ingress", "g2", "g2-deny-1")]


def test_s7_default_deny_row_has_no_group_or_rule(run):
    out = run(ORDER, [tcp("192.168.0.10", "192.168.0.99", 1234)])  # o1 has no egress rule at all
    assert out == [V("deny", "default", "o1", "egress")]
