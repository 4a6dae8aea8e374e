"""Craft packets with scapy: captures for scenario files, examples and tests.

scapy is an optional dependency (the ``test`` extra): the core of sgdp never imports it, and this
module imports it only when a helper that needs it is called; without scapy such a helper raises
:class:`~sgdp.errors.UsageError` saying how to install it.

The helpers build IP-level scapy packets with their times, as ``(time, packet)`` pairs, in the order
a capture would hold them::

    from sgdp.capture import craft

    frames = craft.tcp_handshake("172.16.0.5", "192.168.0.10", sport=50000, dport=22, t0=1_700_000_000)
    frames += craft.flow("192.168.0.10", "172.16.0.53", proto="udp", dport=53, t0=1_700_000_001)
    craft.write_pcap("login.pcap", [(t, craft.ether(p)) for t, p in frames])

* :func:`tcp_handshake`, :func:`tcp_session`, :func:`flow` — whole exchanges between a client and a
  server (replies included); :func:`icmp_error` quotes a packet in an ICMP/ICMPv6 error;
  :func:`fragments` splits a datagram; :func:`ether` wraps a packet in an Ethernet (802.1Q) frame.
* :func:`write_pcap` writes ``(time, frame)`` pairs as a pcap file (micro- or nanosecond), frames
  being scapy packets or bytes, optionally cut short (``(time, frame, wirelen)``).
* :func:`to_packet` turns a scapy packet into the :class:`~sgdp.capture.packet.Packet` the dataplane
  sees; :func:`to_batch` makes a :class:`~sgdp.capture.packet.PacketBatch` of ``(time, packet)`` pairs, to
  feed an engine without a file.
* :func:`read_with_scapy` is a slow, independent capture reader (scapy's dissectors): tests use it to
  cross-check the compiled reader of :mod:`sgdp.capture.ingest`.

Addresses are text (``"192.168.0.10"``, ``"2407:c080::1"``); the IP version follows the address.
"""

from __future__ import annotations

import ipaddress
import struct
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Iterable, Sequence

from sgdp._atomic import partial_file
from sgdp.errors import InputError, UsageError
from sgdp.capture.packet import MALFORMED, NO_MAC, NON_IP, OK, Packet, PacketBatch, parse_tcp_flags

DEFAULT_CLIENT_MAC = "fa:16:3e:00:00:01"
DEFAULT_GATEWAY_MAC = "fa:16:3e:ff:ff:01"

# pcap link types of the frames write_pcap infers its link type from (by scapy class name)
LINKTYPES = {"Ether": 1, "IP": 101, "IPv6": 101, "CookedLinux": 113, "CookedLinuxV2": 276, "Loopback": 0}

_S: SimpleNamespace | None = None


def scapy_available() -> bool:
    """True when scapy imports here."""
    try:
        _scapy()
    except UsageError:
        return False
    return True


def _scapy() -> SimpleNamespace:
    """The scapy classes used here, imported on first use (scapy is not a core dependency)."""
    global _S
    if _S is not None:
        return _S
    try:
        import logging

        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        from scapy.config import conf
        from scapy.layers import inet, inet6, l2
        from scapy.layers.ipsec import AH
        from scapy.packet import NoPayload, Padding, Raw
        from scapy.utils import PcapReader
    except ImportError as exc:
        raise UsageError(
            f"sgdp.capture.craft needs scapy, which is not installed ({exc}): pip install 'sgdp[test]' (or pip install scapy)"
        ) from None
    _S = SimpleNamespace(
        conf=conf, Ether=l2.Ether, Dot1Q=l2.Dot1Q, Dot1AD=l2.Dot1AD, CookedLinux=l2.CookedLinux,
        CookedLinuxV2=l2.CookedLinuxV2, Loopback=l2.Loopback, IP=inet.IP, TCP=inet.TCP, UDP=inet.UDP,
        ICMP=inet.ICMP, IPerror=inet.IPerror, fragment=inet.fragment, IPv6=inet6.IPv6,
        IPerror6=inet6.IPerror6, IPv6ExtHdrFragment=inet6.IPv6ExtHdrFragment, fragment6=inet6.fragment6,
        ICMPv6EchoRequest=inet6.ICMPv6EchoRequest, ICMPv6EchoReply=inet6.ICMPv6EchoReply,
        ICMPv6DestUnreach=inet6.ICMPv6DestUnreach, ICMPv6TimeExceeded=inet6.ICMPv6TimeExceeded,
        ICMPv6PacketTooBig=inet6.ICMPv6PacketTooBig, ICMPv6ParamProblem=inet6.ICMPv6ParamProblem,
        AH=AH, Raw=Raw, Padding=Padding, NoPayload=NoPayload, PcapReader=PcapReader,
    )
    return _S


