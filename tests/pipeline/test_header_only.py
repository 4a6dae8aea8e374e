"""Header-only captures (S15): a capture taken with a snap length (``tcpdump -s 96``) gives the same
verdicts as the full capture, on both engines, because every packet's classification fields (IP
header, TCP ports and flags, UDP ports, ICMP type, code and identifier, an ICMP error's quoted
header) lie within the first 96 bytes of these frames.

The header-only captures are made here by cutting the bundled captures (pcaps/make_pcaps.py) record
by record, keeping each record's wire length: exactly what tcpdump writes with ``-s``.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

from sgdp.pipeline.run import replay

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = [
    ("examples/figure1/topology.yaml", "figure1.pcap"),
    ("examples/figure2/topology.yaml", "figure2.pcap"),
    ("examples/lb/topology.yaml", "lb.pcap"),
    ("examples/figure2/topology.yaml", "fragments.pcap"),
]


def cut_pcap(src: Path, dst: Path, snap: int) -> int:
    """Write src (a classic pcap) with every record cut to ``snap`` bytes; returns how many were cut."""
    data = src.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "little-endian pcap expected"
    head = bytearray(data[:24])
    struct.pack_into("<I", head, 16, snap)
    out, pos, cut = [bytes(head)], 24, 0
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(frame) > snap:
            cut += 1
            frame = frame[:snap]
        out.append(struct.pack("<IIII", sec, frac, len(frame), orig) + frame)
    dst.write_bytes(b"".join(out))
    return cut


def verdict_rows(out_dir: Path) -> list[list[str]]:
    with open(out_dir / "verdicts.csv", newline="") as fh:
        return [row[2:] for row in csv.reader(fh)][1:]      # without index and ts


@pytest.mark.parametrize("snap", [68, 96, 128])
@pytest.mark.parametrize("topology,capture", CAPTURES)
def test_header_only_capture_gives_the_full_verdicts(tmp_path, engine_name, topology, capture, snap):
    full = ROOT / "pcaps" / capture
    cut = tmp_path / f"cut-{capture}"
    n_cut = cut_pcap(full, cut, snap)
    replay(str(ROOT / topology), [str(full)], str(tmp_path / "full"), engine_name=engine_name)
    replay(str(ROOT / topology), [str(cut)], str(tmp_path / "cut"), engine_name=engine_name)
    assert verdict_rows(tmp_path / "cut") == verdict_rows(tmp_path / "full")
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["malformed"] == json.loads((tmp_path / "full" / "summary.json").read_text())["malformed"]
    assert summary["truncated"] == n_cut


def test_figure1_at_96_bytes_has_cut_packets(tmp_path):
    assert cut_pcap(ROOT / "pcaps" / "figure1.pcap", tmp_path / "f.pcap", 96) == 2
    assert sum(cut_pcap(ROOT / "pcaps" / c, tmp_path / c, 68) for _, c in CAPTURES) >= 20


def test_replay_says_how_many_packets_were_header_only(tmp_path, capsys):
    from sgdp.cli import main

    cut_pcap(ROOT / "pcaps" / "figure1.pcap", tmp_path / "f.pcap", 96)
    assert main(["replay", str(ROOT / "examples" / "figure1" / "topology.yaml"), str(tmp_path / "f.pcap"),
                 "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "2 packet(s) cut by the snap length were evaluated from their headers" in capsys.readouterr().out
