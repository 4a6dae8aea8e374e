"""Rules to NumPy tables: the generic first-match classifier core (SPEC §1).

Everything that classifies in sgdp — security-group rules (peer address, protocol, destination
port), network-ACL rules (all five fields), ClassBench filter sets — compiles to a
:class:`RuleTable`: one row per rule, row order = priority (row 0 wins over every later row), each
row a box over

* ``l3``: the IP version (4 or 6). A rule matches only headers of its own version;
* source address range and destination address range (inclusive, arbitrary — not only prefixes);
* source port range and destination port range (inclusive);
* protocol as value/mask: ``(proto & mask) == value`` (``0/0`` = any, ``6/0xFF`` = tcp).

Addresses are 128-bit integers split into high and low 64-bit columns, as in
:mod:`sgdp.capture.packet`: an IPv6 address fills both halves, an IPv4 address sits in the low half with a
zero high half. IPv4 and IPv6 rules can share one table; the ``l3`` column keeps them apart (the IPv4
range 0.0.0.0/0 is *not* the IPv6 range ::/96).

Headers to classify are a :class:`Headers` batch of columns with the names and dtypes of
:data:`sgdp.capture.packet.PACKET_COLUMNS`. The answer for each header is the int32 index of the first
(lowest-index) matching rule, or -1.

:func:`first_match_reference` is the brute-force classifier that defines the truth (tests compare the
compiled classifier of :mod:`sgdp._fastmatch` against it). :func:`build_tuple_space` chooses how the
compiled classifier partitions a table. :mod:`sgdp.engine.classifier` puts the two together and validates
every array before it enters compiled code (this module never imports it: the classifier is built
on the compiler, not the other way round).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, NamedTuple

import numpy as np

MASK64 = (1 << 64) - 1
ADDR_MAX = {4: (1 << 32) - 1, 6: (1 << 128) - 1}

#: dtype of every RuleTable column (all 1-D, C-contiguous, equal length).
RULE_COLUMNS: dict[str, np.dtype] = {
    "l3": np.dtype(np.uint8),  # 4 or 6
    "src_min_hi": np.dtype(np.uint64),  # source range, inclusive: [src_min, src_max]
    "src_min_lo": np.dtype(np.uint64),
    "src_max_hi": np.dtype(np.uint64),
    "src_max_lo": np.dtype(np.uint64),
    "dst_min_hi": np.dtype(np.uint64),  # destination range, inclusive
    "dst_min_lo": np.dtype(np.uint64),
    "dst_max_hi": np.dtype(np.uint64),
    "dst_max_lo": np.dtype(np.uint64),
    "sport_min": np.dtype(np.uint16),  # source port range, inclusive
    "sport_max": np.dtype(np.uint16),
    "dport_min": np.dtype(np.uint16),  # destination port range, inclusive
    "dport_max": np.dtype(np.uint16),
    "proto_value": np.dtype(np.uint8),  # matches when (proto & proto_mask) == proto_value
    "proto_mask": np.dtype(np.uint8),
}

#: dtype of every Headers column; the names and dtypes are those of sgdp.capture.packet.PACKET_COLUMNS.
HEADER_COLUMNS: dict[str, np.dtype] = {
    "l3": np.dtype(np.uint8),  # 4 or 6; anything else matches no rule
    "src_hi": np.dtype(np.uint64),
    "src_lo": np.dtype(np.uint64),
    "dst_hi": np.dtype(np.uint64),
    "dst_lo": np.dtype(np.uint64),
    "sport": np.dtype(np.uint16),
    "dport": np.dtype(np.uint16),
    "proto": np.dtype(np.uint8),
}


def _column(owner: str, name: str, value, dtype: np.dtype, n: int | None, copy: bool = True) -> np.ndarray:
    """``value`` checked as a 1-D column of ``dtype`` (and ``n`` rows), read-only: a copy when the
    caller could still write it (``copy``), else a read-only view (ValueError names the column)."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{owner}: column {name!r} must be a NumPy array, got {type(value).__name__}")
    if value.dtype != dtype or value.ndim != 1:
        raise ValueError(f"{owner}: column {name!r} must be 1-D {dtype}, got {value.ndim}-D {value.dtype}")
    if n is not None and len(value) != n:
        raise ValueError(f"{owner}: column {name!r} has {len(value)} rows, expected {n} (as {owner}'s first column)")
    out = np.ascontiguousarray(value)
    if not copy:
        out = out.view()
    elif out is value and value.flags.writeable:
        out = value.copy()  # the table is immutable: never alias an array the caller can still write
    out.flags.writeable = False
    return out


