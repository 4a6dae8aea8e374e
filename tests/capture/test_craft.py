"""sgdp.capture.craft: scapy helpers to craft packets and captures, and the scapy-based slow reader that
cross-checks the compiled reader of sgdp.capture.ingest (S15)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sgdp.capture import craft
from sgdp.errors import InputError
from sgdp.capture.ingest import read_batches
from sgdp.capture.packet import FIN, MALFORMED, NON_IP, OK, SYN, Packet

scapy = pytest.importorskip("scapy")

ROOT = Path(__file__).resolve().parents[2]
SHARED_REAL = ROOT.parent / "shared" / "pcaps" / "real"


def s():
    return craft._scapy()


def ip_int(text: str) -> int:
    import ipaddress

    return int(ipaddress.ip_address(text))


def compiled(path) -> list[Packet]:
    return [p for batch in read_batches(str(path)) for p in batch]


def same(a: Packet, b: Packet) -> dict:
    """Fields where two packets differ (timestamps within a microsecond are equal)."""
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return {k: (da[k], db[k]) for k in da if da[k] != db[k] and not (k == "ts" and abs(da[k] - db[k]) < 1e-6)}


# ------------------------------------------------------------------------------------ to_packet

def test_to_packet_tcp_over_ethernet():
    frame = craft.ether(craft.tcp_segment("172.16.0.5", "192.168.0.10", 50000, 22, "S"), src="fa:16:3e:00:00:10")
    p = craft.to_packet(frame, ts=5.0)
    assert (p.ts, p.l3, p.src, p.dst, p.proto, p.sport, p.dport, p.tcp_flags, p.status) == \
        (5.0, 4, ip_int("172.16.0.5"), ip_int("192.168.0.10"), 6, 50000, 22, SYN, OK)
    assert p.src_mac == 0xFA163E000010
    assert craft.to_packet(craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2, "FA"), ts=0).tcp_flags == FIN | 0x10


def test_to_packet_icmp_echo_and_error():
    (_, req), (_, rep) = craft.flow("10.0.0.1", "10.0.0.2", proto="icmp", icmp_id=0x77)
    p = craft.to_packet(req, ts=0)
    assert (p.proto, p.icmp_type, p.icmp_code, p.icmp_id) == (1, 8, 0, 0x77)
    assert craft.to_packet(rep, ts=0).icmp_type == 0
    orig = craft.ip("192.168.0.10", "172.16.0.5") / s().UDP(sport=45000, dport=514)
    e = craft.to_packet(craft.icmp_error("172.16.0.1", orig), ts=0)
    assert (e.src, e.dst, e.icmp_type, e.icmp_code) == (ip_int("172.16.0.1"), ip_int("192.168.0.10"), 3, 3)
    assert (e.inner_l3, e.inner_src, e.inner_dst, e.inner_proto, e.inner_sport, e.inner_dport) == \
        (4, ip_int("192.168.0.10"), ip_int("172.16.0.5"), 17, 45000, 514)
    probe = craft.flow("192.168.0.10", "172.16.0.9", proto="icmp", icmp_id=0x99)[0][1]
    t = craft.to_packet(craft.icmp_error("172.16.0.1", probe, type=11, code=0), ts=0)
    assert (t.icmp_type, t.inner_proto, t.inner_sport) == (11, 1, 0x99)


def test_to_packet_ipv6_extension_headers_and_icmpv6_error():
    inet6 = pytest.importorskip("scapy.layers.inet6")
    pkt = (s().IPv6(src="2001:db8::1", dst="2001:db8::2") / inet6.IPv6ExtHdrHopByHop() / inet6.IPv6ExtHdrDestOpt()
           / s().TCP(sport=1234, dport=443, flags="S"))
    p = craft.to_packet(pkt, ts=0)
    assert (p.l3, p.proto, p.sport, p.dport) == (6, 6, 1234, 443)
    err = craft.to_packet(craft.icmp_error("2001:db8::ff", pkt), ts=0)
    assert (err.proto, err.icmp_type, err.icmp_code) == (58, 1, 4)
    assert (err.inner_l3, err.inner_proto, err.inner_sport, err.inner_dport) == (6, 6, 1234, 443)


def test_to_packet_fragments_v4_and_v6():
    big = craft.ip("10.0.0.1", "10.0.0.2") / s().UDP(sport=53, dport=5353) / s().Raw(b"x" * 3000)
    first, second, last = (craft.to_packet(f, ts=0) for f in craft.fragments(big, frag_id=0x1234))
    assert (first.frag_offset, first.more_fragments, first.frag_id, first.sport) == (0, 1, 0x1234, 53)
    assert (second.frag_offset, second.more_fragments, second.sport, second.dport) == (185, 1, 0, 0)
    assert (last.frag_offset, last.more_fragments, last.proto) == (370, 0, 17)
    big6 = craft.ip("2001:db8::1", "2001:db8::2") / s().UDP(sport=53, dport=5353) / s().Raw(b"x" * 3000)
    parts = [craft.to_packet(f, ts=0) for f in craft.fragments(big6, size=1448, frag_id=77)]
    assert len(parts) == 3
    assert (parts[0].frag_offset, parts[0].more_fragments, parts[0].frag_id, parts[0].proto, parts[0].dport) == (0, 1, 77, 17, 5353)
    assert (parts[1].frag_offset, parts[1].proto, parts[1].dport) == (181, 17, 0)
    with pytest.raises(InputError, match="multiple of 8"):
        craft.fragments(big, size=1000 + 1)


def test_to_packet_non_ip_and_vlan():
    arp = s().Ether(src="02:00:00:00:00:01") / scapy.layers.l2.ARP()
    p = craft.to_packet(arp, ts=0)
    assert (p.status, p.l3, p.src_mac) == (NON_IP, 0, 0x020000000001)
    q = craft.to_packet(craft.ether(craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2), vlan=[100, 200]), ts=0)
    assert (q.status, q.l3, q.dport) == (OK, 4, 2)


def test_helpers_shape():
    hs = craft.tcp_handshake("10.0.0.1", "10.0.0.2", sport=40000, dport=22, t0=10.0, rtt=0.01)
    assert [p[s().TCP].flags for _, p in hs] == ["S", "SA", "A"]
    assert [t for t, _ in hs] == pytest.approx([10.0, 10.01, 10.011])
    session = craft.tcp_session("10.0.0.1", "10.0.0.2", dport=80, exchanges=2)
    assert [str(p[s().TCP].flags) for _, p in session] == ["S", "SA", "A", "PA", "PA", "PA", "PA", "FA", "FA", "A"]
    times = [t for t, _ in session]
    assert times == sorted(times)
    udp = craft.flow("10.0.0.1", "10.0.0.2", proto="udp", dport=53, exchanges=2, interval=1.0)
    assert [(t, p[s().UDP].sport, p[s().UDP].dport) for t, p in udp] == \
        [(0.0, 40000, 53), (0.001, 53, 40000), (1.0, 40000, 53), (1.001, 53, 40000)]
    gre = craft.flow("10.0.0.1", "10.0.0.2", proto="gre", reply=False)
    assert [craft.to_packet(p, ts=0).proto for _, p in gre] == [47]
    v6 = craft.flow("2001:db8::1", "2001:db8::2", proto="icmpv6", icmp_id=9)
    assert [craft.to_packet(p, ts=0).icmp_type for _, p in v6] == [128, 129]
    assert [t for t, _ in craft.at(5.0, ["a", "b", "c"], 0.5)] == [5.0, 5.5, 6.0]
    with pytest.raises(InputError, match="not the same IP version"):
        craft.ip("10.0.0.1", "2001:db8::1")
    with pytest.raises(InputError, match="needs dport"):
        craft.flow("10.0.0.1", "10.0.0.2", proto="udp")
    with pytest.raises(InputError, match="not a protocol"):
        craft.flow("10.0.0.1", "10.0.0.2", proto="sctp-ish")


# ------------------------------------------------------------------------------------ write_pcap

@pytest.mark.parametrize("nanosecond", [False, True])
def test_write_pcap_timestamps(tmp_path, nanosecond):
    frames = [(1_700_000_005.022, craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2)),
              (1_700_000_006, craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2)),
              (0.9999999999, craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2))]
    path = tmp_path / "t.pcap"
    assert craft.write_pcap(str(path), frames, nanosecond=nanosecond) == 3
    (batch,) = list(read_batches(str(path)))
    assert batch.linktype.tolist() == [101] * 3
    assert batch.ts_sec.tolist() == [1_700_000_005, 1_700_000_006, 1]
    assert batch.ts_nsec.tolist() == [22_000_000, 0, 0]


def test_write_pcap_refuses_times_a_pcap_cannot_hold(tmp_path):
    """A pcap record has 32-bit seconds: 2106-02-07 06:28:15 is the last time; later or before 1970
    is an error, never a wrapped time."""
    seg = craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2)
    path = tmp_path / "t.pcap"
    craft.write_pcap(str(path), [(0xFFFFFFFF, seg)])
    assert next(iter(read_batches(str(path)))).ts_sec.tolist() == [0xFFFFFFFF]
    for t in (0x100000000, -1, 0xFFFFFFFF + 0.9999999999):
        with pytest.raises(InputError, match=r"frame 0: time .* is outside what a pcap holds \(1970-01-01 .. 2106-02-07"):
            craft.write_pcap(str(path), [(t, seg)], nanosecond=True)


def test_write_pcap_cut_frames_and_link_types(tmp_path):
    frame = craft.ether(craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2))
    raw = bytes(frame)
    path = tmp_path / "cut.pcap"
    craft.write_pcap(str(path), [(0, frame), (1, raw[:20], len(raw))], linktype=1)
    (batch,) = list(read_batches(str(path)))
    assert batch.columns["status"].tolist() == [OK, MALFORMED]
    assert batch.wirelen.tolist() == [len(raw), len(raw)]
    with pytest.raises(InputError, match="need an explicit linktype"):
        craft.write_pcap(str(path), [(0, raw)])
    with pytest.raises(InputError, match="is not of link type 1"):
        craft.write_pcap(str(path), [(0, frame), (1, craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2))])
    with pytest.raises(InputError, match="shorter than its"):
        craft.write_pcap(str(path), [(0, raw, 3)], linktype=1)


# ------------------------------------------------------------------------------------ cross-check

def crafted_capture(path: Path, linktype: str) -> None:
    """A capture with most of what the reader decodes, on one link type."""
    S = s()
    inet6 = scapy.layers.inet6
    udp = craft.ip("192.168.0.10", "172.16.0.5") / S.UDP(sport=45000, dport=514) / S.Raw(b"log")
    tcp6 = (S.IPv6(src="2001:db8::1", dst="2001:db8::2") / inet6.IPv6ExtHdrHopByHop() / inet6.IPv6ExtHdrRouting()
            / inet6.IPv6ExtHdrDestOpt() / S.TCP(sport=1234, dport=443, flags="PA") / S.Raw(b"hello"))
    packets = [p for _, p in craft.tcp_session("172.16.0.5", "192.168.0.10", 50000, 22)]
    packets += [p for _, p in craft.flow("2001:db8::1", "2001:db8::2", proto="icmpv6", exchanges=2)]
    packets += [p for _, p in craft.flow("10.0.0.1", "10.0.0.2", proto=47)]
    packets += [udp, craft.icmp_error("172.16.0.1", udp), craft.icmp_error("172.16.0.1", udp, type=11, code=0)]
    packets += [tcp6, craft.icmp_error("2001:db8::ff", tcp6, quote=48), craft.icmp_error("2001:db8::ff", tcp6, type=3, code=0),
                craft.icmp_error("172.16.0.1", udp, quote=24)]
    packets += craft.fragments(craft.ip("10.0.0.1", "10.0.0.2", id=7) / S.ICMP(id=3) / S.Raw(b"p" * 2000))
    packets += craft.fragments(craft.ip("2001:db8::1", "2001:db8::2") / S.UDP(sport=9, dport=10) / S.Raw(b"u" * 2000), frag_id=5)
    packets.append(craft.ip("10.0.0.1", "10.0.0.2", options=[scapy.layers.inet.IPOption_RR()]) / S.UDP(sport=1, dport=2))
    if linktype == "ether":
        frames = [craft.ether(p, src=f"02:00:00:00:00:{k % 256:02x}", vlan=[10, 20] if k % 4 == 0 else (30 if k % 4 == 1 else None))
                  for k, p in enumerate(packets)]
        frames.append(S.Ether(src="02:00:00:00:00:99") / scapy.layers.l2.ARP())
    elif linktype == "sll":
        frames = [S.CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\x00\x00\x00\x00\x07\x00\x00",
                                proto=0x86DD if p.version == 6 else 0x0800) / p for p in packets]
    else:
        frames = packets
    craft.write_pcap(str(path), [(1_700_000_000 + k / 1000, f) for k, f in enumerate(frames)], nanosecond=linktype == "raw")


@pytest.mark.parametrize("linktype", ["ether", "sll", "raw"])
def test_scapy_reader_agrees_with_compiled_reader_on_crafted(tmp_path, linktype):
    path = tmp_path / f"{linktype}.pcap"
    crafted_capture(path, linktype)
    ours, theirs = compiled(path), craft.read_with_scapy(str(path))
    assert len(ours) == len(theirs) > 20
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert not same(a, b), f"packet {k}: {same(a, b)}"
    assert any(p.inner_l3 == 6 for p in ours) and any(p.frag_offset for p in ours)


@pytest.mark.parametrize("name", ["figure1.pcap", "figure2.pcap", "lb.pcap", "fragments.pcap"])
def test_scapy_reader_agrees_on_bundled_captures(name):
    ours, theirs = compiled(ROOT / "pcaps" / name), craft.read_with_scapy(str(ROOT / "pcaps" / name))
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if a.status == OK:
            assert not same(a, b), f"packet {k}: {same(a, b)}"
        else:
            assert a.status == b.status


REAL = ["zeek__icmp6-destunreach-ip6ext-udp.pcap", "zeek__ipv6-fragmented-dns.pcap", "zeek__vlan-qinqinq.pcap",
        "zeek__linux_dlt_sll2.pcap", "tcpdump__802.1ad_QinQ.pcap", "gopacket__test_loopback.pcap",
        "tcpdump__tcp-handshake-nano.pcap", "zeek__pcapng-multi-interface.pcapng", "tcpdump__LINKTYPE_RAW_ipv6.pcap"]


@pytest.mark.parametrize("name", REAL)
def test_scapy_reader_agrees_on_real_captures(name):
    """A few captures from outside the project (../shared/pcaps/real/): every field of every packet."""
    path = SHARED_REAL / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (the shared folder sits beside the repository)")
    ours, theirs = compiled(path), craft.read_with_scapy(str(path))
    assert len(ours) == len(theirs) > 0
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert not same(a, b), f"packet {k}: {same(a, b)}"


def test_read_with_scapy_rejects_non_captures(tmp_path):
    path = tmp_path / "notes.pcap"
    path.write_text("not a capture at all")
    with pytest.raises(InputError, match="scapy cannot read it"):
        craft.read_with_scapy(str(path))


# ------------------------------------------------------------------------------------ without scapy

BLOCK_SCAPY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "scapy" or name.startswith("scapy."):
            raise ImportError("No module named " + repr(name))
sys.meta_path.insert(0, Block())
"""


