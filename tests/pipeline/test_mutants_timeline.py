"""Rule changes during a replay (S12, `sgdp replay --timeline`): cases that mutation testing showed
tests/pipeline/test_timeline.py left open. Every expectation is worked out by hand from S12 and the S12 section
of docs/semantics.md:

- "A NIC whose own binding changes (the order of its groups) or whose instance's flavor family kind
  changes (S10) is treated like a member of a changed group" - its inbound-opened entries are dropped.
- "Network ACLs follow the same rule for their own connection tables ... security-group entries are
  not touched by an ACL change, nor ACL entries by a group change."
- "Entries of load-balancer client-IP-transfer flows (S14) are never dropped: no rule decides them."

The story in every test: Alice (office, a private network) opens SSH to web-1 at t=1 (an entry
opened by inbound traffic at web-1); at t=10 a new version applies; at t=11 web-1 answers. web-1's
groups have no egress rule unless a test says otherwise, so the answer passes only as `established`.
"""

from __future__ import annotations

import copy
import csv

import pytest
import yaml

from sgdp.cli import main
from tests.framegen import tcp, write_capture

WEB, B1 = "192.168.0.10", "192.168.1.10"
ALICE, NET = "172.16.0.5", "198.51.100.7"
LB_EIP = "203.0.113.50"


def base() -> dict:
    return {
        "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
            {"name": "Subnet-A", "cidr": "192.168.0.0/24"},
            {"name": "Subnet-B", "cidr": "192.168.1.0/24"},
        ]}],
        "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]}],
        "security_groups": [
            {"name": "Sg-Ssh", "rules": [{"id": "ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22",
                                          "remote_ip_prefix": "172.16.0.0/24"}]},
            {"name": "Sg-Mon", "rules": [{"id": "mon", "direction": "ingress", "protocol": "udp", "multiport": "161",
                                          "remote_ip_prefix": "172.16.0.0/24"}]},
            {"name": "Sg-Back", "rules": [
                {"id": "back-8080", "direction": "ingress", "protocol": "tcp", "multiport": "8080"}]},
        ],
        "instances": [
            {"name": "web-1", "flavor": "s6.large.2", "subnet": "Subnet-A", "ip": WEB, "security_groups": ["Sg-Ssh", "Sg-Mon"]},
            {"name": "b1", "subnet": "Subnet-B", "ip": B1, "security_groups": ["Sg-Back"]},
        ],
        "load_balancers": [
            {"name": "elb", "type": "shared", "vip": "192.168.1.100", "eip": LB_EIP, "subnet": "Subnet-B",
             "listeners": [{"protocol": "tcp", "port": 80, "transfer_client_ip": True,
                            "backends": [{"instance": "b1", "port": 8080}]}]},
        ],
    }


def with_acl(d: dict, outbound: list[dict] | None = None, extra_inbound: list[dict] | None = None) -> dict:
    """Subnet-A gets acl-a: inbound allows tcp 22 (and extra rules), outbound as given (default: none,
    so web-1's answers pass the ACL only through its connection tracking)."""
    d = copy.deepcopy(d)
    d["vpcs"][0]["subnets"][0]["network_acl"] = "acl-a"
    d["network_acls"] = [{"name": "acl-a",
                          "inbound_rules": [{"id": "acl-ssh", "action": "allow", "protocol": "tcp", "destination_port": "22"}]
                          + (extra_inbound or []),
                          "outbound_rules": outbound or []}]
    return d


def replay(tmp_path, capsys, engine_name, v1: dict, v2: dict, specs: list[dict]) -> list[tuple]:
    (tmp_path / "versions").mkdir(exist_ok=True)
    topo = tmp_path / "v1.yaml"
    topo.write_text(yaml.safe_dump(v1, sort_keys=False), encoding="utf-8")
    (tmp_path / "versions" / "v2.yaml").write_text(yaml.safe_dump(v2, sort_keys=False), encoding="utf-8")
    tl = tmp_path / "versions" / "timeline.yaml"
    tl.write_text(yaml.safe_dump([{"at": 10.0, "topology": "v2.yaml"}]), encoding="utf-8")
    cap = write_capture(tmp_path / "story.pcap", specs)
    out = tmp_path / "out"
    rc = main(["replay", str(topo), cap, "-o", str(out), "--timeline", str(tl), "--engine", engine_name, "--no-progress"])
    _, err = capsys.readouterr()
    assert rc == 0, err
    with open(out / "verdicts.csv", newline="") as fh:
        return [(r["verdict"], r["reason"], r["instance"], r["direction"], r["security_group"], r["rule"])
                for r in csv.DictReader(fh)]


SSH_STORY = [tcp(ALICE, WEB, 40000, 22, "S", 1.0), tcp(WEB, ALICE, 22, 40000, "SA", 11.0),
             tcp(ALICE, WEB, 40000, 22, "A", 12.0), tcp(WEB, ALICE, 22, 40000, "A", 13.0)]
SSH_IN = ("allow", "rule", "web-1", "ingress", "Sg-Ssh", "ssh")
EST_OUT = ("allow", "established", "web-1", "egress", "", "")
DENIED_OUT = ("deny", "default", "web-1", "egress", "", "")
# after the entry was dropped: the answer is evaluated (no egress rule: denied); Alice's next packet is
# evaluated by the rules again (allowed, a new entry), so web-1's next answer is established
DROPPED = [SSH_IN, DENIED_OUT, SSH_IN, EST_OUT]
KEPT = [SSH_IN, EST_OUT, ("allow", "established", "web-1", "ingress", "", ""), EST_OUT]