def _join(hi: np.ndarray, lo: np.ndarray) -> list[int]:
    return [(int(h) << 64) | int(l) for h, l in zip(hi.tolist(), lo.tolist())]


class Rule(NamedTuple):
    """One rule as plain integers (inclusive ranges); the row form of a :class:`RuleTable`."""

    l3: int
    src: tuple[int, int]
    dst: tuple[int, int]
    sport: tuple[int, int] = (0, 65535)
    dport: tuple[int, int] = (0, 65535)
    proto: tuple[int, int] = (0, 0)  # (value, mask)

    def matches(self, l3: int, src: int, dst: int, sport: int, dport: int, proto: int) -> bool:
        return (
            l3 == self.l3
            and self.src[0] <= src <= self.src[1]
            and self.dst[0] <= dst <= self.dst[1]
            and self.sport[0] <= sport <= self.sport[1]
            and self.dport[0] <= dport <= self.dport[1]
            and (proto & self.proto[1]) == self.proto[0]
        )


@dataclass(frozen=True, slots=True, eq=False)
class RuleTable:
    """First-match rules as columns (dtypes in :data:`RULE_COLUMNS`); row index = priority.

    Row 0 has the highest priority: the answer for a header is the smallest row index whose box
    contains it. Invariants, checked at construction (ValueError otherwise): every column 1-D,
    C-contiguous, read-only and of equal length; ``l3`` is 4 or 6; for each range ``min <= max`` and,
    for IPv4, ``max < 2**32`` with zero high halves; ``proto_value & ~proto_mask == 0``.
    """

    l3: np.ndarray
    src_min_hi: np.ndarray
    src_min_lo: np.ndarray
    src_max_hi: np.ndarray
    src_max_lo: np.ndarray
    dst_min_hi: np.ndarray
    dst_min_lo: np.ndarray
    dst_max_hi: np.ndarray
    dst_max_lo: np.ndarray
    sport_min: np.ndarray
    sport_max: np.ndarray
    dport_min: np.ndarray
    dport_max: np.ndarray
    proto_value: np.ndarray
    proto_mask: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for name, dtype in RULE_COLUMNS.items():
            col = _column("rule table", name, getattr(self, name), dtype, n)
            object.__setattr__(self, name, col)
            n = len(col)
        bad = ~np.isin(self.l3, (4, 6))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"rule table: row {i}: l3 is {int(self.l3[i])}, not 4 or 6")
        for what in ("src", "dst"):
            mh, ml = getattr(self, what + "_min_hi"), getattr(self, what + "_min_lo")
            xh, xl = getattr(self, what + "_max_hi"), getattr(self, what + "_max_lo")
            bad = (mh > xh) | ((mh == xh) & (ml > xl))
            bad |= (self.l3 == 4) & ((xh != 0) | (xl > np.uint64(ADDR_MAX[4])))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                lo, hi = (int(mh[i]) << 64) | int(ml[i]), (int(xh[i]) << 64) | int(xl[i])
                raise ValueError(f"rule table: row {i}: {what} range [{lo:#x}, {hi:#x}] is empty or not IPv{int(self.l3[i])}")
        for what in ("sport", "dport"):
            bad = getattr(self, what + "_min") > getattr(self, what + "_max")
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"rule table: row {i}: {what} range is empty")
        bad = (self.proto_value & ~self.proto_mask) != 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"rule table: row {i}: protocol value {int(self.proto_value[i]):#04x} has bits outside mask {int(self.proto_mask[i]):#04x}")

    def __len__(self) -> int:
        return len(self.l3)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    @classmethod
    def from_rules(cls, rules: Iterable[Rule]) -> "RuleTable":
        """A table from :class:`Rule` rows (in priority order); ValueError names the bad row."""
        rules = list(rules)
        cols: dict[str, list[int]] = {name: [] for name in RULE_COLUMNS}
        for i, r in enumerate(rules):
            if r.l3 not in (4, 6):
                raise ValueError(f"rule {i}: l3 is {r.l3!r}, not 4 or 6")
            top = ADDR_MAX[r.l3]
            cols["l3"].append(r.l3)
            for what, (lo, hi) in (("src", r.src), ("dst", r.dst)):
                if not 0 <= lo <= hi <= top:
                    raise ValueError(f"rule {i}: {what} range ({lo}, {hi}) is not an IPv{r.l3} interval")
                cols[what + "_min_hi"].append(lo >> 64)
                cols[what + "_min_lo"].append(lo & MASK64)
                cols[what + "_max_hi"].append(hi >> 64)
                cols[what + "_max_lo"].append(hi & MASK64)
            for what, (lo, hi) in (("sport", r.sport), ("dport", r.dport)):
                if not 0 <= lo <= hi <= 65535:
                    raise ValueError(f"rule {i}: {what} range ({lo}, {hi}) is not a port interval")
                cols[what + "_min"].append(lo)
                cols[what + "_max"].append(hi)
            value, mask = r.proto
            if not (0 <= mask <= 255 and 0 <= value <= 255 and value & ~mask == 0):
                raise ValueError(f"rule {i}: protocol {value!r}/{mask!r} is not a value/mask pair of bytes")
            cols["proto_value"].append(value)
            cols["proto_mask"].append(mask)
        return cls(**{name: np.array(cols[name], dtype=dtype) for name, dtype in RULE_COLUMNS.items()})

    def take(self, rows: np.ndarray) -> "RuleTable":
        """The table of these rows of this one, in the order given (a row may repeat): one
        fancy-indexing pass per column, no re-validation (every row of a valid table is valid)."""
        out = object.__new__(RuleTable)
        for name in RULE_COLUMNS:
            col = getattr(self, name)[rows]
            col.flags.writeable = False
            object.__setattr__(out, name, col)
        return out

    def rule(self, i: int) -> Rule:
        """Row ``i`` as a :class:`Rule`."""

        def addr(name: str) -> int:
            return (int(getattr(self, name + "_hi")[i]) << 64) | int(getattr(self, name + "_lo")[i])

        return Rule(int(self.l3[i]), (addr("src_min"), addr("src_max")), (addr("dst_min"), addr("dst_max")),
                    (int(self.sport_min[i]), int(self.sport_max[i])), (int(self.dport_min[i]), int(self.dport_max[i])),
                    (int(self.proto_value[i]), int(self.proto_mask[i])))

    def rules(self) -> list[Rule]:
        return [self.rule(i) for i in range(len(self))]


