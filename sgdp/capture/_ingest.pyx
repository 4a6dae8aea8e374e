# cython: language_level=3
"""Compiled streaming reader of pcap and pcapng captures (hot loops only; no I/O).

``Parser.feed`` walks the records of a capture in a byte buffer that the caller fills from the file
(sgdp/ingest.py), decodes each frame (link layer, IPv4/IPv6, TCP/UDP/ICMP/ICMPv6) and writes it as
one row of the NumPy columns held by a ``Batch``. It stops when the batch is full, when it needs
more bytes than the buffer holds (``R_NEED``: the caller compacts, reads and calls again), at the
end of the file, or at a structural error (``R_ERROR``: code, byte offset and quoted values in
``err``/``err_offset``/``err_a``/``err_b``; the rows before it stay in the batch).

Safety: every read of file bytes is preceded by a check that the bytes lie inside the record (or
block) being parsed, and every record/block is checked to lie inside ``[start, end)`` of the buffer
before its fields are read. Lengths read from the file are bounded (262144 per packet, 16 MiB per
pcapng block) before they take part in any arithmetic, so no offset can overflow.
"""

from libc.math cimport ldexp
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset

import numpy as np

# -- return codes of Parser.feed ------------------------------------------------------------------
cdef enum:
    R_FULL = 0      # the batch is full; call again with a new batch
    R_NEED = 1      # need Parser.need bytes from the returned position; read more and call again
    R_END = 2       # the capture ended cleanly (including a last record cut short, S15)
    R_ERROR = 3     # structural error: Parser.err / err_offset / err_a / err_b

cdef enum:
    ST_START = 0
    ST_PCAP = 1
    ST_PCAPNG = 2
    ST_DONE = 3
    ST_ERROR = 4

# -- per-packet flags: which fields were decoded (sgdp decode prints the others empty) -------------
cdef enum:
    F_L3 = 1          # an IP header: l3, src, dst, frag_* are valid
    F_PROTO = 2       # proto is valid
    F_PORTS = 4       # sport/dport read from a TCP/UDP header
    F_TCPFLAGS = 8    # tcp_flags read
    F_ICMPTYPE = 16   # icmp_type read
    F_ICMPCODE = 32   # icmp_code read
    F_NOTS = 64       # the record has no timestamp (pcapng SPB); ts repeats the previous packet's
    F_TRUNC = 128     # the snap length cut the frame before the end of what the reader decodes (the
                      # IP datagram; the whole frame when it carries no IP): S15's `truncated`

# -- detail codes (why status is not OK); the text is in sgdp/ingest.py ---------------------------
cdef enum:
    D_NONE = 0
    D_ETHERTYPE = 1       # NON_IP: ethertype (aux) is not IPv4/IPv6
    D_LLC = 2             # NON_IP: 802.3/LLC frame (aux: the length/type field)
    D_LINKTYPE = 3        # NON_IP: link type (aux) carries no IP that sgdp decodes
    D_FAMILY = 4          # NON_IP: loopback address family (aux) is not IP
    D_CUT_EOF = 10        # MALFORMED: the last record is cut short by the end of the file (aux: declared bytes)
    D_TRUNC_LINK = 11     # MALFORMED: shorter than its link-layer header
    D_TRUNC_VLAN = 12     # MALFORMED: VLAN tag cut short
    D_IP_VERSION = 13     # MALFORMED: IP version nibble (aux) is neither 4 nor 6
    D_IP6_VERSION = 14    # MALFORMED: IPv6 ethertype/family but version nibble (aux) is not 6
    D_TRUNC_IP4 = 15      # MALFORMED: fewer than 20 bytes of IPv4 header
    D_IP4_IHL = 16        # MALFORMED: IPv4 header length (aux bytes) below 20
    D_TRUNC_IP4_OPT = 17  # MALFORMED: IPv4 options cut short (aux: header length)
    D_IP4_TOTLEN = 18     # MALFORMED: IPv4 total length (aux) shorter than its header
    D_DGRAM_CUT = 19      # MALFORMED: IP datagram (aux: its length) longer than the bytes captured
    D_TRUNC_IP6 = 20      # MALFORMED: fewer than 40 bytes of IPv6 header
    D_TRUNC_EXT = 21      # MALFORMED: IPv6 extension header (aux: its type) cut short
    D_TRUNC_TCP = 22      # MALFORMED: TCP header cut short
    D_TCP_DOFF = 23       # MALFORMED: TCP data offset (aux) below 5
    D_TRUNC_UDP = 24      # MALFORMED: UDP header cut short
    D_TRUNC_ICMP = 25     # MALFORMED: ICMP/ICMPv6 header cut short
    D_CUT_EOF_HDR = 26    # MALFORMED: the last record's header is cut short by the end of the file
    D_EXT_OPTS = 27       # MALFORMED: IPv6 hop-by-hop/destination options malformed
    D_DGRAM_WIRE = 28     # MALFORMED: IP datagram (aux: its length) longer than the frame on the wire
    D_TRUNC_QUOTE = 29    # MALFORMED: the snap length cut the header an ICMP error quotes (aux: ICMP type)

# -- structural errors (the capture stops here) ----------------------------------------------------
cdef enum:
    E_NONE = 0
    E_NOT_CAPTURE = 1      # a: the first four bytes
    E_SHORT_FILE = 2       # a: file bytes
    E_PCAP_VERSION = 3     # a: major, b: minor
    E_LINKTYPE_RESERVED = 4  # a: link-type field
    E_CAPLEN = 5           # a: captured length, b: limit
    E_CUT_IMPLAUSIBLE = 6  # a: declared captured length, b: limit
    E_SHB_BOM = 7          # a: byte-order magic
    E_SHB_VERSION = 8      # a: major, b: minor
    E_BLOCK_LEN = 9        # a: block total length
    E_BLOCK_TOO_BIG = 10   # a: block total length, b: limit
    E_BLOCK_TRAILER = 11   # a: leading length, b: trailing length
    E_OPTION = 12          # a: option code, b: option length
    E_IFACE = 13           # a: interface id, b: interfaces in the section
    E_PKT_DATA = 14        # a: captured length, b: block total length
    E_TOO_MANY_IFACES = 15  # a: limit
    E_TRAILING = 16        # a: stray bytes
    E_TSRESOL = 17         # a: if_tsresol value
    E_NOMEM = 18
    E_BLOCK_SHORT = 19     # a: block type, b: block total length
    E_TS_RANGE = 20        # a: the packet's seconds before if_tsoffset (uint64 bits), b: if_tsoffset

cdef enum:
    MAXCAP = 262144          # largest captured length of one packet (libpcap/wiretap limit)
    MAXBLOCK = 16777216      # largest pcapng block (wiretap's limit); bounds the caller's buffer
    MAX_IFACES = 65536       # interfaces per pcapng section
    PCAP_HDR = 24            # pcap file header
    PCAP_REC = 16            # pcap record header
    BT_SHB = 0x0A0D0D0A      # pcapng block types
    BT_IDB = 1
    BT_OPB = 2
    BT_SPB = 3
    BT_EPB = 6

# Python-visible constants (sgdp/ingest.py maps codes to text).
RESULT = {"full": R_FULL, "need": R_NEED, "end": R_END, "error": R_ERROR}
FLAGS = {"l3": F_L3, "proto": F_PROTO, "ports": F_PORTS, "tcp_flags": F_TCPFLAGS,
         "icmp_type": F_ICMPTYPE, "icmp_code": F_ICMPCODE, "no_ts": F_NOTS, "truncated": F_TRUNC}
