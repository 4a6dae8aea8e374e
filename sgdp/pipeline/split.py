"""The original frames of replayed packets, written back out: ``--split`` (``allowed.pcap`` /
``denied.pcap``) and the counterexample captures of ``--save-failures``.

:class:`SplitWriter` writes records as nanosecond pcap, switching to pcapng when link types mix;
:func:`batch_records` gives the records of a batch's rows from the frames the batch carries.
"""

from __future__ import annotations

import os
import struct
from typing import Iterable, Iterator

import numpy as np

from sgdp.capture import TIME_RANGE_TEXT, CaptureBatch, in_time_range
from sgdp.errors import OutputError
from sgdp._atomic import PARTIAL, cannot_write, discard, move_into_place


class SplitWriter:
    """``allowed.pcap`` / ``denied.pcap``: the original frames of the replayed packets.

    Written as nanosecond pcap with the link type of the first frame. Captures of several link
    types (a pcap has one) switch the file to pcapng at the first frame of another link type, and so
    does a frame later than 2106-02-07 06:28:15 UTC (a pcap's seconds are 32 bits): what
    was written so far is converted once, streaming, and every frame after it is appended as an
    enhanced packet block of an interface per link type (docs/semantics.md). tshark reads both.
    Unmodelled and malformed packets go to neither file. Memory does not grow with the capture.
    """

    def __init__(self, path: str, label: str | None = None):
        """Writes ``path``; errors name ``label`` (the final name of a partial file) or ``path``, as
        an OutputError."""
        self.path = path
        self.label = label or path
        try:
            self.fh = open(path, "wb")
        except OSError as exc:
            raise cannot_write(self.label, exc) from None
        self.link: int | None = None
        self.ng_ifaces: dict[int, int] | None = None   # pcapng: link type -> interface id
        self.records: list[tuple[int, int, int, int, bytes]] = []
        self.count = 0

    def add(self, link: int, sec: int, nsec: int, wirelen: int, frame: bytes) -> None:
        """One frame (an OutputError when the disk refuses)."""
        try:
            self._add(link, sec, nsec, wirelen, frame)
        except OSError as exc:
            raise cannot_write(self.label, exc) from None

    def _add(self, link: int, sec: int, nsec: int, wirelen: int, frame: bytes) -> None:
        if self.link is None:
            self.link = link
        if not 0 <= sec <= 0xFFFFFFFF:  # rare: a time after 2106 (or before 1970, refused)
            if not in_time_range(sec, nsec):  # the reader and the scenario loader keep to the range
                raise OutputError(f"{self.label}: cannot write a frame at {sec} s + {nsec} ns: outside {TIME_RANGE_TEXT}")
            if self.ng_ifaces is None:
                self._switch_to_pcapng()   # a time after 2106: pcap has 32-bit seconds
        if self.ng_ifaces is None and link != self.link:
            self._switch_to_pcapng()   # another link type
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
            self.fh.write(struct.pack("<IIII", sec, nsec, len(frame), wirelen) + frame)  # sec < 2**32: see _add
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
        """Write what is pending and close the file (an OutputError when the disk refuses)."""
        try:
            try:
                if self.ng_ifaces is None:
                    self._flush_pcap()
            finally:
                self.fh.close()  # flushes too: may fail as well
        except OSError as exc:
            raise cannot_write(self.label, exc) from None

    def discard(self) -> None:
        """Close without caring for errors (the run is being abandoned), and remove the scratch file
        of a pcap-to-pcapng rewrite that was cut short."""
        for undo in (self.fh.close, lambda: os.remove(self.path + ".tmp")):
            try:
                undo()
            except OSError:
                pass


Record = tuple[int, int, int, int, bytes]  # link type, seconds, nanoseconds, wire length, frame


def write_split_file(path: str, records: Iterable[Record]) -> int:
    """Write ``records`` (as :meth:`SplitWriter.add` takes them) to ``path`` through ``path.partial``,
    renamed into place once every record is written and the file closed; any error or signal on the
    way removes the partial file (and leaves an earlier ``path`` as it was). Returns the count."""
    partial = path + PARTIAL
    out = SplitWriter(partial, path)
    try:
        for record in records:
            out.add(*record)
    except BaseException:
        out.discard()
        discard(partial)
        raise
    try:
        out.close()
    except BaseException:
        discard(partial)
        raise
    move_into_place(partial, path)
    return out.count


def _ng_block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def batch_records(batch: CaptureBatch, rows: np.ndarray | list[int]) -> Iterator[Record]:
    """The records ``(link type, seconds, nanoseconds, wire length, frame)`` of a batch's rows, for
    :meth:`SplitWriter.add`; the frames are the ones the batch carries (read with ``keep_frames``)."""
    if batch.frames is None:
        raise ValueError(f"{batch.path}: the batch was read without its frames (keep_frames=True)")
    for i in np.asarray(rows, np.int64).tolist():
        yield int(batch.linktype[i]), int(batch.ts_sec[i]), int(batch.ts_nsec[i]), int(batch.wirelen[i]), batch.frame(i)