@pytest.fixture
def story(tmp_path, capsys, engine_name):
    return lambda v1, v2, specs=SSH_STORY: replay(tmp_path, capsys, engine_name, v1, v2, specs)


# Near miss for the tests below: a version that changes nothing web-1 uses keeps its entries.
def test_s12_unrelated_change_keeps_entries(story):
    v2 = base()
    v2["security_groups"][2]["rules"].append({"id": "back-8081", "direction": "ingress", "protocol": "tcp", "multiport": "8081"})
    assert story(base(), v2) == KEPT


# web-1's binding order changes ([Sg-Ssh, Sg-Mon] -> [Sg-Mon, Sg-Ssh]); neither group's rules nor
# membership change, yet web-1 is treated as a member of a changed group: its inbound entry is dropped.
def test_s12_binding_order_change_drops_inbound_entries(story):
    v2 = base()
    v2["instances"][0]["security_groups"] = ["Sg-Mon", "Sg-Ssh"]
    assert story(base(), v2) == DROPPED


# web-1's flavor family kind changes (s6: normal -> kai1s: Kai1), its groups do not: its inbound
# entry is dropped. A flavor change within the same kind (s6 -> c7) keeps it.
def test_s12_flavor_kind_change_drops_inbound_entries(story):
    v2 = base()
    v2["instances"][0]["flavor"] = "kai1s.large.2"
    assert story(base(), v2) == DROPPED
    v2["instances"][0]["flavor"] = "c7.large.2"
    assert story(base(), v2) == KEPT


# A security-group change leaves ACL entries alone: Sg-Ssh changes (a rule added), so web-1's group
# entry is dropped - but web-1 now has an egress rule that allows its answer - and the answer then
# passes acl-a outbound (no outbound rule at all) through the ACL's entry, which survives. (The answer
# allowed by web-out opened a new group entry, so the rest of the flow is established.)
def test_s12_group_change_keeps_acl_entries(story):
    v1 = with_acl(base())
    v2 = copy.deepcopy(v1)
    v2["security_groups"][0]["rules"].append({"id": "web-out", "direction": "egress"})
    assert story(v1, v2) == [SSH_IN, ("allow", "rule", "web-1", "egress", "Sg-Ssh", "web-out"),
                             ("allow", "established", "web-1", "ingress", "", ""), EST_OUT]


# An ACL change drops the ACL entries opened by inbound traffic, not the group entries: acl-a gains an
# inbound rule; web-1's answer passes its groups as established, then meets acl-a outbound with no
# entry and no rule: implicit deny. Alice's next packet is allowed by acl-ssh again (a new ACL entry)
# and web-1's next answer passes.
def test_s12_acl_change_drops_acl_entries_only(story):
    v1 = with_acl(base())
    v2 = with_acl(base(), extra_inbound=[{"id": "acl-snmp", "action": "allow", "protocol": "udp", "destination_port": "161"}])
    assert story(v1, v2) == [SSH_IN, ("deny", "acl", "web-1", "egress", "acl-a", ""),
                             ("allow", "established", "web-1", "ingress", "", ""), EST_OUT]


# Entries of load-balancer client-IP-transfer flows are never dropped: Sg-Back (b1's group) changes
# while an Internet client's flow through the LB's EIP is open; b1's answer still goes back (b1 has no
# EIP and no egress rule: only the flow's entry lets it through).
def test_s12_lb_client_ip_transfer_entries_survive_group_change(story):
    v2 = base()
    v2["security_groups"][2]["rules"].append({"id": "back-8081", "direction": "ingress", "protocol": "tcp", "multiport": "8081"})
    v2["instances"][1]["security_groups"] = ["Sg-Back", "Sg-Mon"]
    specs = [tcp(NET, LB_EIP, 40000, 80, "S", 1.0), tcp(B1, NET, 8080, 40000, "SA", 11.0)]
    assert story(base(), v2, specs) == [("allow", "lb_bypass", "b1", "ingress", "", ""),
                                        ("allow", "established", "b1", "egress", "", "")]


# A version that takes a path away: web-1 loses its EIP while its outbound HTTPS connection to the
# Internet is open. The entry survives (opened by outbound traffic), but S6 decides first: without an
# EIP web-1 has no path to the Internet, so its next packet is no_route - an open entry gives no path
# (only a load balancer's client-IP-transfer flow does, docs/semantics.md S14).
def test_s12_s6_entry_gives_no_path_after_eip_removed(story):
    v1 = base()
    v1["instances"][0]["eip"] = "203.0.113.10"
    v1["security_groups"][0]["rules"].append({"id": "https-out", "direction": "egress", "protocol": "tcp", "multiport": "443"})
    v2 = copy.deepcopy(v1)
    del v2["instances"][0]["eip"]
    specs = [tcp(WEB, NET, 50000, 443, "S", 1.0), tcp(NET, WEB, 443, 50000, "SA", 2.0),
             tcp(WEB, NET, 50000, 443, "A", 11.0)]
    assert story(v1, v1, specs) == [("allow", "rule", "web-1", "egress", "Sg-Ssh", "https-out"),
                                    ("allow", "established", "web-1", "ingress", "", ""),
                                    ("allow", "established", "web-1", "egress", "", "")]
    assert story(v1, v2, specs)[2] == ("deny", "no_route", "web-1", "", "", "")
