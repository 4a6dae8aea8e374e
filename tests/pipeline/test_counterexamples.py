"""Counterexample captures (issue 5): `sgdp test --save-failures DIR` and
`sgdp replay --expect FILE --save-failures DIR`, and the frame encoder they use (sgdp.capture.frames).

Every file written is read back with sgdp's own reader and, when installed, with scapy (checksums
recomputed by scapy must equal the ones written).
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdp.cli import main
from sgdp.capture.frames import DEFAULT_SRC_MAC, checksum, packet_to_frame, timestamp
from sgdp.capture.ingest import read_batches
from sgdp.capture.packet import Packet
from sgdp.pipeline.split import SplitWriter
from sgdp.testing.scenario import packet_from_spec
from tests.framegen import handshake, tcp, write_capture

WEB, ALICE, BOB = "192.168.0.10", "172.16.0.5", "172.16.0.9"


def topology(ssh_prefix="172.16.0.0/24") -> dict:
    return {
        "vpcs": [{"name": "VPC-X", "cidr": "192.168.0.0/16", "subnets": [
            {"name": "Subnet-A", "cidr": "192.168.0.0/24", "ipv6_cidr": "2407:c080:802:469::/64"}]}],
        "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]}],
        "security_groups": [{"name": "Sg-Web", "rules": [
            {"id": "ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_ip_prefix": ssh_prefix},
            {"id": "web", "direction": "ingress", "protocol": "tcp", "multiport": "80"}]}],
        "instances": [{"name": "web-1", "subnet": "Subnet-A", "ip": WEB, "security_groups": ["Sg-Web"]}],
    }


def read_back(path) -> list[Packet]:
    return [p for batch in read_batches([str(path)]) for p in batch]


def raw_frames(path) -> list[bytes]:
    out = []
    with open(path, "rb") as fh:
        for batch in read_batches([str(path)]):
            for i in range(len(batch)):
                fh.seek(int(batch.offset[i]))
                out.append(fh.read(int(batch.caplen[i])))
    return out


def scapy_check(path, count):
    """scapy reads the file and agrees with every checksum written."""
    rdpcap = pytest.importorskip("scapy.all").rdpcap  # scapy.all: the dissectors, not raw bytes
    packets = rdpcap(str(path))
    checked = 0
    assert len(packets) == count
    for pkt in packets:
        raw = bytes(pkt)
        layer = pkt
        while layer is not None and layer.name != "NoPayload":
            name = next((f for f in ("chksum", "cksum") if f in layer.fields), None)
            if name and not layer.name.endswith(" in ICMP"):  # a quoted header's transport checksum is not checked
                written = getattr(layer, name)
                clone = pkt.__class__(raw)
                delattr(clone.getlayer(layer.__class__), name)
                rebuilt = getattr(clone.__class__(bytes(clone)).getlayer(layer.__class__), name)
                assert rebuilt == written, f"{layer.name} checksum {written:#x}, scapy computes {rebuilt:#x}"
                checked += 1
            layer = layer.payload if layer.payload else None
    assert checked >= count // 2  # scapy dissected the frames (not raw bytes)
    return packets


# ------------------------------------------------------------------------------------ sgdp.capture.frames


SPECS = [
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "tcp", "sport": 1234, "dport": 22, "flags": "SA", "time": 1.5},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "tcp", "sport": 1234, "dport": 22, "flags": "FPA", "time": 1.25},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "udp", "sport": 53, "dport": 5353, "time": 2.000001},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp", "icmp_id": 77, "time": 3},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp", "icmp_type": 0, "icmp_id": 77, "time": 3},
    {"src": "2407:c080::1", "dst": "2407:c080::2", "proto": "icmpv6", "icmp_id": 9, "time": 3},
    {"src": "2407:c080::1", "dst": "2407:c080::2", "proto": "tcp", "dport": 443, "flags": "PA", "time": 3},
    {"src": "2407:c080::1", "dst": "2407:c080::2", "proto": "udp", "dport": 443, "time": 3},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp", "icmp_type": 3, "icmp_code": 3, "time": 4,
     "inner": {"src": "10.0.0.2", "dst": "10.0.0.1", "proto": "udp", "sport": 5, "dport": 53}},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "icmp", "icmp_type": 11, "icmp_code": 0, "time": 4,
     "inner": {"src": "10.0.0.2", "dst": "10.0.0.1", "proto": "icmp", "icmp_id": 44}},
    {"src": "2407:c080::1", "dst": "2407:c080::2", "proto": "icmpv6", "icmp_type": 1, "icmp_code": 4, "time": 4,
     "inner": {"src": "2407:c080::2", "dst": "2407:c080::1", "proto": "tcp", "sport": 5, "dport": 80}},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "gre", "time": 5},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": 50, "time": 5},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "udp", "dport": 53, "more_fragments": True, "frag_id": 7, "time": 6},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "udp", "dport": 53, "frag_offset": 3, "frag_id": 7, "time": 6},
    {"src": "2407:c080::1", "dst": "2407:c080::2", "proto": "udp", "dport": 53, "more_fragments": True, "frag_id": 70000, "time": 6},
    {"src": "2407:c080::1", "dst": "2407:c080::2", "proto": "udp", "dport": 53, "frag_offset": 3, "frag_id": 70000, "time": 6},
    {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": "tcp", "dport": 22, "src_mac": "fa:16:3e:00:00:01", "time": 7},
]


def expected_read_back(pkt: Packet) -> Packet:
    """What the reader gives for an encoded packet (sgdp.capture.frames docstring)."""
    want = dataclasses.replace(pkt)
    if want.src_mac < 0:
        want.src_mac = DEFAULT_SRC_MAC
    if want.frag_offset:
        want.sport = want.dport = 0
    if want.proto in (1, 58) and want.icmp_type not in (0, 8, 128, 129):
        want.icmp_id = 0
    return want


def write_packets(path, pkts):
    out = SplitWriter(str(path))
    for p in pkts:
        frame = packet_to_frame(p)
        out.add(1, *timestamp(p.ts), len(frame), frame)
    out.close()


def test_frames_read_back_as_the_same_packets(tmp_path):
    pkts = [packet_from_spec(s, "p", "t") for s in SPECS]
    write_packets(tmp_path / "f.pcap", pkts)
    got = read_back(tmp_path / "f.pcap")
    assert got == [expected_read_back(p) for p in pkts]
    scapy_check(tmp_path / "f.pcap", len(pkts))


def test_frames_checksums_by_hand():
    frame = packet_to_frame(packet_from_spec(SPECS[0], "p", "t"))
    ip = frame[14:34]
    assert checksum(ip) == 0  # a header with its checksum sums to 0xffff
    segment = frame[34:]
    pseudo = ip[12:20] + bytes([0, 6]) + len(segment).to_bytes(2, "big")
    assert checksum(pseudo + segment) == 0


def test_frames_scapy_fields(tmp_path):
    scapy_all = pytest.importorskip("scapy.all")
    pkts = [packet_from_spec(s, "p", "t") for s in SPECS[:3]]
    write_packets(tmp_path / "f.pcap", pkts)
    got = scapy_check(tmp_path / "f.pcap", 3)
    assert got[0][scapy_all.TCP].sport == 1234 and got[0][scapy_all.TCP].dport == 22
    assert str(got[0][scapy_all.TCP].flags) == "SA"
    assert got[0][scapy_all.IP].src == "10.0.0.1" and got[0][scapy_all.IP].dst == "10.0.0.2"
    assert float(got[0].time) == pytest.approx(1.5)
    assert got[2][scapy_all.UDP].dport == 5353


addresses4 = st.integers(1, (1 << 32) - 1)
addresses6 = st.integers(1, (1 << 128) - 1)


@st.composite
def packets(draw):
    l3 = draw(st.sampled_from([4, 6]))
    addr = addresses4 if l3 == 4 else addresses6
    proto = draw(st.sampled_from([6, 17, 1 if l3 == 4 else 58, 47, 132]))
    pkt = Packet(ts=draw(st.integers(0, 2_000_000_000)) + draw(st.integers(0, 999_999)) / 1e6, l3=l3,
                 src=draw(addr), dst=draw(addr), proto=proto)
    if proto in (6, 17):
        pkt.sport, pkt.dport = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    if proto == 6:
        pkt.tcp_flags = draw(st.integers(0, 255))
    if proto in (1, 58):
        pkt.icmp_type = draw(st.sampled_from([8, 0] if proto == 1 else [128, 129]))
        pkt.icmp_code = 0
        pkt.icmp_id = draw(st.integers(0, 65535))
    return pkt


@settings(max_examples=200, deadline=None)
@given(st.lists(packets(), min_size=1, max_size=8))
def test_frames_round_trip_property(tmp_path_factory, pkts):
    path = tmp_path_factory.mktemp("rt") / "f.pcap"
    write_packets(path, pkts)
    got = read_back(path)
    want = [expected_read_back(p) for p in pkts]
    for g, w in zip(got, want):
        assert abs(g.ts - w.ts) < 1e-6
        g.ts = w.ts
    assert got == want


# ------------------------------------------------------------------------ sgdp test --save-failures


def scenario(tmp_path, name="web.sgdp.yaml", steps=None, sub="."):
    d = tmp_path / sub
    d.mkdir(exist_ok=True)
    (d / "topology.yaml").write_text(yaml.safe_dump(topology()))
    path = d / name
    path.write_text(yaml.safe_dump({"name": "SSH", "topology": "topology.yaml", "steps": steps}, sort_keys=False))
    return str(path)


def packet_step(spec, expect):
    return {"packet": spec, "expect": expect}


HANDSHAKE = handshake(ALICE, WEB, 40000, 22, 1.0)


def failing_steps():
    return [
        packet_step(HANDSHAKE[0], "allow"),                                        # SYN
        packet_step(tcp(BOB, WEB, 5000, 80, "S", 1.05), "allow"),                 # another flow
        packet_step(HANDSHAKE[1], {"verdict": "allow", "reason": "established"}),  # SYN-ACK
        packet_step(HANDSHAKE[2], {"verdict": "deny"}),                            # ACK: allowed -> FAILS
        packet_step(tcp(ALICE, WEB, 40000, 22, "PA", 1.3), "allow"),              # after the failure
        packet_step(tcp(BOB, WEB, 5001, 3306, "S", 1.4), {"verdict": "allow"}),   # FAILS alone (denied)
    ]


def test_test_save_failures_writes_the_failing_flows(tmp_path, capsys, engine_name):
    path = scenario(tmp_path, steps=failing_steps())
    out_dir = tmp_path / "failures"
    rc = main(["test", path, "--save-failures", str(out_dir), "--engine", engine_name])
    out, _ = capsys.readouterr()
    assert rc == 1
    pcap = out_dir / "web.pcap"
    assert f"written to {pcap}" in out
    got = read_back(pcap)
    # the SYN and SYN-ACK before the failing ACK, the ACK, and the lone failing SYN to 3306 — not
    # Bob's port-80 flow, nor Alice's packet after her last failure
    steps = failing_steps()
    want = [packet_from_spec(steps[i]["packet"], "p", "t") for i in (0, 2, 3, 5)]
    assert got == [expected_read_back(p) for p in want]
    assert [p.ts for p in got] == pytest.approx([1.0, 1.1, 1.2, 1.4])
    scapy_check(pcap, 4)


def test_test_save_failures_passing_scenario_writes_nothing(tmp_path, capsys, engine_name):
    path = scenario(tmp_path, steps=[packet_step(HANDSHAKE[0], "allow")])
    rc = main(["test", path, "--save-failures", str(tmp_path / "failures"), "--engine", engine_name])
    assert rc == 0
    assert not (tmp_path / "failures").exists() or not os.listdir(tmp_path / "failures")


def test_test_save_failures_names_are_unique(tmp_path, capsys):
    a = scenario(tmp_path, steps=failing_steps(), sub="a")
    b = scenario(tmp_path, steps=failing_steps(), sub="b")
    rc = main(["test", a, b, "--save-failures", str(tmp_path / "f"), "--engine", "reference"])
    assert rc == 1
    assert sorted(os.listdir(tmp_path / "f")) == ["web-2.pcap", "web.pcap"]


def test_test_save_failures_capture_step_copies_the_frames(tmp_path, capsys, engine_name):
    # the capture: Alice's handshake to 22 (allowed) and Bob's to 3306 (denied); every packet is
    # expected allowed, so Bob's three packets fail and are saved as the original frames, together
    # with the crafted packet step of Bob's flow before the capture.
    cap = write_capture(tmp_path / "c.pcap", HANDSHAKE + handshake(BOB, WEB, 5001, 3306, 2.0))
    steps = [packet_step(tcp(BOB, WEB, 5001, 3306, "S", 0.5), "deny"),
             {"capture": "c.pcap", "expect": "allow"}]
    path = scenario(tmp_path, steps=steps)
    rc = main(["test", path, "--save-failures", str(tmp_path / "f"), "--engine", engine_name])
    assert rc == 1
    frames = raw_frames(tmp_path / "f" / "web.pcap")
    original = raw_frames(cap)
    assert frames[0] == packet_to_frame(packet_from_spec(steps[0]["packet"], "p", "t"))
    assert frames[1:] == original[3:]
    scapy_check(tmp_path / "f" / "web.pcap", 4)


# --------------------------------------------------------------- replay --expect --save-failures


def test_replay_expect_save_failures(tmp_path, capsys, engine_name):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(topology()))
    new.write_text(yaml.safe_dump(topology("172.16.0.5/32")))  # Bob loses SSH
    specs = (handshake(ALICE, WEB, 40000, 22, 1.0) + [tcp(BOB, WEB, 5555, 22, "S", 2.0)]
             + [tcp(BOB, WEB, 5556, 80, "S", 2.05)]        # Bob's web: unchanged, interleaved
             + [tcp(WEB, BOB, 22, 5555, "SA", 2.1), tcp(BOB, WEB, 5555, 22, "A", 2.2)]
             + [tcp(ALICE, WEB, 40000, 22, "PA", 3.0)])
    cap = write_capture(tmp_path / "t.pcap", specs)
    assert main(["replay", str(old), cap, "-o", str(tmp_path / "before"), "--engine", engine_name, "--no-progress"]) == 0
    capsys.readouterr()
    rc = main(["replay", str(new), cap, "-o", str(tmp_path / "after"), "--engine", engine_name, "--no-progress",
               "--expect", str(tmp_path / "before" / "verdicts.csv"), "--save-failures", str(tmp_path / "cx")])
    _, err = capsys.readouterr()
    assert rc == 1
    path = tmp_path / "cx" / "differences.pcap"
    assert f"3 packet(s) of the differing flows written to {path}" in err
    original = raw_frames(cap)
    assert raw_frames(path) == [original[3], original[5], original[6]]
    got = read_back(path)
    assert [p.ts for p in got] == pytest.approx([2.0, 2.1, 2.2])
    scapy_check(path, 3)


def test_replay_save_failures_earlier_packets_of_the_flow(tmp_path, capsys, engine_name):
    # Only the third packet of Alice's flow differs (the expected file is edited): the whole
    # handshake comes along.
    topo = tmp_path / "t.yaml"
    topo.write_text(yaml.safe_dump(topology()))
    cap = write_capture(tmp_path / "t.pcap", handshake(ALICE, WEB, 40000, 22, 1.0) + handshake(BOB, WEB, 1, 80, 2.0))
    assert main(["replay", str(topo), cap, "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    lines = (tmp_path / "a" / "verdicts.csv").read_text().splitlines()
    lines[3] = lines[3].replace("allow,established", "deny,default")
    (tmp_path / "exp.csv").write_text("\n".join(lines) + "\n")
    rc = main(["replay", str(topo), cap, "-o", str(tmp_path / "b"), "--engine", engine_name, "--no-progress",
               "--expect", str(tmp_path / "exp.csv"), "--save-failures", str(tmp_path / "cx")])
    assert rc == 1
    assert raw_frames(tmp_path / "cx" / "differences.pcap") == raw_frames(cap)[:3]


def test_replay_save_failures_nothing_differs(tmp_path, capsys, engine_name):
    topo = tmp_path / "t.yaml"
    topo.write_text(yaml.safe_dump(topology()))
    cap = write_capture(tmp_path / "t.pcap", HANDSHAKE)
    assert main(["replay", str(topo), cap, "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    rc = main(["replay", str(topo), cap, "-o", str(tmp_path / "b"), "--engine", engine_name, "--no-progress",
               "--expect", str(tmp_path / "a" / "verdicts.csv"), "--save-failures", str(tmp_path / "cx")])
    assert rc == 0
    assert not (tmp_path / "cx" / "differences.pcap").exists()


def test_replay_save_failures_needs_expect(tmp_path, capsys):
    topo = tmp_path / "t.yaml"
    topo.write_text(yaml.safe_dump(topology()))
    cap = write_capture(tmp_path / "t.pcap", HANDSHAKE)
    rc = main(["replay", str(topo), cap, "-o", str(tmp_path / "a"), "--no-progress", "--save-failures", str(tmp_path / "cx")])
    _, err = capsys.readouterr()
    assert rc == 2 and "--save-failures needs --expect" in err and len(err.splitlines()) == 1
