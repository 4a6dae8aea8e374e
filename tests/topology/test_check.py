"""`sgdp check` (SPEC §5): findings, their JSON form and the exit codes.

Every finding kind is produced by a small topology and NOT produced by a near-miss variant.
Expectations are worked out from ../shared/SPEC.md, not from the tool's output.
"""

from __future__ import annotations

import json

import pytest

from sgdp.cli import main

KEYS = {"kind", "security_group", "rule", "instance", "why", "message"}
KINDS = {"not_effective", "shadowed", "too_many_groups", "too_many_instances", "open_to_internet", "ignored_setting"}


def r(rid, direction="ingress", **kw):
    return {"id": rid, "direction": direction, **kw}


def inst(name, groups, flavor="s6.large.2", ip="192.168.0.10", **kw):
    return {"name": name, "flavor": flavor, "subnet": "S", "ip": ip, "security_groups": list(groups), **kw}


def topo(groups, instances=None, **extra):
    d = {
        "vpcs": [{"name": "V", "cidr": "192.168.0.0/16", "subnets": [
            {"name": "S", "cidr": "192.168.0.0/24", "ipv6_cidr": "2407:c080:802:469::/64"},
            {"name": "S2", "cidr": "192.168.1.0/24"},
        ]}],
        "address_groups": [{"name": "AG", "ip_version": 4, "ip_set": ["198.51.100.0/24"]}],
        "security_groups": groups,
        "instances": instances if instances is not None else [inst("E", [g["name"] for g in groups])],
    }
    d.update(extra)
    return d


def clean_groups():
    return [{"name": "Web", "rules": [
        r("https", protocol="tcp", multiport="443"),
        r("ssh-office", protocol="tcp", multiport="22", remote_ip_prefix="10.0.0.0/8"),
        r("out", "egress"),
    ]}]


def run_check(tmp_path, capsys, data, *flags, name="topo.json"):
    f = tmp_path / name
    f.write_text(json.dumps(data), encoding="utf-8")
    rc = main(["check", str(f), *flags])
    out, err = capsys.readouterr()
    return rc, out, err, f


def findings(tmp_path, capsys, data, *flags):
    rc, out, err, _ = run_check(tmp_path, capsys, data, "--json", *flags)
    assert rc in (0, 1), err
    doc = json.loads(out)
    assert set(doc) == {"findings"}
    for item in doc["findings"]:
        assert set(item) == KEYS, item
        assert item["kind"] in KINDS
        assert isinstance(item["message"], str) and item["message"]
    return doc["findings"]


def of_kind(items, kind):
    return [x for x in items if x["kind"] == kind]


def slim(items):
    return {(x["kind"], x["security_group"], x["rule"], x["instance"], x["why"]) for x in items}


# ---------------------------------------------------------------------------------- baseline


def test_check_clean_topology_has_no_findings(tmp_path, capsys):
    assert findings(tmp_path, capsys, topo(clean_groups())) == []


# ------------------------------------------------------------------------------ not_effective


def test_check_not_effective_disabled(tmp_path, capsys):
    """S9/S10 / §5: a disabled rule is listed, why disabled; instance does not apply (null)."""
    g = clean_groups()
    g[0]["rules"].append(r("off", protocol="tcp", multiport="8443", enabled=False))
    items = of_kind(findings(tmp_path, capsys, topo(g)), "not_effective")
    assert slim(items) == {("not_effective", "Web", "off", None, "disabled")}


def test_check_not_effective_disabled_near_miss(tmp_path, capsys):
    g = clean_groups()
    g[0]["rules"].append(r("on", protocol="tcp", multiport="8443", enabled=True))
    assert of_kind(findings(tmp_path, capsys, topo(g)), "not_effective") == []


def _quota_groups(n):
    rules = [r(f"rg{k}", protocol="tcp", multiport=str(1000 + k), remote_group_id="Peer") for k in range(n)]
    return [{"name": "Q", "rules": rules}, {"name": "Peer", "rules": [r("peer-out", "egress")]}]


