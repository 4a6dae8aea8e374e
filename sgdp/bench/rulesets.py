"""ClassBench filter sets, header traces and first-match files (``../shared/classbench/README.md``).

* Filter (rule) file: one filter per line, ``@sip/len <TAB> dip/len <TAB> lo : hi <TAB> lo : hi <TAB>
  0xPP/0xMM <TAB> 0xFFFF/0xFFFF``; line order is priority (line 0 wins). The flags field is read
  for well-formedness and otherwise ignored, as the README's oracle and ``dpdk-test-acl`` do.
* Trace file: one header per line, 7 unsigned decimal integers ``sip dip sport dport proto flags
  genfilter``; only the first five matter.
* Match file: one decimal integer per trace line, the 0-based index of the first matching filter or
  -1.

Files may be gzip-compressed or plain (told apart by their first two bytes, not by their name).
Every malformed line raises :class:`sgdp.errors.InputError` naming the file, the 1-based line number
and the offending value. Addresses are IPv4; filters become :class:`sgdp.engine.compiler.RuleTable` rows
with ``l3`` = 4 and headers a :class:`sgdp.engine.compiler.Headers` batch.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass

import numpy as np

from sgdp.engine import Headers, RuleTable
from sgdp.errors import InputError

_RULE = re.compile(
    r"@(\d+)\.(\d+)\.(\d+)\.(\d+)/(\d+)\s+(\d+)\.(\d+)\.(\d+)\.(\d+)/(\d+)\s+"
    r"(\d+)\s*:\s*(\d+)\s+(\d+)\s*:\s*(\d+)\s+"
    r"0x([0-9a-fA-F]{1,2})/0x([0-9a-fA-F]{1,2})"
    r"(?:\s+0x[0-9a-fA-F]{1,4}/0x[0-9a-fA-F]{1,4})?\s*"
)


@dataclass(frozen=True, slots=True)
class Trace:
    """A ClassBench header trace: the headers, and the generator's source filter of each (0-based)."""

    headers: Headers
    genfilter: np.ndarray  # int64; a matching filter, not always the first one (see the README)


def read_text(path: str | os.PathLike) -> str:
    """The text of a plain or gzip file (by magic bytes); InputError names the file on failure."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"{name}: {exc.strerror or exc}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"{name}: corrupt gzip data ({exc})") from None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{name}: line {line}: byte {data[exc.start]:#04x} is not ASCII text") from None


def _lines(text: str) -> list[str]:
    """Lines of a file; a final newline does not make an extra empty line. Empty lines are errors."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _prefix(name: str, lineno: int, field: str, octets: tuple[str, ...], length: str) -> tuple[int, int]:
    value = 0
    for o in octets:
        if int(o) > 255:
            raise InputError(f"{name}: line {lineno}: {field} {'.'.join(octets)}/{length!s} is not an IPv4 prefix (octet {o})")
        value = (value << 8) | int(o)
    n = int(length)
    if n > 32:
        raise InputError(f"{name}: line {lineno}: {field} {'.'.join(octets)}/{length} has a prefix length over 32")
    size = 1 << (32 - n)
    lo = value & ~(size - 1) & 0xFFFFFFFF  # host bits cleared, as db_generator means them
    return lo, lo + size - 1


def parse_rules(text: str, name: str = "<rules>") -> RuleTable:
    """A ClassBench filter set (its text) as a RuleTable, line order = priority."""
    lines = _lines(text)
    n = len(lines)
    cols = {k: np.zeros(n, np.uint64) for k in ("smin", "smax", "dmin", "dmax")}
    ports = np.zeros((n, 4), np.uint16)
    proto = np.zeros((n, 2), np.uint8)
    for i, line in enumerate(lines):
        m = _RULE.fullmatch(line)
        if m is None:
            raise InputError(f"{name}: line {i + 1}: {_clip(line)!r} is not a ClassBench filter "
                             f"('@sip/len dip/len lo : hi lo : hi 0xPP/0xMM 0xFFFF/0xFFFF')")
        g = m.groups()
        cols["smin"][i], cols["smax"][i] = _prefix(name, i + 1, "source", g[0:4], g[4])
        cols["dmin"][i], cols["dmax"][i] = _prefix(name, i + 1, "destination", g[5:9], g[9])
        for j, (lo, hi, field) in enumerate(((g[10], g[11], "source port"), (g[12], g[13], "destination port"))):
            a, b = int(lo), int(hi)
            if not a <= b <= 65535:
                raise InputError(f"{name}: line {i + 1}: {field} range '{lo} : {hi}' is not within 0..65535 with low <= high")
            ports[i, 2 * j], ports[i, 2 * j + 1] = a, b
        value, mask = int(g[14], 16), int(g[15], 16)
        if value & ~mask:
            raise InputError(f"{name}: line {i + 1}: protocol 0x{g[14]}/0x{g[15]} has value bits outside its mask")
        proto[i] = value, mask
    zero = np.zeros(n, np.uint64)
    return RuleTable(
        l3=np.full(n, 4, np.uint8),
        src_min_hi=zero, src_min_lo=cols["smin"], src_max_hi=zero, src_max_lo=cols["smax"],
        dst_min_hi=zero, dst_min_lo=cols["dmin"], dst_max_hi=zero, dst_max_lo=cols["dmax"],
        sport_min=ports[:, 0].copy(), sport_max=ports[:, 1].copy(),
        dport_min=ports[:, 2].copy(), dport_max=ports[:, 3].copy(),
        proto_value=proto[:, 0].copy(), proto_mask=proto[:, 1].copy(),
    )


