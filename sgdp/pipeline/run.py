"""`sgdp replay`: captures through one stateful dataplane, with every output of SPEC §5.

Streams: captures are read in batches (S16), each batch goes through the engine and straight into
the verdict file, the split captures and the running summary; nothing grows with the capture but
the dataplane's own state. When a capture turns out corrupt, the packets before the corruption are
processed and every output is written before the error is reported (S15).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from sgdp.engine import make_engine, resolve_engine
from sgdp.errors import InputError, SgdpError, UsageError
from sgdp.capture import CaptureBatch, read_batches
from sgdp.topology import load_topology
from sgdp.capture import VERDICT_CODE, Verdict
from sgdp.pipeline.split import FrameSource, SplitWriter
from sgdp.pipeline.writers import FORMATS, Summary, VerdictWriter, read_verdict_file

MAX_DIFFERENCES = 10


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    differences: list[str] = field(default_factory=list)  # --expect mismatches (first ones)
    difference_count: int = 0
    error: SgdpError | None = None  # a capture error met after the earlier packets were processed
    failures_file: str | None = None  # --save-failures: the capture of the differing packets' flows
    failures_packets: int = 0


def replay(topology: str, captures: list[str], out_dir: str = "sgdp-out", verdicts: str = "csv",
           split: bool = False, engine_name: str | None = None, expect: str | None = None,
           progress: bool = False, batch_size: int = 1 << 16, timeline: str | None = None,
           save_failures: str | None = None) -> ReplayResult:
    """Replay captures; writes summary.json, verdicts.<fmt> and the split captures into out_dir.

    ``timeline``: topology versions applied at capture times (S12, sgdp.pipeline.timeline); ``save_failures``
    (with ``expect``): a directory for the capture of the differing packets (sgdp.pipeline.counterexamples)."""
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
        from sgdp.pipeline.timeline import Timeline

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
        from sgdp.pipeline.counterexamples import ReplayFailures

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
