"""Load balancers (S14): cases that mutation testing showed the other tests left open - the exact
backend-side source address, the exact backend hash, and the backend's entry for a client-IP-transfer
flow.

docs/semantics.md (S14), the choices pinned here:
- "The backend is backends[h % n] where h is 64-bit FNV-1a over: source and destination address (16
  bytes each, big-endian, IPv4 zero-extended), protocol (1 byte), source and destination port (2 bytes
  each, big-endian) of the packet as sent to the load balancer."
- "No bypass: the forwarded packet comes from the load balancer's backend-side address - a shared load
  balancer: 100.125.0.1; a dedicated one: its VIP when the VIP lies in the backend subnet, else the
  subnet's third address".
- "Bypass: ... the backend's connection table gets an entry for the client-to-backend flow ... so the
  backend's replies to the client pass as established at its egress - even to an Internet client when
  the backend has no EIP".
"""

from __future__ import annotations

import ipaddress

import pytest

from sgdp.capture.packet import Verdict


def V(verdict, reason, instance="", direction="", sg="", rule=""):
    return Verdict(verdict, reason, instance, direction, sg, rule)


TOPO = {
    "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
        {"name": "Subnet-A", "cidr": "192.168.0.0/24"},
        {"name": "Subnet-B", "cidr": "192.168.1.0/24"},
    ]}],
    "security_groups": [
        {"name": "client", "rules": [{"id": "client-out", "direction": "egress"}]},
        # backends: no egress rule at all (a reply passes only as established); ingress opens each
        # backend port to exactly one source address
        {"name": "backend", "rules": [
            {"id": "be-shared-src", "direction": "ingress", "protocol": "tcp", "multiport": "8080",
             "remote_ip_prefix": "100.125.0.1/32"},
            {"id": "be-ded-vip", "direction": "ingress", "protocol": "tcp", "multiport": "9090",
             "remote_ip_prefix": "192.168.1.200/32"},
            {"id": "be-ded-third", "direction": "ingress", "protocol": "tcp", "multiport": "9091",
             "remote_ip_prefix": "192.168.1.2/32"},
        ]},
    ],
    "instances": [
        {"name": "c1", "subnet": "Subnet-A", "ip": "192.168.0.10", "security_groups": ["client"]},
        {"name": "b1", "subnet": "Subnet-B", "ip": "192.168.1.10", "security_groups": ["backend"]},
        {"name": "b2", "subnet": "Subnet-B", "ip": "192.168.1.20", "security_groups": ["backend"]},
        {"name": "b3", "subnet": "Subnet-B", "ip": "192.168.1.30", "security_groups": ["backend"]},
    ],
    "load_balancers": [
        {"name": "elb-s", "type": "shared", "vip": "192.168.0.100", "eip": "203.0.113.50", "subnet": "Subnet-A",
         "listeners": [
             {"protocol": "tcp", "port": 80, "transfer_client_ip": False, "backends": [{"instance": "b1", "port": 8080}]},
             {"protocol": "tcp", "port": 443, "transfer_client_ip": True,
              "backends": [{"instance": "b1", "port": 8443}, {"instance": "b2", "port": 8443},
                           {"instance": "b3", "port": 8443}]},
             {"protocol": "udp", "port": 53, "transfer_client_ip": True,
              "backends": [{"instance": "b1", "port": 5353}, {"instance": "b2", "port": 5353}]},
         ]},
        # dedicated, VIP inside its backend subnet: forwards from the VIP
        {"name": "elb-d-in", "type": "dedicated", "vip": "192.168.1.200", "subnet": "Subnet-B",
         "listeners": [{"protocol": "http", "port": 80, "backends": [{"instance": "b2", "port": 9090}]}]},
        # dedicated, VIP outside its backend subnet: forwards from the backend subnet's third address
        {"name": "elb-d-out", "type": "dedicated", "vip": "192.168.0.200", "subnet": "Subnet-B",
         "listeners": [{"protocol": "http", "port": 80, "backends": [{"instance": "b3", "port": 9091}]}]},
    ],
}

C1, SVIP, SEIP = "192.168.0.10", "192.168.0.100", "203.0.113.50"


def tcp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "dport": dport, **kw}


# ------------------------------------------------------------------------- backend-side source

# Shared LB without client IP: the backend sees exactly 100.125.0.1 (be-shared-src is a /32).
def test_s14_shared_lb_forwards_from_100_125_0_1(run):
    out = run(TOPO, [tcp(C1, SVIP, 80), tcp("198.51.100.7", SEIP, 80, sport=40001)])
    assert out == [V("allow", "rule", "b1", "ingress", "backend", "be-shared-src")] * 2


# Dedicated LB whose VIP lies in the backend subnet: the backend sees the VIP.
def test_s14_dedicated_lb_with_vip_in_backend_subnet_forwards_from_vip(run):
    assert run(TOPO, [tcp(C1, "192.168.1.200", 80)]) == [V("allow", "rule", "b2", "ingress", "backend", "be-ded-vip")]


