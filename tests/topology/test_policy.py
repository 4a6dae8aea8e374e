"""Effective policy: S2 (creation order, through its effects), S8 (walk order and first match),
S9 (quota) and S10 (flavor families).

Expectations are worked out from ../shared/SPEC.md, not from the tool's output.
"""

from __future__ import annotations

import pytest

from sgdp.topology.model import topology_from_data
from sgdp.topology.policy import Policy

V4_SUBNET = "192.168.0.0/24"
V6_SUBNET = "2407:c080:802:469::/64"


def make_topo(groups, instances=None, extra_groups=True):
    """A VPC, address groups AG (IPv4) / AG6 (IPv6), peer group P with instance PEER, and instances."""
    all_groups = list(groups)
    if extra_groups:
        all_groups.append({"name": "P", "rules": [
            {"id": "p-out", "direction": "egress"},
            {"id": "p-out6", "direction": "egress", "ethertype": "IPv6"},
        ]})
    if instances is None:
        instances = [inst("E", [g["name"] for g in groups])]
    if extra_groups:
        instances = list(instances) + [inst("PEER", ["P"], ip="192.168.0.200", ipv6="2407:c080:802:469::200", eip=None)]
    return {
        "vpcs": [{"name": "V", "cidr": "192.168.0.0/16", "subnets": [
            {"name": "S", "cidr": V4_SUBNET, "ipv6_cidr": V6_SUBNET}]}],
        "address_groups": [
            {"name": "AG", "ip_version": 4, "ip_set": ["198.51.100.0/24"]},
            {"name": "AG6", "ip_version": 6, "ip_set": ["2001:db8::/32"]},
        ],
        "security_groups": all_groups,
        "instances": instances,
    }


def inst(name, groups, flavor="s6.large.2", ip="192.168.0.10", ipv6="2407:c080:802:469::10", eip="203.0.113.10"):
    d = {"name": name, "flavor": flavor, "subnet": "S", "ip": ip, "security_groups": list(groups)}
    if ipv6:
        d["ipv6"] = ipv6
        d["ipv6_internet"] = True
    if eip:
        d["eip"] = eip
    return d


def load(d):
    return topology_from_data(d, "test.yaml")


def nic_of(topo, name):
    return topo.nics[topo.instances[name].nics[0]]


def walk_ids(topo, name, direction="ingress", version=4, policy=None):
    policy = policy or Policy(topo)
    return [r.id for r, _ in policy.walk(nic_of(topo, name), direction, version)]


def status(topo, name, direction="ingress", version=4, policy=None):
    """rule id -> why it does not take effect on this instance's NIC (None when it does)."""
    policy = policy or Policy(topo)
    return {r.id: why for r, why in policy.walk(nic_of(topo, name), direction, version)}


def not_effective(topo):
    return {(n.security_group, n.rule, n.instance, n.why) for n in Policy(topo).not_effective()}


def r(rid, direction="ingress", **kw):
    return {"id": rid, "direction": direction, **kw}


def rg(rid, **kw):  # uses quota: remote group
    return r(rid, protocol="tcp", multiport="1000", remote_group_id="P", **kw)


def ag(rid, **kw):  # uses quota: address group
    return r(rid, protocol="tcp", multiport="1000", remote_address_group_id="AG", **kw)


def mp(rid, ports="80,443", **kw):  # uses quota: inconsecutive ports
    return r(rid, protocol="tcp", multiport=ports, **kw)


def plain(rid, **kw):  # does not use quota
    return r(rid, protocol="tcp", multiport="8000-8080", remote_ip_prefix="10.0.0.0/8", **kw)


def tcp(src, dst, dport, **kw):
    return {"src": src, "dst": dst, "proto": "tcp", "dport": dport, "flags": "S", **kw}


INTERNET = "198.51.100.7"
EIP = "203.0.113.10"


# =============================================================================== S8: walk order


def s8_groups():
    return [
        {"name": "G1", "rules": [
            r("g1-allow-p2", priority=2, protocol="tcp", multiport="22"),
            r("g1-allow-p1-a", priority=1, protocol="tcp", multiport="80"),
            r("g1-deny-p1", priority=1, action="deny", protocol="tcp", multiport="80"),
            r("g1-allow-p1-b", priority=1, protocol="tcp", multiport="443"),
            r("g1-v6", ethertype="IPv6"),
            r("g1-out", "egress"),
        ]},
        {"name": "G2", "rules": [
            r("g2-allow-p100", priority=100),
            r("g2-deny-p1", priority=1, action="deny"),
        ]},
    ]


