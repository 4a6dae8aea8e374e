"""Load-balancer sessions (S14): replies in both captured forms, one session per client 5-tuple, and
the forwarded leg as a capture on a backend shows it — on both engines.

Every expectation below is worked out by hand from the SPEC text (S5–S8, S13, S14), not from sgdp's
output. The topology makes each mechanism visible:

* backends b1 (192.168.1.10, no EIP) and b2 (192.168.1.20, EIP 203.0.113.20) in Subnet-B, whose
  network ACL denies everything in and out; their group `backend` has NO egress rule (a backend's
  reply passes only as `established`), denies tcp/80 and tcp/443 from anywhere, and allows tcp/8080
  from 100.125.0.0/16 (the shared LB's source) and from Subnet-B (the dedicated LB's source);
* clients c1, c2 in Subnet-A, group `client`: egress to anywhere, NO ingress rule (a reply reaches
  them only as `established`); an on-premises network `office` joined to the VPC;
* shared LB elb-s (VIP 192.168.0.100, EIP 203.0.113.50): tcp/80 with client-IP transfer -> b1:80,
  tcp/81 without -> b1:8080, tcp/443 with -> b2:443, udp/53 with -> b1:5353;
* dedicated LB elb-d (VIP 192.168.1.200, in the backend subnet; EIP 203.0.113.60): tcp/80 -> b1:80 (a dedicated LB's
  TCP listener always passes the client's address), http/8000 -> b1:8080 (never passes it: the
  backend sees the VIP, which lies in its subnet).

Each listener has one backend, so the hash choice of S14 is fixed.
"""

from __future__ import annotations

import json

import pytest

from sgdp.cli import main
from sgdp.capture.packet import Verdict


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


