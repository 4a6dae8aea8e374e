"""`sgdp replay --timeline FILE` (S12): topology versions applied at capture times, with the
connection-tracking state carried across.

Expectations are worked out by hand from S8, S11 and S12, on both engines. The story: Alice (office)
opens SSH to web-1, web-1 opens HTTPS to an office server, app-1 opens MySQL to db-1; at t=10 a new
version of the topology applies.
"""

from __future__ import annotations

import copy
import csv
import json
import os

import pytest
import yaml

from sgdp.cli import main
from sgdp.topology.model import topology_from_data
from sgdp.pipeline.run import replay
from sgdp.pipeline.timeline import plan_change
from tests.framegen import tcp, write_capture

WEB, DB, APP, DB2 = "192.168.0.10", "192.168.0.20", "192.168.0.30", "192.168.0.40"
ALICE, OFFICE_SRV = "172.16.0.5", "172.16.0.20"


def v1() -> dict:
    return {
        "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]}],
        "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]}],
        "security_groups": [
            {"name": "Sg-Web", "rules": [
                {"id": "ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_ip_prefix": "172.16.0.0/24"},
                {"id": "out", "direction": "egress", "protocol": "tcp", "multiport": "443", "remote_ip_prefix": "0.0.0.0/0"}]},
            {"name": "Sg-Db", "rules": [
                {"id": "mysql", "direction": "ingress", "protocol": "tcp", "multiport": "3306", "remote_ip_prefix": "192.168.0.0/24"}]},
            {"name": "Sg-App", "rules": [{"id": "all-out", "direction": "egress", "remote_ip_prefix": "0.0.0.0/0"}]},
        ],
        "instances": [
            {"name": "web-1", "subnet": "Subnet-A", "ip": WEB, "security_groups": ["Sg-Web"]},
            {"name": "db-1", "subnet": "Subnet-A", "ip": DB, "security_groups": ["Sg-Db"]},
            {"name": "app-1", "subnet": "Subnet-A", "ip": APP, "security_groups": ["Sg-App"]},
        ],
    }


def v2_ssh_removed() -> dict:
    """Sg-Web loses the SSH rule and gains HTTPS in; the other groups are untouched."""
    d = v1()
    d["security_groups"][0]["rules"][0] = {"id": "https-in", "direction": "ingress", "protocol": "tcp", "multiport": "443"}
    return d


def v2_rule_added() -> dict:
    """Sg-Web keeps SSH and gains HTTPS in: still a rule change of Sg-Web."""
    d = v1()
    d["security_groups"][0]["rules"].append({"id": "https-in", "direction": "ingress", "protocol": "tcp", "multiport": "443"})
    return d


def v2_db_member_added() -> dict:
    """db-2 joins Sg-Db (a membership change); listed first, so every NIC index moves."""
    d = v1()
    d["instances"].insert(0, {"name": "db-2", "subnet": "Subnet-A", "ip": DB2, "security_groups": ["Sg-Db"]})
    return d


def story() -> list[dict]:
    return [
        tcp(ALICE, WEB, 40000, 22, "S", 1.0),            # 0 inbound-opened at web-1
        tcp(WEB, ALICE, 22, 40000, "SA", 1.1),           # 1
        tcp(WEB, OFFICE_SRV, 50000, 443, "S", 2.0),      # 2 outbound-opened at web-1
        tcp(APP, DB, 41000, 3306, "S", 3.0),             # 3 outbound at app-1, inbound-opened at db-1
        tcp(DB, APP, 3306, 41000, "SA", 3.1),            # 4
        # --- the new version applies at t=10 (clock >= at)
        tcp(ALICE, WEB, 40000, 22, "A", 10.0),           # 5
        tcp(WEB, ALICE, 22, 40000, "A", 10.1),           # 6
        tcp(OFFICE_SRV, WEB, 443, 50000, "SA", 11.0),    # 7
        tcp(APP, DB, 41000, 3306, "A", 12.0),            # 8
        tcp(DB, APP, 3306, 41000, "A", 12.1),            # 9
    ]


BEFORE = [
    ("allow", "rule", "web-1", "ingress", "Sg-Web", "ssh"),
    ("allow", "established", "web-1", "egress", "", ""),
    ("allow", "rule", "web-1", "egress", "Sg-Web", "out"),
    ("allow", "rule", "db-1", "ingress", "Sg-Db", "mysql"),
    ("allow", "established", "app-1", "ingress", "", ""),
]


def write(path, data) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