# ------------------------------------------------------------------------------------- building

def _version(addr: str) -> int:
    try:
        return ipaddress.ip_address(addr).version
    except ValueError:
        raise InputError(f"{addr!r} is not an IP address") from None


def ip(src: str, dst: str, **fields: Any):
    """An IPv4 or IPv6 header (by the addresses' version); ``fields`` go to scapy's IP/IPv6."""
    s = _scapy()
    v = _version(src)
    if _version(dst) != v:
        raise InputError(f"{src!r} and {dst!r} are not the same IP version")
    return (s.IP if v == 4 else s.IPv6)(src=src, dst=dst, **fields)


def _proto_number(proto: str | int) -> int:
    names = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47}
    if isinstance(proto, str) and proto.lower() in names:
        return names[proto.lower()]
    if isinstance(proto, int) and not isinstance(proto, bool) and 0 <= proto <= 255:
        return proto
    raise InputError(f"{proto!r} is not a protocol (tcp, udp, icmp, icmpv6, gre or 0..255)")


def tcp_segment(src: str, dst: str, sport: int, dport: int, flags: str | int = "S", seq: int = 0, ack: int = 0,
                payload: bytes = b""):
    """One TCP segment (flags as letters, e.g. ``"SA"``, or an integer)."""
    s = _scapy()
    pkt = ip(src, dst) / s.TCP(sport=sport, dport=dport, flags=parse_tcp_flags(flags), seq=seq, ack=ack, window=64240)
    return pkt / s.Raw(payload) if payload else pkt


def tcp_handshake(client: str, server: str, sport: int = 40000, dport: int = 80, t0: float = 0.0,
                  rtt: float = 0.001) -> list[tuple[float, Any]]:
    """SYN, SYN-ACK (``rtt`` later) and ACK: ``[(time, packet), ...]``."""
    return [
        (t0, tcp_segment(client, server, sport, dport, "S", seq=1000)),
        (t0 + rtt, tcp_segment(server, client, dport, sport, "SA", seq=5000, ack=1001)),
        (t0 + rtt + rtt / 10, tcp_segment(client, server, sport, dport, "A", seq=1001, ack=5001)),
    ]


def tcp_session(client: str, server: str, sport: int = 40000, dport: int = 80, t0: float = 0.0,
                rtt: float = 0.001, request: bytes = b"GET / HTTP/1.1\r\n\r\n", response: bytes = b"HTTP/1.1 200 OK\r\n\r\n",
                exchanges: int = 1, close: bool = True) -> list[tuple[float, Any]]:
    """A whole TCP connection: handshake, ``exchanges`` request/response pairs, FIN both ways, last ACK."""
    out = tcp_handshake(client, server, sport, dport, t0, rtt)
    t = out[-1][0]
    cseq, sseq = 1001, 5001
    for _ in range(exchanges):
        t += rtt
        out.append((t, tcp_segment(client, server, sport, dport, "PA", seq=cseq, ack=sseq, payload=request)))
        cseq += len(request)
        t += rtt
        out.append((t, tcp_segment(server, client, dport, sport, "PA", seq=sseq, ack=cseq, payload=response)))
        sseq += len(response)
    if close:
        t += rtt
        out.append((t, tcp_segment(client, server, sport, dport, "FA", seq=cseq, ack=sseq)))
        t += rtt
        out.append((t, tcp_segment(server, client, dport, sport, "FA", seq=sseq, ack=cseq + 1)))
        t += rtt / 10
        out.append((t, tcp_segment(client, server, sport, dport, "A", seq=cseq + 1, ack=sseq + 1)))
    return out


