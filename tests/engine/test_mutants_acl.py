"""Network ACLs (S13): cases that mutation testing showed the other tests left open.

S13: "Traffic within one subnet, ..., and from or to a load balancer's own address is never filtered
by an ACL." docs/semantics.md: "Packets from a load-balancer address to a NIC are checked at that
NIC's ingress only"; traffic to another NIC's EIP goes "Through the Internet" - it is Internet traffic,
not traffic within the subnet, so the ACL filters it. Rule hits (S7, docs/semantics.md): "Every stage
that evaluates rules counts a hit for the rule that matched (security-group or ACL rule, deny rules
included), keyed by (group or ACL, rule, direction)."

Subnet-A has acl-a: inbound allows tcp 22 and denies tcp 23 (then the implicit deny), outbound allows
tcp 22 only. Every NIC's groups allow everything, so the ACL decides.
"""

from __future__ import annotations

from sgdp.engine.choice import make_engine
from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import PacketBatch, Verdict
from sgdp.testing.scenario import packet_from_spec


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24", "network_acl": "acl-a"},
        {"name": "Subnet-B", "cidr": "192.168.1.0/24"},
    ]}],
    "network_acls": [{
        "name": "acl-a",
        "inbound_rules": [
            {"id": "in-ssh", "action": "allow", "protocol": "tcp", "destination_port": "22"},
            {"id": "in-deny-telnet", "action": "deny", "protocol": "tcp", "destination_port": "23"},
        ],
        "outbound_rules": [{"id": "out-ssh", "action": "allow", "protocol": "tcp", "destination_port": "22"}],
    }],
    "security_groups": [{"name": "open", "rules": [
        {"id": "open-in", "direction": "ingress"}, {"id": "open-out", "direction": "egress"}]}],
    "instances": [
        {"name": "a1", "subnet": "Subnet-A", "ip": "192.168.0.10", "eip": "203.0.113.10", "security_groups": ["open"]},
        {"name": "a2", "subnet": "Subnet-A", "ip": "192.168.0.20", "eip": "203.0.113.20", "security_groups": ["open"]},
        {"name": "b1", "subnet": "Subnet-B", "ip": "192.168.1.10", "security_groups": ["open"]},
    ],
    "load_balancers": [
        {"name": "elb-d", "type": "dedicated", "vip": "192.168.1.200", "subnet": "Subnet-B",
         "listeners": [{"protocol": "http", "port": 80, "backends": [{"instance": "b1", "port": 8080}]}]},
        {"name": "elb-s", "type": "shared", "vip": "192.168.1.100", "subnet": "Subnet-B",
         "listeners": [{"protocol": "tcp", "port": 80, "backends": [{"instance": "b1", "port": 8080}]}]},
    ],
}

A1, A2, B1 = "192.168.0.10", "192.168.0.20", "192.168.1.10"


def tcp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "dport": dport, **kw}


def acl_deny(inst, direction, rule=""):
    return V("deny", "acl", inst, direction, "acl-a", rule)


# A packet sent from a load balancer's own address (VIP) straight to a1 is not filtered by acl-a
# (tcp 8080 has no inbound ACL rule): a1's groups decide. Near miss: the same packet from b1 (not an
# LB address, another subnet) is filtered.
def test_s13_packet_from_load_balancer_address_to_nic_not_filtered(run):
    out = run(TOPO, [tcp("192.168.1.200", A1, 8080), tcp("192.168.1.100", A1, 8080, sport=40001),
                     tcp(B1, A1, 8080, sport=40002)])
    assert out == [V("allow", "rule", "a1", "ingress", "open", "open-in")] * 2 + [acl_deny("a1", "ingress")]


# Two NICs of the same subnet: over their private addresses the ACL is not involved (tcp 80 has no
# ACL rule, yet it passes); addressed to the other NIC's EIP the traffic goes through the Internet and
# acl-a filters it: out of a1 (outbound: implicit deny), and tcp 22 - allowed out - is checked inbound
# at a2 too (in-ssh).
def test_s13_same_subnet_via_eip_is_filtered(run):
    out = run(TOPO, [tcp(A1, A2, 80), tcp(A1, "203.0.113.20", 80, sport=40001), tcp(A1, "203.0.113.20", 23, sport=40002),
                     tcp("203.0.113.10", "203.0.113.20", 80, sport=40003), tcp(A1, "203.0.113.20", 22, sport=40004)])
    assert out == [V("allow", "rule", "a2", "ingress", "open", "open-in"),
                   acl_deny("a1", "egress"), acl_deny("a1", "egress"), acl_deny("a1", "egress"),
                   V("allow", "rule", "a2", "ingress", "open", "open-in")]


def _hits(engine_name, packets):
    engine = make_engine(topology_from_data(TOPO, "acl.yaml"), engine_name)
    engine.process(PacketBatch.from_packets([packet_from_spec(p, f"p[{i}]", "t") for i, p in enumerate(packets)]))
    return {(h["security_group"], h["rule"], h["direction"]): h["hits"] for h in engine.rule_hits()}


# ACL rules count hits like security-group rules: in-ssh twice (two new inbound connections), the deny
# rule in-deny-telnet once, out-ssh once (a1's outbound ssh to the Internet); the implicit deny and
# packets passed by the ACL's connection tracking count nothing.
def test_s7_s13_acl_rule_hits(engine_name):
    net = "198.51.100.7"
    hits = _hits(engine_name, [
        tcp(net, A1, 22, time=0.0), tcp(net, A1, 22, sport=40001, time=0.1),
        tcp(A1, net, 40000, sport=22, flags="SA", time=0.2),  # the reply: ACL conntrack, no hit
        tcp(net, A1, 23, sport=40002, time=0.3),
        tcp(net, A1, 80, sport=40003, time=0.4),  # implicit deny
        tcp(A1, net, 22, sport=50000, time=0.5),
    ])
    acl = {k: v for k, v in hits.items() if k[0] == "acl-a"}
    assert acl == {("acl-a", "in-ssh", "ingress"): 2, ("acl-a", "in-deny-telnet", "ingress"): 1,
                   ("acl-a", "out-ssh", "egress"): 1}