def test_check_not_effective_quota(tmp_path, capsys):
    """S9: the 121st counted rule is listed, why quota."""
    data = topo(_quota_groups(121), [inst("E", ["Q"]), inst("P", ["Peer"], ip="192.168.0.11")])
    items = of_kind(findings(tmp_path, capsys, data), "not_effective")
    assert slim(items) == {("not_effective", "Q", "rg120", None, "quota")}


def test_check_not_effective_quota_near_miss(tmp_path, capsys):
    data = topo(_quota_groups(120), [inst("E", ["Q"]), inst("P", ["Peer"], ip="192.168.0.11")])
    assert of_kind(findings(tmp_path, capsys, data), "not_effective") == []


def _flavor_groups():
    return [{"name": "L", "rules": [
        r("office", protocol="tcp", multiport="8443", remote_address_group_id="AG"),
        r("web", protocol="tcp", multiport="80,443"),
        r("alt", protocol="tcp", multiport="8080"),
    ]}]


def test_check_not_effective_flavor(tmp_path, capsys):
    """S10: on an S1 instance the address-group and inconsecutive-port rules are listed, why flavor,
    with the instance."""
    data = topo(_flavor_groups(), [inst("OLD", ["L"], flavor="s1.medium")])
    items = of_kind(findings(tmp_path, capsys, data), "not_effective")
    assert slim(items) == {("not_effective", "L", "office", "OLD", "flavor"), ("not_effective", "L", "web", "OLD", "flavor")}


def test_check_not_effective_flavor_near_miss(tmp_path, capsys):
    data = topo(_flavor_groups(), [inst("NEW", ["L"], flavor="s6.large.2")])
    assert of_kind(findings(tmp_path, capsys, data), "not_effective") == []


def test_check_not_effective_kai1(tmp_path, capsys):
    """S10: on Kai1 the first inconsecutive rule and every later one of the group/direction, why kai1."""
    data = topo(_flavor_groups(), [inst("K", ["L"], flavor="kai1s.large.2")])
    items = of_kind(findings(tmp_path, capsys, data), "not_effective")
    assert slim(items) == {("not_effective", "L", "web", "K", "kai1"), ("not_effective", "L", "alt", "K", "kai1")}


def test_check_not_effective_kai1_near_miss(tmp_path, capsys):
    """S10 near miss: a Kai1 instance without inconsecutive rules (address groups alone cut nothing)."""
    g = _flavor_groups()
    g[0]["rules"][1]["multiport"] = "80-443"
    data = topo(g, [inst("K", ["L"], flavor="kai1s.large.2")])
    assert of_kind(findings(tmp_path, capsys, data), "not_effective") == []


# ----------------------------------------------------------------------------------- shadowed


def _shadow(rules, instances=None, extra_groups=()):
    groups = [{"name": "G", "rules": rules}, *extra_groups]
    return topo(groups, instances)


def test_check_shadowed_by_one_earlier_rule(tmp_path, capsys):
    """§5: a rule covered by one earlier rule can never match."""
    data = _shadow([
        r("wide", protocol="tcp", multiport="1-1000", remote_ip_prefix="10.0.0.0/8"),
        r("narrow", protocol="tcp", multiport="22", remote_ip_prefix="10.1.0.0/16"),
    ])
    items = of_kind(findings(tmp_path, capsys, data), "shadowed")
    assert [(x["security_group"], x["rule"], x["why"]) for x in items] == [("G", "narrow", None)]
    assert "wide" in items[0]["message"]


def test_check_shadowed_by_several_earlier_rules_together(tmp_path, capsys):
    """§5: covered by several earlier rules together (neither covers it alone)."""
    data = _shadow([
        r("low", protocol="tcp", multiport="1-100"),
        r("high", protocol="tcp", multiport="101-200"),
        r("middle", protocol="tcp", multiport="50-150", remote_ip_prefix="10.0.0.0/8"),
    ])
    items = of_kind(findings(tmp_path, capsys, data), "shadowed")
    assert [(x["security_group"], x["rule"]) for x in items] == [("G", "middle")]


