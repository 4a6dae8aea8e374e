"""Topology loading: S1 (validation, every error one `sgdp: error:` line), S2 (creation order as
loaded) and S3 (the default group).

Every expectation below is worked out from ../shared/SPEC.md (§2, S1–S3, §5 exit codes), not from
the tool's output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from sgdp.cli import main
from sgdp.topology.model import load_topology, topology_from_data

# ------------------------------------------------------------------------------------------ helpers


def base() -> dict:
    """A small valid topology in the shape of SPEC §2."""
    return {
        "version": 1,
        "vpcs": [
            {"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
                {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": "2407:c080:802:469::/64"},
                {"name": "Subnet-B", "cidr": "192.168.1.0/24"},
            ]},
            {"name": "VPC-Y", "cidr": "10.0.0.0/16", "subnets": [{"name": "Subnet-Y", "cidr": "10.0.0.0/24"}]},
        ],
        "address_groups": [
            {"name": "ipGroup-A", "ip_version": 4,
             "ip_set": ["192.168.3.2", "192.168.3.20-192.168.3.100", "192.168.5.0/24"]},
        ],
        "security_groups": [
            {"name": "Sg-A", "security_group_rules": [
                {"id": "A01", "direction": "ingress", "protocol": "tcp", "multiport": "22",
                 "remote_ip_prefix": "172.16.0.0/24"},
                {"id": "A02", "direction": "ingress", "protocol": "tcp", "multiport": "443"},
            ]},
            {"name": "Sg-B", "security_group_rules": [
                {"id": "B01", "direction": "egress"},
            ]},
        ],
        "instances": [
            {"name": "ECS-A01", "flavor": "s6.large.2", "subnet": "Subnet-A", "ip": "192.168.0.10",
             "security_groups": ["Sg-A", "Sg-B"]},
            {"name": "ECS-B01", "flavor": "s6.large.2", "subnet": "Subnet-B", "ip": "192.168.1.10",
             "security_groups": ["Sg-B"]},
        ],
    }


def write(tmp_path, data, name="topo.yaml"):
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _path_re(path: str) -> re.Pattern:
    # the path must end there: `instances[1]` does not match `instances[1].ip`
    return re.compile(re.escape(path) + r"(?![\w.\[])")


def assert_one_error(err: str, file, paths=(), values=()) -> str:
    """stderr is exactly one `sgdp: error:` line naming the file, the field path and the value."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("sgdp: error:"), line
    assert str(file) in line, f"the file {file} is not named: {line}"
    if isinstance(paths, str):
        paths = (paths,)
    if isinstance(values, str):
        values = (values,)
    rest = line
    if paths:
        hits = [m for p in paths for m in [_path_re(p).search(line)] if m]
        assert hits, f"none of the field paths {paths} is named: {line}"
        rest = line[hits[0].end():]
        rest = re.sub(r"^ \([^)]*\)", "", rest)  # the names beside the path are not the value
    if values:
        assert any(v in rest for v in values), f"none of the offending values {values} is named after the path: {line}"
    return line


def check_invalid(tmp_path, capsys, data, paths=(), values=(), name="topo.yaml") -> str:
    f = write(tmp_path, data, name)
    rc = main(["check", str(f)])
    out, err = capsys.readouterr()
    assert rc == 2, f"expected exit 2, got {rc}; stdout={out!r} stderr={err!r}"
    return assert_one_error(err, f, paths, values)


def rules_of(d, g=0):
    sg = d["security_groups"][g]
    return sg.get("security_group_rules", sg.get("rules"))


def rule(d, j=0, g=0) -> dict:
    return rules_of(d, g)[j]


def add_instance(d, name="ECS-A02", subnet="Subnet-A", ip="192.168.0.11", groups=("Sg-B",), **extra):
    inst = {"name": name, "subnet": subnet, "ip": ip, **extra}
    if groups is not None:
        inst["security_groups"] = list(groups)
    d["instances"].append(inst)
    return inst


def lb(name="elb-1", vip="192.168.0.100", subnet="Subnet-A", **extra):
    return {"name": name, "type": "shared", "vip": vip, "subnet": subnet,
            "listeners": [{"protocol": "tcp", "port": 80, "backends": [{"instance": "ECS-A01", "port": 8080}]}], **extra}


def acl(name="acl-1", **extra):
    return {"name": name, "inbound_rules": [{"id": f"{name}-in-1", "action": "allow"}], "outbound_rules": [{"action": "allow"}], **extra}


# ------------------------------------------------------------------------------- S1: valid baseline


def test_s1_baseline_is_valid(tmp_path, capsys):
    f = write(tmp_path, base())
    assert main(["check", str(f)]) == 0
    out, err = capsys.readouterr()
    assert "sgdp: error" not in err


# ------------------------------------------------------------------- S1: invalid topologies (exit 2)


def _m(fn):
    """Mutation helper: apply fn to a fresh base() and return it."""
    def make():
        d = base()
        fn(d)
        return d
    return make


def _set(d, j, g=0, **kv):
    rule(d, j, g).update(kv)


def _multiport(value, protocol="tcp"):
    return _m(lambda d: _set(d, 1, protocol=protocol, multiport=value))


RULE1 = "security_groups[0].security_group_rules[1]"
RULE0 = "security_groups[0].security_group_rules[0]"

