# cython: language_level=3
"""The greedy placement loop of :func:`sgdp.engine.compiler.build_tuple_space`, compiled.

Same algorithm and the same answer as the Python loop it replaces (tests compare the two): rules in
priority order, each joining the first tuple whose lengths fit it and whose bucket for its key
holds fewer than ``bucket_limit`` rules, else a new tuple with relaxed lengths (or its own). The
Python caller computes the lengths (vectorised) and the masks and bucket order afterwards; this
module only replaces the per-rule loop (about 5 us a rule in Python).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

import numpy as np


cdef struct Entry:  # one bucket counter: (tuple, masked key) -> rules placed there
    uint64_t src_hi, src_lo, dst_hi, dst_lo
    int32_t tuple_index
    int32_t count
    uint16_t sport, dport
    uint8_t l3, proto
    uint8_t used


cdef inline void mask128(int length, uint64_t* hi, uint64_t* lo) noexcept nogil:
    cdef uint64_t ones = 0xFFFFFFFFFFFFFFFFULL
    if length <= 0:
        hi[0] = 0
        lo[0] = 0
    elif length < 64:
        hi[0] = ones << (64 - length)
        lo[0] = 0
    elif length == 64:
        hi[0] = ones
        lo[0] = 0
    elif length < 128:
        hi[0] = ones
        lo[0] = ones << (128 - length)
    else:
        hi[0] = ones
        lo[0] = ones


cdef inline uint16_t mask16(int length) noexcept nogil:
    if length <= 0:
        return 0
    return <uint16_t>((0xFFFF << (16 - length)) & 0xFFFF)


cdef inline int relax(int length, int base, int step) noexcept nogil:
    if length >= base:
        return base + (length - base) // step * step
    return length // step * step


cdef inline uint64_t mix(uint64_t h) noexcept nogil:
    h ^= h >> 33
    h *= 0xFF51AFD7ED558CCDULL
    h ^= h >> 33
    return h


cdef Entry* find(Entry* table, uint64_t cap, int32_t j, uint8_t l3, uint64_t sh, uint64_t sl, uint64_t dh,
                 uint64_t dl, uint16_t sp, uint16_t dp, uint8_t pv) noexcept nogil:
    """The entry of this key, or the empty slot where it goes (the table is never full)."""
    cdef uint64_t h = mix(sh * 0x9E3779B97F4A7C15ULL + sl * 0xC2B2AE3D27D4EB4FULL + dh * 0x165667B19E3779F9ULL
                          + dl * 0xD6E8FEB86659FD93ULL + (<uint64_t>sp << 32 | <uint64_t>dp << 16 | <uint64_t>pv << 8 | l3)
                          + <uint64_t>j * 0x94D049BB133111EBULL)
    cdef uint64_t k = h & (cap - 1)
    cdef Entry* e
    while True:
        e = &table[k]
        if not e.used:
            return e
        if (e.tuple_index == j and e.l3 == l3 and e.src_hi == sh and e.src_lo == sl and e.dst_hi == dh
                and e.dst_lo == dl and e.sport == sp and e.dport == dp and e.proto == pv):
            return e
        k = (k + 1) & (cap - 1)


def place(const uint8_t[::1] l3, const int64_t[::1] ls, const int64_t[::1] ld, const int64_t[::1] lsp,
          const int64_t[::1] ldp, const uint8_t[::1] pmask, const uint8_t[::1] pvalue,
          const uint64_t[::1] src_hi, const uint64_t[::1] src_lo, const uint64_t[::1] dst_hi,
          const uint64_t[::1] dst_lo, const uint16_t[::1] sport, const uint16_t[::1] dport,
          int address_step, int bucket_limit):
    """``(rule_tuple int32[n], lengths int64[tuples, 5])``: each rule's tuple and each tuple's
    (src, dst, sport, dport lengths, protocol mask), as the Python loop of build_tuple_space."""
    cdef Py_ssize_t n = l3.shape[0], i
    if not (ls.shape[0] == n and ld.shape[0] == n and lsp.shape[0] == n and ldp.shape[0] == n and pmask.shape[0] == n
            and pvalue.shape[0] == n and src_hi.shape[0] == n and src_lo.shape[0] == n and dst_hi.shape[0] == n
            and dst_lo.shape[0] == n and sport.shape[0] == n and dport.shape[0] == n):
        raise ValueError("place: columns of different lengths")
    if address_step < 1 or bucket_limit < 1:
        raise ValueError("address_step and bucket_limit must be positive")
    rule_tuple_arr = np.empty(n, np.int32)
    cdef int32_t[::1] rule_tuple = rule_tuple_arr
    # at most one tuple per rule; one entry per (rule, tuple it joined): the table is at most half full
    cdef int64_t* tl = <int64_t*>malloc(sizeof(int64_t) * 5 * (n + 1))
    cdef uint64_t cap = 16
    while cap < <uint64_t>(2 * n + 16):
        cap <<= 1
    cdef Entry* table = <Entry*>calloc(cap, sizeof(Entry))
    if tl == NULL or table == NULL:
        free(tl)
        free(table)
        raise MemoryError()
    cdef int32_t nt = 0, j, placed, own_j, relaxed_j
    cdef int64_t a, b, c, d, p
    cdef int64_t ra, rb, rc, rd, rp
    cdef int base
    cdef uint64_t msh, msl, mdh, mdl
    cdef Entry* e
    cdef Py_ssize_t k
    try:
        with nogil:
            for i in range(n):
                a = ls[i]; b = ld[i]; c = lsp[i]; d = ldp[i]; p = pmask[i]
                placed = -1
                for j in range(nt):
                    if tl[5 * j] <= a and tl[5 * j + 1] <= b and tl[5 * j + 2] <= c and tl[5 * j + 3] <= d \
                            and (tl[5 * j + 4] & ~p) == 0:
                        e = lookup(table, cap, j, tl, l3[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i], dport[i], pvalue[i])
                        if e.count < bucket_limit:
                            e.count += 1
                            placed = j
                            break
                if placed < 0:
                    base = 96 if l3[i] == 4 else 0
                    ra = relax(<int>a, base, address_step); rb = relax(<int>b, base, address_step)
                    rc = 16 if c == 16 else 0
                    rd = 16 if d == 16 else 0
                    rp = 0xFF if p == 0xFF else 0
                    relaxed_j = -1
                    own_j = -1
                    for j in range(nt):
                        if tl[5 * j] == ra and tl[5 * j + 1] == rb and tl[5 * j + 2] == rc and tl[5 * j + 3] == rd and tl[5 * j + 4] == rp:
                            relaxed_j = j
                        if tl[5 * j] == a and tl[5 * j + 1] == b and tl[5 * j + 2] == c and tl[5 * j + 3] == d and tl[5 * j + 4] == p:
                            own_j = j
                    if relaxed_j < 0:
                        placed = nt
                        tl[5 * nt] = ra; tl[5 * nt + 1] = rb; tl[5 * nt + 2] = rc; tl[5 * nt + 3] = rd; tl[5 * nt + 4] = rp
                        nt += 1
                    elif own_j < 0:
                        placed = nt
                        tl[5 * nt] = a; tl[5 * nt + 1] = b; tl[5 * nt + 2] = c; tl[5 * nt + 3] = d; tl[5 * nt + 4] = p
                        nt += 1
                    else:
                        placed = own_j  # every candidate exists and is full here: exceed the limit
                    e = lookup(table, cap, placed, tl, l3[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i], dport[i], pvalue[i])
                    e.count += 1
                rule_tuple[i] = placed
        lengths = np.empty((nt, 5), np.int64)
        for j in range(nt):
            for k in range(5):
                lengths[j, k] = tl[5 * j + k]
        return rule_tuple_arr, lengths
    finally:
        free(tl)
        free(table)


cdef inline Entry* lookup(Entry* table, uint64_t cap, int32_t j, const int64_t* tl, uint8_t l3, uint64_t sh,
                          uint64_t sl, uint64_t dh, uint64_t dl, uint16_t sp, uint16_t dp, uint8_t pv) noexcept nogil:
    """The counter of rule key (l3, ...) masked by tuple j's lengths; a new one is claimed (count 0)."""
    cdef uint64_t mh, ml
    mask128(<int>tl[5 * j], &mh, &ml)
    sh &= mh
    sl &= ml
    mask128(<int>tl[5 * j + 1], &mh, &ml)
    dh &= mh
    dl &= ml
    sp &= mask16(<int>tl[5 * j + 2])
    dp &= mask16(<int>tl[5 * j + 3])
    pv &= <uint8_t>tl[5 * j + 4]
    cdef Entry* e = find(table, cap, j, l3, sh, sl, dh, dl, sp, dp, pv)
    if not e.used:
        e.used = 1
        e.tuple_index = j
        e.l3 = l3
        e.src_hi = sh
        e.src_lo = sl
        e.dst_hi = dh
        e.dst_lo = dl
        e.sport = sp
        e.dport = dp
        e.proto = pv
        e.count = 0
    return e