@dataclass(frozen=True, slots=True, eq=False)
class Headers:
    """A batch of packet headers to classify: equal-length columns, dtypes in :data:`HEADER_COLUMNS`.

    Construction validates dtypes and lengths (ValueError); arrays already of the right dtype and
    contiguous are used as they are (read-only views), so building a Headers from a packet batch is
    cheap.
    """

    l3: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    proto: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for name, dtype in HEADER_COLUMNS.items():
            view = _column("headers", name, getattr(self, name), dtype, n, copy=False)
            object.__setattr__(self, name, view)
            n = len(view)

    def __len__(self) -> int:
        return len(self.l3)

    @classmethod
    def from_columns(cls, columns) -> "Headers":
        """From any mapping with these column names (a ``PacketBatch`` works: ``Headers.from_columns(batch)``)."""
        return cls(**{name: columns[name] for name in HEADER_COLUMNS})

    @classmethod
    def from_tuples(cls, rows: Iterable[tuple[int, int, int, int, int, int]]) -> "Headers":
        """From ``(l3, src, dst, sport, dport, proto)`` rows of plain integers."""
        rows = list(rows)
        src = [r[1] for r in rows]
        dst = [r[2] for r in rows]
        return cls(
            l3=np.array([r[0] for r in rows], np.uint8),
            src_hi=np.array([v >> 64 for v in src], np.uint64),
            src_lo=np.array([v & MASK64 for v in src], np.uint64),
            dst_hi=np.array([v >> 64 for v in dst], np.uint64),
            dst_lo=np.array([v & MASK64 for v in dst], np.uint64),
            sport=np.array([r[3] for r in rows], np.uint16),
            dport=np.array([r[4] for r in rows], np.uint16),
            proto=np.array([r[5] for r in rows], np.uint8),
        )

    def row(self, i: int) -> tuple[int, int, int, int, int, int]:
        return (int(self.l3[i]), (int(self.src_hi[i]) << 64) | int(self.src_lo[i]),
                (int(self.dst_hi[i]) << 64) | int(self.dst_lo[i]), int(self.sport[i]), int(self.dport[i]), int(self.proto[i]))


