"""The original frames of replayed packets, written back out: ``--split`` (``allowed.pcap`` /
``denied.pcap``) and the counterexample captures of ``--save-failures``.

:class:`SplitWriter` writes records as nanosecond pcap, switching to pcapng when link types mix;
:class:`FrameSource` gives a batch's frames: those it carries, else read back from its capture by offset.
"""

from __future__ import annotations

import struct
from typing import Any, Iterator

import numpy as np

from sgdp.capture import CaptureBatch
from sgdp.pipeline.outputs import cannot_write


class SplitWriter:
    """``allowed.pcap`` / ``denied.pcap``: the original frames, copied from the captures by offset.

    Written as nanosecond pcap with the link type of the first frame; a frame of another link type
    switches that file to pcapng (one interface per link type), which Wireshark and tcpdump read
    alike. Unmodelled and malformed packets go to neither file.
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
        self.ng_ifaces: dict[int, int] | None = None
        self.records: list[tuple[int, int, int, int, bytes]] = []
        self.count = 0

    def add(self, link: int, sec: int, nsec: int, wirelen: int, frame: bytes) -> None:
        if self.link is None:
            self.link = link
        if link != self.link and self.ng_ifaces is None:
            self.ng_ifaces = {}
        self.records.append((link, sec, nsec, wirelen, frame))
        self.count += 1
        if len(self.records) >= 4096 and self.ng_ifaces is None:
            try:
                self._flush_pcap()
            except OSError as exc:
                raise cannot_write(self.label, exc) from None

    def _flush_pcap(self) -> None:
        if self.fh.tell() == 0:
            self.fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, self.link or 1))
        for _, sec, nsec, wirelen, frame in self.records:
            self.fh.write(struct.pack("<IIII", sec & 0xFFFFFFFF, nsec, len(frame), wirelen) + frame)
        self.records.clear()

    def close(self) -> None:
        """Write what is pending and close the file (an OutputError when the disk refuses)."""
        try:
            self._close()
        except OSError as exc:
            raise cannot_write(self.label, exc) from None

    def discard(self) -> None:
        """Close without caring for errors (the run is being abandoned)."""
        try:
            self.fh.close()
        except OSError:
            pass

    def _close(self) -> None:
        if self.ng_ifaces is None:
            try:
                self._flush_pcap()
            finally:
                self.fh.close()
            return
        # mixed link types: rewrite everything as pcapng
        self.fh.close()
        with open(self.path, "rb") as old:
            head = old.read(24)
            earlier = []
            while True:
                rec = old.read(16)
                if len(rec) < 16:
                    break
                sec, nsec, incl, orig = struct.unpack("<IIII", rec)
                earlier.append((self.link, sec, nsec, orig, old.read(incl)))
        del head
        with open(self.path, "wb") as fh:
            fh.write(_ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
            ifaces: dict[int, int] = {}
            for link, sec, nsec, wirelen, frame in earlier + self.records:
                if link not in ifaces:
                    ifaces[link] = len(ifaces)
                    tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # nanoseconds
                    fh.write(_ng_block(1, struct.pack("<HHI", link, 0, 262144) + tsresol))
                units = sec * 1_000_000_000 + nsec
                pad = b"\0" * (-len(frame) % 4)
                body = struct.pack("<IIIII", ifaces[link], units >> 32, units & 0xFFFFFFFF, len(frame), wirelen) + frame + pad
                fh.write(_ng_block(6, body))


def _ng_block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


class FrameSource:
    """The frames of a batch's rows: those the batch carries (read with ``keep_frames``, which works
    for streams too), else read back from the capture file by offset."""

    def __init__(self) -> None:
        self.files: dict[str, Any] = {}

    def frames(self, batch: CaptureBatch, rows: np.ndarray) -> Iterator[tuple[int, bytes]]:
        if batch.frames is not None:
            for i in rows.tolist():
                yield i, batch.frame(i)
            return
        fh = self.files.get(batch.path)
        if fh is None:
            fh = self.files[batch.path] = open(batch.path, "rb")
        for i in rows.tolist():
            fh.seek(int(batch.offset[i]))
            yield i, fh.read(int(batch.caplen[i]))

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
