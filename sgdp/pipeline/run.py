"""`sgdp replay`: captures through one stateful dataplane, with every output of SPEC §5.

Streams: captures are read in batches (S16), each batch goes through the engine and straight into
the verdict file, the split captures and the running summary; nothing grows with the capture but
the dataplane's own state. When a capture turns out corrupt, the packets before the corruption are
processed and every output is written before the error is reported (S15).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from sgdp.startup import gc_paused
from sgdp.engine import resolve_engine
from sgdp.errors import InputError, SgdpError, UsageError
from sgdp.capture import CaptureBatch, check_captures, display_name, is_stream, read_batches
from sgdp.topology import read_structured_file, topology_from_data
from sgdp.capture import VERDICT_CODE, Verdict
from sgdp.pipeline.outputs import OutputDir
from sgdp.pipeline.split import SplitWriter, batch_records
from sgdp.pipeline.executors import engine_spec, make_executor
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
    unmodelled_top: list[tuple[str, str, int]] = field(default_factory=list)  # (src, dst, packets), most first


#: When a dict (set by ``sgdp bench``), replay() records the wall-clock time (``time.time()``) of its
#: phases in it: ``start``, ``loaded`` (file parsed), ``validated`` (topology built and checked),
#: ``compiled`` (engine ready), ``first_packet`` (the first batch read, entering the engine),
#: ``packets_done`` (every packet evaluated and written), ``end`` (summary written).
PHASES: dict[str, float] | None = None


def _mark(name: str) -> None:
    if PHASES is not None:
        PHASES[name] = time.time()


def _marked(batches: Iterator[CaptureBatch]) -> Iterator[CaptureBatch]:
    """The batches, the time of the first one's arrival marked as ``first_packet`` (the end of the
    start-up: the first packets are there for the engine; in whichever thread reads them)."""
    for batch in batches:
        if PHASES is not None and "first_packet" not in PHASES:
            _mark("first_packet")
        yield batch


def replay(topology: str, captures: list[str], out_dir: str = "sgdp-out", verdicts: str = "csv",
           split: bool = False, engine_name: str | None = None, expect: str | None = None,
           progress: bool = False, batch_size: int = 1 << 16, timeline: str | None = None,
           save_failures: str | None = None, workers: Any = 1, ray: str | None = None) -> ReplayResult:
    """Replay captures; writes summary.json, verdicts.<fmt> and the split captures into out_dir.

    ``timeline``: topology versions applied at capture times (S12, sgdp.pipeline.timeline); ``save_failures``
    (with ``expect``): a directory for the capture of the differing packets (sgdp.pipeline.counterexamples);
    ``workers`` / ``ray``: where the dataplane runs (sgdp.pipeline.executors; 1 = this process)."""
    if verdicts not in FORMATS:
        raise UsageError(f"--verdicts: {verdicts!r} is not a format ({', '.join(FORMATS)})")
    if save_failures and not expect:
        raise UsageError("--save-failures needs --expect (it saves the packets that differ from the expected verdicts)")
    _mark("start")
    topology = os.fspath(topology)
    with gc_paused():  # start-up: many long-lived objects, no garbage worth a collection
        data = read_structured_file(topology, "topology")
        _mark("loaded")
        topo = topology_from_data(data, topology)
        _mark("validated")
        check_captures(captures)
        name = resolve_engine(engine_name)
        expected = _expected_rows(expect) if expect else None
        executor = make_executor([engine_spec(topology, topo, name, timeline)], workers, ray, batch_size, captures)
    engine = _Engine(executor)
    versions = engine if timeline else None
    name = executor.engine_names[0]
    _mark("compiled")
    try:
        if save_failures:
            from sgdp.pipeline.counterexamples import ReplayFailures

            failures = ReplayFailures(save_failures)
        else:
            failures = None
        # from here on, every output is partial until commit() (sgdp.pipeline.outputs)
        outputs = OutputDir(out_dir, inputs=[*captures, *([expect] if expect else [])])
    except BaseException:
        executor.close()  # no worker outlives a run that could not start (the API may go on)
        raise
    summary = Summary(name)
    result = ReplayResult({})
    writer = splits = bar = None
    start = time.perf_counter()
    try:
        writer = VerdictWriter(out_dir, verdicts, executor.names[0],
                               path=outputs.partial(f"verdicts.{verdicts}") if verdicts != "none" else None)
        if split:
            splits = tuple(SplitWriter(outputs.partial(n), outputs.final(n)) for n in ("allowed.pcap", "denied.pcap"))
        bar = _progress_bar(captures) if progress else None
        index = 0
        try:
            for batch, (vb,) in executor.run(_marked(read_batches(
                    captures, batch_size, keep_frames=split, tees=failures.tees(captures) if failures is not None else None,
                    blocks=executor.blocks))):
                summary.add(vb, batch)
                summary.note_unmodelled(batch, vb)
                writer.write(batch, vb)
                if expected is not None:
                    bad = _compare(result, expected, index, writer, batch, vb)
                    if failures is not None:
                        failures.add(batch, index, bad)
                if splits is not None:
                    _split(splits, batch, vb)
                index += len(batch)
                if bar is not None:
                    bar.update(batch)
        except InputError as exc:  # a corrupt capture: the packets before it count (S15)
            result.error = exc
        _mark("packets_done")
        elapsed = time.perf_counter() - start
        writer.close()
        if splits is not None:
            for s in splits:
                s.close()
        if expected is not None and result.error is None:
            extra = sum(1 for _ in expected)
            if extra:
                result.difference_count += extra
                _note(result, f"the expected verdict file has {extra} more row(s) than the {index} packet(s) replayed")
        result.summary = _summary(summary, engine, versions, elapsed, result.error, topology, captures)
        result.unmodelled_top = summary.top_unmodelled()
        if failures is not None:
            result.failures_file = failures.write(captures, batch_size)
            result.failures_packets = failures.written
        outputs.commit(result.summary)
    except BaseException as exc:  # a write error, a signal: nothing of this run reads as finished
        for w in (writer, *(splits or ())):
            if w is not None:
                w.discard()
        if failures is not None:
            failures.close_spools()
        try:
            cut = _summary(summary, engine, versions, time.perf_counter() - start, exc, topology, captures)
        except Exception:  # the engine was stopped mid-batch: the counts are enough
            cut = {"complete": False, "error": _why(exc), "packets": summary.packets}
        outputs.abort(cut)
        raise
    finally:
        executor.close()  # stops every worker (also on Ctrl-C or a worker's failure)
        if bar is not None:
            bar.close()
    _mark("end")
    return result


class _Engine:
    """The executor's end-of-run state where ``_summary`` expects an engine (and a timeline)."""

    def __init__(self, executor: Any):
        self.executor = executor
        self.state: dict[str, Any] | None = None

    def _state(self) -> dict[str, Any]:
        if self.state is None:
            self.state = self.executor.states()[0]
        return self.state

    def rule_hits(self) -> list[dict[str, Any]]:
        return self._state()["rule_hits"]

    def summary(self) -> list[dict[str, Any]]:
        return self._state()["versions"]