# ------------------------------------------------------------------------------------ reference


def first_match_reference(table: RuleTable, headers: Headers, chunk: int = 256) -> np.ndarray:
    """The first matching rule of every header (int32, -1 for none), by brute force.

    Every header is compared with every rule (NumPy over the rules, ``chunk`` headers at a time); the
    answer is the smallest matching row index. Obviously right and O(rules × headers): fine for
    tests and 1k-rule sets, slow for large ones (about 1.5e8 rule-header pairs a second here: five
    minutes for 100k rules and 500k headers).
    """
    if not isinstance(table, RuleTable) or not isinstance(headers, Headers):
        raise TypeError("first_match_reference(table: RuleTable, headers: Headers)")
    n, m = len(headers), len(table)
    out = np.full(n, -1, np.int32)
    if n == 0 or m == 0:
        return out
    t = table
    rl3 = t.l3[None, :]
    for start in range(0, n, chunk):
        s = slice(start, min(n, start + chunk))
        h = {name: getattr(headers, name)[s][:, None] for name in HEADER_COLUMNS}
        hit = h["l3"] == rl3
        for what in ("src", "dst"):
            vh, vl = h[what + "_hi"], h[what + "_lo"]
            mh, ml = getattr(t, what + "_min_hi")[None, :], getattr(t, what + "_min_lo")[None, :]
            xh, xl = getattr(t, what + "_max_hi")[None, :], getattr(t, what + "_max_lo")[None, :]
            hit &= (vh > mh) | ((vh == mh) & (vl >= ml))  # value >= min, as 128-bit integers
            hit &= (vh < xh) | ((vh == xh) & (vl <= xl))  # value <= max
        for what in ("sport", "dport"):
            v = h[what]
            hit &= (v >= getattr(t, what + "_min")[None, :]) & (v <= getattr(t, what + "_max")[None, :])
        hit &= (h["proto"] & t.proto_mask[None, :]) == t.proto_value[None, :]
        any_hit = hit.any(axis=1)
        out[s] = np.where(any_hit, hit.argmax(axis=1), -1)
    return out


# ---------------------------------------------------------------------------------- tuple space


