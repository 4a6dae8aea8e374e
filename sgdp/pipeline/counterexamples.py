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

Flows are those of :mod:`sgdp.pipeline.flows`. Packets keep their order and capture times.
"""

from __future__ import annotations

import os

import numpy as np

from sgdp.errors import InputError, UsageError
from sgdp.pipeline.flows import FlowTable
from sgdp.capture import CaptureBatch, read_batches

REPLAY_FILE = "differences.pcap"


def make_failures_dir(directory: str) -> None:
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


# ----------------------------------------------------------------------------------------- replay


class ReplayFailures:
    """Collects the flows of the packets that differ from `--expect` during a replay, then writes them."""

    def __init__(self, directory: str):
        make_failures_dir(directory)
        self.path = os.path.join(directory, REPLAY_FILE)
        self.selection = FlowSelection()
        self.written = 0

    def add(self, batch: CaptureBatch, first_index: int, bad_rows: list[int]) -> None:
        """One replayed batch (every batch, in order)."""
        self.selection.mark(batch.columns, first_index, bad_rows)

    def write(self, captures: list[str], batch_size: int) -> str | None:
        """The second pass: copy the frames; the file's path (None when nothing differed)."""
        from sgdp.pipeline.split import FrameSource, SplitWriter

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
