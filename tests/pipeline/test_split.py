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