@dataclass(frozen=True, slots=True, eq=False)
class TupleSpace:
    """How the compiled classifier (:mod:`sgdp._fastmatch`) partitions a RuleTable into tuples.

    A tuple has a prefix length per field (``src_len``/``dst_len`` 0..128 on the 128-bit address,
    so an IPv4 /24 is 120; ``sport_len``/``dport_len`` 0..16) and a protocol mask; the ``*_mask``
    columns are the same lengths as bit masks (uint64 hi/lo, uint16, uint8). Tuples are in ascending
    order of their best (lowest) rule index. ``rule_order`` (int32) lists every rule index once, in
    bucket order: by tuple (``rule_tuple``, int32, nondecreasing), then by masked key, then by index.
    Every rule's ranges lie inside one prefix of its tuple's lengths.

    ``filter_addr_bits`` and ``filter_port_bits`` (0..16) set how fine the compiled classifier's tuple
    filter is: it tells tuples apart by the first ``filter_addr_bits`` bits of each address (of the
    first 32: IPv4 addresses whole, IPv6 addresses by their top 32 bits) and the first
    ``filter_port_bits`` bits of each port, with a table of ``2**bits`` entries per field.
    """

    rule_order: np.ndarray
    rule_tuple: np.ndarray
    src_len: np.ndarray  # uint8
    dst_len: np.ndarray  # uint8
    sport_len: np.ndarray  # uint8
    dport_len: np.ndarray  # uint8
    src_mask_hi: np.ndarray  # uint64
    src_mask_lo: np.ndarray
    dst_mask_hi: np.ndarray
    dst_mask_lo: np.ndarray
    sport_mask: np.ndarray  # uint16
    dport_mask: np.ndarray  # uint16
    proto_mask: np.ndarray  # uint8
    filter_addr_bits: int = 0
    filter_port_bits: int = 0

    def __len__(self) -> int:
        return len(self.src_len)

    def describe(self) -> list[str]:
        """One line per tuple: lengths, protocol mask and number of rules (for people)."""
        counts = np.bincount(self.rule_tuple, minlength=len(self))
        return [f"src/{int(self.src_len[t])} dst/{int(self.dst_len[t])} sport/{int(self.sport_len[t])} "
                f"dport/{int(self.dport_len[t])} proto&{int(self.proto_mask[t]):#04x}: {int(counts[t])} rules"
                for t in range(len(self))]


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of each uint64 (0 for 0), vectorised: frexp's exponent of each 32-bit half (exact,
    a 32-bit integer is a float64 exactly)."""
    x = np.asarray(x, np.uint64)
    hi = np.frexp((x >> np.uint64(32)).astype(np.float64))[1].astype(np.int64)
    lo = np.frexp((x & np.uint64(0xFFFFFFFF)).astype(np.float64))[1].astype(np.int64)
    return np.where(hi != 0, hi + 32, lo)


def _common_prefix(min_hi, min_lo, max_hi, max_lo) -> np.ndarray:
    """Length of the longest common prefix of the 128-bit bounds: the range lies in one such prefix."""
    xh, xl = min_hi ^ max_hi, min_lo ^ max_lo
    return np.where(xh != 0, 64 - _bit_length(xh), 128 - _bit_length(xl))


def _mask128(length: int) -> tuple[int, int]:
    m = ((1 << length) - 1) << (128 - length) if length else 0
    return m >> 64, m & MASK64


_MASKS128 = np.array([_mask128(k) for k in range(129)], np.uint64)  # length -> (hi, lo)
_PORT_MASKS = np.array([(0xFFFF << (16 - k)) & 0xFFFF for k in range(17)], np.uint16)  # length -> mask


def _masks128(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (hi, lo) 128-bit masks of prefix lengths 0..128, as two uint64 columns."""
    m = _MASKS128[np.asarray(lengths, np.int64)]
    return np.ascontiguousarray(m[:, 0]), np.ascontiguousarray(m[:, 1])


#: Defaults of build_tuple_space, chosen by measurement on the ClassBench sets (benchmarks/README.md).
ADDRESS_STEP = 16
BUCKET_LIMIT = 16
FILTER_BITS_MAX = 16


def default_filter_bits(n_rules: int) -> int:
    """How fine the tuple filter is for a table of ``n_rules`` rules: two bits more per doubling of the
    table, from none below 64 rules (few tuples to tell apart) through 8 bits at 512 rules to 16 bits
    (tables of 128 KiB per field) from 8,192 rules on, so that the filter stays smaller than the rules
    themselves. Measured: on the dataplane's security-group tables (about 500 rules, 7 tuples) 8 bits
    cut the tuples probed per lookup from 2.8 to 1.6; on acl1_10k 16 bits probe 1.16 tuples, 14 bits
    1.36 (benchmarks/README.md)."""
    return max(0, min(FILTER_BITS_MAX, 2 * int(n_rules).bit_length() - 12))


