# cython: language_level=3
"""Compiled dataplane: the per-packet steps of sgdp/reference.py over NumPy columns.

One pass per batch, in capture order (``Dataplane.run``; sgdp/fast.py builds the ``Plan``): the
clock, fragment memory (S15), ``resolve_one`` — endpoints (S5), paths (S6), local traffic,
load-balancer listener and backend (S14), ACL exemptions (S13) and the view each stage sees — then
the stages: connection tracking (S11) in an open-addressing hash table in C memory, and only when it
does not decide, the first-match rule of the NIC's policy table or subnet ACL (``tuple_lookup`` of
sgdp/_fastmatch.pyx). Every branch mirrors a line of the reference engine; tests/test_differential.py
checks that both give the same columns on random topologies and packet sequences.
"""

cimport cython

cdef extern from "stdlib.h":
    void* aligned_alloc(size_t alignment, size_t size) nogil
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #define sgdp_dp_prefetch_write(p) __builtin_prefetch((p), 1)
    #define SGDP_DP_RESERVE ((size_t)1 << 36)
    #include <sys/mman.h>
    #ifndef MADV_POPULATE_WRITE
    #define MADV_POPULATE_WRITE 23
    #endif
    static inline unsigned long long sgdp_dp_mum(unsigned long long a, unsigned long long b) {
        unsigned __int128 p = (unsigned __int128)a * b;
        return (unsigned long long)p ^ (unsigned long long)(p >> 64);
    }
    """
    void prefetch "__builtin_prefetch"(const void* p) noexcept nogil
    void prefetch_write "sgdp_dp_prefetch_write"(void* p) noexcept nogil
    uint64_t mum "sgdp_dp_mum"(uint64_t a, uint64_t b) noexcept nogil  # 128-bit product, halves XORed
    # address space (not memory) kept for a table that grows in place: 64 GiB
    const size_t RESERVE "SGDP_DP_RESERVE"
cdef extern from "sys/mman.h":
    int madvise(void* addr, size_t length, int advice) nogil
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset) nogil
    int munmap(void* addr, size_t length) nogil
    int mprotect(void* addr, size_t length, int prot) nogil
    const int PROT_NONE
    const int MADV_HUGEPAGE
    const int MADV_POPULATE_WRITE
    const int PROT_READ
    const int PROT_WRITE
    const int MAP_PRIVATE
    const int MAP_ANONYMOUS
    const int MAP_NORESERVE
    void* MAP_FAILED
DEF HUGE = 2097152  # bytes of a transparent huge page (x86-64)

import numpy as np

cimport numpy as cnp

from sgdp._fastmatch cimport TupleClassifier, TupleView, tuple_lookup
from sgdp._sorted cimport sorted_find

cnp.import_array()

# endpoint kinds and how a NIC was addressed (reference.Endpoint)
DEF K_EXTERNAL = 0
DEF K_SERVICE = 1
DEF K_VPC = 2
DEF K_PRIVATE = 3
DEF K_NIC = 4
DEF K_LB = 5
DEF H_NONE = 0
DEF H_FIXED = 1
DEF H_EIP = 2
DEF H_VIP = 3
DEF H_FORWARDED = 4

# resolve modes
DEF M_EARLY = 0
DEF M_NORMAL = 1
DEF M_BYPASS = 2
DEF M_FORWARD = 3
DEF M_NOLISTENER = 4

# verdict, reason and direction codes (sgdp.capture.packet.VERDICTS / REASONS / DIRECTIONS)
DEF N_VERDICTS = 4  # V_* codes (sgdp.capture.VERDICTS)
DEF V_ALLOW = 0
DEF V_DENY = 1
DEF V_UNMODELLED = 2
DEF V_MALFORMED = 3
DEF R_RULE = 0
DEF R_DEFAULT = 1
DEF R_ESTABLISHED = 2
DEF R_RELATED = 3
DEF R_LOCAL = 4
DEF R_LB_BYPASS = 5
DEF R_NO_ROUTE = 6
DEF R_ACL = 7
DEF R_UNMODELLED = 8
DEF R_MALFORMED = 9
DEF D_NONE = 0
DEF D_INGRESS = 1
DEF D_EGRESS = 2

DEF PAIR_MASK = 4095  # slots of a plan's endpoint-pair cache, minus one (4,096 x 64 bytes)
DEF MAXC = 256  # endpoint candidates per address; fast.py refuses topologies that could exceed it

DEF TCP = 6
DEF UDP = 17
DEF ICMP = 1
DEF ICMPV6 = 58

DEF ST_OK = 0
DEF ST_NON_IP = 1
DEF ST_MALFORMED = 2

DEF FIN = 0x01
DEF SYN = 0x02
DEF RST = 0x04
DEF ACK = 0x10

DEF SWEEP = 4  # slots examined for expiry per insertion
DEF FLOW_REST = 8  # batches run without the flow cache after one in which fewer than half the lookups hit
DEF FLOW_PROBE_MIN = 4096  # a batch with fewer lookups than this does not decide it
DEF FLOW_EARLY = 1  # FlowSlot.kind
DEF FLOW_EST = 2
DEF FLOW_MIN = 4096  # slots of the flow cache at least; it grows to a quarter of the connection table's
DEF AHEAD = 24  # run() hashes the header of the packet this many rows ahead and prefetches its flow cache slot
DEF NEAR = 12  # ... and, this many rows ahead, the connection-table lines the slot names (or guesses them)
DEF RING = 31  # the header hashes of the rows between: a ring of RING + 1 (> AHEAD) entries
DEF COLUMNS_AHEAD = 64  # run() asks for the packet and verdict columns' lines this many rows ahead
DEF NO_L4 = 256  # the port or ICMP type/code of a header that has none (fast.py)

# S13 addresses (sgdp.engine.common: BROADCAST, LINK_MULTICAST, METADATA, CLOUD_SERVICES)
cdef uint64_t BROADCAST = 0xFFFFFFFFULL
cdef uint64_t LINK_MCAST_LO = 0xE0000000ULL
cdef uint64_t LINK_MCAST_HI = 0xE00000FFULL
cdef uint64_t METADATA = 0xA9FEA9FEULL
cdef uint64_t CLOUD_LO = 0x647D0000ULL
cdef uint64_t CLOUD_HI = 0x647DFFFFULL


cdef class Plan:
    """The topology as flat arrays (built by sgdp/fast.py; every index array is validated there to be
    in range of the array it indexes)."""

    cdef public object arrays  # keep the NumPy arrays alive
    # exact address index: sorted (l3, hi, lo) -> candidates [start, start+count)
    cdef const uint8_t[::1] ak_l3
    cdef const uint64_t[::1] ak_hi
    cdef const uint64_t[::1] ak_lo
    cdef const int32_t[::1] ak_start
    cdef const int32_t[::1] ak_count
    cdef const uint8_t[::1] c_kind
    cdef const uint8_t[::1] c_how
    cdef const int32_t[::1] c_idx
    # range lists (in priority order): services, VPC ranges, private networks, subnet ranges
    cdef const uint8_t[::1] sv_l3
    cdef const uint64_t[::1] sv_lo_hi
    cdef const uint64_t[::1] sv_lo_lo
    cdef const uint64_t[::1] sv_hi_hi
    cdef const uint64_t[::1] sv_hi_lo
    cdef const uint8_t[::1] vr_l3
    cdef const uint64_t[::1] vr_lo_hi
    cdef const uint64_t[::1] vr_lo_lo
    cdef const uint64_t[::1] vr_hi_hi
    cdef const uint64_t[::1] vr_hi_lo
    cdef const int32_t[::1] vr_vpc
    cdef const uint8_t[::1] pr_l3
    cdef const uint64_t[::1] pr_lo_hi
    cdef const uint64_t[::1] pr_lo_lo
    cdef const uint64_t[::1] pr_hi_hi
    cdef const uint64_t[::1] pr_hi_lo
    cdef const uint8_t[::1] sr_l3
    cdef const uint64_t[::1] sr_lo_hi
    cdef const uint64_t[::1] sr_lo_lo
    cdef const uint64_t[::1] sr_hi_hi
    cdef const uint64_t[::1] sr_hi_lo
    cdef const int32_t[::1] sr_subnet
    cdef const int32_t[::1] sr_vpc
    # MACs: sorted values -> NIC
    cdef const int64_t[::1] mac_key
    cdef const int32_t[::1] mac_nic
    # NICs
    cdef const int32_t[::1] nic_vpc
    cdef const int32_t[::1] nic_subnet
    cdef const uint64_t[::1] nic_ip
    cdef const uint8_t[::1] nic_has_eip
    cdef const uint64_t[::1] nic_eip
    cdef const uint8_t[::1] nic_v6inet
    cdef const uint8_t[::1] nic_sdc
    cdef const int32_t[::1] nic_inst
    cdef const int32_t[::1] nic_acl
    # VPC relations
    cdef int32_t n_vpc
    cdef const uint8_t[::1] peered  # [a * n_vpc + b]
    cdef const uint8_t[::1] pn_vpc  # [private * n_vpc + vpc]
    # load balancers and listeners
    cdef const uint64_t[::1] lb_source
    cdef const int32_t[::1] lb_lstart
    cdef const int32_t[::1] lb_lcount
    cdef const uint8_t[::1] ls_proto
    cdef const uint16_t[::1] ls_port
    cdef const uint8_t[::1] ls_bypass
    cdef const int32_t[::1] ls_bstart
    cdef const int32_t[::1] ls_bcount
    cdef const int32_t[::1] be_nic
    cdef const uint16_t[::1] be_port
    cdef const int32_t[::1] be_ls      # backend -> its listener
    cdef const int32_t[::1] ls_lb      # listener -> its load balancer
    cdef const uint64_t[::1] lb_vip
    cdef const uint64_t[::1] lb_eip
    cdef const uint8_t[::1] lb_has_eip
    cdef const int32_t[::1] nb_start   # NIC -> nb_be[start : start + count], the backends forwarding to it
    cdef const int32_t[::1] nb_count
    cdef const int32_t[::1] nb_be
    # first-match tables: security-group policy per (NIC, direction code), ACL table per (ACL, way);
    # a table's rows map to global rule indexes (names.rules) and allow flags at [off[t] + row]
    cdef const int32_t[::1] nic_sg
    cdef const int32_t[::1] acl_way
    cdef const int32_t[::1] sg_rule    # per row of the security-group tables' answers (every group walk's rows)
    cdef const uint8_t[::1] sg_allow
    cdef const int64_t[::1] acl_off
    cdef const int32_t[::1] acl_rule
    cdef const uint8_t[::1] acl_allow
    cdef const int32_t[::1] rule_group  # global rule index -> group index (security group or ACL)
    cdef const int32_t[::1] acl_group  # ACL index -> group index
    cdef TupleView* sg_views  # owned array; the TupleClassifiers it points into live in self.arrays
    cdef TupleView* acl_views
    cdef AddrSlot* addr_slots  # owned: exact-address hash table over the ak_* index
    cdef uint64_t addr_mask
    cdef PairSlot* pairs  # owned: PAIR_SLOTS slots, the last (sender, receiver) chosen per slot (resolve_one)
    cdef uint64_t eip_filter[64]  # bit eip_bit(lo) set for each NIC EIP lo: most addresses need no lookup (eip_private)

    def __init__(self, dict a, int n_vpc):
        self.arrays = a
        self.ak_l3 = a["ak_l3"]; self.ak_hi = a["ak_hi"]; self.ak_lo = a["ak_lo"]
        self.ak_start = a["ak_start"]; self.ak_count = a["ak_count"]
        self.c_kind = a["c_kind"]; self.c_how = a["c_how"]; self.c_idx = a["c_idx"]
        self.sv_l3 = a["sv_l3"]; self.sv_lo_hi = a["sv_lo_hi"]; self.sv_lo_lo = a["sv_lo_lo"]
        self.sv_hi_hi = a["sv_hi_hi"]; self.sv_hi_lo = a["sv_hi_lo"]
        self.vr_l3 = a["vr_l3"]; self.vr_lo_hi = a["vr_lo_hi"]; self.vr_lo_lo = a["vr_lo_lo"]
        self.vr_hi_hi = a["vr_hi_hi"]; self.vr_hi_lo = a["vr_hi_lo"]; self.vr_vpc = a["vr_vpc"]
        self.pr_l3 = a["pr_l3"]; self.pr_lo_hi = a["pr_lo_hi"]; self.pr_lo_lo = a["pr_lo_lo"]
        self.pr_hi_hi = a["pr_hi_hi"]; self.pr_hi_lo = a["pr_hi_lo"]
        self.sr_l3 = a["sr_l3"]; self.sr_lo_hi = a["sr_lo_hi"]; self.sr_lo_lo = a["sr_lo_lo"]
        self.sr_hi_hi = a["sr_hi_hi"]; self.sr_hi_lo = a["sr_hi_lo"]; self.sr_subnet = a["sr_subnet"]
        self.sr_vpc = a["sr_vpc"]
        self.mac_key = a["mac_key"]; self.mac_nic = a["mac_nic"]
        self.nic_vpc = a["nic_vpc"]; self.nic_subnet = a["nic_subnet"]; self.nic_ip = a["nic_ip"]
        self.nic_has_eip = a["nic_has_eip"]; self.nic_eip = a["nic_eip"]; self.nic_v6inet = a["nic_v6inet"]
        self.nic_sdc = a["nic_sdc"]; self.nic_inst = a["nic_inst"]; self.nic_acl = a["nic_acl"]
        self.n_vpc = n_vpc
        self.peered = a["peered"]; self.pn_vpc = a["pn_vpc"]
        self.lb_source = a["lb_source"]; self.lb_lstart = a["lb_lstart"]; self.lb_lcount = a["lb_lcount"]
        self.ls_proto = a["ls_proto"]; self.ls_port = a["ls_port"]; self.ls_bypass = a["ls_bypass"]
        self.ls_bstart = a["ls_bstart"]; self.ls_bcount = a["ls_bcount"]
        self.be_nic = a["be_nic"]; self.be_port = a["be_port"]
        self.be_ls = a["be_ls"]; self.ls_lb = a["ls_lb"]
        self.lb_vip = a["lb_vip"]; self.lb_eip = a["lb_eip"]; self.lb_has_eip = a["lb_has_eip"]
        self.nb_start = a["nb_start"]; self.nb_count = a["nb_count"]; self.nb_be = a["nb_be"]
        self.nic_sg = a["nic_sg"]; self.acl_way = a["acl_way"]
        self.sg_rule = a["sg_rule"]; self.sg_allow = a["sg_allow"]
        self.acl_off = a["acl_off"]; self.acl_rule = a["acl_rule"]; self.acl_allow = a["acl_allow"]
        self.rule_group = a["rule_group"]; self.acl_group = a["acl_group"]
        self.sg_views = views_of(a["sg_classifiers"])
        self.acl_views = views_of(a["acl_classifiers"])
        self.build_address_table()

    def __dealloc__(self):
        free(self.sg_views)
        free(self.acl_views)
        free(self.addr_slots)
        free(self.pairs)

    cdef int build_address_table(self) except -1:
        """Open addressing over the exact addresses, at most half full (every probe chain ends)."""
        cdef Py_ssize_t n = self.ak_l3.shape[0], k
        cdef uint64_t cap = 16, j
        while cap < <uint64_t>(2 * n + 2):
            cap <<= 1
        self.addr_slots = <AddrSlot*>calloc(cap, sizeof(AddrSlot))
        self.pairs = <PairSlot*>aligned_alloc(64, (PAIR_MASK + 1) * sizeof(PairSlot))
        if self.addr_slots == NULL or self.pairs == NULL:
            raise MemoryError()
        memset(self.pairs, 0, (PAIR_MASK + 1) * sizeof(PairSlot))
        self.addr_mask = cap - 1
        memset(self.eip_filter, 0, sizeof(self.eip_filter))
        for k in range(n):
            if self.ak_l3[k] == 4 and self.ak_hi[k] == 0:
                for j in range(<uint64_t>self.ak_start[k], <uint64_t>(self.ak_start[k] + self.ak_count[k])):
                    if self.c_kind[j] == K_NIC and self.c_how[j] == H_EIP:
                        self.eip_filter[eip_bit(self.ak_lo[k]) >> 6] |= (<uint64_t>1) << (eip_bit(self.ak_lo[k]) & 63)
            j = addr_hash(self.ak_l3[k], self.ak_hi[k], self.ak_lo[k]) & self.addr_mask
            while self.addr_slots[j].count != 0:
                j = (j + 1) & self.addr_mask
            self.addr_slots[j].l3 = self.ak_l3[k]
            self.addr_slots[j].hi = self.ak_hi[k]
            self.addr_slots[j].lo = self.ak_lo[k]
            self.addr_slots[j].start = self.ak_start[k]
            self.addr_slots[j].count = self.ak_count[k]
            if self.ak_count[k] == 1:  # (start was checked against len(c_kind) by fast.py)
                self.addr_slots[j].kind = self.c_kind[self.ak_start[k]]
                self.addr_slots[j].how = self.c_how[self.ak_start[k]]
                self.addr_slots[j].idx = self.c_idx[self.ak_start[k]]
        return 0


cdef inline uint64_t eip_bit(uint64_t lo) noexcept nogil:
    return (lo * <uint64_t>0x9E3779B97F4A7C15ULL) >> 52  # 0 .. 4095


cdef inline uint64_t addr_hash(uint8_t l3, uint64_t hi, uint64_t lo) noexcept nogil:
    cdef uint64_t h = (lo ^ (hi * <uint64_t>0x9E3779B97F4A7C15ULL) ^ l3) * <uint64_t>0xFF51AFD7ED558CCDULL
    return h ^ (h >> 29)


cdef TupleView* views_of(list classifiers) except NULL:
    cdef TupleView* out = <TupleView*>calloc(len(classifiers) + 1, sizeof(TupleView))
    cdef TupleClassifier tc
    cdef Py_ssize_t t
    if out == NULL:
        raise MemoryError()
    for t in range(len(classifiers)):
        tc = <TupleClassifier?>classifiers[t]
        out[t] = tc.view
    return out


# ------------------------------------------------------------------------------- small helpers

cdef inline bint in_range(uint8_t l3, uint64_t hi, uint64_t lo, uint8_t rl3, uint64_t lh, uint64_t ll,
                          uint64_t hh, uint64_t hl) noexcept nogil:
    if l3 != rl3:
        return False
    if hi < lh or (hi == lh and lo < ll):
        return False
    if hi > hh or (hi == hh and lo > hl):
        return False
    return True


cdef inline const AddrSlot* addr_slot(Plan p, uint8_t l3, uint64_t hi, uint64_t lo) noexcept nogil:
    """The exact-address table's slot of this address, or NULL."""
    cdef uint64_t j = addr_hash(l3, hi, lo) & p.addr_mask
    # the table is at most half full, so the probe ends at an empty slot
    while p.addr_slots[j].count != 0:
        if p.addr_slots[j].lo == lo and p.addr_slots[j].hi == hi and p.addr_slots[j].l3 == l3:
            return &p.addr_slots[j]
        j = (j + 1) & p.addr_mask
    return NULL