def flow(client: str, server: str, proto: str | int = "udp", sport: int = 40000, dport: int | None = None,
         t0: float = 0.0, rtt: float = 0.001, exchanges: int = 1, interval: float = 1.0, payload: bytes = b"sgdp",
         icmp_id: int = 1, reply: bool = True) -> list[tuple[float, Any]]:
    """One conversation between ``client`` and ``server``: ``[(time, packet), ...]``.

    tcp: :func:`tcp_session`; udp: ``exchanges`` datagrams, each answered ``rtt`` later; icmp/icmpv6:
    echo requests (identifier ``icmp_id``, sequence 1, 2, …) and replies; any other protocol (a
    number or ``gre``): bare IP packets of that protocol both ways. Exchanges are ``interval`` apart;
    ``reply=False`` leaves the answers out.
    """
    s = _scapy()
    number = _proto_number(proto)
    if number == 6:
        return tcp_session(client, server, sport, dport or 80, t0, rtt, exchanges=exchanges,
                           close=True) if reply else [(t0, tcp_segment(client, server, sport, dport or 80, "S"))]
    if number == 17 and dport is None:
        raise InputError("flow: a udp flow needs dport")
    out = []
    for k in range(exchanges):
        t = t0 + k * interval
        if number == 17:
            req = ip(client, server) / s.UDP(sport=sport, dport=dport) / s.Raw(payload)
            rep = ip(server, client) / s.UDP(sport=dport, dport=sport) / s.Raw(payload)
        elif number in (1, 58):
            if (number == 1) != (_version(client) == 4):
                raise InputError(f"flow: {proto!r} does not go with {client!r}")
            if number == 1:
                req = ip(client, server) / s.ICMP(type=8, id=icmp_id, seq=k + 1) / s.Raw(payload)
                rep = ip(server, client) / s.ICMP(type=0, id=icmp_id, seq=k + 1) / s.Raw(payload)
            else:
                req = ip(client, server) / s.ICMPv6EchoRequest(id=icmp_id, seq=k + 1, data=payload)
                rep = ip(server, client) / s.ICMPv6EchoReply(id=icmp_id, seq=k + 1, data=payload)
        else:
            key = "proto" if _version(client) == 4 else "nh"
            req = ip(client, server, **{key: number}) / s.Raw(payload)
            rep = ip(server, client, **{key: number}) / s.Raw(payload)
        out.append((t, req))
        if reply:
            out.append((t + rtt, rep))
    return out


def icmp_error(reporter: str, original: Any, type: int | None = None, code: int | None = None,
               quote: int | None = None):
    """An ICMP (IPv4) or ICMPv6 error sent by ``reporter`` about ``original`` (an IP-level scapy packet).

    It goes to the original's source and quotes the original's first ``quote`` bytes — by default as
    much as routers do: up to 548 bytes for IPv4 (a 576-byte error, RFC 1812), up to 1232 for IPv6
    (a 1280-byte error, RFC 4443). Default: destination unreachable, port
    unreachable (IPv4 type 3 code 3; ICMPv6 type 1 code 4). Other types: IPv4 11 (time exceeded),
    4, 5, 12; ICMPv6 2 (packet too big), 3 (time exceeded), 4 (parameter problem).
    """
    s = _scapy()
    raw = bytes(original)
    head = original.getlayer(s.IP) or original.getlayer(s.IPv6)
    if head is None:
        raise InputError("icmp_error: the original packet has no IP header")
    src = head.src
    if quote is not None and quote < 1:
        raise InputError(f"icmp_error: quote {quote} is not a positive number of bytes")
    if isinstance(head, s.IP):
        err = s.ICMP(type=3 if type is None else type, code=3 if code is None else code)
        return ip(reporter, src) / err / s.Raw(raw[:548 if quote is None else quote])
    kinds = {1: s.ICMPv6DestUnreach, 2: s.ICMPv6PacketTooBig, 3: s.ICMPv6TimeExceeded, 4: s.ICMPv6ParamProblem}
    t = 1 if type is None else type
    if t not in kinds:
        raise InputError(f"icmp_error: ICMPv6 error type {t} is not 1..4")
    err = kinds[t](code=4 if code is None and t == 1 else (code or 0))
    return ip(reporter, src) / err / s.Raw(raw[:1232 if quote is None else quote])