def test_s8_walk_priority_deny_first_creation_order():
    """S8: within a group: priority (1 first), deny before allow at equal priority, then creation order."""
    topo = load(make_topo(s8_groups(), [inst("E", ["G1", "G2"])]))
    assert walk_ids(topo, "E") == [
        "g1-deny-p1", "g1-allow-p1-a", "g1-allow-p1-b", "g1-allow-p2",
        "g2-deny-p1", "g2-allow-p100",
    ]


def test_s8_walk_binding_order_of_groups():
    """S8: the NIC's groups are walked in binding order, not file order; a deny at priority 1 in a
    later group still comes after every rule of an earlier group."""
    topo = load(make_topo(s8_groups(), [inst("E", ["G2", "G1"])]))
    assert walk_ids(topo, "E") == [
        "g2-deny-p1", "g2-allow-p100",
        "g1-deny-p1", "g1-allow-p1-a", "g1-allow-p1-b", "g1-allow-p2",
    ]


def test_s8_walk_only_the_packets_ip_version_and_direction():
    """S8: only rules of the packet's IP version (and the direction) are considered."""
    topo = load(make_topo(s8_groups(), [inst("E", ["G1", "G2"])]))
    assert walk_ids(topo, "E", "ingress", 6) == ["g1-v6"]
    assert walk_ids(topo, "E", "egress", 4) == ["g1-out"]
    assert walk_ids(topo, "E", "egress", 6) == []


def test_s8_allow_p100_in_first_group_beats_deny_p1_in_second(run):
    """S8: "An allow at priority 100 in the first group therefore beats a deny at priority 1 in the
    second." — and the other binding order gives the opposite verdict."""
    groups = [
        {"name": "First", "rules": [r("first-allow-ssh", priority=100, protocol="tcp", multiport="22")]},
        {"name": "Second", "rules": [r("second-deny-all", priority=1, action="deny")]},
    ]
    instances = [inst("E", ["First", "Second"]),
                 inst("F", ["Second", "First"], ip="192.168.0.11", ipv6=None, eip="203.0.113.11")]
    v = run(make_topo(groups, instances), [
        tcp(INTERNET, EIP, 22),
        tcp(INTERNET, EIP, 80),
        tcp(INTERNET, "203.0.113.11", 22),
    ])
    assert [(x.verdict, x.reason, x.instance, x.direction, x.security_group, x.rule) for x in v] == [
        ("allow", "rule", "E", "ingress", "First", "first-allow-ssh"),
        ("deny", "rule", "E", "ingress", "Second", "second-deny-all"),
        ("deny", "rule", "F", "ingress", "Second", "second-deny-all"),
    ]


def test_s8_deny_before_allow_at_equal_priority_packets(run):
    """S8: at equal priority a deny wins even when the allow is earlier in the file."""
    groups = [{"name": "G", "rules": [
        r("allow-ssh", priority=5, protocol="tcp", multiport="22"),
        r("deny-ssh", priority=5, action="deny", protocol="tcp", multiport="22", remote_ip_prefix="198.51.100.0/24"),
    ]}]
    v = run(make_topo(groups), [tcp(INTERNET, EIP, 22), tcp("192.0.2.1", EIP, 22)])
    assert (v[0].verdict, v[0].rule) == ("deny", "deny-ssh")
    assert (v[1].verdict, v[1].rule) == ("allow", "allow-ssh")


def test_s8_priority_beats_file_order_packets(run):
    """S8: priority 1 comes before priority 2 whatever the file order."""
    groups = [{"name": "G", "rules": [
        r("deny-p2", priority=2, action="deny", protocol="tcp", multiport="22"),
        r("allow-p1", priority=1, protocol="tcp", multiport="20-30"),
    ]}]
    v = run(make_topo(groups), [tcp(INTERNET, EIP, 22)])
    assert (v[0].verdict, v[0].reason, v[0].rule) == ("allow", "rule", "allow-p1")


