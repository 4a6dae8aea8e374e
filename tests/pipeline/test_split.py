"""``replay --split``: allowed.pcap / denied.pcap hold the original frames of allowed and denied
packets. One link type gives a nanosecond pcap; captures of several link types give pcapng with an
interface per link type (docs/semantics.md), which tshark reads without complaint."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

from sgdp.capture.ingest import open_capture, read_batches
from sgdp.pipeline.run import replay
from sgdp.pipeline.split import SplitWriter

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = str(ROOT / "examples" / "figure1" / "topology.yaml")
FIGURE1 = ROOT / "pcaps" / "figure1.pcap"


def pcap_records(path: Path):
    data = path.read_bytes()
    pos = 24
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, pos)
        yield sec, frac, orig, data[pos + 16:pos + 16 + incl]
        pos += 16 + incl


def as_raw_ip(src: Path, dst: Path) -> int:
    """figure1.pcap's IPv4 frames without their Ethernet header: LINKTYPE_RAW (101)."""
    head = bytearray(src.read_bytes()[:24])
    struct.pack_into("<I", head, 20, 101)
    out, n = [bytes(head)], 0
    for sec, frac, orig, frame in pcap_records(src):
        if frame[12:14] == b"\x08\x00":
            ip = frame[14:]
            out.append(struct.pack("<IIII", sec, frac, len(ip), orig - 14) + ip)
            n += 1
    dst.write_bytes(b"".join(out))
    return n


def frames_of(path: Path) -> list[tuple[int, int]]:
    """(link type, captured length) of every frame, read back by sgdp's reader."""
    return [(int(b.linktype[i]), int(b.caplen[i])) for b in read_batches([path]) for i in range(len(b))]


def tshark_reads(path: Path) -> int:
    """Frames tshark reads from the file; fails on any complaint."""
    proc = subprocess.run(["tshark", "-n", "-r", str(path)], capture_output=True, text=True, timeout=120)
    complaints = [ln for ln in proc.stderr.splitlines() if "Running as user" not in ln and ln.strip()]
    assert proc.returncode == 0 and not complaints, proc.stderr
    return len([ln for ln in proc.stdout.splitlines() if ln.strip()])


def test_one_link_type_gives_pcap(tmp_path):
    result = replay(TOPOLOGY, [str(FIGURE1)], str(tmp_path), split=True)
    s = result.summary
    with open_capture(tmp_path / "allowed.pcap") as cap:
        list(cap)
        assert cap.format == "pcap" and cap.linktype == 1
    allowed, denied = frames_of(tmp_path / "allowed.pcap"), frames_of(tmp_path / "denied.pcap")
    assert (len(allowed), len(denied)) == (s["allowed"], s["denied"])


def test_mixed_link_types_give_pcapng_that_tshark_reads(tmp_path):
    raw = tmp_path / "raw.pcap"
    n_ip = as_raw_ip(FIGURE1, raw)
    result = replay(TOPOLOGY, [str(FIGURE1), str(raw)], str(tmp_path / "out"), split=True)
    s = result.summary
    allowed = frames_of(tmp_path / "out" / "allowed.pcap")
    denied = frames_of(tmp_path / "out" / "denied.pcap")
    assert len(allowed) == s["allowed"] and len(denied) == s["denied"]
    assert {link for link, _ in allowed} == {1, 101}
    assert {link for link, _ in denied} == {1, 101} and n_ip > 10
    with open_capture(tmp_path / "out" / "allowed.pcap") as cap:
        list(cap)
        assert cap.format == "pcapng"
    if shutil.which("tshark"):
        assert tshark_reads(tmp_path / "out" / "allowed.pcap") == len(allowed)
        assert tshark_reads(tmp_path / "out" / "denied.pcap") == len(denied)


def test_switch_to_pcapng_after_thousands_of_frames_streams(tmp_path):
    """The switch rewrites what was already written (beyond the in-memory batch) and keeps every
    frame, time and length; later frames are appended."""
    path = tmp_path / "s.pcap"
    out = SplitWriter(str(path))
    eth = bytes(12) + b"\x08\x00" + bytes(46)
    raw = bytes([0x45]) + bytes(19)
    for i in range(5000):
        out.add(1, 1_700_000_000 + i, 123, 64, eth)
    out.add(101, 1_700_010_000, 5, 20, raw)
    out.add(1, 1_700_010_001, 6, 64, eth)
    out.close()
    got = [(int(b.linktype[i]), int(b.ts_sec[i]), int(b.ts_nsec[i]), int(b.wirelen[i]))
           for b in read_batches([path]) for i in range(len(b))]
    assert len(got) == 5002
    assert got[0] == (1, 1_700_000_000, 123, 64) and got[4999] == (1, 1_700_004_999, 123, 64)
    assert got[5000:] == [(101, 1_700_010_000, 5, 20), (1, 1_700_010_001, 6, 64)]
    assert not (tmp_path / "s.pcap.tmp").exists()
    if shutil.which("tshark"):
        assert tshark_reads(path) == 5002


