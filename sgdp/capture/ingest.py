"""Capture ingest: pcap/pcapng files -> packet batches (S15, S16).

The compiled parser (``sgdp.capture._ingest``) decodes records from a byte buffer into NumPy columns; this
module does the I/O around it: it reads the file in blocks into one reusable buffer (grown only up
to the largest record, at most 16 MiB), hands the parser a fresh set of columns per batch, and turns
its result codes into batches and errors. Memory depends on the batch size and the largest record,
never on the file size (S16).

What the reader decides (S15):

* Every record becomes one row: ``status`` OK, NON_IP (frames that carry no IP: ARP, LLDP, other
  link types) or MALFORMED, with a ``detail`` code saying why (text: :func:`detail_text`).
* MALFORMED: a header the reader needs is missing or invalid (link layer, IP, IPv6 extension
  headers, TCP/UDP/ICMP header), or the IP datagram is longer than its frame on the wire (the
  record's original length). A packet cut short by the snap length (``caplen < wirelen``) is OK
  when the fields classification needs were captured: the IP header with its extension headers,
  the TCP ports and flags, the UDP ports, the ICMP/ICMPv6 type and code (an echo's identifier; an
  error's quoted addresses, protocol and ports or identifier, as far as the quote had them on the
  wire). Such a row has the ``truncated`` flag (``FLAG["truncated"]``); a frame whose IP datagram
  is complete is not truncated even when the capture dropped trailing bytes after it (Ethernet
  padding, FCS).
* The last record cut short by the end of the file is MALFORMED ("record cut short by the end of
  the file") when its declared captured length is plausible (at most the snap length and 262144
  bytes); a record claiming more, or anything else structurally wrong, raises
  :class:`~sgdp.errors.InputError` naming the file and the byte offset, after every batch before it
  was yielded.
* Non-first fragments carry no ports; IPv6 extension headers (hop-by-hop, routing, destination
  options, AH, fragment) are walked to the upper-layer protocol; an ICMP/ICMPv6 error's quoted
  header goes to ``inner_*``.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np

from sgdp.capture import _ingest
from sgdp.errors import InputError
from sgdp.capture.packet import PACKET_COLUMNS, PacketBatch
from sgdp.capture.frames import TIME_RANGE_TEXT

DEFAULT_BATCH_SIZE = 65536
READ_SIZE = 4 << 20  # bytes per read; the buffer grows beyond this only for a larger record

# Columns the reader records beside PACKET_COLUMNS.
EXTRA_COLUMNS: dict[str, np.dtype] = {
    "caplen": np.dtype(np.uint32),   # bytes of the frame present in the file
    "wirelen": np.dtype(np.uint32),  # the frame's length on the wire, as recorded
    "detail": np.dtype(np.uint16),   # why status is not OK (DETAIL codes; detail_text)
    "aux": np.dtype(np.uint32),      # the value the detail refers to (ethertype, version, length)
    "flags": np.dtype(np.uint8),     # which fields were decoded (FLAG bits)
    "ts_sec": np.dtype(np.int64),    # exact capture time: seconds ...
    "ts_nsec": np.dtype(np.uint32),  # ... and nanoseconds
    "offset": np.dtype(np.uint64),   # file offset of the frame's first byte (for --split)
    "linktype": np.dtype(np.uint16), # the frame's link type
}
ALL_COLUMNS: dict[str, np.dtype] = {**PACKET_COLUMNS, **EXTRA_COLUMNS}

RESULT = _ingest.RESULT
FLAG = _ingest.FLAGS
DETAIL = _ingest.DETAILS
ERROR = _ingest.ERRORS
MAX_CAPLEN = _ingest.LIMITS["max_caplen"]
MAX_BLOCK = _ingest.LIMITS["max_block"]

_R_FULL, _R_NEED, _R_END, _R_ERROR = RESULT["full"], RESULT["need"], RESULT["end"], RESULT["error"]
# details that mean "bytes missing": prefixed with the snap-length cut when caplen < wirelen
_TRUNCATIONS = {DETAIL[k] for k in ("trunc_link", "trunc_vlan", "trunc_ip4", "trunc_ip4_opt", "dgram_cut",
                                    "trunc_ip6", "trunc_ext", "trunc_tcp", "trunc_udp", "trunc_icmp",
                                    "trunc_quote")}
_DETAIL_TEXT = {
    DETAIL["none"]: lambda a: "",
    DETAIL["ethertype"]: lambda a: f"ethertype 0x{a:04x} is not IP",
    DETAIL["llc"]: lambda a: f"802.3/LLC frame (length/type field {a}), not IP",
    DETAIL["linktype"]: lambda a: f"link type {a} carries no IP that sgdp decodes",
    DETAIL["family"]: lambda a: f"loopback address family {a} is not IP",
    DETAIL["cut_eof_hdr"]: lambda a: f"record header cut short by the end of the file ({a} bytes present)",
    DETAIL["trunc_link"]: lambda a: "frame shorter than its link-layer header",
    DETAIL["trunc_vlan"]: lambda a: "VLAN tag cut short",
    DETAIL["ip_version"]: lambda a: f"IP version {a} is neither 4 nor 6",
    DETAIL["ip6_version"]: lambda a: f"IPv6 frame with IP version {a}",
    DETAIL["trunc_ip4"]: lambda a: "IPv4 header cut short",
    DETAIL["ip4_ihl"]: lambda a: f"IPv4 header length {a} is below 20",
    DETAIL["trunc_ip4_opt"]: lambda a: f"IPv4 options cut short (header length {a})",
    DETAIL["ip4_totlen"]: lambda a: f"IPv4 total length {a} is shorter than its header",
    DETAIL["dgram_cut"]: lambda a: f"IP datagram of {a} bytes is longer than the bytes captured",
    DETAIL["trunc_ip6"]: lambda a: "IPv6 header cut short",
    DETAIL["trunc_ext"]: lambda a: f"IPv6 extension header {a} cut short",
    DETAIL["trunc_tcp"]: lambda a: "TCP header cut short",
    DETAIL["tcp_doff"]: lambda a: f"TCP data offset {a} is below 5",
    DETAIL["trunc_udp"]: lambda a: "UDP header cut short",
    DETAIL["trunc_icmp"]: lambda a: "ICMP header cut short",
    DETAIL["ext_opts"]: lambda a: f"IPv6 extension header {a} has malformed options",
    DETAIL["dgram_wire"]: lambda a: f"IP datagram of {a} bytes is longer than its frame on the wire",
    DETAIL["trunc_quote"]: lambda a: f"the header quoted by the ICMP error (type {a}) is cut short",
}


def detail_text(code: int, aux: int = 0, caplen: int = 0, wirelen: int = 0) -> str:
    """The text of a packet's ``detail`` code ('' for none)."""
    code, aux = int(code), int(aux)
    if code == DETAIL["cut_eof"]:
        return f"record cut short by the end of the file ({caplen} of {aux} bytes present)"
    fmt = _DETAIL_TEXT.get(code)
    text = fmt(aux) if fmt else f"detail code {code}"
    if code in _TRUNCATIONS and caplen < wirelen:
        return f"cut by the snap length ({caplen} of {wirelen} bytes captured): {text}"
    return text