def run(tmp_path, capsys, engine_name, versions: list[tuple[float, dict]], specs=None, extra=()):
    """Replay the story with a timeline; returns (rows, summary, stderr)."""
    topo = write(tmp_path / "v1.yaml", v1())
    os.makedirs(tmp_path / "versions", exist_ok=True)
    timeline = [{"at": at, "topology": os.path.basename(write(tmp_path / "versions" / f"v{k + 2}.yaml", data))}
                for k, (at, data) in enumerate(versions)]
    tl = write(tmp_path / "versions" / "timeline.yaml", timeline)
    cap = write_capture(tmp_path / "story.pcap", specs or story())
    out = tmp_path / "out"
    rc = main(["replay", topo, cap, "-o", str(out), "--timeline", tl, "--engine", engine_name, "--no-progress", *extra])
    _, err = capsys.readouterr()
    assert rc == 0, err
    with open(out / "verdicts.csv", newline="") as fh:
        rows = [(r["verdict"], r["reason"], r["instance"], r["direction"], r["security_group"], r["rule"])
                for r in csv.DictReader(fh)]
    summary = json.loads((out / "summary.json").read_text())
    return rows, summary, err


def fast_fallback_expected(engine_name: str) -> bool:
    if engine_name != "fast":
        return False
    from sgdp.engine.fast import FastEngine

    return not hasattr(FastEngine, "retarget")


def test_inbound_entries_dropped_outbound_survive_unchanged_groups_keep(tmp_path, capsys, engine_name):
    rows, summary, err = run(tmp_path, capsys, engine_name, [(10.0, v2_ssh_removed())])
    assert rows[:5] == BEFORE  # before the change: version 1
    assert rows[5:] == [
        # Alice's SSH entry at web-1 was opened by inbound traffic: dropped; her next packet meets
        # the new ingress rules (no SSH rule: default deny) ...
        ("deny", "default", "web-1", "ingress", "", ""),
        # ... and web-1's reply meets its egress rules (only tcp/443 out): default deny.
        ("deny", "default", "web-1", "egress", "", ""),
        # web-1's own HTTPS connection was opened by outbound traffic: it survives.
        ("allow", "established", "web-1", "ingress", "", ""),
        # Sg-Db and Sg-App did not change: their entries survive.
        ("allow", "established", "db-1", "ingress", "", ""),
        ("allow", "established", "app-1", "ingress", "", ""),
    ]
    tl_dir = str(tmp_path / "versions")
    assert summary["versions"] == [
        {"at": None, "topology": str(tmp_path / "v1.yaml"), "packets": 5},
        {"at": 10.0, "topology": os.path.join(tl_dir, "v2.yaml"), "packets": 5},
    ]
    assert summary["packets"] == 10 and summary["allowed"] == 8 and summary["denied"] == 2
    if fast_fallback_expected(engine_name):
        assert "warning" in err and "reference engine" in err
        assert summary["engine"] == "reference"
    else:
        assert "warning" not in err


def test_dropped_entry_is_re_evaluated_under_the_new_rules(tmp_path, capsys, engine_name):
    rows, summary, _ = run(tmp_path, capsys, engine_name, [(10.0, v2_rule_added())])
    assert rows[:5] == BEFORE
    # Sg-Web changed (a rule was added): Alice's entry is dropped and her next packet is evaluated
    # again — the SSH rule still allows it (reason `rule`, not `established`), opening a new entry.
    assert rows[5] == ("allow", "rule", "web-1", "ingress", "Sg-Web", "ssh")
    assert rows[6] == ("allow", "established", "web-1", "egress", "", "")
    assert rows[7:] == [("allow", "established", "web-1", "ingress", "", ""),
                        ("allow", "established", "db-1", "ingress", "", ""),
                        ("allow", "established", "app-1", "ingress", "", "")]


def test_membership_change_drops_the_group_members_entries(tmp_path, capsys, engine_name):
    rows, summary, _ = run(tmp_path, capsys, engine_name, [(10.0, v2_db_member_added())])
    assert rows[:5] == BEFORE
    assert rows[5:] == [
        # Sg-Web did not change: entries follow web-1 by identity although its NIC index moved
        ("allow", "established", "web-1", "ingress", "", ""),
        ("allow", "established", "web-1", "egress", "", ""),
        ("allow", "established", "web-1", "ingress", "", ""),
        # Sg-Db's membership changed: db-1's inbound-opened entry is dropped, the ACK is evaluated
        # by the mysql rule again; the reply then finds the new entry
        ("allow", "rule", "db-1", "ingress", "Sg-Db", "mysql"),
        ("allow", "established", "app-1", "ingress", "", ""),
    ]