def test_split_counts_in_summary_match(tmp_path):
    replay(TOPOLOGY, [str(FIGURE1)], str(tmp_path), split=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["packets"] == summary["allowed"] + summary["denied"] + summary["unmodelled"] + summary["malformed"]


# ------------------------------------------------------------- times after 2106: pcap cannot hold them

PCAP_LAST = 0xFFFFFFFF  # 2106-02-07 06:28:15 UTC, the last second a pcap record's 32 bits hold


def read_back(path: Path) -> tuple[str, list[tuple[int, int, int, int]]]:
    with open_capture(path) as cap:
        rows = [(int(b.linktype[i]), int(b.ts_sec[i]), int(b.ts_nsec[i]), int(b.wirelen[i])) for b in cap for i in range(len(b))]
        return cap.format, rows


def test_time_after_2106_switches_to_pcapng_and_keeps_every_time(tmp_path):
    """A pcap record's seconds are 32 bits: the first frame after 2106 switches the file to pcapng
    (as another link type does), and every time reads back exactly, none wrapped."""
    eth = bytes(12) + b"\x08\x00" + bytes(46)
    path = tmp_path / "s.pcap"
    out = SplitWriter(str(path))
    out.add(1, PCAP_LAST, 999_999_999, 64, eth)
    out.add(1, PCAP_LAST + 1, 0, 64, eth)
    out.add(1, 18_446_744_073, 709_551_615, 64, eth)  # the last nanosecond sgdp keeps (2554-07-21)
    out.close()
    fmt, rows = read_back(path)
    assert fmt == "pcapng"
    assert rows == [(1, PCAP_LAST, 999_999_999, 64), (1, PCAP_LAST + 1, 0, 64), (1, 18_446_744_073, 709_551_615, 64)]
    if shutil.which("tshark"):
        assert tshark_reads(path) == 3

    first = tmp_path / "first.pcap"  # the very first frame after 2106
    out = SplitWriter(str(first))
    out.add(1, PCAP_LAST + 10, 5, 64, eth)
    out.close()
    assert read_back(first) == ("pcapng", [(1, PCAP_LAST + 10, 5, 64)])

    before = tmp_path / "before.pcap"  # up to 2106: still pcap
    out = SplitWriter(str(before))
    out.add(1, PCAP_LAST, 7, 64, eth)
    out.close()
    assert read_back(before) == ("pcap", [(1, PCAP_LAST, 7, 64)])


def as_pcapng_after_2106(src: Path, dst: Path, shift: int) -> None:
    """figure1.pcap (microsecond pcap) as pcapng, every time moved ``shift`` seconds later by the
    interface's if_tsoffset (the packets keep their nanosecond units)."""
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HHq", 14, 8, shift) + struct.pack("<HH", 0, 0)

    def block(kind: int, body: bytes) -> bytes:
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", 1, 0, 0) + opts)]
    for sec, frac, orig, frame in pcap_records(src):
        units = sec * 1_000_000_000 + frac * 1000
        body = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(frame), orig) + frame + bytes(-len(frame) % 4)
        out.append(block(6, body))
    dst.write_bytes(b"".join(out))


def test_replay_split_of_a_capture_after_2106_writes_pcapng(tmp_path):
    shift = 5_000_000_000  # about 160 years: every packet after 2106
    late = tmp_path / "late.pcapng"
    as_pcapng_after_2106(FIGURE1, late, shift)
    result = replay(TOPOLOGY, [str(late)], str(tmp_path / "out"), split=True)
    s = result.summary
    original = {(int(b.ts_sec[i]) + shift, int(b.ts_nsec[i])) for b in read_batches([FIGURE1]) for i in range(len(b))}
    for name, count in (("allowed.pcap", s["allowed"]), ("denied.pcap", s["denied"])):
        fmt, rows = read_back(tmp_path / "out" / name)
        assert fmt == "pcapng" and len(rows) == count > 0
        assert {(sec, nsec) for _, sec, nsec, _ in rows} <= original
        assert min(sec for _, sec, _, _ in rows) > PCAP_LAST