TOPO = {
    "vpcs": [{"name": "VPC-A", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24"},
        {"name": "Subnet-B", "cidr": "192.168.1.0/24", "network_acl": "acl-b"},
    ]}],
    "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-A"]}],
    "network_acls": [{"name": "acl-b", "inbound_rules": [{"id": "acl-in", "action": "deny"}],
                      "outbound_rules": [{"id": "acl-out", "action": "deny"}]}],
    "security_groups": [
        {"name": "client", "rules": [{"id": "client-out", "direction": "egress"}]},
        {"name": "backend", "rules": [
            {"id": "be-deny-80", "direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "80"},
            {"id": "be-deny-443", "direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "443"},
            {"id": "be-shared", "direction": "ingress", "priority": 2, "protocol": "tcp", "multiport": "8080",
             "remote_ip_prefix": "100.125.0.0/16"},
            {"id": "be-ded", "direction": "ingress", "priority": 2, "protocol": "tcp", "multiport": "8080",
             "remote_ip_prefix": "192.168.1.0/24"},
        ]},
    ],
    "instances": [
        {"name": "c1", "subnet": "Subnet-A", "ip": "192.168.0.10", "security_groups": ["client"]},
        {"name": "c2", "subnet": "Subnet-A", "ip": "192.168.0.11", "security_groups": ["client"]},
        {"name": "b1", "subnet": "Subnet-B", "ip": "192.168.1.10", "security_groups": ["backend"]},
        {"name": "b2", "subnet": "Subnet-B", "ip": "192.168.1.20", "eip": "203.0.113.20", "security_groups": ["backend"]},
    ],
    "load_balancers": [
        {"name": "elb-s", "type": "shared", "vip": "192.168.0.100", "eip": "203.0.113.50", "subnet": "Subnet-A",
         "listeners": [
             {"protocol": "tcp", "port": 80, "transfer_client_ip": True, "backends": [{"instance": "b1", "port": 80}]},
             {"protocol": "tcp", "port": 81, "transfer_client_ip": False, "backends": [{"instance": "b1", "port": 8080}]},
             {"protocol": "tcp", "port": 443, "transfer_client_ip": True, "backends": [{"instance": "b2", "port": 443}]},
             {"protocol": "udp", "port": 53, "transfer_client_ip": True, "backends": [{"instance": "b1", "port": 5353}]},
         ]},
        {"name": "elb-d", "type": "dedicated", "vip": "192.168.1.200", "eip": "203.0.113.60", "subnet": "Subnet-B",
         "listeners": [
             {"protocol": "tcp", "port": 80, "backends": [{"instance": "b1", "port": 80}]},
             {"protocol": "http", "port": 8000, "backends": [{"instance": "b1", "port": 8080}]},
         ]},
    ],
}

C1, C2, B1, B2, B2_EIP = "192.168.0.10", "192.168.0.11", "192.168.1.10", "192.168.1.20", "203.0.113.20"
SVIP, SEIP, DVIP, DEIP = "192.168.0.100", "203.0.113.50", "192.168.1.200", "203.0.113.60"
NET, NET2, OFFICE = "198.51.100.7", "198.51.100.8", "172.16.0.5"
SHARED_SOURCE = "100.125.0.1"   # docs/semantics.md: the shared LB's backend-side source address


def tcp(src, dst, sport, dport, flags="S", **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "sport": sport, "dport": dport, "flags": flags, **kw}


BYPASS_B1, BYPASS_B2 = V("allow", "lb_bypass", "b1", "ingress"), V("allow", "lb_bypass", "b2", "ingress")
EST_B1_OUT, EST_B2_OUT = V("allow", "established", "b1", "egress"), V("allow", "established", "b2", "egress")
EST_B1_IN = V("allow", "established", "b1", "ingress")
EST_C1_IN, EST_C2_IN = V("allow", "established", "c1", "ingress"), V("allow", "established", "c2", "ingress")


# ------------------------------------------------------------------ Internet clients, shared LB


def test_internet_client_transfer_reply_as_sent_by_the_backend(run):
    """Client-IP transfer: b1 sees the client's address and replies to it; b1 has no EIP and no
    egress rule, Subnet-B's ACL denies everything: the reply goes back through the LB and belongs to
    the session, established at b1's egress (S14, S6: LB traffic always has its path)."""
    assert run(TOPO, [
        tcp(NET, SEIP, 50000, 80, "S"),
        tcp(B1, NET, 80, 50000, "SA"),
        tcp(NET, SEIP, 50000, 80, "A"),
        tcp(B1, NET, 80, 50000, "PA"),
    ]) == [BYPASS_B1, EST_B1_OUT, BYPASS_B1, EST_B1_OUT]


def test_internet_client_transfer_reply_as_sent_by_the_lb(run):
    """The same reply captured on the Internet side: from the listener's address and port (S14)."""
    assert run(TOPO, [
        tcp(NET, SEIP, 50000, 80, "S"),
        tcp(SEIP, NET, 80, 50000, "SA"),
        tcp(NET, SEIP, 50000, 80, "A"),
    ]) == [BYPASS_B1, EST_B1_OUT, BYPASS_B1]


def test_internet_client_udp_transfer_replies(run):
    out = run(TOPO, [
        {"src": NET, "dst": SEIP, "proto": "udp", "sport": 50001, "dport": 53},
        {"src": B1, "dst": NET, "proto": "udp", "sport": 5353, "dport": 50001},
        {"src": SEIP, "dst": NET, "proto": "udp", "sport": 53, "dport": 50001},
    ])
    assert out == [BYPASS_B1, EST_B1_OUT, EST_B1_OUT]


def test_internet_client_without_transfer(run):
    """tcp/81 does not pass the client's address: b1's group sees 100.125.0.1 and port 8080
    (be-shared allows); the LB's reply is established at b1's egress; the client's next packet is
    established at b1's ingress (the session's backend leg)."""
    assert run(TOPO, [
        tcp(NET, SEIP, 50000, 81, "S"),
        tcp(SEIP, NET, 81, 50000, "SA"),
        tcp(NET, SEIP, 50000, 81, "A"),
    ]) == [V("allow", "rule", "b1", "ingress", "backend", "be-shared"), EST_B1_OUT, EST_B1_IN]


def test_two_clients_with_the_same_source_port_never_share_a_backend_connection(run):
    """S14: each client 5-tuple is its own session; where the backend sees the LB's source address,
    each session gets its own source port. The second client's SYN is a new connection at b1 (its
    rule decides), not `established`. Each session's replies are its own."""
    out = run(TOPO, [
        tcp(NET, SEIP, 50000, 81, "S"),
        tcp(NET2, SEIP, 50000, 81, "S"),
        tcp(SEIP, NET2, 81, 50000, "SA"),
        tcp(SEIP, NET, 81, 50000, "SA"),
        # as captured on b1: the first session kept the client's port, the second got the next one
        # (docs/semantics.md: Linux SNAT's port choice)
        tcp(B1, SHARED_SOURCE, 8080, 50000, "SA"),
        tcp(B1, SHARED_SOURCE, 8080, 50001, "SA"),
    ])
    new = V("allow", "rule", "b1", "ingress", "backend", "be-shared")
    assert out == [new, new, EST_B1_OUT, EST_B1_OUT, EST_B1_OUT, EST_B1_OUT]


def test_same_client_port_again_after_the_session_is_gone(run):
    """A session that expired (a SYN without reply: 30 s, S11) leaves its port free again."""
    new = V("allow", "rule", "b1", "ingress", "backend", "be-shared")
    assert run(TOPO, [
        tcp(NET, SEIP, 50000, 81, "S", time=0),
        tcp(NET2, SEIP, 50000, 81, "S", time=40),
        tcp(B1, SHARED_SOURCE, 8080, 50000, "SA", time=40.5),
    ]) == [new, new, EST_B1_OUT]


def test_lb_form_reply_without_a_session(run):
    """A packet from a listener's address to an Internet address with no session behind it: no NIC
    on either side decides it (docs/semantics.md)."""
    assert run(TOPO, [tcp(SEIP, NET, 80, 59999, "SA")]) == [V("unmodelled", "unmodelled")]


# ------------------------------------------------------------------------------ clients in a VPC


def test_vpc_client_transfer_reply_forms(run):
    """c1 through the shared VIP with client-IP transfer. b1's reply to c1's address (as captured
    on b1) is established at b1's egress and at c1's ingress — c1's entry toward the listener; the
    same reply as the LB sends it (as captured on c1) likewise; c1 has no ingress rule."""
    assert run(TOPO, [
        tcp(C1, SVIP, 40000, 80, "S"),
        tcp(B1, C1, 80, 40000, "SA"),
        tcp(C1, SVIP, 40000, 80, "A"),
        tcp(SVIP, C1, 80, 40000, "PA"),
    ]) == [BYPASS_B1, EST_C1_IN, BYPASS_B1, EST_C1_IN]


def test_vpc_client_without_transfer(run):
    out = run(TOPO, [
        tcp(C1, SVIP, 40001, 81, "S"),
        tcp(SVIP, C1, 81, 40001, "SA"),
        tcp(B1, SHARED_SOURCE, 8080, 40001, "A"),     # b1's side of the same session
    ])
    assert out == [V("allow", "rule", "b1", "ingress", "backend", "be-shared"), EST_C1_IN, EST_B1_OUT]


def test_vpc_client_dedicated_lb(run):
    """Dedicated LB: tcp/80 always passes the client's address (lb_bypass); its replies in both
    forms are c2's (established). http/8000 never does: b1 sees the VIP (in its subnet, be-ded)
    and replies to the VIP, which is the session's backend leg (established at b1's egress, not a
    packet to a port without listener)."""
    assert run(TOPO, [
        tcp(C2, DVIP, 40002, 80, "S"),
        tcp(B1, C2, 80, 40002, "SA"),
        tcp(DVIP, C2, 80, 40002, "A"),
        tcp(C2, DVIP, 40003, 8000, "S"),
        tcp(B1, DVIP, 8080, 40003, "SA"),
        tcp(DVIP, C2, 8000, 40003, "SA"),
    ]) == [BYPASS_B1, EST_C2_IN, EST_C2_IN, V("allow", "rule", "b1", "ingress", "backend", "be-ded"), EST_B1_OUT,
           EST_C2_IN]


def test_internet_client_dedicated_lb(run):
    """A dedicated LB's TCP listener passes the client's address: lb_bypass; b1's reply in both
    forms is the session's, established at b1's egress. Its http listener does not: b1 sees the
    VIP (be-ded), and the reply as the LB sends it is established at b1's egress."""
    assert run(TOPO, [
        tcp(NET, DEIP, 50100, 80, "S"),
        tcp(B1, NET, 80, 50100, "SA"),
        tcp(DEIP, NET, 80, 50100, "A"),
        tcp(NET, DEIP, 50101, 8000, "S"),
        tcp(DEIP, NET, 8000, 50101, "SA"),
        tcp(NET, DEIP, 50101, 8000, "A"),
    ]) == [BYPASS_B1, EST_B1_OUT, EST_B1_OUT, V("allow", "rule", "b1", "ingress", "backend", "be-ded"), EST_B1_OUT,
           EST_B1_IN]


def test_vpc_client_to_a_backend_with_eip(run):
    """b2 has an EIP; through the listener it is reached like any backend, and its reply to c1's
    address is c1's (its entry toward the listener), in both forms."""
    assert run(TOPO, [
        tcp(C1, SVIP, 40010, 443, "S"),
        tcp(B2, C1, 443, 40010, "SA"),
        tcp(SVIP, C1, 443, 40010, "PA"),
    ]) == [BYPASS_B2, EST_C1_IN, EST_C1_IN]


def test_backend_reply_to_a_vpc_address_outside_a_session_is_ordinary(run):
    """b1 sending to c2, which opened no session: ordinary traffic, and b1 has no egress rule (its
    groups decide before the outbound ACL, S13)."""
    assert run(TOPO, [
        tcp(C1, SVIP, 40000, 80, "S"),
        tcp(B1, C2, 80, 40000, "SA"),
    ]) == [BYPASS_B1, V("deny", "default", "b1", "egress")]


# -------------------------------------------------------------- the forwarded leg on a backend


def test_capture_on_a_backend_without_eip(run):
    """A capture on b1 shows the forwarded leg: an external client to b1's IP on a port that a
    client-IP-transfer listener forwards to b1 (tcp/80) is that listener's traffic: lb_bypass, and
    b1's replies established, although b1 has no EIP. A port no listener forwards to b1 (22) and
    one that only listeners without transfer serve (8080: b1 would see the LB's address, so a
    client address there is ordinary) have no path from the Internet (S6)."""
    assert run(TOPO, [
        tcp(NET, B1, 50010, 80, "S"),
        tcp(B1, NET, 80, 50010, "SA"),
        tcp(NET, B1, 50010, 80, "A"),
        tcp(NET, B1, 50011, 22, "S"),
        tcp(NET, B1, 50012, 8080, "S"),
    ]) == [BYPASS_B1, EST_B1_OUT, BYPASS_B1, V("deny", "no_route", "b1"), V("deny", "no_route", "b1")]


def test_capture_on_a_backend_with_eip(run):
    """b2 has an EIP, so the Internet could reach it directly; a port that a listener serves is
    read as reached through the load balancer all the same (S14): lb_bypass despite be-deny-443 and
    the ACL. Addressed to the EIP itself, it is the EIP's path: the inbound ACL denies it (S13)."""
    assert run(TOPO, [
        tcp(NET, B2, 50020, 443, "S"),
        tcp(B2, NET, 443, 50020, "SA"),
        tcp(NET, B2_EIP, 50021, 443, "S"),
    ]) == [BYPASS_B2, EST_B2_OUT, V("deny", "acl", "b2", "ingress", "acl-b", "acl-in")]


def test_capture_on_a_backend_vpc_client_only_within_its_session(run):
    """From a client in the VPC, which has a direct path too, the packet to the backend is
    forwarded traffic only inside a session the client opened toward the listener (seen in the
    capture); otherwise ordinary: Subnet-B's ACL denies it."""
    assert run(TOPO, [
        tcp(C1, B1, 40005, 80, "S"),
        tcp(C1, SVIP, 40006, 80, "S"),
        tcp(C1, B1, 40006, 80, "A"),
    ]) == [V("deny", "acl", "b1", "ingress", "acl-b", "acl-in"), BYPASS_B1, BYPASS_B1]


def test_capture_on_a_backend_private_network_client(run):
    assert run(TOPO, [
        tcp(OFFICE, B1, 40007, 80, "S"),
        tcp(OFFICE, SVIP, 40008, 80, "S"),
        tcp(OFFICE, B1, 40008, 80, "A"),
        tcp(B1, OFFICE, 80, 40008, "A"),
    ]) == [V("deny", "acl", "b1", "ingress", "acl-b", "acl-in"), BYPASS_B1, BYPASS_B1, EST_B1_OUT]


def test_health_checks_are_not_clients(run):
    """A cloud service address (100.125.0.0/16: the health checks) is not an external client: its
    packets to a backend port are checked by the backend's groups (docs/semantics.md)."""
    assert run(TOPO, [tcp("100.125.9.9", B1, 41000, 80, "S")]) == [V("deny", "rule", "b1", "ingress", "backend", "be-deny-80")]


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_explain_says_reached_through_the_load_balancer(tmp_path, capsys, engine):
    import yaml

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"version": 1, **TOPO}))
    assert main(["explain", str(path), "--src", NET, "--dst", f"{B2}:443", "--json", "--engine", engine]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["verdict"], out["reason"], out["instance"]) == ("allow", "lb_bypass", "b2")
    assert any("reached through load balancer elb-s" in str(step.get("detail", "")) for step in out["steps"])
