# cython: language_level=3
"""Compiled dataplane: the per-packet steps of sgdp/reference.py over NumPy columns.

Two passes per batch (sgdp/fast.py drives them):

1. ``resolve`` (stateless): endpoints (S5), paths (S6), local traffic, load-balancer listener and
   backend (S14), ACL exemptions (S13), and for each stage the view the rules see (peer address,
   remote-group membership, ACL addresses). Rule classification of those views happens next, in
   batches, through the generic classifier (sgdp/compiler.py).
2. ``Conntrack.run`` (sequential, in capture order): fragment memory (S15), connection tracking
   (S11) in an open-addressing hash table in C memory, ACL tables, and the verdict row of S7.

Every branch mirrors a line of the reference engine; tests/test_differential.py checks that both
give the same columns on random topologies and packet sequences.
"""

cimport cython
from libc.stdlib cimport calloc, free
from libc.string cimport memset

import numpy as np

cimport numpy as cnp

from sgdp._fastmatch cimport TupleClassifier

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
DEF M_LBREPLY = 4

# verdict, reason and direction codes (sgdp.packet.VERDICTS / REASONS / DIRECTIONS)
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

# S13 addresses (reference.BROADCAST, LINK_MULTICAST, METADATA, CLOUD_SERVICES)
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


cdef inline int cmp_addr(uint8_t l3a, uint64_t ha, uint64_t la, uint8_t l3b, uint64_t hb, uint64_t lb) noexcept nogil:
    if l3a != l3b:
        return -1 if l3a < l3b else 1
    if ha != hb:
        return -1 if ha < hb else 1
    if la != lb:
        return -1 if la < lb else 1
    return 0


cdef int candidates(Plan p, uint8_t l3, uint64_t hi, uint64_t lo, Endpoint* out) noexcept nogil:
    """reference._candidates: every endpoint an address may denote, most specific first."""
    cdef Py_ssize_t lo_i = 0, hi_i = p.ak_l3.shape[0], mid, k
    cdef int n = 0, c
    # binary search over the sorted exact index; lo_i/hi_i stay within [0, len]
    while lo_i < hi_i:
        mid = (lo_i + hi_i) >> 1
        c = cmp_addr(p.ak_l3[mid], p.ak_hi[mid], p.ak_lo[mid], l3, hi, lo)
        if c < 0:
            lo_i = mid + 1
        else:
            hi_i = mid
    if lo_i < p.ak_l3.shape[0] and cmp_addr(p.ak_l3[lo_i], p.ak_hi[lo_i], p.ak_lo[lo_i], l3, hi, lo) == 0:
        # ak_start/ak_count were checked against len(c_kind) and MAXC by fast.py
        for k in range(p.ak_start[lo_i], p.ak_start[lo_i] + p.ak_count[lo_i]):
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


cdef int mac_lookup(Plan p, int64_t mac) noexcept nogil:
    cdef Py_ssize_t lo_i = 0, hi_i = p.mac_key.shape[0], mid
    if mac < 0:
        return -1
    while lo_i < hi_i:
        mid = (lo_i + hi_i) >> 1
        if p.mac_key[mid] < mac:
            lo_i = mid + 1
        else:
            hi_i = mid
    if lo_i < p.mac_key.shape[0] and p.mac_key[lo_i] == mac:
        return p.mac_nic[lo_i]
    return -1


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


# ---------------------------------------------------------------------------------- pass 1