def test_s8_no_match_is_default_deny_and_other_version_ignored(run):
    """S8: no matching rule of the packet's IP version -> deny, reason default, no group or rule."""
    groups = [{"name": "G", "rules": [
        r("v4-deny-all", action="deny"),
        r("v6-allow-443", ethertype="IPv6", priority=100, protocol="tcp", multiport="443"),
    ]}]
    v = run(make_topo(groups), [
        tcp("2001:db8::7", "2407:c080:802:469::10", 443),
        tcp("2001:db8::7", "2407:c080:802:469::10", 444),
    ])
    assert (v[0].verdict, v[0].reason, v[0].rule) == ("allow", "rule", "v6-allow-443")
    assert (v[1].verdict, v[1].reason, v[1].instance, v[1].direction, v[1].security_group, v[1].rule) == \
        ("deny", "default", "E", "ingress", "", "")


# ============================================================================ S2: creation order


def _two_allows(created=None):
    """Two allow rules of equal priority that both match tcp/22 from the Internet."""
    a = r("ssh-only", protocol="tcp", multiport="22")
    b = r("all-tcp", protocol="tcp")
    if created:
        a["created_at"], b["created_at"] = created
    return [{"name": "G", "rules": [a, b]}]


def test_s2_file_order_decides_first_match(run):
    """S2 + S8: without created_at, file order is creation order: the first rule in the file decides."""
    topo = load(make_topo(_two_allows()))
    assert walk_ids(topo, "E") == ["ssh-only", "all-tcp"]
    v = run(topo, [tcp(INTERNET, EIP, 22)])
    assert v[0].rule == "ssh-only"


def test_s2_created_at_decides_first_match(run):
    """S2: created_at given -> that order, whatever the file order."""
    topo = load(make_topo(_two_allows(("2024-02-01T00:00:00Z", "2024-01-01T00:00:00Z"))))
    assert walk_ids(topo, "E") == ["all-tcp", "ssh-only"]
    v = run(topo, [tcp(INTERNET, EIP, 22)])
    assert v[0].rule == "all-tcp"


def test_s2_created_at_ties_by_file_order(run):
    """S2: equal created_at -> file order."""
    topo = load(make_topo(_two_allows(("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"))))
    assert walk_ids(topo, "E") == ["ssh-only", "all-tcp"]
    assert run(topo, [tcp(INTERNET, EIP, 22)])[0].rule == "ssh-only"


def test_s2_created_at_with_utc_offsets():
    """S2: ISO 8601 with offsets: 10:00+02:00 is 08:00Z, before 09:00Z."""
    topo = load(make_topo(_two_allows(("2024-01-01T09:00:00Z", "2024-01-01T10:00:00+02:00"))))
    assert walk_ids(topo, "E") == ["all-tcp", "ssh-only"]


def test_s2_created_at_decides_which_rule_is_beyond_quota():
    """S2 + S9: the rule first in the file but created last is the 121st."""
    rules = [rg("late", created_at="2024-06-01T00:00:00Z")]
    rules += [rg(f"q{k}", created_at=f"2024-01-01T00:{k // 60:02d}:{k % 60:02d}Z") for k in range(120)]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    st = status(topo, "E")
    assert st["late"] == "quota"
    assert [k for k, v in st.items() if v is not None] == ["late"]


def test_s2_created_at_decides_kai1_cut():
    """S2 + S10: on Kai1 the cut starts at the first inconsecutive rule in CREATION order."""
    rules = [
        mp("mp", created_at="2024-01-02T00:00:00Z"),
        plain("before", created_at="2024-01-01T00:00:00Z"),
        plain("after", created_at="2024-01-03T00:00:00Z"),
    ]
    topo = load(make_topo([{"name": "K", "rules": rules}], [inst("E", ["K"], flavor="kai1s.large.4")]))
    assert status(topo, "E") == {"before": None, "mp": "kai1", "after": "kai1"}


# ================================================================================== S9: quota


def test_s9_quota_121st_counted_rule_does_not_take_effect():
    """S9: in one (group, direction, ethertype), counted rules beyond the 120th in creation order do
    not take effect; plain rules neither count nor are cut."""
    rules = [plain("plain-first")]
    rules += [rg(f"rg{k}") for k in range(121)]
    rules += [plain("plain-last")]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    st = status(topo, "E")
    assert st["rg120"] == "quota"
    assert {k for k, v in st.items() if v is not None} == {"rg120"}
    assert ("Q", "rg120", None, "quota") in not_effective(topo)
    assert {x for x in not_effective(topo) if x[3] == "quota"} == {("Q", "rg120", None, "quota")}


