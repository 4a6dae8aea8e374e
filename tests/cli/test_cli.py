"""The command line (SPEC §5): `sgdp explain`, `sgdp test`, exit codes and one-line errors.

Expectations are worked out from ../shared/SPEC.md, not from the tool's output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

from sgdp.cli import main

EXPLAIN_KEYS = {"verdict", "reason", "instance", "direction", "security_group", "rule", "steps", "not_effective"}
NE_KEYS = {"security_group", "rule", "instance", "why"}


def topology(flavor="s1.medium", acl=False):
    d = {
        "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
            {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": "2407:c080:802:469::/64"}]}],
        "address_groups": [{"name": "blocked", "ip_version": 4, "ip_set": ["198.51.100.0/28"]}],
        "security_groups": [{"name": "Sg-A", "security_group_rules": [
            # created first, so walked first at priority 1; on S1 it does not take effect (S10)
            {"id": "A01", "direction": "ingress", "action": "deny", "protocol": "tcp", "multiport": "22",
             "remote_address_group_id": "blocked"},
            {"id": "A02", "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_ip_prefix": "198.51.100.0/24"},
            {"id": "A03", "direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "multiport": "443",
             "remote_ip_prefix": "::/0"},
            {"id": "A04", "direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
        ]}],
        "instances": [{"name": "ECS-A01", "flavor": flavor, "subnet": "Subnet-A", "ip": "192.168.0.10",
                       "ipv6": "2407:c080:802:469::10", "ipv6_internet": True, "eip": "203.0.113.10",
                       "security_groups": ["Sg-A"]}],
    }
    if acl:
        d["vpcs"][0]["subnets"][0]["network_acl"] = "acl-1"
        d["network_acls"] = [{"name": "acl-1",
                              "inbound_rules": [{"id": "in-40000", "action": "allow", "protocol": "tcp", "source_port": "40000"}],
                              "outbound_rules": [{"action": "allow"}]}]
    return d


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def topo_file(tmp_path):
    return write_yaml(tmp_path / "topo.yaml", topology())


def explain(capsys, *args, engine=None):
    extra = ["--engine", engine] if engine else []
    rc = main(["explain", *map(str, args), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def explain_json(capsys, *args, engine=None):
    rc, out, err = explain(capsys, *args, "--json", engine=engine)
    assert rc == 0, err
    doc = json.loads(out)
    assert set(doc) == EXPLAIN_KEYS
    assert isinstance(doc["steps"], list) and doc["steps"]
    for item in doc["not_effective"]:
        assert set(item) == NE_KEYS
    return doc


def one_error_line(err, *needles):
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sgdp: error:"), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------- explain


def test_explain_json_allow_with_not_effective_rule(topo_file, capsys, engine_name):
    """§5 explain --json: the verdict row, the steps, and rules skipped as not effective (S10: the
    address-group deny A01 does not take effect on an S1 instance, so A02 allows)."""
    doc = explain_json(capsys, topo_file, "--src", "198.51.100.7", "--dst", "203.0.113.10:22", engine=engine_name)
    assert (doc["verdict"], doc["reason"], doc["instance"], doc["direction"], doc["security_group"], doc["rule"]) == \
        ("allow", "rule", "ECS-A01", "ingress", "Sg-A", "A02")
    assert doc["not_effective"] == [{"security_group": "Sg-A", "rule": "A01", "instance": "ECS-A01", "why": "flavor"}]


def test_explain_json_normal_flavor_the_deny_decides(tmp_path, capsys, engine_name):
    """S10 near miss: on a normal flavor, A01 takes effect and denies (S8: first match decides)."""
    f = write_yaml(tmp_path / "topo.yaml", topology(flavor="s6.large.2"))
    doc = explain_json(capsys, f, "--src", "198.51.100.7", "--dst", "203.0.113.10:22", engine=engine_name)
    assert (doc["verdict"], doc["reason"], doc["instance"], doc["direction"], doc["security_group"], doc["rule"]) == \
        ("deny", "rule", "ECS-A01", "ingress", "Sg-A", "A01")
    assert doc["not_effective"] == []


def test_explain_text(topo_file, capsys, engine_name):
    """§5 explain: the steps as text — the NIC and direction, the rules tried in order (A01 skipped as
    not effective, then A02 matched) and the verdict."""
    rc, out, err = explain(capsys, topo_file, "--src", "198.51.100.7", "--dst", "203.0.113.10:22", engine=engine_name)
    assert rc == 0, err
    assert "ECS-A01" in out and "ingress" in out
    assert "A01" in out and "A02" in out and out.index("A01") < out.index("A02")
    assert "flavor" in out
    assert "allow" in out.lower()


def test_explain_ipv6_with_port_in_brackets(topo_file, capsys, engine_name):
    """§5: an IPv6 address with a port is written [2001:db8::1]:443."""
    doc = explain_json(capsys, topo_file, "--src", "[2001:db8::7]:40001", "--dst", "[2407:c080:802:469::10]:443", engine=engine_name)
    assert (doc["verdict"], doc["reason"], doc["instance"], doc["direction"], doc["security_group"], doc["rule"]) == \
        ("allow", "rule", "ECS-A01", "ingress", "Sg-A", "A03")


def test_explain_ipv6_source_without_port(topo_file, capsys, engine_name):
    doc = explain_json(capsys, topo_file, "--src", "2001:db8::7", "--dst", "[2407:c080:802:469::10]:444", engine=engine_name)
    assert (doc["verdict"], doc["reason"], doc["instance"], doc["direction"], doc["security_group"], doc["rule"]) == \
        ("deny", "default", "ECS-A01", "ingress", None, None)


def test_explain_egress_default_deny(topo_file, capsys, engine_name):
    """S8: no egress rule in Sg-A -> deny at ECS-A01's egress, reason default, no group or rule."""
    doc = explain_json(capsys, topo_file, "--src", "192.168.0.10", "--dst", "198.51.100.7:443", engine=engine_name)
    assert (doc["verdict"], doc["reason"], doc["instance"], doc["direction"], doc["security_group"], doc["rule"]) == \
        ("deny", "default", "ECS-A01", "egress", None, None)