def test_unchanged_version_changes_nothing(tmp_path, capsys, engine_name):
    reordered = v1()
    reordered["instances"].reverse()
    rows, summary, _ = run(tmp_path, capsys, engine_name, [(10.0, reordered)])
    assert rows[:5] == BEFORE
    assert [r[:2] for r in rows[5:]] == [("allow", "established")] * 5
    assert [v["packets"] for v in summary["versions"]] == [5, 5]


def test_several_versions_passed_by_one_packet_apply_in_turn(tmp_path, capsys, engine_name):
    # v2 at 5 and back to v1 at 6: no packet between them; both changes drop Sg-Web's inbound entries.
    rows, summary, _ = run(tmp_path, capsys, engine_name, [(5.0, v2_ssh_removed()), (6.0, v1())])
    assert rows[5] == ("allow", "rule", "web-1", "ingress", "Sg-Web", "ssh")  # re-evaluated under v1 again
    assert rows[7] == ("allow", "established", "web-1", "ingress", "", "")
    assert [v["packets"] for v in summary["versions"]] == [5, 0, 5]
    assert [v["at"] for v in summary["versions"]] == [None, 5.0, 6.0]


def test_version_applies_from_the_dataplane_clock(tmp_path, capsys, engine_name):
    # A packet stamped earlier than the one before it is processed at the clock (S11), so once the
    # clock has passed `at`, the new version stays.
    specs = [tcp(ALICE, WEB, 40000, 22, "S", 1.0), tcp(ALICE, WEB, 40001, 22, "S", 10.5),
             tcp(ALICE, WEB, 40002, 22, "S", 2.0)]
    rows, summary, _ = run(tmp_path, capsys, engine_name, [(10.0, v2_ssh_removed())], specs=specs)
    assert [r[:2] for r in rows] == [("allow", "rule"), ("deny", "default"), ("deny", "default")]
    assert [v["packets"] for v in summary["versions"]] == [1, 2]


@pytest.mark.parametrize("batch_size", [1, 3, 4, 1000])
def test_batch_boundaries_do_not_matter(tmp_path, engine_name, batch_size):
    topo = write(tmp_path / "v1.yaml", v1())
    write(tmp_path / "v2.yaml", v2_ssh_removed())
    write(tmp_path / "v3.yaml", v1())
    tl = write(tmp_path / "tl.yaml", [{"at": 5.0, "topology": "v2.yaml"}, {"at": 11.5, "topology": "v3.yaml"}])
    cap = write_capture(tmp_path / "story.pcap", story())
    result = replay(topo, [cap], str(tmp_path / f"out{batch_size}"), engine_name=engine_name, timeline=tl,
                    batch_size=batch_size)
    assert [v["packets"] for v in result.summary["versions"]] == [5, 3, 2]
    with open(tmp_path / f"out{batch_size}" / "verdicts.csv", newline="") as fh:
        rows = [(r["verdict"], r["reason"], r["instance"]) for r in csv.DictReader(fh)]
    assert rows[5:8] == [("deny", "default", "web-1"), ("deny", "default", "web-1"), ("allow", "established", "web-1")]
    # at 11.5 Sg-Web changes back: web-1's entries were dropped again, db-1's and app-1's survive
    assert rows[8:] == [("allow", "established", "db-1"), ("allow", "established", "app-1")]


def test_summary_without_timeline_has_no_versions(tmp_path, engine_name):
    topo = write(tmp_path / "v1.yaml", v1())
    cap = write_capture(tmp_path / "story.pcap", story())
    result = replay(topo, [cap], str(tmp_path / "out"), engine_name=engine_name)
    assert "versions" not in result.summary


# ------------------------------------------------------------------------------- bad timelines