def test_s9_exactly_120_counted_rules_all_take_effect():
    rules = [rg(f"rg{k}") for k in range(120)] + [plain(f"p{k}") for k in range(10)]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    assert all(v is None for v in status(topo, "E").values())
    assert not_effective(topo) == set()


def test_s9_all_three_kinds_count():
    """S9: remote-group, address-group and inconsecutive-port rules each count (even 22-24,25)."""
    rules = [rg(f"rg{k}") for k in range(40)] + [ag(f"ag{k}") for k in range(40)] + [mp(f"mp{k}") for k in range(40)]
    rules.append(mp("last", ports="22-24,25"))
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    st = status(topo, "E")
    assert {k for k, v in st.items() if v is not None} == {"last"}
    assert st["last"] == "quota"


def test_s9_consecutive_multiport_does_not_count():
    """S9: a single segment (22-25, or 22) is not inconsecutive; prefix remotes do not count."""
    rules = [rg(f"rg{k}") for k in range(120)]
    rules += [mp("range", ports="22-25"), mp("single", ports="22"),
              r("prefix", protocol="tcp", multiport="22", remote_ip_prefix="10.0.0.0/8"), r("any")]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    assert all(v is None for v in status(topo, "E").values())


def test_s9_rule_with_group_and_inconsecutive_counts_once():
    """S9: "count once each" — 120 rules each with a remote group AND inconsecutive ports fill the
    quota exactly; the 121st is out."""
    rules = [r(f"both{k}", protocol="tcp", multiport="80,443", remote_group_id="P") for k in range(121)]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    st = status(topo, "E")
    assert {k for k, v in st.items() if v is not None} == {"both120"}


def test_s9_disabled_rules_use_no_quota():
    """S9 / §2: a disabled rule never matches and uses no quota; it is reported as disabled."""
    rules = [rg(f"rg{k}") for k in range(119)] + [rg("off", enabled=False), rg("in-120")]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    st = status(topo, "E")
    assert st["off"] == "disabled"
    assert st["in-120"] is None
    assert {k for k, v in st.items() if v is not None} == {"off"}
    assert not_effective(topo) == {("Q", "off", None, "disabled")}


def test_s9_disabled_then_quota():
    rules = [rg(f"rg{k}") for k in range(120)] + [rg("off", enabled=False), rg("out")]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    st = status(topo, "E")
    assert (st["off"], st["out"]) == ("disabled", "quota")


def test_s9_quota_is_per_direction_and_ethertype():
    """S9: the quota is per (group, direction, ethertype)."""
    rules = [rg(f"in4-{k}") for k in range(120)]
    rules += [r("in6", ethertype="IPv6", protocol="tcp", multiport="80,443")]
    rules += [rg("out4", direction="egress")]
    topo = load(make_topo([{"name": "Q", "rules": rules}]))
    assert all(v is None for v in status(topo, "E", "ingress", 4).values())
    assert status(topo, "E", "ingress", 6) == {"in6": None}
    assert status(topo, "E", "egress", 4) == {"out4": None}
    assert not_effective(topo) == set()


def test_s9_quota_is_per_group():
    """S9: two groups bound to the same NIC each have their own 120."""
    g1 = {"name": "Q1", "rules": [rg(f"a{k}") for k in range(80)]}
    g2 = {"name": "Q2", "rules": [rg(f"b{k}") for k in range(80)]}
    topo = load(make_topo([g1, g2]))
    assert all(v is None for v in status(topo, "E").values())


def test_s9_quota_through_packets(run):
    """S9: the 121st remote-group rule does not match; the first 120 do."""
    rules = [r(f"rg{k}", protocol="tcp", multiport=str(1000 + k), remote_group_id="P") for k in range(120)]
    rules.append(r("ssh-from-P", protocol="tcp", multiport="22", remote_group_id="P"))
    topo = make_topo([{"name": "Q", "rules": rules}])
    v = run(topo, [tcp("192.168.0.200", "192.168.0.10", 1000), tcp("192.168.0.200", "192.168.0.10", 1119),
                   tcp("192.168.0.200", "192.168.0.10", 22)])
    assert [(x.verdict, x.reason, x.rule) for x in v] == [
        ("allow", "rule", "rg0"), ("allow", "rule", "rg119"), ("deny", "default", "")]


