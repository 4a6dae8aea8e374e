"""Bounded fuzzing of the topology loader (hypothesis), as the capture reader is fuzzed.

Whatever the file holds, loading it either gives a Topology or raises ConfigError with one line that
starts with the file's name: never another exception, never a message of several lines or one that
echoes an unbounded value. Three sources of files: valid topologies with their text mutated; random
data made of the format's own keys and values, written as YAML or as JSON; and YAML with anchors,
aliases, merge keys, tags and deep nesting. ``SGDP_FUZZ_EXAMPLES`` scales the number of examples
(default 150 per test).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.errors import ConfigError
from sgdp.topology import Topology, load_topology

EXAMPLES = int(os.environ.get("SGDP_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_MESSAGE = 600  # a message names the file, a path and a value cut short: never the whole input

VALID = """\
version: 1
vpcs:
  - name: VPC-X
    cidr: 192.168.0.0/16
    subnets:
      - {name: Subnet-A, cidr: 192.168.0.0/24, network_acl: acl-1}
private_networks:
  - {name: office, cidr: 172.16.0.0/24, vpcs: [VPC-X]}
address_groups:
  - {name: partners, ip_version: 4, ip_set: [198.51.100.7, 203.0.113.0/28, 192.0.2.10-192.0.2.20]}
security_groups:
  - name: Sg-Web
    rules:
      - {id: ssh-office, direction: ingress, protocol: tcp, multiport: "22", remote_ip_prefix: 172.16.0.0/24}
      - {id: web, direction: ingress, protocol: tcp, multiport: "80,443", remote_address_group_id: partners}
      - {id: no-mysql, direction: ingress, action: deny, priority: 1, protocol: tcp, multiport: "3306"}
      - {id: peers, direction: ingress, remote_group_id: Sg-Web}
      - {id: out, direction: egress, remote_ip_prefix: 0.0.0.0/0}
instances:
  - {name: web-1, flavor: s6.large.2, subnet: Subnet-A, ip: 192.168.0.10, security_groups: [Sg-Web], eip: 203.0.113.10}
  - {name: web-2, flavor: c2.large.2, subnet: Subnet-A, ip: 192.168.0.11, security_groups: [Sg-Web]}
virtual_ips:
  - {ip: 192.168.0.21, subnet: Subnet-A, instances: [web-1, web-2]}
load_balancers:
  - name: elb-1
    vip: 192.168.0.100
    subnet: Subnet-A
    listeners: [{protocol: tcp, port: 80, backends: [{instance: web-1, port: 8080}]}]
network_acls:
  - name: acl-1
    inbound_rules: [{action: allow}]
    outbound_rules: [{action: allow}]
"""

KEYS = ["version", "vpcs", "name", "cidr", "subnets", "security_groups", "rules", "id", "direction", "protocol",
        "multiport", "remote_ip_prefix", "remote_group_id", "instances", "subnet", "ip", "eip", "flavor",
        "address_groups", "ip_set", "ip_version", "priority", "action", "load_balancers", "listeners", "port",
        "backends", "instance", "network_acls", "inbound_rules", "virtual_ips", "description", "nics", "<<"]
WORDS = ["ingress", "egress", "tcp", "udp", "icmp", "any", "allow", "deny", "10.0.0.0/8", "192.168.0.10",
         "203.0.113.10", "::/0", "22", "1-65535", "80,443", "٢٢", "0" * 5000, "a\x00b", "a\nb", "\x1b[31m",
         "Sg-Web", "Subnet-A", "VPC-X", "s6.large.2", "x" * 3000]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.sampled_from(WORDS), st.text(max_size=20))
data = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5)), max_leaves=40)


def _check(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"topo{suffix}"
        path.write_bytes(content)
        try:
            topo = load_topology(path)
        except ConfigError as exc:
            text = str(exc)
            assert text.startswith(str(path) + ": "), text
            assert "\n" not in text and "\r" not in text, text
            assert len(text) <= MAX_MESSAGE + len(str(path)), text[:200]
            return
        assert isinstance(topo, Topology)


@SETTINGS
@given(st.data())
def test_mutated_valid_topology(draw):
    text = bytearray(VALID.encode())
    for _ in range(draw.draw(st.integers(1, 6))):
        where = draw.draw(st.integers(0, len(text)))
        how = draw.draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = draw.draw(st.one_of(st.binary(max_size=4), st.sampled_from(
            [b"[", b"]", b"{", b"}", b": ", b"- ", b"&a ", b"*a", b"<<: *a", b"!!python/object ", b"\n  ", b"\t",
             b"'", b'"', b"#", b"\xff", b"\x00", b"name: x\n", b"instances: []\n", b"99999999999999999999"])))
        if how == "delete":
            del text[where:where + len(piece) + 1]
        elif how == "insert":
            text[where:where] = piece
        else:
            text[where:where + len(piece)] = piece
    _check(bytes(text), ".yaml")


@SETTINGS
@given(data, st.booleans())
def test_random_data_as_yaml_or_json(value, as_json):
    if as_json:
        content = json.dumps(value, allow_nan=True).encode()
    else:
        content = yaml.safe_dump(value, allow_unicode=True).encode()
    _check(content, ".json" if as_json else ".yaml")


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 150), st.sampled_from(["description", "name", "vpcs"]))
def test_anchors_aliases_and_depth(levels, width, depth, key):
    lines = ["version: 1", "x0: &a0 [" + ", ".join(["v"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    text = "\n".join(lines).replace("x0:", f"{key}:", 1) + "\n"
    text += "instances: " + "[" * depth + "]" * depth + "\n"
    # the x* keys are unknown keys: the loader says so, or stops earlier at a bound
    _check(text.encode(), ".yaml")
