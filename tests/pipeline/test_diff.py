"""`sgdp diff OLD NEW CAPTURE...` (SPEC §5): flows whose verdict a topology change changes.

Expectations are worked out by hand from SPEC S8/S11 and §5 (flows, JSON keys, order, exit codes),
on both engines.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from sgdp.cli import main
from sgdp.pipeline.flows import FlowTable
from sgdp.capture.packet import PacketBatch
from sgdp.testing.scenario import packet_from_spec
from tests.framegen import handshake, tcp, write_capture

WEB, DB = "192.168.0.10", "192.168.0.20"
ALICE, BOB = "172.16.0.5", "172.16.0.9"  # office hosts
CHANGED_KEYS = ["src", "dst", "proto", "sport", "dport", "first_ts", "last_ts", "packets", "changed_packets", "old", "new"]


def topology(office_prefix: str, ssh_id: str = "ssh") -> dict:
    """web-1 in Sg-Web: ssh (tcp 22), dns (udp 53) and ping (icmp) from ``office_prefix``; web (tcp 80)
    from anywhere. No egress rules: replies pass only as established."""
    return {
        "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "192.168.0.0/24"}]}],
        "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]}],
        "security_groups": [{"name": "Sg-Web", "rules": [
            {"id": ssh_id, "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_ip_prefix": office_prefix},
            {"id": "dns", "direction": "ingress", "protocol": "udp", "multiport": "53", "remote_ip_prefix": office_prefix},
            {"id": "ping", "direction": "ingress", "protocol": "icmp", "remote_ip_prefix": office_prefix},
            {"id": "web", "direction": "ingress", "protocol": "tcp", "multiport": "80"},
        ]}],
        "instances": [{"name": "web-1", "subnet": "Subnet-A", "ip": WEB, "security_groups": ["Sg-Web"]}],
    }


@pytest.fixture
def topos(tmp_path):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(topology("172.16.0.0/24")))
    new.write_text(yaml.safe_dump(topology("172.16.0.5/32")))  # only Alice keeps ssh, dns and ping
    return str(old), str(new)


def udp(src, dst, sport, dport, time):
    return {"src": src, "dst": dst, "proto": "udp", "sport": sport, "dport": dport, "time": time}


def echo(src, dst, ident, time, reply=False):
    return {"src": src, "dst": dst, "proto": "icmp", "icmp_type": 0 if reply else 8, "icmp_id": ident, "time": time}


def traffic() -> list[dict]:
    return [
        udp(BOB, WEB, 5353, 53, 0.5), udp(WEB, BOB, 53, 5353, 0.6),          # G: Bob's DNS: 2 of 2 change
        *handshake(ALICE, WEB, 40000, 22, 1.0),                              # A: Alice's SSH: unchanged
        *handshake(BOB, WEB, 5555, 22, 2.0), tcp(BOB, WEB, 5555, 22, "PA", 2.3),  # B: Bob's SSH: 4 of 4
        *handshake(BOB, WEB, 5556, 80, 3.0),                                 # C: Bob's web: unchanged
        echo(BOB, WEB, 7, 4.0), echo(WEB, BOB, 7, 4.1, reply=True),          # D: Bob's ping: 2 of 2
        echo(ALICE, WEB, 8, 5.0), echo(WEB, ALICE, 8, 5.1, reply=True),      # E: Alice's ping: unchanged
    ]


def run_diff(capsys, *args, engine=None):
    rc = main(["diff", *map(str, args), *(["--engine", engine] if engine else [])])
    out, err = capsys.readouterr()
    return rc, out, err


def diff_json(capsys, *args, engine=None):
    rc, out, err = run_diff(capsys, *args, "--json", engine=engine)
    doc = json.loads(out)
    assert list(doc) == ["flows", "changed"]
    for item in doc["changed"]:
        assert list(item) == CHANGED_KEYS
        assert list(item["old"]) == list(item["new"]) == ["verdict", "reason", "security_group", "rule"]
    return rc, doc, err


DENY_DEFAULT = {"verdict": "deny", "reason": "default", "security_group": None, "rule": None}


def test_diff_json_flows_order_and_rows(tmp_path, topos, capsys, engine_name):
    cap = write_capture(tmp_path / "t.pcap", traffic())
    rc, doc, _ = diff_json(capsys, *topos, cap, engine=engine_name)
    assert rc == 0
    assert doc["flows"] == 6
    got = doc["changed"]
    assert [(c["proto"], c["sport"], c["dport"]) for c in got] == [("tcp", 5555, 22), ("udp", 5353, 53), ("icmp", 7, None)]
    ssh, dns, ping = got
    # B: SYN allowed by ssh, then SYN-ACK/ACK/data established under OLD; under NEW the SYN has no
    # rule (default deny), the SYN-ACK has no entry and web-1 has no egress rule, the rest no entry.
    assert ssh == {"src": BOB, "dst": WEB, "proto": "tcp", "sport": 5555, "dport": 22,
                   "first_ts": pytest.approx(2.0), "last_ts": pytest.approx(2.3), "packets": 4, "changed_packets": 4,
                   "old": {"verdict": "allow", "reason": "rule", "security_group": "Sg-Web", "rule": "ssh"},
                   "new": DENY_DEFAULT}
    # ties on changed_packets (2) are ordered by first_ts: DNS at 0.5 before ping at 4.0
    assert dns == {"src": BOB, "dst": WEB, "proto": "udp", "sport": 5353, "dport": 53,
                   "first_ts": pytest.approx(0.5), "last_ts": pytest.approx(0.6), "packets": 2, "changed_packets": 2,
                   "old": {"verdict": "allow", "reason": "rule", "security_group": "Sg-Web", "rule": "dns"},
                   "new": DENY_DEFAULT}
    # an echo flow: request and reply with the same identifier; sport carries the identifier
    assert ping == {"src": BOB, "dst": WEB, "proto": "icmp", "sport": 7, "dport": None,
                    "first_ts": pytest.approx(4.0), "last_ts": pytest.approx(4.1), "packets": 2, "changed_packets": 2,
                    "old": {"verdict": "allow", "reason": "rule", "security_group": "Sg-Web", "rule": "ping"},
                    "new": DENY_DEFAULT}


def test_diff_old_new_describe_first_differing_packet(tmp_path, topos, capsys, engine_name):
    # Compared the other way round (OLD = the narrow topology): a mid-stream flow of Bob.
    old, new = topos
    specs = [tcp(BOB, WEB, 6000, 22, "A", 1.0),      # mid-stream packet: old allows (loose pickup), new denies
             tcp(WEB, BOB, 22, 6000, "A", 1.1)]      # reply: old established, new denied at egress
    cap = write_capture(tmp_path / "t.pcap", specs)
    rc, doc, _ = diff_json(capsys, new, old, cap, engine=engine_name)  # reversed: NEW allows what OLD denied
    assert rc == 0
    (flow,) = doc["changed"]
    assert flow["changed_packets"] == 2 and flow["packets"] == 2
    assert flow["old"] == DENY_DEFAULT
    assert flow["new"] == {"verdict": "allow", "reason": "rule", "security_group": "Sg-Web", "rule": "ssh"}


def test_diff_fail_on_change_exit_codes(tmp_path, topos, capsys, engine_name):
    cap = write_capture(tmp_path / "t.pcap", traffic())
    rc, _, _ = run_diff(capsys, *topos, cap, "--fail-on-change", engine=engine_name)
    assert rc == 1
    rc, _, _ = run_diff(capsys, *topos, cap, engine=engine_name)
    assert rc == 0
    # the same topology on both sides: nothing changes, exit 0 even with --fail-on-change
    rc, doc, _ = diff_json(capsys, topos[0], topos[0], cap, "--fail-on-change", engine=engine_name)
    assert rc == 0 and doc == {"flows": 6, "changed": []}


def test_diff_only_the_verdict_counts(tmp_path, capsys, engine_name):
    """A packet allowed by another rule (here: the same rule renamed) is not a change."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(topology("172.16.0.0/24")))
    new.write_text(yaml.safe_dump(topology("172.16.0.0/24", ssh_id="ssh-office")))
    cap = write_capture(tmp_path / "t.pcap", handshake(ALICE, WEB, 40000, 22, 1.0))
    rc, doc, _ = diff_json(capsys, old, new, cap, "--fail-on-change", engine=engine_name)
    assert rc == 0 and doc == {"flows": 1, "changed": []}