def resolve(Plan p, dict c, dict o):
    """Fill the view columns ``o`` (allocated by fast.py, length n) from the packet columns ``c``."""
    cdef const uint8_t[::1] status = c["status"]
    cdef const uint8_t[::1] l3c = c["l3"]
    cdef const uint64_t[::1] src_hi = c["src_hi"]
    cdef const uint64_t[::1] src_lo = c["src_lo"]
    cdef const uint64_t[::1] dst_hi = c["dst_hi"]
    cdef const uint64_t[::1] dst_lo = c["dst_lo"]
    cdef const uint8_t[::1] proto = c["proto"]
    cdef const uint16_t[::1] sport = c["sport"]
    cdef const uint16_t[::1] dport = c["dport"]
    cdef const int64_t[::1] src_mac = c["src_mac"]
    cdef const uint16_t[::1] frag_offset = c["frag_offset"]

    cdef uint8_t[::1] mode = o["mode"]
    cdef uint8_t[::1] early_verdict = o["early_verdict"]
    cdef uint8_t[::1] early_reason = o["early_reason"]
    cdef int32_t[::1] early_inst = o["early_inst"]
    cdef int32_t[::1] e_nic = o["e_nic"]
    cdef uint64_t[::1] e_peer_hi = o["e_peer_hi"]
    cdef uint64_t[::1] e_peer_lo = o["e_peer_lo"]
    cdef uint8_t[::1] e_gen = o["e_gen"]
    cdef uint64_t[::1] e_asrc_hi = o["e_asrc_hi"]
    cdef uint64_t[::1] e_asrc_lo = o["e_asrc_lo"]
    cdef int32_t[::1] i_nic = o["i_nic"]
    cdef uint64_t[::1] i_peer_hi = o["i_peer_hi"]
    cdef uint64_t[::1] i_peer_lo = o["i_peer_lo"]
    cdef uint8_t[::1] i_gen = o["i_gen"]
    cdef uint64_t[::1] i_src_hi = o["i_src_hi"]
    cdef uint64_t[::1] i_src_lo = o["i_src_lo"]
    cdef uint64_t[::1] i_dst_hi = o["i_dst_hi"]
    cdef uint64_t[::1] i_dst_lo = o["i_dst_lo"]
    cdef uint16_t[::1] i_dport = o["i_dport"]
    cdef uint64_t[::1] i_adst_hi = o["i_adst_hi"]
    cdef uint64_t[::1] i_adst_lo = o["i_adst_lo"]
    cdef uint8_t[::1] exempt = o["exempt"]
    cdef int32_t[::1] b_nic = o["b_nic"]
    cdef uint16_t[::1] b_port = o["b_port"]

    cdef Py_ssize_t n = status.shape[0], i
    cdef Endpoint* S = <Endpoint*>calloc(MAXC, sizeof(Endpoint))
    cdef Endpoint* R = <Endpoint*>calloc(MAXC, sizeof(Endpoint))
    if S == NULL or R == NULL:
        free(S); free(R)
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                resolve_one(p, i, status[i], l3c[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], proto[i],
                            sport[i], dport[i], src_mac[i], frag_offset[i], S, R,
                            &mode[i], &early_verdict[i], &early_reason[i], &early_inst[i],
                            &e_nic[i], &e_peer_hi[i], &e_peer_lo[i], &e_gen[i], &e_asrc_hi[i], &e_asrc_lo[i],
                            &i_nic[i], &i_peer_hi[i], &i_peer_lo[i], &i_gen[i], &i_src_hi[i], &i_src_lo[i],
                            &i_dst_hi[i], &i_dst_lo[i], &i_dport[i], &i_adst_hi[i], &i_adst_lo[i],
                            &exempt[i], &b_nic[i], &b_port[i])
    finally:
        free(S)
        free(R)