def test_explain_icmp_type(topo_file, capsys, engine_name):
    """S8: an icmp rule with a type (Neutron port_range_min) matches that type only."""
    doc = explain_json(capsys, topo_file, "--src", "198.51.100.7", "--dst", "203.0.113.10", "--proto", "icmp",
                       "--icmp-type", "8", "--icmp-code", "0", engine=engine_name)
    assert (doc["verdict"], doc["rule"]) == ("allow", "A04")
    doc = explain_json(capsys, topo_file, "--src", "198.51.100.7", "--dst", "203.0.113.10", "--proto", "icmp",
                       "--icmp-type", "13", "--icmp-code", "0", engine=engine_name)
    assert (doc["verdict"], doc["reason"], doc["rule"]) == ("deny", "default", None)


def test_explain_default_source_port_is_40000(tmp_path, capsys, engine_name):
    """§5: the source port defaults to 40000 (seen by an ACL rule on source_port 40000, S13)."""
    f = write_yaml(tmp_path / "topo.yaml", topology(flavor="s6.large.2", acl=True))
    doc = explain_json(capsys, f, "--src", "192.0.2.9", "--dst", "203.0.113.10:443", "--proto", "6", engine=engine_name)
    # ACL allows (source port 40000); Sg-A has no rule for 443 from 192.0.2.9 -> default deny by the group
    assert (doc["verdict"], doc["reason"], doc["direction"]) == ("deny", "default", "ingress")
    doc = explain_json(capsys, f, "--src", "192.0.2.9:40001", "--dst", "203.0.113.10:443", engine=engine_name)
    assert (doc["verdict"], doc["reason"], doc["instance"], doc["direction"], doc["security_group"], doc["rule"]) == \
        ("deny", "acl", "ECS-A01", "ingress", "acl-1", None)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_explain_tcp_udp_without_port_exit_2(topo_file, capsys, proto):
    """§5: tcp/udp need a destination port: exit 2, one `sgdp: error:` line."""
    rc, out, err = explain(capsys, topo_file, "--src", "198.51.100.7", "--dst", "203.0.113.10", "--proto", proto)
    assert rc == 2
    assert out == ""
    one_error_line(err, "--dst")


