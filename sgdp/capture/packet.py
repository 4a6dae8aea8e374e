"""The packet record and the batch of packet columns that every engine consumes, and the verdict
columns every engine produces.

A batch is a set of equal-length NumPy columns (dtypes in ``PACKET_COLUMNS``); IPv6 addresses are
split into high and low 64-bit halves, IPv4 addresses sit in the low half with a zero high half.
Engines take a batch and return a :class:`VerdictBatch`; the reference engine walks the rows one by
one through :class:`Packet` records, the compiled engine works on the columns directly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Iterator

import numpy as np

# status column
OK, NON_IP, MALFORMED = 0, 1, 2
STATUS_NAMES = ("ok", "non_ip", "malformed")

# TCP flag bits
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP_FLAG_LETTERS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK, "U": 0x20, "E": 0x40, "C": 0x80}

NO_MAC = -1
MASK64 = (1 << 64) - 1


@dataclass(slots=True)
class Packet:
    """One packet as the dataplane sees it.

    ``l3`` is 4 or 6 (0 for a frame that is not IP). Ports are 0 for protocols without them;
    ``icmp_type``/``icmp_code`` are -1 unless the packet is ICMP/ICMPv6, and ``icmp_id`` is the echo
    identifier. ``src_mac`` is the Ethernet source MAC, or -1 when the frame was not Ethernet.
    ``inner_*`` is the embedded header of an ICMP error (``inner_l3`` 0 when there is none); for an
    embedded ICMP echo, ``inner_sport`` holds its identifier.
    """

    ts: float = 0.0
    l3: int = 4
    src: int = 0
    dst: int = 0
    proto: int = 0
    sport: int = 0
    dport: int = 0
    icmp_type: int = -1
    icmp_code: int = -1
    icmp_id: int = 0
    tcp_flags: int = 0
    src_mac: int = NO_MAC
    frag_offset: int = 0
    more_fragments: int = 0
    frag_id: int = 0
    status: int = OK
    inner_l3: int = 0
    inner_src: int = 0
    inner_dst: int = 0
    inner_proto: int = 0
    inner_sport: int = 0
    inner_dport: int = 0


PACKET_COLUMNS: dict[str, np.dtype] = {
    "ts": np.dtype(np.float64),
    "l3": np.dtype(np.uint8),
    "src_hi": np.dtype(np.uint64),
    "src_lo": np.dtype(np.uint64),
    "dst_hi": np.dtype(np.uint64),
    "dst_lo": np.dtype(np.uint64),
    "proto": np.dtype(np.uint8),
    "sport": np.dtype(np.uint16),
    "dport": np.dtype(np.uint16),
    "icmp_type": np.dtype(np.int16),
    "icmp_code": np.dtype(np.int16),
    "icmp_id": np.dtype(np.uint16),
    "tcp_flags": np.dtype(np.uint16),
    "src_mac": np.dtype(np.int64),
    "frag_offset": np.dtype(np.uint16),
    "more_fragments": np.dtype(np.uint8),
    "frag_id": np.dtype(np.uint32),
    "status": np.dtype(np.uint8),
    "inner_l3": np.dtype(np.uint8),
    "inner_src_hi": np.dtype(np.uint64),
    "inner_src_lo": np.dtype(np.uint64),
    "inner_dst_hi": np.dtype(np.uint64),
    "inner_dst_lo": np.dtype(np.uint64),
    "inner_proto": np.dtype(np.uint8),
    "inner_sport": np.dtype(np.uint16),
    "inner_dport": np.dtype(np.uint16),
}
_SPLIT = ("src", "dst", "inner_src", "inner_dst")
_PLAIN = [f.name for f in fields(Packet) if f.name not in _SPLIT]


class PacketBatch:
    """Equal-length packet columns (see ``PACKET_COLUMNS``)."""

    __slots__ = ("columns",)

    def __init__(self, columns: dict[str, np.ndarray]):
        n = None
        for name, dtype in PACKET_COLUMNS.items():
            col = columns.get(name)
            if col is None:
                raise ValueError(f"packet batch: missing column {name!r}")
            if col.dtype != dtype or col.ndim != 1:
                raise ValueError(f"packet batch: column {name!r} must be 1-D {dtype}, got {col.ndim}-D {col.dtype}")
            if n is None:
                n = len(col)
            elif len(col) != n:
                raise ValueError(f"packet batch: column {name!r} has {len(col)} rows, expected {n}")
        self.columns = {k: np.ascontiguousarray(columns[k]) for k in PACKET_COLUMNS}

    def __len__(self) -> int:
        return len(self.columns["ts"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @classmethod
    def from_packets(cls, packets: Iterable[Packet]) -> "PacketBatch":
        rows = list(packets)
        cols: dict[str, np.ndarray] = {}
        for name in _PLAIN:
            cols[name] = np.array([getattr(p, name) for p in rows], dtype=PACKET_COLUMNS[name])
        for name in _SPLIT:
            values = [getattr(p, name) for p in rows]
            cols[name + "_hi"] = np.array([v >> 64 for v in values], dtype=np.uint64)
            cols[name + "_lo"] = np.array([v & MASK64 for v in values], dtype=np.uint64)
        return cls(cols)

    def packet(self, i: int) -> Packet:
        c = self.columns
        kw = {name: c[name][i].item() for name in _PLAIN}
        for name in _SPLIT:
            kw[name] = (int(c[name + "_hi"][i]) << 64) | int(c[name + "_lo"][i])
        return Packet(**kw)

    def __iter__(self) -> Iterator[Packet]:
        for i in range(len(self)):
            yield self.packet(i)


# verdict columns
VERDICTS = ("allow", "deny", "unmodelled", "malformed")
REASONS = ("rule", "default", "established", "related", "local", "lb_bypass", "no_route", "acl", "unmodelled", "malformed")
DIRECTIONS = ("", "ingress", "egress")
VERDICT_CODE = {v: i for i, v in enumerate(VERDICTS)}
REASON_CODE = {r: i for i, r in enumerate(REASONS)}
DIRECTION_CODE = {d: i for i, d in enumerate(DIRECTIONS)}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One row of the verdict file (SPEC §5), with names as strings ('' when empty)."""

    verdict: str
    reason: str
    instance: str = ""
    direction: str = ""
    security_group: str = ""
    rule: str = ""