def fragments(packet: Any, size: int = 1480, frag_id: int | None = None) -> list[Any]:
    """Split an IP datagram into fragments carrying at most ``size`` payload bytes (a multiple of 8).

    IPv4 uses the header's identification (``frag_id`` replaces it); IPv6 gets a fragment header.
    """
    s = _scapy()
    if size <= 0 or size % 8:
        raise InputError(f"fragments: size {size} is not a positive multiple of 8")
    if packet.haslayer(s.IP) and isinstance(packet, s.IP):
        pkt = packet.copy()
        if frag_id is not None:
            pkt.id = frag_id
        return list(s.fragment(pkt, fragsize=size))
    if isinstance(packet, s.IPv6):
        head = packet.copy()
        upper = head.payload
        head.remove_payload()
        pkt = head / s.IPv6ExtHdrFragment(id=0 if frag_id is None else frag_id) / upper
        return list(s.fragment6(pkt, 40 + 8 + size))
    raise InputError("fragments: expected an IP or IPv6 packet")


def ether(packet: Any, src: str = DEFAULT_CLIENT_MAC, dst: str = DEFAULT_GATEWAY_MAC, vlan: int | Sequence[int] | None = None):
    """``packet`` in an Ethernet frame, with 802.1Q tags (``vlan``: one id, or outermost first)."""
    s = _scapy()
    frame = s.Ether(src=src, dst=dst)
    if vlan is not None:
        for vid in ([vlan] if isinstance(vlan, int) else list(vlan)):
            frame = frame / s.Dot1Q(vlan=vid)
    return frame / packet


def at(t0: float, packets: Iterable[Any], interval: float = 0.001) -> list[tuple[float, Any]]:
    """Packets with times ``t0``, ``t0 + interval``, …"""
    return [(t0 + k * interval, p) for k, p in enumerate(packets)]


# -------------------------------------------------------------------------------------- writing