# What each parser error code says; ``a`` and ``b`` are the values the parser recorded with it.
_ERROR_TEXTS: dict[str, Callable[[int, int], str]] = {
    "not_capture": lambda a, b: f"not a pcap or pcapng capture (it starts with bytes {a.to_bytes(4, 'little').hex(' ')})",
    "short_file": lambda a, b: "file is empty, not a capture" if a == 0 else f"file too short to be a capture ({a} bytes)",
    "pcap_version": lambda a, b: f"unsupported pcap format version {a}.{b} (expected 2.x)",
    "linktype_reserved": lambda a, b: f"pcap link-type field 0x{a:08x} has reserved bits set",
    "caplen": lambda a, b: f"record claims {a} captured bytes, more than {b}: corrupt capture",
    "cut_implausible": lambda a, b: (f"file ends inside a record that claims {a} captured bytes, more than the snap "
                                     f"length {b}: corrupt capture"),
    "shb_bom": lambda a, b: f"pcapng section header has an invalid byte-order magic 0x{a:08x}",
    "shb_version": lambda a, b: f"unsupported pcapng version {a}.{b} (expected 1.0)",
    "block_len": lambda a, b: f"pcapng block total length {a} is invalid (a multiple of 4, at least 12)",
    "block_too_big": lambda a, b: f"pcapng block total length {a} is more than {b}: corrupt capture",
    "block_trailer": lambda a, b: f"pcapng block total length {a} does not match its trailing copy {b}",
    "option": lambda a, b: f"pcapng option {a} of length {b} runs past the end of its block",
    "iface": lambda a, b: ("pcapng packet block before any interface description block" if a == 0 and b == 0
                           else f"pcapng packet refers to interface {a}, but its section describes {b}"),
    "pkt_data": lambda a, b: f"pcapng packet data ({a} bytes) runs past the end of its {b}-byte block",
    "too_many_ifaces": lambda a, b: f"more than {a} interfaces in one pcapng section",
    "trailing": lambda a, b: f"file ends with {a} stray byte(s) after the last block",
    "tsresol": lambda a, b: f"unsupported pcapng if_tsresol value 0x{a:02x}",
    "block_short": lambda a, b: f"pcapng block of type 0x{a:08x} is too short ({b} bytes)",
    "ts_range": lambda a, b: _ts_range_text(a & 0xFFFFFFFFFFFFFFFF, b),
    "nomem": lambda a, b: "out of memory",
}


