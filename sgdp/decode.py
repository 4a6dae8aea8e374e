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

import argparse
import csv
import socket
import sys
from typing import Iterator

from sgdp.errors import SgdpError
from sgdp.ingest import DEFAULT_BATCH_SIZE, DETAIL, FLAG, CaptureBatch, detail_text, read_batches
from sgdp.packet import STATUS_NAMES

COLUMNS = ("index", "ts", "caplen", "wirelen", "l3", "src", "dst", "proto", "sport", "dport", "icmp_type",
           "icmp_code", "tcp_flags", "frag_offset", "more_fragments", "truncated", "status", "detail")

_F_L3, _F_PROTO, _F_PORTS = FLAG["l3"], FLAG["proto"], FLAG["ports"]
_F_TCPFLAGS, _F_ICMPTYPE, _F_ICMPCODE, _F_NOTS = FLAG["tcp_flags"], FLAG["icmp_type"], FLAG["icmp_code"], FLAG["no_ts"]
_F_TRUNC = FLAG["truncated"]
_D_TRUNC_IP6 = DETAIL["trunc_ip6"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("decode", help="print what the capture reader sees, one row per packet")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files")
    p.add_argument("--csv", action="store_true", help="print CSV (default: an aligned text table)")
    return p


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
    """The decode rows (lists of strings, in ``COLUMNS`` order) of one batch."""
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


def decode_rows(paths: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[list[str]]:
    """Every capture's decode rows, one after the other (``index`` continues across files)."""
    index = 0
    for batch in read_batches(paths, batch_size):
        yield from batch_rows(batch, index)
        index += len(batch)


class _Table:
    """An aligned text table printed as it streams: widths grow with the rows seen so far."""

    def __init__(self, out):
        self.out = out
        self.widths = [len(c) for c in COLUMNS[:-1]]
        self.header_done = False

    def write(self, rows: list[list[str]]) -> None:
        for row in rows:
            for j in range(len(self.widths)):
                if len(row[j]) > self.widths[j]:
                    self.widths[j] = len(row[j])
        if not self.header_done:
            self._line(list(COLUMNS))
            self.header_done = True
        for row in rows:
            self._line(row)

    def _line(self, row: list[str]) -> None:
        cells = [row[j].rjust(self.widths[j]) if j not in (5, 6, 16) else row[j].ljust(self.widths[j])
                 for j in range(len(self.widths))]
        self.out.write("  ".join(cells) + "  " + row[-1] + "\n" if row[-1] else "  ".join(cells).rstrip() + "\n")


def cmd_decode(args: argparse.Namespace) -> int:
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n") if args.csv else None
    table = None if args.csv else _Table(out)
    if writer is not None:
        writer.writerow(COLUMNS)
    index = 0
    try:
        for batch in read_batches(args.captures):
            rows = list(batch_rows(batch, index))
            index += len(batch)
            if writer is not None:
                writer.writerows(rows)
            else:
                table.write(rows)
        if table is not None and not table.header_done:
            table.write([])
    except SgdpError:
        out.flush()     # the rows before the error come first
        raise
    return 0