def test_diff_icmp_error_belongs_to_the_flow_it_quotes(tmp_path, topos, capsys, engine_name):
    # OLD: the query is allowed (dns), web-1's port-unreachable is `related` at its egress.
    # NEW: the query is denied; the error has no tracked connection and web-1 has no egress rule.
    specs = [udp(BOB, WEB, 5353, 53, 1.0),
             {"src": WEB, "dst": BOB, "proto": "icmp", "icmp_type": 3, "icmp_code": 3, "time": 1.1,
              "inner": {"src": BOB, "dst": WEB, "proto": "udp", "sport": 5353, "dport": 53}}]
    cap = write_capture(tmp_path / "t.pcap", specs)
    rc, doc, _ = diff_json(capsys, *topos, cap, engine=engine_name)
    assert doc["flows"] == 1
    (flow,) = doc["changed"]
    assert (flow["proto"], flow["src"], flow["sport"], flow["dport"]) == ("udp", BOB, 5353, 53)
    assert flow["packets"] == flow["changed_packets"] == 2


def test_diff_fragments_belong_to_their_datagram(tmp_path, topos, capsys, engine_name):
    specs = [{**udp(BOB, WEB, 5353, 53, 1.0), "more_fragments": True, "frag_id": 9},
             {**udp(BOB, WEB, 5353, 53, 1.0), "frag_offset": 185, "frag_id": 9}]
    cap = write_capture(tmp_path / "t.pcap", specs)
    rc, doc, _ = diff_json(capsys, *topos, cap, engine=engine_name)
    assert doc["flows"] == 1
    (flow,) = doc["changed"]
    assert (flow["sport"], flow["dport"], flow["packets"], flow["changed_packets"]) == (5353, 53, 2, 2)


