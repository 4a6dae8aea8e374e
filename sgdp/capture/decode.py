"""``sgdp decode CAPTURE... [--csv]``: what the capture reader saw, one row per packet (SPEC §5).

Columns: ``index, ts, caplen, wirelen, l3, src, dst, proto, sport, dport, icmp_type, icmp_code,
tcp_flags, frag_offset, more_fragments, truncated, status, detail``. A field the reader did not
decode (no IP header, no ports, no ICMP header, no timestamp in a pcapng simple packet block) is
empty; of an IPv6 header cut short, the source address shows when its bytes were captured, as in
tshark. ``truncated`` (0/1) marks a packet that the snap length cut before the end of its IP
datagram (S15: it is evaluated from its headers when they were captured, else ``malformed``).
``index`` counts from 0 across all captures given, as in a replay's verdict file. Without
``--csv`` the rows are printed as an aligned text table.
"""

from __future__ import annotations

import socket
from typing import Iterator

from sgdp.capture.ingest import DEFAULT_BATCH_SIZE, DETAIL, FLAG, CaptureBatch, detail_text, read_batches
from sgdp.capture.packet import STATUS_NAMES

DECODE_COLUMNS = ("index", "ts", "caplen", "wirelen", "l3", "src", "dst", "proto", "sport", "dport", "icmp_type",
           "icmp_code", "tcp_flags", "frag_offset", "more_fragments", "truncated", "status", "detail")

_F_L3, _F_PROTO, _F_PORTS = FLAG["l3"], FLAG["proto"], FLAG["ports"]
_F_TCPFLAGS, _F_ICMPTYPE, _F_ICMPCODE, _F_NOTS = FLAG["tcp_flags"], FLAG["icmp_type"], FLAG["icmp_code"], FLAG["no_ts"]
_F_TRUNC = FLAG["truncated"]
_D_TRUNC_IP6 = DETAIL["trunc_ip6"]


def format_ts(sec: int, nsec: int) -> str:
    """Seconds with nine decimals, exact (no float rounding)."""
    t = sec * 1_000_000_000 + nsec
    sign = "-" if t < 0 else ""
    t = abs(t)
    return f"{sign}{t // 1_000_000_000}.{t % 1_000_000_000:09d}"


def _addr(l3: int, hi: int, lo: int) -> str:
    if l3 == 4:
        return socket.inet_ntoa((lo & 0xFFFFFFFF).to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, hi.to_bytes(8, "big") + lo.to_bytes(8, "big"))


def batch_rows(batch: CaptureBatch, first_index: int) -> Iterator[list[str]]:
    """The decode rows (lists of strings, in ``DECODE_COLUMNS`` order) of one batch."""
    c = batch.columns
    cols = {k: c[k].tolist() for k in ("l3", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport",
                                        "icmp_type", "icmp_code", "tcp_flags", "frag_offset", "more_fragments",
                                        "status")}
    flags, sec, nsec = batch.flags.tolist(), batch.ts_sec.tolist(), batch.ts_nsec.tolist()
    caplen, wirelen, detail, aux = batch.caplen.tolist(), batch.wirelen.tolist(), batch.detail.tolist(), batch.aux.tolist()
    for i in range(len(batch)):
        f = flags[i]
        row = [str(first_index + i), "" if f & _F_NOTS else format_ts(sec[i], nsec[i]), str(caplen[i]), str(wirelen[i])]
        if f & _F_L3 and detail[i] == _D_TRUNC_IP6:
            # an IPv6 header cut short (aux: its captured bytes): the source when it was captured
            src = _addr(6, cols["src_hi"][i], cols["src_lo"][i]) if aux[i] >= 24 else ""
            row += ["6", src, ""]
        elif f & _F_L3:
            l3 = cols["l3"][i]
            row += [str(l3), _addr(l3, cols["src_hi"][i], cols["src_lo"][i]), _addr(l3, cols["dst_hi"][i], cols["dst_lo"][i])]
        else:
            row += ["", "", ""]
        row.append(str(cols["proto"][i]) if f & _F_PROTO else "")
        ports = f & _F_PORTS
        row += [str(cols["sport"][i]) if ports else "", str(cols["dport"][i]) if ports else ""]
        row.append(str(cols["icmp_type"][i]) if f & _F_ICMPTYPE else "")
        row.append(str(cols["icmp_code"][i]) if f & _F_ICMPCODE else "")
        row.append(str(cols["tcp_flags"][i]) if f & _F_TCPFLAGS else "")
        if f & _F_L3:
            row += [str(cols["frag_offset"][i]), str(cols["more_fragments"][i])]
        else:
            row += ["", ""]
        row.append("1" if f & _F_TRUNC else "0")
        row.append(STATUS_NAMES[cols["status"][i]])
        row.append(detail_text(detail[i], aux[i], caplen[i], wirelen[i]) if detail[i] else "")
        yield row


def decode_batches(paths: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[list[str]]]:
    """The rows of :func:`decode_rows`, one list per batch read (for streaming output)."""
    index = 0
    for batch in read_batches(paths, batch_size):
        yield list(batch_rows(batch, index))
        index += len(batch)


def decode_rows(paths: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[str]]:
    """Every capture's decode rows, one after the other (``index`` continues across files)."""
    index = 0
    for batch in read_batches(paths, batch_size):
        yield from batch_rows(batch, index)
        index += len(batch)
