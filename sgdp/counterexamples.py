"""Counterexample captures: the packets that failed an expectation, with the earlier packets of their
flows (so a TCP handshake is there), as a pcap a user opens in Wireshark.

* `sgdp test --save-failures DIR`: one capture per failing scenario, ``DIR/<scenario file>.pcap``
  (``-2``, ``-3``… appended when two scenario files have the same name). Packet steps are encoded
  by :func:`sgdp.frames.packet_to_frame` with their step times; capture steps contribute their
  original frames. Flows span steps (a crafted SYN and a captured reply are one flow).
* `sgdp replay --expect FILE --save-failures DIR`: ``DIR/differences.pcap``, the original frames
  copied from the captures. The replay notes the flow of every differing packet (one entry per
  flow); a second pass over the captures, which decodes headers but runs no dataplane, copies every
  packet of those flows up to the flow's last differing packet, and every differing packet outside a
  flow (malformed, not IP).

Flows are those of :mod:`sgdp.flows`. Packets keep their order and capture times.
"""

from __future__ import annotations

import os
import re

import numpy as np

from sgdp.errors import InputError, UsageError
from sgdp.flows import FlowTable
from sgdp.frames import LINKTYPE_ETHERNET, packet_to_frame, timestamp
from sgdp.ingest import CaptureBatch, read_batches
from sgdp.packet import PacketBatch

REPLAY_FILE = "differences.pcap"