class VerdictBatch:
    """Verdict columns: codes into ``VERDICTS``/``REASONS``/``DIRECTIONS`` and indexes into the name
    tables of :class:`Names` (-1 for empty).

    ``counts``: None, or how many rows have each verdict code and each reason code (int64, the
    verdicts' ``len(VERDICTS)`` counts then the reasons' ``len(REASONS)``), as an engine that
    counted them while writing the rows hands them on (the replay's summary then need not count
    the columns again). Whoever changes the columns afterwards sets it back to None."""

    COLUMNS = ("verdict", "reason", "instance", "direction", "group", "rule")
    __slots__ = COLUMNS + ("counts",)

    def __init__(self, n: int, fill: bool = True):
        """``fill=False``: the columns are left unwritten, for an engine that writes every row."""
        make = np.zeros if fill else np.empty
        self.verdict = make(n, np.uint8)
        self.reason = make(n, np.uint8)
        self.instance = np.full(n, -1, np.int32) if fill else np.empty(n, np.int32)
        self.direction = make(n, np.uint8)
        self.group = np.full(n, -1, np.int32) if fill else np.empty(n, np.int32)
        self.rule = np.full(n, -1, np.int32) if fill else np.empty(n, np.int32)
        self.counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.verdict)


class Names:
    """Name tables shared by engines: instances, groups (security groups then ACLs) and rule ids."""

    def __init__(self, instances: list[str], groups: list[str], rules: list[str]):
        self.instances = list(instances)
        self.groups = list(groups)
        self.rules = list(rules)
        self.instance_index = {n: i for i, n in enumerate(self.instances)}
        self.group_index = {n: i for i, n in enumerate(self.groups)}
        self.rule_index = {n: i for i, n in enumerate(self.rules)}

    def encode(self, out: VerdictBatch, i: int, v: Verdict) -> None:
        out.verdict[i] = VERDICT_CODE[v.verdict]
        out.reason[i] = REASON_CODE[v.reason]
        out.instance[i] = self.instance_index[v.instance] if v.instance else -1
        out.direction[i] = DIRECTION_CODE[v.direction]
        out.group[i] = self.group_index[v.security_group] if v.security_group else -1
        out.rule[i] = self.rule_index[v.rule] if v.rule else -1

    def decode(self, vb: VerdictBatch, i: int) -> Verdict:
        inst, grp, rule = int(vb.instance[i]), int(vb.group[i]), int(vb.rule[i])
        return Verdict(
            VERDICTS[vb.verdict[i]], REASONS[vb.reason[i]],
            self.instances[inst] if inst >= 0 else "", DIRECTIONS[vb.direction[i]],
            self.groups[grp] if grp >= 0 else "", self.rules[rule] if rule >= 0 else "",
        )


def parse_tcp_flags(text: str) -> int:
    """``"SA"`` -> SYN|ACK; also accepts an integer or ``0x12``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    text = str(text).strip()
    if text.lower().startswith("0x"):
        return int(text, 16)
    if text.isascii() and text.isdigit() and len(text) <= 20:
        return int(text)
    value = 0
    for ch in text.upper():
        if ch not in TCP_FLAG_LETTERS:
            raise ValueError(f"{text!r} is not a set of TCP flags (letters from FSRPAUEC)")
        value |= TCP_FLAG_LETTERS[ch]
    return value