def test_check_shadowed_near_miss_one_port_uncovered(tmp_path, capsys):
    """Near miss: port 201 is not covered, so the rule can match."""
    data = _shadow([
        r("low", protocol="tcp", multiport="1-100"),
        r("high", protocol="tcp", multiport="101-200"),
        r("middle", protocol="tcp", multiport="50-201", remote_ip_prefix="10.0.0.0/8"),
    ])
    assert of_kind(findings(tmp_path, capsys, data), "shadowed") == []


@pytest.mark.parametrize("later", [
    r("udp", protocol="udp", multiport="22", remote_ip_prefix="10.1.0.0/16"),  # other protocol
    r("wider-net", protocol="tcp", multiport="22", remote_ip_prefix="0.0.0.0/0"),  # other addresses
    r("v6", ethertype="IPv6", protocol="tcp", multiport="22"),  # other IP version
    r("egress", "egress", protocol="tcp", multiport="22"),  # other direction
    r("more-ports", protocol="tcp", multiport="22,2000"),  # a port outside
], ids=lambda x: x["id"])
def test_check_shadowed_near_misses(tmp_path, capsys, later):
    data = _shadow([r("wide", protocol="tcp", multiport="1-1000", remote_ip_prefix="10.0.0.0/8"), later])
    assert of_kind(findings(tmp_path, capsys, data), "shadowed") == []


def test_check_shadowed_by_deny_at_better_priority(tmp_path, capsys):
    """S8 + §5: a deny at priority 1 comes before an allow at priority 2 even when later in the file;
    the allow is shadowed, whatever the actions."""
    data = _shadow([
        r("allow-ssh", priority=2, protocol="tcp", multiport="22", remote_ip_prefix="10.1.0.0/16"),
        r("deny-all", priority=1, action="deny", remote_ip_prefix="10.0.0.0/8"),
    ])
    assert [x["rule"] for x in of_kind(findings(tmp_path, capsys, data), "shadowed")] == ["allow-ssh"]


def test_check_shadowed_near_miss_priority_puts_narrow_first(tmp_path, capsys):
    """Near miss: the narrow rule is evaluated first (priority 1), so nothing is shadowed."""
    data = _shadow([
        r("deny-all", priority=2, action="deny", remote_ip_prefix="10.0.0.0/8"),
        r("allow-ssh", priority=1, protocol="tcp", multiport="22", remote_ip_prefix="10.1.0.0/16"),
    ])
    assert of_kind(findings(tmp_path, capsys, data), "shadowed") == []


def test_check_shadowed_by_earlier_group_in_binding_order(tmp_path, capsys):
    """S8 + §5: a rule of the second bound group covered by the first group's rule."""
    groups = [{"name": "Second", "rules": [r("ssh", protocol="tcp", multiport="22")]},
              {"name": "First", "rules": [r("all-tcp", priority=100, protocol="tcp")]}]
    data = topo(groups, [inst("E", ["First", "Second"])])
    items = of_kind(findings(tmp_path, capsys, data), "shadowed")
    assert [(x["security_group"], x["rule"]) for x in items] == [("Second", "ssh")]


def test_check_shadowed_near_miss_other_binding_order(tmp_path, capsys):
    groups = [{"name": "Second", "rules": [r("ssh", protocol="tcp", multiport="22")]},
              {"name": "First", "rules": [r("all-tcp", priority=100, protocol="tcp")]}]
    data = topo(groups, [inst("E", ["Second", "First"])])
    assert of_kind(findings(tmp_path, capsys, data), "shadowed") == []


def test_check_shadowed_near_miss_disabled_cover(tmp_path, capsys):
    """Near miss: a disabled rule covers nothing (it never matches), and is not itself shadowed."""
    data = _shadow([
        r("all-tcp-off", protocol="tcp", enabled=False),
        r("ssh", protocol="tcp", multiport="22"),
        r("ssh-off", protocol="tcp", multiport="22", enabled=False),
    ])
    assert of_kind(findings(tmp_path, capsys, data), "shadowed") == []