def _split_time(t: Any, units: int) -> tuple[int, int]:
    """(seconds, fraction in 1/units) of a time given as float, int, Decimal or scapy EDecimal."""
    d = Decimal(str(t)) if isinstance(t, float) else Decimal(t)
    sec = int(d // 1)
    frac = int(((d - sec) * units).to_integral_value())
    if frac >= units:
        sec, frac = sec + 1, frac - units
    return sec, frac


def write_pcap(path: str, frames_with_times: Iterable[tuple], linktype: int | None = None,
               nanosecond: bool = False, snaplen: int = 262144) -> int:
    """Write ``(time, frame)`` or ``(time, frame, wirelen)`` items as a little-endian pcap file.

    A frame is a scapy packet or bytes; its time a float (seconds), int or Decimal. ``wirelen``
    larger than the frame records a frame cut by the snap length. The link type is ``linktype``, or
    follows the first scapy frame (Ether 1, IP/IPv6 101, CookedLinux 113, CookedLinuxV2 276,
    Loopback 0); every frame must be of that type. Returns the number of frames written.
    """
    items = list(frames_with_times)
    if linktype is None:
        for item in items:
            if not isinstance(item[1], (bytes, bytearray, memoryview)):
                linktype = _linktype_of(item[1])
                break
        else:
            if items:
                raise InputError("write_pcap: frames given as bytes need an explicit linktype")
            linktype = 1
    units = 1_000_000_000 if nanosecond else 1_000_000
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    with partial_file(path, "wb") as fh:  # PATH.partial, renamed once every frame is written
        fh.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for k, item in enumerate(items):
            if len(item) not in (2, 3):
                raise InputError(f"write_pcap: item {k} is not (time, frame) or (time, frame, wirelen)")
            t, frame = item[0], item[1]
            if not isinstance(frame, (bytes, bytearray, memoryview)):
                if _linktype_of(frame) != linktype:
                    raise InputError(f"write_pcap: frame {k} ({type(frame).__name__}) is not of link type {linktype}")
                frame = bytes(frame)
            frame = bytes(frame)
            wirelen = item[2] if len(item) == 3 else len(frame)
            if wirelen < len(frame):
                raise InputError(f"write_pcap: frame {k}: wirelen {wirelen} is shorter than its {len(frame)} bytes")
            sec, frac = _split_time(t, units)
            if not 0 <= sec <= 0xFFFFFFFF:  # a pcap record's seconds are 32 bits: never wrap them
                raise InputError(f"write_pcap: frame {k}: time {t} is outside what a pcap holds "
                                 "(1970-01-01 .. 2106-02-07 06:28:15 UTC)")
            fh.write(struct.pack("<IIII", sec, frac, len(frame), wirelen) + frame)
    return len(items)


def _linktype_of(frame: Any) -> int:
    name = type(frame).__name__
    if name not in LINKTYPES:
        raise InputError(f"write_pcap: no pcap link type for a {name} frame; pass linktype=")
    return LINKTYPES[name]


# ------------------------------------------------------------------------------------- decoding

def to_packet(frame: Any, ts: float | None = None) -> Packet:
    """The dataplane's view (:class:`~sgdp.capture.packet.Packet`) of a scapy packet or frame.

    Walks the link layer (Ethernet, 802.1Q/802.1ad, LLC/SNAP, Linux cooked, loopback) to the first
    IP header, then IPv6 extension headers, TCP/UDP/ICMP/ICMPv6 and the header quoted by an ICMP
    error — with scapy's dissectors, independently of the compiled reader. ``ts`` defaults to the
    packet's ``time``. A frame without IP is ``status`` NON_IP; a datagram longer than the bytes
    present, or a transport header cut short, MALFORMED.
    """
    s = _scapy()
    pkt = Packet(ts=float(frame.time) if ts is None else float(ts), l3=0)
    frame = type(frame)(bytes(frame))  # as on the wire: lengths, header lengths and checksums filled in
    layer, carrier = frame, None
    while not isinstance(layer, s.NoPayload):
        if isinstance(layer, s.Ether):
            if pkt.src_mac == NO_MAC:
                pkt.src_mac = _mac_int(layer.src)
        elif isinstance(layer, (s.CookedLinux, s.CookedLinuxV2)):
            if layer.lladdrtype == 1 and layer.lladdrlen == 6 and pkt.src_mac == NO_MAC:
                pkt.src_mac = int.from_bytes(bytes(layer.src)[:6], "big")
        elif isinstance(layer, (s.IP, s.IPv6)) and not isinstance(layer, (s.IPerror, s.IPerror6)):
            _decode_ip(layer, pkt, s)
            return pkt
        elif isinstance(layer, (s.Raw, s.Padding)) and layer is not frame:
            # scapy left the payload undissected: an IP header cut short, or a carrier (a loopback
            # family, say) scapy does not bind to IP
            kind = _carries_ip(carrier)
            if kind:
                data = bytes(layer)
                version = data[0] >> 4 if data else 0
                pkt.status = MALFORMED
                if (version == 6 and len(data) >= 40) or (version == 4 and kind == 4 and len(data) >= 20):
                    try:
                        head = (s.IPv6 if version == 6 else s.IP)(data)
                    except Exception:  # noqa: BLE001 - scapy's dissectors raise many kinds
                        return pkt
                    pkt.status = OK
                    _decode_ip(head, pkt, s)
                return pkt
            break
        carrier = layer
        layer = layer.payload
    pkt.status = NON_IP
    pkt.l3 = 0
    return pkt


def _carries_ip(layer: Any) -> int:
    """4 when a link layer announces IPv4 (either version follows, by its nibble), 6 for IPv6, else 0."""
    if layer is None:
        return 0
    name = type(layer).__name__
    if name in ("Loopback", "LoopbackOpenBSD"):
        family = int(layer.type)
        return 4 if family == 2 else 6 if family in (10, 24, 28, 30) else 0
    for field in ("type", "proto"):
        value = getattr(layer, field, None) if field in layer.fields or any(f.name == field for f in layer.fields_desc) else None
        if value is not None:
            return 4 if value == 0x0800 else 6 if value == 0x86DD else 0
    return 0


def _mac_int(text: str) -> int:
    return int(str(text).replace(":", ""), 16)


def _padding_len(layer: Any, s: SimpleNamespace) -> int:
    pad = layer.getlayer(s.Padding)
    return len(pad.load) if pad is not None else 0


def _decode_ip(layer: Any, pkt: Packet, s: SimpleNamespace) -> None:
    present = len(bytes(layer))
    if isinstance(layer, s.IP) and layer.version == 6:  # IPv4 ethertype / raw link carrying IPv6
        layer = s.IPv6(bytes(layer))
    if isinstance(layer, s.IP):
        if layer.version != 4 or layer.ihl < 5 or present < layer.ihl * 4:
            pkt.l3, pkt.status = (4 if layer.version == 4 and layer.ihl >= 5 else 0), MALFORMED
            return
        pkt.l3 = 4
        pkt.src, pkt.dst = int(ipaddress.IPv4Address(layer.src)), int(ipaddress.IPv4Address(layer.dst))
        pkt.proto = layer.proto
        pkt.frag_id = layer.id
        pkt.more_fragments = 1 if layer.flags.MF else 0
        pkt.frag_offset = layer.frag
        if layer.len and layer.len < layer.ihl * 4:
            pkt.status = MALFORMED
            return
        if layer.len and layer.len > present:
            pkt.status = MALFORMED
        if pkt.frag_offset:
            return
        _decode_l4(layer.payload, pkt.proto, pkt, s)
        return
    pkt.l3 = 6
    pkt.src, pkt.dst = int(ipaddress.IPv6Address(layer.src)), int(ipaddress.IPv6Address(layer.dst))
    if present < 40:
        pkt.status = MALFORMED
        return
    if layer.plen and 40 + layer.plen > present:
        pkt.status = MALFORMED
    nh, upper, non_first = _walk6(layer, pkt, s)
    pkt.proto = nh
    if upper is None:
        if not non_first:
            pkt.status = MALFORMED  # an extension header cut short
        return
    _decode_l4(upper, nh, pkt, s)


def _walk6(layer: Any, pkt: Packet | None, s: SimpleNamespace) -> tuple[int, Any, bool]:
    """IPv6 extension headers to the upper layer: (protocol, upper-layer scapy layer or None, non-first
    fragment). Fills the fragment fields of ``pkt`` from the first fragment header."""
    nh = layer.nh
    cur = layer.payload
    seen_frag = False
    while nh in (0, 43, 60, 51, 44):
        if isinstance(cur, (s.Raw, s.NoPayload, s.Padding)) or not hasattr(cur, "nh"):
            return nh, None, False
        if nh == 44:
            if not seen_frag and pkt is not None:
                pkt.frag_offset, pkt.more_fragments, pkt.frag_id = cur.offset, cur.m, cur.id
            seen_frag = True
            if cur.offset:
                return cur.nh, None, True
        nh = cur.nh
        cur = cur.payload
    return nh, cur, False


def _transport_len(layer: Any, s: SimpleNamespace) -> int:
    return len(bytes(layer)) - _padding_len(layer, s)


def _decode_l4(layer: Any, proto: int, pkt: Packet, s: SimpleNamespace) -> None:
    n = _transport_len(layer, s) if not isinstance(layer, s.NoPayload) else 0
    raw = bytes(layer)[:n]
    if proto == 6:
        if n >= 4:
            pkt.sport, pkt.dport = struct.unpack("!HH", raw[:4])
        if n >= 14:
            pkt.tcp_flags = ((raw[12] & 0x0F) << 8) | raw[13]
        if n < 20 or raw[12] >> 4 < 5 or (raw[12] >> 4) * 4 > n:
            pkt.status = MALFORMED
    elif proto == 17:
        if n >= 4:
            pkt.sport, pkt.dport = struct.unpack("!HH", raw[:4])
        if n < 8:
            pkt.status = MALFORMED
    elif proto in (1, 58):
        if n >= 1:
            pkt.icmp_type = raw[0]
        if n >= 2:
            pkt.icmp_code = raw[1]
        if n < 4:
            pkt.status = MALFORMED
            return
        echo = pkt.icmp_type in ((0, 8) if proto == 1 else (128, 129))
        error = pkt.icmp_type in ((3, 4, 5, 11, 12) if proto == 1 else (1, 2, 3, 4))
        if echo:
            if n < 8:
                pkt.status = MALFORMED
            else:
                pkt.icmp_id = layer.id
        elif error and n > 8:
            _decode_inner(layer.payload, pkt, s)


def _decode_inner(quoted: Any, pkt: Packet, s: SimpleNamespace) -> None:
    """The header an ICMP error quotes (scapy's IPerror / IPerror6), when complete."""
    if isinstance(quoted, s.Raw) and len(quoted.load) >= 1:  # not dissected by scapy: try by version
        v = quoted.load[0] >> 4
        quoted = s.IPerror(quoted.load) if v == 4 else s.IPerror6(quoted.load) if v == 6 else None
    if isinstance(quoted, (s.IP, s.IPerror)) and not isinstance(quoted, s.IPv6):
        data = bytes(quoted)
        if len(data) < 20 or quoted.version != 4 or quoted.ihl < 5 or len(data) < quoted.ihl * 4:
            return
        pkt.inner_l3 = 4
        pkt.inner_src = int(ipaddress.IPv4Address(quoted.src))
        pkt.inner_dst = int(ipaddress.IPv4Address(quoted.dst))
        pkt.inner_proto = quoted.proto
        if quoted.frag:
            return
        upper, proto = quoted.payload, quoted.proto
    elif isinstance(quoted, (s.IPv6, s.IPerror6)):
        if len(bytes(quoted)) < 40:
            return
        pkt.inner_l3 = 6
        pkt.inner_src = int(ipaddress.IPv6Address(quoted.src))
        pkt.inner_dst = int(ipaddress.IPv6Address(quoted.dst))
        proto, upper, _ = _walk6(quoted, None, s)
        pkt.inner_proto = proto
        if upper is None:
            return
    else:
        return
    data = bytes(upper) if not isinstance(upper, s.NoPayload) else b""
    if proto in (6, 17) and len(data) >= 4:
        pkt.inner_sport, pkt.inner_dport = struct.unpack("!HH", data[:4])
    elif proto in (1, 58) and len(data) >= 8 and data[0] in ((0, 8) if proto == 1 else (128, 129)):
        pkt.inner_sport = struct.unpack("!H", data[4:6])[0]


def to_packets(frames_with_times: Iterable[tuple]) -> list[Packet]:
    """:func:`to_packet` of every ``(time, packet)`` pair."""
    return [to_packet(item[1], ts=item[0]) for item in frames_with_times]


def to_batch(frames_with_times: Iterable[tuple]) -> PacketBatch:
    """A :class:`~sgdp.capture.packet.PacketBatch` of ``(time, packet)`` pairs, to feed an engine directly."""
    return PacketBatch.from_packets(to_packets(frames_with_times))


def read_with_scapy(path: str) -> list[Packet]:
    """Every packet of a pcap or pcapng file, read and dissected by scapy (slow; for cross-checks).

    Frames of link types scapy does not dissect are NON_IP; a frame that scapy cannot read at all
    raises :class:`~sgdp.errors.InputError`.
    """
    s = _scapy()
    out = []
    try:
        with s.PcapReader(path) as reader:
            link_class = s.conf.l2types.get(getattr(reader, "linktype", None))  # pcap: one link type
            for frame in reader:
                if isinstance(frame, s.Raw) and link_class is not None:
                    # scapy gave up on the whole frame: dissect it again to see whether it is cut short
                    try:
                        redone = link_class(bytes(frame))
                    except Exception:  # noqa: BLE001 - scapy's dissectors raise many kinds
                        out.append(Packet(ts=float(frame.time), l3=0, status=MALFORMED))
                        continue
                    redone.time = frame.time
                    frame = redone
                out.append(to_packet(frame))
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: scapy cannot read it: {exc}") from None
    except Exception as exc:  # scapy raises Scapy_Exception for files that are not captures
        if type(exc).__name__ == "Scapy_Exception":
            raise InputError(f"{path}: scapy cannot read it: {exc}") from None
        raise
    return out
