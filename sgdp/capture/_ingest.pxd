# The compiled capture reader: C types shared by sgdp/_ingest.pyx.
#
# A capture is parsed record by record from a byte buffer that the Python side (sgdp/ingest.py)
# fills from the file in blocks; every decoded packet is written as one row of a set of NumPy
# columns (`Cols`), a batch of at most `capacity` rows per call. Nothing here does I/O or holds a
# Python object in a loop; all offsets are checked against the end of the buffer before a read.

from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


# One decoded packet, built on the stack and then stored as row i of every column.
# Field for field this is sgdp.capture.packet.Packet (PACKET_COLUMNS), plus the reader's own facts.
cdef struct Pkt:
    int64_t ts_sec          # capture time, whole seconds (ts_sec + ts_nsec / 1e9 -> "ts" float64)
    uint32_t ts_nsec        # capture time, nanoseconds 0..999999999
    uint64_t offset         # "offset" uint64: file offset of the frame's first byte (0 when no frame)
    uint16_t linktype       # "linktype" uint16: the frame's link type
    uint8_t l3              # "l3" uint8: 4 or 6; 0 when no IP header was decoded
    uint64_t src_hi         # "src_hi"/"src_lo" uint64: IPv6 address halves; IPv4 in src_lo, src_hi 0
    uint64_t src_lo
    uint64_t dst_hi         # "dst_hi"/"dst_lo" uint64: as src
    uint64_t dst_lo
    uint8_t proto           # "proto" uint8: IPv4 protocol / IPv6 upper-layer next header
    uint16_t sport          # "sport"/"dport" uint16: TCP/UDP ports, 0 otherwise
    uint16_t dport
    int16_t icmp_type       # "icmp_type"/"icmp_code" int16: ICMP/ICMPv6 type and code, -1 otherwise
    int16_t icmp_code
    uint16_t icmp_id        # "icmp_id" uint16: echo identifier of an echo request/reply, else 0
    uint16_t tcp_flags      # "tcp_flags" uint16: the 12 bits after the TCP data offset (as tshark)
    int64_t src_mac         # "src_mac" int64: Ethernet (or cooked Ethernet) source MAC, -1 otherwise
    uint16_t frag_offset    # "frag_offset" uint16: fragment offset in 8-byte units
    uint8_t more_fragments  # "more_fragments" uint8: 0/1
    uint32_t frag_id        # "frag_id" uint32: IPv4 identification / IPv6 fragment identification
    uint8_t status          # "status" uint8: sgdp.capture.packet OK / NON_IP / MALFORMED
    uint8_t inner_l3        # "inner_*": the header quoted by an ICMP error (inner_l3 0: none)
    uint64_t inner_src_hi
    uint64_t inner_src_lo
    uint64_t inner_dst_hi
    uint64_t inner_dst_lo
    uint8_t inner_proto
    uint16_t inner_sport    # for a quoted ICMP echo: its identifier
    uint16_t inner_dport
    uint32_t caplen         # "caplen" uint32: bytes of the frame present in the file
    uint32_t wirelen        # "wirelen" uint32: the frame's length on the wire (as recorded)
    uint16_t detail         # "detail" uint16: why status is not OK (DETAIL_* codes, text in ingest.py)
    uint32_t aux            # "aux" uint32: the value the detail refers to (ethertype, version, ...)
    uint8_t flags           # "flags" uint8: which fields were decoded (F_* bits), for `sgdp decode`


# Raw pointers to the columns of one batch (a Batch validates dtype, length and contiguity of each
# array once, then keeps the arrays alive while these pointers are in use).
cdef struct Cols:
    double* ts
    uint8_t* l3
    uint64_t* src_hi
    uint64_t* src_lo
    uint64_t* dst_hi
    uint64_t* dst_lo
    uint8_t* proto
    uint16_t* sport
    uint16_t* dport
    int16_t* icmp_type
    int16_t* icmp_code
    uint16_t* icmp_id
    uint16_t* tcp_flags
    int64_t* src_mac
    uint16_t* frag_offset
    uint8_t* more_fragments
    uint32_t* frag_id
    uint8_t* status
    uint8_t* inner_l3
    uint64_t* inner_src_hi
    uint64_t* inner_src_lo
    uint64_t* inner_dst_hi
    uint64_t* inner_dst_lo
    uint8_t* inner_proto
    uint16_t* inner_sport
    uint16_t* inner_dport
    uint32_t* caplen
    uint32_t* wirelen
    uint16_t* detail
    uint32_t* aux
    uint8_t* flags
    int64_t* ts_sec
    uint32_t* ts_nsec
    uint64_t* offset
    uint16_t* linktype


# One pcapng interface (Interface Description Block) of the current section.
cdef struct Iface:
    uint32_t link           # link type (16 bits in the IDB)
    uint32_t snaplen        # 0: no limit
    bint binary             # if_tsresol is 2^-exp (else 10^-exp)
    uint32_t exp            # if_tsresol exponent (default 6: microseconds)
    uint64_t div            # decimal: 10^exp units per second
    uint64_t nsdiv          # decimal, exp >= 9: 10^(exp-9) units per nanosecond
    uint64_t nsmul          # decimal, exp < 9: 10^(9-exp) nanoseconds per unit
    int64_t tsoffset        # if_tsoffset, seconds added to every timestamp


cdef class Batch:
    cdef Cols c
    cdef readonly Py_ssize_t capacity
    cdef public Py_ssize_t n            # rows filled so far
    cdef readonly dict arrays           # keeps the columns alive while `c` points into them


cdef class Parser:
    cdef int state                      # ST_* below
    cdef readonly int fmt               # 0 not yet known, 1 pcap, 2 pcapng
    cdef bint big                       # pcap file / current pcapng section is big-endian
    cdef bint nano                      # pcap: nanosecond timestamps
    cdef readonly uint32_t linktype     # pcap: the file's link type (low 16 bits)
    cdef readonly uint32_t snaplen      # pcap: the file's snap length
    cdef Iface* ifaces                  # pcapng: interfaces of the current section (owned)
    cdef readonly uint32_t n_interfaces
    cdef uint32_t cap_ifaces
    cdef readonly uint32_t sections     # pcapng: section header blocks seen
    cdef int64_t last_sec               # time of the previous packet (for blocks without one)
    cdef uint32_t last_nsec
    cdef readonly Py_ssize_t need       # after R_NEED: bytes required from the returned position
    cdef readonly int err               # after R_ERROR: E_* code, text in ingest.py
    cdef readonly int64_t err_offset    # after R_ERROR: byte offset in the file
    cdef readonly int64_t err_a         # after R_ERROR: values the message quotes
    cdef readonly int64_t err_b

    cdef int _run(self, const uint8_t* buf, Py_ssize_t* pos, Py_ssize_t end, bint eof, int64_t base,
                  Cols* c, Py_ssize_t* n, Py_ssize_t cap) noexcept nogil
    cdef int _pcap(self, const uint8_t* buf, Py_ssize_t* pos, Py_ssize_t end, bint eof, int64_t base,
                   Cols* c, Py_ssize_t* n, Py_ssize_t cap) noexcept nogil
    cdef int _pcapng(self, const uint8_t* buf, Py_ssize_t* pos, Py_ssize_t end, bint eof, int64_t base,
                     Cols* c, Py_ssize_t* n, Py_ssize_t cap) noexcept nogil
    cdef int _fail(self, int code, int64_t offset, int64_t a, int64_t b) noexcept nogil
    cdef int _add_iface(self, const uint8_t* blk, Py_ssize_t blen, int64_t offset) noexcept nogil
