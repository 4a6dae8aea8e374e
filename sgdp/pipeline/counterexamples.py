"""Counterexample captures: the packets that failed an expectation, with the earlier packets of their
flows (so a TCP handshake is there), as a pcap a user opens in Wireshark.

* `sgdp test --save-failures DIR`: one capture per failing scenario, ``DIR/<scenario file>.pcap``
  (``-2``, ``-3``… appended when two scenario files have the same name). Packet steps are encoded
  by :func:`sgdp.capture.frames.packet_to_frame` with their step times; capture steps contribute their
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
from typing import Any

import numpy as np

from sgdp.errors import InputError, UsageError
from sgdp.pipeline.flows import FlowTable
from sgdp.pipeline.outputs import cannot_write, remove_quietly
from sgdp.capture import CaptureBatch, is_stream, read_batches

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
        try:  # an earlier run's file would read as this run's differences
            remove_quietly(self.path)
        except OSError as exc:
            raise cannot_write(self.path, exc) from None
        self.selection = FlowSelection()
        self.written = 0
        self.spools: dict[str, str] = {}  # a stream capture -> the copy of its bytes for the second pass
        self._tees: dict[str, Any] = {}

    def tees(self, captures: list[str]) -> dict[str, Any]:
        """Files that get a copy of the bytes of every stream capture (standard input, a FIFO) as the
        replay reads it: the second pass reads those copies (removed when written)."""
        import tempfile

        for path in captures:
            if is_stream(path) and path not in self._tees:
                fd, spool = tempfile.mkstemp(prefix=".sgdp-spool-", suffix=".capture", dir=os.path.dirname(self.path))
                self.spools[path] = spool
                self._tees[path] = os.fdopen(fd, "wb")
        return self._tees

    def close_spools(self) -> None:
        for fh in self._tees.values():
            fh.close()
        for spool in self.spools.values():
            remove_quietly(spool)
        self._tees, self.spools = {}, {}

    def add(self, batch: CaptureBatch, first_index: int, bad_rows: list[int]) -> None:
        """One replayed batch (every batch, in order)."""
        self.selection.mark(batch.columns, first_index, bad_rows)

    def write(self, captures: list[str], batch_size: int) -> str | None:
        """The second pass: copy the frames; the file's path (None when nothing differed)."""
        try:
            for fh in self._tees.values():
                fh.flush()
            return self._write([self.spools.get(p, p) for p in captures], batch_size)
        finally:
            self.close_spools()

    def _write(self, captures: list[str], batch_size: int) -> str | None:
        from sgdp.pipeline.split import batch_records, write_split_file

        if self.selection.empty:
            return None
        stop = self.selection.stop

        def records():
            index = 0
            try:
                for batch in read_batches(captures, batch_size, keep_frames=True):
                    if index > stop:
                        break
                    yield from batch_records(batch, self.selection.select(batch.columns, index))
                    index += len(batch)
            except InputError:
                pass  # the replay met the same error after these packets and reports it

        self.written = write_split_file(self.path, records())
        return self.path