cdef int candidates(Plan p, uint8_t l3, uint64_t hi, uint64_t lo, Endpoint* out) noexcept nogil:
    """reference._candidates: every endpoint an address may denote, most specific first."""
    cdef Py_ssize_t k
    cdef int n = 0
    cdef const AddrSlot* slot = addr_slot(p, l3, hi, lo)
    if slot != NULL:
        # start/count were checked against len(c_kind) and MAXC by fast.py
        for k in range(slot.start, slot.start + slot.count):
            out[n].kind = p.c_kind[k]
            out[n].how = p.c_how[k]
            out[n].idx = p.c_idx[k]
            n += 1
        return n
    for k in range(p.sv_l3.shape[0]):
        if in_range(l3, hi, lo, p.sv_l3[k], p.sv_lo_hi[k], p.sv_lo_lo[k], p.sv_hi_hi[k], p.sv_hi_lo[k]):
            out[0].kind = K_SERVICE; out[0].how = H_NONE; out[0].idx = -1
            return 1
    # fast.py guarantees len(vr) + len(pr) < MAXC
    for k in range(p.vr_l3.shape[0]):
        if in_range(l3, hi, lo, p.vr_l3[k], p.vr_lo_hi[k], p.vr_lo_lo[k], p.vr_hi_hi[k], p.vr_hi_lo[k]):
            out[n].kind = K_VPC; out[n].how = H_NONE; out[n].idx = p.vr_vpc[k]
            n += 1
    for k in range(p.pr_l3.shape[0]):
        if in_range(l3, hi, lo, p.pr_l3[k], p.pr_lo_hi[k], p.pr_lo_lo[k], p.pr_hi_hi[k], p.pr_hi_lo[k]):
            out[n].kind = K_PRIVATE; out[n].how = H_NONE; out[n].idx = <int32_t>k
            n += 1
    if n == 0:
        out[0].kind = K_EXTERNAL; out[0].how = H_NONE; out[0].idx = -1
        n = 1
    return n


cdef inline bint single(Plan p, uint8_t l3, uint64_t hi, uint64_t lo, Endpoint* out) noexcept nogil:
    """Whether the address is in the exact-address table with one candidate (then candidates()
    gives just that one, put in ``out``)."""
    cdef const AddrSlot* slot = addr_slot(p, l3, hi, lo)
    if slot == NULL or slot.count != 1:
        return False
    out.kind = slot.kind; out.how = slot.how; out.idx = slot.idx
    return True


cdef inline uint64_t eip_private(Plan p, uint64_t lo) noexcept nogil:
    """The private address of the NIC whose EIP is the IPv4 address ``lo``, else ``lo`` (for
    Dataplane.prefetch_rows: a guess, never used for a verdict)."""
    cdef Py_ssize_t k
    cdef uint64_t b = eip_bit(lo)
    if not (p.eip_filter[b >> 6] >> (b & 63)) & 1:
        return lo  # not an EIP (the filter has no false negatives)
    cdef const AddrSlot* slot = addr_slot(p, 4, 0, lo)
    if slot != NULL:
        for k in range(slot.start, slot.start + slot.count):
            if p.c_kind[k] == K_NIC and p.c_how[k] == H_EIP:
                return p.nic_ip[p.c_idx[k]]
    return lo


cdef int mac_lookup(Plan p, int64_t mac) noexcept nogil:
    cdef Py_ssize_t j
    if mac < 0:
        return -1
    j = sorted_find(p.mac_key, mac)
    return p.mac_nic[j] if j >= 0 else -1


cdef inline bint peered(Plan p, int32_t a, int32_t b) noexcept nogil:
    return p.peered[a * p.n_vpc + b] != 0


cdef bint has_path(Plan p, Endpoint s, Endpoint r, uint8_t l3) noexcept nogil:
    """reference._path."""
    cdef Endpoint t
    cdef int32_t nic
    if s.kind == K_LB or r.kind == K_LB:
        return True
    if s.kind != K_NIC:
        t = s; s = r; r = t
    if s.kind != K_NIC:
        return False
    nic = s.idx
    if r.kind == K_NIC:
        if s.how == H_EIP or r.how == H_EIP:
            return l3 == 4 and p.nic_has_eip[nic] != 0 and p.nic_has_eip[r.idx] != 0
        return peered(p, p.nic_vpc[nic], p.nic_vpc[r.idx])
    if s.how == H_EIP and r.kind != K_EXTERNAL:
        return False
    if r.kind == K_SERVICE:
        return True
    if r.kind == K_VPC:
        return peered(p, p.nic_vpc[nic], r.idx)
    if r.kind == K_PRIVATE:
        return p.pn_vpc[r.idx * p.n_vpc + p.nic_vpc[nic]] != 0
    if l3 == 4:
        return p.nic_has_eip[nic] != 0
    return p.nic_v6inet[nic] != 0


cdef int32_t subnet_of(Plan p, Endpoint e, uint8_t l3, uint64_t hi, uint64_t lo) noexcept nogil:
    cdef Py_ssize_t k
    if e.kind == K_NIC:
        return p.nic_subnet[e.idx]
    if e.kind == K_VPC:
        for k in range(p.sr_l3.shape[0]):
            if p.sr_vpc[k] == e.idx and in_range(l3, hi, lo, p.sr_l3[k], p.sr_lo_hi[k], p.sr_lo_lo[k], p.sr_hi_hi[k], p.sr_hi_lo[k]):
                return p.sr_subnet[k]
    return -1


cdef inline uint64_t fnv_u64(uint64_t h, uint64_t v, int nbytes) noexcept nogil:
    cdef int k
    for k in range(nbytes - 1, -1, -1):
        h = (h ^ ((v >> (8 * k)) & 0xFF)) * <uint64_t>0x100000001B3ULL
    return h


cdef inline uint64_t lb_hash(uint64_t sh, uint64_t sl, uint64_t dh, uint64_t dl, uint8_t proto,
                             uint16_t sport, uint16_t dport) noexcept nogil:
    """reference.lb_hash: FNV-1a 64 over src(16) dst(16) proto(1) sport(2) dport(2), big-endian."""
    cdef uint64_t h = <uint64_t>0xCBF29CE484222325ULL
    h = fnv_u64(h, sh, 8); h = fnv_u64(h, sl, 8)
    h = fnv_u64(h, dh, 8); h = fnv_u64(h, dl, 8)
    h = fnv_u64(h, proto, 1)
    h = fnv_u64(h, sport, 2)
    h = fnv_u64(h, dport, 2)
    return h


# ---------------------------------------------------------------------------------- resolve

cdef bint bypass_listener_to(Plan p, int32_t nic, uint8_t proto, uint16_t port) noexcept nogil:
    """reference._forwarded_leg's listener test: a client-IP-transfer listener of this protocol
    forwards to the NIC on this port."""
    cdef Py_ssize_t k
    cdef int32_t be, li
    # nb_start/nb_count/nb_be, be_ls are in range (checked by fast.py)
    for k in range(p.nb_start[nic], p.nb_start[nic] + p.nb_count[nic]):
        be = p.nb_be[k]
        li = p.be_ls[be]
        if p.be_port[be] == port and p.ls_proto[li] == proto and p.ls_bypass[li]:
            return True
    return False


cdef void choose(Plan p, uint8_t l3, uint64_t sh, uint64_t sl, uint64_t dh, uint64_t dl, int32_t m,
                 Endpoint* S, Endpoint* R, Endpoint* s, Endpoint* r) noexcept nogil:
    """reference._sender_candidates, _candidates and _choose: the first (sender, receiver) pair with
    a path, else the first pair (``m``: mac_lookup of the sender's MAC)."""
    cdef int ns, nr, a, b, k
    cdef bint found
    ns = candidates(p, l3, sh, sl, S)
    if m >= 0:
        found = False
        for k in range(ns):
            if S[k].kind == K_NIC and S[k].idx == m:
                S[0] = S[k]
                found = True
                break
        if not found:
            S[0].kind = K_NIC; S[0].how = H_FORWARDED; S[0].idx = m
        ns = 1
    nr = candidates(p, l3, dh, dl, R)
    s[0] = S[0]; r[0] = R[0]
    if ns == 1 and nr == 1:
        return  # the only pair, with a path or not
    for a in range(ns):
        for b in range(nr):
            if has_path(p, S[a], R[b], l3):
                s[0] = S[a]; r[0] = R[b]
                return


cdef inline uint64_t pair_hash(uint8_t l3, uint64_t sh, uint64_t sl, uint64_t dh, uint64_t dl,
                               int64_t mac) noexcept nogil:
    cdef uint64_t h = (sl * <uint64_t>0x9E3779B97F4A7C15ULL) ^ (dl * <uint64_t>0xC2B2AE3D27D4EB4FULL)
    h ^= (sh ^ (dh << 1) ^ <uint64_t>mac ^ l3) * <uint64_t>0x165667B19E3779F9ULL
    return h ^ (h >> 31)


cdef inline PairSlot* pair_slot(Plan p, uint8_t l3, uint64_t sh, uint64_t sl, uint64_t dh, uint64_t dl,
                                int64_t mac) noexcept nogil:
    """The endpoint-pair cache slot of these addresses and MAC (resolve_one)."""
    return &p.pairs[pair_hash(l3, sh, sl, dh, dl, mac) & PAIR_MASK]


cdef View ZERO_VIEW  # all zero (a static: what resolve_one starts each view from)


