"""Crafted packets as frames: a :class:`~sgdp.capture.packet.Packet` (a scenario step, an `explain` packet)
as the Ethernet frame it describes, so that it can be written into a capture Wireshark opens.

The encoder is written by hand and deterministic (scapy is a test dependency only; the core never
needs it):

* Ethernet II: source MAC ``src_mac`` (``02:00:00:00:00:01`` when the packet has none: a
  locally administered address no cloud NIC has, so the sender is found by its IP), destination
  ``02:00:00:00:00:02``.
* IPv4: no options, TTL 64, DF clear, identification = ``frag_id`` (its low 16 bits), the fragment
  fields as given, header checksum. IPv6: hop limit 64, flow label 0, and a fragment extension
  header (identification ``frag_id``) when ``frag_offset`` or ``more_fragments`` is set.
* A first fragment (offset 0) carries its transport header; a later fragment carries 8 bytes of
  zero payload.
* TCP: 20-byte header, sequence 0 (acknowledgement 1 when ACK is set), window 65535, the flags;
  UDP: 8 bytes, no payload; ICMP/ICMPv6: echo messages carry ``icmp_id`` and sequence 0; errors
  (ICMPv4 3, 4, 5, 11, 12; ICMPv6 1-4) quote the ``inner`` header (an IP header with the first
  8 bytes of its transport header; a quoted ICMP message is an echo request with ``inner_sport``
  as its identifier); other messages have 4 zero bytes after the checksum. GRE: a 4-byte header
  (version 0, protocol type IPv4). Other protocols: no payload.
* Checksums are correct (IPv4 header; TCP, UDP and ICMPv6 with the pseudo-header; ICMP), computed
  over the bytes present (for a fragment, over its part of the datagram).

:mod:`sgdp.capture.ingest` reads every frame back as the same packet (tests check it): the fields the
dataplane uses are equal; a packet without a source MAC reads back with the default one, ports of a
non-first fragment and the identifier of an ICMP message that is not an echo read back as 0.
"""

from __future__ import annotations

import struct

from sgdp.topology import GRE, ICMP, ICMPV6, TCP, UDP
from sgdp.capture.packet import ACK, Packet

DEFAULT_SRC_MAC = 0x020000000001
DEFAULT_DST_MAC = 0x020000000002
LINKTYPE_ETHERNET = 1

ICMP_ERRORS = {ICMP: (3, 4, 5, 11, 12), ICMPV6: (1, 2, 3, 4)}
ICMP_ECHO = {ICMP: (8, 0), ICMPV6: (128, 129)}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _addr(l3: int, value: int) -> bytes:
    return value.to_bytes(4 if l3 == 4 else 16, "big")


def _pseudo(l3: int, src: int, dst: int, proto: int, length: int) -> bytes:
    if l3 == 4:
        return _addr(4, src) + _addr(4, dst) + struct.pack("!BBH", 0, proto, length)
    return _addr(6, src) + _addr(6, dst) + struct.pack("!IxxxB", length, proto)


def _with_checksum(l3: int, src: int, dst: int, proto: int, segment: bytes, at: int, pseudo: bool = True) -> bytes:
    head = _pseudo(l3, src, dst, proto, len(segment)) if pseudo else b""
    value = checksum(head + segment)
    if proto == UDP and value == 0:
        value = 0xFFFF  # a computed 0 is sent as all ones (RFC 768)
    return segment[:at] + struct.pack("!H", value) + segment[at + 2:]


def _ip_header(l3: int, src: int, dst: int, proto: int, payload_len: int, frag_id: int = 0, frag_offset: int = 0,
               more_fragments: int = 0) -> bytes:
    """An IPv4 or IPv6 header (IPv6 with a fragment header when fragmented)."""
    if l3 == 4:
        fo = (frag_offset & 0x1FFF) | (0x2000 if more_fragments else 0)
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, frag_id & 0xFFFF, fo, 64, proto, 0,
                           _addr(4, src), _addr(4, dst))
        return head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    if frag_offset or more_fragments:
        frag = struct.pack("!BBHI", proto, 0, ((frag_offset & 0x1FFF) << 3) | (1 if more_fragments else 0),
                           frag_id & 0xFFFFFFFF)
        return struct.pack("!IHBB16s16s", 6 << 28, 8 + payload_len, 44, 64, _addr(6, src), _addr(6, dst)) + frag
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, proto, 64, _addr(6, src), _addr(6, dst))