cdef void resolve_one(Plan p, Py_ssize_t i, uint8_t status, uint8_t l3, uint64_t sh, uint64_t sl,
                      uint64_t dh, uint64_t dl, uint8_t proto, uint16_t sport, uint16_t dport, int64_t mac,
                      uint16_t frag_offset, Endpoint* S, Endpoint* R,
                      uint8_t* mode, uint8_t* ev, uint8_t* er, int32_t* einst,
                      int32_t* e_nic, uint64_t* e_peer_hi, uint64_t* e_peer_lo, uint8_t* e_gen,
                      uint64_t* e_asrc_hi, uint64_t* e_asrc_lo,
                      int32_t* i_nic, uint64_t* i_peer_hi, uint64_t* i_peer_lo, uint8_t* i_gen,
                      uint64_t* i_src_hi, uint64_t* i_src_lo, uint64_t* i_dst_hi, uint64_t* i_dst_lo,
                      uint16_t* i_dport, uint64_t* i_adst_hi, uint64_t* i_adst_lo,
                      uint8_t* exempt, int32_t* b_nic, uint16_t* b_port) noexcept nogil:
    cdef int ns, nr, a, b, m, k
    cdef Endpoint s, r
    cdef int32_t snic, rnic, lb, li, bi
    cdef bint found, internet
    cdef uint64_t h
    mode[0] = M_EARLY
    einst[0] = -1
    e_nic[0] = -1
    i_nic[0] = -1
    b_nic[0] = -1
    exempt[0] = 0
    if status == ST_NON_IP or (l3 != 4 and l3 != 6):
        ev[0] = V_UNMODELLED; er[0] = R_UNMODELLED
        return
    if status == ST_MALFORMED:
        ev[0] = V_MALFORMED; er[0] = R_MALFORMED
        return
    # senders (reference._sender_candidates)
    m = mac_lookup(p, mac)
    if m >= 0:
        ns = candidates(p, l3, sh, sl, S)
        found = False
        for k in range(ns):
            if S[k].kind == K_NIC and S[k].idx == m:
                S[0] = S[k]
                found = True
                break
        if not found:
            S[0].kind = K_NIC; S[0].how = H_FORWARDED; S[0].idx = m
        ns = 1
    else:
        ns = candidates(p, l3, sh, sl, S)
    nr = candidates(p, l3, dh, dl, R)
    # reference._choose: the first pair with a path, else the first pair
    s = S[0]; r = R[0]
    found = False
    for a in range(ns):
        for b in range(nr):
            if has_path(p, S[a], R[b], l3):
                s = S[a]; r = R[b]
                found = True
                break
        if found:
            break
    snic = s.idx if s.kind == K_NIC else -1
    rnic = r.idx if r.kind == K_NIC else -1
    if snic < 0 and rnic < 0 and r.kind != K_LB:
        ev[0] = V_UNMODELLED; er[0] = R_UNMODELLED
        return
    if snic >= 0 and s.how == H_FORWARDED and p.nic_sdc[snic]:
        ev[0] = V_DENY; er[0] = R_NO_ROUTE; einst[0] = p.nic_inst[snic]
        return
    if snic >= 0 and snic == rnic:
        ev[0] = V_ALLOW; er[0] = R_LOCAL; einst[0] = p.nic_inst[snic]
        return
    if r.kind == K_LB:
        lb = r.idx
        li = -1
        if (proto == TCP or proto == UDP) and frag_offset == 0:
            for k in range(p.lb_lstart[lb], p.lb_lstart[lb] + p.lb_lcount[lb]):
                if p.ls_proto[k] == proto and p.ls_port[k] == dport:
                    li = <int32_t>k
                    break
        if li < 0:
            ev[0] = V_DENY; er[0] = R_NO_ROUTE
            return
        if snic >= 0:
            e_nic[0] = snic
            e_peer_hi[0] = dh; e_peer_lo[0] = dl; e_gen[0] = 0
            e_asrc_hi[0] = sh; e_asrc_lo[0] = sl
        exempt[0] = 1
        h = lb_hash(sh, sl, dh, dl, proto, sport, dport)
        bi = p.ls_bstart[li] + <int32_t>(h % <uint64_t>p.ls_bcount[li])
        b_nic[0] = p.be_nic[bi]
        b_port[0] = p.be_port[bi]
        if p.ls_bypass[li]:
            mode[0] = M_BYPASS
            return
        mode[0] = M_FORWARD
        i_nic[0] = b_nic[0]
        i_peer_hi[0] = 0; i_peer_lo[0] = p.lb_source[lb]; i_gen[0] = 0
        i_src_hi[0] = 0; i_src_lo[0] = p.lb_source[lb]
        i_dst_hi[0] = 0; i_dst_lo[0] = p.nic_ip[b_nic[0]]
        i_dport[0] = b_port[0]
        i_adst_hi[0] = 0; i_adst_lo[0] = p.nic_ip[b_nic[0]]
        return
    if not has_path(p, s, r, l3):
        ev[0] = V_DENY; er[0] = R_NO_ROUTE
        einst[0] = p.nic_inst[snic] if snic >= 0 else p.nic_inst[rnic]
        if snic >= 0 and frag_offset == 0:
            # perhaps a backend's reply in a client-IP-transfer flow: the sequential pass decides
            mode[0] = M_LBREPLY
            e_nic[0] = snic
            e_peer_hi[0] = dh; e_peer_lo[0] = dl; e_gen[0] = 0
            e_asrc_hi[0] = sh; e_asrc_lo[0] = sl
            exempt[0] = 1
        return
    mode[0] = M_NORMAL
    internet = s.how == H_EIP or r.how == H_EIP
    exempt[0] = acl_exempt(p, l3, sh, sl, dh, dl, proto, sport, dport, s, r)
    if snic >= 0:
        e_nic[0] = snic
        if internet and rnic >= 0:
            e_peer_hi[0] = 0; e_peer_lo[0] = p.nic_eip[rnic]
        else:
            e_peer_hi[0] = dh; e_peer_lo[0] = dl
        e_gen[0] = rnic >= 0 and r.how == H_FIXED and not internet
        if s.how == H_EIP:
            e_asrc_hi[0] = 0; e_asrc_lo[0] = p.nic_ip[snic]
        else:
            e_asrc_hi[0] = sh; e_asrc_lo[0] = sl
    if rnic >= 0:
        i_nic[0] = rnic
        if internet and snic >= 0:
            i_peer_hi[0] = 0; i_peer_lo[0] = p.nic_eip[snic]
        else:
            i_peer_hi[0] = sh; i_peer_lo[0] = sl
        i_gen[0] = snic >= 0 and s.how == H_FIXED and not internet
        i_src_hi[0] = sh; i_src_lo[0] = sl
        i_dst_hi[0] = dh; i_dst_lo[0] = dl
        i_dport[0] = dport
        if r.how == H_EIP:
            i_adst_hi[0] = 0; i_adst_lo[0] = p.nic_ip[rnic]
        else:
            i_adst_hi[0] = dh; i_adst_lo[0] = dl


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