def prefix_lengths(table: RuleTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each rule's own lengths (int64 columns): the common-prefix lengths of its source and
    destination ranges on the 128-bit address and of its source and destination port ranges. A
    table taken from another (:meth:`RuleTable.take`) has the lengths of the same rows."""
    t = table
    return (_common_prefix(t.src_min_hi, t.src_min_lo, t.src_max_hi, t.src_max_lo).astype(np.int64),
            _common_prefix(t.dst_min_hi, t.dst_min_lo, t.dst_max_hi, t.dst_max_lo).astype(np.int64),
            (16 - _bit_length((t.sport_min ^ t.sport_max).astype(np.uint64))).astype(np.int64),
            (16 - _bit_length((t.dport_min ^ t.dport_max).astype(np.uint64))).astype(np.int64))


def build_tuple_space(table: RuleTable, address_step: int = ADDRESS_STEP, bucket_limit: int = BUCKET_LIMIT,
                      compiled: bool = True, filter_bits: int | None = None,
                      lengths: tuple[np.ndarray, ...] | None = None) -> TupleSpace:
    """Partition the rules into tuples (TupleMerge-style, greedy in priority order).

    Each rule, best first, joins the first existing tuple whose lengths are all at most the rule's
    own (the common-prefix lengths of its ranges) and whose bucket for the rule's key holds fewer
    than ``bucket_limit`` rules. Otherwise a new tuple is made for it with *relaxed* lengths, so that
    later rules can join it: address lengths rounded down to a multiple of ``address_step`` bits
    counted from the start of the IPv4 or IPv6 address, port lengths 16 (an exact port) or 0, the
    protocol exact or any. If a tuple of those lengths exists already (its bucket is full), the
    rule's own lengths are tried; if that tuple exists too, the rule joins it over the limit. So the
    number of tuples stays small and every rule is in exactly one tuple.

    The per-rule loop runs compiled (``sgdp._fastmatch.place``; ImportError when it is not built,
    as the classifier that uses this needs its own extension anyway). ``compiled=False`` runs the
    Python loop instead: the reference that tests compare the compiled loop with.
    ``filter_bits`` overrides :func:`default_filter_bits` for the tuple filter (addresses and ports).
    ``lengths``: the table's :func:`prefix_lengths` when the caller has them already (a table taken
    from a store whose lengths were computed once).
    """
    if not isinstance(table, RuleTable):
        raise TypeError("build_tuple_space(table: RuleTable)")
    if address_step < 1 or bucket_limit < 1:
        raise ValueError("address_step and bucket_limit must be positive")
    bits = default_filter_bits(len(table)) if filter_bits is None else int(filter_bits)
    if not 0 <= bits <= FILTER_BITS_MAX:
        raise ValueError(f"filter bits must be within 0..{FILTER_BITS_MAX}, not {bits}")
    t = table
    if lengths is None:
        lengths = prefix_lengths(t)
    elif len(lengths) != 4 or any(len(x) != len(t) or x.dtype != np.int64 for x in lengths):
        raise ValueError("build_tuple_space: lengths must be the table's prefix_lengths (four int64 columns)")
    ls_a, ld_a, lsp_a, ldp_a = lengths
    if compiled:
        from sgdp._fastmatch import place

        rule_tuple, lengths = place(t.l3, ls_a, ld_a, lsp_a, ldp_a, t.proto_mask, t.proto_value, t.src_min_hi,
                                    t.src_min_lo, t.dst_min_hi, t.dst_min_lo, t.sport_min, t.dport_min,
                                    address_step, bucket_limit)
    else:
        rule_tuple, lengths = _place_python(t, ls_a, ld_a, lsp_a, ldp_a, address_step, bucket_limit)
    return _finish_tuple_space(t, rule_tuple, lengths, bits)


def _place_python(t: RuleTable, ls_a, ld_a, lsp_a, ldp_a, address_step: int, bucket_limit: int):
    """The placement loop in Python, the reference for the compiled one (``compiled=False``):
    ``(rule_tuple, lengths)``."""
    n = len(t)
    ls, ld, lsp, ldp = ls_a.tolist(), ld_a.tolist(), lsp_a.tolist(), ldp_a.tolist()
    pmask = t.proto_mask.tolist()
    pvalue = t.proto_value.tolist()
    l3 = t.l3.tolist()
    src = _join(t.src_min_hi, t.src_min_lo)
    dst = _join(t.dst_min_hi, t.dst_min_lo)
    sport = t.sport_min.tolist()
    dport = t.dport_min.tolist()

    def relax(length: int, base: int) -> int:
        return base + (length - base) // address_step * address_step if length >= base else length // address_step * address_step

    tuples: list[tuple[int, int, int, int, int]] = []  # (src_len, dst_len, sport_len, dport_len, proto_mask)
    buckets: list[dict[tuple, int]] = []
    by_lengths: dict[tuple, int] = {}
    rule_tuple = np.empty(n, np.int32)
    for i in range(n):
        a, b, c, d, p = ls[i], ld[i], lsp[i], ldp[i], pmask[i]
        s, ds, sp, dp, pv = src[i], dst[i], sport[i], dport[i], pvalue[i]
        placed = -1
        for j, (ta, tb, tc, td, tp) in enumerate(tuples):
            if ta <= a and tb <= b and tc <= c and td <= d and (tp & ~p) == 0:
                key = (l3[i], s >> (128 - ta), ds >> (128 - tb), sp >> (16 - tc), dp >> (16 - td), pv & tp)
                bucket = buckets[j]
                if bucket.get(key, 0) < bucket_limit:
                    bucket[key] = bucket.get(key, 0) + 1
                    placed = j
                    break
        if placed < 0:
            base = 96 if l3[i] == 4 else 0
            relaxed = (relax(a, base), relax(b, base), 16 if c == 16 else 0, 16 if d == 16 else 0, 0xFF if p == 0xFF else 0)
            own = (a, b, c, d, p)
            for lengths in (relaxed, own):
                if lengths not in by_lengths:
                    by_lengths[lengths] = placed = len(tuples)
                    tuples.append(lengths)
                    buckets.append({})
                    break
            else:
                placed = by_lengths[own]  # every candidate exists and is full here: exceed the limit
            ta, tb, tc, td, tp = tuples[placed]
            key = (l3[i], s >> (128 - ta), ds >> (128 - tb), sp >> (16 - tc), dp >> (16 - td), pv & tp)
            buckets[placed][key] = buckets[placed].get(key, 0) + 1
        rule_tuple[i] = placed
    return rule_tuple, np.array(tuples, dtype=np.int64).reshape(len(tuples), 5)


def _finish_tuple_space(t: RuleTable, rule_tuple: np.ndarray, lengths: np.ndarray, filter_bits: int) -> TupleSpace:
    n = len(t)
    src_hi, src_lo = _masks128(lengths[:, 0])
    dst_hi, dst_lo = _masks128(lengths[:, 1])
    space_masks = {
        "src_mask_hi": src_hi, "src_mask_lo": src_lo, "dst_mask_hi": dst_hi, "dst_mask_lo": dst_lo,
        "sport_mask": _PORT_MASKS[lengths[:, 2]], "dport_mask": _PORT_MASKS[lengths[:, 3]],
        "proto_mask": lengths[:, 4].astype(np.uint8),
    }
    # Bucket order: by tuple, then masked key, then index (lexsort: last key is the primary one).
    rt = rule_tuple
    m = space_masks
    order = np.lexsort((
        np.arange(n), t.proto_value & m["proto_mask"][rt], t.dport_min & m["dport_mask"][rt], t.sport_min & m["sport_mask"][rt],
        t.dst_min_lo & m["dst_mask_lo"][rt], t.dst_min_hi & m["dst_mask_hi"][rt], t.src_min_lo & m["src_mask_lo"][rt],
        t.src_min_hi & m["src_mask_hi"][rt], t.l3, rt,
    ))
    return TupleSpace(
        rule_order=order.astype(np.int32), rule_tuple=rt[order].astype(np.int32),
        src_len=lengths[:, 0].astype(np.uint8), dst_len=lengths[:, 1].astype(np.uint8),
        sport_len=lengths[:, 2].astype(np.uint8), dport_len=lengths[:, 3].astype(np.uint8), **space_masks,
        filter_addr_bits=filter_bits, filter_port_bits=filter_bits,
    )