def test_check_shadowed_near_miss_cover_not_effective_on_flavor(tmp_path, capsys):
    """S10 + §5: on an S1 instance the address-group rule does not take effect, so it shadows
    nothing there; on a normal instance the same rules give a shadowed finding."""
    rules = [r("office-all", protocol="tcp", remote_address_group_id="AG"),
             r("office-ssh", protocol="tcp", multiport="22", remote_ip_prefix="198.51.100.0/25")]
    legacy = of_kind(findings(tmp_path, capsys, _shadow(rules, [inst("OLD", ["G"], flavor="s1.medium")])), "shadowed")
    assert legacy == []
    normal = of_kind(findings(tmp_path, capsys, _shadow(rules, [inst("NEW", ["G"])])), "shadowed")
    assert [(x["security_group"], x["rule"]) for x in normal] == [("G", "office-ssh")]


def _shadowed_on(n_covered, n_open=1):
    """Group G's ssh rule is shadowed on the ``n_covered`` instances that bind First before G, and
    can match on the ``n_open`` instances bound to G alone."""
    groups = [{"name": "G", "rules": [r("ssh", protocol="tcp", multiport="22")]},
              {"name": "First", "rules": [r("all-tcp", protocol="tcp")]}]
    instances = [inst(f"C{k:02d}", ["First", "G"], ip=f"192.168.0.{10 + k}") for k in range(n_covered)]
    instances += [inst(f"O{k:02d}", ["G"], ip=f"192.168.0.{100 + k}") for k in range(n_open)]
    return topo(groups, instances)


def test_check_shadowed_on_many_but_not_all_instances_is_one_summary(tmp_path, capsys):
    """A rule shadowed on more than 20 of the instances bound to its group, but not on all, is one
    finding with no instance; its message gives the count."""
    items = of_kind(findings(tmp_path, capsys, _shadowed_on(21)), "shadowed")
    assert [(x["security_group"], x["rule"], x["instance"]) for x in items] == [("G", "ssh", None)]
    assert "on 21 of the 22 instances bound to it" in items[0]["message"]
    assert "all-tcp of First" in items[0]["message"]


def test_check_shadowed_on_twenty_instances_is_one_finding_each(tmp_path, capsys):
    """Near miss: on 20 instances, one finding per instance, in instance order."""
    items = of_kind(findings(tmp_path, capsys, _shadowed_on(20)), "shadowed")
    assert [x["instance"] for x in items] == [f"C{k:02d}" for k in range(20)]
    assert all(x["rule"] == "ssh" and f"never match on {x['instance']}:" in x["message"] for x in items)


def test_check_shadowed_on_every_instance_is_one_finding(tmp_path, capsys):
    """Near miss: shadowed on all the instances of its group, the finding has no instance and no count."""
    items = of_kind(findings(tmp_path, capsys, _shadowed_on(25, n_open=0)), "shadowed")
    assert [(x["rule"], x["instance"]) for x in items] == [("ssh", None)]
    assert " of the " not in items[0]["message"]


# ------------------------------------------------------------------------------ too_many_groups


def _n_groups(n):
    return [{"name": f"G{k}", "rules": [r(f"g{k}", protocol="tcp", multiport=str(7000 + k))]} for k in range(n)]


def test_check_too_many_groups(tmp_path, capsys):
    """§5: an instance with more than 5 security groups."""
    items = of_kind(findings(tmp_path, capsys, topo(_n_groups(6))), "too_many_groups")
    assert [(x["instance"], x["security_group"], x["rule"], x["why"]) for x in items] == [("E", None, None, None)]


def test_check_too_many_groups_near_miss(tmp_path, capsys):
    assert of_kind(findings(tmp_path, capsys, topo(_n_groups(5))), "too_many_groups") == []


# --------------------------------------------------------------------------- too_many_instances


def _many(n_instances, two_nic_instance=False):
    instances = [{"name": f"E{k}", "subnet": "Big", "ip": f"10.0.{k // 250}.{k % 250 + 2}", "security_groups": ["Crowd"]}
                 for k in range(n_instances)]
    if two_nic_instance:
        instances.append({"name": "DUAL", "nics": [
            {"subnet": "Big", "ip": "10.0.200.2", "security_groups": ["Crowd"]},
            {"subnet": "Big", "ip": "10.0.200.3", "security_groups": ["Crowd"]}]})
    return {
        "vpcs": [{"name": "V", "cidr": "10.0.0.0/16", "subnets": [{"name": "Big", "cidr": "10.0.0.0/16"}]}],
        "security_groups": [{"name": "Crowd", "rules": [r("https", protocol="tcp", multiport="443")]}],
        "instances": instances,
    }