def test_s9_quota_near_miss_through_packets(run):
    """S9 near miss: with 119 before it, the ssh rule is the 120th and takes effect."""
    rules = [r(f"rg{k}", protocol="tcp", multiport=str(1000 + k), remote_group_id="P") for k in range(119)]
    rules.append(r("ssh-from-P", protocol="tcp", multiport="22", remote_group_id="P"))
    v = run(make_topo([{"name": "Q", "rules": rules}]), [tcp("192.168.0.200", "192.168.0.10", 22)])
    assert (v[0].verdict, v[0].rule) == ("allow", "ssh-from-P")


# ========================================================================= S10: flavor families


def legacy_rules():
    return [
        ag("ag-rule"),
        mp("mp-rule", ports="80,443"),
        mp("mp-adjacent", ports="22-24,25"),
        mp("mp-range", ports="8000-8080"),
        rg("rg-rule"),
        plain("plain-rule"),
        r("ag6-rule", ethertype="IPv6", remote_address_group_id="AG6"),
    ]


@pytest.mark.parametrize("flavor", ["s1.medium", "c1.large", "c2.xlarge", "m1.large", "h1.2xlarge", "d1.xlarge",
                                    "g1.xlarge", "g2.2xlarge", "e1.2xlarge", "e2.4xlarge", "et2.2xlarge"])
def test_s10_legacy_families_ignore_address_groups_and_inconsecutive_ports(flavor):
    """S10: on S1, C1, C2, M1, H1, D1, G1, G2, E1, E2, ET2, address-group rules and inconsecutive-port
    rules do not take effect (why flavor); remote-group and consecutive rules do."""
    topo = load(make_topo([{"name": "L", "rules": legacy_rules()}], [inst("E", ["L"], flavor=flavor)]))
    assert status(topo, "E") == {"ag-rule": "flavor", "mp-rule": "flavor", "mp-adjacent": "flavor",
                                 "mp-range": None, "rg-rule": None, "plain-rule": None}
    assert status(topo, "E", "ingress", 6) == {"ag6-rule": "flavor"}
    assert {x for x in not_effective(topo)} == {
        ("L", "ag-rule", "E", "flavor"), ("L", "mp-rule", "E", "flavor"), ("L", "mp-adjacent", "E", "flavor"),
        ("L", "ag6-rule", "E", "flavor")}


@pytest.mark.parametrize("flavor", ["s6.large.2", "c6.large.2", "s2.medium.4", "m6.large.8", "c3ne.large.2",
                                    "kc1.large.2", "s1x.large", None])
def test_s10_other_flavors_unaffected(flavor):
    """S10 near miss: other families (the prefix before the first '.' decides) are unaffected."""
    i = inst("E", ["L"], flavor=flavor)
    if flavor is None:
        del i["flavor"]
    topo = load(make_topo([{"name": "L", "rules": legacy_rules()}], [i]))
    assert all(v is None for v in status(topo, "E").values())
    assert not_effective(topo) == set()


def test_s10_other_instances_of_the_same_group_unaffected():
    """S10: "Other instances are unaffected by the same group." """
    topo = load(make_topo([{"name": "L", "rules": legacy_rules()}],
                          [inst("OLD", ["L"], flavor="s1.medium"),
                           inst("NEW", ["L"], flavor="s6.large.2", ip="192.168.0.11", ipv6=None, eip="203.0.113.11")]))
    policy = Policy(topo)
    assert status(topo, "OLD", policy=policy)["ag-rule"] == "flavor"
    assert all(v is None for v in status(topo, "NEW", policy=policy).values())
    assert all(x[2] == "OLD" for x in not_effective(topo))


def test_s10_legacy_through_packets(run):
    """S10: an address-group allow works on a normal instance and not on a legacy one."""
    groups = [{"name": "L", "rules": [r("office-ssh", protocol="tcp", multiport="22", remote_address_group_id="AG"),
                                      r("web", protocol="tcp", multiport="80,443")]}]
    instances = [inst("OLD", ["L"], flavor="s1.medium"),
                 inst("NEW", ["L"], flavor="s6.large.2", ip="192.168.0.11", ipv6=None, eip="203.0.113.11")]
    v = run(make_topo(groups, instances), [
        tcp(INTERNET, EIP, 22), tcp(INTERNET, EIP, 443),
        tcp(INTERNET, "203.0.113.11", 22), tcp(INTERNET, "203.0.113.11", 443),
    ])
    assert [(x.verdict, x.reason, x.instance, x.rule) for x in v] == [
        ("deny", "default", "OLD", ""), ("deny", "default", "OLD", ""),
        ("allow", "rule", "NEW", "office-ssh"), ("allow", "rule", "NEW", "web"),
    ]