_TRACE_LIMITS = (("source address", 0xFFFFFFFF), ("destination address", 0xFFFFFFFF), ("source port", 65535),
                 ("destination port", 65535), ("protocol", 255), ("flags", 0xFFFFFFFF), ("genfilter", (1 << 63) - 1))


def parse_trace(text: str, name: str = "<trace>") -> Trace:
    """A ClassBench header trace (its text): IPv4 headers and each one's generating filter."""
    lines = _lines(text)
    n = len(lines)
    values = None
    if n and all(len(line.split()) == 7 for line in lines):
        try:
            values = np.array(text.split(), dtype=np.uint64).reshape(n, 7)
        except (ValueError, OverflowError):
            values = None  # a token that is not an unsigned integer: found and reported below
        if values is not None and not (values <= np.array([lim for _, lim in _TRACE_LIMITS], np.uint64)).all():
            values = None
    if values is None and n:
        values = np.zeros((n, 7), np.uint64)
        for i, line in enumerate(lines):
            parts = line.split()
            if len(parts) != 7:
                raise InputError(f"{name}: line {i + 1}: {_clip(line)!r} has {len(parts)} fields, expected 7 "
                                 "(sip dip sport dport proto flags genfilter)")
            for j, (part, (field, lim)) in enumerate(zip(parts, _TRACE_LIMITS)):
                if not part.isdigit() or int(part) > lim:
                    raise InputError(f"{name}: line {i + 1}: {field} {part!r} is not an integer in 0..{lim}")
                values[i, j] = int(part)
    if values is None:
        values = np.zeros((0, 7), np.uint64)
    zero = np.zeros(n, np.uint64)
    headers = Headers(
        l3=np.full(n, 4, np.uint8), src_hi=zero, src_lo=values[:, 0].copy(), dst_hi=zero.copy(),
        dst_lo=values[:, 1].copy(), sport=values[:, 2].astype(np.uint16), dport=values[:, 3].astype(np.uint16),
        proto=values[:, 4].astype(np.uint8),
    )
    return Trace(headers, values[:, 6].astype(np.int64))


def parse_matches(text: str, name: str = "<matches>") -> np.ndarray:
    """A first-match file (its text) as int32: one 0-based filter index (or -1) per line."""
    lines = _lines(text)
    try:
        out = np.array(lines, dtype=np.int64) if lines else np.zeros(0, np.int64)
    except ValueError:
        out = None
    if out is None or (out < -1).any() or (out > np.iinfo(np.int32).max).any():
        values = []
        for i, line in enumerate(lines):
            s = line.strip()
            if not (s.isdigit() or s == "-1") or int(s) > np.iinfo(np.int32).max:
                raise InputError(f"{name}: line {i + 1}: {_clip(line)!r} is not a filter index (an integer >= -1)")
            values.append(int(s))
        out = np.array(values, np.int64)
    return out.astype(np.int32)


def load_rules(path: str | os.PathLike) -> RuleTable:
    return parse_rules(read_text(path), os.fspath(path))


def load_trace(path: str | os.PathLike) -> Trace:
    return parse_trace(read_text(path), os.fspath(path))


def load_matches(path: str | os.PathLike) -> np.ndarray:
    return parse_matches(read_text(path), os.fspath(path))


def _clip(line: str, n: int = 80) -> str:
    return line if len(line) <= n else line[:n] + "…"