# Dedicated LB whose VIP lies elsewhere: the backend sees the backend subnet's third address
# (192.168.1.0/24 -> 192.168.1.2), not the VIP and not the second address.
def test_s14_dedicated_lb_with_vip_elsewhere_forwards_from_third_address(run):
    assert run(TOPO, [tcp(C1, "192.168.0.200", 80)]) == [V("allow", "rule", "b3", "ingress", "backend", "be-ded-third")]


# ------------------------------------------------------------------------------ backend hash

def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h


def expected_backend(src, dst, proto, sport, dport, backends):
    data = (int(ipaddress.ip_address(src)).to_bytes(16, "big") + int(ipaddress.ip_address(dst)).to_bytes(16, "big")
            + bytes([proto]) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))
    return backends[fnv1a64(data) % len(backends)]


FLOWS = ([(C1, SVIP, 40000 + k) for k in range(24)] + [(f"198.51.100.{k}", SEIP, 50000) for k in range(1, 25)]
         + [(f"198.51.100.{k}", SEIP, 50000 + k) for k in range(1, 25)])


# The chosen backend is the one the documented hash names, for the VIP and for the LB's EIP, with
# three backends (h % 3) on tcp 443 and two (h % 2) on udp 53.
def test_s14_backend_is_fnv1a_of_five_tuple_modulo_backends(run):
    packets = [tcp(s, d, 443, sport=sp, time=float(i)) for i, (s, d, sp) in enumerate(FLOWS)]
    want = [V("allow", "lb_bypass", expected_backend(s, d, 6, sp, 443, ["b1", "b2", "b3"]), "ingress")
            for s, d, sp in FLOWS]
    assert run(TOPO, packets) == want
    udp = [{"src": s, "dst": d, "proto": "udp", "sport": sp, "dport": 53, "time": float(i)} for i, (s, d, sp) in enumerate(FLOWS)]
    want = [V("allow", "lb_bypass", expected_backend(s, d, 17, sp, 53, ["b1", "b2"]), "ingress") for s, d, sp in FLOWS]
    assert run(TOPO, udp) == want


# ------------------------------------------------------------------- backend entry for bypass flows

# The backend's reply to an Internet client (from the backend's own address and port) passes the
# backend's egress - which has no rule - as established although b1..b3 have no EIP: the reply goes
# back through the load balancer. (Only the backend's stage is modelled on that path.)
@pytest.mark.parametrize("client,addr", [("198.51.100.7", SEIP), ("192.0.2.33", SEIP)])
def test_s14_backend_reply_in_bypass_flow_is_established(run, client, addr):
    backend = expected_backend(client, addr, 6, 40000, 443, ["b1", "b2", "b3"])
    bip = {"b1": "192.168.1.10", "b2": "192.168.1.20", "b3": "192.168.1.30"}[backend]
    out = run(TOPO, [tcp(client, addr, 443, sport=40000, time=0.0),
                     tcp(bip, client, 40000, sport=8443, flags="SA", time=1.0)])
    assert out == [V("allow", "lb_bypass", backend, "ingress"), V("allow", "established", backend, "egress")]


# Near miss: the entry is for the backend's port, so a "reply" from another port of the backend is
# no reply: no path to the Internet without an EIP.
def test_s14_backend_entry_is_for_backend_port(run):
    backend = expected_backend("198.51.100.7", SEIP, 6, 40000, 443, ["b1", "b2", "b3"])
    bip = {"b1": "192.168.1.10", "b2": "192.168.1.20", "b3": "192.168.1.30"}[backend]
    out = run(TOPO, [tcp("198.51.100.7", SEIP, 443, sport=40000, time=0.0),
                     tcp(bip, "198.51.100.7", 40000, sport=443, flags="SA", time=1.0)])
    assert out == [V("allow", "lb_bypass", backend, "ingress"), V("deny", "no_route", backend)]


# S15 + S14: a non-first fragment carries no ports, so on its own it matches no listener (no_route,
# no instance); after its first fragment it gets the first fragment's row.
def test_s14_s15_non_first_fragment_to_listener(run):
    first = {**tcp("198.51.100.7", SEIP, 443, sport=40000), "frag_id": 9, "frag_offset": 0, "more_fragments": True}
    later = {**tcp("198.51.100.7", SEIP, 443, sport=40000), "frag_id": 9, "frag_offset": 185, "more_fragments": False,
             "time": 1.0}
    assert run(TOPO, [later]) == [V("deny", "no_route")]
    row = V("allow", "lb_bypass", expected_backend("198.51.100.7", SEIP, 6, 40000, 443, ["b1", "b2", "b3"]), "ingress")
    assert run(TOPO, [first, later]) == [row, row]