# ------------------------------------------------------------------------ classification

def classify_by_table(list classifiers, const int32_t[::1] table_of, const uint8_t[::1] l3,
                      const uint64_t[::1] src_hi, const uint64_t[::1] src_lo, const uint64_t[::1] dst_hi,
                      const uint64_t[::1] dst_lo, const uint16_t[::1] sport, const uint16_t[::1] dport,
                      const uint8_t[::1] proto, int32_t[::1] out):
    """``out[i]`` = the first match of header ``i`` in ``classifiers[table_of[i]]`` (a
    ``_fastmatch.TupleClassifier``), -1 where ``table_of[i]`` is -1.

    Headers are bucketed by table with a counting sort, then each table classifies its headers in
    one nogil loop: the Python work is once per table, not per packet. fast.py guarantees
    -1 <= table_of[i] < len(classifiers) and equal column lengths.
    """
    cdef Py_ssize_t n = table_of.shape[0], nt = len(classifiers), i, j, t
    cdef int64_t* start = <int64_t*>calloc(nt + 2, sizeof(int64_t))
    cdef int64_t* fill = <int64_t*>calloc(nt + 2, sizeof(int64_t))
    cdef int64_t* order = <int64_t*>calloc(n + 1, sizeof(int64_t))
    cdef TupleClassifier tc
    if start == NULL or fill == NULL or order == NULL:
        free(start); free(fill); free(order)
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                out[i] = -1
                if table_of[i] >= 0:
                    start[table_of[i] + 1] += 1
            for t in range(nt):
                start[t + 1] += start[t]
                fill[t] = start[t]
            for i in range(n):
                if table_of[i] >= 0:
                    order[fill[table_of[i]]] = i
                    fill[table_of[i]] += 1
        for t in range(nt):
            if start[t + 1] == start[t]:
                continue
            tc = <TupleClassifier>classifiers[t]
            with nogil:
                for j in range(start[t], start[t + 1]):
                    i = order[j]
                    out[i] = tc.classify_one(l3[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i], dport[i], proto[i])
    finally:
        free(start); free(fill); free(order)


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


cdef inline uint64_t ct_hash(const CtKey* k) noexcept nogil:
    cdef uint64_t h = 0
    h = mix(h, k.a_hi); h = mix(h, k.a_lo); h = mix(h, k.b_hi); h = mix(h, k.b_lo)
    h = mix(h, (<uint64_t>k.nic << 32) | (<uint64_t>k.a_port << 16) | k.b_port)
    h = mix(h, (<uint64_t>k.l3 << 16) | (<uint64_t>k.proto << 8) | k.table)
    h ^= h >> 33
    h *= <uint64_t>0xFF51AFD7ED558CCDULL
    h ^= h >> 33
    return h


cdef inline bint ct_eq(const CtKey* a, const CtKey* b) noexcept nogil:
    return (a.a_hi == b.a_hi and a.a_lo == b.a_lo and a.b_hi == b.b_hi and a.b_lo == b.b_lo
            and a.nic == b.nic and a.a_port == b.a_port and a.b_port == b.b_port and a.l3 == b.l3
            and a.proto == b.proto and a.table == b.table)