def _ts_range_text(seconds: int, offset: int) -> str:
    value = seconds + offset
    how = f"{seconds} s + if_tsoffset {offset} s = {value} s" if offset else f"{value} s"
    return f"packet timestamp {how} since 1970 is outside {TIME_RANGE_TEXT}"


def _error_text(code: int, a: int, b: int) -> str:
    for name, text in _ERROR_TEXTS.items():
        if ERROR.get(name) == code:
            return text(a, b)
    return f"capture error {code}"


STDIN = "-"  # the capture argument that means standard input


def display_name(path: str) -> str:
    """How messages name a capture: its path, or "standard input" for ``-``."""
    return "standard input" if path == STDIN else path


def is_stream(path: str) -> bool:
    """Is the capture read once, front to back, with no way back (standard input, a FIFO, a socket)?"""
    if path == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def capture_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a capture (without reading it), or None. The same text in every
    command: a missing file, a broken link, a symbolic-link loop, a directory, a device, no permission."""
    if path == STDIN:
        try:
            fd = sys.stdin.fileno() if sys.stdin is not None else -1
        except (OSError, ValueError):
            fd = -1
        if fd < 0:
            return "standard input is closed"
        if os.isatty(fd):
            return "standard input is a terminal, not a capture (pipe one in: tcpdump -w - | sgdp ...)"
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop, not a capture file"
        if exc.errno == errno.ENOENT:
            if os.path.islink(path):
                return f"broken symbolic link (to {os.readlink(path)!r}), no such capture file"
            return "no such capture file"
        if exc.errno == errno.ENOTDIR:
            return "no such capture file (a part of the path is not a directory)"
        if exc.errno == errno.EACCES:
            return "permission denied (cannot look up the file)"
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return "is a directory, not a capture file"
    if stat.S_ISBLK(mode):
        return "is a block device, not a capture file"
    if stat.S_ISCHR(mode):
        return "is a character device, not a capture file or a stream (pipe a capture in with -)"
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return "is not a regular file or a stream"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def check_captures(paths: Iterable[str]) -> None:
    """Raise InputError for the first capture argument that cannot be read (and for ``-`` twice)."""
    stdin = 0
    for path in paths:
        path = os.fspath(path)
        problem = capture_problem(path)
        if problem is not None:
            raise InputError(f"{display_name(path)}: {problem}" if path != STDIN else f"-: {problem}")
        stdin += path == STDIN
        if stdin > 1:
            raise InputError("-: standard input can be read only once")


_COLUMN_SKEW = 320  # bytes between columns: 5 cache lines, so no two columns share a cache set


def block_size(capacity: int) -> int:
    """Bytes of one block of ``new_columns`` (all columns of ``capacity`` rows)."""
    return sum(capacity * dtype.itemsize + _COLUMN_SKEW for dtype in ALL_COLUMNS.values()) + 64


def new_columns(capacity: int, raw: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Empty ``ALL_COLUMNS`` of ``capacity`` rows, carved out of one allocation (``raw``, a uint8
    block of ``block_size(capacity)`` bytes, when given: see :class:`BlockPool`).

    The parser writes all columns of a row at once; separately allocated large arrays all start at
    the same offset within a page and their rows then compete for the same cache sets (measured: a
    third of the throughput lost). One block with a skew of a few cache lines between columns avoids
    that. Each column is an ordinary C-contiguous array (a view of the block).
    """
    sizes = [(name, dtype, capacity * dtype.itemsize) for name, dtype in ALL_COLUMNS.items()]
    if raw is None:
        raw = np.empty(block_size(capacity), np.uint8)
    off = (-raw.ctypes.data) % 64
    cols = {}
    for name, dtype, size in sizes:
        cols[name] = raw[off:off + size].view(dtype)
        off += size + _COLUMN_SKEW
    return cols