def kai1_rules():
    return [
        plain("k1-in4"),
        mp("k2-out4-mp", direction="egress"),
        r("k3-in6", ethertype="IPv6", protocol="tcp", multiport="22"),
        r("k4-in6-mp", ethertype="IPv6", protocol="tcp", multiport="80,443"),
        plain("k5-in4-after"),
        ag("k6-in4-ag-after"),
        r("k7-out4-after", "egress"),
        r("k8-in6-after", ethertype="IPv6"),
    ]


@pytest.mark.parametrize("flavor", ["kai1s.xlarge.4", "kai1.2xlarge.4"])
def test_s10_kai1_cut_across_both_ethertypes(flavor):
    """S10: on Kai1, within each group and direction, in creation order across both ethertypes, the
    first inconsecutive rule and every rule created after it do not take effect (why kai1)."""
    topo = load(make_topo([{"name": "K", "rules": kai1_rules()}], [inst("E", ["K"], flavor=flavor)]))
    policy = Policy(topo)
    assert status(topo, "E", "ingress", 4, policy) == {"k1-in4": None, "k5-in4-after": "kai1", "k6-in4-ag-after": "kai1"}
    assert status(topo, "E", "ingress", 6, policy) == {"k3-in6": None, "k4-in6-mp": "kai1", "k8-in6-after": "kai1"}
    assert status(topo, "E", "egress", 4, policy) == {"k2-out4-mp": "kai1", "k7-out4-after": "kai1"}
    assert not_effective(topo) == {("K", x, "E", "kai1") for x in
                                   ("k2-out4-mp", "k4-in6-mp", "k5-in4-after", "k6-in4-ag-after", "k7-out4-after", "k8-in6-after")}


def test_s10_kai1_cut_is_per_group():
    """S10: "within each security group": a cut in K does not touch another group on the same NIC."""
    other = {"name": "O", "rules": [plain("o1"), ag("o2-ag")]}
    topo = load(make_topo([{"name": "K", "rules": kai1_rules()}, other],
                          [inst("E", ["K", "O"], flavor="kai1s.large.2")]))
    st = status(topo, "E")
    assert (st["o1"], st["o2-ag"]) == (None, None)


def test_s10_kai1_without_inconsecutive_rule_nothing_cut():
    """S10 near miss: address groups alone do not start the Kai1 cut."""
    rules = [plain("a"), ag("b"), mp("c", ports="22-25"), rg("d")]
    topo = load(make_topo([{"name": "K", "rules": rules}], [inst("E", ["K"], flavor="kai1s.large.2")]))
    assert all(v is None for v in status(topo, "E").values())


def test_s10_kai1_normal_instance_sharing_group_unaffected():
    topo = load(make_topo([{"name": "K", "rules": kai1_rules()}],
                          [inst("KAI", ["K"], flavor="kai1s.large.2"),
                           inst("NORMAL", ["K"], flavor="s6.large.2", ip="192.168.0.11", ipv6="2407:c080:802:469::11",
                                eip="203.0.113.11")]))
    policy = Policy(topo)
    for d, v in (("ingress", 4), ("ingress", 6), ("egress", 4)):
        assert all(x is None for x in status(topo, "NORMAL", d, v, policy).values())
    assert all(x[2] == "KAI" for x in not_effective(topo))


def test_s10_kai1_through_packets(run):
    groups = [{"name": "K", "rules": [
        r("ssh", protocol="tcp", multiport="22"),
        r("web", protocol="tcp", multiport="80,443"),
        r("alt", protocol="tcp", multiport="8080"),
    ]}]
    instances = [inst("KAI", ["K"], flavor="kai1s.large.2"),
                 inst("NORMAL", ["K"], ip="192.168.0.11", ipv6=None, eip="203.0.113.11")]
    v = run(make_topo(groups, instances), [
        tcp(INTERNET, EIP, 22), tcp(INTERNET, EIP, 443), tcp(INTERNET, EIP, 8080),
        tcp(INTERNET, "203.0.113.11", 443), tcp(INTERNET, "203.0.113.11", 8080),
    ])
    assert [(x.verdict, x.reason, x.rule) for x in v] == [
        ("allow", "rule", "ssh"), ("deny", "default", ""), ("deny", "default", ""),
        ("allow", "rule", "web"), ("allow", "rule", "alt"),
    ]


