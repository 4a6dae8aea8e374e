"""Load balancers (S14): listener match, deterministic backend choice, client-IP transfer (bypass) versus
the backend's groups seeing a load-balancer source and the backend port, no listener -> no_route.

Backends b1, b2 (Subnet-B, group `backend`). `backend` denies the client subnet and the test Internet
range at priority 1, allows tcp 8080 only from 100.125.0.0/16 (shared LB sources), tcp 9090 only from
Subnet-B (a dedicated LB's backend-side addresses) and tcp 8081 from anywhere. Subnet-B has an ACL
that denies everything. Every expectation is derived from S14 (S7 for rows, S13 for the ACL).
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


TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24"},
        {"name": "Subnet-B", "cidr": "192.168.1.0/24", "network_acl": "acl-deny"},
    ]}],
    "network_acls": [{"name": "acl-deny", "inbound_rules": [{"id": "deny-in", "action": "deny"}],
                      "outbound_rules": [{"id": "deny-out", "action": "deny"}]}],
    "security_groups": [
        {"name": "client", "rules": [{"id": "client-out", "direction": "egress"}]},
        {"name": "closed", "rules": []},
        {"name": "backend", "rules": [
            {"id": "be-deny-client", "direction": "ingress", "action": "deny", "remote_ip_prefix": "192.168.0.0/24"},
            {"id": "be-deny-net", "direction": "ingress", "action": "deny", "remote_ip_prefix": "198.51.100.0/24"},
            {"id": "be-lb-8080", "direction": "ingress", "priority": 2, "protocol": "tcp", "multiport": "8080",
             "remote_ip_prefix": "100.125.0.0/16"},
            {"id": "be-ded-9090", "direction": "ingress", "priority": 2, "protocol": "tcp", "multiport": "9090",
             "remote_ip_prefix": "192.168.1.0/24"},
            {"id": "be-8081-any", "direction": "ingress", "priority": 2, "protocol": "tcp", "multiport": "8081"},
        ]},
    ],
    "instances": [
        {"name": "c1", "subnet": "Subnet-A", "ip": "192.168.0.10", "security_groups": ["client"]},
        {"name": "c2", "subnet": "Subnet-A", "ip": "192.168.0.11", "security_groups": ["closed"]},
        {"name": "b1", "subnet": "Subnet-B", "ip": "192.168.1.10", "security_groups": ["backend"]},
        {"name": "b2", "subnet": "Subnet-B", "ip": "192.168.1.20", "security_groups": ["backend"]},
    ],
    "load_balancers": [
        {"name": "elb-s", "type": "shared", "vip": "192.168.0.100", "eip": "203.0.113.50", "subnet": "Subnet-A",
         "listeners": [
             {"protocol": "tcp", "port": 80, "transfer_client_ip": True,
              "backends": [{"instance": "b1", "port": 8080}, {"instance": "b2", "port": 8080}]},
             {"protocol": "udp", "port": 53, "transfer_client_ip": True, "backends": [{"instance": "b1", "port": 5353}]},
             {"protocol": "tcp", "port": 81, "transfer_client_ip": False, "backends": [{"instance": "b1", "port": 8080}]},
             {"protocol": "tcp", "port": 82, "backends": [{"instance": "b1", "port": 8080}]},
             # listener port 8081 is open at the backend, the backend port 9999 is not
             {"protocol": "tcp", "port": 8081, "backends": [{"instance": "b1", "port": 9999}]},
             # listener port 9999 is not open, the backend port 8081 is (from anywhere)
             {"protocol": "tcp", "port": 9999, "backends": [{"instance": "b2", "port": 8081}]},
             {"protocol": "http", "port": 8000, "backends": [{"instance": "b1", "port": 8080}]},
             {"protocol": "https", "port": 443, "transfer_client_ip": True, "backends": [{"instance": "b1", "port": 8080}]},
             {"protocol": "http", "port": 8001, "backends": [{"instance": "b1", "port": 8082}]},
         ]},
        {"name": "elb-d", "type": "dedicated", "vip": "192.168.1.200", "subnet": "Subnet-B",
         "listeners": [
             {"protocol": "tcp", "port": 80, "transfer_client_ip": False, "backends": [{"instance": "b2", "port": 9090}]},
             {"protocol": "udp", "port": 500, "backends": [{"instance": "b2", "port": 4500}]},
             {"protocol": "http", "port": 8080, "backends": [{"instance": "b2", "port": 9090}]},
             {"protocol": "https", "port": 8443, "backends": [{"instance": "b2", "port": 8080}]},
         ]},
    ],
}

C1, C2 = "192.168.0.10", "192.168.0.11"
SVIP, SEIP, DVIP = "192.168.0.100", "203.0.113.50", "192.168.1.200"
NET = "198.51.100.7"


def tcp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "dport": dport, **kw}


def udp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "udp", "dport": dport, **kw}


BYPASS_B1 = V("allow", "lb_bypass", "b1", "ingress")
BYPASS_B2 = V("allow", "lb_bypass", "b2", "ingress")
NO_LISTENER = V("deny", "no_route")


# ------------------------------------------------------------------------------------------ bypass

# S14: shared LB, TCP listener with transfer_client_ip: true -> the backend sees the client and no ACL
# or SG rule limits it, "even rules that deny it" (be-deny-client, be-deny-net, acl-deny). S7 row:
# lb_bypass names the backend instance and ingress, no group or rule.
def test_s14_shared_tcp_with_client_ip_bypasses_deny_rules(run):
    out = run(TOPO, [tcp(C1, SVIP, 80)])
    assert len(out) == 1 and out[0] in (BYPASS_B1, BYPASS_B2)


def test_s14_shared_udp_with_client_ip_bypasses(run):
    assert run(TOPO, [udp(C1, SVIP, 53)]) == [BYPASS_B1]


# S14 + S6 ("Load-balancer traffic always has its path"): an Internet client via the LB's EIP.
def test_s14_internet_client_via_lb_eip_bypasses(run):
    out = run(TOPO, [tcp(NET, SEIP, 80), udp(NET, SEIP, 53)])
    assert out[0] in (BYPASS_B1, BYPASS_B2) and out[1] == BYPASS_B1


# S14: a dedicated LB's TCP/UDP listeners always pass the client IP on (transfer_client_ip: false is
# ignored there).
def test_s14_dedicated_tcp_udp_always_bypass(run):
    assert run(TOPO, [tcp(C1, DVIP, 80), udp(C1, DVIP, 500)]) == [BYPASS_B2, BYPASS_B2]


# --------------------------------------------------------------------------------- no bypass: SGs

# S14: shared without client IP (explicit false, or absent): the backend sees a source from
# 100.125.0.0/16 and the backend port 8080 -> be-lb-8080; the client-subnet deny does not apply.
@pytest.mark.parametrize("port", [81, 82])
def test_s14_shared_without_client_ip_backend_sees_lb_source(run, port):
    assert run(TOPO, [tcp(C1, SVIP, port)]) == [V("allow", "rule", "b1", "ingress", "backend", "be-lb-8080")]


# S14: "The backend's rules see the backend's port": listener 8081 (open at the backend) forwards to
# 9999 (not open) -> denied; listener 9999 forwards to 8081 -> allowed.
def test_s14_backend_rules_see_backend_port(run):
    out = run(TOPO, [tcp(C1, SVIP, 8081), tcp(C1, SVIP, 9999)])
    assert out == [V("deny", "default", "b1", "ingress"), V("allow", "rule", "b2", "ingress", "backend", "be-8081-any")]


# S14: HTTP/HTTPS listeners never bypass, even with transfer_client_ip: true (ignored).
def test_s14_http_https_listeners_apply_security_groups(run):
    out = run(TOPO, [tcp(C1, SVIP, 8000), tcp(C1, SVIP, 443, sport=40001), tcp(C1, SVIP, 8001, sport=40002)])
    assert out == [V("allow", "rule", "b1", "ingress", "backend", "be-lb-8080"),
                   V("allow", "rule", "b1", "ingress", "backend", "be-lb-8080"),
                   V("deny", "default", "b1", "ingress")]


# S14: an Internet client through a non-bypass listener: the backend sees the LB's source, so
# be-deny-net (198.51.100.0/24) does not apply either.
def test_s14_internet_client_non_bypass_sees_lb_source(run):
    assert run(TOPO, [tcp(NET, SEIP, 81)]) == [V("allow", "rule", "b1", "ingress", "backend", "be-lb-8080")]


# S14: a dedicated LB's HTTP/HTTPS listener: the source is in its backend subnet (192.168.1.0/24),
# not 100.125.0.0/16: be-ded-9090 allows 9090; 8080 (only from 100.125.0.0/16) is denied.
def test_s14_dedicated_http_source_from_backend_subnet(run):
    out = run(TOPO, [tcp(C1, DVIP, 8080), tcp(C1, DVIP, 8443, sport=40001)])
    assert out == [V("allow", "rule", "b2", "ingress", "backend", "be-ded-9090"), V("deny", "default", "b2", "ingress")]


# S14: if the backend's group denied 100.125.0.0/16, a non-bypass listener is denied (the SGs apply),
# while the bypass listener still passes.
def test_s14_backend_deny_applies_without_bypass_only(run):
    topo = copy.deepcopy(TOPO)
    topo["security_groups"][2]["rules"].insert(0, {"id": "be-deny-lb", "direction": "ingress", "action": "deny",
                                                   "remote_ip_prefix": "100.125.0.0/16"})
    out = run(topo, [tcp(C1, SVIP, 81), udp(C1, SVIP, 53)])
    assert out == [V("deny", "rule", "b1", "ingress", "backend", "be-deny-lb"), BYPASS_B1]


# S7: the client NIC is checked at its egress before the load balancer.
def test_s14_client_egress_applies(run):
    assert run(TOPO, [tcp(C2, SVIP, 80), tcp(C2, DVIP, 8080)]) == [V("deny", "default", "c2", "egress")] * 2


# ---------------------------------------------------------------------------------- no listener

# S14: "A packet to a load-balancer address and port with no listener is denied (no_route)"; S7:
# that row names no instance.
@pytest.mark.parametrize("spec", [
    tcp(C1, SVIP, 22), udp(C1, SVIP, 80), tcp(C1, SVIP, 53), tcp(NET, SEIP, 22), udp(NET, SEIP, 81),
    tcp(C1, DVIP, 22), udp(C1, DVIP, 80),
])
def test_s14_no_listener_is_no_route_without_instance(run, spec):
    assert run(TOPO, [spec]) == [NO_LISTENER]


# -------------------------------------------------------------------------- backend by 5-tuple hash

def _backends(engine_name, packets):
    engine = make_engine(topology_from_data(TOPO, "lb.yaml"), engine_name)
    out = engine.process(PacketBatch.from_packets([packet_from_spec(p, f"p[{i}]", "t") for i, p in enumerate(packets)]))
    return [engine.names.decode(out, i) for i in range(len(packets))]


# S14: "forwarded to a backend chosen deterministically by a hash of its 5-tuple": the choice only
# depends on the 5-tuple (not on time, history or the engine instance), and different 5-tuples spread
# over the backends.
def test_s14_backend_choice_is_deterministic_per_five_tuple(engine_name):
    flows = [tcp(C1, SVIP, 80, sport=40000 + k) for k in range(64)]
    first = _backends(engine_name, flows)
    assert all(v in (BYPASS_B1, BYPASS_B2) for v in first)
    assert {v.instance for v in first} == {"b1", "b2"}
    # the same flows again, later, after other traffic, in reverse order, in a fresh dataplane
    later = [{**f, "time": 500.0 + k, "flags": "A"} for k, f in enumerate(reversed(flows))]
    again = _backends(engine_name, [tcp(NET, SEIP, 80, sport=1)] + later)[1:]
    assert [v.instance for v in again] == [v.instance for v in reversed(first)]
    # and in the same dataplane, the next packets of each flow go to the same backend
    both = _backends(engine_name, flows + [{**f, "time": 1.0, "flags": "A"} for f in flows])
    assert [v.instance for v in both[64:]] == [v.instance for v in both[:64]]


def test_s14_backend_hash_uses_whole_five_tuple(engine_name):
    # varying only the client address (fixed source port) also spreads flows over both backends
    flows = [tcp(f"198.51.100.{k}", SEIP, 80, sport=40000) for k in range(1, 65)]
    assert {v.instance for v in _backends(engine_name, flows)} == {"b1", "b2"}


# S11 at the client: its egress to the VIP opened an entry, so the answer from the VIP passes its
# ingress (which has no rule) as established.
@pytest.mark.parametrize("port", [80, 81, 8000])
def test_s14_reply_from_vip_to_client_is_established(run, port):
    out = run(TOPO, [tcp(C1, SVIP, port), tcp(SVIP, C1, 40000, sport=port, flags="SA")])
    assert out[1] == V("allow", "established", "c1", "ingress")