def test_explain_tcp_without_port_exit_2_subprocess(topo_file):
    """§5 through `python -m sgdp` (tcp is the default protocol)."""
    proc = subprocess.run([sys.executable, "-m", "sgdp", "explain", str(topo_file), "--src", "198.51.100.7",
                           "--dst", "203.0.113.10"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SGDP_ENGINE": "reference"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    one_error_line(proc.stderr, "--dst")


def test_explain_error_message_is_readable(topo_file, capsys):
    """§5: the one-line error for a missing port reads cleanly (no doubled dashes)."""
    _, _, err = explain(capsys, topo_file, "--src", "198.51.100.7", "--dst", "203.0.113.10")
    line = one_error_line(err)
    assert "----" not in line


@pytest.mark.parametrize("args", [
    ("--src", "999.1.1.1", "--dst", "203.0.113.10:22"),
    ("--src", "198.51.100.7", "--dst", "203.0.113.10:70000"),
    ("--src", "198.51.100.7", "--dst", "[2407:c080:802:469::10:443"),
    ("--src", "198.51.100.7", "--dst", "[2407:c080:802:469::10]:443"),  # mixed IP versions
    ("--src", "198.51.100.7", "--dst", "203.0.113.10:22", "--proto", "bogus"),
])
def test_explain_bad_arguments_exit_2(topo_file, capsys, args):
    rc, out, err = explain(capsys, topo_file, *args)
    assert rc == 2
    one_error_line(err)


def test_explain_invalid_topology_exit_2(tmp_path, capsys):
    d = topology()
    d["security_groups"][0]["security_group_rules"][1]["priority"] = 0
    f = write_yaml(tmp_path / "bad.yaml", d)
    rc, out, err = explain(capsys, f, "--src", "198.51.100.7", "--dst", "203.0.113.10:22")
    assert rc == 2
    one_error_line(err, str(f), "security_groups[0].security_group_rules[1].priority")


def test_usage_error_one_line(topo_file, capsys):
    """§5: a usage error is one `sgdp: error:` line, exit 2."""
    assert main(["check", str(topo_file), "--bogus"]) == 2
    one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------------------- test


PASSING = {
    "name": "office SSH allowed, Internet MySQL blocked",
    "topology": "topo.yaml",
    "steps": [
        {"packet": {"src": "198.51.100.7", "dst": "203.0.113.10", "proto": "tcp", "dport": 22, "flags": "S"},
         "expect": "allow"},
        {"packet": {"src": "192.168.0.10", "dst": "198.51.100.7", "proto": "tcp", "sport": 22, "dport": 40000, "flags": "SA"},
         "expect": {"verdict": "allow", "reason": "established", "instance": "ECS-A01", "direction": "egress"}},
        {"packet": {"src": "198.51.100.7", "dst": "203.0.113.10", "proto": "tcp", "dport": 3306, "flags": "S", "time": 5.0},
         "expect": {"verdict": "deny", "rule": None}},
    ],
}

FAILING = {
    "name": "wrongly expects SSH blocked",
    "topology": "topo.yaml",
    "steps": [
        {"packet": {"src": "198.51.100.7", "dst": "203.0.113.10", "proto": "tcp", "dport": 22, "flags": "S"},
         "expect": {"verdict": "deny"}},
    ],
}


def run_test_cmd(capsys, *args, engine=None):
    extra = ["--engine", engine] if engine else []
    rc = main(["test", *map(str, args), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_test_command_passes_exit_0(tmp_path, topo_file, capsys, engine_name):
    """§5/§6: every step as expected -> exit 0."""
    s = write_yaml(tmp_path / "ok.sgdp.yaml", PASSING)
    rc, out, err = run_test_cmd(capsys, s, engine=engine_name)
    assert rc == 0, out + err


def test_test_command_inline_topology(tmp_path, capsys):
    """§6: `topology:` may be inline."""
    s = write_yaml(tmp_path / "inline.sgdp.yaml", {**PASSING, "topology": topology()})
    rc, out, err = run_test_cmd(capsys, s)
    assert rc == 0, out + err


def test_test_command_failure_exit_1(tmp_path, topo_file, capsys, engine_name):
    """§5/§6: an expectation not met -> exit 1; the failure shows the packet, expected and actual."""
    s = write_yaml(tmp_path / "bad.sgdp.yaml", FAILING)
    rc, out, err = run_test_cmd(capsys, s, engine=engine_name)
    assert rc == 1
    text = out + err
    assert "203.0.113.10" in text
    assert "deny" in text and "allow" in text
    assert "A02" in text  # the explain trace names the rule that matched


def test_test_command_directory_and_junit_xml(tmp_path, topo_file, capsys):
    """§5: `sgdp test PATH... --junit-xml FILE`: one testcase per scenario, the failing one marked."""
    write_yaml(tmp_path / "a_ok.sgdp.yaml", PASSING)
    write_yaml(tmp_path / "b_bad.sgdp.yaml", FAILING)
    xml_path = tmp_path / "report.xml"
    rc, out, err = run_test_cmd(capsys, tmp_path, "--junit-xml", xml_path)
    assert rc == 1
    root = ET.parse(xml_path).getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == 2
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1
    assert not any(c.find("error") is not None for c in cases)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    assert sum(int(s.get("tests")) for s in suites) == 2
    assert sum(int(s.get("failures")) for s in suites) == 1


def test_test_command_junit_xml_all_pass(tmp_path, topo_file, capsys):
    s = write_yaml(tmp_path / "ok.sgdp.yaml", PASSING)
    xml_path = tmp_path / "report.xml"
    rc, _, _ = run_test_cmd(capsys, s, "--junit-xml", xml_path)
    assert rc == 0
    root = ET.parse(xml_path).getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == 1 and cases[0].find("failure") is None


@pytest.mark.parametrize("mutate,needle", [
    (lambda s: s["steps"][0].update(expct="allow"), "steps[0].expct"),
    (lambda s: s["steps"][0]["packet"].update(dport=None), "steps[0].packet.dport"),
    (lambda s: s["steps"][0].update(expect="maybe"), "steps[0].expect"),
    (lambda s: s.update(topology="missing.yaml"), "missing.yaml"),
    (lambda s: s.update(steps=[]), "steps"),
], ids=["unknown-key", "tcp-without-dport", "bad-verdict", "missing-topology", "no-steps"])
def test_test_command_invalid_scenario_exit_2(tmp_path, topo_file, capsys, mutate, needle):
    """§5: an invalid scenario is an input error: exit 2, one `sgdp: error:` line naming the file."""
    data = json.loads(json.dumps(PASSING))
    mutate(data)
    s = write_yaml(tmp_path / "broken.sgdp.yaml", data)
    rc, out, err = run_test_cmd(capsys, s)
    assert rc == 2
    line = one_error_line(err, needle)
    if needle != "missing.yaml":
        assert str(s) in line


def test_test_command_invalid_topology_in_scenario_exit_2(tmp_path, capsys):
    d = topology()
    d["security_groups"][0]["security_group_rules"][1]["multiport"] = "22,22"
    write_yaml(tmp_path / "topo.yaml", d)
    s = write_yaml(tmp_path / "ok.sgdp.yaml", PASSING)
    rc, out, err = run_test_cmd(capsys, s)
    assert rc == 2
    one_error_line(err, "topo.yaml", "security_groups[0].security_group_rules[1].multiport", "22,22")


def test_test_command_no_such_path_exit_2(tmp_path, capsys):
    rc, out, err = run_test_cmd(capsys, tmp_path / "nothing.sgdp.yaml")
    assert rc == 2
    one_error_line(err)


def test_test_command_subprocess(tmp_path, topo_file):
    """§5: `python -m sgdp test` exit codes 0 and 1."""
    ok = write_yaml(tmp_path / "ok.sgdp.yaml", PASSING)
    bad = write_yaml(tmp_path / "bad.sgdp.yaml", FAILING)
    env = {**os.environ, "SGDP_ENGINE": "reference"}
    p_ok = subprocess.run([sys.executable, "-m", "sgdp", "test", str(ok)], capture_output=True, text=True, timeout=60, env=env)
    assert p_ok.returncode == 0, p_ok.stdout + p_ok.stderr
    p_bad = subprocess.run([sys.executable, "-m", "sgdp", "test", str(bad)], capture_output=True, text=True, timeout=60, env=env)
    assert p_bad.returncode == 1
    assert "Traceback" not in p_bad.stderr


@pytest.mark.parametrize("argv", [
    ["replay", "t.yaml", "a.pcap", "b.pcap", "--verdicts", "parquet", "-o", "out", "--workers", "2"],
    ["check", "t.yaml", "--json"],
    ["explain", "t.yaml", "--src", "10.0.0.1", "--dst", "10.0.0.2:22"],
    ["bench", "generate", "--out", "w", "--limits", "6000"],
    ["diff", "a.yaml", "b.yaml", "c.pcap"],
    ["decode", "c.pcap"],
])
def test_the_parser_of_one_command_parses_as_the_whole_parser(argv):
    """Only the named command's parser is built for a command line (argparse is slow to build them
    all): what it parses, and its help, are the whole parser's."""
    from sgdp.cli import build_parser

    one, whole = build_parser(argv), build_parser()
    assert vars(one.parse_args(argv)) == vars(whole.parse_args(argv))
    subs = [a for a in one._actions if isinstance(a, argparse._SubParsersAction)][0]
    assert list(subs.choices) == [argv[0]]
    whole_subs = [a for a in whole._actions if isinstance(a, argparse._SubParsersAction)][0]
    assert subs.choices[argv[0]].format_help() == whole_subs.choices[argv[0]].format_help()
    assert len(whole_subs.choices) > 1 and list(build_parser(["--help"])._actions[-1].choices) == list(whole_subs.choices)