# ================================================= S9/S10: disabled -> quota -> flavor, no triggers


def test_s9_s10_disabled_inconsecutive_rule_does_not_start_kai1_cut():
    """S9: "a rule already out of effect triggers nothing": a disabled inconsecutive rule is
    disabled (not kai1) and does not cut the rules after it."""
    rules = [mp("off-mp", enabled=False), plain("after")]
    topo = load(make_topo([{"name": "K", "rules": rules}], [inst("E", ["K"], flavor="kai1s.large.2")]))
    assert status(topo, "E") == {"off-mp": "disabled", "after": None}
    assert not_effective(topo) == {("K", "off-mp", None, "disabled")}


def test_s9_s10_quota_out_inconsecutive_rule_does_not_start_kai1_cut():
    """S9: the quota comes before the flavor effects: an inconsecutive rule beyond the 120th is out
    by quota and does not start the Kai1 cut."""
    rules = [rg(f"rg{k}") for k in range(120)] + [mp("mp-121"), plain("after")]
    topo = load(make_topo([{"name": "K", "rules": rules}], [inst("E", ["K"], flavor="kai1s.large.2")]))
    st = status(topo, "E")
    assert st["mp-121"] == "quota"
    assert st["after"] is None
    assert {k for k, v in st.items() if v is not None} == {"mp-121"}
    assert not_effective(topo) == {("K", "mp-121", None, "quota")}


def test_s9_s10_legacy_quota_before_flavor():
    """S9: on a legacy instance, 121 address-group rules: the 121st is out by quota (group-wide), the
    first 120 by flavor (on that instance); each rule gets one reason."""
    rules = [ag(f"ag{k}") for k in range(121)]
    topo = load(make_topo([{"name": "L", "rules": rules}], [inst("E", ["L"], flavor="s1.medium")]))
    st = status(topo, "E")
    assert st["ag120"] == "quota"
    assert all(st[f"ag{k}"] == "flavor" for k in range(120))
    ne = not_effective(topo)
    assert ("L", "ag120", None, "quota") in ne
    assert ("L", "ag120", "E", "flavor") not in ne
    assert len(ne) == 121


def test_s9_s10_legacy_disabled_before_flavor():
    rules = [ag("ag-off", enabled=False), ag("ag-on")]
    topo = load(make_topo([{"name": "L", "rules": rules}], [inst("E", ["L"], flavor="s1.medium")]))
    assert status(topo, "E") == {"ag-off": "disabled", "ag-on": "flavor"}
    assert not_effective(topo) == {("L", "ag-off", None, "disabled"), ("L", "ag-on", "E", "flavor")}


def test_s9_s10_disabled_rule_after_kai1_cut_stays_disabled():
    rules = [mp("mp"), plain("off", enabled=False), plain("on")]
    topo = load(make_topo([{"name": "K", "rules": rules}], [inst("E", ["K"], flavor="kai1.large.2")]))
    assert status(topo, "E") == {"mp": "kai1", "off": "disabled", "on": "kai1"}


def test_s8_walk_lists_not_effective_rules_in_place():
    """S8 + S9: the walk order includes rules out of effect (skipped), in their place."""
    rules = [r("b", priority=2), mp("a", priority=1, enabled=False)]
    topo = load(make_topo([{"name": "G", "rules": rules}]))
    assert [(x.id, why) for x, why in Policy(topo).walk(nic_of(topo, "E"), "ingress", 4)] == [("a", "disabled"), ("b", None)]


def test_s2_disabled_rule_never_matches(run):
    """§2: a disabled rule never matches."""
    rules = [r("off-deny", action="deny", enabled=False), r("ssh", protocol="tcp", multiport="22")]
    v = run(make_topo([{"name": "G", "rules": rules}]), [tcp(INTERNET, EIP, 22), tcp(INTERNET, EIP, 23)])
    assert [(x.verdict, x.reason, x.rule) for x in v] == [("allow", "rule", "ssh"), ("deny", "default", "")]