def run_without_scapy(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", BLOCK_SCAPY + code], capture_output=True, text=True, env=env, cwd=ROOT)


def test_core_imports_without_scapy(tmp_path):
    """scapy is in the test extra only: the core (and sgdp.capture.craft itself) import without it, capture
    steps run without it, and a helper that needs it says how to install it."""
    code = f"""
import sgdp, sgdp.cli, sgdp.testing.scenario, sgdp.capture.ingest, sgdp.pipeline.run, sgdp.capture.craft
assert "scapy" not in sys.modules
from sgdp.capture import craft
from sgdp.errors import UsageError
assert not craft.scapy_available()
try:
    craft.tcp_handshake("10.0.0.1", "10.0.0.2")
except UsageError as exc:
    print("USAGE:", exc)
craft.write_pcap({str(tmp_path / 'raw.pcap')!r}, [(0.0, bytes(20))], linktype=101)  # bytes need no scapy
from sgdp.cli import main
rc = main(["test", "examples/figure2/figure2.sgdp.yaml", "--engine", "reference"])
print("RC", rc)
assert "scapy" not in sys.modules
"""
    proc = run_without_scapy(code)
    assert proc.returncode == 0, proc.stderr
    assert "USAGE: sgdp.capture.craft needs scapy" in proc.stdout and "pip install" in proc.stdout
    assert "RC 0" in proc.stdout