DETAILS = {
    "none": D_NONE, "ethertype": D_ETHERTYPE, "llc": D_LLC, "linktype": D_LINKTYPE, "family": D_FAMILY,
    "cut_eof": D_CUT_EOF, "trunc_link": D_TRUNC_LINK, "trunc_vlan": D_TRUNC_VLAN,
    "ip_version": D_IP_VERSION, "ip6_version": D_IP6_VERSION, "trunc_ip4": D_TRUNC_IP4,
    "ip4_ihl": D_IP4_IHL, "trunc_ip4_opt": D_TRUNC_IP4_OPT, "ip4_totlen": D_IP4_TOTLEN,
    "dgram_cut": D_DGRAM_CUT, "trunc_ip6": D_TRUNC_IP6, "trunc_ext": D_TRUNC_EXT,
    "trunc_tcp": D_TRUNC_TCP, "tcp_doff": D_TCP_DOFF, "trunc_udp": D_TRUNC_UDP,
    "trunc_icmp": D_TRUNC_ICMP, "cut_eof_hdr": D_CUT_EOF_HDR, "ext_opts": D_EXT_OPTS,
    "dgram_wire": D_DGRAM_WIRE, "trunc_quote": D_TRUNC_QUOTE,
}
ERRORS = {
    "not_capture": E_NOT_CAPTURE, "short_file": E_SHORT_FILE, "pcap_version": E_PCAP_VERSION,
    "linktype_reserved": E_LINKTYPE_RESERVED, "caplen": E_CAPLEN, "cut_implausible": E_CUT_IMPLAUSIBLE,
    "shb_bom": E_SHB_BOM, "shb_version": E_SHB_VERSION, "block_len": E_BLOCK_LEN,
    "block_too_big": E_BLOCK_TOO_BIG, "block_trailer": E_BLOCK_TRAILER, "option": E_OPTION,
    "iface": E_IFACE, "pkt_data": E_PKT_DATA, "too_many_ifaces": E_TOO_MANY_IFACES,
    "trailing": E_TRAILING, "tsresol": E_TSRESOL, "nomem": E_NOMEM, "block_short": E_BLOCK_SHORT,
    "ts_range": E_TS_RANGE,
}
LIMITS = {"max_caplen": MAXCAP, "max_block": MAXBLOCK, "max_interfaces": MAX_IFACES}

# Column names and dtypes a Batch holds: sgdp.capture.packet.PACKET_COLUMNS, then the reader's own.
COLUMNS = (
    ("ts", "float64"), ("l3", "uint8"), ("src_hi", "uint64"), ("src_lo", "uint64"),
    ("dst_hi", "uint64"), ("dst_lo", "uint64"), ("proto", "uint8"), ("sport", "uint16"),
    ("dport", "uint16"), ("icmp_type", "int16"), ("icmp_code", "int16"), ("icmp_id", "uint16"),
    ("tcp_flags", "uint16"), ("src_mac", "int64"), ("frag_offset", "uint16"),
    ("more_fragments", "uint8"), ("frag_id", "uint32"), ("status", "uint8"), ("inner_l3", "uint8"),
    ("inner_src_hi", "uint64"), ("inner_src_lo", "uint64"), ("inner_dst_hi", "uint64"),
    ("inner_dst_lo", "uint64"), ("inner_proto", "uint8"), ("inner_sport", "uint16"),
    ("inner_dport", "uint16"),
    ("caplen", "uint32"), ("wirelen", "uint32"), ("detail", "uint16"), ("aux", "uint32"),
    ("flags", "uint8"), ("ts_sec", "int64"), ("ts_nsec", "uint32"), ("offset", "uint64"), ("linktype", "uint16"),
)

cdef enum:
    ST_OK = 0
    ST_NON_IP = 1
    ST_MALFORMED = 2


# ------------------------------------------------------------------------------- byte readers
# Callers have checked that the bytes read lie inside the current record.

cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0] << 8) | p[1])

cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint32_t le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]

cdef inline uint64_t be64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>be32(p) << 32) | be32(p + 4)

