"""Flows: packets grouped into connections, for `sgdp diff` and the counterexample captures.

A flow is a connection keyed by its first packet's 5-tuple; replies belong to it. The key is
normalised so that both directions give the same key (docs/semantics.md, "Flows"):

* TCP and UDP: (IP version, protocol, the two (address, port) endpoints in sorted order);
* ICMP/ICMPv6 echo request and reply: (IP version, protocol, sorted addresses, echo identifier);
* an ICMP/ICMPv6 error that quotes a header belongs to the flow of the quoted header (as
  connection tracking relates it, S11);
* every other packet (other protocols, other ICMP messages, errors without a quoted header):
  (IP version, protocol, sorted addresses);
* a non-first IP fragment belongs to the flow of its datagram's first fragment when that was seen
  (same version, addresses, protocol and identification), else it is keyed without ports;
* frames that are not IP, and malformed frames, belong to no flow (flow id -1).

Keys do not depend on a topology (no EIP translation: `diff` compares two topologies that may give
different EIPs) and have no timeout: a 5-tuple reused later in the capture is the same flow.

Keys are computed on the packet columns of a whole batch with NumPy; Python only runs once per
distinct flow of a batch (and once per fragment). Memory: one entry per flow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sgdp.topology import format_ip
from sgdp.topology import proto_label
from sgdp.capture import OK

NOPORT = 65536  # "no port" in a key (real ports are 0..65535)
KIND_OTHER, KIND_PORTS, KIND_ECHO = 0, 1, 2
FRAGMENT_MEMORY_S = 30.0  # how long a first fragment is remembered (as the dataplane, docs/semantics.md)
_FRAG_PRUNE_AT = 1 << 16

KEY_DTYPE = np.dtype([
    ("l3", np.uint8), ("proto", np.uint8),
    ("a_hi", np.uint64), ("a_lo", np.uint64), ("a_port", np.int32),
    ("b_hi", np.uint64), ("b_lo", np.uint64), ("b_port", np.int32),
])

_ECHO4, _ECHO6 = (8, 0), (128, 129)
_ERR4, _ERR6 = (3, 4, 5, 11, 12), (1, 2, 3, 4)


class Flow:
    """One flow: its first packet's tuple (the flow's orientation) and packet counts."""

    __slots__ = ("l3", "proto", "src", "sport", "dst", "dport", "first_ts", "last_ts", "packets")

    def __init__(self, l3: int, proto: int, src: int, sport: int | None, dst: int, dport: int | None,
                 first_ts: float, last_ts: float, packets: int):
        self.l3, self.proto, self.src, self.sport, self.dst, self.dport = l3, proto, src, sport, dst, dport
        self.first_ts, self.last_ts, self.packets = first_ts, last_ts, packets

    def describe(self) -> dict[str, Any]:
        return {
            "src": format_ip(self.l3, self.src), "dst": format_ip(self.l3, self.dst), "proto": proto_label(self.proto),
            "sport": self.sport, "dport": self.dport,
        }

    def label(self) -> str:
        src, dst = format_ip(self.l3, self.src), format_ip(self.l3, self.dst)
        if self.dport is not None:
            if self.l3 == 6:
                src, dst = f"[{src}]", f"[{dst}]"
            return f"{proto_label(self.proto)} {src}:{self.sport} -> {dst}:{self.dport}"
        if self.sport is not None:
            return f"{proto_label(self.proto)} {src} -> {dst} id {self.sport}"
        return f"{proto_label(self.proto)} {src} -> {dst}"


class FlowTable:
    """Assigns flow ids (0, 1, … in order of first appearance) to the packets of successive batches.

    Per flow: its first packet's tuple (``info``), and first/last timestamps and packet count in
    NumPy arrays; :meth:`flow` gives one flow as a :class:`Flow`."""

    def __init__(self) -> None:
        self.index: dict[tuple, int] = {}
        self.info: list[tuple] = []  # (l3, proto, src, sport, dst, dport) of each flow's first packet
        self.first_ts = np.zeros(0, np.float64)
        self.last_ts = np.zeros(0, np.float64)
        self.packets = np.zeros(0, np.int64)
        self._frags: dict[tuple, tuple[float, Any, Any, int]] = {}

    def __len__(self) -> int:
        return len(self.info)

    def flow(self, f: int) -> Flow:
        return Flow(*self.info[f], float(self.first_ts[f]), float(self.last_ts[f]), int(self.packets[f]))

    @property
    def flows(self) -> list[Flow]:
        return [self.flow(f) for f in range(len(self))]

    def _grow(self, n: int) -> None:
        if n > len(self.packets):
            size = max(n, 2 * len(self.packets), 1024)
            for name in ("first_ts", "last_ts", "packets"):
                old = getattr(self, name)
                arr = np.zeros(size, old.dtype)
                arr[:len(old)] = old
                setattr(self, name, arr)

    def assign(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Flow id of every packet of a batch (``PACKET_COLUMNS``), -1 for packets in no flow; updates
        the flows' packet counts and first/last timestamps."""
        keys, orient, kind = flow_keys(columns)
        n = len(keys)
        fid = np.full(n, -1, np.int64)
        valid = (columns["status"] == OK) & ((columns["l3"] == 4) | (columns["l3"] == 6))
        self._fragments(columns, valid, keys, orient, kind)
        rows = np.flatnonzero(valid)
        if len(rows) == 0:
            return fid
        ts = columns["ts"]
        uniq, first, inverse = _unique(keys[rows])
        last = np.zeros(len(uniq), np.int64)
        np.maximum.at(last, inverse, np.arange(len(rows)))
        counts = np.bincount(inverse, minlength=len(uniq))
        ukeys = uniq.tolist()
        get = self.index.get
        ufid = np.fromiter((get(k, -1) for k in ukeys), np.int64, len(ukeys))
        new = np.flatnonzero(ufid < 0)
        if len(new):
            new = new[np.argsort(first[new], kind="stable")]  # new flows numbered in order of appearance
            start = len(self.info)
            ids = np.arange(start, start + len(new))
            ufid[new] = ids
            self.index.update(zip([ukeys[u] for u in new.tolist()], ids.tolist()))
            r = rows[first[new]]
            o, k = orient[r], kind[r]
            src = [(h << 64) | lo for h, lo in zip(o["s_hi"].tolist(), o["s_lo"].tolist())]
            dst = [(h << 64) | lo for h, lo in zip(o["d_hi"].tolist(), o["d_lo"].tolist())]
            sport = np.where(k == KIND_OTHER, -1, o["sport"]).tolist()
            dport = np.where(k == KIND_PORTS, o["dport"], -1).tolist()
            self.info.extend(
                (l3, proto, s, None if sp < 0 else sp, d, None if dp < 0 else dp)
                for l3, proto, s, sp, d, dp in zip(o["l3"].tolist(), o["proto"].tolist(), src, sport, dst, dport))
            self._grow(len(self.info))
            self.first_ts[ids] = ts[r]
        self.packets[ufid] += counts
        self.last_ts[ufid] = ts[rows[last]]
        fid[rows] = ufid[inverse]
        return fid

    def _fragments(self, c: dict[str, np.ndarray], valid: np.ndarray, keys: np.ndarray, orient: np.ndarray,
                   kind: np.ndarray) -> None:
        """First fragments remember their key; later fragments of the same datagram take it."""
        fo, mf = c["frag_offset"], c["more_fragments"]
        rows = np.flatnonzero(valid & ((fo > 0) | (mf != 0)))
        if len(rows) == 0:
            return
        ts = c["ts"]
        for r in rows.tolist():
            dkey = (int(c["l3"][r]), int(c["src_hi"][r]), int(c["src_lo"][r]), int(c["dst_hi"][r]), int(c["dst_lo"][r]),
                    int(c["proto"][r]), int(c["frag_id"][r]))
            if fo[r] == 0:
                self._frags[dkey] = (float(ts[r]), keys[r].copy(), orient[r].copy(), int(kind[r]))
                if len(self._frags) > _FRAG_PRUNE_AT:
                    now = float(ts[r])
                    self._frags = {k: v for k, v in self._frags.items() if now - v[0] <= FRAGMENT_MEMORY_S}
            else:
                seen = self._frags.get(dkey)
                if seen is not None:
                    _, keys[r], orient[r], kind[r] = seen