cdef void resolve_one(Plan p, const Pkt* pk, uint8_t status, int64_t mac, Endpoint* S, Endpoint* R,
                      View* v) noexcept nogil:
    """reference._evaluate up to the stages: endpoints (S5), path (S6), local, load balancer (S14),
    ACL exemptions (S13), and the view each stage sees. The S14 checks that need connection
    tracking are left to Dataplane.evaluate (View.lbform_lb, reply_nic, fwd)."""
    cdef int k
    cdef Endpoint s, r
    cdef int32_t snic, rnic, lb, li, bi
    cdef bint internet
    cdef uint64_t h
    cdef uint8_t l3 = pk.l3, proto = pk.proto
    cdef uint64_t sh = pk.src_hi, sl = pk.src_lo, dh = pk.dst_hi, dl = pk.dst_lo
    v[0] = ZERO_VIEW  # a copy of a static struct: a few vector stores (memset of 136 bytes is a rep stos)
    v.mode = M_EARLY
    v.einst = -1
    v.e_nic = -1
    v.i_nic = -1
    v.b_nic = -1
    v.lbform_lb = -1
    v.reply_nic = -1
    # the sender and receiver depend on the addresses and the MAC alone. Most addresses denote one
    # endpoint, found in the exact-address table (small: in the cache), and then the pair is what
    # choose() makes of those two: the sender is the NIC the MAC names, when it names one (the
    # address's own endpoint if that is the NIC, else the NIC forwarding); else the plan remembers
    # the last answer of each pair's cache slot.
    cdef PairSlot* ps
    cdef int32_t m = mac_lookup(p, mac)
    if single(p, l3, sh, sl, &s) and single(p, l3, dh, dl, &r):
        if m >= 0 and not (s.kind == K_NIC and s.idx == m):
            s.kind = K_NIC; s.how = H_FORWARDED; s.idx = m
    else:
        ps = pair_slot(p, l3, sh, sl, dh, dl, mac)
        if ps.used and ps.sl == sl and ps.dl == dl and ps.sh == sh and ps.dh == dh and ps.mac == mac and ps.l3 == l3:
            s = ps.s; r = ps.r
        else:
            choose(p, l3, sh, sl, dh, dl, m, S, R, &s, &r)
            ps.used = 1; ps.l3 = l3; ps.sh = sh; ps.sl = sl; ps.dh = dh; ps.dl = dl; ps.mac = mac
            ps.s = s; ps.r = r
    snic = s.idx if s.kind == K_NIC else -1
    rnic = r.idx if r.kind == K_NIC else -1
    if s.kind == K_LB and r.kind != K_LB:
        v.lbform_lb = s.idx        # perhaps a reply of one of its sessions, as the LB sends it
        v.i_nic = rnic
    if snic < 0 and rnic < 0 and r.kind != K_LB:
        v.ev = V_UNMODELLED; v.er = R_UNMODELLED
        return
    if snic >= 0 and s.how == H_FORWARDED and p.nic_sdc[snic]:
        v.ev = V_DENY; v.er = R_NO_ROUTE; v.einst = p.nic_inst[snic]
        return
    if snic >= 0 and snic == rnic:
        v.ev = V_ALLOW; v.er = R_LOCAL; v.einst = p.nic_inst[snic]
        return
    if r.kind == K_LB:
        lb = r.idx
        li = -1
        if (proto == TCP or proto == UDP) and not pk.frag:
            for k in range(p.lb_lstart[lb], p.lb_lstart[lb] + p.lb_lcount[lb]):
                if p.ls_proto[k] == proto and p.ls_port[k] == pk.dport:
                    li = <int32_t>k
                    break
        if li < 0:
            v.ev = V_DENY; v.er = R_NO_ROUTE
            if snic >= 0 and not pk.frag:
                # a reply on a backend leg to the LB's own address, when the NIC has a live entry
                v.mode = M_NOLISTENER
                v.e_nic = snic
                v.e_peer_hi = dh; v.e_peer_lo = dl; v.e_gen = 0
                v.e_asrc_hi = sh; v.e_asrc_lo = sl
                v.exempt = 1
            return
        if snic >= 0:
            v.e_nic = snic
            v.e_peer_hi = dh; v.e_peer_lo = dl; v.e_gen = 0
            v.e_asrc_hi = sh; v.e_asrc_lo = sl
        v.exempt = 1
        h = lb_hash(sh, sl, dh, dl, proto, pk.sport, pk.dport)
        # ls_bcount >= 1 (checked by fast.py), so bi lies in the listener's backend range
        bi = p.ls_bstart[li] + <int32_t>(h % <uint64_t>p.ls_bcount[li])
        v.b_nic = p.be_nic[bi]
        v.b_port = p.be_port[bi]
        if p.ls_bypass[li]:
            v.mode = M_BYPASS
            return
        v.mode = M_FORWARD
        v.i_nic = v.b_nic
        v.i_peer_lo = p.lb_source[lb]; v.i_gen = 0
        v.i_src_lo = p.lb_source[lb]
        v.i_dst_lo = p.nic_ip[v.b_nic]
        v.i_dport = v.b_port
        v.i_adst_lo = p.nic_ip[v.b_nic]
        return
    if snic >= 0 and not pk.frag:
        v.reply_nic = snic     # perhaps a backend's reply in a client-IP-transfer session
    if (rnic >= 0 and p.nb_count[rnic] != 0 and r.how == H_FIXED and l3 == 4 and dh == 0 and dl == p.nic_ip[rnic]
            and not pk.frag and (proto == TCP or proto == UDP) and bypass_listener_to(p, rnic, proto, pk.dport)):
        # reference._forwarded_leg: the forwarded leg as a capture on the backend shows it
        if s.kind == K_EXTERNAL:
            v.fwd = 1
        elif s.kind == K_VPC or s.kind == K_PRIVATE or (s.kind == K_NIC and (s.how == H_FIXED or s.how == H_VIP)):
            v.fwd = 2
    v.path = has_path(p, s, r, l3)
    if not v.path:
        v.ev = V_DENY; v.er = R_NO_ROUTE
        v.einst = p.nic_inst[snic] if snic >= 0 else p.nic_inst[rnic]
    else:
        v.mode = M_NORMAL
    internet = s.how == H_EIP or r.how == H_EIP
    if (snic >= 0 and p.nic_acl[snic] >= 0) or (rnic >= 0 and p.nic_acl[rnic] >= 0):
        # only a stage at a NIC with a subnet ACL reads it (stage(): the sender's egress, the
        # receiver's ingress); without one it stays 0
        v.exempt = acl_exempt(p, l3, sh, sl, dh, dl, proto, pk.sport, pk.dport, s, r)
    if snic >= 0:
        v.e_nic = snic
        if internet and rnic >= 0:
            v.e_peer_lo = p.nic_eip[rnic]
        else:
            v.e_peer_hi = dh; v.e_peer_lo = dl
        v.e_gen = rnic >= 0 and r.how == H_FIXED and not internet
        if s.how == H_EIP:
            v.e_asrc_lo = p.nic_ip[snic]
        else:
            v.e_asrc_hi = sh; v.e_asrc_lo = sl
    if rnic >= 0:
        v.i_nic = rnic
        if internet and snic >= 0:
            v.i_peer_lo = p.nic_eip[snic]
        else:
            v.i_peer_hi = sh; v.i_peer_lo = sl
        v.i_gen = snic >= 0 and s.how == H_FIXED and not internet
        v.i_src_hi = sh; v.i_src_lo = sl
        v.i_dst_hi = dh; v.i_dst_lo = dl
        v.i_dport = pk.dport
        if r.how == H_EIP:
            v.i_adst_lo = p.nic_ip[rnic]
        else:
            v.i_adst_hi = dh; v.i_adst_lo = dl


cdef bint acl_exempt(Plan p, uint8_t l3, uint64_t sh, uint64_t sl, uint64_t dh, uint64_t dl, uint8_t proto,
                     uint16_t sport, uint16_t dport, Endpoint s, Endpoint r) noexcept nogil:
    """reference._acl_exempt (S13)."""
    cdef int32_t a, b
    if l3 == 4:
        if dl == BROADCAST or (dl >= LINK_MCAST_LO and dl <= LINK_MCAST_HI):
            return True
        if dl == METADATA and proto == TCP and dport == 80:
            return True
        if sl == METADATA and proto == TCP and sport == 80:
            return True
        if (sl >= CLOUD_LO and sl <= CLOUD_HI) or (dl >= CLOUD_LO and dl <= CLOUD_HI):
            return True
    if s.kind == K_LB or r.kind == K_LB:
        return True
    if s.how == H_EIP or r.how == H_EIP:
        return False
    a = subnet_of(p, s, l3, sh, sl)
    if a < 0:
        return False
    b = subnet_of(p, r, l3, dh, dl)
    return a == b


# ---------------------------------------------------------------------------------- pass 2

cdef inline double ct_timeout(uint8_t proto, uint8_t state) noexcept nogil:
    if proto == TCP:
        return 600.0 if state == 1 else 30.0
    if proto == ICMP or proto == ICMPV6:
        return 30.0
    return 180.0 if state == 1 else 30.0


cdef inline uint64_t mix(uint64_t h, uint64_t v) noexcept nogil:
    h ^= v + <uint64_t>0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2)
    return h


cdef inline uint64_t flow_hash(uint64_t a_hi, uint64_t a_lo, uint64_t b_hi, uint64_t b_lo, uint16_t a_port,
                               uint16_t b_port, uint8_t l3, uint8_t proto) noexcept nogil:
    """Three 64x64->128-bit multiplications (halves folded), two of them independent: fewer
    instructions and a shorter dependency chain than mixing the five words one after another."""
    cdef uint64_t rest = (<uint64_t>a_port << 32) | (<uint64_t>b_port << 16) | (<uint64_t>l3 << 8) | proto
    cdef uint64_t x = mum(a_lo ^ <uint64_t>0x9E3779B97F4A7C15ULL, b_lo ^ <uint64_t>0xC2B2AE3D27D4EB4FULL)
    cdef uint64_t y = mum(a_hi ^ rest ^ <uint64_t>0x165667B19E3779F9ULL, b_hi ^ <uint64_t>0xD6E8FEB86659FD93ULL)
    return mum(x ^ <uint64_t>0x27D4EB2F165667C5ULL, y ^ <uint64_t>0x9E3779B97F4A7C15ULL)


cdef inline uint64_t header_hash(uint8_t l3, uint8_t proto, uint64_t sh, uint64_t sl, uint64_t dh, uint64_t dl,
                                 uint16_t sport, uint16_t dport, uint16_t icmp_id, int64_t mac) noexcept nogil:
    """The flow cache's hash of a packet's header fields (FlowSlot): two independent 128-bit
    multiplications."""
    cdef uint64_t rest = ((<uint64_t>sport << 48) | (<uint64_t>dport << 32) | (<uint64_t>icmp_id << 16)
                          | (<uint64_t>l3 << 8) | proto)
    return (mum(sl ^ <uint64_t>0x9E3779B97F4A7C15ULL, dl ^ rest ^ <uint64_t>0xC2B2AE3D27D4EB4FULL)
            ^ mum(sh ^ <uint64_t>mac ^ <uint64_t>0x165667B19E3779F9ULL, dh ^ <uint64_t>0xD6E8FEB86659FD93ULL))


cdef inline bint keyable(uint8_t proto, int16_t icmp_type) noexcept nogil:
    """Whether an unfragmented packet's filters open or find a connection entry by its own header
    (make_key is true, not an ICMP error): the packets the flow cache's stage paths are for."""
    if proto == ICMP:
        return icmp_type == 8 or icmp_type == 0
    if proto == ICMPV6:
        return icmp_type == 128 or icmp_type == 129
    return True


cdef inline uint64_t ct_hash(const CtKey* k) noexcept nogil:
    """The hash of a connection key leaves out the NIC and the table: every entry of one flow (the
    sender's and the receiver's, security group and ACL) starts at the same slot, so one packet's
    lookups share cache lines."""
    return flow_hash(k.a_hi, k.a_lo, k.b_hi, k.b_lo, k.a_port, k.b_port, k.l3, k.proto)


cdef inline bint ct_eq(const CtKey* a, const CtKey* b) noexcept nogil:
    # the NIC and the table first: the entries of one flow share a home slot (ct_hash) and differ
    # only there, so a probe along them fails at the first comparison
    return (a.nic == b.nic and a.table == b.table and a.a_lo == b.a_lo and a.b_lo == b.b_lo
            and a.a_port == b.a_port and a.b_port == b.b_port and a.a_hi == b.a_hi and a.b_hi == b.b_hi
            and a.l3 == b.l3 and a.proto == b.proto)


