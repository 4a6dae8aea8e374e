"""Capture ingest throughput (pytest-benchmark): pcap file -> packet batches, nothing else.

Run (outside the default test run):

    python -m pytest benchmarks/bench_ingest.py --benchmark-columns=min,median,rounds

The capture (1M packets by default, ``SGDP_BENCH_PACKETS`` to change) is generated once under the
system temp dir by :func:`generate`: Ethernet frames from a fixed-seed mix of IPv4 TCP (60 %), UDP
(20 %), ICMP echo (5 %) and IPv6 TCP (15 %), 54–82 bytes each, as raw pcap records. Each sgdp round
reads the whole file through ``sgdp.ingest.read_batches`` (file reads, parsing, one PacketBatch per
65,536 packets); the file is in the page cache after the first round. scapy's ``RawPcapReader``
(records only, no decoding) runs over the first 100,000 packets once, for scale. ``extra_info`` has
Mpps from the best round. Also a script: ``python benchmarks/bench_ingest.py OUT.pcap [PACKETS]``
writes the capture.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import tempfile
import time

import pytest

PACKETS = int(os.environ.get("SGDP_BENCH_PACKETS", "1000000"))


def _frames(k: int, rng: random.Random) -> list[bytes]:
    frames = []
    for i in range(k):
        r = rng.random()
        eth = b"\x02\x00\x00\x00\x00\x01" + bytes([2, 0, 0, 0, 1, rng.randrange(256)])
        src = bytes([10, 0, rng.randrange(256), rng.randrange(1, 255)])
        dst = bytes([192, 168, rng.randrange(256), rng.randrange(1, 255)])
        if r < 0.85:
            if r < 0.6:
                l4 = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), rng.choice([22, 80, 443, 3306]), 1, 0,
                                 5 << 4, rng.choice([2, 16, 24, 17]), 1024, 0, 0)
                proto = 6
            elif r < 0.8:
                l4, proto = struct.pack("!HHHH", rng.randrange(1024, 65535), 53, 20, 0) + b"x" * 12, 17
            else:
                l4, proto = struct.pack("!BBHHH", 8, 0, 0, rng.randrange(65536), 1) + b"p" * 16, 1
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), i & 0xFFFF, 0, 64, proto, 0, src, dst)
            frames.append(eth + b"\x08\x00" + ip + l4)
        else:
            l4 = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), 443, 1, 0, 5 << 4, 16, 1024, 0, 0)
            a6 = b"\x20\x01\x0d\xb8" + b"\x00" * 11
            ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(l4), 6, 64, a6 + bytes([rng.randrange(256)]), a6 + b"\x01")
            frames.append(eth + b"\x86\xdd" + ip6 + l4)
    return frames


def generate(path: str, packets: int, seed: int = 1) -> None:
    """Write a little-endian microsecond pcap of ``packets`` records (4,096 distinct frames, cycled)."""
    frames = _frames(4096, random.Random(seed))
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        chunk = []
        for i in range(packets):
            f = frames[i % len(frames)]
            chunk.append(struct.pack("<IIII", 1_700_000_000 + i // 1_000_000, i % 1_000_000, len(f), len(f)) + f)
            if len(chunk) == 65536:
                fh.write(b"".join(chunk))
                chunk = []
        fh.write(b"".join(chunk))


@pytest.fixture(scope="module")
def capture():
    path = os.path.join(tempfile.gettempdir(), f"sgdp-bench-ingest-{PACKETS}.pcap")
    if not os.path.exists(path):
        generate(path + ".tmp", PACKETS)
        os.replace(path + ".tmp", path)
    return path


def _ingest(path: str) -> int:
    from sgdp.capture.ingest import read_batches

    return sum(len(b) for b in read_batches([path]))


def test_ingest_sgdp(benchmark, capture):
    n = benchmark.pedantic(_ingest, args=(capture,), rounds=7, iterations=1, warmup_rounds=1)
    assert n == PACKETS
    benchmark.extra_info.update(packets=n, mpps=round(n / benchmark.stats.stats.min / 1e6, 2))


def test_ingest_scapy_raw_reader(benchmark, capture):
    scapy_utils = pytest.importorskip("scapy.utils")
    limit = min(PACKETS, 100_000)

    def run() -> int:
        n = 0
        with scapy_utils.RawPcapReader(capture) as reader:
            for _ in reader:
                n += 1
                if n == limit:
                    break
        return n

    n = benchmark.pedantic(run, rounds=1, iterations=1)
    assert n == limit
    benchmark.extra_info.update(packets=n, mpps=round(n / benchmark.stats.stats.min / 1e6, 3))


if __name__ == "__main__":
    out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else PACKETS
    start = time.perf_counter()
    generate(out, count)
    print(f"{out}: {count} packets in {time.perf_counter() - start:.1f} s")