class BlockPool:
    """Column blocks for the batches of a reader, used again once nothing refers to them.

    A batch's columns are views of one block of ~9.5 MB (64Ki rows). A fresh block is fresh memory:
    the kernel zeroes every page on first touch, which cost about a third of the reader's CPU
    (measured with perf: ``clear_page`` under the parser). A block that no batch, column, view or
    buffer refers to any more (its reference count is the pool's own) is handed out again instead.
    Every column of every row is written by the parser (``store`` writes the whole row), so nothing
    of the previous batch shows through. At most ``limit`` blocks are kept: a caller that holds on to
    every batch (``list(read_batches(...))``) just gets fresh blocks, as before.

    ``blocks``: blocks to hand out first (``block_size(capacity)`` bytes each, 64-byte aligned, each
    its own array whose base is not an array, so that views of it refer to it): the worker
    processes' executor gives the blocks of its shared memory, so that the reader decodes straight
    into memory the workers read (sgdp.pipeline.executors). A reader given a pool reads into it."""

    def __init__(self, capacity: int, limit: int = 12, blocks: list[np.ndarray] | None = None):
        self.capacity = capacity
        self.blocks: list[np.ndarray] = list(blocks or ())
        self.limit = max(limit, len(self.blocks))

    def columns(self) -> dict[str, np.ndarray]:
        for raw in self.blocks:
            # 3: the pool's list, the loop variable, getrefcount's argument; any column view or
            # buffer of the block adds one (views of views keep the block itself as their base)
            if sys.getrefcount(raw) == 3:
                return new_columns(self.capacity, raw)
        raw = np.empty(block_size(self.capacity), np.uint8)
        if len(self.blocks) < self.limit:
            self.blocks.append(raw)
        return new_columns(self.capacity, raw)