cdef void* zeroed(size_t size, size_t align, bint huge) noexcept nogil:
    """``size`` zero bytes on an ``align`` boundary (a power of two below HUGE), NULL when the memory
    is not there; given back by release(p, size). A block of HUGE bytes or more comes from the
    kernel (mmap): its pages are zero until written, so nothing is written here — a table that
    grows by doubling would otherwise write each new block twice, the kernel's zeroing and a
    memset — and it lies on HUGE boundaries; ``huge`` asks for transparent huge pages there (where
    the kernel allows them; else the advice is ignored). A smaller block comes from malloc, zeroed."""
    cdef size_t span, head
    cdef char* base
    cdef void* out
    if size >= HUGE:
        span = (size + HUGE - 1) & ~(<size_t>HUGE - 1)
        base = <char*>mmap(NULL, span + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if <void*>base == MAP_FAILED:
            return NULL
        head = (HUGE - (<size_t>base & (HUGE - 1))) & (HUGE - 1)  # up to the first HUGE boundary
        if head:
            munmap(base, head)
        munmap(base + head + span, HUGE - head)
        if huge:
            madvise(base + head, span, MADV_HUGEPAGE)
        return base + head
    out = aligned_alloc(align, (size + align - 1) & ~(align - 1))
    if out != NULL:
        memset(out, 0, size)
    return out


cdef void release(void* p, size_t size) noexcept nogil:
    """Give back a block of zeroed(size, ...)."""
    if p == NULL:
        return
    if size >= HUGE:
        munmap(p, (size + HUGE - 1) & ~(<size_t>HUGE - 1))
    else:
        free(p)


cdef char* reserve_space() noexcept nogil:
    """RESERVE bytes of address space on a HUGE boundary, for a table that grows in place
    (Dataplane.ct_grow, size_flows), inaccessible until opened part by part (open_space): address
    space alone, which even strict overcommit does not count; a page becomes memory when first
    written (or prefaulted), a huge page where the kernel allows. NULL when it cannot be had."""
    cdef char* base = <char*>mmap(NULL, RESERVE + HUGE, PROT_NONE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    cdef size_t head
    if <void*>base == MAP_FAILED:
        return NULL
    head = (HUGE - (<size_t>base & (HUGE - 1))) & (HUGE - 1)
    if head:
        munmap(base, head)
    munmap(base + head + RESERVE, HUGE - head)
    madvise(base + head, RESERVE, MADV_HUGEPAGE)
    return base + head


def space_available():
    """Whether this process can reserve the address space in which the tables grow in place (it
    cannot under a limit on it, ``ulimit -v``); for tests."""
    cdef char* base = reserve_space()
    if base == NULL:
        return False
    munmap(base, RESERVE)
    return True


cdef bint populate(char* base, size_t* opened, size_t* ready, size_t size, size_t* budget) noexcept nogil:
    """Make the first ``size`` bytes of a reserved space present, from ``ready`` on, HUGE bytes at a
    time while ``budget`` lasts (MADV_POPULATE_WRITE: pages made, nothing written); ``ready`` and
    ``budget`` are moved on. False when the kernel refuses the call."""
    cdef size_t step
    if not open_space(base, opened, size):
        return True  # not opened (the commit refused): nothing made, nothing wrong with the call
    while ready[0] < size and budget[0] > 0:
        step = min(HUGE, size - ready[0])
        if madvise(base + ready[0], step, MADV_POPULATE_WRITE) != 0:
            return False
        ready[0] += step
        budget[0] -= min(step, budget[0])
    return True


cdef inline Py_ssize_t flow_slots(Py_ssize_t cap) noexcept nogil:
    """Slots of the flow cache for a connection table of ``cap`` slots: a quarter as many, at least
    FLOW_MIN (a power of two)."""
    cdef Py_ssize_t n = FLOW_MIN
    while n < cap // 4:
        n <<= 1
    return n


cdef inline bint open_space(char* base, size_t* opened, size_t size) noexcept nogil:
    """Make the first ``size`` bytes of a reserved space readable and writable (the commit charge,
    where the kernel keeps one, is taken then); ``opened``: how much is known open (only ever set
    after a success, so a stale value read by another thread only repeats the call). False when
    the kernel refuses."""
    if size <= opened[0]:
        return True
    if mprotect(base, size, PROT_READ | PROT_WRITE) != 0:
        return False
    opened[0] = size
    return True


cdef inline CtSlot* alloc_slots(Py_ssize_t cap) noexcept nogil:
    """Zeroed slots on a cache-line boundary (a 64-byte slot then never spans two lines); a table
    of 2 MiB or more on transparent huge pages: its lookups land anywhere in it, and with 4 KiB
    pages nearly each one would also miss the TLB."""
    return <CtSlot*>zeroed(cap * sizeof(CtSlot), 64, True)


cdef inline uint64_t frag_hash(const FragSlot* f) noexcept nogil:
    cdef uint64_t h = 0
    h = mix(h, f.src_hi); h = mix(h, f.src_lo); h = mix(h, f.dst_hi); h = mix(h, f.dst_lo)
    h = mix(h, (<uint64_t>f.frag_id << 16) | (<uint64_t>f.l3 << 8) | f.proto)
    h ^= h >> 33
    h *= <uint64_t>0xC4CEB9FE1A85EC53ULL
    h ^= h >> 33
    return h


@cython.final  # no subclass: its methods are called directly (no table), and the C compiler may inline them
cdef class Dataplane:
    """The stateful dataplane: per-NIC connection tracking (S11) and fragment memory (S15) in C
    memory, and the pass that turns packets into verdict rows (resolve, stages, lazy classification).

    Tables are open-addressing with linear probing and backward-shift deletion; capacity is a power
    of two kept at most half full. Expired entries are removed when met by a lookup and by a sweep
    cursor that examines a few slots per insertion, so expiry never scans the whole table. With the
    dataplane clock never going back, an expired entry can never come back to life, so removing it
    early is the same as keeping it.
    """

    cdef CtSlot* slots
    cdef Py_ssize_t cap
    cdef Py_ssize_t count
    cdef Py_ssize_t cursor
    cdef FragSlot* frags
    cdef Py_ssize_t fcap
    cdef Py_ssize_t fcount
    cdef Py_ssize_t fcursor
    cdef public double now
    cdef bint any_lb  # a load-balancer entry was ever made: until then no packet needs to look for one
    cdef public object hits  # int64 [n_rules, 3] (by direction code)
    cdef int64_t* hits_ptr  # hits' data: [rule * 3 + direction]; rule < n_rules by construction
    cdef public uint32_t next_serial  # CtKey.serial of the next insertion (public: tests start it near the wrap)
    cdef FlowSlot* flows  # the flow cache (run): direct-mapped, a slot simply overwritten
    # Address space kept for the connection table and for the flow cache (RESERVE bytes each; NULL:
    # none yet, or none to be had): from in_place_from slots on, the table is the first cap * 64
    # bytes of its space and doubles in place (ct_grow), and the flow cache is the first bytes of
    # its own and grows in place too (size_flows), so that the kernel supplies fresh pages only for
    # the part each adds — fresh memory, which the kernel zeroes page by page, is what a growing
    # table costs most on some machines. Before, and where the address space cannot be had (a
    # limit on it), each is a block of its own, the table copied into one twice its size at each
    # doubling and its old block kept for the flow cache (spare).
    cdef char* ct_space
    cdef char* flow_space
    cdef size_t ct_open  # bytes of each space made accessible (open_space)
    cdef size_t flow_open
    cdef size_t flow_dirty  # bytes of flow_space the flow cache has used (emptied when it comes back)
    cdef bint ct_fresh  # no table has been in ct_space yet (its pages are zero)
    cdef public Py_ssize_t in_place_from  # slots (0: never in place); public: tests start it small
    cdef size_t ct_ready  # bytes at the start of ct_space / flow_space that prefault() made memory
    cdef size_t flow_ready
    cdef bint populate_ok  # the kernel knows MADV_POPULATE_WRITE (Linux 5.14 on)
    cdef void* spare  # the connection table's block before it last grew (spare_size bytes), kept for
    cdef size_t spare_size  # the flow cache, which then needs just that size (size_flows), or NULL
    cdef uint64_t flow_mask  # its slots - 1
    cdef object flow_plan  # the plan the flow cache's early verdicts and stage paths are of
    # Whether run uses the flow cache: a batch in which fewer than half its lookups hit turns it off
    # for the next FLOW_REST batches (a capture whose headers come back too far apart for the cache
    # to hold them pays its filling and its cache lines for little), then one batch tries it again.
    # Only speed depends on it: the cache is a shortcut to the answer the full path gives.
    cdef public bint flow_on
    cdef int flow_rest  # batches left with the cache off
    # the connection entries the filters of the packet being evaluated passed, in order (filter
    # notes them; rec_n > 4: too many, or the serials were renumbered meanwhile)
    cdef int rec_n
    cdef uint32_t rec_slot[4]
    cdef uint32_t rec_serial[4]
    cdef uint8_t rec_low

    def __cinit__(self, Py_ssize_t n_rules, Py_ssize_t capacity=1024):
        cdef Py_ssize_t cap = 16
        cdef int64_t[:, ::1] h
        while cap < capacity:
            cap <<= 1
        self.slots = alloc_slots(cap)
        self.cap = cap  # before anything can fail: __dealloc__ gives the slots back by their size
        self.frags = <FragSlot*>calloc(16, sizeof(FragSlot))
        if self.slots == NULL or self.frags == NULL:
            raise MemoryError()
        if sizeof(FlowSlot) != 128:
            raise AssertionError("FlowSlot must be 128 bytes")
        self.flows = NULL
        self.ct_space = NULL
        self.flow_space = NULL
        self.ct_open = 0
        self.flow_open = 0
        self.flow_dirty = 0
        self.ct_fresh = False
        self.in_place_from = 32768  # a table of HUGE bytes
        self.ct_ready = 0
        self.flow_ready = 0
        self.populate_ok = True
        self.spare = NULL
        self.spare_size = 0
        self.flow_mask = 0
        self.flow_plan = None
        self.flow_on = True
        self.flow_rest = 0
        self.next_serial = 1
        self.size_flows(cap)
        self.fcap = 16
        self.count = 0
        self.fcount = 0
        self.cursor = 0
        self.fcursor = 0
        self.now = -1e300
        self.any_lb = False
        self.hits = np.zeros((max(n_rules, 1), 3), dtype=np.int64)
        h = self.hits
        self.hits_ptr = &h[0, 0]

    def __dealloc__(self):
        if <char*>self.slots != self.ct_space:
            release(self.slots, self.cap * sizeof(CtSlot))
        free(self.frags)
        if <char*>self.flows != self.flow_space:
            release(self.flows, (self.flow_mask + 1) * sizeof(FlowSlot))
        if self.ct_space != NULL:
            munmap(self.ct_space, RESERVE)
        if self.flow_space != NULL:
            munmap(self.flow_space, RESERVE)
        release(self.spare, self.spare_size)

    def __len__(self):
        return self.count

    def prefault(self, size_t budget=4194304):
        """Make memory of up to ``budget`` bytes of what the connection table and the flow cache
        take when they next grow in place, and return whether some is left to make: the kernel
        zeroes a fresh page when it is first written, and a doubling writes a whole new half at
        once, in the middle of a batch. Called by the capture reader's thread while it waits for the
        engine (sgdp.pipeline.executors), it moves that work out of the engine's way. Only pages are
        made (MADV_POPULATE_WRITE: present ones are left as they are, nothing is written), so it may
        run while the engine works on the same tables; it does nothing without their reserved
        space or on a kernel without the call."""
        cdef size_t left = budget
        cdef bint near
        if not self.populate_ok:
            return False
        with nogil:
            # what comes next: once the table is seven eighths of the way to its next doubling
            # (it doubles when half full), the space up to twice its size; the flow cache's space up
            # to the size it calls for when it is next made (size_flows: at that doubling when the
            # cache is in use, else when a batch tries it again, at the table's size then). Sizes
            # read while the engine changes them (another thread) may be stale: then what is made
            # is already there, or is what comes next
            near = self.count * 16 >= self.cap * 7
            if near and self.ct_space != NULL and <char*>self.slots == self.ct_space and self.cap * 2 * sizeof(CtSlot) <= RESERVE:
                self.populate_ok = populate(self.ct_space, &self.ct_open, &self.ct_ready,
                                            self.cap * 2 * sizeof(CtSlot), &left)
            if self.populate_ok and self.flow_space != NULL and <char*>self.flows == self.flow_space:
                self.populate_ok = populate(self.flow_space, &self.flow_open, &self.flow_ready,
                                            flow_slots(self.cap * 2 if near and self.flow_on else self.cap) * sizeof(FlowSlot), &left)
        return self.populate_ok and left == 0

    def check_table(self):
        """For tests: the connection table's invariants, as a list of what is wrong (empty when all
        hold): every entry is final (used 1, none left pending by a doubling in place) and reached
        from its home slot without an empty slot between (what lookups and the backward-shift
        deletion rely on), and the count is right."""
        cdef Py_ssize_t j, t, n = 0, mask = self.cap - 1
        wrong = []
        for j in range(self.cap):
            if not self.slots[j].used:
                continue
            n += 1
            if self.slots[j].used != 1:
                wrong.append(f"slot {j}: used {self.slots[j].used}")
            t = <Py_ssize_t>(ct_hash(&self.slots[j].key) & <uint64_t>mask)
            while t != j:
                if not self.slots[t].used:
                    wrong.append(f"slot {j}: empty slot {t} between its home and it")
                    break
                t = (t + 1) & mask
        if n != self.count:
            wrong.append(f"{n} entries, count {self.count}")
        return wrong

    @property
    def in_place(self):
        """Whether the connection table lies in its reserved space (it doubles in place)."""
        return self.ct_space != NULL and <char*>self.slots == self.ct_space

    @property
    def capacity(self):
        """Slots of the connection table (a power of two; it doubles when half full)."""
        return self.cap

    # -- the connection table --------------------------------------------------------------

    cdef inline Py_ssize_t ct_find(self, const CtKey* k) noexcept nogil:
        return self.ct_find_hashed(k, ct_hash(k))

    cdef inline Py_ssize_t ct_find_hashed(self, const CtKey* k, uint64_t h) noexcept nogil:
        """ct_find with the key's ct_hash given."""
        cdef Py_ssize_t mask = self.cap - 1
        cdef Py_ssize_t j = <Py_ssize_t>(h & <uint64_t>mask)
        while self.slots[j].used:
            if ct_eq(&self.slots[j].key, k):
                return j
            j = (j + 1) & mask
        return -1

    cdef void ct_delete(self, Py_ssize_t j) noexcept nogil:
        """Backward-shift deletion: keeps every probe chain unbroken without tombstones."""
        cdef Py_ssize_t mask = self.cap - 1
        cdef Py_ssize_t k = j, home
        while True:
            k = (k + 1) & mask
            if not self.slots[k].used:
                break
            home = <Py_ssize_t>(ct_hash(&self.slots[k].key) & <uint64_t>mask)
            # move slot k into the hole j when its home is not cyclically in (j, k]
            if (j <= k and (home <= j or home > k)) or (j > k and (home <= j and home > k)):
                self.slots[j] = self.slots[k]
                j = k
        self.slots[j].used = 0
        self.count -= 1

    cdef int ct_grow(self) except -1 nogil:
        cdef Py_ssize_t old_cap = self.cap
        cdef size_t size = <size_t>old_cap * 2 * sizeof(CtSlot)
        cdef CtSlot* new
        cdef bint here = self.ct_space != NULL and <char*>self.slots == self.ct_space
        if self.ct_space == NULL and 0 < self.in_place_from <= old_cap * 2:
            self.ct_space = reserve_space()
            self.ct_fresh = self.ct_space != NULL
            if self.ct_space == NULL:
                self.in_place_from = 0  # no space to be had: not asked for again
        if (here or self.ct_fresh) and size <= RESERVE and open_space(self.ct_space, &self.ct_open, size):
            if here:
                self.grow_in_place()
            else:
                self.ct_fresh = False
                self.move_into(<CtSlot*>self.ct_space, old_cap)  # never written yet: zero pages
        else:
            # a block of its own (and, should the table leave its space, for good: the space stays
            # reserved until the end, its pages no longer zero)
            new = alloc_slots(old_cap * 2)
            if new == NULL:
                with gil:
                    raise MemoryError()
            self.ct_fresh = False
            self.move_into(new, old_cap)
        self.cursor = 0
        # entries moved: what the flow cache remembers of them is stale (the serials say so) and
        # the cache, now too small, is made anew — when it is in use; else by the next run that
        # uses it
        if self.flow_on:
            self.size_flows(self.cap)
        return 0

    cdef void grow_in_place(self) noexcept nogil:
        """Double the table where it lies (the next cap * 64 bytes of its space were never written:
        empty slots). Every entry is marked pending (used 2); then each pending entry, slot by slot,
        goes to the first slot from its new home that is not final (used 1): it stays when that is
        its own slot, moves when it is empty, and is swapped with the pending entry there, which is
        placed next, otherwise. A final entry never moves again, and every slot between its home and
        it was final when it was placed, so no probe chain has a hole — the invariant of lookups and
        of the backward-shift deletion (SwissTable's rehash in place, with linear probing)."""
        cdef Py_ssize_t old_cap = self.cap, j, t
        cdef Py_ssize_t mask = old_cap * 2 - 1
        cdef CtSlot tmp
        cdef CtSlot* sl = self.slots
        for j in range(old_cap):
            if sl[j].used:
                sl[j].used = 2
        self.cap = old_cap * 2
        for j in range(old_cap):  # pending entries stay below old_cap: a swap fills a pending slot
            while sl[j].used == 2:
                t = <Py_ssize_t>(ct_hash(&sl[j].key) & <uint64_t>mask)
                while sl[t].used == 1:
                    t = (t + 1) & mask
                if t == j:
                    sl[j].used = 1
                elif sl[t].used == 0:
                    sl[t] = sl[j]
                    sl[t].used = 1
                    sl[j].used = 0
                else:
                    tmp = sl[t]
                    sl[t] = sl[j]
                    sl[t].used = 1
                    sl[j] = tmp  # pending: placed in the loop's next turn

    cdef void move_into(self, CtSlot* new, Py_ssize_t old_cap) noexcept nogil:
        """Double the table into ``new`` (zero, twice the slots); the old block is given back, or,
        of HUGE bytes or more, kept for the flow cache."""
        cdef Py_ssize_t j, t, mask
        cdef CtSlot* old = self.slots
        self.slots = new
        self.cap = old_cap * 2
        mask = self.cap - 1
        for j in range(old_cap):
            if old[j].used:
                t = <Py_ssize_t>(ct_hash(&old[j].key) & <uint64_t>mask)
                while new[t].used:
                    t = (t + 1) & mask
                new[t] = old[j]
        # the old block is just the size of the flow cache the new table calls for (a quarter as many
        # slots of twice the size): kept for it, it is memory already there — fresh memory has to
        # be zeroed by the kernel page by page, on some machines slower than the lookups it serves
        release(self.spare, self.spare_size)
        self.spare = NULL
        if <char*>old == self.ct_space:
            pass  # the reserved space: given back at the end (__dealloc__)
        elif old_cap * sizeof(CtSlot) >= HUGE and self.flow_space == NULL:
            self.spare = old
            self.spare_size = old_cap * sizeof(CtSlot)
        else:
            release(old, old_cap * sizeof(CtSlot))

    cdef int size_flows(self, Py_ssize_t cap) except -1 nogil:
        """A flow cache (emptied) of a quarter as many slots as the connection table, at least
        FLOW_MIN: about one slot per flow and direction when the table is half full with the two
        or four entries of each flow. Kept as it is when it has that size already."""
        cdef Py_ssize_t n = flow_slots(cap)
        cdef FlowSlot* fresh
        if self.flows != NULL and <uint64_t>n == self.flow_mask + 1:
            return 0
        if self.flow_space == NULL and self.in_place_from > 0 and n * sizeof(FlowSlot) >= HUGE:
            self.flow_space = reserve_space()
            if self.flow_space == NULL:
                self.in_place_from = 0  # no space to be had: not asked for again
        if (self.flow_space != NULL and n * sizeof(FlowSlot) <= RESERVE
                and open_space(self.flow_space, &self.flow_open, n * sizeof(FlowSlot))):
            # in place: the part the cache has used is emptied, the rest was never written
            memset(self.flow_space, 0, min(self.flow_dirty, n * sizeof(FlowSlot)))
            if <char*>self.flows != self.flow_space:
                release(self.flows, (self.flow_mask + 1) * sizeof(FlowSlot))
                self.flows = <FlowSlot*>self.flow_space
            self.flow_mask = <uint64_t>(n - 1)
            self.flow_dirty = max(self.flow_dirty, n * sizeof(FlowSlot))
            return 0
        if self.spare != NULL and self.spare_size == n * sizeof(FlowSlot):
            # the table's old block (ct_grow; on a HUGE boundary, so 128-byte aligned)
            fresh = <FlowSlot*>self.spare
            memset(fresh, 0, self.spare_size)
            self.spare = NULL
        else:
            fresh = <FlowSlot*>zeroed(n * sizeof(FlowSlot), 128, False)
        if fresh == NULL:
            with gil:
                raise MemoryError()
        if <char*>self.flows != self.flow_space:
            release(self.flows, (self.flow_mask + 1) * sizeof(FlowSlot))
        self.flows = fresh
        self.flow_mask = <uint64_t>(n - 1)
        return 0

    cdef void clear_flows(self) noexcept nogil:
        memset(self.flows, 0, (self.flow_mask + 1) * sizeof(FlowSlot))

    cdef void renumber(self) noexcept nogil:
        """The serials ran out (2**32 insertions): number the live entries again from 1 and forget
        every (slot, serial) pair remembered, so that no old serial can meet a new one."""
        cdef Py_ssize_t j
        self.next_serial = 1
        for j in range(self.cap):
            if self.slots[j].used:
                self.slots[j].key.serial = self.next_serial
                self.next_serial += 1
        self.clear_flows()
        self.rec_n = 5

    cdef void ct_sweep(self) noexcept nogil:
        cdef int k
        cdef Py_ssize_t j
        for k in range(SWEEP):
            # the slots the next calls examine (a slot a line), asked for ahead: the cursor moves
            # too slowly between the table's other lookups for the processor to see a stream
            prefetch(&self.slots[(self.cursor + 4 * SWEEP + k) & (self.cap - 1)])
        for k in range(SWEEP):
            j = self.cursor
            if self.slots[j].used and self.now - self.slots[j].last > ct_timeout(self.slots[j].key.proto, self.slots[j].state):
                self.ct_delete(j)  # slot j may now hold a shifted entry: look at it again next time
            else:
                self.cursor = (self.cursor + 1) & (self.cap - 1)

    cdef inline Py_ssize_t ct_insert(self, const CtKey* k, uint8_t state, uint8_t orig_low, uint8_t inbound,
                                     uint8_t lb) except -1 nogil:
        """Insert a new entry (the key is not in the table); returns its slot."""
        return self.ct_insert_hashed(k, ct_hash(k), state, orig_low, inbound, lb)

    cdef Py_ssize_t ct_insert_hashed(self, const CtKey* k, uint64_t h, uint8_t state, uint8_t orig_low,
                                     uint8_t inbound, uint8_t lb) except -1 nogil:
        """ct_insert with the key's ct_hash given."""
        cdef Py_ssize_t j, mask
        self.ct_sweep()
        if (self.count + 1) * 2 > self.cap:
            self.ct_grow()
        mask = self.cap - 1
        j = <Py_ssize_t>(h & <uint64_t>mask)
        while self.slots[j].used:
            j = (j + 1) & mask
        self.slots[j].key = k[0]
        self.slots[j].key.serial = self.next_serial
        self.next_serial += 1
        if self.next_serial == 0:
            self.renumber()
        self.slots[j].used = 1
        self.slots[j].state = state
        self.slots[j].orig_low = orig_low
        self.slots[j].inbound = inbound
        self.slots[j].lb = lb
        self.slots[j].aux = 0
        self.slots[j].last = self.now
        self.count += 1
        return j

    # -- fragments ------------------------------------------------------------------------

    cdef Py_ssize_t frag_find(self, const FragSlot* f) noexcept nogil:
        cdef Py_ssize_t mask = self.fcap - 1
        cdef Py_ssize_t j = <Py_ssize_t>(frag_hash(f) & <uint64_t>mask)
        while self.frags[j].used:
            if (self.frags[j].src_hi == f.src_hi and self.frags[j].src_lo == f.src_lo and self.frags[j].dst_hi == f.dst_hi
                    and self.frags[j].dst_lo == f.dst_lo and self.frags[j].frag_id == f.frag_id
                    and self.frags[j].l3 == f.l3 and self.frags[j].proto == f.proto):
                return j
            j = (j + 1) & mask
        return -1

    cdef void frag_delete(self, Py_ssize_t j) noexcept nogil:
        cdef Py_ssize_t mask = self.fcap - 1
        cdef Py_ssize_t k = j, home
        while True:
            k = (k + 1) & mask
            if not self.frags[k].used:
                break
            home = <Py_ssize_t>(frag_hash(&self.frags[k]) & <uint64_t>mask)
            if (j <= k and (home <= j or home > k)) or (j > k and (home <= j and home > k)):
                self.frags[j] = self.frags[k]
                j = k
        self.frags[j].used = 0
        self.fcount -= 1

    cdef int frag_store(self, FragSlot* f) except -1 nogil:
        """Remember (or overwrite) a first fragment's row."""
        cdef Py_ssize_t j, mask, old_cap, t
        cdef FragSlot* old
        cdef FragSlot* new
        cdef int k
        for k in range(SWEEP):
            j = self.fcursor
            if self.frags[j].used and self.now - self.frags[j].time > 30.0:
                self.frag_delete(j)
            else:
                self.fcursor = (self.fcursor + 1) & (self.fcap - 1)
        j = self.frag_find(f)
        if j >= 0:
            self.frag_delete(j)
        if (self.fcount + 1) * 2 > self.fcap:
            old_cap = self.fcap
            old = self.frags
            new = <FragSlot*>calloc(old_cap * 2, sizeof(FragSlot))
            if new == NULL:
                with gil:
                    raise MemoryError()
            self.frags = new
            self.fcap = old_cap * 2
            self.fcursor = 0
            mask = self.fcap - 1
            for j in range(old_cap):
                if old[j].used:
                    t = <Py_ssize_t>(frag_hash(&old[j]) & <uint64_t>mask)
                    while new[t].used:
                        t = (t + 1) & mask
                    new[t] = old[j]
            free(old)
        mask = self.fcap - 1
        j = <Py_ssize_t>(frag_hash(f) & <uint64_t>mask)
        while self.frags[j].used:
            j = (j + 1) & mask
        f.used = 1
        f.time = self.now
        self.frags[j] = f[0]
        self.fcount += 1
        return 0

    def remap(self, const int32_t[::1] old_to_new, const uint8_t[::1] drop_sg, const uint8_t[::1] drop_acl):
        """A new topology version (S12): every entry moves to its NIC's new index (``old_to_new``,
        -1: the NIC is gone and so are its entries); entries opened by inbound traffic at NICs with
        ``drop_sg`` (security-group table) or ``drop_acl`` (ACL table) set are dropped, except
        load-balancer client-IP-transfer entries (no rule decides them). The table is rebuilt, so
        no entry is visited twice."""
        cdef Py_ssize_t j, t, mask
        cdef int32_t new_nic
        cdef CtSlot* old = self.slots
        cdef CtSlot* fresh = alloc_slots(self.cap)
        cdef Py_ssize_t n_old = old_to_new.shape[0], n_new = drop_sg.shape[0]
        if fresh == NULL:
            raise MemoryError()
        if drop_acl.shape[0] != n_new:
            release(fresh, self.cap * sizeof(CtSlot))
            raise ValueError("remap: drop_sg and drop_acl differ in length")
        mask = self.cap - 1
        self.count = 0
        for j in range(self.cap):
            if not old[j].used or <Py_ssize_t>old[j].key.nic >= n_old:
                continue
            new_nic = old_to_new[old[j].key.nic]
            if new_nic < 0 or new_nic >= n_new:
                continue
            if old[j].inbound and not old[j].lb and (
                    (old[j].key.table == 0 and drop_sg[new_nic]) or (old[j].key.table == 1 and drop_acl[new_nic])):
                continue
            old[j].key.nic = <uint32_t>new_nic
            t = <Py_ssize_t>(ct_hash(&old[j].key) & <uint64_t>mask)
            while fresh[t].used:
                t = (t + 1) & mask
            fresh[t] = old[j]
            self.count += 1
        if <char*>old == self.ct_space:
            # the table stays in its space, where it can grow in place: the rebuilt one is copied back
            memcpy(old, fresh, self.cap * sizeof(CtSlot))
            release(fresh, self.cap * sizeof(CtSlot))
        else:
            self.slots = fresh
            release(old, self.cap * sizeof(CtSlot))
        self.cursor = 0
        self.clear_flows()  # entries moved to other NICs: the remembered stage paths are of the old ones

    # -- pass 2 ---------------------------------------------------------------------------

    cdef inline void prefetch_rows(self, Plan p, uint8_t l3, uint8_t proto, uint64_t sh, uint64_t sl,
                                   uint64_t dh, uint64_t dl, uint16_t sport, uint16_t dport,
                                   uint16_t icmp_id) noexcept nogil:
        """Ask the memory for the connection-table lines a later packet will read first, so that
        their latency overlaps the work on the packets before it: the home slot of its flow (and the
        next one, where the flow's other entries usually are) — ct_hash of the key make_key builds
        at the receiving NIC, an EIP replaced by its NIC's private address (the address table,
        small, is in the cache). A hint only: nothing is written, and a wrong guess costs nothing
        but the hint."""
        cdef uint16_t ap, bp
        cdef uint64_t h
        if l3 == 4:
            if sh == 0:
                sl = eip_private(p, sl)
            if dh == 0:
                dl = eip_private(p, dl)
        if is_port(proto):
            ap = sport; bp = dport
        elif proto == ICMP or proto == ICMPV6:
            ap = icmp_id; bp = icmp_id
        else:
            ap = 0; bp = 0
        if sh < dh or (sh == dh and (sl < dl or (sl == dl and ap <= bp))):
            h = flow_hash(sh, sl, dh, dl, ap, bp, l3, proto)
        else:
            h = flow_hash(dh, dl, sh, sl, bp, ap, l3, proto)
        prefetch(&self.slots[h & <uint64_t>(self.cap - 1)])
        prefetch(&self.slots[(h + 1) & <uint64_t>(self.cap - 1)])
        prefetch(&self.slots[(h + 2) & <uint64_t>(self.cap - 1)])
        prefetch(&self.slots[(h + 3) & <uint64_t>(self.cap - 1)])

    cdef inline uint64_t hash_ahead(self, uint8_t l3, uint8_t proto, uint64_t sh, uint64_t sl, uint64_t dh,
                                    uint64_t dl, uint16_t sport, uint16_t dport, uint16_t icmp_id,
                                    int64_t mac) noexcept nogil:
        """A row's header hash (its flow cache slot, prefetched)."""
        cdef uint64_t h = header_hash(l3, proto, sh, sl, dh, dl, sport, dport, icmp_id, mac)
        prefetch(&self.flows[h & self.flow_mask])
        return h

    cdef inline void prefetch_near(self, Plan p, uint64_t h, uint8_t l3, uint8_t proto, uint64_t sh, uint64_t sl,
                                   uint64_t dh, uint64_t dl, uint16_t sport, uint16_t dport,
                                   uint16_t icmp_id) noexcept nogil:
        """The connection-table lines a row will read: those of the entries its flow cache slot
        names, when the slot is the row's (its addresses and ports; the MAC is left to run); none
        for an early verdict; else the guess of prefetch_rows."""
        cdef const FlowSlot* fs = &self.flows[h & self.flow_mask]
        if fs.kind != 0 and fs.sl == sl and fs.dl == dl and fs.sport == sport and fs.dport == dport:
            if fs.kind == FLOW_EST:
                if <Py_ssize_t>fs.slot[0] < self.cap:
                    prefetch(&self.slots[fs.slot[0]])
                if <Py_ssize_t>fs.slot[fs.n - 1] < self.cap:
                    prefetch(&self.slots[fs.slot[fs.n - 1]])
            return
        self.prefetch_rows(p, l3, proto, sh, sl, dh, dl, sport, dport, icmp_id)

    def run(self, Plan p, dict c, dict out, rows=None, counts=None):
        """The verdict rows of one batch, in capture order (packet columns ``c`` as in
        sgdp.capture.packet.PACKET_COLUMNS, validated by PacketBatch; ``out`` the VerdictBatch columns).
        ``rows`` (int64, optional): only these rows, in this order, read and written in place.
        ``counts`` (int64, optional, VerdictBatch.counts' layout: N_VERDICTS verdict codes, then the
        reason codes): each row written adds one to its verdict's and its reason's count."""
        cdef const double[::1] ts = c["ts"]
        cdef const uint8_t[::1] status = c["status"]
        cdef const uint8_t[::1] l3 = c["l3"]
        cdef const uint64_t[::1] src_hi = c["src_hi"]
        cdef const uint64_t[::1] src_lo = c["src_lo"]
        cdef const uint64_t[::1] dst_hi = c["dst_hi"]
        cdef const uint64_t[::1] dst_lo = c["dst_lo"]
        cdef const uint8_t[::1] proto = c["proto"]
        cdef const uint16_t[::1] sport = c["sport"]
        cdef const uint16_t[::1] dport = c["dport"]
        cdef const int16_t[::1] icmp_type = c["icmp_type"]
        cdef const int16_t[::1] icmp_code = c["icmp_code"]
        cdef const uint16_t[::1] icmp_id = c["icmp_id"]
        cdef const uint16_t[::1] tcp_flags = c["tcp_flags"]
        cdef const int64_t[::1] src_mac = c["src_mac"]
        cdef const uint16_t[::1] frag_offset = c["frag_offset"]
        cdef const uint8_t[::1] more_fragments = c["more_fragments"]
        cdef const uint32_t[::1] frag_id = c["frag_id"]
        cdef const uint8_t[::1] inner_l3 = c["inner_l3"]
        cdef const uint64_t[::1] inner_src_hi = c["inner_src_hi"]
        cdef const uint64_t[::1] inner_src_lo = c["inner_src_lo"]
        cdef const uint64_t[::1] inner_dst_hi = c["inner_dst_hi"]
        cdef const uint64_t[::1] inner_dst_lo = c["inner_dst_lo"]
        cdef const uint8_t[::1] inner_proto = c["inner_proto"]
        cdef const uint16_t[::1] inner_sport = c["inner_sport"]
        cdef const uint16_t[::1] inner_dport = c["inner_dport"]

        cdef uint8_t[::1] v_verdict = out["verdict"]
        cdef uint8_t[::1] v_reason = out["reason"]
        cdef int32_t[::1] v_instance = out["instance"]
        cdef uint8_t[::1] v_direction = out["direction"]
        cdef int32_t[::1] v_group = out["group"]
        cdef int32_t[::1] v_rule = out["rule"]

        cdef Py_ssize_t n = ts.shape[0], i, j, k, ahead
        cdef Row row
        cdef const int64_t[::1] pick
        cdef bint picked = rows is not None
        cdef Py_ssize_t m = n
        cdef int64_t[::1] count_view
        cdef int64_t* tally = NULL  # counts' data, or NULL
        if counts is not None:
            count_view = counts
            if count_view.shape[0] < N_VERDICTS + R_MALFORMED + 1:
                raise ValueError(f"run: counts must have {N_VERDICTS + R_MALFORMED + 1} entries")
            tally = &count_view[0]
        if picked:
            pick = rows
            m = pick.shape[0]
            for k in range(m):
                if not 0 <= pick[k] < n:
                    raise ValueError(f"run: row {pick[k]} is not in 0..{n - 1}")
        if not (v_verdict.shape[0] == v_reason.shape[0] == v_instance.shape[0] == v_direction.shape[0]
                == v_group.shape[0] == v_rule.shape[0] == n):
            raise ValueError("run: the verdict columns must have one row per packet")
        for name, col in c.items():
            if len(col) != n:
                raise ValueError(f"run: packet column {name!r} has {len(col)} rows, not {n}")
        cdef Pkt pk
        cdef View view
        cdef FragSlot f
        cdef FlowSlot* fs
        cdef int plain
        cdef uint64_t ring[RING + 1]
        cdef bint use = self.flow_on
        cdef Py_ssize_t lookups = 0, hit = 0
        if p is not self.flow_plan:
            self.clear_flows()  # early verdicts and stage paths are the plan's
            self.flow_plan = p
        if use:
            self.size_flows(self.cap)  # the table may have grown while the cache was off
        cdef Endpoint* S = <Endpoint*>calloc(MAXC, sizeof(Endpoint))
        cdef Endpoint* R = <Endpoint*>calloc(MAXC, sizeof(Endpoint))
        if S == NULL or R == NULL:
            free(S); free(R)
            raise MemoryError()
        try:
            with nogil:
                # the memory latency of the flow cache and the connection table overlaps the work on
                # the rows before: each row's header is hashed AHEAD rows early (its flow cache slot
                # prefetched), and NEAR rows early the slot, arrived by then, names the entries to
                # prefetch (hints only: nothing is written, and a stale guess costs only the hint)
                # (with the flow cache off, only the guess of prefetch_rows, NEAR rows early)
                for k in range(min(m, AHEAD) if use else 0):
                    ahead = pick[k] if picked else k
                    ring[k & RING] = self.hash_ahead(l3[ahead], proto[ahead], src_hi[ahead], src_lo[ahead], dst_hi[ahead],
                                                     dst_lo[ahead], sport[ahead], dport[ahead], icmp_id[ahead], src_mac[ahead])
                for k in range(min(m, NEAR)):
                    ahead = pick[k] if picked else k
                    if use:
                        self.prefetch_near(p, ring[k & RING], l3[ahead], proto[ahead], src_hi[ahead], src_lo[ahead],
                                           dst_hi[ahead], dst_lo[ahead], sport[ahead], dport[ahead], icmp_id[ahead])
                    else:
                        self.prefetch_rows(p, l3[ahead], proto[ahead], src_hi[ahead], src_lo[ahead], dst_hi[ahead],
                                           dst_lo[ahead], sport[ahead], dport[ahead], icmp_id[ahead])
                for k in range(m):
                    i = pick[k] if picked else k
                    if not picked and (k & 7) == 0 and k + COLUMNS_AHEAD < m:
                        # the columns' lines, a line of each as the rows reach it (eight rows of a
                        # 64-bit column, 32 of a 16-bit one...): some twenty columns are more
                        # streams than the processor follows by itself
                        ahead = k + COLUMNS_AHEAD
                        prefetch(&ts[ahead]); prefetch(&src_hi[ahead]); prefetch(&src_lo[ahead])
                        prefetch(&dst_hi[ahead]); prefetch(&dst_lo[ahead]); prefetch(&src_mac[ahead])
                        if (k & 15) == 0:
                            prefetch_write(&v_instance[ahead]); prefetch_write(&v_group[ahead])
                            prefetch_write(&v_rule[ahead])
                        if (k & 31) == 0:
                            prefetch(&sport[ahead]); prefetch(&dport[ahead]); prefetch(&tcp_flags[ahead])
                            prefetch(&icmp_type[ahead]); prefetch(&icmp_code[ahead]); prefetch(&icmp_id[ahead])
                            prefetch(&frag_offset[ahead])
                        if (k & 63) == 0:
                            prefetch(&status[ahead]); prefetch(&l3[ahead]); prefetch(&proto[ahead])
                            prefetch(&more_fragments[ahead])
                            prefetch_write(&v_verdict[ahead]); prefetch_write(&v_reason[ahead])
                            prefetch_write(&v_direction[ahead])
                    if use and k + AHEAD < m:
                        ahead = pick[k + AHEAD] if picked else k + AHEAD
                        ring[(k + AHEAD) & RING] = self.hash_ahead(
                            l3[ahead], proto[ahead], src_hi[ahead], src_lo[ahead], dst_hi[ahead], dst_lo[ahead],
                            sport[ahead], dport[ahead], icmp_id[ahead], src_mac[ahead])
                    if k + NEAR < m:
                        ahead = pick[k + NEAR] if picked else k + NEAR
                        if use:
                            self.prefetch_near(p, ring[(k + NEAR) & RING], l3[ahead], proto[ahead], src_hi[ahead],
                                               src_lo[ahead], dst_hi[ahead], dst_lo[ahead], sport[ahead], dport[ahead],
                                               icmp_id[ahead])
                        else:
                            self.prefetch_rows(p, l3[ahead], proto[ahead], src_hi[ahead], src_lo[ahead], dst_hi[ahead],
                                               dst_lo[ahead], sport[ahead], dport[ahead], icmp_id[ahead])

                    if ts[i] > self.now:
                        self.now = ts[i]
                    row.instance = -1; row.group = -1; row.rule = -1; row.direction = D_NONE
                    if status[i] == ST_MALFORMED:
                        row.verdict = V_MALFORMED; row.reason = R_MALFORMED
                    elif status[i] == ST_NON_IP or (l3[i] != 4 and l3[i] != 6):
                        row.verdict = V_UNMODELLED; row.reason = R_UNMODELLED
                    else:
                        fs = NULL
                        if use and frag_offset[i] == 0 and more_fragments[i] == 0:
                            # the flow cache: most packets repeat the header fields of an earlier one
                            fs = &self.flows[ring[k & RING] & self.flow_mask]
                            lookups += 1
                            if (fs.kind != 0 and fs.sl == src_lo[i] and fs.dl == dst_lo[i] and fs.sport == sport[i]
                                    and fs.dport == dport[i] and fs.sh == src_hi[i] and fs.dh == dst_hi[i]
                                    and fs.mac == src_mac[i] and fs.icmp_id == icmp_id[i] and fs.l3 == l3[i]
                                    and fs.proto == proto[i]
                                    and self.flow_fast(fs, proto[i], icmp_type[i], tcp_flags[i], &row)):
                                v_verdict[i] = row.verdict; v_reason[i] = row.reason; v_instance[i] = row.instance
                                v_direction[i] = row.direction; v_group[i] = -1; v_rule[i] = -1
                                if tally != NULL and row.verdict < N_VERDICTS and row.reason <= R_MALFORMED:
                                    tally[row.verdict] += 1; tally[N_VERDICTS + row.reason] += 1
                                hit += 1
                                continue
                        if frag_offset[i] > 0 or more_fragments[i]:
                            # a fragment: its key in the fragment memory (other packets need none)
                            memset(&f, 0, sizeof(FragSlot))
                            f.src_hi = src_hi[i]; f.src_lo = src_lo[i]; f.dst_hi = dst_hi[i]; f.dst_lo = dst_lo[i]
                            f.frag_id = frag_id[i]; f.l3 = l3[i]; f.proto = proto[i]
                        j = -1
                        if frag_offset[i] > 0:
                            j = self.frag_find(&f)
                            if j >= 0 and self.now - self.frags[j].time > 30.0:
                                j = -1
                        if j >= 0:
                            row.verdict = self.frags[j].verdict; row.reason = self.frags[j].reason
                            row.instance = self.frags[j].instance; row.direction = self.frags[j].direction
                            row.group = self.frags[j].group; row.rule = self.frags[j].rule
                        else:
                            pk.l3 = l3[i]; pk.proto = proto[i]; pk.flags = tcp_flags[i]
                            pk.icmp_type = icmp_type[i]; pk.icmp_code = icmp_code[i]; pk.icmp_id = icmp_id[i]
                            pk.frag = frag_offset[i] > 0
                            pk.src_hi = src_hi[i]; pk.src_lo = src_lo[i]; pk.dst_hi = dst_hi[i]; pk.dst_lo = dst_lo[i]
                            pk.sport = sport[i]; pk.dport = dport[i]
                            if is_icmp_error(pk.proto, pk.icmp_type) and not pk.frag:
                                # the embedded header: read by filter() for ICMP errors alone, so the
                                # other packets leave its eight columns untouched in memory
                                pk.inner_l3 = inner_l3[i]; pk.inner_proto = inner_proto[i]
                                pk.inner_src_hi = inner_src_hi[i]; pk.inner_src_lo = inner_src_lo[i]
                                pk.inner_dst_hi = inner_dst_hi[i]; pk.inner_dst_lo = inner_dst_lo[i]
                                pk.inner_sport = inner_sport[i]; pk.inner_dport = inner_dport[i]
                            else:
                                pk.inner_l3 = 0; pk.inner_proto = 0
                                pk.inner_src_hi = 0; pk.inner_src_lo = 0; pk.inner_dst_hi = 0; pk.inner_dst_lo = 0
                                pk.inner_sport = 0; pk.inner_dport = 0
                            resolve_one(p, &pk, status[i], src_mac[i], S, R, &view)
                            # the entries the filters pass are noted for the flow cache's slot
                            # (remember); without the cache, note() finds nothing to do (5: none)
                            self.rec_n = 0 if fs != NULL else 5
                            self.rec_low = 0
                            plain = self.evaluate(p, &pk, &row, &view)
                            if fs != NULL:
                                # the slot again: an insertion may have grown the table and made
                                # the flow cache anew (size_flows)
                                fs = &self.flows[ring[k & RING] & self.flow_mask]
                                self.remember(fs, plain, &pk, src_mac[i], &view, &row)
                            if frag_offset[i] == 0 and more_fragments[i]:
                                f.verdict = row.verdict; f.reason = row.reason; f.direction = row.direction
                                f.instance = row.instance; f.group = row.group; f.rule = row.rule
                                self.frag_store(&f)
                    v_verdict[i] = row.verdict; v_reason[i] = row.reason; v_instance[i] = row.instance
                    v_direction[i] = row.direction; v_group[i] = row.group; v_rule[i] = row.rule
                    if tally != NULL and row.verdict < N_VERDICTS and row.reason <= R_MALFORMED:
                        tally[row.verdict] += 1; tally[N_VERDICTS + row.reason] += 1
        finally:
            free(S)
            free(R)
        if use:
            if lookups >= FLOW_PROBE_MIN and 2 * hit < lookups:
                self.flow_on = False
                self.flow_rest = FLOW_REST
        else:
            self.flow_rest -= 1
            if self.flow_rest <= 0:
                self.flow_on = True

    cdef inline bint flow_fast(self, const FlowSlot* fs, uint8_t proto, int16_t icmp_type, uint16_t flags,
                               Row* row) noexcept nogil:
        """The row of a packet whose header fields the flow cache slot ``fs`` holds, when its
        early verdict holds again or every connection entry of its stage path is still there and
        live (then each is advanced, as the filters would: they find them established). False, with
        nothing changed, when the packet needs the full evaluation."""
        cdef int f
        cdef const CtSlot* s
        cdef uint32_t j
        if fs.check_lb and self.any_lb:
            # a sender with a live load-balancer entry of this flow takes another path (evaluate);
            # the first entry of a stage path is that very entry (the sender's egress, security
            # groups: the same key), its liveness checked below
            if fs.kind == FLOW_EARLY or <Py_ssize_t>fs.slot[0] >= self.cap or self.slots[fs.slot[0]].lb:
                return False
        if fs.kind == FLOW_EARLY:
            row.verdict = fs.verdict; row.reason = fs.reason; row.instance = fs.instance; row.direction = D_NONE
            return True
        if not keyable(proto, icmp_type):
            return False
        for f in range(fs.n):
            j = fs.slot[f]
            if <Py_ssize_t>j >= self.cap:
                return False
            s = &self.slots[j]
            if not s.used or s.key.serial != fs.serial[f] or self.now - s.last > ct_timeout(proto, s.state):
                return False
        for f in range(fs.n):
            j = fs.slot[f]
            advance(&self.slots[j], proto, flags, self.now, ((fs.low >> f) & 1) != self.slots[j].orig_low)
        row.verdict = V_ALLOW; row.reason = R_ESTABLISHED; row.instance = fs.instance; row.direction = fs.direction
        return True

    cdef inline void remember(self, FlowSlot* fs, int plain, const Pkt* pk, int64_t mac, const View* v,
                              const Row* row) noexcept nogil:
        """Fill the flow cache slot of an evaluated packet (``plain``: evaluate's answer): an early
        verdict, or an allowed plain stage path with the entries its filters passed (noted by
        filter; each passing filter of a keyable packet found or opened one)."""
        cdef int f
        if plain == 1:
            fs.kind = FLOW_EARLY
            fs.verdict = row.verdict; fs.reason = row.reason; fs.instance = row.instance
        elif plain == 2 and row.verdict == V_ALLOW and 1 <= self.rec_n <= 4 and keyable(pk.proto, pk.icmp_type):
            fs.kind = FLOW_EST
            fs.n = <uint8_t>self.rec_n
            for f in range(self.rec_n):
                fs.slot[f] = self.rec_slot[f]
                fs.serial[f] = self.rec_serial[f]
            fs.low = self.rec_low
            fs.instance = row.instance; fs.direction = row.direction
        else:
            return
        fs.check_lb = v.reply_nic >= 0
        fs.l3 = pk.l3; fs.proto = pk.proto
        fs.sh = pk.src_hi; fs.sl = pk.src_lo; fs.dh = pk.dst_hi; fs.dl = pk.dst_lo
        fs.sport = pk.sport; fs.dport = pk.dport; fs.icmp_id = pk.icmp_id; fs.mac = mac

    cdef inline bint live(self, Py_ssize_t j, uint8_t proto) noexcept nogil:
        return j >= 0 and not (self.now - self.slots[j].last > ct_timeout(proto, self.slots[j].state))

    cdef Py_ssize_t lb_entry(self, Plan p, Pkt* pk, int32_t nic) noexcept nogil:
        """reference._lb_reply: the NIC's live load-balancer (client-IP transfer) entry of the
        packet's flow, or -1."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef Py_ssize_t j = -1
        if make_key(&k, p, nic, 0, pk.l3, pk.proto, pk.src_hi, pk.src_lo, port_or_0(pk, pk.sport),
                    pk.dst_hi, pk.dst_lo, port_or_0(pk, pk.dport), pk.icmp_type, pk.icmp_id, &orig_low):
            j = self.ct_find(&k)
        if j < 0 or not self.slots[j].lb or not self.live(j, k.proto):
            return -1
        return j

    cdef int32_t lb_form_reply(self, Plan p, Pkt* pk, int32_t lb) noexcept nogil:
        """reference._lb_form_reply: a packet from a listener's address and port; when it belongs
        to a live session, advance the backend leg's entry and return the backend NIC (else -1)."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef Py_ssize_t j, sj = -1, kk
        cdef int32_t li = -1, bi, bnic
        cdef uint64_t h, peer_lo, peer_hi
        cdef uint16_t peer_port
        if not is_port(pk.proto) or pk.frag:
            return -1
        for kk in range(p.lb_lstart[lb], p.lb_lstart[lb] + p.lb_lcount[lb]):
            if p.ls_proto[kk] == pk.proto and p.ls_port[kk] == pk.sport:
                li = <int32_t>kk
                break
        if li < 0:
            return -1
        h = lb_hash(pk.dst_hi, pk.dst_lo, pk.src_hi, pk.src_lo, pk.proto, pk.dport, pk.sport)
        bi = p.ls_bstart[li] + <int32_t>(h % <uint64_t>p.ls_bcount[li])
        bnic = p.be_nic[bi]
        if p.ls_bypass[li]:
            peer_hi = pk.dst_hi; peer_lo = pk.dst_lo; peer_port = pk.dport
        else:
            make_key(&k, p, bnic, 2, pk.l3, pk.proto, pk.dst_hi, pk.dst_lo, pk.dport, pk.src_hi, pk.src_lo, pk.sport,
                     -1, 0, &orig_low)
            sj = self.ct_find(&k)
            if not self.live(sj, pk.proto):
                return -1
            peer_hi = 0; peer_lo = p.lb_source[p.ls_lb[li]]; peer_port = self.slots[sj].aux
        make_key(&k, p, bnic, 0, 4, pk.proto, 0, p.nic_ip[bnic], p.be_port[bi], peer_hi, peer_lo, peer_port,
                 -1, 0, &orig_low)
        j = self.ct_find(&k)
        if not self.live(j, pk.proto) or (sj < 0 and not self.slots[j].lb):
            return -1
        advance(&self.slots[j], pk.proto, pk.flags, self.now, orig_low != self.slots[j].orig_low)
        if sj >= 0:
            advance(&self.slots[sj], pk.proto, pk.flags, self.now, True)
        return bnic

    cdef bint client_entry(self, Plan p, Pkt* pk, int32_t cnic, int32_t bnic) noexcept nogil:
        """reference._client_entry: the client NIC's live entry toward a client-IP-transfer listener
        that forwards this client 5-tuple to this backend and port (advanced), if there is one."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef Py_ssize_t kk, j
        cdef int32_t be, li, lb, chosen
        cdef int t
        cdef uint64_t addr, h
        if pk.l3 != 4:
            return False                  # load balancers are IPv4
        for kk in range(p.nb_start[bnic], p.nb_start[bnic] + p.nb_count[bnic]):
            be = p.nb_be[kk]
            li = p.be_ls[be]
            if p.be_port[be] != pk.sport or p.ls_proto[li] != pk.proto or not p.ls_bypass[li]:
                continue
            lb = p.ls_lb[li]
            for t in range(2):
                if t == 0:
                    addr = p.lb_vip[lb]
                elif p.lb_has_eip[lb]:
                    addr = p.lb_eip[lb]
                else:
                    break
                h = lb_hash(pk.dst_hi, pk.dst_lo, 0, addr, pk.proto, pk.dport, p.ls_port[li])
                chosen = p.ls_bstart[li] + <int32_t>(h % <uint64_t>p.ls_bcount[li])
                if chosen != be:
                    continue
                make_key(&k, p, cnic, 0, 4, pk.proto, 0, addr, p.ls_port[li], pk.dst_hi, pk.dst_lo, pk.dport,
                         -1, 0, &orig_low)
                j = self.ct_find(&k)
                if self.live(j, pk.proto):
                    advance(&self.slots[j], pk.proto, pk.flags, self.now, orig_low != self.slots[j].orig_low)
                    return True
        return False

    cdef uint16_t free_port(self, Plan p, int32_t bnic, uint8_t proto, uint64_t source, uint16_t port,
                            uint16_t bport) noexcept nogil:
        """reference._free_port: the backend leg's source port for a new session."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef int t
        for t in range(65536):
            make_key(&k, p, bnic, 0, 4, proto, 0, source, port, 0, p.nic_ip[bnic], bport, -1, 0, &orig_low)
            if not self.live(self.ct_find(&k), proto):
                return port
            port = port + 1 if port < 65535 else 1024
        return port

    cdef int touch(self, Plan p, Pkt* pk, int32_t nic, uint16_t bport) except -1 nogil:
        """reference._touch: open or refresh the backend's entry for a client-IP-transfer flow."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef Py_ssize_t j
        make_key(&k, p, nic, 0, pk.l3, pk.proto, pk.src_hi, pk.src_lo, pk.sport,
                 0, p.nic_ip[nic], bport, pk.icmp_type, pk.icmp_id, &orig_low)
        j = self.ct_find(&k)
        self.any_lb = True
        if self.live(j, k.proto):
            advance(&self.slots[j], k.proto, pk.flags, self.now, orig_low != self.slots[j].orig_low)
            self.slots[j].lb = 1
        else:
            if j >= 0:
                self.ct_delete(j)
            self.ct_insert(&k, initial_state(pk.proto, pk.flags), orig_low, 1, 1)
        return 0

    cdef int evaluate(self, Plan p, Pkt* pk, Row* row, View* v) except -1 nogil:
        """reference._evaluate after endpoint resolution: the load-balancer checks that need
        connection tracking, then the stages. Returns 1 when the row is the view's early verdict and
        2 when the stages ran on the plain path (no load-balancer case: what the flow cache may
        remember, run), else 0."""
        cdef CtKey k
        cdef uint8_t orig_low, exempt
        cdef Py_ssize_t j
        cdef int32_t bnic
        cdef uint16_t port
        cdef Pkt fpk
        cdef uint8_t mode = v.mode
        if v.lbform_lb >= 0:
            # reference._lb_form_reply: a reply of a session as the load balancer sends it
            bnic = self.lb_form_reply(p, pk, v.lbform_lb)
            if bnic >= 0 and v.i_nic < 0:
                row.verdict = V_ALLOW; row.reason = R_ESTABLISHED; row.instance = p.nic_inst[bnic]
                row.direction = D_EGRESS; row.group = -1; row.rule = -1
                return 0
        if v.reply_nic >= 0 and self.any_lb and self.lb_entry(p, pk, v.reply_nic) >= 0:
            # a backend's reply in a client-IP-transfer session: through the load balancer (no
            # ACL), established at the backend's egress; at a client NIC, its entry toward the listener
            exempt = v.exempt
            v.exempt = 1
            self.stage(p, pk, row, v, v.reply_nic, D_EGRESS, pk.src_hi, pk.src_lo, pk.dst_hi, pk.dst_lo, pk.dport)
            v.exempt = exempt
            if v.i_nic < 0:
                return 0
            if self.client_entry(p, pk, v.i_nic, v.reply_nic):
                row.verdict = V_ALLOW; row.reason = R_ESTABLISHED; row.instance = p.nic_inst[v.i_nic]
                row.direction = D_INGRESS; row.group = -1; row.rule = -1
                return 0
            if not v.path:
                return 0
            self.stage(p, pk, row, v, v.i_nic, D_INGRESS, v.i_src_hi, v.i_src_lo, v.i_dst_hi, v.i_dst_lo, v.i_dport)
            return 0
        if v.fwd == 1 or (v.fwd == 2 and self.any_lb and self.lb_entry(p, pk, v.i_nic) >= 0):
            # reference._forwarded_leg: the forwarded leg of a client-IP-transfer listener
            self.touch(p, pk, v.i_nic, pk.dport)
            row.verdict = V_ALLOW; row.reason = R_LB_BYPASS; row.instance = p.nic_inst[v.i_nic]
            row.direction = D_INGRESS; row.group = -1; row.rule = -1
            return 0
        if mode == M_NOLISTENER:
            # reference._live_entry: a reply on a backend leg to the load balancer's own address
            j = -1
            if make_key(&k, p, v.e_nic, 0, pk.l3, pk.proto, pk.src_hi, pk.src_lo, port_or_0(pk, pk.sport),
                        pk.dst_hi, pk.dst_lo, port_or_0(pk, pk.dport), pk.icmp_type, pk.icmp_id, &orig_low):
                j = self.ct_find(&k)
            if not self.live(j, k.proto):
                mode = M_EARLY
        if mode == M_EARLY:
            row.verdict = v.ev; row.reason = v.er; row.instance = v.einst
            return 1 if v.mode == M_EARLY and v.lbform_lb < 0 and v.fwd == 0 else 0
        if v.e_nic >= 0:
            self.stage(p, pk, row, v, v.e_nic, D_EGRESS, pk.src_hi, pk.src_lo, pk.dst_hi, pk.dst_lo, pk.dport)
            if row.verdict == V_DENY or mode == M_NOLISTENER:
                return 0
        if mode == M_BYPASS:
            self.touch(p, pk, v.b_nic, v.b_port)
            row.verdict = V_ALLOW; row.reason = R_LB_BYPASS; row.instance = p.nic_inst[v.b_nic]
            row.direction = D_INGRESS; row.group = -1; row.rule = -1
            return 0
        if mode == M_FORWARD:
            # S14: each client 5-tuple is its own session; the backend leg's source port is the
            # session's (reference._via_lb)
            make_key(&k, p, v.b_nic, 2, pk.l3, pk.proto, pk.src_hi, pk.src_lo, pk.sport, pk.dst_hi, pk.dst_lo,
                     pk.dport, -1, 0, &orig_low)
            j = self.ct_find(&k)
            if j >= 0 and not self.live(j, pk.proto):
                self.ct_delete(j)
                j = -1
            port = self.slots[j].aux if j >= 0 else self.free_port(p, v.b_nic, pk.proto, v.i_src_lo, pk.sport, v.b_port)
            fpk = pk[0]
            fpk.sport = port
            self.stage(p, &fpk, row, v, v.i_nic, D_INGRESS, v.i_src_hi, v.i_src_lo, v.i_dst_hi, v.i_dst_lo, v.i_dport)
            if row.verdict == V_ALLOW:
                # the stage may have moved entries (insertion, growth): find the session again
                j = self.ct_find(&k)
                if j >= 0:
                    advance(&self.slots[j], pk.proto, pk.flags, self.now, False)
                else:
                    j = self.ct_insert(&k, initial_state(pk.proto, pk.flags), orig_low, 0, 1)
                    self.slots[j].aux = port
            return 0
        if v.i_nic >= 0:
            self.stage(p, pk, row, v, v.i_nic, D_INGRESS, v.i_src_hi, v.i_src_lo, v.i_dst_hi, v.i_dst_lo, v.i_dport)
        return 2 if mode == M_NORMAL and v.lbform_lb < 0 and v.fwd == 0 else 0

    cdef int stage(self, Plan p, Pkt* pk, Row* row, View* v, int32_t nic, uint8_t direction,
                   uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi, uint64_t dst_lo, uint16_t dport) except -1 nogil:
        """reference._stage: one NIC, one direction (inbound ACL, groups, outbound ACL)."""
        cdef int32_t acl = p.nic_acl[nic]
        cdef bint use_acl = acl >= 0 and not v.exempt
        cdef uint8_t reason = R_RULE, sg_reason
        cdef int32_t rule = -1, sg_rule
        row.instance = p.nic_inst[nic]
        row.direction = direction
        if direction == D_INGRESS and use_acl:
            if not self.filter(p, pk, v, nic, 1, direction, src_hi, src_lo, dst_hi, dst_lo, dport, &reason, &rule):
                row.verdict = V_DENY; row.reason = R_ACL; row.group = p.acl_group[acl]; row.rule = rule
                return 0
        if not self.filter(p, pk, v, nic, 0, direction, src_hi, src_lo, dst_hi, dst_lo, dport, &reason, &rule):
            row.verdict = V_DENY; row.reason = reason
            row.group = p.rule_group[rule] if reason == R_RULE else -1
            row.rule = rule if reason == R_RULE else -1
            return 0
        sg_reason = reason
        sg_rule = rule
        if direction == D_EGRESS and use_acl:
            if not self.filter(p, pk, v, nic, 1, direction, src_hi, src_lo, dst_hi, dst_lo, dport, &reason, &rule):
                row.verdict = V_DENY; row.reason = R_ACL; row.group = p.acl_group[acl]; row.rule = rule
                return 0
        row.verdict = V_ALLOW
        row.reason = sg_reason
        row.group = p.rule_group[sg_rule] if sg_reason == R_RULE else -1
        row.rule = sg_rule if sg_reason == R_RULE else -1
        return 0

    cdef bint filter(self, Plan p, Pkt* pk, View* v, int32_t nic, uint8_t table, uint8_t direction,
                     uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi, uint64_t dst_lo, uint16_t dport,
                     uint8_t* reason, int32_t* rule) except -1 nogil:
        """reference._groups (table 0) / _acl (table 1): connection tracking first, then — only then —
        the first-match rule. Returns whether the packet passes; sets ``reason`` (established,
        related, rule, default, or acl for an ACL's implicit deny) and ``rule`` (-1 for none)."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef Py_ssize_t j
        cdef bint allow
        cdef bint error = is_icmp_error(pk.proto, pk.icmp_type)
        cdef bint keyed = False  # k, orig_low and h hold the packet's own key at this NIC and table
        cdef uint64_t h = 0
        rule[0] = -1
        if error and not pk.frag:
            # reference._tracked, ICMP error: related when the embedded header's flow is live
            if pk.inner_l3 != 0 and make_key(&k, p, nic, table, pk.inner_l3, pk.inner_proto, pk.inner_src_hi,
                                              pk.inner_src_lo, pk.inner_sport, pk.inner_dst_hi, pk.inner_dst_lo,
                                              pk.inner_dport, echo_request(pk.inner_proto), pk.inner_sport, &orig_low):
                j = self.ct_find(&k)
                if j >= 0 and not (self.now - self.slots[j].last > ct_timeout(k.proto, self.slots[j].state)):
                    reason[0] = R_RELATED
                    return True
        elif not pk.frag:
            if make_key(&k, p, nic, table, pk.l3, pk.proto, src_hi, src_lo, port_or_0(pk, pk.sport),
                        dst_hi, dst_lo, port_or_0(pk, dport), pk.icmp_type, pk.icmp_id, &orig_low):
                keyed = True
                h = ct_hash(&k)
                j = self.ct_find_hashed(&k, h)
                if j >= 0:
                    if self.now - self.slots[j].last > ct_timeout(k.proto, self.slots[j].state):
                        self.ct_delete(j)
                    else:
                        advance(&self.slots[j], k.proto, pk.flags, self.now, orig_low != self.slots[j].orig_low)
                        self.note(j, orig_low)
                        reason[0] = R_ESTABLISHED
                        return True
        if table == 0:
            rule[0] = classify_groups(p, pk, v, nic, direction, dport, &allow)
        else:
            rule[0] = classify_acl(p, pk, v, nic, direction, dport, &allow)
        if rule[0] >= 0:
            self.hits_ptr[rule[0] * 3 + direction] += 1
            reason[0] = R_RULE
        else:
            reason[0] = R_DEFAULT if table == 0 else R_ACL
        if not allow:
            return False
        # reference._open: errors and fragments open nothing; the key is the one looked up above
        # (made for every packet that is neither)
        if keyed:
            j = self.ct_insert_hashed(&k, h, initial_state(pk.proto, pk.flags), orig_low, direction == D_INGRESS, 0)
            self.note(j, orig_low)
        return True

    cdef inline void note(self, Py_ssize_t j, uint8_t orig_low) noexcept nogil:
        """Remember the entry a filter passed by (for the flow cache: run)."""
        if self.rec_n < 4 and j <= <Py_ssize_t>0xFFFFFFFF:
            self.rec_slot[self.rec_n] = <uint32_t>j
            self.rec_serial[self.rec_n] = self.slots[j].key.serial
            if orig_low:
                self.rec_low |= <uint8_t>(1 << self.rec_n)
            self.rec_n += 1
        else:
            self.rec_n = 5


# ------------------------------------------------------------------------------- classification

cdef int32_t classify_groups(Plan p, const Pkt* pk, const View* v, int32_t nic, uint8_t direction, uint16_t dport,
                             bint* allow) noexcept nogil:
    """The first security-group rule (global index, -1 for none) of the NIC's policy table that
    matches the stage's view — the header layout of fast.py: source = peer, destination = genuine
    flag, source port = ICMP type, destination port = port or ICMP code (256 = no ports)."""
    cdef int32_t t = p.nic_sg[nic * 3 + direction]
    cdef bint icmp = pk.proto == ICMP or pk.proto == ICMPV6
    cdef uint16_t sp = 0, dp
    cdef uint64_t peer_hi, peer_lo, gen
    cdef int32_t row
    if direction == D_EGRESS:
        peer_hi = v.e_peer_hi; peer_lo = v.e_peer_lo; gen = v.e_gen
    else:
        peer_hi = v.i_peer_hi; peer_lo = v.i_peer_lo; gen = v.i_gen
    if icmp:
        sp = <uint16_t>pk.icmp_type if (not pk.frag and pk.icmp_type >= 0) else NO_L4
        dp = <uint16_t>pk.icmp_code if (not pk.frag and pk.icmp_code >= 0) else NO_L4
    elif is_port(pk.proto) and not pk.frag:
        dp = dport
    else:
        dp = 0
    # t < number of tables and the row < len(sg_rule): built so by fast.py (and checked, _check_plan)
    row = tuple_lookup(&p.sg_views[t], pk.l3, peer_hi, peer_lo, 0, gen, sp, dp, pk.proto)
    if row < 0:
        allow[0] = False
        return -1
    allow[0] = p.sg_allow[row] != 0
    return p.sg_rule[row]


cdef int32_t classify_acl(Plan p, const Pkt* pk, const View* v, int32_t nic, uint8_t direction, uint16_t dport,
                          bint* allow) noexcept nogil:
    """The first rule (global index, -1 = implicit deny) of the NIC's subnet ACL for this way."""
    cdef int32_t t = p.acl_way[p.nic_acl[nic] * 3 + direction]
    cdef bint ports = is_port(pk.proto) and not pk.frag
    cdef int32_t row
    if direction == D_EGRESS:
        row = tuple_lookup(&p.acl_views[t], pk.l3, v.e_asrc_hi, v.e_asrc_lo, v.e_peer_hi, v.e_peer_lo,
                           pk.sport if ports else 0, dport if ports else 0, pk.proto)
    else:
        row = tuple_lookup(&p.acl_views[t], pk.l3, v.i_peer_hi, v.i_peer_lo, v.i_adst_hi, v.i_adst_lo,
                           pk.sport if ports else 0, dport if ports else 0, pk.proto)
    if row < 0:
        allow[0] = False
        return -1
    allow[0] = p.acl_allow[p.acl_off[t] + row] != 0
    return p.acl_rule[p.acl_off[t] + row]


# ------------------------------------------------------------------------ connection keys and states

cdef inline bint is_port(uint8_t proto) noexcept nogil:
    return proto == TCP or proto == UDP


cdef inline uint16_t port_or_0(Pkt* pk, uint16_t port) noexcept nogil:
    return port if is_port(pk.proto) else 0


cdef inline bint is_icmp_error(uint8_t proto, int16_t t) noexcept nogil:
    if proto == ICMP:
        return t == 3 or t == 4 or t == 5 or t == 11 or t == 12
    if proto == ICMPV6:
        return t >= 1 and t <= 4
    return False


cdef inline int16_t echo_request(uint8_t proto) noexcept nogil:
    if proto == ICMP:
        return 8
    if proto == ICMPV6:
        return 128
    return -1


cdef inline bint make_key(CtKey* k, Plan p, int32_t nic, uint8_t table, uint8_t l3, uint8_t proto,
                   uint64_t sh, uint64_t sl, uint16_t sport, uint64_t dh, uint64_t dl, uint16_t dport,
                   int16_t icmp_type, uint16_t icmp_id, uint8_t* orig_low) noexcept nogil:
    """reference._key: the normalised key at a NIC (its EIP replaced by its private IP) and whether
    the packet's source side is the key's side a. False when the packet opens no entry."""
    cdef uint16_t ap, bp
    cdef bint a_low
    if l3 == 4 and p.nic_has_eip[nic]:
        if sh == 0 and sl == p.nic_eip[nic]:
            sl = p.nic_ip[nic]
        if dh == 0 and dl == p.nic_eip[nic]:
            dl = p.nic_ip[nic]
    if is_port(proto):
        ap = sport; bp = dport
    elif proto == ICMP or proto == ICMPV6:
        if proto == ICMP and icmp_type != 8 and icmp_type != 0:
            return False
        if proto == ICMPV6 and icmp_type != 128 and icmp_type != 129:
            return False
        ap = icmp_id; bp = icmp_id
    else:
        ap = 0; bp = 0
    a_low = sh < dh or (sh == dh and (sl < dl or (sl == dl and ap <= bp)))
    if a_low:
        k.a_hi = sh; k.a_lo = sl; k.a_port = ap; k.b_hi = dh; k.b_lo = dl; k.b_port = bp
    else:
        k.a_hi = dh; k.a_lo = dl; k.a_port = bp; k.b_hi = sh; k.b_lo = sl; k.b_port = ap
    k.nic = <uint32_t>nic
    k.l3 = l3
    k.proto = proto
    k.table = table
    orig_low[0] = a_low
    return True


cdef inline uint8_t initial_state(uint8_t proto, uint16_t flags) noexcept nogil:
    """reference._initial_state."""
    if proto == TCP:
        if flags & (FIN | RST):
            return 2
        if (flags & SYN) and not (flags & ACK):
            return 0
        return 1
    return 0


cdef inline void advance(CtSlot* s, uint8_t proto, uint16_t flags, double now, bint reply) noexcept nogil:
    """reference._advance."""
    s.last = now
    if proto == TCP:
        if flags & (FIN | RST):
            s.state = 2
        elif s.state == 0 and reply:
            s.state = 1
    elif proto != ICMP and proto != ICMPV6 and reply:
        s.state = 1