def _mkdir(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--save-failures {directory}: {exc.strerror}") from None


class FlowSelection:
    """Which packets of a sequence to save: the marked (failing) ones and the earlier packets of their
    flows. Two passes over the same packets in the same order: :meth:`mark` in the first (every
    batch, so flow ids are those of the second pass), :meth:`select` in the second. Memory: one entry
    per flow, and one per marked packet outside a flow."""

    def __init__(self) -> None:
        self.table = FlowTable()
        self.last: dict[int, int] = {}  # flow id -> position of its last marked packet
        self.loose: set[int] = set()  # marked packets in no flow (malformed, not IP)
        self._second: FlowTable | None = None
        self._last_arr: np.ndarray | None = None

    def mark(self, columns: dict[str, np.ndarray], first: int, rows: list[int]) -> None:
        fid = self.table.assign(columns)
        for r in rows:
            f = int(fid[r])
            if f >= 0:
                self.last[f] = max(self.last.get(f, -1), first + r)
            else:
                self.loose.add(first + r)

    @property
    def empty(self) -> bool:
        return not self.last and not self.loose

    @property
    def stop(self) -> int:
        """The position of the last packet to save."""
        return max(list(self.last.values()) + list(self.loose), default=-1)

    def select(self, columns: dict[str, np.ndarray], first: int) -> np.ndarray:
        """The rows of a batch to save (second pass)."""
        if self._second is None:
            self._second = FlowTable()
            self._last_arr = np.full(len(self.table) + 1, -1, np.int64)
            for f, i in self.last.items():
                self._last_arr[f] = i
        last = self._last_arr
        assert last is not None
        fid = self._second.assign(columns)
        pos = np.arange(first, first + len(fid))
        known = (fid >= 0) & (fid < len(last) - 1)
        take = known & (pos <= last[np.where(known, fid, len(last) - 1)])
        if self.loose:
            take |= np.isin(pos, sorted(self.loose))
        return np.flatnonzero(take)


# ------------------------------------------------------------------------------------- scenarios


def _scenario_chunks(scenario, source):
    """The scenario's packets in order, in chunks: (columns, frames(rows) -> records, step ids).

    Consecutive packet steps form one chunk of crafted frames; a capture step gives its batches.
    """
    from sgdp.scenario import CaptureStep

    pending: list = []

    def crafted(steps):
        batch = PacketBatch.from_packets([st.packet for st in steps])

        def frames(rows):
            for i in rows:
                pkt = steps[i].packet
                frame = packet_to_frame(pkt)
                sec, nsec = timestamp(pkt.ts)
                yield LINKTYPE_ETHERNET, sec, nsec, len(frame), frame
        return batch.columns, frames, ("packets", [st.index for st in steps])

    for step in scenario.steps:
        if not isinstance(step, CaptureStep):
            pending.append(step)
            continue
        if pending:
            yield crafted(pending)
            pending = []
        try:
            for batch in read_batches([step.capture]):
                def frames(rows, batch=batch):
                    for i, frame in source.frames(batch, np.asarray(rows, np.int64)):
                        yield int(batch.linktype[i]), int(batch.ts_sec[i]), int(batch.ts_nsec[i]), int(batch.wirelen[i]), frame
                yield batch.columns, frames, ("capture", step.index, batch.first)
        except InputError:
            pass  # the scenario run reported it
    if pending:
        yield crafted(pending)


def save_scenario_failures(result, directory: str, used: set[str] | None = None) -> str | None:
    """Write the capture of a failing scenario (a :class:`sgdp.scenario.ScenarioResult`); its path.

    Packet steps are encoded by :func:`sgdp.frames.packet_to_frame`; capture steps contribute their
    original frames."""
    from sgdp.replay import FrameSource, SplitWriter
    from sgdp.scenario import CaptureFailure

    if result.passed:
        return None
    _mkdir(directory)
    failed_steps = {f.step.index for f in result.failures if not isinstance(f, CaptureFailure)}
    failed_packets = {f.step.index: set(f.indexes) for f in result.failures if isinstance(f, CaptureFailure)}

    def bad_rows(columns, what) -> list[int]:
        if what[0] == "packets":
            return [r for r, idx in enumerate(what[1]) if idx in failed_steps]
        wanted = failed_packets.get(what[1], ())
        return [r for r in range(len(columns["ts"])) if what[2] + r in wanted] if wanted else []

    selection = FlowSelection()
    source = FrameSource()
    try:
        pos = 0
        for columns, _, what in _scenario_chunks(result.scenario, source):
            selection.mark(columns, pos, bad_rows(columns, what))
            pos += len(columns["ts"])
        path = os.path.join(directory, _file_name(result.scenario.file, used) + ".pcap")
        out = SplitWriter(path)
        try:
            pos = 0
            stop = selection.stop
            for columns, frames, _ in _scenario_chunks(result.scenario, source):
                if pos > stop:
                    break
                for record in frames(selection.select(columns, pos).tolist()):
                    out.add(*record)
                pos += len(columns["ts"])
        finally:
            out.close()
    finally:
        source.close()
    return path


def _file_name(scenario_file: str, used: set[str] | None) -> str:
    base = os.path.basename(scenario_file)
    for suffix in (".sgdp.yaml", ".sgdp.yml", ".yaml", ".yml", ".json"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base) or "scenario"
    used = used if used is not None else set()
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base}-{k}"
    used.add(name)
    return name


# ----------------------------------------------------------------------------------------- replay


class ReplayFailures:
    """Collects the flows of the packets that differ from `--expect` during a replay, then writes them."""

    def __init__(self, directory: str):
        _mkdir(directory)
        self.path = os.path.join(directory, REPLAY_FILE)
        self.selection = FlowSelection()
        self.written = 0

    def add(self, batch: CaptureBatch, first_index: int, bad_rows: list[int]) -> None:
        """One replayed batch (every batch, in order)."""
        self.selection.mark(batch.columns, first_index, bad_rows)

    def write(self, captures: list[str], batch_size: int) -> str | None:
        """The second pass: copy the frames; the file's path (None when nothing differed)."""
        from sgdp.replay import FrameSource, SplitWriter

        if self.selection.empty:
            return None
        stop = self.selection.stop
        out, source = SplitWriter(self.path), FrameSource()
        index = 0
        try:
            for batch in read_batches(captures, batch_size):
                if index > stop:
                    break
                for i, frame in source.frames(batch, self.selection.select(batch.columns, index)):
                    out.add(int(batch.linktype[i]), int(batch.ts_sec[i]), int(batch.ts_nsec[i]), int(batch.wirelen[i]), frame)
                    self.written += 1
                index += len(batch)
        except InputError:
            pass  # the replay met the same error after these packets and reports it
        finally:
            out.close()
            source.close()
        return self.path