@pytest.mark.parametrize("content, needles", [
    ("{at: 10, topology: v2.yaml}", ["timeline.yaml", "non-empty list"]),
    ("[]", ["timeline.yaml", "non-empty list"]),
    ("[v2.yaml]", ["timeline.yaml", "[0]", "'v2.yaml'"]),
    ("[{at: soon, topology: v2.yaml}]", ["timeline.yaml", "[0].at", "'soon'"]),
    ("[{at: true, topology: v2.yaml}]", ["timeline.yaml", "[0].at", "True"]),
    ("[{at: .nan, topology: v2.yaml}]", ["timeline.yaml", "[0].at", "nan"]),
    ("[{at: 20, topology: v2.yaml}, {at: 10, topology: v2.yaml}]", ["timeline.yaml", "[1].at", "10", "later"]),
    ("[{at: 20, topology: v2.yaml}, {at: 20, topology: v2.yaml}]", ["timeline.yaml", "[1].at", "20"]),
    ("[{at: 10}]", ["timeline.yaml", "[0].topology", "required"]),
    ("[{at: 10, topology: v2.yaml, when: now}]", ["timeline.yaml", "[0].when", "unknown key"]),
    ("[{at: 10, topology: missing.yaml}]", ["timeline.yaml", "[0].topology", "'missing.yaml'", "no such"]),
    ("[{at: 10, topology: 42}]", ["timeline.yaml", "[0].topology", "42"]),
    ("[{at: 10, topology: bad.yaml}]", ["bad.yaml", "sideways"]),
    ("[{at: 10, topology: v2.yaml}", ["timeline.yaml", "invalid YAML"]),
])
def test_bad_timeline_exit_2(tmp_path, capsys, content, needles):
    topo = write(tmp_path / "v1.yaml", v1())
    write(tmp_path / "v2.yaml", v2_ssh_removed())
    (tmp_path / "bad.yaml").write_text("version: 1\nsecurity_groups: [{name: Sg, rules: [{direction: sideways}]}]\n")
    (tmp_path / "timeline.yaml").write_text(content)
    cap = write_capture(tmp_path / "story.pcap", story())
    rc = main(["replay", topo, cap, "-o", str(tmp_path / "out"), "--timeline", str(tmp_path / "timeline.yaml"),
               "--engine", "reference", "--no-progress"])
    _, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("sgdp: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err


# ------------------------------------------------------------------------------- what changes


def test_plan_change_groups_and_nics():
    base = topology_from_data(v1(), "v1.yaml")
    same = plan_change(base, topology_from_data(v1(), "v1b.yaml"))
    assert same.changed_groups == set() and same.drop_sg == set() and same.drop_acl == set()
    assert same.nic_map == {0: 0, 1: 1, 2: 2}

    moved = topology_from_data(v2_db_member_added(), "v2.yaml")
    ch = plan_change(base, moved)
    assert ch.changed_groups == {"Sg-Db"}
    assert ch.nic_map == {0: 1, 1: 2, 2: 3}  # web-1, db-1, app-1 follow their identity
    assert ch.drop_sg == {0, 2}  # db-2 (new) and db-1, in the new topology's indexes

    desc = v1()
    desc["security_groups"][0]["rules"][0]["description"] = "SSH from the office"
    assert plan_change(base, topology_from_data(desc, "d.yaml")).changed_groups == set()

    # a group used as a remote changes members: the rule's meaning changes, so does its group
    remote = v1()
    remote["security_groups"][1]["rules"][0] = {"id": "mysql", "direction": "ingress", "protocol": "tcp",
                                                "multiport": "3306", "remote_group_id": "Sg-App"}
    before = topology_from_data(remote, "r1.yaml")
    after_data = copy.deepcopy(remote)
    after_data["instances"].append({"name": "app-2", "subnet": "Subnet-A", "ip": "192.168.0.31", "security_groups": ["Sg-App"]})
    ch = plan_change(before, topology_from_data(after_data, "r2.yaml"))
    assert ch.changed_groups == {"Sg-App", "Sg-Db"}

    # a removed instance: its NIC is gone from the mapping
    gone = v1()
    del gone["instances"][1]
    ch = plan_change(base, topology_from_data(gone, "g.yaml"))
    assert ch.nic_map == {0: 0, 2: 1} and ch.changed_groups == {"Sg-Db"}


def test_plan_change_network_acls():
    with_acl = v1()
    with_acl["vpcs"][0]["subnets"][0]["network_acl"] = "acl-1"
    with_acl["network_acls"] = [{"name": "acl-1", "inbound_rules": [{"action": "allow"}], "outbound_rules": [{"action": "allow"}]}]
    base = topology_from_data(with_acl, "a.yaml")
    changed = copy.deepcopy(with_acl)
    changed["network_acls"][0]["inbound_rules"].insert(0, {"action": "deny", "protocol": "tcp", "destination_port": "22"})
    ch = plan_change(base, topology_from_data(changed, "b.yaml"))
    assert ch.changed_acls == {"acl-1"} and ch.drop_acl == {0, 1, 2} and ch.drop_sg == set()
    unbound = copy.deepcopy(with_acl)
    del unbound["vpcs"][0]["subnets"][0]["network_acl"]
    ch = plan_change(base, topology_from_data(unbound, "c.yaml"))
    assert ch.changed_acls == set() and ch.drop_acl == {0, 1, 2}
