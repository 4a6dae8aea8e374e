"""`sgdp replay`: captures through one stateful dataplane, with every output of SPEC §5.

Streams: captures are read in batches (S16), each batch goes through the engine and straight into
the verdict file, the split captures and the running summary; nothing grows with the capture but
the dataplane's own state. When a capture turns out corrupt, the packets before the corruption are
processed and every output is written before the error is reported (S15).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from sgdp.engine import make_engine, resolve_engine
from sgdp.errors import InputError, SgdpError, UsageError
from sgdp.ingest import CaptureBatch, read_batches
from sgdp.model import load_topology
from sgdp.packet import VERDICT_CODE, Verdict
from sgdp.report import FORMATS, Summary, VerdictWriter, read_verdict_file

MAX_DIFFERENCES = 10


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    differences: list[str] = field(default_factory=list)  # --expect mismatches (first ones)
    difference_count: int = 0
    error: SgdpError | None = None  # a capture error met after the earlier packets were processed
    failures_file: str | None = None  # --save-failures: the capture of the differing packets' flows
    failures_packets: int = 0


class SplitWriter:
    """``allowed.pcap`` / ``denied.pcap``: the original frames, copied from the captures by offset.

    Written as nanosecond pcap with the link type of the first frame. Captures of several link
    types (a pcap has one) switch the file to pcapng at the first frame of another link type: what
    was written so far is converted once, streaming, and every frame after it is appended as an
    enhanced packet block of an interface per link type (docs/semantics.md). tshark reads both.
    Unmodelled and malformed packets go to neither file. Memory does not grow with the capture.
    """

    def __init__(self, path: str):
        self.path = path
        self.fh = open(path, "wb")
        self.link: int | None = None
        self.ng_ifaces: dict[int, int] | None = None   # pcapng: link type -> interface id
        self.records: list[tuple[int, int, int, int, bytes]] = []
        self.count = 0

    def add(self, link: int, sec: int, nsec: int, wirelen: int, frame: bytes) -> None:
        if self.link is None:
            self.link = link
        if link != self.link and self.ng_ifaces is None:
            self._switch_to_pcapng()
        self.count += 1
        if self.ng_ifaces is not None:
            self._write_epb(link, sec, nsec, wirelen, frame)
            return
        self.records.append((link, sec, nsec, wirelen, frame))
        if len(self.records) >= 4096:
            self._flush_pcap()

    def _flush_pcap(self) -> None:
        if self.fh.tell() == 0:
            self.fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, self.link or 1))
        for _, sec, nsec, wirelen, frame in self.records:
            self.fh.write(struct.pack("<IIII", sec & 0xFFFFFFFF, nsec, len(frame), wirelen) + frame)
        self.records.clear()

    def _switch_to_pcapng(self) -> None:
        """Rewrite the pcap written so far as pcapng (record by record), then go on appending."""
        self._flush_pcap()
        self.fh.close()
        tmp = self.path + ".tmp"
        self.ng_ifaces = {}
        with open(self.path, "rb") as old, open(tmp, "wb") as new:
            self.fh = new
            new.write(_ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
            old.read(24)
            while True:
                rec = old.read(16)
                if len(rec) < 16:
                    break
                sec, nsec, incl, orig = struct.unpack("<IIII", rec)
                self._write_epb(self.link, sec, nsec, orig, old.read(incl))  # type: ignore[arg-type]
        os.replace(tmp, self.path)
        self.fh = open(self.path, "ab")

    def _write_epb(self, link: int, sec: int, nsec: int, wirelen: int, frame: bytes) -> None:
        iface = self.ng_ifaces.get(link)  # type: ignore[union-attr]
        if iface is None:
            iface = self.ng_ifaces[link] = len(self.ng_ifaces)  # type: ignore[index]
            options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)     # if_tsresol: nanoseconds
            self.fh.write(_ng_block(1, struct.pack("<HHI", link, 0, 262144) + options))
        units = max(sec * 1_000_000_000 + nsec, 0)      # pcapng time is unsigned
        pad = b"\0" * (-len(frame) % 4)
        body = struct.pack("<IIIII", iface, (units >> 32) & 0xFFFFFFFF, units & 0xFFFFFFFF, len(frame), wirelen)
        self.fh.write(_ng_block(6, body + frame + pad))

    def close(self) -> None:
        if self.ng_ifaces is None:
            self._flush_pcap()
        self.fh.close()


def _ng_block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


class FrameSource:
    """Reads frames back from the capture files by offset (for --split)."""

    def __init__(self) -> None:
        self.files: dict[str, Any] = {}

    def frames(self, batch: CaptureBatch, rows: np.ndarray) -> Iterator[tuple[int, bytes]]:
        fh = self.files.get(batch.path)
        if fh is None:
            fh = self.files[batch.path] = open(batch.path, "rb")
        for i in rows.tolist():
            fh.seek(int(batch.offset[i]))
            yield i, fh.read(int(batch.caplen[i]))

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


def replay(topology: str, captures: list[str], out_dir: str = "sgdp-out", verdicts: str = "csv",
           split: bool = False, engine_name: str | None = None, expect: str | None = None,
           progress: bool = False, batch_size: int = 1 << 16, timeline: str | None = None,
           save_failures: str | None = None) -> ReplayResult:
    """Replay captures; writes summary.json, verdicts.<fmt> and the split captures into out_dir.

    ``timeline``: topology versions applied at capture times (S12, sgdp.timeline); ``save_failures``
    (with ``expect``): a directory for the capture of the differing packets (sgdp.counterexamples)."""
    if verdicts not in FORMATS:
        raise UsageError(f"--verdicts: {verdicts!r} is not a format ({', '.join(FORMATS)})")
    if save_failures and not expect:
        raise UsageError("--save-failures needs --expect (it saves the packets that differ from the expected verdicts)")
    topo = load_topology(topology)
    for path in captures:
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such capture file")
    name = resolve_engine(engine_name)
    versions = None
    if timeline:
        from sgdp.timeline import Timeline

        versions = Timeline(topology, topo, timeline, name)
        engine, name = versions.engine, versions.engine_name
    else:
        engine = make_engine(topo, name)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"-o {out_dir}: {exc.strerror}") from None
    writer = VerdictWriter(out_dir, verdicts, engine.names)
    summary = Summary(name)
    result = ReplayResult({})
    expected = _expected_rows(expect) if expect else None
    splits = (SplitWriter(os.path.join(out_dir, "allowed.pcap")), SplitWriter(os.path.join(out_dir, "denied.pcap"))) if split else None
    source = FrameSource() if split else None
    if save_failures:
        from sgdp.counterexamples import ReplayFailures

        failures = ReplayFailures(save_failures)
    else:
        failures = None
    bar = _progress_bar(captures) if progress else None
    start = time.perf_counter()
    index = 0
    try:
        for batch in read_batches(captures, batch_size):
            vb = engine.process(batch) if versions is None else versions.process(batch)
            summary.add(vb, batch)
            writer.write(batch, vb)
            if expected is not None:
                bad = _compare(result, expected, index, writer, batch, vb)
                if failures is not None:
                    failures.add(batch, index, bad)
            if splits is not None:
                _split(splits, source, batch, vb)  # type: ignore[arg-type]
            index += len(batch)
            if bar is not None:
                bar.update(batch)
    except InputError as exc:
        result.error = exc
    finally:
        elapsed = time.perf_counter() - start
        writer.close()
        if splits is not None:
            for s in splits:
                s.close()
            source.close()  # type: ignore[union-attr]
        if bar is not None:
            bar.close()
    if expected is not None and result.error is None:
        extra = sum(1 for _ in expected)
        if extra:
            result.difference_count += extra
            _note(result, f"the expected verdict file has {extra} more row(s) than the {index} packet(s) replayed")
    result.summary = summary.as_dict(engine.rule_hits(), elapsed)
    if versions is not None:
        result.summary["versions"] = versions.summary()
    if failures is not None:
        result.failures_file = failures.write(captures, batch_size)
        result.failures_packets = failures.written
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(result.summary, fh, indent=2)
        fh.write("\n")
    return result


def _expected_rows(path: str) -> Iterator[tuple[int, Verdict]]:
    if not os.path.isfile(path):
        raise InputError(f"--expect {path}: no such verdict file")
    return iter(read_verdict_file(path))


def _compare(result: ReplayResult, expected: Iterator[tuple[int, Verdict]], first: int, writer: VerdictWriter,
             batch: CaptureBatch, vb) -> list[int]:
    """Compare one batch with the next rows of the expected verdict file; the rows that differ."""
    bad: list[int] = []
    cols = writer.columns(batch.columns["ts"], vb)
    names = ("verdict", "reason", "instance", "direction", "security_group", "rule")
    actual = list(zip(*(cols[k].tolist() for k in names)))
    for k, row in enumerate(actual):
        i = first + k
        try:
            exp_index, exp = next(expected)
        except StopIteration:
            result.difference_count += len(actual) - k
            _note(result, f"packet {i}: the expected verdict file ends after {i} row(s)")
            bad.extend(range(k, len(actual)))
            return bad
        got = Verdict(*row)
        if exp_index != i:
            result.difference_count += 1
            _note(result, f"packet {i}: the expected verdict file has index {exp_index} here")
            bad.append(k)
        elif got != exp:
            result.difference_count += 1
            bad.append(k)
            diffs = ", ".join(f"{f}: expected {getattr(exp, f) or '(empty)'}, got {getattr(got, f) or '(empty)'}"
                              for f in names if getattr(exp, f) != getattr(got, f))
            _note(result, f"packet {i} ({batch.path} #{batch.first + k + 1}): {diffs}")
    return bad


def _note(result: ReplayResult, text: str) -> None:
    if len(result.differences) < MAX_DIFFERENCES:
        result.differences.append(text)


def _split(splits: tuple[SplitWriter, SplitWriter], source: FrameSource, batch: CaptureBatch, vb) -> None:
    for code, out in ((VERDICT_CODE["allow"], splits[0]), (VERDICT_CODE["deny"], splits[1])):
        rows = np.flatnonzero(vb.verdict == code)
        for i, frame in source.frames(batch, rows):
            out.add(int(batch.linktype[i]), int(batch.ts_sec[i]), int(batch.ts_nsec[i]), int(batch.wirelen[i]), frame)


class _Progress:
    """A tqdm bar over the bytes of the captures (tqdm is a dependency; shown only on a terminal)."""

    def __init__(self, captures: list[str]):
        from tqdm import tqdm

        self.sizes = {p: os.path.getsize(p) for p in captures}
        self.done: dict[str, int] = {}
        self.bar = tqdm(total=sum(self.sizes.values()), unit="B", unit_scale=True, desc="replay", file=sys.stderr,
                        leave=False)

    def update(self, batch: CaptureBatch) -> None:
        if len(batch):
            pos = int(batch.offset[-1]) + int(batch.caplen[-1])
            self.bar.update(max(0, pos - self.done.get(batch.path, 0)))
            self.done[batch.path] = pos

    def close(self) -> None:
        self.bar.close()


def _progress_bar(captures: list[str]) -> _Progress | None:
    try:
        return _Progress(captures)
    except ImportError:
        return None