cdef inline uint16_t rd16(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return be16(p)
    return <uint16_t>((<uint16_t>p[1] << 8) | p[0])

cdef inline uint32_t rd32(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return be32(p)
    return le32(p)

cdef inline uint64_t rd64(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return be64(p)
    return (<uint64_t>le32(p + 4) << 32) | le32(p)

cdef inline int64_t mac48(const uint8_t* p) noexcept nogil:
    return <int64_t>((<uint64_t>be16(p) << 32) | be32(p + 2))


# ------------------------------------------------------------------------------- frame decoding

cdef inline void pkt_init(Pkt* k) noexcept nogil:
    memset(k, 0, sizeof(Pkt))
    k.icmp_type = -1
    k.icmp_code = -1
    k.src_mac = -1

cdef inline void bad(Pkt* k, uint16_t code, uint32_t aux) noexcept nogil:
    # The first cause found is kept, except that the generic "datagram longer than the capture"
    # gives way to the header that the cut actually hit.
    if k.detail == D_NONE or k.detail == D_DGRAM_CUT:
        k.detail = code
        k.aux = aux
    k.status = ST_MALFORMED

cdef inline void non_ip(Pkt* k, uint16_t code, uint32_t aux) noexcept nogil:
    k.status = ST_NON_IP
    k.detail = code
    k.aux = aux

cdef inline bint is_ext6(uint8_t nh) noexcept nogil:
    # IPv6 extension headers walked to the upper layer: hop-by-hop, routing, destination options, AH
    # (as ip6tables and Open vSwitch do). The fragment header (44) is handled apart; ESP (50) and
    # no-next-header (59) end the chain as upper-layer protocols.
    return nh == 0 or nh == 43 or nh == 60 or nh == 51

cdef inline bint icmp_echo(uint8_t proto, uint8_t t) noexcept nogil:
    if proto == 1:
        return t == 0 or t == 8
    return t == 128 or t == 129

cdef inline bint icmp_error(uint8_t proto, uint8_t t) noexcept nogil:
    if proto == 1:
        return t == 3 or t == 4 or t == 5 or t == 11 or t == 12
    return 1 <= t <= 4


cdef inline int tlv_check(const uint8_t* p, uint32_t q, uint32_t qend) noexcept nogil:
    # The options of a hop-by-hop / destination-options header, p[q:qend] (inside the packet): Pad1
    # is one byte, every other option is type, length, data and must end inside the header.
    # Returns 0 when they do, 2 when an option runs past the header (the walk stops there), 1 for a
    # Home Address option (type 201, RFC 6275) whose length is not its 16 bytes: malformed, but the
    # header's own length is sound and the walk goes on after it (as tshark's does).
    while q < qend:
        if p[q] == 0:
            q += 1
        elif q + 2 > qend:
            return 2
        elif p[q] == 0xC9 and p[q + 1] != 16:
            return 1
        else:
            q += 2 + <uint32_t>p[q + 1]
    return 0 if q == qend else 2


cdef int walk6(const uint8_t* p, uint32_t end, uint32_t* off, uint8_t* nh, uint8_t* cur,
               uint16_t* frag_offset, uint8_t* mf, uint32_t* frag_id, bint* have_frag,
               uint32_t* need, int* bad_opts) noexcept nogil:
    """Walk the IPv6 extension headers of the packet at p (end: bytes of it available, >= 40).

    Returns 0 at the upper-layer header (at *off, protocol *nh); 1 if a header is cut short (*need:
    the bytes of p that reading it takes; *nh: the last next-header value read, *off: where the cut
    header starts, *cur: its type); 3 if a hop-by-hop/destination-options header has an option
    running past it (*nh: the last next-header value read, *off and *cur: offset and type of the
    bad header); 2 at a non-first fragment (*nh: the fragment header's next header; what follows
    is not a header). A header whose options are malformed otherwise (tlv_check: a Home Address
    option of the wrong length) is walked past, as tshark does, and its type is left in *bad_opts
    (the first one; the caller starts it at -1). Every read is checked against end first.
    Terminates: every step advances by at least 8 bytes and stops at end.
    """
    cdef uint32_t o = 40, hlen
    cdef uint16_t v
    cdef uint8_t h = p[6]          # p has at least 40 bytes (checked by the caller)
    cdef uint8_t t
    while True:
        if is_ext6(h):
            cur[0] = h
            if o + 2 > end:                       # next-header and length bytes
                if o + 1 <= end:
                    h = p[o]
                nh[0] = h
                off[0] = o
                need[0] = o + 2
                return 1
            t = h
            if h == 51:
                hlen = (<uint32_t>p[o + 1] + 2) * 4
            else:
                hlen = (<uint32_t>p[o + 1] + 1) * 8
            h = p[o]
            if o + hlen > end:
                nh[0] = h
                off[0] = o
                need[0] = o + hlen
                return 1
            if t == 0 or t == 60:
                v = tlv_check(p, o + 2, o + hlen)
                if v == 2:
                    nh[0] = h
                    off[0] = o
                    return 3
                if v == 1 and bad_opts[0] < 0:
                    bad_opts[0] = t
            o += hlen
        elif h == 44:
            cur[0] = h
            if o + 8 > end:
                if o + 1 <= end:
                    h = p[o]
                nh[0] = h
                off[0] = o
                need[0] = o + 8
                return 1
            v = be16(p + o + 2)
            if not have_frag[0]:
                have_frag[0] = True
                frag_offset[0] = v >> 3
                mf[0] = v & 1
                frag_id[0] = be32(p + o + 4)
            h = p[o]
            o += 8
            if (v >> 3) != 0:
                nh[0] = h
                off[0] = o
                return 2
        else:
            nh[0] = h
            off[0] = o
            return 0


cdef uint32_t decode_inner(const uint8_t* p, uint32_t n, Pkt* k) noexcept nogil:
    """The IP header (and first transport bytes) quoted by an ICMP error; silent when incomplete.

    Returns 0 when every field connection tracking reads from the quote (S11: addresses, protocol,
    ports or echo identifier) was decoded or the quote carries no more of them, else the number of
    quote bytes that reading the next missing field takes (the caller compares it with the bytes
    the quote had on the wire to tell a snap-length cut from a short quote).
    """
    cdef uint32_t ihl, off = 0, need = 0
    cdef uint8_t proto = 0, cur = 0
    cdef bint hf = False
    cdef uint16_t fo = 0
    cdef uint8_t mf = 0
    cdef uint32_t fid = 0
    cdef int r, bad_opts = -1
    if n < 1:
        return 1
    if (p[0] >> 4) == 4:
        if n < 20:
            return 20
        ihl = (p[0] & 0x0F) * 4
        if ihl < 20:
            return 0
        if n < ihl:
            return ihl
        k.inner_l3 = 4
        k.inner_src_lo = be32(p + 12)
        k.inner_dst_lo = be32(p + 16)
        proto = p[9]
        k.inner_proto = proto
        if (be16(p + 6) & 0x1FFF) != 0:
            return 0
        off = ihl
    elif (p[0] >> 4) == 6:
        if n < 40:
            return 40
        k.inner_l3 = 6
        k.inner_src_hi = be64(p + 8)
        k.inner_src_lo = be64(p + 16)
        k.inner_dst_hi = be64(p + 24)
        k.inner_dst_lo = be64(p + 32)
        r = walk6(p, n, &off, &proto, &cur, &fo, &mf, &fid, &hf, &need, &bad_opts)
        k.inner_proto = proto
        if r == 1:
            return need
        if r != 0 or bad_opts >= 0:
            return 0
    else:
        return 0
    # off <= n here (an accepted header lies inside the n bytes)
    if proto == 6 or proto == 17:
        if n - off < 4:
            return off + 4
        k.inner_sport = be16(p + off)
        k.inner_dport = be16(p + off + 2)
    elif proto == 1 or proto == 58:
        if n - off < 1:
            return off + 1
        if icmp_echo(proto, p[off]):
            if n - off < 6:
                return off + 6
            k.inner_sport = be16(p + off + 4)
    return 0


cdef inline void decode_l4(const uint8_t* t, uint32_t n, uint32_t w, Pkt* k) noexcept nogil:
    """The transport header at t: n bytes of the datagram's payload captured, w (>= n) on the wire.

    n < w when the snap length cut the datagram (S15): the packet is still decoded when the fields
    classification and connection tracking need were captured (TCP ports and flags, UDP ports,
    ICMP type and code, an echo's identifier, an error's quoted header); a header that the wire
    length itself cannot hold is malformed as in an uncut packet.
    """
    cdef uint8_t proto = k.proto
    cdef uint32_t doff, need
    if proto == 6:
        if n >= 4:
            k.sport = be16(t)
            k.dport = be16(t + 2)
            k.flags |= F_PORTS
        if n >= 14:
            k.tcp_flags = ((<uint16_t>t[12] & 0x0F) << 8) | t[13]
            k.flags |= F_TCPFLAGS
        if w < 20 or n < 14:
            bad(k, D_TRUNC_TCP, n)
            return
        doff = t[12] >> 4
        if doff < 5:
            bad(k, D_TCP_DOFF, doff)
        elif doff * 4 > w:
            bad(k, D_TRUNC_TCP, n)
    elif proto == 17:
        if n >= 4:
            k.sport = be16(t)
            k.dport = be16(t + 2)
            k.flags |= F_PORTS
        if w < 8 or n < 4:
            bad(k, D_TRUNC_UDP, n)
    elif proto == 1 or proto == 58:
        if n >= 1:
            k.icmp_type = t[0]
            k.flags |= F_ICMPTYPE
        if n >= 2:
            k.icmp_code = t[1]
            k.flags |= F_ICMPCODE
        if w < 4 or n < 2:
            bad(k, D_TRUNC_ICMP, n)
            return
        if icmp_echo(proto, t[0]):
            if w < 8 or n < 6:
                bad(k, D_TRUNC_ICMP, n)
            else:
                k.icmp_id = be16(t + 4)
        elif icmp_error(proto, t[0]):
            if n > 8:
                need = decode_inner(t + 8, n - 8, k)
            else:
                need = 1
            if n < w and w > 8 and need != 0 and need <= w - 8:
                bad(k, D_TRUNC_QUOTE, t[0])


cdef inline void decode_ip4(const uint8_t* p, uint32_t n, uint32_t wire, Pkt* k) noexcept nogil:
    # n bytes captured, wire (>= n) on the wire
    cdef uint32_t ihl, total, end, wend
    cdef uint16_t fo
    if n < 20 or (p[0] & 0x0F) < 5 or n < <uint32_t>(p[0] & 0x0F) * 4:
        if n < wire:
            k.flags |= F_TRUNC    # the cut is somewhere inside the datagram
    if n < 20:
        bad(k, D_TRUNC_IP4, n)
        return
    ihl = (p[0] & 0x0F) * 4
    if ihl < 20:
        bad(k, D_IP4_IHL, ihl)
        return
    if n < ihl:
        bad(k, D_TRUNC_IP4_OPT, ihl)
        return
    k.l3 = 4
    k.src_lo = be32(p + 12)
    k.dst_lo = be32(p + 16)
    k.proto = p[9]
    k.frag_id = be16(p + 4)
    fo = be16(p + 6)
    k.more_fragments = (fo >> 13) & 1
    k.frag_offset = fo & 0x1FFF
    k.flags |= F_L3 | F_PROTO
    total = be16(p + 2)
    end = n
    wend = wire
    if total == 0:
        pass                  # segmentation offload: the length is unknown, use the frame's
    elif total < ihl:
        bad(k, D_IP4_TOTLEN, total)
        return
    elif total > wire:
        bad(k, D_DGRAM_WIRE if n < wire else D_DGRAM_CUT, total)
    elif total > n:
        wend = total          # cut by the snap length: the headers are read from what was captured
    else:
        end = total
        wend = total
    if n < wire and end < wend:
        k.flags |= F_TRUNC
    if k.frag_offset != 0:
        return                # a non-first fragment carries no transport header
    # ihl <= end <= wend: ihl <= n, and ihl <= total when end or wend is total
    decode_l4(p + ihl, end - ihl, wend - ihl, k)


cdef inline void decode_ip6(const uint8_t* p, uint32_t n, uint32_t wire, Pkt* k) noexcept nogil:
    # n bytes captured, wire (>= n) on the wire
    cdef uint32_t end, wend, plen, off = 0, need = 0
    cdef uint8_t nh = 0, cur = 0
    cdef bint hf = False
    cdef int r, bad_opts = -1
    if n < 40:
        # a cut fixed header: what tshark shows of it too -- the version, the next header when it
        # is an upper-layer protocol, and the source address when its 16 bytes are there (the
        # `aux` of this detail is n, which `sgdp decode` uses to show the source and not the
        # destination); the packet is malformed
        if n >= 7:
            k.l3 = 6
            k.flags |= F_L3
            if not is_ext6(p[6]) and p[6] != 44:
                k.proto = p[6]
                k.flags |= F_PROTO
        if n >= 24:
            k.src_hi = be64(p + 8)
            k.src_lo = be64(p + 16)
        bad(k, D_TRUNC_IP6, n)
        if n < wire:
            k.flags |= F_TRUNC
        return
    k.l3 = 6
    k.src_hi = be64(p + 8)
    k.src_lo = be64(p + 16)
    k.dst_hi = be64(p + 24)
    k.dst_lo = be64(p + 32)
    k.flags |= F_L3
    plen = be16(p + 4)
    end = 40 + plen
    wend = end
    if plen == 0:
        end = n               # jumbogram or offload: use the frame's length
        wend = wire
    elif end > wire:
        bad(k, D_DGRAM_WIRE if n < wire else D_DGRAM_CUT, end)
        end = n
        wend = n
    elif end > n:
        end = n               # cut by the snap length: the headers are read from what was captured
    if n < wire and end < wend:
        k.flags |= F_TRUNC
    r = walk6(p, end, &off, &nh, &cur, &k.frag_offset, &k.more_fragments, &k.frag_id, &hf, &need, &bad_opts)
    k.proto = nh
    if bad_opts >= 0:
        # malformed options: the packet is malformed; the fields after them are still shown (tshark)
        bad(k, D_EXT_OPTS, <uint32_t>bad_opts)
    if r == 1:
        # a header of the chain is cut short: its protocol is the last next-header value read,
        # except for a hop-by-hop header of which no byte was captured (tshark dissects that header
        # as part of the fixed header and shows no protocol; of a later header with no byte, it
        # shows the previous header's next header)
        if off < end or cur != 0:
            k.flags |= F_PROTO
        bad(k, D_TRUNC_EXT, cur)
        return
    k.flags |= F_PROTO
    if r == 3:
        bad(k, D_EXT_OPTS, cur)
        return
    if r == 2 or k.frag_offset != 0:
        return
    decode_l4(p + off, end - off, wend - off, k)      # off <= end <= wend: walk6 only accepts headers inside end


cdef inline void decode_ip_any(const uint8_t* p, uint32_t n, uint32_t wire, Pkt* k) noexcept nogil:
    # IPv4 ethertype/family, or a raw link type: the version nibble decides (as tshark does).
    if n < 1:
        bad(k, D_TRUNC_IP4, 0)
        if n < wire:
            k.flags |= F_TRUNC
    elif (p[0] >> 4) == 4:
        decode_ip4(p, n, wire, k)
    elif (p[0] >> 4) == 6:
        decode_ip6(p, n, wire, k)
    else:
        bad(k, D_IP_VERSION, p[0] >> 4)

cdef inline void decode_ip6_only(const uint8_t* p, uint32_t n, uint32_t wire, Pkt* k) noexcept nogil:
    if n < 1:
        bad(k, D_TRUNC_IP6, 0)
        if n < wire:
            k.flags |= F_TRUNC
    elif (p[0] >> 4) != 6:
        bad(k, D_IP6_VERSION, p[0] >> 4)
    else:
        decode_ip6(p, n, wire, k)


cdef inline void decode_frame(const uint8_t* p, uint32_t n, uint32_t wire, uint32_t link, Pkt* k) noexcept nogil:
    """Decode one frame of n captured bytes (wire >= n on the wire) with the given link type into k.

    The IP layer gets the bytes after the link-layer header, captured and on the wire; it sets
    F_TRUNC when the snap length cut its datagram. A frame without IP that lost bytes to the snap
    length is marked F_TRUNC here.
    """
    cdef uint32_t off, et, fam
    if link == 1:                                   # Ethernet
        if n < 14:
            bad(k, D_TRUNC_LINK, n)
            if n < wire:
                k.flags |= F_TRUNC
            return
        k.src_mac = mac48(p + 6)
        et = be16(p + 12)
        off = 14
    elif link == 113:                               # Linux cooked v1
        if n < 16:
            bad(k, D_TRUNC_LINK, n)
            if n < wire:
                k.flags |= F_TRUNC
            return
        if be16(p + 2) == 1 and be16(p + 4) == 6:   # ARPHRD_ETHER, 6-byte sender address
            k.src_mac = mac48(p + 6)
        et = be16(p + 14)
        off = 16
    elif link == 276:                               # Linux cooked v2
        if n < 20:
            bad(k, D_TRUNC_LINK, n)
            if n < wire:
                k.flags |= F_TRUNC
            return
        if be16(p + 8) == 1 and p[11] == 6:
            k.src_mac = mac48(p + 12)
        et = be16(p)
        off = 20
    elif link == 101 or link == 228 or link == 229 or link == 12 or link == 14:   # raw IP
        decode_ip_any(p, n, wire, k)
        return
    elif link == 0 or link == 108:                  # BSD loopback (host order) / OpenBSD loop (network order)
        if n < 4:
            bad(k, D_TRUNC_LINK, n)
            if n < wire:
                k.flags |= F_TRUNC
            return
        fam = le32(p)
        if fam > 0xFFFF:                            # written in the other byte order
            fam = be32(p)
        if fam == 2:
            decode_ip_any(p + 4, n - 4, wire - 4, k)
        elif fam == 10 or fam == 24 or fam == 28 or fam == 30:
            decode_ip6_only(p + 4, n - 4, wire - 4, k)
        else:
            non_ip(k, D_FAMILY, fam)
            if n < wire:
                k.flags |= F_TRUNC
        return
    else:
        non_ip(k, D_LINKTYPE, link)
        if n < wire:
            k.flags |= F_TRUNC
        return
    # ethertype chain: 802.1Q / 802.1ad / QinQ tags, any depth (each step consumes 4 bytes)
    while et == 0x8100 or et == 0x88A8 or et == 0x9100 or et == 0x9200:
        if n < off + 4:
            bad(k, D_TRUNC_VLAN, n)
            if n < wire:
                k.flags |= F_TRUNC
            return
        et = be16(p + off + 2)
        off += 4
    if et < 0x0600:                                 # 802.3 length: LLC, maybe SNAP carrying IP
        if (n >= off + 8 and p[off] == 0xAA and p[off + 1] == 0xAA and p[off + 2] == 0x03
                and p[off + 3] == 0 and p[off + 4] == 0 and p[off + 5] == 0):
            et = be16(p + off + 6)
            off += 8
        else:
            non_ip(k, D_LLC, et)
            if n < wire:
                k.flags |= F_TRUNC
            return
    # off <= n <= wire here: every header consumed above was checked to lie inside the n bytes
    if et == 0x0800:
        decode_ip_any(p + off, n - off, wire - off, k)
    elif et == 0x86DD:
        decode_ip6_only(p + off, n - off, wire - off, k)
    else:
        non_ip(k, D_ETHERTYPE, et)
        if n < wire:
            k.flags |= F_TRUNC


cdef inline void store(Cols* c, Py_ssize_t i, Pkt* k) noexcept nogil:
    # i < capacity (the caller's loop bound), and every column holds capacity rows (Batch checks).
    c.ts[i] = <double>k.ts_sec + <double>k.ts_nsec * 1e-9
    c.l3[i] = k.l3
    c.src_hi[i] = k.src_hi
    c.src_lo[i] = k.src_lo
    c.dst_hi[i] = k.dst_hi
    c.dst_lo[i] = k.dst_lo
    c.proto[i] = k.proto
    c.sport[i] = k.sport
    c.dport[i] = k.dport
    c.icmp_type[i] = k.icmp_type
    c.icmp_code[i] = k.icmp_code
    c.icmp_id[i] = k.icmp_id
    c.tcp_flags[i] = k.tcp_flags
    c.src_mac[i] = k.src_mac
    c.frag_offset[i] = k.frag_offset
    c.more_fragments[i] = k.more_fragments
    c.frag_id[i] = k.frag_id
    c.status[i] = k.status
    c.inner_l3[i] = k.inner_l3
    c.inner_src_hi[i] = k.inner_src_hi
    c.inner_src_lo[i] = k.inner_src_lo
    c.inner_dst_hi[i] = k.inner_dst_hi
    c.inner_dst_lo[i] = k.inner_dst_lo
    c.inner_proto[i] = k.inner_proto
    c.inner_sport[i] = k.inner_sport
    c.inner_dport[i] = k.inner_dport
    c.caplen[i] = k.caplen
    c.wirelen[i] = k.wirelen
    c.detail[i] = k.detail
    c.aux[i] = k.aux
    c.flags[i] = k.flags
    c.ts_sec[i] = k.ts_sec
    c.ts_nsec[i] = k.ts_nsec
    c.offset[i] = k.offset
    c.linktype[i] = k.linktype


cdef inline void record(Cols* c, Py_ssize_t i, const uint8_t* data, int64_t offset, uint32_t present,
                        uint32_t wirelen, int64_t sec, uint32_t nsec, uint32_t link, uint8_t flags) noexcept nogil:
    cdef Pkt k
    pkt_init(&k)
    k.offset = <uint64_t>offset
    k.linktype = <uint16_t>link
    k.ts_sec = sec
    k.ts_nsec = nsec
    k.caplen = present
    k.wirelen = wirelen
    k.flags = flags
    # the frame's length on the wire, never less than what was captured (a record whose original
    # length is below its captured length is read as not cut)
    decode_frame(data, present, wirelen if wirelen > present else present, link, &k)
    store(c, i, &k)

cdef inline uint32_t spb_caplen(uint32_t orig, int64_t blen, uint32_t snaplen) noexcept nogil:
    """A simple packet block records no captured length: it is the original length, cut to the
    block's room (block length - 16) and to the interface's snap length (0 = none)."""
    cdef uint32_t n = orig
    if n > <uint32_t>(blen - 16):
        n = <uint32_t>(blen - 16)
    if snaplen != 0 and n > snaplen:
        n = snaplen
    return n


cdef inline void mark_cut(Cols* c, Py_ssize_t i, uint16_t code, uint32_t declared) noexcept nogil:
    # the last record, cut short by the end of the file (S15): malformed, whatever it decoded to
    c.status[i] = ST_MALFORMED
    c.detail[i] = code
    c.aux[i] = declared


cdef inline int walk_options(const uint8_t* blk, Py_ssize_t off, Py_ssize_t end, bint big, Iface* f,
                             uint32_t* bad_code, uint32_t* bad_len, Py_ssize_t* bad_at) noexcept nogil:
    """Check a pcapng option list blk[off:end] (end <= block length - 4, both multiples of 4).

    Returns 0, -1 if an option runs past the list, -2 for an unusable if_tsresol. With an
    Iface, reads if_tsresol (9) and if_tsoffset (14) into it.
    """
    cdef uint32_t code, olen, padded, v
    while off < end:
        if end - off < 4:
            bad_code[0] = 0
            bad_len[0] = <uint32_t>(end - off)
            bad_at[0] = off
            return -1
        code = rd16(blk + off, big)
        olen = rd16(blk + off + 2, big)
        if code == 0:                     # opt_endofopt
            return 0
        padded = (olen + 3) & ~(<uint32_t>3)
        if padded > end - off - 4:
            bad_code[0] = code
            bad_len[0] = olen
            bad_at[0] = off
            return -1
        if f != NULL:
            if code == 9 and olen >= 1:
                v = blk[off + 4]
                if v & 0x80:
                    if (v & 0x7F) > 63:
                        bad_len[0] = v
                        bad_at[0] = off + 4
                        return -2
                    f.binary = True
                    f.exp = v & 0x7F
                else:
                    if v > 19:
                        bad_len[0] = v
                        bad_at[0] = off + 4
                        return -2
                    f.binary = False
                    f.exp = v
            elif code == 14 and olen == 8:
                f.tsoffset = <int64_t>rd64(blk + off + 4, big)
        off += 4 + padded
    return 0


cdef inline void iface_scale(Iface* f) noexcept nogil:
    cdef uint32_t i
    f.div = 1
    f.nsdiv = 1
    f.nsmul = 1
    if f.binary:
        return
    for i in range(f.exp):               # exp <= 19: 10^19 < 2^64
        f.div *= 10
    if f.exp >= 9:
        for i in range(f.exp - 9):
            f.nsdiv *= 10
    else:
        for i in range(9 - f.exp):
            f.nsmul *= 10


# The last second of the time range sgdp keeps: 2**64 - 1 nanoseconds after 1970-01-01 (2554-07-21
# 23:34:33.709551615 UTC), the most an unsigned 64-bit count of nanoseconds holds.
cdef uint64_t MAX_SEC = 18446744073ULL
cdef uint32_t MAX_NSEC_AT_MAX_SEC = 709551615U


cdef inline int iface_time(Iface* f, uint64_t units, int64_t* sec, uint32_t* nsec, uint64_t* raw) noexcept nogil:
    """The time of ``units`` on interface ``f``, in *sec / *nsec; 0, or -1 when it (with
    if_tsoffset) falls before 1970 or after MAX_SEC (*raw: the seconds before the offset). Every
    sum below is checked against the range before it is made, so none wraps."""
    cdef uint64_t s, rem, back
    if f.binary:
        if f.exp == 0:
            s = units
            rem = 0
        else:
            s = units >> f.exp
            rem = units & ((<uint64_t>1 << f.exp) - 1)
        nsec[0] = <uint32_t>(ldexp(<double>rem, -<int>f.exp) * 1e9)
        if nsec[0] > 999999999:
            nsec[0] = 999999999
    else:
        s = units // f.div
        rem = units % f.div
        if f.exp >= 9:
            nsec[0] = <uint32_t>(rem // f.nsdiv)
        else:
            nsec[0] = <uint32_t>(rem * f.nsmul)
    raw[0] = s
    if f.tsoffset >= 0:
        if s > MAX_SEC or <uint64_t>f.tsoffset > MAX_SEC - s:
            return -1
        s += <uint64_t>f.tsoffset
    else:
        back = <uint64_t>(-(f.tsoffset + 1)) + 1     # |tsoffset|, also for INT64_MIN
        if s < back or s - back > MAX_SEC:
            return -1
        s -= back
    if s == MAX_SEC and nsec[0] > MAX_NSEC_AT_MAX_SEC:
        return -1
    sec[0] = <int64_t>s                              # s <= MAX_SEC < 2**63
    return 0


# ------------------------------------------------------------------------------- Python classes

cdef class Batch:
    """The columns one ``Parser.feed`` call writes into: ``COLUMNS`` names and dtypes, all of the
    same length (the capacity), C-contiguous and writeable; ``n`` rows are filled."""

    def __cinit__(self, dict arrays not None):
        cdef Py_ssize_t length = -1
        cdef double[::1] f64
        cdef uint8_t[::1] u8
        cdef uint16_t[::1] u16
        cdef int16_t[::1] i16
        cdef uint32_t[::1] u32
        cdef uint64_t[::1] u64
        cdef int64_t[::1] i64
        for name, dtype in COLUMNS:
            a = arrays.get(name)
            if a is None:
                raise ValueError(f"batch: missing column {name!r}")
            if not isinstance(a, np.ndarray):
                raise TypeError(f"batch: column {name!r} must be a NumPy array, got {type(a).__name__}")
            if a.dtype != np.dtype(dtype) or a.ndim != 1:
                raise ValueError(f"batch: column {name!r} must be 1-D {dtype}, got {a.ndim}-D {a.dtype}")
            if not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"batch: column {name!r} must be C-contiguous and writeable")
            if length < 0:
                length = a.shape[0]
            elif a.shape[0] != length:
                raise ValueError(f"batch: column {name!r} has {a.shape[0]} rows, expected {length}")
        if length < 1:
            raise ValueError("batch: columns must hold at least one row")
        self.arrays = {name: arrays[name] for name, _ in COLUMNS}
        self.capacity = length
        self.n = 0
        a = self.arrays
        f64 = a["ts"]; self.c.ts = &f64[0]
        u8 = a["l3"]; self.c.l3 = &u8[0]
        u64 = a["src_hi"]; self.c.src_hi = &u64[0]
        u64 = a["src_lo"]; self.c.src_lo = &u64[0]
        u64 = a["dst_hi"]; self.c.dst_hi = &u64[0]
        u64 = a["dst_lo"]; self.c.dst_lo = &u64[0]
        u8 = a["proto"]; self.c.proto = &u8[0]
        u16 = a["sport"]; self.c.sport = &u16[0]
        u16 = a["dport"]; self.c.dport = &u16[0]
        i16 = a["icmp_type"]; self.c.icmp_type = &i16[0]
        i16 = a["icmp_code"]; self.c.icmp_code = &i16[0]
        u16 = a["icmp_id"]; self.c.icmp_id = &u16[0]
        u16 = a["tcp_flags"]; self.c.tcp_flags = &u16[0]
        i64 = a["src_mac"]; self.c.src_mac = &i64[0]
        u16 = a["frag_offset"]; self.c.frag_offset = &u16[0]
        u8 = a["more_fragments"]; self.c.more_fragments = &u8[0]
        u32 = a["frag_id"]; self.c.frag_id = &u32[0]
        u8 = a["status"]; self.c.status = &u8[0]
        u8 = a["inner_l3"]; self.c.inner_l3 = &u8[0]
        u64 = a["inner_src_hi"]; self.c.inner_src_hi = &u64[0]
        u64 = a["inner_src_lo"]; self.c.inner_src_lo = &u64[0]
        u64 = a["inner_dst_hi"]; self.c.inner_dst_hi = &u64[0]
        u64 = a["inner_dst_lo"]; self.c.inner_dst_lo = &u64[0]
        u8 = a["inner_proto"]; self.c.inner_proto = &u8[0]
        u16 = a["inner_sport"]; self.c.inner_sport = &u16[0]
        u16 = a["inner_dport"]; self.c.inner_dport = &u16[0]
        u32 = a["caplen"]; self.c.caplen = &u32[0]
        u32 = a["wirelen"]; self.c.wirelen = &u32[0]
        u16 = a["detail"]; self.c.detail = &u16[0]
        u32 = a["aux"]; self.c.aux = &u32[0]
        u8 = a["flags"]; self.c.flags = &u8[0]
        i64 = a["ts_sec"]; self.c.ts_sec = &i64[0]
        u32 = a["ts_nsec"]; self.c.ts_nsec = &u32[0]
        u64 = a["offset"]; self.c.offset = &u64[0]
        u16 = a["linktype"]; self.c.linktype = &u16[0]


cdef class Parser:
    """Streaming state of one capture file (pcap or pcapng), fed from a byte buffer."""

    def __cinit__(self):
        self.state = ST_START
        self.ifaces = NULL

    def __dealloc__(self):
        free(self.ifaces)
        self.ifaces = NULL

    @property
    def nano(self) -> bool:
        return bool(self.nano)

    @property
    def big_endian(self) -> bool:
        return bool(self.big)

    def feed(self, buf, Py_ssize_t start, Py_ssize_t end, bint eof, int64_t base, Batch batch not None):
        """Parse records from buf[start:end] into batch (rows batch.n onwards).

        ``eof``: nothing follows buf[end] in the file. ``base``: file offset of buf[0] (for error
        offsets). Returns ``(result, position)``: one of ``RESULT`` and the buffer position of the
        first unconsumed byte.
        """
        cdef const uint8_t[::1] mv = buf
        cdef const uint8_t* ptr = NULL
        cdef Py_ssize_t pos = start
        cdef Py_ssize_t cnt = batch.n
        cdef int code
        if not (0 <= start <= end <= mv.shape[0]):
            raise ValueError(f"feed: need 0 <= start <= end <= len(buf), got {start}, {end}, {mv.shape[0]}")
        if base < 0:
            raise ValueError(f"feed: base must be >= 0, got {base}")
        if not (0 <= cnt <= batch.capacity):
            raise ValueError(f"feed: batch.n must be in 0..{batch.capacity}, got {cnt}")
        if mv.shape[0] > 0:
            ptr = &mv[0]
        with nogil:
            code = self._run(ptr, &pos, end, eof, base, &batch.c, &cnt, batch.capacity)
        batch.n = cnt
        return code, pos

    cdef int _fail(self, int code, int64_t offset, int64_t a, int64_t b) noexcept nogil:
        self.state = ST_ERROR
        self.err = code
        self.err_offset = offset
        self.err_a = a
        self.err_b = b
        return R_ERROR

    cdef int _run(self, const uint8_t* buf, Py_ssize_t* pos, Py_ssize_t end, bint eof, int64_t base,
                  Cols* c, Py_ssize_t* n, Py_ssize_t cap) noexcept nogil:
        cdef Py_ssize_t p = pos[0]
        cdef uint32_t magic, lt
        if self.state == ST_START:
            if end - p < 4:
                if not eof:
                    self.need = 4
                    return R_NEED
                return self._fail(E_SHORT_FILE, base + p, end - p, 0)
            magic = le32(buf + p)
            if magic == BT_SHB:
                self.fmt = 2
                self.state = ST_PCAPNG
            elif magic == 0xA1B2C3D4U or magic == 0xD4C3B2A1U or magic == 0xA1B23C4DU or magic == 0x4D3CB2A1U:
                if end - p < PCAP_HDR:
                    if not eof:
                        self.need = PCAP_HDR
                        return R_NEED
                    return self._fail(E_SHORT_FILE, base + p, end - p, 0)
                self.big = magic == 0xD4C3B2A1U or magic == 0x4D3CB2A1U
                self.nano = magic == 0xA1B23C4DU or magic == 0x4D3CB2A1U
                if rd16(buf + p + 4, self.big) != 2:
                    return self._fail(E_PCAP_VERSION, base + p + 4, rd16(buf + p + 4, self.big),
                                      rd16(buf + p + 6, self.big))
                lt = rd32(buf + p + 20, self.big)
                if lt & 0x03FF0000:                     # reserved bits (the FCS bits above are allowed)
                    return self._fail(E_LINKTYPE_RESERVED, base + p + 20, lt, 0)
                self.linktype = lt & 0xFFFF
                self.snaplen = rd32(buf + p + 16, self.big)
                self.fmt = 1
                self.state = ST_PCAP
                pos[0] = p + PCAP_HDR
            else:
                return self._fail(E_NOT_CAPTURE, base + p, magic, 0)
        if self.state == ST_PCAP:
            return self._pcap(buf, pos, end, eof, base, c, n, cap)
        if self.state == ST_PCAPNG:
            return self._pcapng(buf, pos, end, eof, base, c, n, cap)
        if self.state == ST_DONE:
            return R_END
        return R_ERROR

    cdef int _pcap(self, const uint8_t* buf, Py_ssize_t* pos, Py_ssize_t end, bint eof, int64_t base,
                   Cols* c, Py_ssize_t* n, Py_ssize_t cap) noexcept nogil:
        cdef Py_ssize_t p = pos[0], cnt = n[0], avail
        cdef uint32_t incl, orig, present
        cdef uint64_t sec, nsec
        cdef Pkt k
        cdef int result = R_FULL
        while cnt < cap:
            avail = end - p
            if avail < PCAP_REC:
                if not eof:
                    self.need = PCAP_REC
                    result = R_NEED
                    break
                if avail == 0:
                    self.state = ST_DONE
                    result = R_END
                    break
                # the last record's header is cut short by the end of the file
                pkt_init(&k)
                k.ts_sec = self.last_sec
                k.ts_nsec = self.last_nsec
                k.flags = F_NOTS
                store(c, cnt, &k)
                mark_cut(c, cnt, D_CUT_EOF_HDR, <uint32_t>avail)
                cnt += 1
                p = end
                continue
            # buf[p : p + 16] is inside [start, end)
            incl = rd32(buf + p + 8, self.big)
            if incl > MAXCAP:
                pos[0] = p
                n[0] = cnt
                return self._fail(E_CAPLEN, base + p + 8, incl, MAXCAP)
            orig = rd32(buf + p + 12, self.big)
            sec = rd32(buf + p, self.big)
            nsec = rd32(buf + p + 4, self.big)
            if not self.nano:
                nsec *= 1000
            if nsec >= 1000000000:                       # out-of-range fraction: normalise
                sec += nsec // 1000000000
                nsec = nsec % 1000000000
            self.last_sec = <int64_t>sec
            self.last_nsec = <uint32_t>nsec
            if avail - PCAP_REC < incl:
                if not eof:
                    self.need = PCAP_REC + incl
                    result = R_NEED
                    break
                # the last record is cut short by the end of the file (S15)
                if self.snaplen != 0 and incl > self.snaplen:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_CUT_IMPLAUSIBLE, base + p + 8, incl, self.snaplen)
                present = <uint32_t>(avail - PCAP_REC)
                record(c, cnt, buf + p + PCAP_REC, base + p + PCAP_REC, present, orig, <int64_t>sec, <uint32_t>nsec, self.linktype, 0)
                mark_cut(c, cnt, D_CUT_EOF, incl)
                p = end
            else:
                record(c, cnt, buf + p + PCAP_REC, base + p + PCAP_REC, incl, orig, <int64_t>sec, <uint32_t>nsec, self.linktype, 0)
                p += PCAP_REC + incl
            cnt += 1
        pos[0] = p
        n[0] = cnt
        return result

    cdef int _add_iface(self, const uint8_t* blk, Py_ssize_t blen, int64_t offset) noexcept nogil:
        # blk: a complete IDB of blen >= 20 bytes
        cdef Iface* grown
        cdef Iface* f
        cdef uint32_t new_cap, bc = 0, bl = 0
        cdef Py_ssize_t at = 0
        cdef int r
        if self.n_interfaces >= MAX_IFACES:
            return self._fail(E_TOO_MANY_IFACES, offset, MAX_IFACES, 0)
        if self.n_interfaces == self.cap_ifaces:
            new_cap = 8 if self.cap_ifaces == 0 else self.cap_ifaces * 2
            grown = <Iface*>realloc(self.ifaces, new_cap * sizeof(Iface))
            if grown == NULL:
                return self._fail(E_NOMEM, offset, 0, 0)
            self.ifaces = grown
            self.cap_ifaces = new_cap
        f = &self.ifaces[self.n_interfaces]          # n_interfaces < cap_ifaces
        memset(f, 0, sizeof(Iface))
        f.link = rd16(blk + 8, self.big)
        f.snaplen = rd32(blk + 12, self.big)
        f.exp = 6
        r = walk_options(blk, 16, blen - 4, self.big, f, &bc, &bl, &at)
        if r == -1:
            return self._fail(E_OPTION, offset + at, bc, bl)
        if r == -2:
            return self._fail(E_TSRESOL, offset + at, bl, 0)
        iface_scale(f)
        self.n_interfaces += 1
        return 0

    cdef int _pcapng(self, const uint8_t* buf, Py_ssize_t* pos, Py_ssize_t end, bint eof, int64_t base,
                     Cols* c, Py_ssize_t* n, Py_ssize_t cap) noexcept nogil:
        cdef Py_ssize_t p = pos[0], cnt = n[0], avail, blen, padded, at = 0
        cdef uint32_t btype, bom, blen32, trailer, iface, incl, orig, present, declared, limit
        cdef uint32_t bc = 0, bl = 0, minlen
        cdef uint64_t units
        cdef int64_t sec
        cdef uint32_t nsec
        cdef uint64_t raw = 0
        cdef bint big
        cdef const uint8_t* blk
        cdef Iface* f
        cdef Pkt k
        cdef int result = R_FULL, r
        while cnt < cap:
            avail = end - p
            blk = buf + p
            if avail < 12:
                if not eof:
                    self.need = 12
                    result = R_NEED
                    break
                if avail == 0:
                    self.state = ST_DONE
                    result = R_END
                    break
                if self.sections == 0:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_SHORT_FILE, base + p, avail, 0)
                if avail < 4:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_TRAILING, base + p, avail, 0)
                btype = rd32(blk, self.big)
                if btype == BT_EPB or btype == BT_SPB or btype == BT_OPB:
                    pkt_init(&k)                      # a packet block whose header is cut short
                    k.ts_sec = self.last_sec
                    k.ts_nsec = self.last_nsec
                    k.flags = F_NOTS
                    store(c, cnt, &k)
                    mark_cut(c, cnt, D_CUT_EOF_HDR, <uint32_t>avail)
                    cnt += 1
                p = end                               # any other block cut short holds no packet
                continue
            # blk[0:12] is inside the buffer
            btype = rd32(blk, self.big)
            big = self.big
            if btype == BT_SHB:                       # palindromic type; its own byte order
                bom = le32(blk + 8)
                if bom == 0x1A2B3C4D:
                    big = False
                elif bom == 0x4D3C2B1A:
                    big = True
                else:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_SHB_BOM, base + p + 8, bom, 0)
            blen32 = rd32(blk + 4, big)
            if blen32 < 12 or (blen32 & 3):
                pos[0] = p
                n[0] = cnt
                return self._fail(E_BLOCK_LEN, base + p + 4, blen32, 0)
            if btype == BT_SHB:
                minlen = 28
            elif btype == BT_IDB:
                minlen = 20
            elif btype == BT_EPB or btype == BT_OPB:
                minlen = 32
            elif btype == BT_SPB:
                minlen = 16
            else:
                minlen = 12
            if blen32 < minlen:
                pos[0] = p
                n[0] = cnt
                return self._fail(E_BLOCK_SHORT, base + p, btype, blen32)
            if blen32 > MAXBLOCK:
                pos[0] = p
                n[0] = cnt
                return self._fail(E_BLOCK_TOO_BIG, base + p + 4, blen32, MAXBLOCK)
            blen = blen32
            if avail < blen:
                if not eof:
                    self.need = blen
                    result = R_NEED
                    break
                # the block is cut short by the end of the file
                if self.sections == 0:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_SHORT_FILE, base + p, avail, 0)
                if btype == BT_EPB or btype == BT_OPB:
                    if avail >= 28:
                        iface = rd32(blk + 8, big) if btype == BT_EPB else rd16(blk + 8, big)
                        if iface >= self.n_interfaces:
                            pos[0] = p
                            n[0] = cnt
                            return self._fail(E_IFACE, base + p + 8, iface, self.n_interfaces)
                        f = &self.ifaces[iface]
                        incl = rd32(blk + 20, big)
                        limit = MAXCAP
                        if f.snaplen != 0 and f.snaplen < limit:
                            limit = f.snaplen
                        if incl > limit:
                            pos[0] = p
                            n[0] = cnt
                            return self._fail(E_CUT_IMPLAUSIBLE, base + p + 20, incl, limit)
                        orig = rd32(blk + 24, big)
                        units = (<uint64_t>rd32(blk + 12, big) << 32) | rd32(blk + 16, big)
                        if iface_time(f, units, &sec, &nsec, &raw) != 0:
                            pos[0] = p
                            n[0] = cnt
                            return self._fail(E_TS_RANGE, base + p + 12, <int64_t>raw, f.tsoffset)
                        self.last_sec = sec
                        self.last_nsec = nsec
                        present = <uint32_t>(avail - 28)
                        if present > incl:
                            present = incl
                        record(c, cnt, blk + 28, base + p + 28, present, orig, sec, nsec, f.link, 0)
                        mark_cut(c, cnt, D_CUT_EOF, incl)
                    else:
                        pkt_init(&k)
                        k.ts_sec = self.last_sec
                        k.ts_nsec = self.last_nsec
                        k.flags = F_NOTS
                        store(c, cnt, &k)
                        mark_cut(c, cnt, D_CUT_EOF_HDR, <uint32_t>avail)
                    cnt += 1
                elif btype == BT_SPB:
                    if self.n_interfaces == 0:
                        pos[0] = p
                        n[0] = cnt
                        return self._fail(E_IFACE, base + p, 0, 0)
                    f = &self.ifaces[0]
                    orig = rd32(blk + 8, big)
                    declared = spb_caplen(orig, blen, f.snaplen)
                    if declared > MAXCAP:
                        pos[0] = p
                        n[0] = cnt
                        return self._fail(E_CUT_IMPLAUSIBLE, base + p + 8, declared, MAXCAP)
                    present = <uint32_t>(avail - 12)
                    if present > declared:
                        present = declared
                    record(c, cnt, blk + 12, base + p + 12, present, orig, self.last_sec, self.last_nsec, f.link, F_NOTS)
                    mark_cut(c, cnt, D_CUT_EOF, declared)
                    cnt += 1
                p = end                               # any other block cut short holds no packet
                continue
            # the whole block blk[0:blen] is inside the buffer; blen >= the type's minimum length
            trailer = rd32(blk + blen - 4, big)
            if trailer != blen32:
                pos[0] = p
                n[0] = cnt
                return self._fail(E_BLOCK_TRAILER, base + p + blen - 4, blen32, trailer)
            if btype == BT_SHB:
                if rd16(blk + 12, big) != 1 or (rd16(blk + 14, big) != 0 and rd16(blk + 14, big) != 2):
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_SHB_VERSION, base + p + 12, rd16(blk + 12, big), rd16(blk + 14, big))
                r = walk_options(blk, 24, blen - 4, big, NULL, &bc, &bl, &at)
                if r != 0:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_OPTION, base + p + at, bc, bl)
                self.big = big
                self.n_interfaces = 0                 # interface ids restart in each section
                self.sections += 1
            elif self.sections == 0:
                pass                                  # unreachable: the file starts with an SHB
            elif btype == BT_IDB:
                if self._add_iface(blk, blen, base + p) != 0:
                    pos[0] = p
                    n[0] = cnt
                    return R_ERROR
            elif btype == BT_EPB or btype == BT_OPB:
                iface = rd32(blk + 8, big) if btype == BT_EPB else rd16(blk + 8, big)
                if iface >= self.n_interfaces:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_IFACE, base + p + 8, iface, self.n_interfaces)
                incl = rd32(blk + 20, big)
                if incl > MAXCAP:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_CAPLEN, base + p + 20, incl, MAXCAP)
                padded = (incl + 3) & ~(<uint32_t>3)
                if 28 + padded + 4 > blen:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_PKT_DATA, base + p + 20, incl, blen)
                r = walk_options(blk, 28 + padded, blen - 4, big, NULL, &bc, &bl, &at)
                if r != 0:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_OPTION, base + p + at, bc, bl)
                f = &self.ifaces[iface]              # iface < n_interfaces <= cap_ifaces
                orig = rd32(blk + 24, big)
                units = (<uint64_t>rd32(blk + 12, big) << 32) | rd32(blk + 16, big)
                if iface_time(f, units, &sec, &nsec, &raw) != 0:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_TS_RANGE, base + p + 12, <int64_t>raw, f.tsoffset)
                self.last_sec = sec
                self.last_nsec = nsec
                record(c, cnt, blk + 28, base + p + 28, incl, orig, sec, nsec, f.link, 0)
                cnt += 1
            elif btype == BT_SPB:
                if self.n_interfaces == 0:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_IFACE, base + p, 0, 0)
                f = &self.ifaces[0]
                orig = rd32(blk + 8, big)
                incl = spb_caplen(orig, blen, f.snaplen)
                if incl > MAXCAP:
                    pos[0] = p
                    n[0] = cnt
                    return self._fail(E_CAPLEN, base + p + 8, incl, MAXCAP)
                record(c, cnt, blk + 12, base + p + 12, incl, orig, self.last_sec, self.last_nsec, f.link, F_NOTS)
                cnt += 1
            # every other block (ISB, NRB, DSB, custom, ...) is skipped
            p += blen
        pos[0] = p
        n[0] = cnt
        return result
