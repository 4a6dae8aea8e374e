"""Cases mutation testing left open: the security-group and ACL connection tables are separate
(S11, S13), and fragment memory is keyed by protocol too (S15). Expectations from the SPEC."""

from __future__ import annotations

VPC = {"name": "V", "cidr": "10.0.0.0/16",
       "subnets": [{"name": "A", "cidr": "10.0.0.0/24", "network_acl": "acl"}, {"name": "B", "cidr": "10.0.1.0/24"}]}


def test_s11_s13_acl_entry_does_not_let_a_denied_packet_through_the_groups(run):
    """Inbound, the ACL (allow all) admits the SYN and opens an ACL entry; the receiver's groups have
    no ingress rule, so the SYN is denied by default. The retransmitted SYN must be denied again: the
    ACL's entry is not a security-group entry."""
    topo = {
        "vpcs": [VPC],
        "security_groups": [{"name": "G", "rules": [{"direction": "egress"}]}],
        "network_acls": [{"name": "acl", "inbound_rules": [{"action": "allow"}], "outbound_rules": [{"action": "allow"}]}],
        "instances": [{"name": "srv", "subnet": "A", "ip": "10.0.0.10", "security_groups": ["G"]},
                      {"name": "cli", "subnet": "B", "ip": "10.0.1.10", "security_groups": ["G"]}],
    }
    syn = {"src": "10.0.1.10", "dst": "10.0.0.10", "proto": "tcp", "dport": 22, "flags": "S"}
    rows = run(topo, [dict(syn, time=0), dict(syn, time=1)])
    for row in rows:
        assert (row.verdict, row.reason, row.instance, row.direction) == ("deny", "default", "srv", "ingress")


def test_s15_fragment_memory_is_per_protocol(run):
    """Two datagrams between the same hosts with the same IP identification but different protocols:
    a non-first fragment gets the row of the first fragment of its own protocol's datagram."""
    topo = {
        "vpcs": [{"name": "V", "cidr": "10.0.0.0/16", "subnets": [{"name": "A", "cidr": "10.0.0.0/24"}]}],
        "security_groups": [{"name": "G", "rules": [
            {"id": "tcp-in", "direction": "ingress", "protocol": "tcp"},
            {"id": "udp-deny", "direction": "ingress", "action": "deny", "protocol": "udp"},
            {"id": "out", "direction": "egress"}]}],
        "instances": [{"name": "a", "subnet": "A", "ip": "10.0.0.10", "security_groups": ["G"]},
                      {"name": "b", "subnet": "A", "ip": "10.0.0.11", "security_groups": ["G"]}],
    }
    common = {"src": "10.0.0.11", "dst": "10.0.0.10", "frag_id": 99}
    rows = run(topo, [
        dict(common, proto="tcp", dport=80, flags="S", more_fragments=1, time=0),
        dict(common, proto="udp", dport=53, more_fragments=1, time=0.1),
        dict(common, proto="tcp", dport=80, flags="S", frag_offset=185, time=0.2),
        dict(common, proto="udp", dport=53, frag_offset=185, time=0.3),
    ])
    assert (rows[0].verdict, rows[0].rule) == ("allow", "tcp-in")
    assert (rows[1].verdict, rows[1].rule) == ("deny", "udp-deny")
    assert rows[2] == rows[0]
    assert rows[3] == rows[1]


def test_s10_flavor_family_is_case_insensitive():
    """S10: the family is the flavor's prefix before the first '.'; Huawei flavor names are
    case-insensitive, so 'S1.medium' is a legacy S1 instance and 'KAI1S.large' a Kai1 one."""
    from sgdp.topology.model import topology_from_data
    from sgdp.topology.policy import Policy

    topo = topology_from_data({
        "vpcs": [{"name": "V", "cidr": "10.0.0.0/16", "subnets": [{"name": "A", "cidr": "10.0.0.0/24"}]}],
        "security_groups": [{"name": "G", "rules": [{"id": "mp", "direction": "ingress", "protocol": "tcp", "multiport": "22,80"}]}],
        "instances": [{"name": "old", "flavor": "S1.medium", "subnet": "A", "ip": "10.0.0.10", "security_groups": ["G"]},
                      {"name": "kai", "flavor": "KAI1S.large.2", "subnet": "A", "ip": "10.0.0.11", "security_groups": ["G"]}],
    }, "t.yaml")
    whys = {(ne.instance, ne.rule): ne.why for ne in Policy(topo).not_effective()}
    assert whys == {("old", "mp"): "flavor", ("kai", "mp"): "kai1"}