cdef inline uint64_t frag_hash(const FragSlot* f) noexcept nogil:
    cdef uint64_t h = 0
    h = mix(h, f.src_hi); h = mix(h, f.src_lo); h = mix(h, f.dst_hi); h = mix(h, f.dst_lo)
    h = mix(h, (<uint64_t>f.frag_id << 16) | (<uint64_t>f.l3 << 8) | f.proto)
    h ^= h >> 33
    h *= <uint64_t>0xC4CEB9FE1A85EC53ULL
    h ^= h >> 33
    return h


cdef class Conntrack:
    """Per-NIC connection tracking (S11) and fragment memory (S15) in C memory, and the sequential
    pass that turns resolved views and classification results into verdict rows.

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
    cdef public object hits  # int64 [n_rules, 3] (by direction code)

    def __cinit__(self, Py_ssize_t n_rules, Py_ssize_t capacity=1024):
        cdef Py_ssize_t cap = 16
        while cap < capacity:
            cap <<= 1
        self.slots = <CtSlot*>calloc(cap, sizeof(CtSlot))
        self.frags = <FragSlot*>calloc(16, sizeof(FragSlot))
        if self.slots == NULL or self.frags == NULL:
            raise MemoryError()
        self.cap = cap
        self.fcap = 16
        self.count = 0
        self.fcount = 0
        self.cursor = 0
        self.fcursor = 0
        self.now = -1e300
        self.hits = np.zeros((max(n_rules, 1), 3), dtype=np.int64)

    def __dealloc__(self):
        free(self.slots)
        free(self.frags)

    def __len__(self):
        return self.count

    # -- the connection table --------------------------------------------------------------

    cdef Py_ssize_t ct_find(self, const CtKey* k) noexcept nogil:
        cdef Py_ssize_t mask = self.cap - 1
        cdef Py_ssize_t j = <Py_ssize_t>(ct_hash(k) & <uint64_t>mask)
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
        cdef Py_ssize_t old_cap = self.cap, j, t, mask
        cdef CtSlot* old = self.slots
        cdef CtSlot* new = <CtSlot*>calloc(old_cap * 2, sizeof(CtSlot))
        if new == NULL:
            with gil:
                raise MemoryError()
        self.slots = new
        self.cap = old_cap * 2
        mask = self.cap - 1
        for j in range(old_cap):
            if old[j].used:
                t = <Py_ssize_t>(ct_hash(&old[j].key) & <uint64_t>mask)
                while new[t].used:
                    t = (t + 1) & mask
                new[t] = old[j]
        free(old)
        self.cursor = 0
        return 0

    cdef void ct_sweep(self) noexcept nogil:
        cdef int k
        cdef Py_ssize_t j
        for k in range(SWEEP):
            j = self.cursor
            if self.slots[j].used and self.now - self.slots[j].last > ct_timeout(self.slots[j].key.proto, self.slots[j].state):
                self.ct_delete(j)  # slot j may now hold a shifted entry: look at it again next time
            else:
                self.cursor = (self.cursor + 1) & (self.cap - 1)

    cdef int ct_insert(self, const CtKey* k, uint8_t state, uint8_t orig_low, uint8_t inbound, uint8_t lb) except -1 nogil:
        cdef Py_ssize_t j, mask
        self.ct_sweep()
        if (self.count + 1) * 2 > self.cap:
            self.ct_grow()
        mask = self.cap - 1
        j = <Py_ssize_t>(ct_hash(k) & <uint64_t>mask)
        while self.slots[j].used:
            j = (j + 1) & mask
        self.slots[j].key = k[0]
        self.slots[j].used = 1
        self.slots[j].state = state
        self.slots[j].orig_low = orig_low
        self.slots[j].inbound = inbound
        self.slots[j].lb = lb
        self.slots[j].last = self.now
        self.count += 1
        return 0

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

    # -- S12 ------------------------------------------------------------------------------

    def drop_inbound(self, nics):
        """Forget entries opened by inbound traffic at these NICs (a rule change, S12)."""
        cdef set wanted = set(int(x) for x in nics)
        cdef Py_ssize_t j = 0
        while j < self.cap:
            if self.slots[j].used and self.slots[j].inbound and <int>self.slots[j].key.nic in wanted:
                self.ct_delete(j)  # the slot may hold a shifted entry now: examine it again
            else:
                j += 1

    # -- pass 2 ---------------------------------------------------------------------------

    def run(self, Plan p, dict c, dict o, dict r, dict out, const int32_t[::1] rule_group,
            const int32_t[::1] acl_group, int32_t n_rules):
        """The sequential pass over one batch.

        ``r`` holds the classification results per stage: ``{e,i}_sg_rule`` (global rule index or -1),
        ``{e,i}_sg_allow``, ``{e,i}_acl_rule`` (-1 = implicit deny), ``{e,i}_acl_allow``. ``rule_group``
        maps a global rule index to its group index; ``acl_group`` an ACL index to its group index.
        fast.py checked every index against these arrays before the call.
        """
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
        cdef const uint16_t[::1] icmp_id = c["icmp_id"]
        cdef const uint16_t[::1] tcp_flags = c["tcp_flags"]
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

        cdef const uint8_t[::1] mode = o["mode"]
        cdef const uint8_t[::1] early_verdict = o["early_verdict"]
        cdef const uint8_t[::1] early_reason = o["early_reason"]
        cdef const int32_t[::1] early_inst = o["early_inst"]
        cdef const int32_t[::1] e_nic = o["e_nic"]
        cdef const int32_t[::1] i_nic = o["i_nic"]
        cdef const uint64_t[::1] i_src_hi = o["i_src_hi"]
        cdef const uint64_t[::1] i_src_lo = o["i_src_lo"]
        cdef const uint64_t[::1] i_dst_hi = o["i_dst_hi"]
        cdef const uint64_t[::1] i_dst_lo = o["i_dst_lo"]
        cdef const uint16_t[::1] i_dport = o["i_dport"]
        cdef const uint8_t[::1] exempt = o["exempt"]
        cdef const int32_t[::1] b_nic = o["b_nic"]
        cdef const uint16_t[::1] b_port = o["b_port"]

        cdef const int32_t[::1] e_sg_rule = r["e_sg_rule"]
        cdef const uint8_t[::1] e_sg_allow = r["e_sg_allow"]
        cdef const int32_t[::1] i_sg_rule = r["i_sg_rule"]
        cdef const uint8_t[::1] i_sg_allow = r["i_sg_allow"]
        cdef const int32_t[::1] e_acl_rule = r["e_acl_rule"]
        cdef const uint8_t[::1] e_acl_allow = r["e_acl_allow"]
        cdef const int32_t[::1] i_acl_rule = r["i_acl_rule"]
        cdef const uint8_t[::1] i_acl_allow = r["i_acl_allow"]

        cdef uint8_t[::1] v_verdict = out["verdict"]
        cdef uint8_t[::1] v_reason = out["reason"]
        cdef int32_t[::1] v_instance = out["instance"]
        cdef uint8_t[::1] v_direction = out["direction"]
        cdef int32_t[::1] v_group = out["group"]
        cdef int32_t[::1] v_rule = out["rule"]
        cdef int64_t[:, ::1] hits = self.hits

        cdef Py_ssize_t n = ts.shape[0], i, j
        cdef Row row
        cdef Pkt pk
        cdef FragSlot f
        with nogil:
            for i in range(n):
                if ts[i] > self.now:
                    self.now = ts[i]
                row.instance = -1; row.group = -1; row.rule = -1; row.direction = D_NONE
                if status[i] == ST_NON_IP or (l3[i] != 4 and l3[i] != 6):
                    row.verdict = V_UNMODELLED; row.reason = R_UNMODELLED
                elif status[i] == ST_MALFORMED:
                    row.verdict = V_MALFORMED; row.reason = R_MALFORMED
                else:
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
                        pk.icmp_type = icmp_type[i]; pk.icmp_id = icmp_id[i]; pk.frag = frag_offset[i] > 0
                        pk.src_hi = src_hi[i]; pk.src_lo = src_lo[i]; pk.dst_hi = dst_hi[i]; pk.dst_lo = dst_lo[i]
                        pk.sport = sport[i]; pk.dport = dport[i]
                        pk.inner_l3 = inner_l3[i]; pk.inner_proto = inner_proto[i]
                        pk.inner_src_hi = inner_src_hi[i]; pk.inner_src_lo = inner_src_lo[i]
                        pk.inner_dst_hi = inner_dst_hi[i]; pk.inner_dst_lo = inner_dst_lo[i]
                        pk.inner_sport = inner_sport[i]; pk.inner_dport = inner_dport[i]
                        self.evaluate(p, &pk, &row, mode[i], early_verdict[i], early_reason[i], early_inst[i],
                                      e_nic[i], i_nic[i], i_src_hi[i], i_src_lo[i], i_dst_hi[i], i_dst_lo[i],
                                      i_dport[i], exempt[i], b_nic[i], b_port[i],
                                      e_sg_rule[i], e_sg_allow[i], i_sg_rule[i], i_sg_allow[i],
                                      e_acl_rule[i], e_acl_allow[i], i_acl_rule[i], i_acl_allow[i],
                                      rule_group, acl_group, hits)
                        if frag_offset[i] == 0 and more_fragments[i]:
                            f.verdict = row.verdict; f.reason = row.reason; f.direction = row.direction
                            f.instance = row.instance; f.group = row.group; f.rule = row.rule
                            self.frag_store(&f)
                v_verdict[i] = row.verdict; v_reason[i] = row.reason; v_instance[i] = row.instance
                v_direction[i] = row.direction; v_group[i] = row.group; v_rule[i] = row.rule

    cdef int evaluate(self, Plan p, Pkt* pk, Row* row, uint8_t mode, uint8_t ev, uint8_t er, int32_t einst,
                      int32_t e_nic, int32_t i_nic, uint64_t i_src_hi, uint64_t i_src_lo, uint64_t i_dst_hi,
                      uint64_t i_dst_lo, uint16_t i_dport, uint8_t exempt, int32_t b_nic, uint16_t b_port,
                      int32_t e_sg_rule, uint8_t e_sg_allow, int32_t i_sg_rule, uint8_t i_sg_allow,
                      int32_t e_acl_rule, uint8_t e_acl_allow, int32_t i_acl_rule, uint8_t i_acl_allow,
                      const int32_t[::1] rule_group, const int32_t[::1] acl_group,
                      int64_t[:, ::1] hits) except -1 nogil:
        """reference._evaluate after endpoint resolution."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef Py_ssize_t j
        if mode == M_LBREPLY:
            # reference._lb_reply: a backend's reply in a live client-IP-transfer flow has its path
            j = -1
            if make_key(&k, p, e_nic, 0, pk.l3, pk.proto, pk.src_hi, pk.src_lo, port_or_0(pk, pk.sport),
                        pk.dst_hi, pk.dst_lo, port_or_0(pk, pk.dport), pk.icmp_type, pk.icmp_id, &orig_low):
                j = self.ct_find(&k)
            if j < 0 or not self.slots[j].lb or self.now - self.slots[j].last > ct_timeout(k.proto, self.slots[j].state):
                mode = M_EARLY
        if mode == M_EARLY:
            row.verdict = ev; row.reason = er; row.instance = einst
            return 0
        if e_nic >= 0:
            self.stage(p, pk, row, e_nic, D_EGRESS, pk.src_hi, pk.src_lo, pk.dst_hi, pk.dst_lo,
                       pk.sport, pk.dport, exempt, e_sg_rule, e_sg_allow, e_acl_rule, e_acl_allow,
                       rule_group, acl_group, hits)
            if row.verdict == V_DENY or mode == M_LBREPLY:
                return 0
        if mode == M_BYPASS:
            # reference._touch: open or refresh the backend's entry for the client's flow
            make_key(&k, p, b_nic, 0, pk.l3, pk.proto, pk.src_hi, pk.src_lo, pk.sport,
                     0, p.nic_ip[b_nic], b_port, pk.icmp_type, pk.icmp_id, &orig_low)
            j = self.ct_find(&k)
            if j >= 0 and not (self.now - self.slots[j].last > ct_timeout(k.proto, self.slots[j].state)):
                advance(&self.slots[j], k.proto, pk.flags, self.now, orig_low != self.slots[j].orig_low)
                self.slots[j].lb = 1
            else:
                if j >= 0:
                    self.ct_delete(j)
                self.ct_insert(&k, initial_state(pk.proto, pk.flags), orig_low, 1, 1)
            row.verdict = V_ALLOW; row.reason = R_LB_BYPASS; row.instance = p.nic_inst[b_nic]
            row.direction = D_INGRESS; row.group = -1; row.rule = -1
            return 0
        if i_nic >= 0:
            self.stage(p, pk, row, i_nic, D_INGRESS, i_src_hi, i_src_lo, i_dst_hi, i_dst_lo,
                       pk.sport, i_dport, exempt, i_sg_rule, i_sg_allow, i_acl_rule, i_acl_allow,
                       rule_group, acl_group, hits)
        return 0

    cdef int stage(self, Plan p, Pkt* pk, Row* row, int32_t nic, uint8_t direction,
                   uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi, uint64_t dst_lo,
                   uint16_t sport, uint16_t dport, uint8_t exempt,
                   int32_t sg_rule, uint8_t sg_allow, int32_t acl_rule, uint8_t acl_allow,
                   const int32_t[::1] rule_group, const int32_t[::1] acl_group,
                   int64_t[:, ::1] hits) except -1 nogil:
        """reference._stage: one NIC, one direction (ACL in, groups, ACL out)."""
        cdef int32_t acl = p.nic_acl[nic]
        cdef bint use_acl = acl >= 0 and not exempt
        cdef uint8_t reason = R_RULE
        row.instance = p.nic_inst[nic]
        row.direction = direction
        if direction == D_INGRESS and use_acl:
            if not self.filter(p, pk, nic, 1, direction, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
                               acl_rule, acl_allow, hits, &reason):
                row.verdict = V_DENY; row.reason = R_ACL; row.group = acl_group[acl]; row.rule = acl_rule
                return 0
        if not self.filter(p, pk, nic, 0, direction, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
                           sg_rule, sg_allow, hits, &reason):
            row.verdict = V_DENY; row.reason = reason
            row.group = rule_group[sg_rule] if reason == R_RULE else -1
            row.rule = sg_rule if reason == R_RULE else -1
            return 0
        cdef uint8_t sg_reason = reason
        if direction == D_EGRESS and use_acl:
            if not self.filter(p, pk, nic, 1, direction, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
                               acl_rule, acl_allow, hits, &reason):
                row.verdict = V_DENY; row.reason = R_ACL; row.group = acl_group[acl]; row.rule = acl_rule
                return 0
        row.verdict = V_ALLOW
        row.reason = sg_reason
        row.group = rule_group[sg_rule] if sg_reason == R_RULE else -1
        row.rule = sg_rule if sg_reason == R_RULE else -1
        return 0

    cdef bint filter(self, Plan p, Pkt* pk, int32_t nic, uint8_t table, uint8_t direction,
                     uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi, uint64_t dst_lo,
                     uint16_t sport, uint16_t dport, int32_t rule, uint8_t allow,
                     int64_t[:, ::1] hits, uint8_t* reason) except -1 nogil:
        """reference._groups / _acl: connection tracking first, then the classified rule.
        Returns whether the packet passes; ``reason`` becomes established, related, rule, default
        (security groups) or acl (ACL implicit deny)."""
        cdef CtKey k
        cdef uint8_t orig_low
        cdef Py_ssize_t j
        cdef bint error = is_icmp_error(pk.proto, pk.icmp_type)
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
            if make_key(&k, p, nic, table, pk.l3, pk.proto, src_hi, src_lo, port_or_0(pk, sport),
                        dst_hi, dst_lo, port_or_0(pk, dport), pk.icmp_type, pk.icmp_id, &orig_low):
                j = self.ct_find(&k)
                if j >= 0:
                    if self.now - self.slots[j].last > ct_timeout(k.proto, self.slots[j].state):
                        self.ct_delete(j)
                    else:
                        advance(&self.slots[j], k.proto, pk.flags, self.now, orig_low != self.slots[j].orig_low)
                        reason[0] = R_ESTABLISHED
                        return True
        if rule >= 0:
            hits[rule, direction] += 1
            reason[0] = R_RULE
        else:
            reason[0] = R_DEFAULT if table == 0 else R_ACL
        if not allow:
            return False
        # reference._open: errors and fragments open nothing
        if not error and not pk.frag:
            if make_key(&k, p, nic, table, pk.l3, pk.proto, src_hi, src_lo, port_or_0(pk, sport),
                        dst_hi, dst_lo, port_or_0(pk, dport), pk.icmp_type, pk.icmp_id, &orig_low):
                self.ct_insert(&k, initial_state(pk.proto, pk.flags), orig_low, direction == D_INGRESS, 0)
        return True


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


cdef bint make_key(CtKey* k, Plan p, int32_t nic, uint8_t table, uint8_t l3, uint8_t proto,
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