def test_check_too_many_instances(tmp_path, capsys):
    """§5: a group with more than 6,000 instances."""
    items = of_kind(findings(tmp_path, capsys, _many(6001)), "too_many_instances")
    assert [(x["security_group"], x["rule"], x["instance"], x["why"]) for x in items] == [("Crowd", None, None, None)]


def test_check_too_many_instances_near_miss(tmp_path, capsys):
    """Near miss: exactly 6,000 instances — one of them with two NICs in the group (6,001 NICs)."""
    assert of_kind(findings(tmp_path, capsys, _many(5999, two_nic_instance=True)), "too_many_instances") == []


# ---------------------------------------------------------------------------- open_to_internet


@pytest.mark.parametrize("rule_", [
    r("mysql-any", protocol="tcp", multiport="3306", remote_ip_prefix="0.0.0.0/0"),
    r("mysql-noremote", protocol="tcp", multiport="3300-3310"),
    r("rdp-multi", protocol="tcp", multiport="80,3389"),
    r("netbios-udp", protocol="udp", multiport="137"),
    r("all-v6", ethertype="IPv6", remote_ip_prefix="::/0"),
    r("all-protocols"),
    r("redis-p100", priority=100, protocol="tcp", multiport="6379", remote_ip_prefix="0.0.0.0/0"),
], ids=lambda x: x["id"])
def test_check_open_to_internet(tmp_path, capsys, rule_):
    """§5: an allow rule from 0.0.0.0/0, ::/0 or no remote on a sensitive port."""
    g = clean_groups()
    g[0]["rules"].append(rule_)
    items = of_kind(findings(tmp_path, capsys, topo(g)), "open_to_internet")
    assert [(x["security_group"], x["rule"], x["instance"], x["why"]) for x in items] == [("Web", rule_["id"], None, None)]


@pytest.mark.parametrize("rule_", [
    r("mysql-office", protocol="tcp", multiport="3306", remote_ip_prefix="10.0.0.0/8"),
    r("mysql-half", protocol="tcp", multiport="3306", remote_ip_prefix="0.0.0.0/1"),
    r("mysql-deny", action="deny", protocol="tcp", multiport="3306"),
    r("mysql-egress", "egress", protocol="tcp", multiport="3306"),
    r("web-alt", protocol="tcp", multiport="8080,8443"),
    r("near-ports", protocol="tcp", multiport="3307-3388"),
    r("icmp-any", protocol="icmp"),
    r("mysql-ag", protocol="tcp", multiport="3306", remote_address_group_id="AG"),
    r("mysql-off", protocol="tcp", multiport="3306", enabled=False),
], ids=lambda x: x["id"])
def test_check_open_to_internet_near_miss(tmp_path, capsys, rule_):
    g = clean_groups()
    g[0]["rules"].append(rule_)
    assert of_kind(findings(tmp_path, capsys, topo(g)), "open_to_internet") == []


# ----------------------------------------------------------------------------- ignored_setting


def _lb(name, kind, protocol, tci="unset"):
    listener = {"protocol": protocol, "port": 8000, "backends": [{"instance": "E", "port": 8080}]}
    if tci != "unset":
        listener["transfer_client_ip"] = tci
    return {"name": name, "type": kind, "vip": "192.168.0.100", "subnet": "S", "listeners": [listener]}


@pytest.mark.parametrize("kind,protocol,tci", [
    ("shared", "http", True),
    ("shared", "https", True),
    ("dedicated", "tcp", True),
    ("dedicated", "udp", False),
    ("dedicated", "http", True),
])
def test_check_ignored_setting(tmp_path, capsys, kind, protocol, tci):
    """S14 / §5: transfer_client_ip set explicitly without effect: true on http/https, any value on a
    dedicated load balancer. The finding names the load balancer in `message`; other keys null."""
    data = topo(clean_groups(), load_balancers=[_lb("elb-ignored", kind, protocol, tci)])
    items = of_kind(findings(tmp_path, capsys, data), "ignored_setting")
    assert len(items) == 1
    x = items[0]
    assert (x["security_group"], x["rule"], x["instance"], x["why"]) == (None, None, None, None)
    assert "elb-ignored" in x["message"]


