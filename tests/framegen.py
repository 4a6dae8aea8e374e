"""Small captures for tests: scenario-style packet specs -> a pcap file (via sgdp.capture.frames)."""

from __future__ import annotations

import os

from sgdp.capture.frames import LINKTYPE_ETHERNET, packet_to_frame, timestamp
from sgdp.pipeline.split import SplitWriter
from sgdp.testing.scenario import packet_from_spec


def write_capture(path, specs: list[dict]) -> str:
    """Write packet specs (``{src, dst, proto, sport, dport, flags, time, ...}``) as an Ethernet pcap."""
    path = os.fspath(path)
    out = SplitWriter(path)
    now = 0.0
    for i, spec in enumerate(specs):
        pkt = packet_from_spec(spec, f"packets[{i}]", "test", now)
        now = pkt.ts
        frame = packet_to_frame(pkt)
        sec, nsec = timestamp(pkt.ts)
        out.add(LINKTYPE_ETHERNET, sec, nsec, len(frame), frame)
    out.close()
    return path


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, time: float) -> dict:
    return {"src": src, "dst": dst, "proto": "tcp", "sport": sport, "dport": dport, "flags": flags, "time": time}


def handshake(client: str, server: str, sport: int, dport: int, t: float) -> list[dict]:
    """SYN, SYN-ACK, ACK at t, t+0.1, t+0.2."""
    return [tcp(client, server, sport, dport, "S", t), tcp(server, client, dport, sport, "SA", t + 0.1),
            tcp(client, server, sport, dport, "A", t + 0.2)]