class CaptureBatch(PacketBatch):
    """A :class:`~sgdp.capture.packet.PacketBatch` read from a capture, with the reader's own columns.

    ``caplen``, ``wirelen``, ``detail``, ``aux``, ``flags``, ``ts_sec``, ``ts_nsec`` (dtypes in
    ``EXTRA_COLUMNS``); ``path`` is the capture and ``first`` the 0-based number of its first packet
    in that file.
    """

    __slots__ = ("caplen", "wirelen", "detail", "aux", "flags", "ts_sec", "ts_nsec", "offset", "linktype", "path", "first",
                 "frames")

    def __init__(self, columns: dict[str, np.ndarray], path: str = "", first: int = 0,
                 frames: tuple[bytes, np.ndarray] | None = None):
        super().__init__(columns)
        for name, dtype in EXTRA_COLUMNS.items():
            col = columns.get(name)
            if col is None or col.dtype != dtype or col.ndim != 1 or len(col) != len(self):
                raise ValueError(f"capture batch: column {name!r} must be 1-D {dtype} with {len(self)} rows")
            setattr(self, name, col)
        self.path = path
        self.first = first
        self.frames = frames  # (bytes, start of each row's frame in them) when the reader kept them

    def frame(self, i: int) -> bytes:
        """The captured bytes of row ``i`` (the batch must have been read with ``keep_frames``)."""
        if self.frames is None:
            raise ValueError(f"{self.path}: the frames of this batch were not kept (read with keep_frames=True)")
        blob, pos = self.frames
        start = int(pos[i])
        return blob[start:start + int(self.caplen[i])]

    def details(self) -> list[str]:
        """The detail text of every row ('' for OK rows)."""
        return [detail_text(d, a, c, w) if d else "" for d, a, c, w in
                zip(self.detail.tolist(), self.aux.tolist(), self.caplen.tolist(), self.wirelen.tolist())]


