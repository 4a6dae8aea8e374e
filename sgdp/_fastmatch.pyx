# cython: language_level=3
"""Compiled first-match packet classifier: tuple-space search with merged tuples (TupleMerge-style)
and a per-field tuple filter.

The rules of a RuleTable are partitioned into *tuples*. A tuple fixes a prefix length for each of
source address, destination address, source port, destination port and a mask for the protocol; a
rule may join a tuple when every one of its ranges lies inside one prefix of the tuple's length
(``min & mask == max & mask``), so the rule has one *key*: its fields ANDed with the masks. Each tuple
is a hash table from key to a *bucket*: the tuple's rules with that key, in priority order. A header
is in a rule's box only if the header's own masked key equals the rule's, so a lookup probes one
bucket per tuple and checks only that bucket's rules in full.

Most tuples hold no rule for a given header, and probing them was most of the work. So before
probing, a *tuple filter* (tuple-space pruning) narrows the tuples down: for each of the five fields
a direct table maps the header's value, cut to its top bits, to a bitmap of the tuples that hold a
rule whose range reaches that value; the AND of the five bitmaps is a superset of the tuples that can
hold a match, usually one or two of them on the ClassBench sets.

Those tuples are searched in ascending order of their best (lowest) rule index, and the search stops
as soon as a tuple's best rule cannot beat the match found so far; within a bucket the scan stops at
the first match or the first rule that cannot beat it. Every rule lies in exactly one tuple (no
replication), so memory is linear in the number of rules: 48 bytes per rule (80 with IPv6 rules in
the table) plus two or more 8-byte slots per bucket, plus the filter's tables (at most 4 x 128 KiB
and one bitmap per class).

Which tuples to make, which rules go where and how fine the filter is are decided in Python
(``sgdp.engine.compiler.build_tuple_space``); this module checks what correctness depends on (prefix masks,
every rule inside its tuple's prefix, ascending indexes in a bucket), builds the hash tables and the
filter from the rules themselves, and searches.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT32_MAX, UINT32_MAX, int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

import numpy as np


cdef extern from *:
    """
    static inline int sgdp_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #define SGDP_EMPTY_SLOT 0xFFFFFFFFu
    #define SGDP_LAST_BIT 63
    #define SGDP_MAX_FILTER_BITS 16
    #define SGDP_BATCH 16
    static inline unsigned long long sgdp_mum(unsigned long long a, unsigned long long b) {
        unsigned __int128 p = (unsigned __int128)a * b;
        return (unsigned long long)p ^ (unsigned long long)(p >> 64);
    }
    #define SGDP_K1 0x9E3779B97F4A7C15ULL
    #define SGDP_K2 0xC2B2AE3D27D4EB4FULL
    #define SGDP_K3 0x165667B19E3779F9ULL
    #define SGDP_K4 0xD6E8FEB86659FD93ULL
    #define SGDP_DEEP_BYTES (1 << 20)
    """
    int sgdp_ctz64(unsigned long long x) noexcept nogil  # x != 0
    int __builtin_clzll(unsigned long long x) noexcept nogil  # x != 0
    void prefetch "__builtin_prefetch"(const void* p) noexcept nogil
    const int BATCH "SGDP_BATCH"  # headers looked up together by classify
    uint64_t mum "sgdp_mum"(uint64_t a, uint64_t b) noexcept nogil  # 128-bit product, halves XORed
    const uint64_t K1 "SGDP_K1"  # odd multipliers of key_hash
    const uint64_t K2 "SGDP_K2"
    const uint64_t K3 "SGDP_K3"
    const uint64_t K4 "SGDP_K4"
    const int64_t DEEP_BYTES "SGDP_DEEP_BYTES"  # rules and slots past this outgrow the L2 cache
    const uint32_t EMPTY_SLOT "SGDP_EMPTY_SLOT"  # Slot.start of an empty slot (no bucket starts there: n_rules < 2**31)
    const int LAST_BIT "SGDP_LAST_BIT"  # the filter bit of every tuple from 63 on
    const int MAX_FILTER_BITS "SGDP_MAX_FILTER_BITS"

# Lookup counters for profiling, compiled in only with SGDP_LOOKUP_STATS=1 (setup.py): lookups,
# filter candidates, tuples probed, hash slots visited, rules compared. Not thread-safe; a normal build
# counts nothing.
cdef extern from *:
    """
    static unsigned long long sgdp_stats[5];
    #ifdef SGDP_LOOKUP_STATS
    #define SGDP_COUNT(i, k) (sgdp_stats[i] += (k))
    #define SGDP_STATS_ON 1
    #else
    #define SGDP_COUNT(i, k) ((void)0)
    #define SGDP_STATS_ON 0
    #endif
    """
    void COUNT "SGDP_COUNT"(int i, int k) noexcept nogil
    unsigned long long sgdp_stats[5]
    const bint STATS_ON "SGDP_STATS_ON"
    int popcount64 "__builtin_popcountll"(unsigned long long x) noexcept nogil


def lookup_stats(bint reset=True):
    """Average work per lookup since the last reset (a build with SGDP_LOOKUP_STATS=1), else None."""
    if not STATS_ON:
        return None
    n = max(1, sgdp_stats[0])
    out = {"lookups": sgdp_stats[0], "candidate_tuples": sgdp_stats[1] / n, "tuples_probed": sgdp_stats[2] / n,
           "slots_visited": sgdp_stats[3] / n, "rules_compared": sgdp_stats[4] / n}
    if reset:
        memset(sgdp_stats, 0, sizeof(sgdp_stats))
    return out




cdef inline uint64_t key_hash(uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi, uint64_t dst_lo,
                              uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil:
    """Hash of one masked key (every field already ANDed with the tuple's masks). An IPv4 key's
    addresses fill one word without loss (source low, destination high); IPv6 high halves are folded
    in by multiplication. The two words are mixed by one 128-bit multiplication whose halves are
    XORed (wyhash's "mum"): every input bit reaches the low bits that choose the slot."""
    cdef uint64_t a = src_lo ^ ((dst_lo << 32) | (dst_lo >> 32)) ^ (src_hi * K3) ^ (dst_hi * K4)
    cdef uint64_t b = (<uint64_t>l3) | ((<uint64_t>proto) << 8) | ((<uint64_t>sport) << 16) | ((<uint64_t>dport) << 32)
    return mum(a ^ K1, b ^ K2)


cdef inline bint is_prefix_mask(uint64_t m) noexcept nogil:
    """True when ``m`` is ones from the top bit down, then zeros (0 and all-ones included)."""
    cdef uint64_t inv = ~m
    return (inv & (inv + 1)) == 0


cdef inline bint rule_matches(const TupleView* v, uint32_t k, uint8_t l3, uint64_t src_hi, uint64_t src_lo,
                              uint64_t dst_hi, uint64_t dst_lo, uint16_t sport, uint16_t dport,
                              uint8_t proto) noexcept nogil:
    """The full five-field test of the rule at position k (128-bit comparisons as (hi, lo) pairs)."""
    cdef const Rule* r = &v.rules[k]
    cdef const RuleHi* h
    if r.l3 != l3 or r.dport_min > dport or dport > r.dport_max or (proto & r.proto_mask) != r.proto_value:
        return False
    if r.sport_min > sport or sport > r.sport_max:
        return False
    if l3 == 4:  # the header's high halves are 0 (tuple_lookup checked), as an IPv4 rule's are
        return r.src_min <= src_lo <= r.src_max and r.dst_min <= dst_lo <= r.dst_max
    h = &v.rules_hi[k]  # r.l3 == 6: the table has an IPv6 rule, so rules_hi has n_rules entries
    if src_hi < h.src_min or (src_hi == h.src_min and src_lo < r.src_min):
        return False
    if src_hi > h.src_max or (src_hi == h.src_max and src_lo > r.src_max):
        return False
    if dst_hi < h.dst_min or (dst_hi == h.dst_min and dst_lo < r.dst_min):
        return False
    if dst_hi > h.dst_max or (dst_hi == h.dst_max and dst_lo > r.dst_max):
        return False
    return True


cdef inline uint64_t rule_key_hash(const FullRule* r, const Tuple* t) noexcept nogil:
    return key_hash(r.l3, r.src_min_hi & t.src_mask_hi, r.src_min_lo & t.src_mask_lo, r.dst_min_hi & t.dst_mask_hi,
                    r.dst_min_lo & t.dst_mask_lo, r.sport_min & t.sport_mask, r.dport_min & t.dport_mask,
                    r.proto_value & t.proto_mask)


cdef inline bint same_key(const FullRule* a, const FullRule* b, const Tuple* t) noexcept nogil:
    return (a.l3 == b.l3
            and (a.src_min_hi & t.src_mask_hi) == (b.src_min_hi & t.src_mask_hi)
            and (a.src_min_lo & t.src_mask_lo) == (b.src_min_lo & t.src_mask_lo)
            and (a.dst_min_hi & t.dst_mask_hi) == (b.dst_min_hi & t.dst_mask_hi)
            and (a.dst_min_lo & t.dst_mask_lo) == (b.dst_min_lo & t.dst_mask_lo)
            and (a.sport_min & t.sport_mask) == (b.sport_min & t.sport_mask)
            and (a.dport_min & t.dport_mask) == (b.dport_min & t.dport_mask)
            and (a.proto_value & t.proto_mask) == (b.proto_value & t.proto_mask))


cdef inline bint rule_inside_tuple(const FullRule* r, const Tuple* t) noexcept nogil:
    """True when every header in the rule's box has the rule's key (min and max agree under the masks)."""
    return ((r.src_min_hi & t.src_mask_hi) == (r.src_max_hi & t.src_mask_hi)
            and (r.src_min_lo & t.src_mask_lo) == (r.src_max_lo & t.src_mask_lo)
            and (r.dst_min_hi & t.dst_mask_hi) == (r.dst_max_hi & t.dst_mask_hi)
            and (r.dst_min_lo & t.dst_mask_lo) == (r.dst_max_lo & t.dst_mask_lo)
            and (r.sport_min & t.sport_mask) == (r.sport_max & t.sport_mask)
            and (r.dport_min & t.dport_mask) == (r.dport_max & t.dport_mask)
            and (t.proto_mask & ~r.proto_mask) == 0)


cdef inline uint64_t filter_addr(uint8_t l3, uint64_t hi, uint64_t lo) noexcept nogil:
    """The first 32 bits of an address, what the filter's address tables are indexed by (cut further)."""
    return lo if l3 == 4 else hi >> 32


def key_hashes(const uint8_t[::1] l3, const uint64_t[::1] src_hi, const uint64_t[::1] src_lo,
               const uint64_t[::1] dst_hi, const uint64_t[::1] dst_lo, const uint16_t[::1] sport,
               const uint16_t[::1] dport, const uint8_t[::1] proto):
    """The hash of each (already masked) key, as uint64: exposes key_hash for tests."""
    cdef Py_ssize_t n = l3.shape[0], i
    if not (src_hi.shape[0] == src_lo.shape[0] == dst_hi.shape[0] == dst_lo.shape[0] == sport.shape[0]
            == dport.shape[0] == proto.shape[0] == n):
        raise ValueError("key_hashes: columns of different lengths")
    out_arr = np.empty(n, np.uint64)
    cdef uint64_t[::1] out = out_arr
    with nogil:
        for i in range(n):
            out[i] = key_hash(l3[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i], dport[i], proto[i])
    return out_arr


# One header's fields, as tuple_lookup takes them.
cdef struct Header:
    uint64_t src_hi
    uint64_t src_lo
    uint64_t dst_hi
    uint64_t dst_lo
    uint16_t sport
    uint16_t dport
    uint8_t l3
    uint8_t proto


cdef inline uint64_t tuple_hash(const Tuple* tp, const Header* x) noexcept nogil:
    """The hash of the header's key in this tuple (its fields ANDed with the tuple's masks)."""
    return key_hash(x.l3, x.src_hi & tp.src_mask_hi, x.src_lo & tp.src_mask_lo, x.dst_hi & tp.dst_mask_hi,
                    x.dst_lo & tp.dst_mask_lo, x.sport & tp.sport_mask, x.dport & tp.dport_mask, x.proto & tp.proto_mask)


cdef inline const Slot* home_slot(const TupleView* v, const Tuple* tp, uint64_t h) noexcept nogil:
    # slot_offset + (h & slot_mask) < slot_offset + capacity: inside v.slots (built so in __cinit__)
    return &v.slots[tp.slot_offset + (h & tp.slot_mask)]


cdef inline int32_t probe(const TupleView* v, const Tuple* tp, uint64_t h, int32_t best, const Header* x) noexcept nogil:
    """The better of ``best`` and the first rule of this tuple that matches the header (h: tuple_hash)."""
    cdef uint64_t s = h & tp.slot_mask
    cdef uint32_t tag = <uint32_t>(h >> 32), k
    cdef const Rule* r
    # the chain stays inside the tuple's slots and ends because at least half of them are empty
    cdef const Slot* slot = &v.slots[tp.slot_offset + s]
    COUNT(2, 1)
    while slot.start != EMPTY_SLOT:
        COUNT(3, 1)
        if slot.tag == tag:
            # a bucket is a run of the rules array ending at a rule marked last (built in __cinit__)
            k = slot.start
            while True:
                r = &v.rules[k]
                if r.index >= best:
                    break  # a bucket ascends by index: nothing later in it can win
                COUNT(4, 1)
                if rule_matches(v, k, x.l3, x.src_hi, x.src_lo, x.dst_hi, x.dst_lo, x.sport, x.dport, x.proto):
                    return r.index  # only the bucket of the header's own key can hold a match
                if r.last:
                    break
                k += 1
        s = (s + 1) & tp.slot_mask
        slot = &v.slots[tp.slot_offset + s]
    return best


cdef inline uint64_t filter_mask(const TupleView* v, const Header* x) noexcept nogil:
    """The tuple filter's answer for this header: a superset of the tuples that can hold a match (bit
    t for tuple t < 63, bit 63 for the tuples from 63 on); 0 when no rule can match."""
    cdef uint64_t sa, da, m
    cdef uint32_t fam
    if v.n_tuples == 0:
        return 0  # no rule (and a zero-filled view has no tables at all)
    if x.l3 == 4:
        if (x.src_hi | x.dst_hi | ((x.src_lo | x.dst_lo) >> 32)) != 0:
            return 0  # not an IPv4 address: no IPv4 rule's range holds it
        sa = x.src_lo
        da = x.dst_lo
        fam = 0
    elif x.l3 == 6:
        sa = x.src_hi >> 32
        da = x.dst_hi >> 32
        fam = 256
    else:
        return 0  # no rule has another IP version
    # sa, da < 2**32, so sa >> addr_shift < 2**addr_bits (the address tables' length) and the second
    # chunk is masked to it; port >> port_shift < 2**port_bits; fam + proto < 512; every class is
    # below its field's bitmap count (built so in make_filter).
    m = (v.bits[0][v.classes[0][sa >> v.addr_shift]] & v.bits[1][v.classes[1][(sa >> v.addr_shift2) & v.chunk_mask]]
         & v.bits[2][v.classes[2][da >> v.addr_shift]] & v.bits[3][v.classes[3][(da >> v.addr_shift2) & v.chunk_mask]]
         & v.bits[4][v.classes[4][x.sport >> v.port_shift]] & v.bits[5][v.classes[5][x.dport >> v.port_shift]]
         & v.proto_bits[fam + x.proto])
    COUNT(0, 1)
    COUNT(1, popcount64(m))
    return m


cdef inline int64_t first_tuple(uint64_t m) noexcept nogil:
    """The first tuple a search of filter answer m != 0 probes."""
    cdef int b = sgdp_ctz64(m)
    return b if b < LAST_BIT else LAST_BIT


cdef inline int32_t search(const TupleView* v, uint64_t m, uint64_t h, const Header* x) noexcept nogil:
    """The lowest index of a rule matching the header among the tuples of filter answer m != 0, or
    INT32_MAX; h is the header's tuple_hash for the first of them (first_tuple(m))."""
    cdef int64_t t = first_tuple(m)
    cdef const Tuple* tp = &v.tuples[t]
    cdef int32_t best = probe(v, tp, h, INT32_MAX, x)
    while True:
        if t >= LAST_BIT:  # bit 63 stands for every tuple from 63 on: try them in turn
            t += 1
            if t >= v.n_tuples:
                break
        else:
            m &= m - 1
            if m == 0:
                break
            t = first_tuple(m)
        # t < n_tuples: bit t < 63 is set only for an existing tuple t, and the tail loop checks
        tp = &v.tuples[t]
        if tp.min_index >= best:
            break  # tuples ascend by min_index: no later tuple has a better rule
        best = probe(v, tp, tuple_hash(tp, x), best, x)
    return best


cdef int32_t tuple_lookup(const TupleView* v, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                          uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil:
    """The lowest index of a rule matching this header, or -1."""
    cdef int64_t p
    cdef int32_t row
    if v.n_parts == 0:
        return plain_lookup(v, l3, src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto)
    for p in range(v.n_parts):  # the first part with a match holds the table's first match
        if v.part_l3[p] != 0 and v.part_l3[p] != l3:
            continue  # a part of the other IP version's rules
        row = plain_lookup(&v.parts[p], l3, src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto)
        if row >= 0:
            return row + v.part_offset[p]
    return -1


cdef inline int32_t plain_lookup(const TupleView* v, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                                 uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil:
    cdef Header x
    x.l3, x.src_hi, x.src_lo, x.dst_hi, x.dst_lo, x.sport, x.dport, x.proto = l3, src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto
    cdef uint64_t m = filter_mask(v, &x)
    if m == 0:
        return -1
    cdef int32_t best = search(v, m, tuple_hash(&v.tuples[first_tuple(m)], &x), &x)
    return best if best != INT32_MAX else -1


cdef inline Py_ssize_t find_key(const uint64_t* keys, const int32_t* vals, Py_ssize_t cap, uint64_t key) noexcept nogil:
    """The slot of ``key`` in an open-addressing table (keys, vals; vals < 0 marks empty; capacity
    ``cap`` a power of two, at most half full), or the empty slot where it goes."""
    cdef Py_ssize_t mask = cap - 1, k = mum(key, K1) & mask
    while vals[k] >= 0 and keys[k] != key:
        k = (k + 1) & mask
    return k


cdef inline Py_ssize_t table_capacity(Py_ssize_t n) noexcept nogil:
    """A power of two at least 2n (at least 2)."""
    cdef Py_ssize_t cap = 2
    while cap < 2 * n:
        cap *= 2
    return cap


cdef struct Scratch:  # build buffers of one make_filter call (C memory: no NumPy object per table)
    int64_t* starts   # size + 2 entries per field
    int64_t* cursor   # size + 2
    int8_t* events    # 2n
    uint64_t* keys    # hash table: bitmap or combination -> class or row
    int32_t* vals
    Py_ssize_t cap


cdef Py_ssize_t build_filter(uint16_t* classes, Py_ssize_t size, Py_ssize_t n, const uint32_t* lo, const uint32_t* hi,
                             const uint8_t* bit, uint64_t* bitmaps, Py_ssize_t n_bitmaps, Scratch* sc) noexcept nogil:
    """Fill ``classes[0:size]`` for one field: position p gets the class of the bitmap of the tuples
    (bit[i] for rule i) with a rule whose chunk range [lo[i], hi[i]] holds p. The field's distinct
    bitmaps are written to ``bitmaps`` from ``n_bitmaps`` on (room for min(size, 2n + 1) of them: the
    ranges cut the positions into at most that many runs); returns the new count. A sweep over the
    positions with +1/-1 events at each range's ends."""
    cdef Py_ssize_t i, p, e, k
    cdef Py_ssize_t cap = table_capacity(min(size, 2 * n + 1))  # bitmap -> class, at most half full
    cdef int64_t* st = sc.starts
    cdef int64_t* cur = sc.cursor
    cdef int8_t* ev = sc.events
    memset(st, 0, (size + 2) * sizeof(int64_t))
    for i in range(n):  # lo[i] <= hi[i] < size (the caller's chunks)
        st[lo[i] + 1] += 1
        st[hi[i] + 2] += 1
    for p in range(1, size + 2):
        st[p] += st[p - 1]  # events at position p are ev[st[p] : st[p + 1]]
    memcpy(cur, st, (size + 2) * sizeof(int64_t))
    for i in range(n):
        ev[cur[lo[i]]] = <int8_t>(bit[i] + 1)  # +1 for tuple bit[i]
        cur[lo[i]] += 1
        ev[cur[hi[i] + 1]] = -<int8_t>(bit[i] + 1)
        cur[hi[i] + 1] += 1
    memset(sc.vals, 0xFF, cap * sizeof(int32_t))  # -1: empty
    cdef int64_t count[64]
    memset(count, 0, sizeof(count))
    cdef uint64_t bm = 0, prev = 0
    cdef int8_t x
    cdef int32_t cls = 0
    cdef Py_ssize_t base = n_bitmaps
    for p in range(size):
        for e in range(st[p], st[p + 1]):
            x = ev[e]
            if x > 0:
                count[x - 1] += 1
                bm |= (<uint64_t>1) << (x - 1)
            else:
                count[-x - 1] -= 1
                if count[-x - 1] == 0:
                    bm &= ~((<uint64_t>1) << (-x - 1))
        if p == 0 or bm != prev:
            prev = bm
            k = find_key(sc.keys, sc.vals, cap, bm)
            if sc.vals[k] < 0:  # a new bitmap: at most min(size, 2n + 1) <= 65536 of them: its class fits uint16
                sc.keys[k] = bm
                sc.vals[k] = <int32_t>(n_bitmaps - base)
                bitmaps[n_bitmaps] = bm
                n_bitmaps += 1
            cls = sc.vals[k]
        classes[p] = <uint16_t>cls
    return n_bitmaps


cdef int make_filter(TupleClassifier self, const FullRule* full, const int32_t[::1] rule_tuple, int addr_bits,
                     int port_bits) except -1:
    """The tuple filter's class tables and bitmaps (see TupleView), from the rules themselves."""
    cdef Py_ssize_t n = self.n_rules, i, p, f, nb
    cdef Py_ssize_t size_a = 1 << addr_bits, size_p = 1 << port_bits
    cdef uint32_t shift_a = 32 - addr_bits, shift_a2 = 32 - 2 * addr_bits, shift_p = 16 - port_bits
    cdef uint64_t chunk_mask = size_a - 1, lo, hi
    cdef const FullRule* r
    cdef Py_ssize_t n_combo_max = min(n, 2 * 65536)
    cdef Py_ssize_t cap = table_capacity(max(n_combo_max, min(max(size_a, size_p), 2 * n + 1)))
    cdef Py_ssize_t room = 512 + 4 * min(size_a, 2 * n + 1) + 2 * min(size_p, 2 * n + 1)
    cdef Scratch sc
    # per field: the first and last chunk each rule reaches (12 x n); each rule's tuple bit (n);
    # (family, protocol value, mask) combinations and their tuples (2 x n_combo_max); bitmaps (room)
    cdef uint32_t* ch = <uint32_t*>PyMem_Malloc(12 * max(n, 1) * sizeof(uint32_t))
    cdef uint8_t* bit = <uint8_t*>PyMem_Malloc(max(n, 1))
    cdef uint64_t* combos = <uint64_t*>PyMem_Malloc(2 * max(n_combo_max, 1) * sizeof(uint64_t))
    cdef uint64_t* bitmaps = <uint64_t*>PyMem_Malloc(room * sizeof(uint64_t))
    sc.starts = <int64_t*>PyMem_Malloc((max(size_a, size_p) + 2) * sizeof(int64_t))
    sc.cursor = <int64_t*>PyMem_Malloc((max(size_a, size_p) + 2) * sizeof(int64_t))
    sc.events = <int8_t*>PyMem_Malloc(2 * max(n, 1))
    sc.keys = <uint64_t*>PyMem_Malloc(cap * sizeof(uint64_t))
    sc.vals = <int32_t*>PyMem_Malloc(cap * sizeof(int32_t))
    sc.cap = cap
    cdef Py_ssize_t c, k, n_combos = 0
    cdef Py_ssize_t offsets[6]
    cdef Py_ssize_t nbits[6]
    try:
        if (ch == NULL or bit == NULL or combos == NULL or bitmaps == NULL or sc.starts == NULL or sc.cursor == NULL
                or sc.events == NULL or sc.keys == NULL or sc.vals == NULL):
            raise MemoryError()
        memset(sc.vals, 0xFF, cap * sizeof(int32_t))  # -1: empty
        memset(combos, 0, 2 * max(n_combo_max, 1) * sizeof(uint64_t))
        for i in range(n):
            r = &full[i]
            bit[i] = <uint8_t>min(rule_tuple[i], LAST_BIT)
            # An address's first 32 bits are monotone in the address, so a range reaches the chunks from
            # its min's to its max's; when both share the first chunk the second chunk is monotone too,
            # otherwise the range may reach any second chunk.
            for f in range(2):
                lo = filter_addr(r.l3, r.src_min_hi, r.src_min_lo) if f == 0 else filter_addr(r.l3, r.dst_min_hi, r.dst_min_lo)
                hi = filter_addr(r.l3, r.src_max_hi, r.src_max_lo) if f == 0 else filter_addr(r.l3, r.dst_max_hi, r.dst_max_lo)
                ch[(4 * f) * n + i] = <uint32_t>(lo >> shift_a)
                ch[(4 * f + 1) * n + i] = <uint32_t>(hi >> shift_a)
                if lo >> shift_a == hi >> shift_a:
                    ch[(4 * f + 2) * n + i] = <uint32_t>((lo >> shift_a2) & chunk_mask)
                    ch[(4 * f + 3) * n + i] = <uint32_t>((hi >> shift_a2) & chunk_mask)
                else:
                    ch[(4 * f + 2) * n + i] = 0
                    ch[(4 * f + 3) * n + i] = <uint32_t>chunk_mask
            ch[8 * n + i] = r.sport_min >> shift_p
            ch[9 * n + i] = r.sport_max >> shift_p
            ch[10 * n + i] = r.dport_min >> shift_p
            ch[11 * n + i] = r.dport_max >> shift_p
            c = (r.l3 == 6) * 65536 + r.proto_value * 256 + r.proto_mask
            k = find_key(sc.keys, sc.vals, cap, c)
            if sc.vals[k] < 0:
                sc.keys[k] = c
                sc.vals[k] = <int32_t>n_combos
                combos[2 * n_combos] = c
                n_combos += 1
            combos[2 * sc.vals[k] + 1] |= (<uint64_t>1) << bit[i]

        self.n_classes = 4 * size_a + 2 * size_p
        self.classes = <uint16_t*>PyMem_Malloc(self.n_classes * sizeof(uint16_t))
        if self.classes == NULL:
            raise MemoryError()
        offsets[:] = [0, size_a, 2 * size_a, 3 * size_a, 4 * size_a, 4 * size_a + size_p]
        memset(bitmaps, 0, room * sizeof(uint64_t))  # proto_bits first, then each field's class bitmaps
        nb = 512
        for f in range(6):
            nbits[f] = nb
            nb = build_filter(self.classes + offsets[f], size_a if f < 4 else size_p, n, ch + 2 * f * n,
                              ch + (2 * f + 1) * n, bit, bitmaps, nb, &sc)
            nbits[f] = nb - nbits[f]
        self.n_bits = nb
        self.bits = <uint64_t*>PyMem_Malloc(self.n_bits * sizeof(uint64_t))
        if self.bits == NULL:
            raise MemoryError()
        memcpy(self.bits, bitmaps, self.n_bits * sizeof(uint64_t))
        for i in range(n_combos):  # proto_bits: every protocol a (family, value, mask) accepts
            c = combos[2 * i]
            for p in range(256):
                if (p & (c & 0xFF)) == ((c >> 8) & 0xFF):
                    self.bits[(c >> 16) * 256 + p] |= combos[2 * i + 1]
    finally:
        PyMem_Free(ch)
        PyMem_Free(bit)
        PyMem_Free(combos)
        PyMem_Free(bitmaps)
        PyMem_Free(sc.starts)
        PyMem_Free(sc.cursor)
        PyMem_Free(sc.events)
        PyMem_Free(sc.keys)
        PyMem_Free(sc.vals)
    self.view.proto_bits = self.bits
    nb = 512
    for f in range(6):
        self.view.classes[f] = self.classes + offsets[f]
        self.view.bits[f] = self.bits + nb
        nb += nbits[f]
    self.view.addr_shift = shift_a
    self.view.addr_shift2 = shift_a2
    self.view.chunk_mask = chunk_mask
    self.view.port_shift = shift_p
    return 0


cdef struct Columns:  # a RuleTable's columns as pointers (valid while the table is alive)
    const uint8_t* l3
    const uint64_t* smih
    const uint64_t* smil
    const uint64_t* smah
    const uint64_t* smal
    const uint64_t* dmih
    const uint64_t* dmil
    const uint64_t* dmah
    const uint64_t* dmal
    const uint16_t* spmi
    const uint16_t* spma
    const uint16_t* dpmi
    const uint16_t* dpma
    const uint8_t* pv
    const uint8_t* pm
    Py_ssize_t n


cdef const uint64_t* u64(const uint64_t[::1] c) except? NULL:
    return &c[0] if c.shape[0] else NULL


cdef const uint16_t* u16(const uint16_t[::1] c) except? NULL:
    return &c[0] if c.shape[0] else NULL


cdef const uint8_t* u8(const uint8_t[::1] c) except? NULL:
    return &c[0] if c.shape[0] else NULL


cdef int columns_of(table, Columns* c, str who) except -1:
    """``c``: the columns of a RuleTable (dtypes checked by the buffer conversion), all of one length."""
    c.n = len(table.l3)
    for col in (table.src_min_hi, table.src_min_lo, table.src_max_hi, table.src_max_lo, table.dst_min_hi,
                table.dst_min_lo, table.dst_max_hi, table.dst_max_lo, table.sport_min, table.sport_max,
                table.dport_min, table.dport_max, table.proto_value, table.proto_mask):
        if len(col) != c.n:
            raise ValueError(f"{who}: rule table columns of different lengths")
    c.l3 = u8(table.l3)
    c.smih, c.smil, c.smah, c.smal = u64(table.src_min_hi), u64(table.src_min_lo), u64(table.src_max_hi), u64(table.src_max_lo)
    c.dmih, c.dmil, c.dmah, c.dmal = u64(table.dst_min_hi), u64(table.dst_min_lo), u64(table.dst_max_hi), u64(table.dst_max_lo)
    c.spmi, c.spma, c.dpmi, c.dpma = u16(table.sport_min), u16(table.sport_max), u16(table.dport_min), u16(table.dport_max)
    c.pv, c.pm = u8(table.proto_value), u8(table.proto_mask)
    return 0


cdef inline void gather(const Columns* c, Py_ssize_t row, FullRule* r, int32_t index) noexcept nogil:
    """Rule ``row`` of the columns into ``r`` (0 <= row < c.n), as rule ``index``."""
    r.src_min_hi, r.src_min_lo, r.src_max_hi, r.src_max_lo = c.smih[row], c.smil[row], c.smah[row], c.smal[row]
    r.dst_min_hi, r.dst_min_lo, r.dst_max_hi, r.dst_max_lo = c.dmih[row], c.dmil[row], c.dmah[row], c.dmal[row]
    r.sport_min, r.sport_max, r.dport_min, r.dport_max = c.spmi[row], c.spma[row], c.dpmi[row], c.dpma[row]
    r.proto_value, r.proto_mask, r.l3, r.index = c.pv[row], c.pm[row], c.l3[row], index


cdef class TupleClassifier:
    """First-match classifier over a RuleTable, searched through the tuples of a TupleSpace.

    ``TupleClassifier(table, space)``: ``table`` is a ``sgdp.engine.compiler.RuleTable``, ``space`` the
    ``sgdp.engine.compiler.TupleSpace`` built for it. ``classify(...)`` takes header columns and writes the
    first matching rule index (or -1) of every header. Holds its own C copy of everything it needs.
    (:func:`build_many` makes many at once from one rule store, placing the rules itself.)
    """

    def __cinit__(self, table, space):
        self.rules = NULL
        self.rules_hi = NULL
        self.tuples = NULL
        self.slots = NULL
        self.classes = NULL
        self.bits = NULL
        self.part_views = NULL
        self.part_offsets = NULL
        self.part_l3s = NULL
        self.n_rules = self.n_tuples = self.n_slots = self.n_classes = self.n_bits = 0
        if table is None and space is None:
            return  # build_many fills it (_build); never handed out unbuilt
        cdef Columns cols
        columns_of(table, &cols, "TupleClassifier")
        cdef const int32_t[::1] order = space.rule_order, rule_tuple = space.rule_tuple
        cdef const uint64_t[::1] tsh = space.src_mask_hi, tsl = space.src_mask_lo
        cdef const uint64_t[::1] tdh = space.dst_mask_hi, tdl = space.dst_mask_lo
        cdef const uint16_t[::1] tsp = space.sport_mask, tdp = space.dport_mask
        cdef const uint8_t[::1] tpr = space.proto_mask
        cdef int addr_bits = space.filter_addr_bits, port_bits = space.filter_port_bits
        cdef Py_ssize_t n = cols.n, nt = tsh.shape[0], i
        cdef int32_t row, t
        cdef Tuple* tp

        if order.shape[0] != n or rule_tuple.shape[0] != n:
            raise ValueError(f"TupleClassifier: the tuple space places {order.shape[0]} rules, the table has {n}")
        for c in (space.src_mask_lo, space.dst_mask_hi, space.dst_mask_lo, space.sport_mask, space.dport_mask, space.proto_mask):
            if len(c) != nt:
                raise ValueError("TupleClassifier: tuple columns of different lengths")
        if n > INT32_MAX - 1 or (n > 0) != (nt > 0):
            raise ValueError("TupleClassifier: bad number of rules or tuples")
        if not (0 <= addr_bits <= MAX_FILTER_BITS and 0 <= port_bits <= MAX_FILTER_BITS):
            raise ValueError(f"TupleClassifier: filter bits {addr_bits}/{port_bits} not within 0..{MAX_FILTER_BITS}")

        self._alloc_tuples(nt)
        for t in range(nt):
            tp = &self.tuples[t]
            tp.src_mask_hi, tp.src_mask_lo, tp.dst_mask_hi, tp.dst_mask_lo = tsh[t], tsl[t], tdh[t], tdl[t]
            tp.sport_mask, tp.dport_mask, tp.proto_mask = tsp[t], tdp[t], tpr[t]
            if not (is_prefix_mask(tp.src_mask_hi) and is_prefix_mask(tp.src_mask_lo) and is_prefix_mask(tp.dst_mask_hi)
                    and is_prefix_mask(tp.dst_mask_lo) and is_prefix_mask((<uint64_t>tp.sport_mask) << 48)
                    and is_prefix_mask((<uint64_t>tp.dport_mask) << 48)):
                raise ValueError(f"TupleClassifier: tuple {t}: a mask is not a prefix mask")
            if (tp.src_mask_lo != 0 and tp.src_mask_hi != 0xFFFFFFFFFFFFFFFFULL) or (
                    tp.dst_mask_lo != 0 and tp.dst_mask_hi != 0xFFFFFFFFFFFFFFFFULL):
                raise ValueError(f"TupleClassifier: tuple {t}: an address mask is not a 128-bit prefix mask")

        # The rules in bucket order with both address halves, for the build only (NumPy's buffers are
        # aligned for 8-byte fields)
        full_arr = np.empty(max(n, 1) * sizeof(FullRule), np.uint8)
        cdef uint8_t[::1] full_bytes = full_arr
        cdef FullRule* full = <FullRule*>&full_bytes[0]

        # The rules in bucket order; check each rule appears once and the tuples ascend.
        seen_arr = np.zeros(n, np.uint8)
        cdef uint8_t[::1] seen = seen_arr
        for i in range(n):
            row = order[i]
            t = rule_tuple[i]
            if row < 0 or row >= n or t < 0 or t >= nt or (i > 0 and t < rule_tuple[i - 1]):
                raise ValueError(f"TupleClassifier: entry {i}: rule {row} / tuple {t} out of range or out of order")
            if seen[row]:
                raise ValueError(f"TupleClassifier: rule {row} is placed twice")
            seen[row] = 1
            gather(&cols, row, &full[i], row)
        self._build(full, n, rule_tuple, addr_bits, port_bits)

    cdef int _alloc_tuples(self, Py_ssize_t nt) except -1:
        self.n_tuples = nt
        if nt:
            self.tuples = <Tuple*>PyMem_Malloc(nt * sizeof(Tuple))
            if self.tuples == NULL:
                raise MemoryError()
        return 0

    cdef int _build(self, const FullRule* full, Py_ssize_t n, const int32_t[::1] rule_tuple, int addr_bits,
                    int port_bits) except -1:
        """The hash tables and the filter from the rules in bucket order (``full[:n]``, each rule's
        tuple ascending in ``rule_tuple``), for the tuples already allocated with their masks. Checks
        that every rule lies inside its tuple's prefixes, that the tuples ascend by their best rule and
        that indexes ascend inside each bucket."""
        cdef Py_ssize_t nt = self.n_tuples, i
        cdef int32_t t
        cdef const FullRule* r
        cdef Tuple* tp
        self.n_rules = n
        self.n_slots = 0
        for t in range(nt):
            self.tuples[t].min_index = INT32_MAX
            self.tuples[t].slot_mask = 0
            self.tuples[t].slot_offset = 0
        for i in range(n):
            r = &full[i]
            tp = &self.tuples[rule_tuple[i]]
            if not rule_inside_tuple(r, tp):
                raise ValueError(f"TupleClassifier: rule {r.index} is not inside one prefix of tuple {rule_tuple[i]}")
            if r.index < tp.min_index:
                tp.min_index = r.index
        for t in range(nt):
            if self.tuples[t].min_index == INT32_MAX or (t > 0 and self.tuples[t].min_index < self.tuples[t - 1].min_index):
                raise ValueError(f"TupleClassifier: tuple {t} is empty or not in ascending order of its best rule")

        # Buckets: maximal runs of equal (tuple, key); indexes must ascend inside each run.
        cdef uint8_t* bstart = <uint8_t*>PyMem_Calloc(n + 1, 1)
        cdef int64_t* nb = <int64_t*>PyMem_Calloc(max(nt, 1), sizeof(int64_t))
        try:
            if bstart == NULL or nb == NULL:
                raise MemoryError()
            self._fill(full, n, rule_tuple, bstart, nb)
        finally:
            PyMem_Free(bstart)
            PyMem_Free(nb)
        make_filter(self, full, rule_tuple, addr_bits, port_bits)
        self.view.rules = self.rules
        self.view.rules_hi = self.rules_hi
        self.view.tuples = self.tuples
        self.view.slots = self.slots
        self.view.n_tuples = nt
        return 0

    cdef int _fill(self, const FullRule* full, Py_ssize_t n, const int32_t[::1] rule_tuple, uint8_t* bstart,
                   int64_t* nb) except -1:
        """The rules (bucket ends marked) and the tuples' hash slots; ``bstart`` (n + 1) and ``nb``
        (per tuple) are zeroed scratch."""
        cdef Py_ssize_t nt = self.n_tuples, i
        cdef int64_t cap, total
        cdef int32_t t
        cdef uint64_t h, s
        cdef const FullRule* r
        cdef Tuple* tp
        cdef bint any6 = False
        for i in range(n):
            any6 |= full[i].l3 == 6
        for i in range(n):
            t = rule_tuple[i]
            if i == 0 or t != rule_tuple[i - 1] or not same_key(&full[i], &full[i - 1], &self.tuples[t]):
                nb[t] += 1
                bstart[i] = 1
            elif full[i].index <= full[i - 1].index:
                raise ValueError(f"TupleClassifier: bucket of rule {full[i].index} is not in ascending index order")
        bstart[n] = 1
        if n:
            self.rules = <Rule*>PyMem_Malloc(n * sizeof(Rule))
            if self.rules == NULL:
                raise MemoryError()
            if any6:
                self.rules_hi = <RuleHi*>PyMem_Malloc(n * sizeof(RuleHi))
                if self.rules_hi == NULL:
                    raise MemoryError()
        for i in range(n):
            r = &full[i]
            self.rules[i].src_min, self.rules[i].src_max = r.src_min_lo, r.src_max_lo
            self.rules[i].dst_min, self.rules[i].dst_max = r.dst_min_lo, r.dst_max_lo
            self.rules[i].sport_min, self.rules[i].sport_max = r.sport_min, r.sport_max
            self.rules[i].dport_min, self.rules[i].dport_max = r.dport_min, r.dport_max
            self.rules[i].proto_value, self.rules[i].proto_mask = r.proto_value, r.proto_mask
            self.rules[i].l3, self.rules[i].index, self.rules[i].last = r.l3, r.index, bstart[i + 1]
            if any6:
                self.rules_hi[i].src_min, self.rules_hi[i].src_max = r.src_min_hi, r.src_max_hi
                self.rules_hi[i].dst_min, self.rules_hi[i].dst_max = r.dst_min_hi, r.dst_max_hi

        total = 0
        for t in range(nt):
            cap = 2
            while cap < 2 * nb[t]:  # load factor <= 1/2: every probe chain ends at an empty slot
                cap *= 2
            self.tuples[t].slot_mask = <uint64_t>(cap - 1)
            self.tuples[t].slot_offset = total
            total += cap
        if total:
            self.slots = <Slot*>PyMem_Malloc(total * sizeof(Slot))
            if self.slots == NULL:
                raise MemoryError()
            memset(self.slots, 0xFF, total * sizeof(Slot))  # start = EMPTY_SLOT everywhere
        self.n_slots = total
        for i in range(n):
            if bstart[i]:
                tp = &self.tuples[rule_tuple[i]]
                h = rule_key_hash(&full[i], tp)
                s = h & tp.slot_mask
                while self.slots[tp.slot_offset + s].start != EMPTY_SLOT:
                    s = (s + 1) & tp.slot_mask
                self.slots[tp.slot_offset + s].tag = <uint32_t>(h >> 32)
                self.slots[tp.slot_offset + s].start = <uint32_t>i
        return 0

    def __dealloc__(self):
        PyMem_Free(self.part_views)
        PyMem_Free(self.part_offsets)
        PyMem_Free(self.part_l3s)
        PyMem_Free(self.rules)
        PyMem_Free(self.rules_hi)
        PyMem_Free(self.tuples)
        PyMem_Free(self.slots)
        PyMem_Free(self.classes)
        PyMem_Free(self.bits)

    @property
    def nbytes(self) -> int:
        """Bytes of C memory this classifier owns (a chained table: its part views, not the parts)."""
        if self.part_views != NULL:
            return self.view.n_parts * (sizeof(TupleView) + sizeof(int32_t) + 1)
        return (self.n_rules * (sizeof(Rule) + (sizeof(RuleHi) if self.rules_hi != NULL else 0))
                + self.n_tuples * sizeof(Tuple) + self.n_slots * sizeof(Slot)
                + self.n_classes * sizeof(uint16_t) + self.n_bits * sizeof(uint64_t))

    def classify(self, const uint8_t[::1] l3, const uint64_t[::1] src_hi, const uint64_t[::1] src_lo,
                 const uint64_t[::1] dst_hi, const uint64_t[::1] dst_lo, const uint16_t[::1] sport,
                 const uint16_t[::1] dport, const uint8_t[::1] proto, int32_t[::1] out):
        """Write into ``out`` the first matching rule index of each header (-1 for none).

        Every column (and ``out``) must have the same length; dtypes are those of
        ``sgdp.engine.compiler.HEADER_COLUMNS`` (a wrong dtype raises ValueError from the buffer check).
        """
        cdef Py_ssize_t n = l3.shape[0], i
        if not (src_hi.shape[0] == src_lo.shape[0] == dst_hi.shape[0] == dst_lo.shape[0] == sport.shape[0]
                == dport.shape[0] == proto.shape[0] == out.shape[0] == n):
            raise ValueError("classify: header columns and out must have the same length")
        if self.classes == NULL and self.part_views == NULL:
            raise ValueError("classify: this classifier was never built (TupleClassifier(None, None))")
        if self.view.n_parts:  # a chained table: one lookup after the other
            with nogil:
                for i in range(n):
                    out[i] = tuple_lookup(&self.view, l3[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i],
                                          dport[i], proto[i])
            return
        cdef Header x[BATCH]
        cdef uint64_t m[BATCH]
        cdef uint64_t h[BATCH]
        cdef const Tuple* tp
        cdef const Slot* slot
        cdef Py_ssize_t base, j, cnt
        cdef int32_t best
        cdef bint deep = self.n_rules * sizeof(Rule) + self.n_slots * sizeof(Slot) > DEEP_BYTES
        cdef TupleView v = self.view  # a local copy: the loop's stores cannot alias it
        with nogil:
            # Interleaved in groups of BATCH headers, so that their memory accesses overlap: the filter
            # and the first hash of each, prefetching its home slot; then (for tables that outgrow the
            # L2 cache) each home slot, prefetching the rule it points to; then each search, on
            # (mostly) cached lines.
            base = 0
            while base < n:
                cnt = min(BATCH, n - base)
                for j in range(cnt):  # base + j < n == every column's length (checked above)
                    i = base + j
                    x[j].l3, x[j].src_hi, x[j].src_lo, x[j].dst_hi = l3[i], src_hi[i], src_lo[i], dst_hi[i]
                    x[j].dst_lo, x[j].sport, x[j].dport, x[j].proto = dst_lo[i], sport[i], dport[i], proto[i]
                    m[j] = filter_mask(&v, &x[j])
                    if m[j] != 0:
                        tp = &v.tuples[first_tuple(m[j])]
                        h[j] = tuple_hash(tp, &x[j])
                        prefetch(home_slot(&v, tp, h[j]))
                for j in range(cnt if deep else 0):
                    if m[j] != 0:
                        slot = home_slot(&v, &v.tuples[first_tuple(m[j])], h[j])
                        if slot.start != EMPTY_SLOT:  # start < n_rules
                            prefetch(&v.rules[slot.start])
                for j in range(cnt):
                    best = search(&v, m[j], h[j], &x[j]) if m[j] != 0 else INT32_MAX
                    out[base + j] = best if best != INT32_MAX else -1
                base += cnt


# ---------------------------------------------------------------------------------------------------
# Placement: which tuple each rule joins (sgdp.engine.compiler.build_tuple_space's greedy loop), and
# build_many, which places and builds the classifiers of many tables taken from one rule store.

cdef struct Entry:  # one bucket counter: (tuple, masked key) -> rules placed there
    uint64_t src_hi, src_lo, dst_hi, dst_lo
    int32_t tuple_index
    int32_t count
    int32_t bucket  # the bucket's number, in the order buckets were first met
    uint32_t stamp  # the placement that claimed it (an entry of an earlier one is empty)
    uint16_t sport, dport
    uint8_t l3, proto


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


cdef Entry* find_entry(Entry* table, uint64_t cap, uint32_t stamp, int32_t j, uint8_t l3, uint64_t sh, uint64_t sl,
                       uint64_t dh, uint64_t dl, uint16_t sp, uint16_t dp, uint8_t pv) noexcept nogil:
    """The entry of this key, or the empty slot where it goes (the table is never full)."""
    cdef uint64_t h = mix(sh * 0x9E3779B97F4A7C15ULL + sl * 0xC2B2AE3D27D4EB4FULL + dh * 0x165667B19E3779F9ULL
                          + dl * 0xD6E8FEB86659FD93ULL + (<uint64_t>sp << 32 | <uint64_t>dp << 16 | <uint64_t>pv << 8 | l3)
                          + <uint64_t>j * 0x94D049BB133111EBULL)
    cdef uint64_t k = h & (cap - 1)
    cdef Entry* e
    while True:
        e = &table[k]
        if e.stamp != stamp:
            return e
        if (e.tuple_index == j and e.l3 == l3 and e.src_hi == sh and e.src_lo == sl and e.dst_hi == dh
                and e.dst_lo == dl and e.sport == sp and e.dport == dp and e.proto == pv):
            return e
        k = (k + 1) & (cap - 1)


cdef inline void set_masks(Tuple* t, const int64_t* lengths) noexcept nogil:
    """A tuple's masks from its (source, destination, source-port, destination-port lengths,
    protocol mask)."""
    mask128(<int>lengths[0], &t.src_mask_hi, &t.src_mask_lo)
    mask128(<int>lengths[1], &t.dst_mask_hi, &t.dst_mask_lo)
    t.sport_mask = mask16(<int>lengths[2])
    t.dport_mask = mask16(<int>lengths[3])
    t.proto_mask = <uint8_t>lengths[4]


cdef inline Entry* bucket_of(Entry* table, uint64_t cap, uint32_t stamp, int32_t j, const Tuple* t,
                             const FullRule* r, int32_t* n_buckets) noexcept nogil:
    """The counter of the rule's key masked by tuple j's masks (``t``); a new one is claimed (count 0)."""
    cdef uint64_t sh = r.src_min_hi & t.src_mask_hi, sl = r.src_min_lo & t.src_mask_lo
    cdef uint64_t dh = r.dst_min_hi & t.dst_mask_hi, dl = r.dst_min_lo & t.dst_mask_lo
    cdef uint16_t sp = r.sport_min & t.sport_mask, dp = r.dport_min & t.dport_mask
    cdef uint8_t pv = r.proto_value & t.proto_mask
    cdef Entry* e = find_entry(table, cap, stamp, j, r.l3, sh, sl, dh, dl, sp, dp, pv)
    if e.stamp != stamp:
        e.stamp = stamp
        e.tuple_index = j
        e.l3 = r.l3
        e.src_hi = sh
        e.src_lo = sl
        e.dst_hi = dh
        e.dst_lo = dl
        e.sport = sp
        e.dport = dp
        e.proto = pv
        e.count = 0
        e.bucket = n_buckets[0]
        n_buckets[0] += 1
    return e


cdef Py_ssize_t place_rules(const FullRule* rules, const int64_t* lens, Py_ssize_t n, int address_step,
                            int bucket_limit, int32_t* rule_tuple, int32_t* rule_bucket, int32_t* bucket_tuple,
                            int64_t* tl, Tuple* masks, int32_t* n_buckets, Entry* table,
                            uint32_t stamp) noexcept nogil:
    """Place rules ``0..n-1`` (priority order; ``lens[4i:4i+4]``: rule i's own source, destination,
    source-port and destination-port prefix lengths) into tuples; returns the number of tuples.
    Each rule, best first, joins the first tuple whose lengths are all at most its own and whose bucket
    for its key holds fewer than ``bucket_limit`` rules; otherwise a new tuple with relaxed lengths
    (addresses rounded down to ``address_step`` bits from the start of the IPv4 or IPv6 address,
    ports exact or any, protocol exact or any), or with its own lengths when that tuple exists
    already; if both exist (full buckets) it joins its own-length tuple over the limit.

    Writes ``rule_tuple[i]``, ``rule_bucket[i]`` (buckets numbered in the order they are first met),
    ``bucket_tuple[b]``, ``tl[5t:5t+5]`` (tuple t's source, destination, source-port, destination-port
    lengths and protocol mask), ``masks[t]`` (its masks: only the mask fields are written) and
    ``n_buckets``. Every array has room for n entries (tl for 5n).
    ``table``: the bucket counters, ``entry_capacity(n)`` entries or more; an entry of another stamp
    counts as empty, so a caller placing many tables reuses one table with a new stamp each time
    instead of clearing it."""
    cdef uint64_t cap = entry_capacity(n)
    cdef Py_ssize_t i
    cdef int32_t nt = 0, j, placed, own_j, relaxed_j
    cdef int64_t a, b, c, d, p, ra, rb, rc, rd, rp
    cdef int base
    cdef Entry* e
    cdef const FullRule* r
    n_buckets[0] = 0
    for i in range(n):
        r = &rules[i]
        a = lens[4 * i]; b = lens[4 * i + 1]; c = lens[4 * i + 2]; d = lens[4 * i + 3]; p = r.proto_mask
        placed = -1
        for j in range(nt):
            if tl[5 * j] <= a and tl[5 * j + 1] <= b and tl[5 * j + 2] <= c and tl[5 * j + 3] <= d \
                    and (tl[5 * j + 4] & ~p) == 0:
                e = bucket_of(table, cap, stamp, j, &masks[j], r, n_buckets)
                if e.count < bucket_limit:
                    placed = j
                    break
        if placed < 0:
            base = 96 if r.l3 == 4 else 0
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
                set_masks(&masks[nt], &tl[5 * nt])
                nt += 1
            elif own_j < 0:
                placed = nt
                tl[5 * nt] = a; tl[5 * nt + 1] = b; tl[5 * nt + 2] = c; tl[5 * nt + 3] = d; tl[5 * nt + 4] = p
                set_masks(&masks[nt], &tl[5 * nt])
                nt += 1
            else:
                placed = own_j  # every candidate exists and is full here: exceed the limit
            e = bucket_of(table, cap, stamp, placed, &masks[placed], r, n_buckets)
        e.count += 1
        rule_tuple[i] = placed
        rule_bucket[i] = e.bucket
        bucket_tuple[e.bucket] = placed
    return nt


cdef inline uint64_t entry_capacity(Py_ssize_t n) noexcept nogil:
    """Bucket counters for placing n rules: one per (rule, tuple it joined) at most, half full."""
    cdef uint64_t cap = 16
    while cap < <uint64_t>(2 * n + 16):
        cap <<= 1
    return cap


def place(const uint8_t[::1] l3, const int64_t[::1] ls, const int64_t[::1] ld, const int64_t[::1] lsp,
          const int64_t[::1] ldp, const uint8_t[::1] pmask, const uint8_t[::1] pvalue,
          const uint64_t[::1] src_hi, const uint64_t[::1] src_lo, const uint64_t[::1] dst_hi,
          const uint64_t[::1] dst_lo, const uint16_t[::1] sport, const uint16_t[::1] dport,
          int address_step, int bucket_limit):
    """``(rule_tuple int32[n], lengths int64[tuples, 5])``: each rule's tuple and each tuple's
    (src, dst, sport, dport lengths, protocol mask), as the Python loop of build_tuple_space (which
    the tests compare this with)."""
    cdef Py_ssize_t n = l3.shape[0], i
    if not (ls.shape[0] == n and ld.shape[0] == n and lsp.shape[0] == n and ldp.shape[0] == n and pmask.shape[0] == n
            and pvalue.shape[0] == n and src_hi.shape[0] == n and src_lo.shape[0] == n and dst_hi.shape[0] == n
            and dst_lo.shape[0] == n and sport.shape[0] == n and dport.shape[0] == n):
        raise ValueError("place: columns of different lengths")
    if address_step < 1 or bucket_limit < 1:
        raise ValueError("address_step and bucket_limit must be positive")
    cdef Py_ssize_t m = max(n, 1)
    rules_arr = np.zeros(m * sizeof(FullRule), np.uint8)
    lens_arr = np.empty(4 * m, np.int64)
    rule_tuple_arr = np.empty(m, np.int32)
    scratch = np.empty(2 * m, np.int32)
    tl_arr = np.empty(5 * m, np.int64)
    cdef uint8_t[::1] rules_bytes = rules_arr
    cdef FullRule* rules = <FullRule*>&rules_bytes[0]
    cdef int64_t[::1] lens = lens_arr, tl = tl_arr
    cdef int32_t[::1] rule_tuple = rule_tuple_arr, sc = scratch
    cdef int32_t n_buckets
    for i in range(n):
        rules[i].l3, rules[i].proto_mask, rules[i].proto_value = l3[i], pmask[i], pvalue[i]
        rules[i].src_min_hi, rules[i].src_min_lo = src_hi[i], src_lo[i]
        rules[i].dst_min_hi, rules[i].dst_min_lo = dst_hi[i], dst_lo[i]
        rules[i].sport_min, rules[i].dport_min = sport[i], dport[i]
        lens[4 * i], lens[4 * i + 1], lens[4 * i + 2], lens[4 * i + 3] = ls[i], ld[i], lsp[i], ldp[i]
    entries_arr = np.zeros(entry_capacity(n) * sizeof(Entry), np.uint8)  # stamp 0 everywhere: empty for stamp 1
    cdef uint8_t[::1] entry_bytes = entries_arr
    masks_arr = np.zeros(m * sizeof(Tuple), np.uint8)
    cdef uint8_t[::1] mask_bytes = masks_arr
    cdef Py_ssize_t nt = place_rules(rules, &lens[0], n, address_step, bucket_limit, &rule_tuple[0], &sc[0], &sc[m],
                                     &tl[0], <Tuple*>&mask_bytes[0], &n_buckets, <Entry*>&entry_bytes[0], 1)
    return rule_tuple_arr[:n].copy(), tl_arr[:5 * nt].reshape(nt, 5).copy()


def default_bits(Py_ssize_t n_rules) -> int:
    """sgdp.engine.compiler.default_filter_bits, as build_many applies it (tests compare the two)."""
    cdef int length = 0
    while n_rules >> length:
        length += 1
    return max(0, min(MAX_FILTER_BITS, 2 * length - 12))


cdef inline int64_t common_prefix(uint64_t a, uint64_t b, int bits) noexcept nogil:
    """The length of the common prefix of a and b as ``bits``-bit numbers (a and b < 2**bits)."""
    cdef uint64_t x = a ^ b
    return bits if x == 0 else bits - (64 - __builtin_clzll(x))


cdef inline int64_t common_prefix128(uint64_t a_hi, uint64_t a_lo, uint64_t b_hi, uint64_t b_lo) noexcept nogil:
    if a_hi != b_hi:
        return common_prefix(a_hi, b_hi, 64)
    return 64 + common_prefix(a_lo, b_lo, 64)


def build_many(store, const int64_t[::1] rows, const int64_t[::1] offsets, int address_step, int bucket_limit):
    """The classifiers of many tables whose rules are rows of one store, in one compiled pass.

    ``store``: a ``sgdp.engine.compiler.RuleTable``; table k's rules are the store rows
    ``rows[offsets[k]:offsets[k + 1]]`` in priority order. Each classifier answers exactly as
    ``TupleClassifier(table, build_tuple_space(table))`` for that table: the same placement (same
    tuples, each rule in the same tuple) and the default filter bits; only the order of the buckets
    inside a tuple may differ, which no answer depends on (a header's key selects one bucket per
    tuple). No RuleTable or TupleSpace is made per table: the rows are gathered straight from the
    store's columns, and the bucket order comes from two counting sorts (buckets by tuple, rules by
    bucket) instead of a sort by key."""
    cdef Columns cols
    columns_of(store, &cols, "build_many")
    cdef Py_ssize_t size = cols.n, n_tables = offsets.shape[0] - 1, k, i, n, m = 1, row, nt, t, pos
    if n_tables < 0 or offsets[0] != 0 or offsets[n_tables] != rows.shape[0]:
        raise ValueError("build_many: offsets must run from 0 to len(rows)")
    if address_step < 1 or bucket_limit < 1:
        raise ValueError("address_step and bucket_limit must be positive")
    for k in range(n_tables):
        if offsets[k + 1] < offsets[k] or offsets[k + 1] - offsets[k] > INT32_MAX - 1:
            raise ValueError("build_many: offsets must ascend (tables of fewer than 2**31 rules)")
        m = max(m, offsets[k + 1] - offsets[k])
    for i in range(rows.shape[0]):
        if rows[i] < 0 or rows[i] >= size:
            raise ValueError(f"build_many: row {rows[i]} is not a row of the store ({size} rows)")
    # scratch for the largest table, reused by every table
    placed_arr = np.zeros(m * sizeof(FullRule), np.uint8)  # rules in priority order
    sorted_arr = np.zeros(m * sizeof(FullRule), np.uint8)  # rules in bucket order
    lens_arr = np.empty(4 * m, np.int64)
    tl_arr = np.empty(5 * m, np.int64)
    ints = np.empty((6, m + 1), np.int32)
    if n_tables >= UINT32_MAX:
        raise ValueError("build_many: too many tables")
    entries_arr = np.zeros(entry_capacity(m) * sizeof(Entry), np.uint8)  # stamp 0: empty for every table's stamp
    cdef uint8_t[::1] entry_bytes = entries_arr
    cdef Entry* entries = <Entry*>&entry_bytes[0]
    masks_arr = np.zeros(m * sizeof(Tuple), np.uint8)  # each tuple's masks, as placement makes them
    cdef uint8_t[::1] mask_bytes = masks_arr
    cdef Tuple* masks = <Tuple*>&mask_bytes[0]
    cdef uint8_t[::1] placed_bytes = placed_arr, sorted_bytes = sorted_arr
    cdef FullRule* placed = <FullRule*>&placed_bytes[0]
    cdef FullRule* full = <FullRule*>&sorted_bytes[0]
    cdef int64_t[::1] lens = lens_arr, tl = tl_arr
    cdef int32_t[:, ::1] sc = ints
    cdef int32_t* rule_tuple = &sc[0, 0]
    cdef int32_t* rule_bucket = &sc[1, 0]
    cdef int32_t* bucket_tuple = &sc[2, 0]
    cdef int32_t* start = &sc[3, 0]  # per tuple, then per bucket: where its run starts
    cdef int32_t* rank = &sc[4, 0]  # per bucket: its place in bucket order
    cdef int32_t[::1] sorted_tuple = ints[5]
    cdef int32_t n_buckets, b
    cdef FullRule* r
    cdef TupleClassifier cl
    cdef int bits
    out = []
    for k in range(n_tables):
        n = offsets[k + 1] - offsets[k]
        with nogil:
            for i in range(n):
                r = &placed[i]
                gather(&cols, rows[offsets[k] + i], r, <int32_t>i)
                # the rule's own lengths (sgdp.engine.compiler.prefix_lengths)
                lens[4 * i] = common_prefix128(r.src_min_hi, r.src_min_lo, r.src_max_hi, r.src_max_lo)
                lens[4 * i + 1] = common_prefix128(r.dst_min_hi, r.dst_min_lo, r.dst_max_hi, r.dst_max_lo)
                lens[4 * i + 2] = common_prefix(r.sport_min, r.sport_max, 16)
                lens[4 * i + 3] = common_prefix(r.dport_min, r.dport_max, 16)
            nt = place_rules(placed, &lens[0], n, address_step, bucket_limit, rule_tuple, rule_bucket, bucket_tuple,
                             &tl[0], masks, &n_buckets, entries, <uint32_t>(k + 1))
            # buckets by tuple (stable: in the order they were met), then rules by bucket (stable:
            # ascending index inside each bucket)
            for t in range(nt + 1):
                start[t] = 0
            for b in range(n_buckets):
                start[bucket_tuple[b] + 1] += 1
            for t in range(nt):
                start[t + 1] += start[t]
            for b in range(n_buckets):
                rank[b] = start[bucket_tuple[b]]
                start[bucket_tuple[b]] += 1
            for b in range(n_buckets + 1):
                start[b] = 0
            for i in range(n):
                start[rank[rule_bucket[i]] + 1] += 1
            for b in range(n_buckets):
                start[b + 1] += start[b]
            for i in range(n):
                pos = start[rank[rule_bucket[i]]]
                start[rank[rule_bucket[i]]] += 1
                full[pos] = placed[i]
                sorted_tuple[pos] = rule_tuple[i]
        cl = TupleClassifier.__new__(TupleClassifier, None, None)
        cl._alloc_tuples(nt)
        for t in range(nt):
            cl.tuples[t] = masks[t]  # _build sets the rest
        bits = default_bits(n)
        cl._build(full, n, sorted_tuple[:n], bits, bits)
        out.append(cl)
    return out


def chain(list parts, const int64_t[::1] offsets, bint ordered=True):
    """One table made of ``parts`` (TupleClassifiers) laid end to end: part p's rows are the table's
    rows ``offsets[p]`` on (``offsets`` ascending, one per part), and the table's first match is
    the first part's first match, shifted by its offset, as if the parts' rules had been built into
    one table in this order. A NIC's policy table is its groups' walks laid end to end, so each
    group's walk is compiled once and chained per NIC: the start-up no longer compiles the same
    rules once for every combination of groups.

    ``ordered=False``: the offsets are in any order (each part's rows still below INT32_MAX - 1):
    the answer is still the first part's first match (in the order of ``parts``), shifted by that
    part's offset, and ``n_rules`` is the end of the highest part. The dataplane numbers the rows
    of every compiled group walk in one space so: a match names its rule through arrays the size
    of the walks, not of every NIC table's rows."""
    cdef Py_ssize_t n = len(parts), p
    if offsets.shape[0] != n or n == 0:
        raise ValueError("chain: one offset per part, and at least one part")
    cdef TupleClassifier c, part
    for p in range(n):
        part = <TupleClassifier?>parts[p]
        if part.view.n_parts or (part.classes == NULL):
            raise ValueError("chain: parts must be built, plain tables")
        if (offsets[p] < 0 or (ordered and p and offsets[p] < offsets[p - 1] + parts[p - 1].n_rules)
                or offsets[p] + part.n_rules > INT32_MAX - 1):
            raise ValueError("chain: offsets must leave each part room for its rows")
    c = TupleClassifier.__new__(TupleClassifier, None, None)
    c.part_views = <TupleView*>PyMem_Malloc(n * sizeof(TupleView))
    c.part_offsets = <int32_t*>PyMem_Malloc(n * sizeof(int32_t))
    c.part_l3s = <uint8_t*>PyMem_Malloc(n)
    if c.part_views == NULL or c.part_offsets == NULL or c.part_l3s == NULL:
        raise MemoryError()
    cdef Py_ssize_t i
    for p in range(n):
        part = parts[p]
        c.part_views[p] = part.view
        c.part_offsets[p] = <int32_t>offsets[p]
        c.part_l3s[p] = part.rules[0].l3 if part.n_rules else 0
        for i in range(part.n_rules):
            if part.rules[i].l3 != c.part_l3s[p]:
                c.part_l3s[p] = 0
    c.view.part_l3 = c.part_l3s
    c.part_refs = list(parts)
    c.n_rules = 0
    for p in range(n):
        c.n_rules = max(c.n_rules, offsets[p] + (<TupleClassifier>parts[p]).n_rules)
    c.view.parts = c.part_views
    c.view.part_offset = c.part_offsets
    c.view.n_parts = n
    return c