def test_diff_text_table(tmp_path, topos, capsys, engine_name):
    cap = write_capture(tmp_path / "t.pcap", traffic())
    rc, out, _ = run_diff(capsys, *topos, cap, engine=engine_name)
    lines = out.splitlines()
    assert lines[0].startswith("16 packets in 6 flows; 3 flow(s) change verdict")
    assert "CHANGED" in lines[1] and "OLD" in lines[1] and "NEW" in lines[1]
    assert "4/4" in lines[2] and f"tcp {BOB}:5555 -> {WEB}:22" in lines[2]
    assert "allow (rule Sg-Web/ssh)" in lines[2] and "deny (default)" in lines[2]
    assert f"icmp {BOB} -> {WEB} id 7" in lines[4]


def test_diff_errors_exit_2(tmp_path, topos, capsys):
    rc, _, err = run_diff(capsys, *topos, tmp_path / "missing.pcap")
    assert rc == 2 and err.startswith("sgdp: error: ") and "missing.pcap" in err and len(err.splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsecurity_groups: [{name: Sg, rules: [{direction: sideways}]}]\n")
    cap = write_capture(tmp_path / "t.pcap", traffic())
    rc, _, err = run_diff(capsys, topos[0], bad, cap)
    assert rc == 2 and "bad.yaml" in err and "sideways" in err and "Traceback" not in err
    rc, _, err = run_diff(capsys, topos[0])
    assert rc == 2 and err.startswith("sgdp: error: ")


def test_diff_corrupt_capture_reports_then_fails(tmp_path, topos, capsys):
    cap = write_capture(tmp_path / "t.pcap", traffic())
    with open(cap, "ab") as fh:
        fh.write(b"\x00" * 8 + b"\xff\xff\xff\x7f" + b"\x00" * 4)  # a record claiming 2 GB
    rc, out, err = run_diff(capsys, *topos, cap, "--json")
    assert rc == 2 and "byte offset" in err
    assert json.loads(out)["flows"] == 6  # the packets before the corruption were compared and reported


# ------------------------------------------------------------------------------------ flow keys


def flow_ids(specs):
    table = FlowTable()
    pkts = [packet_from_spec(s, "p", "t") for s in specs]
    return table.assign(PacketBatch.from_packets(pkts).columns).tolist(), table


def test_flow_keys_by_protocol():
    ids, table = flow_ids([
        tcp(BOB, WEB, 5555, 22, "S", 1), tcp(WEB, BOB, 22, 5555, "SA", 1),   # one TCP flow, both ways
        tcp(BOB, WEB, 5556, 22, "S", 1),                                   # another source port
        udp(BOB, WEB, 5555, 22, 1),                                        # UDP is another flow
        echo(BOB, WEB, 1, 1), echo(WEB, BOB, 1, 1, reply=True), echo(BOB, WEB, 2, 1),  # echo ids
        {"src": BOB, "dst": WEB, "proto": "gre", "time": 1}, {"src": WEB, "dst": BOB, "proto": "gre", "time": 1},
        {"src": "2407:c080::1", "dst": "2407:c080::2", "proto": "tcp", "sport": 1, "dport": 2, "time": 1},
        {"src": "2407:c080::2", "dst": "2407:c080::1", "proto": "tcp", "sport": 2, "dport": 1, "time": 1},
    ])
    assert ids == [0, 0, 1, 2, 3, 3, 4, 5, 5, 6, 6]
    first = table.flows[0]
    assert (first.src, first.sport, first.dport, first.packets) == (int.from_bytes(bytes([172, 16, 0, 9]), "big"), 5555, 22, 2)
    assert table.flows[5].sport is None and table.flows[5].dport is None


def test_flow_table_across_batches():
    table = FlowTable()
    a = PacketBatch.from_packets([packet_from_spec(tcp(BOB, WEB, 1, 2, "S", 1.0), "p", "t")])
    b = PacketBatch.from_packets([packet_from_spec(tcp(WEB, BOB, 2, 1, "SA", 7.5), "p", "t")])
    assert table.assign(a.columns).tolist() == [0]
    assert table.assign(b.columns).tolist() == [0]
    assert table.flows[0].packets == 2 and table.flows[0].first_ts == 1.0 and table.flows[0].last_ts == 7.5
    assert isinstance(table.assign(a.columns), np.ndarray)


def test_unique_matches_numpy():
    from sgdp.pipeline.flows import KEY_DTYPE, _unique

    rng = np.random.default_rng(5)
    keys = np.zeros(5000, KEY_DTYPE)
    for name in KEY_DTYPE.names:
        keys[name] = rng.integers(0, 3, len(keys))
    uniq, first, inverse = _unique(keys)
    want_u, want_first, want_inv = np.unique(keys, return_index=True, return_inverse=True)
    assert uniq.tolist() == want_u.tolist()
    assert first.tolist() == want_first.tolist()
    assert inverse.tolist() == want_inv.reshape(-1).tolist()