def _quoted(pkt: Packet) -> bytes:
    """The header an ICMP error quotes: the inner IP header and 8 bytes of its transport header."""
    l3, proto = pkt.inner_l3, pkt.inner_proto
    if proto == TCP:
        l4 = struct.pack("!HHI", pkt.inner_sport, pkt.inner_dport, 0)  # ports and sequence number
    elif proto == UDP:
        l4 = struct.pack("!HHHH", pkt.inner_sport, pkt.inner_dport, 8, 0)
    elif proto in (ICMP, ICMPV6):
        l4 = struct.pack("!BBHHH", 8 if proto == ICMP else 128, 0, 0, pkt.inner_sport, 0)
    else:
        l4 = b"\0" * 8
    return _ip_header(l3, pkt.inner_src, pkt.inner_dst, proto, len(l4)) + l4


def transport(pkt: Packet) -> bytes:
    """The IP payload of a packet (the transport header for a first fragment), checksummed."""
    l3, proto = pkt.l3, pkt.proto
    if pkt.frag_offset:
        return b"\0" * 8
    if proto == TCP:
        ack = 1 if pkt.tcp_flags & ACK else 0
        seg = struct.pack("!HHIIBBHHH", pkt.sport, pkt.dport, 0, ack, 5 << 4 | (pkt.tcp_flags >> 8 & 0x0F),
                          pkt.tcp_flags & 0xFF, 65535, 0, 0)
        return _with_checksum(l3, pkt.src, pkt.dst, TCP, seg, 16)
    if proto == UDP:
        seg = struct.pack("!HHHH", pkt.sport, pkt.dport, 8, 0)
        return _with_checksum(l3, pkt.src, pkt.dst, UDP, seg, 6)
    if proto in (ICMP, ICMPV6):
        itype = pkt.icmp_type if pkt.icmp_type >= 0 else ICMP_ECHO[proto][0]
        code = max(pkt.icmp_code, 0)
        rest = struct.pack("!HH", pkt.icmp_id, 0) if itype in ICMP_ECHO[proto] else b"\0" * 4
        body = _quoted(pkt) if itype in ICMP_ERRORS[proto] and pkt.inner_l3 in (4, 6) else b""
        seg = struct.pack("!BBH", itype, code, 0) + rest + body
        return _with_checksum(l3, pkt.src, pkt.dst, proto, seg, 2, pseudo=proto == ICMPV6)
    if proto == GRE:
        return struct.pack("!HH", 0, 0x0800)
    return b""


def packet_to_frame(pkt: Packet) -> bytes:
    """The Ethernet frame of a crafted packet (see the module docstring for what is filled in)."""
    if pkt.l3 not in (4, 6):
        raise ValueError(f"cannot encode a packet of IP version {pkt.l3}")
    payload = transport(pkt)
    ip = _ip_header(pkt.l3, pkt.src, pkt.dst, pkt.proto, len(payload), pkt.frag_id, pkt.frag_offset, pkt.more_fragments)
    src_mac = pkt.src_mac if pkt.src_mac >= 0 else DEFAULT_SRC_MAC
    eth = DEFAULT_DST_MAC.to_bytes(6, "big") + src_mac.to_bytes(6, "big") + struct.pack("!H", 0x0800 if pkt.l3 == 4 else 0x86DD)
    return eth + ip + payload


# The times sgdp keeps: what an unsigned 64-bit count of nanoseconds since 1970 holds.
MAX_TIME_NS = (1 << 64) - 1  # 2554-07-21 23:34:33.709551615 UTC
TIME_RANGE_TEXT = "1970-01-01 .. 2554-07-21 (what 64 bits of nanoseconds since 1970 hold)"


def in_time_range(sec: int, nsec: int = 0) -> bool:
    """Is ``sec`` s + ``nsec`` ns after 1970 a time sgdp keeps (see MAX_TIME_NS)?"""
    return 0 <= sec * 1_000_000_000 + nsec <= MAX_TIME_NS


def timestamp(ts: float) -> tuple[int, int]:
    """(seconds, nanoseconds) of a float capture time, for a pcap record."""
    sec = int(ts // 1)
    nsec = int(round((ts - sec) * 1e9))
    if nsec >= 1_000_000_000:
        sec, nsec = sec + 1, nsec - 1_000_000_000
    return sec, nsec
