"""Bounded fuzzing of the capture reader (hypothesis over mutated and truncated captures).

Whatever the bytes, the reader must never crash or read out of bounds: it yields rows and ends, or
raises ``InputError`` naming the byte offset. Every yielded row is counted exactly once (ok +
non_ip + malformed = rows), its fields are consistent with its flags, and the result does not depend
on the batch size or on how the file is split into reads. Run the suite on the bounds-checked build
(``SGDP_CYTHON_DEBUG=1 pip install -e .``) to turn any out-of-range index into an error.
``SGDP_FUZZ_EXAMPLES`` scales the number of examples (default 150 per test).
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.capture import _ingest
from sgdp.errors import InputError
from sgdp.capture.ingest import FLAG, MAX_CAPLEN, CaptureReader, new_columns

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the capture builders of test_ingest.py
from test_ingest import ah, epb, eth, ext, frag6, icmp, idb, ipv4, ipv6, opb, other, pcap, shb, spb, tcp, udp  # noqa: E402

EXAMPLES = int(os.environ.get("SGDP_FUZZ_EXAMPLES", "150"))
REAL = Path(__file__).resolve().parents[3] / "shared" / "pcaps" / "real"


def _frames() -> list[bytes]:
    q = ipv4(udp(sport=1, dport=2), proto=17)
    return [
        eth(ipv4(tcp(flags=0x12, options=b"\x01" * 4, doff=6))),
        eth(ipv4(udp(), proto=17), tags=[(0x88A8, 1), (0x8100, 2)]),
        eth(ipv6(ext(43) + ext(60, b"\x04\x00" + b"\x00" * 4) + ext(51) + ah(44) + frag6(17) + udp(), nh=0), ethertype=0x86DD),
        eth(ipv4(icmp(3, 3, b"\x00" * 4, q), proto=1)),
        eth(ipv6(icmp(1, 4, b"\x00" * 4, ipv6(udp(), nh=17)), nh=58), ethertype=0x86DD),
        eth(ipv4(b"x" * 16, proto=17, offset=5, mf=1)),
        eth(b"\x00" * 28, ethertype=0x0806),
    ]


def _seeds() -> list[bytes]:
    fr = _frames()
    seeds = [
        pcap(fr),
        pcap(fr, big=True, nano=True),
        pcap([struct.pack("<I", 2) + ipv4(tcp())], linktype=0),
        pcap([ipv6(udp(), nh=17), ipv4(icmp(), proto=1)], linktype=101),
        pcap([struct.pack("!HHH", 0, 1, 6) + b"\x02" * 8 + b"\x08\x00" + ipv4(tcp())], linktype=113),
        shb() + idb(snaplen=100) + idb(linktype=101, tsresol=9) + b"".join(epb(f, units=i) for i, f in enumerate(fr))
        + epb(ipv4(tcp()), iface=1) + spb(fr[0]) + other(5) + shb(True) + idb(True, tsresol=0x90, tsoffset=-5)
        + opb(fr[1], True) + epb(fr[3], True, options=[(1, b"comment")]),
    ]
    if REAL.is_dir():
        seeds += [p.read_bytes() for p in sorted(REAL.glob("*.pcap*")) if p.stat().st_size <= 8192]
    return seeds


SEEDS = _seeds()
INTERESTING = [0, 1, 3, 4, 11, 12, 16, 28, 32, 0x7FFFFFFF, 0xFFFFFFFF, MAX_CAPLEN, MAX_CAPLEN + 1, 1 << 24, (1 << 24) + 4]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 64)),
    st.tuples(st.just("word"), st.integers(0, 1 << 16), st.sampled_from(INTERESTING), st.booleans()),
)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op in ops:
        if not b:
            break
        pos = op[1] % (len(b) + 1)
        if op[0] == "flip" and pos < len(b):
            b[pos] = op[2]
        elif op[0] == "cut":
            del b[pos:]
        elif op[0] == "insert":
            b[pos:pos] = op[2]
        elif op[0] == "delete":
            del b[pos:pos + op[2]]
        elif op[0] == "word":
            b[pos:pos + 4] = struct.pack(">I" if op[3] else "<I", op[2])
    return bytes(b)


def run(path: str, batch_size: int, read_size: int):
    """(rows as tuples, error text or None), with the invariants checked on every batch."""
    rows, error = [], None
    try:
        with CaptureReader(path, batch_size, read_size=read_size) as cap:
            for b in cap:
                n = len(b)
                assert 1 <= n <= batch_size
                status = b["status"]
                counts = np.bincount(status, minlength=3)
                assert len(counts) == 3 and counts.sum() == n          # ok + non_ip + malformed = rows
                assert ((b.detail == 0) == (status == 0)).all()         # a reason exactly when not ok
                assert (b.caplen <= MAX_CAPLEN).all()
                assert (b.ts_nsec < 1_000_000_000).all()
                l3 = b["l3"]
                has_l3 = (b.flags & FLAG["l3"]) != 0
                assert (np.isin(l3[has_l3], (4, 6))).all() and (l3[~has_l3] == 0).all()
                assert (status[~has_l3] != 0).all()                      # ok rows have an IP header
                ports = (b.flags & FLAG["ports"]) != 0
                assert np.isin(b["proto"][ports], (6, 17)).all() and (b["frag_offset"][ports] == 0).all()
                icmp_t = (b.flags & FLAG["icmp_type"]) != 0
                assert (b["icmp_type"][~icmp_t] == -1).all() and (b["icmp_type"][icmp_t] >= 0).all()
                assert np.isin(b["inner_l3"], (0, 4, 6)).all()
                assert (b["src_mac"] >= -1).all() and (b["src_mac"] < (1 << 48)).all()
                for i in range(n):
                    rows.append(tuple(b[k][i].item() for k in ("ts", "l3", "src_lo", "dst_lo", "proto", "sport",
                                                              "dport", "icmp_type", "status", "inner_l3")) +
                                (int(b.caplen[i]), int(b.detail[i]), int(b.flags[i])))
    except InputError as exc:
        error = str(exc)
        assert re.match(re.escape(path) + r": (byte offset \d+: )?\S", error), error
    return rows, error


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=6),
       batch_size=st.integers(1, 40), read_size=st.integers(1, 300))
def test_mutated_captures(seed, ops, batch_size, read_size):
    data = mutate(seed, ops)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz.pcap")
        with open(path, "wb") as fh:
            fh.write(data)
        reference = run(path, 4096, 1 << 20)
        assert run(path, batch_size, read_size) == reference     # streaming does not change the result


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=st.sampled_from([b"", b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\x00" * 8 + b"\xff\xff\x00\x00",
                             b"\xa1\xb2\xc3\xd4\x00\x02\x00\x04" + b"\x00" * 8 + b"\x00\x00\xff\xff",
                             b"\x0a\x0d\x0d\x0a"]),
       body=st.binary(max_size=600), linktype=st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276, 7]),
       cuts=st.lists(st.integers(0, 700), max_size=5), capacity=st.integers(1, 9))
def test_raw_bytes_into_the_compiled_parser(head, body, linktype, cuts, capacity):
    """Arbitrary bytes fed straight to Parser.feed in arbitrary pieces: results or clean errors only."""
    if len(head) == 20:
        head += struct.pack("<I" if head[0] == 0xD4 else ">I", linktype)
    data = np.array(bytearray(head + body), np.uint8)   # its own exact-size allocation (for AddressSanitizer)
    ends = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    parser = _ingest.Parser()
    cols = new_columns(capacity)
    batch = _ingest.Batch(cols)
    pos, total, result = 0, 0, None
    for k, end in enumerate(ends):
        eof = k == len(ends) - 1
        while True:
            batch.n = 0
            result, pos = parser.feed(data, pos, end, eof, 0, batch)
            assert 0 <= pos <= end and 0 <= batch.n <= capacity
            total += batch.n
            assert np.isin(cols["status"][: batch.n], (0, 1, 2)).all()
            if result != _ingest.RESULT["full"]:
                break
        if result in (_ingest.RESULT["end"], _ingest.RESULT["error"]):
            break
        assert result == _ingest.RESULT["need"] and parser.need > end - pos
    assert result in (_ingest.RESULT["end"], _ingest.RESULT["error"])
    if result == _ingest.RESULT["error"]:
        assert parser.err > 0 and 0 <= parser.err_offset <= len(data)