class CaptureReader:
    """One capture file, read as a stream of :class:`CaptureBatch` of at most ``batch_size`` rows.

    Iterate it (once). Raises :class:`~sgdp.errors.InputError` ("FILE: byte offset N: ...") when the
    file cannot be read, is not a capture, or is corrupt; the batches before the error are yielded
    first. Use as a context manager, or call :meth:`close`, to release the file early.
    """

    def __init__(self, path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE, read_size: int = READ_SIZE,
                 keep_frames: bool = False, tee: BinaryIO | None = None, blocks: BlockPool | None = None):
        """``path`` may be ``-`` (standard input) or a FIFO: read as a stream. ``keep_frames``: every
        batch carries its frames (``batch.frame(i)``), so nothing has to read the capture again;
        ``tee``: a file that gets a copy of every byte read (to read a stream a second time);
        ``blocks``: where the batches' columns go (a :class:`BlockPool` of ``batch_size`` rows;
        default: a pool of this reader's own)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(read_size, bool) or not isinstance(read_size, int) or read_size < 1:
            raise ValueError(f"read_size must be a positive integer, got {read_size!r}")
        self.path = os.fspath(path)
        self.batch_size = batch_size
        self.read_size = read_size
        self.keep_frames = keep_frames
        self.packets = 0
        self._tee = tee
        self._parser = _ingest.Parser()
        self._blocks = blocks if blocks is not None and blocks.capacity == batch_size else None
        self._started = False
        self.name = display_name(self.path)
        check_captures([self.path])
        try:  # streams unbuffered: each read returns what has arrived, so batches flow as packets come
            if self.path == STDIN:
                self._file = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
            else:
                self._file = open(self.path, "rb", buffering=0 if is_stream(self.path) else -1)
        except OSError as exc:
            # check_captures above has named every problem it can see; this is a race or an odd errno
            raise InputError(f"{self.name}: {capture_problem(self.path) or f'cannot read: {exc.strerror or exc}'}") from None

    # -- facts about the file (known once the header was read) --------------------------------
    @property
    def format(self) -> str:
        return ("", "pcap", "pcapng")[self._parser.fmt]

    @property
    def linktype(self) -> int:
        """pcap: the file's link type (pcapng has one per interface)."""
        return self._parser.linktype

    @property
    def snaplen(self) -> int:
        return self._parser.snaplen

    def close(self) -> None:
        self._file.close()  # (standard input is opened with closefd=False: it stays open)

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[CaptureBatch]:
        if self._started:
            raise RuntimeError(f"{self.path}: a capture can be iterated only once")
        self._started = True
        return self._batches()

    def _new_batch(self) -> tuple[_ingest.Batch, dict[str, np.ndarray]]:
        if self._blocks is None:
            self._blocks = BlockPool(self.batch_size)
        cols = self._blocks.columns()
        return _ingest.Batch(cols), cols

    def _emit(self, batch: _ingest.Batch, cols: dict[str, np.ndarray]) -> CaptureBatch:
        n = batch.n
        frames = None
        if self.keep_frames:
            frames = (b"".join(self._parts), self._pos[:n].copy())
            self._parts, self._kept = [], 0
        out = CaptureBatch({k: v[:n] for k, v in cols.items()}, self.path, self.packets, frames)
        self.packets += n
        return out

    def _keep(self, buf: np.ndarray, cols: dict[str, np.ndarray], n0: int, n1: int) -> None:
        """Copy the frames of rows n0..n1, just parsed, while they are in the buffer: records are in
        file order, so one slice of the buffer holds them all."""
        offs = cols["offset"][n0:n1].astype(np.int64) - self._base
        lo, hi = int(offs[0]), int(offs[-1]) + int(cols["caplen"][n1 - 1])
        self._parts.append(bytes(buf[lo:hi]))
        self._pos[n0:n1] = self._kept + offs - lo
        self._kept += hi - lo

    def _read(self, buf: np.ndarray, end: int) -> int:
        try:
            got = self._file.readinto(memoryview(buf)[end:]) or 0
        except OSError as exc:
            raise InputError(f"{self.name}: byte offset {self._base + end}: {exc.strerror or exc}") from None
        if got and self._tee is not None:
            self._tee.write(memoryview(buf)[end:end + got])
        return got

    def _batches(self) -> Iterator[CaptureBatch]:
        parser = self._parser
        buf = np.empty(self.read_size, np.uint8)
        start = end = 0
        self._base = 0          # file offset of buf[0]
        eof = False
        batch, cols = self._new_batch()
        self._parts: list[bytes] = []
        self._kept = 0
        self._pos = np.empty(self.batch_size if self.keep_frames else 0, np.int64)
        try:
            while True:
                n0 = batch.n
                code, start = parser.feed(buf, start, end, eof, self._base, batch)
                if self.keep_frames and batch.n > n0:
                    self._keep(buf, cols, n0, batch.n)
                if code == _R_FULL:
                    yield self._emit(batch, cols)
                    batch, cols = self._new_batch()
                elif code == _R_NEED:
                    need = parser.need
                    if start:                       # keep the unread tail at the front
                        keep = end - start
                        buf[:keep] = buf[start:end]
                        self._base += start
                        start, end = 0, keep
                    if need > len(buf):             # a record larger than the buffer (<= 16 MiB)
                        grown = np.empty(max(need, 2 * len(buf)), np.uint8)
                        grown[:end] = buf[:end]
                        buf = grown
                    while end < need and not eof:
                        got = self._read(buf, end)
                        if got == 0:
                            eof = True
                        end += got
                elif code == _R_END:
                    if batch.n:
                        yield self._emit(batch, cols)
                    return
                else:
                    if batch.n:
                        yield self._emit(batch, cols)
                    raise InputError(f"{self.name}: byte offset {parser.err_offset}: "
                                     f"{_error_text(parser.err, parser.err_a, parser.err_b)}")
        finally:
            self.close()


def open_capture(path: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE, keep_frames: bool = False,
                 tee: BinaryIO | None = None, blocks: BlockPool | None = None) -> CaptureReader:
    """Open a pcap or pcapng file (``-``: standard input; a FIFO) for streaming; iterate the result for
    :class:`CaptureBatch` es."""
    return CaptureReader(path, batch_size, keep_frames=keep_frames, tee=tee, blocks=blocks)


def read_batches(paths: Iterable[str | os.PathLike] | str | os.PathLike,
                 batch_size: int = DEFAULT_BATCH_SIZE, keep_frames: bool = False,
                 tees: dict[str, BinaryIO] | None = None, blocks: BlockPool | None = None) -> Iterator[CaptureBatch]:
    """The batches of several captures, one file after the other (a batch never spans two files).

    ``keep_frames``: each batch carries its frames; ``tees``: capture path -> a file that gets a
    copy of the bytes read from it; ``blocks``: where the columns go (:class:`BlockPool`; the
    executors' ``blocks``)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    check_captures(paths)
    for path in paths:
        with open_capture(path, batch_size, keep_frames, (tees or {}).get(path), blocks) as capture:
            yield from capture