INVALID = [
    # --- names are unique per kind
    ("s1_duplicate_vpc_name", _m(lambda d: d["vpcs"].append({"name": "VPC-X", "cidr": "172.20.0.0/16"})),
     "vpcs[2].name", "VPC-X"),
    ("s1_duplicate_subnet_name_across_vpcs",
     _m(lambda d: d["vpcs"][1]["subnets"].append({"name": "Subnet-A", "cidr": "10.0.1.0/24"})),
     "vpcs[1].subnets[1].name", "Subnet-A"),
    ("s1_duplicate_security_group_name", _m(lambda d: d["security_groups"].append({"name": "Sg-A"})),
     "security_groups[2].name", "Sg-A"),
    ("s1_duplicate_instance_name",
     _m(lambda d: add_instance(d, name="ECS-A01", ip="192.168.0.11")), "instances[2].name", "ECS-A01"),
    ("s1_duplicate_address_group_name",
     _m(lambda d: d["address_groups"].append({"name": "ipGroup-A", "ip_version": 4, "ip_set": ["10.9.9.9"]})),
     "address_groups[1].name", "ipGroup-A"),
    ("s1_duplicate_load_balancer_name",
     _m(lambda d: d.update(load_balancers=[lb(), lb(vip="192.168.0.101")])), "load_balancers[1].name", "elb-1"),
    ("s1_duplicate_network_acl_name",
     _m(lambda d: d.update(network_acls=[acl(), {"name": "acl-1"}])), "network_acls[1].name", "acl-1"),
    ("s1_duplicate_peering_name",
     _m(lambda d: d.update(peerings=[{"name": "peer", "vpcs": ["VPC-X", "VPC-Y"]},
                                     {"name": "peer", "vpcs": ["VPC-Y", "VPC-X"]}])),
     "peerings[1].name", "peer"),
    ("s1_duplicate_private_network_name",
     _m(lambda d: d.update(private_networks=[{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]},
                                             {"name": "office", "cidr": "172.17.0.0/24", "vpcs": ["VPC-Y"]}])),
     "private_networks[1].name", "office"),
    # --- rule ids are unique
    ("s1_duplicate_rule_id_across_groups", _m(lambda d: _set(d, 0, g=1, id="A01")),
     "security_groups[1].security_group_rules[0].id", "A01"),
    ("s1_duplicate_rule_id_within_group", _m(lambda d: _set(d, 1, id="A01")), f"{RULE1}.id", "A01"),
    ("s1_duplicate_rule_id_with_default_form",  # rule 2 of Sg-A without id is "Sg-A:2" (§2)
     _m(lambda d: (_set(d, 0, id="Sg-A:2"), rule(d, 1).pop("id"))), f"{RULE1}.id", "Sg-A:2"),
    ("s1_duplicate_rule_id_sg_and_acl",
     _m(lambda d: d.update(network_acls=[{"name": "acl-1", "inbound_rules": [{"id": "A01", "action": "allow"}]}])),
     "network_acls[0].inbound_rules[0].id", "A01"),
    # --- IPs are unique within a VPC
    ("s1_duplicate_ip_in_vpc", _m(lambda d: add_instance(d, ip="192.168.0.10")), "instances[2].ip", "192.168.0.10"),
    ("s1_duplicate_ip_other_subnet_same_vpc",
     _m(lambda d: add_instance(d, subnet="Subnet-B", ip="192.168.1.10")), "instances[2].ip", "192.168.1.10"),
    ("s1_duplicate_ip_extra_ips",
     _m(lambda d: add_instance(d, extra_ips=["192.168.0.10"])), "instances[2].extra_ips[0]", "192.168.0.10"),
    ("s1_duplicate_ipv6",
     _m(lambda d: (d["instances"][0].update(ipv6="2407:c080:802:469::10"),
                   add_instance(d, ipv6="2407:c080:802:469::10"))),
     "instances[2].ipv6", "2407:c080:802:469::10"),
    ("s1_duplicate_ip_virtual_ip",
     _m(lambda d: d.update(virtual_ips=[{"ip": "192.168.0.10", "subnet": "Subnet-A", "instances": ["ECS-A01"]}])),
     "virtual_ips[0].ip", "192.168.0.10"),
    ("s1_duplicate_ip_load_balancer_vip",
     _m(lambda d: d.update(load_balancers=[lb(vip="192.168.1.10", subnet="Subnet-B")])),
     "load_balancers[0].vip", "192.168.1.10"),
    ("s1_duplicate_ip_nics_list",
     _m(lambda d: d["instances"].append({"name": "ECS-M", "nics": [
         {"subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["Sg-B"]},
         {"subnet": "Subnet-B", "ip": "192.168.1.10", "security_groups": ["Sg-B"]}]})),
     "instances[2].nics[1].ip", "192.168.1.10"),
    # --- every IP lies in its subnet's CIDR
    ("s1_ip_outside_subnet", _m(lambda d: d["instances"][0].update(ip="192.168.1.50")), "instances[0].ip", "192.168.1.50"),
    ("s1_ip_outside_vpc", _m(lambda d: d["instances"][0].update(ip="10.0.0.5")), "instances[0].ip", "10.0.0.5"),
    ("s1_ipv6_outside_subnet", _m(lambda d: d["instances"][0].update(ipv6="2001:db8::10")),
     "instances[0].ipv6", "2001:db8::10"),
    ("s1_ipv6_in_subnet_without_ipv6_cidr",
     _m(lambda d: d["instances"][1].update(ipv6="2407:c080:802:469::20")), "instances[1].ipv6", "2407:c080:802:469::20"),
    ("s1_extra_ip_outside_subnet", _m(lambda d: d["instances"][0].update(extra_ips=["192.168.1.99"])),
     "instances[0].extra_ips[0]", "192.168.1.99"),
    ("s1_nic_ip_outside_subnet",
     _m(lambda d: d["instances"].append({"name": "ECS-M", "nics": [
         {"subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["Sg-B"]},
         {"subnet": "Subnet-B", "ip": "192.168.0.21", "security_groups": ["Sg-B"]}]})),
     "instances[2].nics[1].ip", "192.168.0.21"),
    ("s1_virtual_ip_outside_subnet",
     _m(lambda d: d.update(virtual_ips=[{"ip": "192.168.1.77", "subnet": "Subnet-A", "instances": ["ECS-A01"]}])),
     "virtual_ips[0].ip", "192.168.1.77"),
    # --- priority is 1..100
    ("s1_priority_zero", _m(lambda d: _set(d, 1, priority=0)), f"{RULE1}.priority", "0"),
    ("s1_priority_101", _m(lambda d: _set(d, 1, priority=101)), f"{RULE1}.priority", "101"),
    ("s1_priority_negative", _m(lambda d: _set(d, 1, priority=-5)), f"{RULE1}.priority", "-5"),
    ("s1_priority_not_a_number", _m(lambda d: _set(d, 1, priority="high")), f"{RULE1}.priority", "high"),
    # --- a rule has at most one remote (either remote field may be the one blamed)
    ("s1_two_remotes_prefix_and_group", _m(lambda d: _set(d, 0, remote_group_id="Sg-B")),
     (f"{RULE0}.remote_group_id", f"{RULE0}.remote_ip_prefix"), ("Sg-B", "172.16.0.0/24")),
    ("s1_two_remotes_group_and_address_group",
     _m(lambda d: _set(d, 1, remote_group_id="Sg-B", remote_address_group_id="ipGroup-A")),
     (f"{RULE1}.remote_address_group_id", f"{RULE1}.remote_group_id"), ("ipGroup-A", "Sg-B")),
    # --- multiport and port_range_min/max are not both given
    ("s1_multiport_and_port_range", _m(lambda d: _set(d, 1, multiport="8443", port_range_min=8443, port_range_max=8443)),
     (f"{RULE1}.multiport", f"{RULE1}.port_range_min", f"{RULE1}.port_range_max"), "8443"),
    # --- created_at: all or none per group
    ("s1_created_at_on_some_rules_only", _m(lambda d: _set(d, 0, created_at="2024-01-01T00:00:00Z")),
     (f"{RULE1}.created_at", f"{RULE0}.created_at"), ()),
    ("s1_created_at_not_iso8601",
     _m(lambda d: (_set(d, 0, created_at="2024-01-01T00:00:00Z"), _set(d, 1, created_at="last tuesday"))),
     f"{RULE1}.created_at", "last tuesday"),
    # --- remote agrees with ethertype
    ("s1_ipv6_rule_with_0_0_0_0_remote", _m(lambda d: _set(d, 1, ethertype="IPv6", remote_ip_prefix="0.0.0.0/0")),
     f"{RULE1}.remote_ip_prefix", "0.0.0.0/0"),
    ("s1_ipv4_rule_with_ipv6_remote", _m(lambda d: _set(d, 1, remote_ip_prefix="::/0")),
     f"{RULE1}.remote_ip_prefix", "::/0"),
    ("s1_ipv4_rule_with_ipv6_address_group",
     _m(lambda d: (d["address_groups"].append({"name": "ipGroup-6", "ip_version": 6, "ip_set": ["2001:db8::/64"]}),
                   _set(d, 1, remote_address_group_id="ipGroup-6"))),
     f"{RULE1}.remote_address_group_id", "ipGroup-6"),
    ("s1_icmp_on_ipv6_rule",
     _m(lambda d: (rule(d, 1).pop("multiport"), _set(d, 1, protocol="icmp", ethertype="IPv6"))),
     f"{RULE1}.protocol", "icmp"),
    ("s1_icmpv6_on_ipv4_rule",
     _m(lambda d: (rule(d, 1).pop("multiport"), _set(d, 1, protocol="icmpv6"))), f"{RULE1}.protocol", "icmpv6"),
    # --- multiport only for tcp/udp
    ("s1_multiport_on_icmp", _multiport("3389", protocol="icmp"), f"{RULE1}.multiport", "3389"),
    ("s1_multiport_on_gre", _multiport("3389", protocol="gre"), f"{RULE1}.multiport", "3389"),
    ("s1_multiport_without_protocol", _m(lambda d: (rule(d, 1).pop("protocol"), _set(d, 1, multiport="3389"))),
     f"{RULE1}.multiport", "3389"),
    # --- at most 20 segments
    ("s1_multiport_21_segments", _multiport(",".join(str(1000 + 2 * k) for k in range(21))),
     f"{RULE1}.multiport", ",".join(str(1000 + 2 * k) for k in range(21))),
    # --- each N or A-B with 1 <= A <= B <= 65535
    ("s1_multiport_port_zero", _multiport("0"), f"{RULE1}.multiport", "0"),
    ("s1_multiport_range_from_zero", _multiport("0-22"), f"{RULE1}.multiport", "0-22"),
    ("s1_multiport_port_65536", _multiport("65536"), f"{RULE1}.multiport", "65536"),
    ("s1_multiport_range_to_65536", _multiport("1-65536"), f"{RULE1}.multiport", "1-65536"),
    ("s1_multiport_range_reversed", _multiport("30-20"), f"{RULE1}.multiport", "30-20"),
    ("s1_multiport_not_a_number", _multiport("ssh"), f"{RULE1}.multiport", "ssh"),
    ("s1_multiport_empty_segment", _multiport("22,,80"), f"{RULE1}.multiport", "22,,80"),
    ("s1_multiport_trailing_comma", _multiport("22,"), f"{RULE1}.multiport", "22,"),
    ("s1_multiport_open_range", _multiport("22-"), f"{RULE1}.multiport", "22-"),
    ("s1_multiport_three_part_range", _multiport("1-2-3"), f"{RULE1}.multiport", "1-2-3"),
    # --- segments do not overlap
    ("s1_multiport_overlap_duplicate", _multiport("22,22"), f"{RULE1}.multiport", "22,22"),
    ("s1_multiport_overlap_inside_range", _multiport("20-30,25"), f"{RULE1}.multiport", "20-30,25"),
    ("s1_multiport_overlap_shared_end", _multiport("1-10,10-20"), f"{RULE1}.multiport", "1-10,10-20"),
    ("s1_multiport_overlap_unsorted", _multiport("80,70-80"), f"{RULE1}.multiport", "80,70-80"),
    # --- address-group entries agree with ip_version
    ("s1_address_group_ipv6_entry_in_ipv4_group",
     _m(lambda d: d["address_groups"][0]["ip_set"].append("2001:db8::1")), "address_groups[0].ip_set[3]", "2001:db8::1"),
    ("s1_address_group_ipv4_entry_in_ipv6_group",
     _m(lambda d: d["address_groups"].append({"name": "ipGroup-6", "ip_version": 6, "ip_set": ["2001:db8::/64", "10.1.2.3"]})),
     "address_groups[1].ip_set[1]", "10.1.2.3"),
    ("s1_address_group_ipv6_range_in_ipv4_group",
     _m(lambda d: d["address_groups"][0]["ip_set"].append("2001:db8::1-2001:db8::9")),
     "address_groups[0].ip_set[3]", "2001:db8::1-2001:db8::9"),
    ("s1_address_group_range_reversed",
     _m(lambda d: d["address_groups"][0]["ip_set"].append("192.168.3.100-192.168.3.20")),
     "address_groups[0].ip_set[3]", "192.168.3.100-192.168.3.20"),
    ("s1_address_group_bad_entry", _m(lambda d: d["address_groups"][0]["ip_set"].append("not-an-ip")),
     "address_groups[0].ip_set[3]", "not-an-ip"),
    # --- unknown keys
    ("s1_unknown_key_top_level", _m(lambda d: d.update(securitygroups=[])), "securitygroups", "securitygroups"),
    ("s1_unknown_key_vpc", _m(lambda d: d["vpcs"][0].update(subnet=[])), "vpcs[0].subnet", "subnet"),
    ("s1_unknown_key_subnet", _m(lambda d: d["vpcs"][0]["subnets"][0].update(acl="acl-1")),
     "vpcs[0].subnets[0].acl", "acl"),
    ("s1_unknown_key_security_group", _m(lambda d: d["security_groups"][0].update(rule=[])),
     "security_groups[0].rule", "rule"),
    ("s1_unknown_key_rule", _m(lambda d: _set(d, 1, multiports="80")), f"{RULE1}.multiports", "multiports"),
    ("s1_unknown_key_rule_remote_typo", _m(lambda d: _set(d, 1, remote_ip="10.0.0.0/8")), f"{RULE1}.remote_ip", "remote_ip"),
    ("s1_unknown_key_instance", _m(lambda d: d["instances"][0].update(securitygroups=["Sg-A"])),
     "instances[0].securitygroups", "securitygroups"),
    ("s1_unknown_key_nic",
     _m(lambda d: d["instances"].append({"name": "ECS-M", "nics": [
         {"subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["Sg-B"], "ipv4": "192.168.0.20"}]})),
     "instances[2].nics[0].ipv4", "ipv4"),
    ("s1_unknown_key_address_group", _m(lambda d: d["address_groups"][0].update(ipset=[])),
     "address_groups[0].ipset", "ipset"),
    ("s1_unknown_key_load_balancer", _m(lambda d: d.update(load_balancers=[lb(listener=[])])),
     "load_balancers[0].listener", "listener"),
    ("s1_unknown_key_listener",
     _m(lambda d: (d.update(load_balancers=[lb()]), d["load_balancers"][0]["listeners"][0].update(backend=[]))),
     "load_balancers[0].listeners[0].backend", "backend"),
    ("s1_unknown_key_acl_rule",
     _m(lambda d: d.update(network_acls=[{"name": "acl-1", "inbound_rules": [{"action": "allow", "src": "10.0.0.0/8"}]}])),
     "network_acls[0].inbound_rules[0].src", "src"),
    ("s1_unknown_key_virtual_ip",
     _m(lambda d: d.update(virtual_ips=[{"ip": "192.168.0.21", "subnet": "Subnet-A", "instances": ["ECS-A01"], "holder": "x"}])),
     "virtual_ips[0].holder", "holder"),
    ("s1_unknown_key_peering",
     _m(lambda d: d.update(peerings=[{"name": "p", "vpcs": ["VPC-X", "VPC-Y"], "vpc": "VPC-X"}])), "peerings[0].vpc", "vpc"),
    # --- unknown references (by name or id)
    ("s1_unknown_security_group_of_instance", _m(lambda d: d["instances"][0]["security_groups"].append("Sg-Z")),
     "instances[0].security_groups[2]", "Sg-Z"),
    ("s1_unknown_remote_group", _m(lambda d: _set(d, 1, remote_group_id="Sg-Z")), f"{RULE1}.remote_group_id", "Sg-Z"),
    ("s1_unknown_remote_address_group", _m(lambda d: _set(d, 1, remote_address_group_id="ipGroup-Z")),
     f"{RULE1}.remote_address_group_id", "ipGroup-Z"),
    ("s1_unknown_subnet_of_instance", _m(lambda d: d["instances"][0].update(subnet="Subnet-Z")),
     "instances[0].subnet", "Subnet-Z"),
    ("s1_unknown_network_acl_of_subnet", _m(lambda d: d["vpcs"][0]["subnets"][0].update(network_acl="acl-Z")),
     "vpcs[0].subnets[0].network_acl", "acl-Z"),
    ("s1_unknown_vpc_of_peering", _m(lambda d: d.update(peerings=[{"name": "p", "vpcs": ["VPC-X", "VPC-Z"]}])),
     "peerings[0].vpcs[1]", "VPC-Z"),
    ("s1_unknown_vpc_of_private_network",
     _m(lambda d: d.update(private_networks=[{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-Z"]}])),
     "private_networks[0].vpcs[0]", "VPC-Z"),
    ("s1_unknown_instance_of_virtual_ip",
     _m(lambda d: d.update(virtual_ips=[{"ip": "192.168.0.21", "subnet": "Subnet-A", "instances": ["ECS-Z"]}])),
     "virtual_ips[0].instances[0]", "ECS-Z"),
    ("s1_unknown_backend_instance",
     _m(lambda d: (d.update(load_balancers=[lb()]),
                   d["load_balancers"][0]["listeners"][0]["backends"][0].update(instance="ECS-Z"))),
     "load_balancers[0].listeners[0].backends[0].instance", "ECS-Z"),
    ("s1_unknown_subnet_of_load_balancer", _m(lambda d: d.update(load_balancers=[lb(subnet="Subnet-Z")])),
     "load_balancers[0].subnet", "Subnet-Z"),
    ("s1_unknown_address_group_of_acl_rule",
     _m(lambda d: d.update(network_acls=[{"name": "acl-1", "inbound_rules": [
         {"action": "allow", "source_address_group_id": "ipGroup-Z"}]}])),
     "network_acls[0].inbound_rules[0].source_address_group_id", "ipGroup-Z"),
    ("s1_unknown_group_id", _m(lambda d: (d["security_groups"][1].update(id="sg-0002"),
                                          d["instances"][1].update(security_groups=["sg-0003"]))),
     "instances[1].security_groups[0]", "sg-0003"),
    # --- other values a user can get wrong
    ("s1_direction_invalid", _m(lambda d: _set(d, 1, direction="inbound")), f"{RULE1}.direction", "inbound"),
    ("s1_direction_missing", _m(lambda d: rule(d, 1).pop("direction")), f"{RULE1}.direction", ()),
    ("s1_action_invalid", _m(lambda d: _set(d, 1, action="permit")), f"{RULE1}.action", "permit"),
    ("s1_ethertype_invalid", _m(lambda d: _set(d, 1, ethertype="IPv5")), f"{RULE1}.ethertype", "IPv5"),
    ("s1_protocol_invalid", _m(lambda d: _set(d, 1, protocol="tcpp")), f"{RULE1}.protocol", "tcpp"),
    ("s1_protocol_out_of_range", _m(lambda d: (rule(d, 1).pop("multiport"), _set(d, 1, protocol=256))),
     f"{RULE1}.protocol", "256"),
    ("s1_remote_prefix_invalid", _m(lambda d: _set(d, 1, remote_ip_prefix="10.0.0.0/33")),
     f"{RULE1}.remote_ip_prefix", "10.0.0.0/33"),
    ("s1_enabled_not_boolean", _m(lambda d: _set(d, 1, enabled="sometimes")), f"{RULE1}.enabled", "sometimes"),
    ("s1_port_range_min_above_max",
     _m(lambda d: (rule(d, 1).pop("multiport"), _set(d, 1, port_range_min=9000, port_range_max=8000))),
     (f"{RULE1}.port_range_max", f"{RULE1}.port_range_min"), ("8000", "9000")),
    ("s1_port_range_out_of_range",
     _m(lambda d: (rule(d, 1).pop("multiport"), _set(d, 1, port_range_min=70000, port_range_max=70000))),
     (f"{RULE1}.port_range_min", f"{RULE1}.port_range_max"), "70000"),
    ("s1_subnet_outside_vpc", _m(lambda d: d["vpcs"][0]["subnets"].append({"name": "Subnet-C", "cidr": "10.9.0.0/24"})),
     "vpcs[0].subnets[2].cidr", "10.9.0.0/24"),
]


@pytest.mark.parametrize("make,paths,values", [pytest.param(m, p, v, id=i) for i, m, p, v in INVALID])
def test_s1_invalid_topology_exit_2_one_line(tmp_path, capsys, make, paths, values):
    """S1 / §2 / §5: an invalid topology is a config error: exit 2 and one `sgdp: error:` line naming
    the file, the field path and the offending value, no traceback."""
    check_invalid(tmp_path, capsys, make(), paths, values)


def test_s1_multiport_overlap_error_names_exact_path(tmp_path, capsys):
    """S1 (test_s1_multiport_overlap): the path is exactly
    `security_groups[0].security_group_rules[1].multiport`, as in §2's example."""
    d = base()
    _set(d, 1, multiport="22-24,24")
    line = check_invalid(tmp_path, capsys, d, "security_groups[0].security_group_rules[1].multiport", "22-24,24")
    assert ": security_groups[0].security_group_rules[1].multiport" in line


def test_s1_rules_alias_error_path_uses_alias(tmp_path, capsys):
    """S1 with the `rules` alias: the path names the key the file used."""
    d = base()
    d["security_groups"][0]["rules"] = d["security_groups"][0].pop("security_group_rules")
    _set(d, 1, multiport="443,443")
    check_invalid(tmp_path, capsys, d, "security_groups[0].rules[1].multiport", "443,443")


# ---------------------------------------------------- S1: messages name the objects on the path


NAMED = [
    ("rule_by_id", _m(lambda d: _set(d, 1, multiport="22,,80")),
     "security_groups[0].security_group_rules[1].multiport", "security group Sg-A, rule A02"),
    ("rules_alias", _m(lambda d: (d["security_groups"][1].update(rules=d["security_groups"][1].pop("security_group_rules")),
                                  _set(d, 0, g=1, direction="sideways"))),
     "security_groups[1].rules[0].direction", "security group Sg-B, rule B01"),
    ("rule_without_id_names_its_group", _m(lambda d: (rule(d, 1).pop("id"), _set(d, 1, priority=0))),
     "security_groups[0].security_group_rules[1].priority", "security group Sg-A)"),
    ("instance", _m(lambda d: d["instances"][1].update(ip="10.0.0.5")), "instances[1].ip", "instance ECS-B01"),
    ("instance_nic", _m(lambda d: d["instances"][0].update(
        nics=[{"subnet": "Subnet-A", "ip": "192.168.0.10"}, {"subnet": "Subnet-B", "ip": "192.168.9.9"}],
        **{k: None for k in ("subnet", "ip", "security_groups")})),
     "instances[0].nics[1].ip", "instance ECS-A01"),
    ("subnet_in_vpc", _m(lambda d: d["vpcs"][1]["subnets"][0].update(cidr="10.1.0.0/33")),
     "vpcs[1].subnets[0].cidr", "VPC VPC-Y, subnet Subnet-Y"),
    ("address_group", _m(lambda d: d["address_groups"][0]["ip_set"].append("300.1.1.1")),
     "address_groups[0].ip_set[3]", "address group ipGroup-A"),
    ("load_balancer_listener", _m(lambda d: d.update(load_balancers=[lb()]) or
                                  d["load_balancers"][0]["listeners"][0].update(name="web", port=0)),
     "load_balancers[0].listeners[0].port", "load balancer elb-1, listener web"),
    ("network_acl_rule", _m(lambda d: d.update(network_acls=[{"name": "acl-1", "inbound_rules": [
        {"id": "in-1", "action": "maybe"}]}])),
     "network_acls[0].inbound_rules[0].action", "network ACL acl-1, rule in-1"),
    ("quoted_name", _m(lambda d: (d["security_groups"][1].update(name="web tier"),
                                  d["instances"][0].update(security_groups=["Sg-A", "web tier"]),
                                  d["instances"][1].update(security_groups=["web tier"]),
                                  _set(d, 0, g=1, protocol="tcpp"))),
     "security_groups[1].security_group_rules[0].protocol", "security group 'web tier', rule B01"),
]


@pytest.mark.parametrize("make,path,names", [pytest.param(m, p, n, id=i) for i, m, p, n in NAMED])
def test_s1_error_names_objects_beside_the_index_path(tmp_path, capsys, make, path, names):
    """The index path stays (it locates the field whatever the names) and the objects on it follow
    by name (groups, instances, VPCs... by `name`, rules by `id`): `PATH (security group Sg-A, rule
    A02): ...`."""
    line = check_invalid(tmp_path, capsys, make(), path)
    assert f": {path} (" in line, line
    assert names in line[line.index(path):], line


def test_s1_error_names_are_left_out_when_there_are_none(tmp_path, capsys):
    """A top-level field or an object without a name: the path alone, no empty parentheses."""
    d = base()
    d["version"] = 2
    line = check_invalid(tmp_path, capsys, d, "version", "2")
    assert ": version: " in line and "(" not in line.split(": version: ")[0]


def test_path_names_helper():
    from sgdp.errors import path_names

    d = base()
    assert path_names(d, "security_groups[0].security_group_rules[1].multiport") == "security group Sg-A, rule A02"
    assert path_names(d, "instances[0].security_groups[1]") == "instance ECS-A01"  # a reference is not a name
    assert path_names(d, "security_groups[7].name") == ""  # not in the data: nothing guessed
    assert path_names(None, "vpcs[0]") == ""
    assert path_names({"vpcs": [{"name": "x" * 100}]}, "vpcs[0].cidr") == "VPC '" + "x" * 59 + "…'"


def test_scenario_error_names_the_step(tmp_path):
    from sgdp.errors import ConfigError
    from sgdp.testing.scenario import load_scenario

    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(base()))
    path = tmp_path / "s.sgdp.yaml"
    path.write_text(yaml.safe_dump({"topology": "topology.yaml", "steps": [
        {"name": "ssh-ok", "packet": {"src": "172.16.0.1", "dst": "192.168.0.10", "dport": 22}, "expect": "allow"},
        {"name": "bad-dst", "packet": {"src": "172.16.0.1", "dst": "192.168.0.999", "dport": 22}, "expect": "allow"},
    ]}))
    with pytest.raises(ConfigError) as info:
        load_scenario(str(path))
    assert "steps[1].packet.dst (step bad-dst): " in str(info.value), str(info.value)
    assert info.value.path == "steps[1].packet.dst"


def test_s1_invalid_json_topology(tmp_path, capsys):
    """S1 / §2: JSON files are validated the same way."""
    d = base()
    _set(d, 1, priority=101)
    check_invalid(tmp_path, capsys, d, f"{RULE1}.priority", "101", name="topo.json")


def test_s1_yaml_syntax_error_one_line(tmp_path, capsys):
    """§5: a file that does not parse is a config error too (one line, names the file)."""
    f = tmp_path / "broken.yaml"
    f.write_text("vpcs:\n  - name: VPC-X\n    cidr: [unclosed\n", encoding="utf-8")
    assert main(["check", str(f)]) == 2
    assert_one_error(capsys.readouterr().err, f)


def test_s1_missing_file_one_line(tmp_path, capsys):
    f = tmp_path / "nope.yaml"
    assert main(["check", str(f)]) == 2
    assert_one_error(capsys.readouterr().err, f)


def test_s1_both_rules_and_security_group_rules_is_an_error(tmp_path, capsys):
    """S1: "never a silent guess" — giving the list under both names is ambiguous."""
    d = base()
    d["security_groups"][1]["rules"] = [{"direction": "ingress"}]
    check_invalid(tmp_path, capsys, d, (), ())


def test_s1_multiport_overlap_via_subprocess(tmp_path):
    """S1 through `python -m sgdp check FILE`: exit 2, one stderr line, no traceback."""
    d = base()
    _set(d, 1, multiport="20-30,25")
    f = write(tmp_path, d)
    proc = subprocess.run([sys.executable, "-m", "sgdp", "check", str(f)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert_one_error(proc.stderr, f, f"{RULE1}.multiport", "20-30,25")


def test_s1_unknown_reference_via_subprocess(tmp_path):
    """S1 through `python -m sgdp`: an unknown reference."""
    d = base()
    _set(d, 1, remote_group_id="Sg-Nope")
    f = write(tmp_path, d)
    proc = subprocess.run([sys.executable, "-m", "sgdp", "check", str(f)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert_one_error(proc.stderr, f, f"{RULE1}.remote_group_id", "Sg-Nope")


# ------------------------------------------------------------------------ S1: valid variants load


def _rule_view(r):
    return (r.id, r.direction, r.action, r.priority, r.ethertype, r.protocol, r.ports, r.icmp_type, r.icmp_code,
            r.remote_kind, r.remote, r.enabled)


def test_s1_valid_references_by_id():
    """§2: references accept the object's name or id (groups, remote groups, address groups, subnets,
    VPCs, ACLs, instances)."""
    d = base()
    d["vpcs"][0]["id"] = "vpc-0001"
    d["vpcs"][1]["id"] = "vpc-0002"
    d["vpcs"][0]["subnets"][0]["id"] = "subnet-0001"
    d["vpcs"][0]["subnets"][0]["network_acl"] = "acl-id-1"
    d["network_acls"] = [{"name": "acl-1", "id": "acl-id-1", "inbound_rules": [{"action": "allow"}],
                          "outbound_rules": [{"action": "allow"}]}]
    d["address_groups"][0]["id"] = "ag-0001"
    d["security_groups"][0]["id"] = "sg-0001"
    d["security_groups"][1]["id"] = "sg-0002"
    _set(d, 1, remote_group_id="sg-0002")
    rule(d, 0, g=1)["remote_address_group_id"] = "ag-0001"
    d["instances"][0].update(subnet="subnet-0001", security_groups=["sg-0001", "sg-0002"], id="ecs-0001")
    d["peerings"] = [{"name": "p", "vpcs": ["vpc-0001", "vpc-0002"]}]
    d["virtual_ips"] = [{"ip": "192.168.0.21", "subnet": "subnet-0001", "instances": ["ecs-0001"]}]
    d["load_balancers"] = [lb(subnet="subnet-0001")]
    d["load_balancers"][0]["listeners"][0]["backends"][0]["instance"] = "ecs-0001"
    topo = topology_from_data(d, "t.yaml")
    nic = topo.nics[topo.instances["ECS-A01"].nics[0]]
    assert nic.security_groups == ("Sg-A", "Sg-B")
    assert nic.subnet == "Subnet-A"
    assert topo.subnets["Subnet-A"].network_acl == "acl-1"
    r = {x.id: x for sg in topo.security_groups.values() for x in sg.rules}
    assert (r["A02"].remote_kind, r["A02"].remote) == ("group", "Sg-B")
    assert (r["B01"].remote_kind, r["B01"].remote) == ("address_group", "ipGroup-A")
    assert set(topo.peerings[0].vpcs) == {"VPC-X", "VPC-Y"}
    assert topo.virtual_ips[0].instances == ("ECS-A01",)
    assert topo.load_balancers["elb-1"].listeners[0].backends[0].instance == "ECS-A01"


def test_s1_valid_yaml_and_json_load_the_same(tmp_path, capsys):
    """§2: YAML or JSON, same structure."""
    d = base()
    fy, fj = write(tmp_path, d, "t.yaml"), write(tmp_path, d, "t.json")
    ty, tj = load_topology(fy), load_topology(fj)
    view = lambda t: [(g.name, [_rule_view(r) for r in g.rules]) for g in t.security_groups.values()]  # noqa: E731
    assert view(ty) == view(tj)
    assert [(n.instance, n.ip, n.security_groups) for n in ty.nics] == [(n.instance, n.ip, n.security_groups) for n in tj.nics]
    assert main(["check", str(fj)]) == 0
    assert main(["check", str(fy)]) == 0
    assert "error" not in capsys.readouterr().err


def test_s1_valid_yaml_with_native_timestamps(tmp_path):
    """S2 / §2: created_at written as a bare YAML timestamp (not quoted) is ISO 8601 too."""
    f = tmp_path / "t.yaml"
    f.write_text(
        "vpcs: [{name: V, cidr: 10.0.0.0/16, subnets: [{name: S, cidr: 10.0.0.0/24}]}]\n"
        "security_groups:\n"
        "  - name: G\n"
        "    rules:\n"
        "      - {id: late, direction: ingress, created_at: 2024-03-01T10:00:00Z}\n"
        "      - {id: early, direction: ingress, created_at: 2024-01-01T10:00:00Z}\n",
        encoding="utf-8")
    topo = load_topology(f)
    assert [r.id for r in topo.security_groups["G"].rules] == ["early", "late"]


def test_s1_valid_rules_alias():
    """§2: `rules` is an alias of `security_group_rules`."""
    d1, d2 = base(), base()
    for sg in d2["security_groups"]:
        sg["rules"] = sg.pop("security_group_rules")
    t1, t2 = topology_from_data(d1, "a.yaml"), topology_from_data(d2, "b.yaml")
    assert [[_rule_view(r) for r in g.rules] for g in t1.security_groups.values()] == \
           [[_rule_view(r) for r in g.rules] for g in t2.security_groups.values()]
    assert [r.id for r in t2.security_groups["Sg-A"].rules] == ["A01", "A02"]


def test_s1_valid_neutron_port_range_forms():
    """§2: port_range_min/max (Neutron) instead of multiport; for icmp they are type / code."""
    d = base()
    rules_of(d, 1).extend([
        {"id": "N1", "direction": "ingress", "protocol": "tcp", "port_range_min": 8000, "port_range_max": 8080},
        {"id": "N2", "direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53},
        {"id": "N3", "direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
        {"id": "N4", "direction": "ingress", "protocol": "icmpv6", "ethertype": "IPv6", "port_range_min": 128},
        {"id": "N5", "direction": "ingress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 65535},
    ])
    topo = topology_from_data(d, "t.yaml")
    r = {x.id: x for x in topo.security_groups["Sg-B"].rules}
    assert r["N1"].ports == ((8000, 8080),)
    assert r["N2"].ports == ((53, 53),)
    assert (r["N3"].ports, r["N3"].icmp_type, r["N3"].icmp_code) == (None, 8, 0)
    assert (r["N4"].icmp_type, r["N4"].icmp_code) == (128, None)
    assert r["N5"].ports == ((1, 65535),)
    # a single-segment range is consecutive: it is not an inconsecutive-port rule (S9)
    assert not r["N1"].inconsecutive


@pytest.mark.parametrize("text,segments", [
    ("80", ((80, 80),)),
    ("1-30", ((1, 30),)),
    ("22,3389,80", ((22, 22), (80, 80), (3389, 3389))),
    ("22-24,25", ((22, 24), (25, 25))),
    ("1-65535", ((1, 65535),)),
    ("65535", ((65535, 65535),)),
    (",".join(str(1000 + 2 * k) for k in range(20)), tuple((1000 + 2 * k, 1000 + 2 * k) for k in range(20))),
])
def test_s1_valid_multiport_forms(text, segments):
    """S1: N or A-B, 1 <= A <= B <= 65535, up to 20 non-overlapping segments (adjacent is fine)."""
    d = base()
    _set(d, 1, multiport=text)
    topo = topology_from_data(d, "t.yaml")
    got = topo.security_groups["Sg-A"].rules[1].ports
    assert sorted(got) == sorted(segments)


def test_s1_valid_multiport_with_protocol_number_and_udp():
    """S1: multiport is for tcp/udp, however written (6 is tcp, 17 is udp)."""
    d = base()
    rules_of(d, 1).extend([
        {"id": "P6", "direction": "ingress", "protocol": 6, "multiport": "80,443"},
        {"id": "P17", "direction": "ingress", "protocol": "udp", "multiport": "53,123"},
    ])
    topo = topology_from_data(d, "t.yaml")
    r = {x.id: x for x in topo.security_groups["Sg-B"].rules}
    assert r["P6"].protocol == 6 and r["P6"].inconsecutive
    assert r["P17"].protocol == 17


def test_s1_valid_address_group_ranges():
    """§2: address-group entries are IPs, ranges and CIDRs."""
    topo = topology_from_data(base(), "t.yaml")
    ag = topo.address_groups["ipGroup-A"]
    ip = lambda s: int.from_bytes(bytes(map(int, s.split("."))), "big")  # noqa: E731
    for inside in ("192.168.3.2", "192.168.3.20", "192.168.3.57", "192.168.3.100", "192.168.5.0", "192.168.5.255"):
        assert ag.contains(4, ip(inside)), inside
    for outside in ("192.168.3.3", "192.168.3.19", "192.168.3.101", "192.168.4.255", "192.168.6.0"):
        assert not ag.contains(4, ip(outside)), outside


def test_s1_valid_address_group_range_through_packets(run):
    """§2 / S8: a rule whose remote is an address group with a range matches inside the range only."""
    topo = {
        "vpcs": [{"name": "V", "cidr": "192.168.0.0/16", "subnets": [{"name": "S", "cidr": "192.168.0.0/24"}]}],
        "address_groups": [{"name": "office", "ip_set": ["198.51.100.10-198.51.100.20", "192.0.2.0/28"]}],
        "security_groups": [{"name": "G", "rules": [
            {"id": "ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_address_group_id": "office"}]}],
        "instances": [{"name": "E", "flavor": "s6.large.2", "subnet": "S", "ip": "192.168.0.10", "eip": "203.0.113.10",
                       "security_groups": ["G"]}],
    }
    pk = lambda src: {"src": src, "dst": "203.0.113.10", "proto": "tcp", "dport": 22, "flags": "S"}  # noqa: E731
    v = run(topo, [pk("198.51.100.10"), pk("198.51.100.20"), pk("198.51.100.21"), pk("198.51.100.9"),
                   pk("192.0.2.15"), pk("192.0.2.16")])
    assert [x.verdict for x in v] == ["allow", "allow", "deny", "deny", "allow", "deny"]
    assert (v[0].reason, v[0].rule, v[0].instance, v[0].direction) == ("rule", "ssh", "E", "ingress")
    assert (v[2].reason, v[2].rule) == ("default", "")


def test_s1_valid_same_ip_in_two_vpcs():
    """S1: IPs are unique within a VPC — the same IP in another VPC is fine."""
    d = base()
    d["vpcs"].append({"name": "VPC-Z", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-Z", "cidr": "192.168.0.0/24"}]})
    add_instance(d, name="ECS-Z", subnet="Subnet-Z", ip="192.168.0.10")
    topo = topology_from_data(d, "t.yaml")
    assert sorted(n.vpc for n in topo.nics if n.ip == (192 << 24 | 168 << 16 | 10)) == ["VPC-X", "VPC-Z"]


def test_s1_valid_boundaries_and_defaults():
    """S1 / §2: priority 1 and 100 are valid; defaults: action allow, priority 1, ethertype IPv4,
    enabled true, id "<sg name>:<1-based position>"; IPv6 remotes on IPv6 rules; icmp on IPv4,
    icmpv6 on IPv6; every rule with created_at."""
    d = base()
    d["security_groups"].append({"name": "Sg-C", "rules": [
        {"direction": "ingress", "priority": 100, "created_at": "2024-01-01T00:00:00Z"},
        {"direction": "egress", "priority": 1, "ethertype": "IPv6", "remote_ip_prefix": "::/0",
         "created_at": "2024-01-01T00:00:01Z"},
        {"direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0", "created_at": "2024-01-01T00:00:02Z"},
        {"direction": "ingress", "protocol": "icmpv6", "ethertype": "ipv6", "created_at": "2024-01-01T00:00:03Z"},
        {"direction": "ingress", "protocol": "gre", "created_at": "2024-01-01T00:00:04Z"},
        {"direction": "ingress", "protocol": 132, "action": "deny", "enabled": False, "created_at": "2024-01-01T00:00:05Z"},
    ]})
    topo = topology_from_data(d, "t.yaml")
    rs = topo.security_groups["Sg-C"].rules
    assert [r.id for r in rs] == [f"Sg-C:{k}" for k in range(1, 7)]
    assert (rs[0].action, rs[0].priority, rs[0].ethertype, rs[0].enabled, rs[0].protocol) == ("allow", 100, 4, True, None)
    assert (rs[1].priority, rs[1].ethertype) == (1, 6)
    assert [r.protocol for r in rs[2:]] == [1, 58, 47, 132]
    assert (rs[5].action, rs[5].enabled) == ("deny", False)


# ------------------------------------------------------------------------ S2: creation order (load)


def test_s2_file_order_without_created_at():
    d = base()
    topo = topology_from_data(d, "t.yaml")
    assert [r.id for r in topo.security_groups["Sg-A"].rules] == ["A01", "A02"]


def test_s2_created_at_order_ties_by_file_order_and_offsets():
    """S2: created_at order (ISO 8601, offsets honoured); ties keep file order."""
    d = base()
    d["security_groups"].append({"name": "Sg-C", "rules": [
        {"id": "c1", "direction": "ingress", "created_at": "2024-05-01T12:00:00Z"},
        {"id": "c2", "direction": "ingress", "created_at": "2024-05-01T13:30:00+02:00"},  # 11:30Z
        {"id": "c3", "direction": "ingress", "created_at": "2024-05-01T12:00:00Z"},  # tie with c1
        {"id": "c4", "direction": "ingress", "created_at": "2024-04-30T23:59:59Z"},
    ]})
    topo = topology_from_data(d, "t.yaml")
    assert [r.id for r in topo.security_groups["Sg-C"].rules] == ["c4", "c2", "c1", "c3"]


# --------------------------------------------------------------------------- S3: the default group


def _default_topo(**extra):
    d = {
        "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
            {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": "2407:c080:802:469::/64"}]}],
        "security_groups": [{"name": "Sg-X", "rules": [
            {"id": "x-out", "direction": "egress"}, {"id": "x-out6", "direction": "egress", "ethertype": "IPv6"}]}],
        "instances": [
            {"name": "ECS-1", "subnet": "Subnet-A", "ip": "192.168.0.10", "ipv6": "2407:c080:802:469::10",
             "eip": "203.0.113.10", "ipv6_internet": True},
            {"name": "ECS-2", "subnet": "Subnet-A", "ip": "192.168.0.11", "ipv6": "2407:c080:802:469::11"},
            {"name": "ECS-3", "subnet": "Subnet-A", "ip": "192.168.0.12", "security_groups": ["Sg-X"]},
        ],
    }
    d.update(extra)
    return d


def _remote_text(r) -> str:
    if r.remote_kind == "any":
        return "0.0.0.0/0" if r.ethertype == 4 else "::/0"
    return str(r.remote)


def test_s3_default_group_created_with_huawei_rules():
    """S3: ids default:1..default:4, priority 100, allow, in this order."""
    topo = topology_from_data(_default_topo(), "t.yaml")
    assert "default" in topo.security_groups
    rs = topo.security_groups["default"].rules
    got = [(r.id, r.direction, r.ethertype, r.action, r.priority, r.protocol, r.ports, r.enabled) for r in rs]
    assert got == [
        ("default:1", "ingress", 4, "allow", 100, None, None, True),
        ("default:2", "ingress", 6, "allow", 100, None, None, True),
        ("default:3", "egress", 4, "allow", 100, None, None, True),
        ("default:4", "egress", 6, "allow", 100, None, None, True),
    ]
    assert [(r.remote_kind, r.remote) for r in rs[:2]] == [("group", "default"), ("group", "default")]
    assert [_remote_text(r) for r in rs[2:]] == ["0.0.0.0/0", "::/0"]
    nics = {n.instance: n for n in topo.nics}
    assert nics["ECS-1"].security_groups == ("default",)
    assert nics["ECS-2"].security_groups == ("default",)
    assert nics["ECS-3"].security_groups == ("Sg-X",)


def test_s3_default_group_not_created_when_not_needed():
    """S3: only created when an instance has no security_groups."""
    d = _default_topo()
    for inst in d["instances"]:
        inst["security_groups"] = ["Sg-X"]
    topo = topology_from_data(d, "t.yaml")
    assert "default" not in topo.security_groups
    assert list(topo.security_groups) == ["Sg-X"]


def test_s3_user_defined_default_group_is_used_as_is():
    """S3: a group named `default` in the file is used; nothing is added to it."""
    d = _default_topo()
    d["security_groups"].append({"name": "default", "rules": [
        {"id": "my-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_ip_prefix": "0.0.0.0/0"}]})
    topo = topology_from_data(d, "t.yaml")
    assert [r.id for r in topo.security_groups["default"].rules] == ["my-ssh"]
    assert not any(r.id.startswith("default:") for sg in topo.security_groups.values() for r in sg.rules)
    assert {n.instance: n.security_groups for n in topo.nics}["ECS-1"] == ("default",)


def test_s3_user_defined_default_group_packets(run):
    """S3: with a user `default` group nothing else is open: ssh in (its rule) yes, egress no."""
    d = _default_topo()
    d["security_groups"].append({"name": "default", "rules": [
        {"id": "my-ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_ip_prefix": "0.0.0.0/0"}]})
    v = run(d, [
        {"src": "198.51.100.7", "dst": "203.0.113.10", "proto": "tcp", "dport": 22, "flags": "S"},
        {"src": "192.168.0.10", "dst": "198.51.100.7", "proto": "tcp", "dport": 443, "flags": "S"},
    ])
    assert (v[0].verdict, v[0].reason, v[0].rule) == ("allow", "rule", "my-ssh")
    assert (v[1].verdict, v[1].reason, v[1].instance, v[1].direction) == ("deny", "default", "ECS-1", "egress")


def test_s3_remote_group_may_name_the_created_default():
    """S3: when `default` is created, other rules may refer to it."""
    d = _default_topo()
    rules_of(d).append({"id": "from-default", "direction": "ingress", "remote_group_id": "default"})
    topo = topology_from_data(d, "t.yaml")
    r = {x.id: x for x in topo.security_groups["Sg-X"].rules}
    assert (r["from-default"].remote_kind, r["from-default"].remote) == ("group", "default")


def test_s3_nic_without_security_groups_gets_default():
    """S3 / §2: `security_groups` is per NIC too (`nics: [{..., security_groups}]`), absent =
    [default]. An instance whose second NIC lists no groups needs the created default group."""
    d = _default_topo()
    d["instances"] = [
        {"name": "ECS-M", "nics": [
            {"subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["Sg-X"]},
            {"subnet": "Subnet-A", "ip": "192.168.0.21"},
        ]},
    ]
    topo = topology_from_data(d, "t.yaml")
    assert [n.security_groups for n in topo.nics] == [("Sg-X",), ("default",)]
    assert [r.id for r in topo.security_groups["default"].rules] == ["default:1", "default:2", "default:3", "default:4"]


def test_s3_nic_without_security_groups_check_cli(tmp_path, capsys):
    """S3 / §5: the same topology through `sgdp check` — valid, never a traceback."""
    d = _default_topo()
    d["instances"] = [{"name": "ECS-M", "nics": [
        {"subnet": "Subnet-A", "ip": "192.168.0.20", "security_groups": ["Sg-X"]},
        {"subnet": "Subnet-A", "ip": "192.168.0.21"}]}]
    f = write(tmp_path, d)
    try:
        rc = main(["check", str(f)])
    except Exception as exc:  # pragma: no cover - the failure we are testing for
        pytest.fail(f"sgdp check raised {type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "Traceback" not in err


def test_s3_rule_id_colliding_with_created_default_ids(tmp_path, capsys):
    """S1 + S3: rule ids are unique; the created default group owns default:1..default:4, so a user
    rule with id `default:3` in a topology that gets the default group is a config error."""
    d = _default_topo()
    rules_of(d)[0]["id"] = "default:3"
    check_invalid(tmp_path, capsys, d, (), "default:3")


def test_s3_default_members_reach_each_other(run):
    """S3: default:3 lets the sender out, default:1 (IPv4) / default:2 (IPv6) let a member in."""
    v = run(_default_topo(), [
        {"src": "192.168.0.10", "dst": "192.168.0.11", "proto": "tcp", "dport": 22, "flags": "S"},
        {"src": "192.168.0.11", "dst": "192.168.0.10", "proto": "udp", "dport": 5353},
        {"src": "2407:c080:802:469::10", "dst": "2407:c080:802:469::11", "proto": "tcp", "dport": 8080, "flags": "S"},
    ])
    assert [(x.verdict, x.reason, x.instance, x.direction, x.security_group, x.rule) for x in v] == [
        ("allow", "rule", "ECS-2", "ingress", "default", "default:1"),
        ("allow", "rule", "ECS-1", "ingress", "default", "default:1"),
        ("allow", "rule", "ECS-2", "ingress", "default", "default:2"),
    ]


def test_s3_outside_traffic_in_is_denied(run):
    """S3: nothing else is open — the Internet (via EIP) and a non-member instance are denied."""
    v = run(_default_topo(), [
        {"src": "198.51.100.7", "dst": "203.0.113.10", "proto": "tcp", "dport": 22, "flags": "S"},
        {"src": "2001:db8::7", "dst": "2407:c080:802:469::10", "proto": "tcp", "dport": 443, "flags": "S"},
        {"src": "192.168.0.12", "dst": "192.168.0.11", "proto": "tcp", "dport": 22, "flags": "S"},
    ])
    assert [(x.verdict, x.reason, x.instance, x.direction, x.security_group, x.rule) for x in v] == [
        ("deny", "default", "ECS-1", "ingress", "", ""),
        ("deny", "default", "ECS-1", "ingress", "", ""),
        ("deny", "default", "ECS-2", "ingress", "", ""),
    ]


def test_s3_egress_is_allowed(run):
    """S3: default:3 (0.0.0.0/0) and default:4 (::/0) allow every egress."""
    v = run(_default_topo(), [
        {"src": "192.168.0.10", "dst": "198.51.100.7", "proto": "tcp", "dport": 443, "flags": "S"},
        {"src": "2407:c080:802:469::10", "dst": "2001:db8::7", "proto": "udp", "dport": 53},
        {"src": "192.168.0.11", "dst": "192.168.0.12", "proto": "icmp"},
    ])
    assert [(x.verdict, x.reason, x.instance, x.direction, x.security_group, x.rule) for x in v[:2]] == [
        ("allow", "rule", "ECS-1", "egress", "default", "default:3"),
        ("allow", "rule", "ECS-1", "egress", "default", "default:4"),
    ]
    # ECS-2 -> ECS-3: out through default:3, then ECS-3's own group has no ingress rule
    assert (v[2].verdict, v[2].reason, v[2].instance, v[2].direction) == ("deny", "default", "ECS-3", "ingress")



def test_s3_no_instances_no_default_group():
    """S3: no instance lacks security_groups (there are none) -> no default group."""
    d = _default_topo()
    d["instances"] = []
    assert "default" not in topology_from_data(d, "t.yaml").security_groups


def test_s1_duplicate_security_group_id_is_an_error(tmp_path, capsys):
    """S1 / §2: references accept a name or an id; two groups with the same id make a reference by
    that id ambiguous, and S1 says "never a silent guess". (SPEC does not list id uniqueness
    explicitly; in the real cloud ids are unique, so a duplicate is a config error.)"""
    d = base()
    d["security_groups"][0]["id"] = "sg-0001"
    d["security_groups"][1]["id"] = "sg-0001"
    d["instances"][1]["security_groups"] = ["sg-0001"]
    check_invalid(tmp_path, capsys, d, (), "sg-0001")