def _summary(summary: Summary, engine, versions, elapsed: float, error: BaseException | None,
             topology: str, captures: list[str]) -> dict[str, Any]:
    """summary.json: SPEC §5's keys, then ``complete`` and, when the run did not complete, ``error``."""
    out = summary.as_dict(engine.rule_hits(), elapsed)
    if versions is not None:
        out["versions"] = versions.summary()
    # where the inputs were, so `sgdp report DIR` finds them (absolute: the report may run elsewhere)
    out["topology"] = os.path.abspath(topology)
    out["captures"] = [c if c == "-" else os.path.abspath(c) for c in captures]
    out["complete"] = error is None
    if error is not None:
        out["error"] = _why(error)
    return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by SIGINT"
    return str(exc) or type(exc).__name__


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
            _note(result, f"packet {i} ({display_name(batch.path)} #{batch.first + k + 1}): {diffs}")
    return bad


def _note(result: ReplayResult, text: str) -> None:
    if len(result.differences) < MAX_DIFFERENCES:
        result.differences.append(text)


def _split(splits: tuple[SplitWriter, SplitWriter], batch: CaptureBatch, vb) -> None:
    for code, out in ((VERDICT_CODE["allow"], splits[0]), (VERDICT_CODE["deny"], splits[1])):
        for record in batch_records(batch, np.flatnonzero(vb.verdict == code)):
            out.add(*record)


class _Progress:
    """A tqdm bar over the bytes of the captures (tqdm is a dependency; shown only on a terminal)."""

    def __init__(self, captures: list[str]):
        from tqdm import tqdm

        streams = any(is_stream(p) for p in captures)  # no size known: the bar counts bytes only
        self.sizes = {p: os.path.getsize(p) for p in captures if not is_stream(p)}
        self.done: dict[str, int] = {}
        self.bar = tqdm(total=None if streams else sum(self.sizes.values()), unit="B", unit_scale=True, desc="replay",
                        file=sys.stderr, leave=False)

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