def unique_rows(*cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows given as equal-length columns: the index of the first row of each distinct row (in
    the order of the sorted rows) and each row's group number. ``np.unique(..., axis=0)`` by a
    stable lexsort of the columns (several times faster than sorting structured rows)."""
    words = packed_words(cols)
    n = len(cols[0]) if cols else 0
    if not words:  # every column constant: one group
        order = np.arange(n)
    elif len(words) == 1:
        order = np.argsort(words[0], kind="stable")
    else:
        order = np.lexsort(words[::-1])  # lexsort: the last key is the primary one
    start = np.zeros(n, bool)
    start[:1] = True
    for word in words:
        s = word[order]
        start[1:] |= s[1:] != s[:-1]
    inverse = np.empty(n, np.int64)
    inverse[order] = np.cumsum(start) - 1
    return order[start], inverse  # stable sort: the earliest row of each group comes first


def packed_words(cols: tuple[np.ndarray, ...] | list[np.ndarray]) -> list[np.ndarray]:
    """Integer columns packed, losslessly, into as few uint64 words as hold them: each column as its
    offset from its minimum, in as many bits as its range needs, the first column in the most
    significant bits. Rows compare (in order and in equality) as the columns do, so one or two
    words are sorted instead of every column. A constant column adds nothing."""
    words: list[np.ndarray] = []
    word: np.ndarray | None = None
    used = 0
    for col in cols:
        if len(col) == 0:
            return []
        if col.dtype.kind == "b":
            col = col.astype(np.uint8)
        lo, hi = col.min(), col.max()
        bits = (int(hi) - int(lo)).bit_length()
        if bits == 0:
            continue
        if col.dtype.kind == "u":
            value = col.astype(np.uint64) - np.uint64(lo)
        else:  # the difference wraps in int64 when the range is wider, and is exact as uint64
            value = (col.astype(np.int64) - np.int64(lo)).view(np.uint64)
        if word is None or used + bits > 64:
            if word is not None:
                words.append(word)
            word, used = value, bits
        else:
            word = (word << np.uint64(bits)) | value
            used += bits
    if word is not None:
        words.append(word)
    return words


def _unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(keys, return_index=True, return_inverse=True)`` for ``KEY_DTYPE`` rows."""
    first, inverse = unique_rows(*(keys[name] for name in KEY_DTYPE.names))
    return keys[first], first, inverse


ORIENT_DTYPE = np.dtype([
    ("l3", np.uint8), ("proto", np.uint8), ("s_hi", np.uint64), ("s_lo", np.uint64), ("sport", np.int32),
    ("d_hi", np.uint64), ("d_lo", np.uint64), ("dport", np.int32),
])


def flow_keys(c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per packet: the normalised flow key (``KEY_DTYPE``), the flow tuple as the packet carries it
    (``ORIENT_DTYPE``: for an ICMP error, the quoted header's) and the kind (ports, echo, other)."""
    n = len(c["ts"])
    l3 = c["l3"].copy()
    proto = c["proto"].copy()
    itype = c["icmp_type"]
    first = c["frag_offset"] == 0
    s_hi, s_lo, d_hi, d_lo = c["src_hi"].copy(), c["src_lo"].copy(), c["dst_hi"].copy(), c["dst_lo"].copy()
    sport = np.full(n, NOPORT, np.int32)
    dport = np.full(n, NOPORT, np.int32)
    kind = np.zeros(n, np.uint8)

    ports = first & ((proto == 6) | (proto == 17))
    sport[ports] = c["sport"][ports]
    dport[ports] = c["dport"][ports]
    kind[ports] = KIND_PORTS

    echo = first & (((proto == 1) & np.isin(itype, _ECHO4)) | ((proto == 58) & np.isin(itype, _ECHO6)))
    sport[echo] = c["icmp_id"][echo]
    dport[echo] = c["icmp_id"][echo]
    kind[echo] = KIND_ECHO

    err = first & (c["inner_l3"] != 0) & (((proto == 1) & np.isin(itype, _ERR4)) | ((proto == 58) & np.isin(itype, _ERR6)))
    if err.any():
        ip = c["inner_proto"]
        l3[err] = c["inner_l3"][err]
        proto[err] = ip[err]
        s_hi[err], s_lo[err] = c["inner_src_hi"][err], c["inner_src_lo"][err]
        d_hi[err], d_lo[err] = c["inner_dst_hi"][err], c["inner_dst_lo"][err]
        ep = err & ((ip == 6) | (ip == 17))
        sport[ep] = c["inner_sport"][ep]
        dport[ep] = c["inner_dport"][ep]
        kind[ep] = KIND_PORTS
        ee = err & ((ip == 1) | (ip == 58))  # a quoted ICMP message is looked up as an echo (S11)
        sport[ee] = c["inner_sport"][ee]
        dport[ee] = c["inner_sport"][ee]
        kind[ee] = KIND_ECHO
        eo = err & ~(ep | ee)
        sport[eo] = NOPORT
        dport[eo] = NOPORT
        kind[eo] = KIND_OTHER

    orient = np.empty(n, ORIENT_DTYPE)
    orient["l3"], orient["proto"] = l3, proto
    orient["s_hi"], orient["s_lo"], orient["sport"] = s_hi, s_lo, sport
    orient["d_hi"], orient["d_lo"], orient["dport"] = d_hi, d_lo, dport

    swap = (s_hi > d_hi) | ((s_hi == d_hi) & ((s_lo > d_lo) | ((s_lo == d_lo) & (sport > dport))))
    keys = np.empty(n, KEY_DTYPE)
    keys["l3"], keys["proto"] = l3, proto
    keys["a_hi"] = np.where(swap, d_hi, s_hi)
    keys["a_lo"] = np.where(swap, d_lo, s_lo)
    keys["a_port"] = np.where(swap, dport, sport)
    keys["b_hi"] = np.where(swap, s_hi, d_hi)
    keys["b_lo"] = np.where(swap, s_lo, d_lo)
    keys["b_port"] = np.where(swap, sport, dport)
    return keys, orient, kind