@pytest.mark.parametrize("kind,protocol,tci", [
    ("shared", "tcp", True),  # has its effect: lb_bypass
    ("shared", "udp", False),
    ("shared", "http", "unset"),
    ("shared", "http", False),  # S14 lists only `true` on http/https
    ("dedicated", "tcp", "unset"),
    ("dedicated", "https", "unset"),
])
def test_check_ignored_setting_near_miss(tmp_path, capsys, kind, protocol, tci):
    data = topo(clean_groups(), load_balancers=[_lb("elb-ok", kind, protocol, tci)])
    assert of_kind(findings(tmp_path, capsys, data), "ignored_setting") == []


# -------------------------------------------------------------------------- all kinds, exit codes


def _all_kinds():
    groups = _n_groups(6)
    groups[0]["rules"] += [
        r("off", protocol="tcp", multiport="9000", enabled=False),  # not_effective
        r("shadowed-by-g0", protocol="tcp", multiport="7000", remote_ip_prefix="10.0.0.0/8"),  # shadowed
        r("ssh-world", protocol="tcp", multiport="22", remote_ip_prefix="0.0.0.0/0"),  # open_to_internet
    ]
    data = topo(groups, load_balancers=[_lb("elb-1", "dedicated", "tcp", True)])  # ignored_setting; too_many_groups
    return data


def test_check_json_every_kind_and_exact_keys(tmp_path, capsys):
    """§5: `--json` prints {"findings": [...]} with exactly the six keys; every kind appears where
    its topology calls for it (too_many_instances tested separately for speed)."""
    items = findings(tmp_path, capsys, _all_kinds())
    assert {x["kind"] for x in items} == KINDS - {"too_many_instances"}
    assert ("not_effective", "G0", "off", None, "disabled") in slim(items)
    assert ("shadowed", "G0", "shadowed-by-g0") in {(x["kind"], x["security_group"], x["rule"]) for x in items}
    assert ("open_to_internet", "G0", "ssh-world", None, None) in slim(items)
    assert ("too_many_groups", None, None, "E", None) in slim(items)


def test_check_exit_0_with_findings(tmp_path, capsys):
    """§5: exit 0 with findings (text and JSON)."""
    rc, out, err, _ = run_check(tmp_path, capsys, _all_kinds())
    assert rc == 0 and out and "error" not in err
    rc, out, err, _ = run_check(tmp_path, capsys, _all_kinds(), "--json")
    assert rc == 0 and json.loads(out)["findings"]


def test_check_exit_1_with_findings_strict(tmp_path, capsys):
    """§5: exit 1 with findings under --strict (text and JSON)."""
    assert run_check(tmp_path, capsys, _all_kinds(), "--strict")[0] == 1
    rc, out, _, _ = run_check(tmp_path, capsys, _all_kinds(), "--json", "--strict")
    assert rc == 1
    assert json.loads(out)["findings"]


def test_check_exit_0_strict_without_findings(tmp_path, capsys):
    assert run_check(tmp_path, capsys, topo(clean_groups()), "--strict")[0] == 0
    rc, out, _, _ = run_check(tmp_path, capsys, topo(clean_groups()), "--json", "--strict")
    assert rc == 0 and json.loads(out) == {"findings": []}


@pytest.mark.parametrize("flags", [(), ("--json",), ("--strict",), ("--json", "--strict")])
def test_check_exit_2_invalid(tmp_path, capsys, flags):
    """§5: exit 2 for an invalid topology, one `sgdp: error:` line, nothing on stdout."""
    g = clean_groups()
    g[0]["rules"][0]["multiport"] = "443,443"
    rc, out, err, f = run_check(tmp_path, capsys, topo(g), *flags)
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sgdp: error:") and str(f) in lines[0]
    assert "security_groups[0].rules[0].multiport" in lines[0] and "443,443" in lines[0]
