# cython: language_level=3
"""Compiled first-match packet classifier: tuple-space search with merged tuples (TupleMerge-style).

The rules of a RuleTable are partitioned into *tuples*. A tuple fixes a prefix length for each of
source address, destination address, source port, destination port and a mask for the protocol; a
rule may join a tuple when every one of its ranges lies inside one prefix of the tuple's length
(``min & mask == max & mask``), so the rule has one *key*: its fields ANDed with the masks. Each tuple
is a hash table from key to a *bucket*: the tuple's rules with that key, in priority order. A header
is in a rule's box only if the header's own masked key equals the rule's, so a lookup probes one
bucket per tuple and checks only that bucket's rules in full.

Tuples are searched in ascending order of their best (lowest) rule index, and the search stops as
soon as a tuple's best rule cannot beat the match found so far; within a bucket the scan stops at the
first match or the first rule that cannot beat it. Every rule lies in exactly one tuple (no
replication), so memory is linear in the number of rules: about 80 bytes per rule plus two 16-byte
slots per bucket.

Which tuples to make and which rules go where is decided in Python (``sgdp.engine.compiler.
build_tuple_space``); this module checks what correctness depends on (prefix masks, every rule inside
its tuple's prefix, ascending indexes in a bucket), computes the key hashes, and searches.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset

import numpy as np

cdef uint64_t K1 = 0x9E3779B97F4A7C15ULL
cdef uint64_t K2 = 0xC2B2AE3D27D4EB4FULL
cdef uint64_t K3 = 0x165667B19E3779F9ULL
cdef uint64_t K4 = 0xD6E8FEB86659FD93ULL
cdef uint64_t K5 = 0xFF51AFD7ED558CCDULL
cdef uint64_t K6 = 0xC4CEB9FE1A85EC53ULL


cdef inline uint64_t key_hash(uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi, uint64_t dst_lo,
                              uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil:
    """Hash of one masked key (every field already ANDed with the tuple's masks)."""
    cdef uint64_t h = src_lo * K1 + dst_lo * K2
    h ^= src_hi * K3 + dst_hi * K4
    h += (<uint64_t>l3) | ((<uint64_t>proto) << 8) | ((<uint64_t>sport) << 16) | ((<uint64_t>dport) << 32)
    h ^= h >> 33
    h *= K5
    h ^= h >> 33
    h *= K6
    h ^= h >> 33
    return h


cdef inline bint is_prefix_mask(uint64_t m) noexcept nogil:
    """True when ``m`` is ones from the top bit down, then zeros (0 and all-ones included)."""
    cdef uint64_t inv = ~m
    return (inv & (inv + 1)) == 0


cdef inline bint rule_matches(const Rule* r, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                              uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil:
    """The full five-field test of one rule (128-bit comparisons as (hi, lo) pairs)."""
    if r.l3 != l3 or r.dport_min > dport or dport > r.dport_max or (proto & r.proto_mask) != r.proto_value:
        return False
    if r.sport_min > sport or sport > r.sport_max:
        return False
    if src_hi < r.src_min_hi or (src_hi == r.src_min_hi and src_lo < r.src_min_lo):
        return False
    if src_hi > r.src_max_hi or (src_hi == r.src_max_hi and src_lo > r.src_max_lo):
        return False
    if dst_hi < r.dst_min_hi or (dst_hi == r.dst_min_hi and dst_lo < r.dst_min_lo):
        return False
    if dst_hi > r.dst_max_hi or (dst_hi == r.dst_max_hi and dst_lo > r.dst_max_lo):
        return False
    return True


cdef inline uint64_t rule_key_hash(const Rule* r, const Tuple* t) noexcept nogil:
    return key_hash(r.l3, r.src_min_hi & t.src_mask_hi, r.src_min_lo & t.src_mask_lo, r.dst_min_hi & t.dst_mask_hi,
                    r.dst_min_lo & t.dst_mask_lo, r.sport_min & t.sport_mask, r.dport_min & t.dport_mask,
                    r.proto_value & t.proto_mask)


cdef inline bint same_key(const Rule* a, const Rule* b, const Tuple* t) noexcept nogil:
    return (a.l3 == b.l3
            and (a.src_min_hi & t.src_mask_hi) == (b.src_min_hi & t.src_mask_hi)
            and (a.src_min_lo & t.src_mask_lo) == (b.src_min_lo & t.src_mask_lo)
            and (a.dst_min_hi & t.dst_mask_hi) == (b.dst_min_hi & t.dst_mask_hi)
            and (a.dst_min_lo & t.dst_mask_lo) == (b.dst_min_lo & t.dst_mask_lo)
            and (a.sport_min & t.sport_mask) == (b.sport_min & t.sport_mask)
            and (a.dport_min & t.dport_mask) == (b.dport_min & t.dport_mask)
            and (a.proto_value & t.proto_mask) == (b.proto_value & t.proto_mask))


cdef inline bint rule_inside_tuple(const Rule* r, const Tuple* t) noexcept nogil:
    """True when every header in the rule's box has the rule's key (min and max agree under the masks)."""
    return ((r.src_min_hi & t.src_mask_hi) == (r.src_max_hi & t.src_mask_hi)
            and (r.src_min_lo & t.src_mask_lo) == (r.src_max_lo & t.src_mask_lo)
            and (r.dst_min_hi & t.dst_mask_hi) == (r.dst_max_hi & t.dst_mask_hi)
            and (r.dst_min_lo & t.dst_mask_lo) == (r.dst_max_lo & t.dst_mask_lo)
            and (r.sport_min & t.sport_mask) == (r.sport_max & t.sport_mask)
            and (r.dport_min & t.dport_mask) == (r.dport_max & t.dport_mask)
            and (t.proto_mask & ~r.proto_mask) == 0)


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


cdef int32_t tuple_lookup(const TupleView* v, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                          uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil:
    """The lowest index of a rule matching this header, or -1."""
    cdef int32_t best = INT32_MAX
    cdef int64_t t
    cdef uint64_t h, s
    cdef uint32_t k, end
    cdef const Tuple* tp
    cdef const Slot* slot
    cdef const Rule* r
    for t in range(v.n_tuples):
        tp = &v.tuples[t]
        if tp.min_index >= best:
            break  # tuples ascend by min_index: no later tuple has a better rule
        h = key_hash(l3, src_hi & tp.src_mask_hi, src_lo & tp.src_mask_lo, dst_hi & tp.dst_mask_hi,
                     dst_lo & tp.dst_mask_lo, sport & tp.sport_mask, dport & tp.dport_mask, proto & tp.proto_mask)
        s = h & tp.slot_mask
        # slot_offset + s < slot_offset + capacity: the tuple's slots lie inside v.slots (built
        # so in __cinit__), and the chain ends because at least half the slots are empty.
        slot = &v.slots[tp.slot_offset + s]
        while slot.count != 0:
            if slot.hash == h:
                # start + count <= n_rules: buckets are runs of the rules array (built in __cinit__)
                k = slot.start
                end = slot.start + slot.count
                while k < end:
                    r = &v.rules[k]
                    if r.index >= best:
                        break  # a bucket ascends by index: nothing later in it can win
                    if rule_matches(r, l3, src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto):
                        best = r.index
                        break
                    k += 1
            s = (s + 1) & tp.slot_mask
            slot = &v.slots[tp.slot_offset + s]
    return best if best != INT32_MAX else -1


cdef class TupleClassifier:
    """First-match classifier over a RuleTable, searched through the tuples of a TupleSpace.

    ``TupleClassifier(table, space)``: ``table`` is a ``sgdp.engine.compiler.RuleTable``, ``space`` the
    ``sgdp.engine.compiler.TupleSpace`` built for it. ``classify(...)`` takes header columns and writes the
    first matching rule index (or -1) of every header. Holds its own C copy of everything it needs.
    """

    def __cinit__(self, table, space):
        self.rules = NULL
        self.tuples = NULL
        self.slots = NULL
        cdef const uint8_t[::1] l3 = table.l3
        cdef const uint64_t[::1] smih = table.src_min_hi, smil = table.src_min_lo
        cdef const uint64_t[::1] smah = table.src_max_hi, smal = table.src_max_lo
        cdef const uint64_t[::1] dmih = table.dst_min_hi, dmil = table.dst_min_lo
        cdef const uint64_t[::1] dmah = table.dst_max_hi, dmal = table.dst_max_lo
        cdef const uint16_t[::1] spmi = table.sport_min, spma = table.sport_max
        cdef const uint16_t[::1] dpmi = table.dport_min, dpma = table.dport_max
        cdef const uint8_t[::1] pv = table.proto_value, pm = table.proto_mask
        cdef const int32_t[::1] order = space.rule_order, rule_tuple = space.rule_tuple
        cdef const uint64_t[::1] tsh = space.src_mask_hi, tsl = space.src_mask_lo
        cdef const uint64_t[::1] tdh = space.dst_mask_hi, tdl = space.dst_mask_lo
        cdef const uint16_t[::1] tsp = space.sport_mask, tdp = space.dport_mask
        cdef const uint8_t[::1] tpr = space.proto_mask
        cdef Py_ssize_t n = l3.shape[0], nt = tsh.shape[0], i, j, k, b, start
        cdef int64_t nbuckets, cap, total
        cdef int32_t row, t
        cdef uint64_t h, s
        cdef Rule* r
        cdef Tuple* tp

        for c in (table.src_min_hi, table.src_min_lo, table.src_max_hi, table.src_max_lo, table.dst_min_hi,
                  table.dst_min_lo, table.dst_max_hi, table.dst_max_lo, table.sport_min, table.sport_max,
                  table.dport_min, table.dport_max, table.proto_value, table.proto_mask):
            if len(c) != n:
                raise ValueError("TupleClassifier: rule table columns of different lengths")
        if order.shape[0] != n or rule_tuple.shape[0] != n:
            raise ValueError(f"TupleClassifier: the tuple space places {order.shape[0]} rules, the table has {n}")
        for c in (space.src_mask_lo, space.dst_mask_hi, space.dst_mask_lo, space.sport_mask, space.dport_mask, space.proto_mask):
            if len(c) != nt:
                raise ValueError("TupleClassifier: tuple columns of different lengths")
        if n > INT32_MAX - 1 or (n > 0) != (nt > 0):
            raise ValueError("TupleClassifier: bad number of rules or tuples")

        self.n_rules = n
        self.n_tuples = nt
        self.n_slots = 0
        if n == 0:
            return
        self.rules = <Rule*>PyMem_Malloc(n * sizeof(Rule))
        self.tuples = <Tuple*>PyMem_Malloc(nt * sizeof(Tuple))
        if self.rules == NULL or self.tuples == NULL:
            raise MemoryError()

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
            tp.min_index = INT32_MAX
            tp.slot_mask = 0
            tp.slot_offset = 0

        # Copy the rules in bucket order; check each rule appears once and lies inside its tuple's prefixes.
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
            r = &self.rules[i]
            r.src_min_hi, r.src_min_lo, r.src_max_hi, r.src_max_lo = smih[row], smil[row], smah[row], smal[row]
            r.dst_min_hi, r.dst_min_lo, r.dst_max_hi, r.dst_max_lo = dmih[row], dmil[row], dmah[row], dmal[row]
            r.sport_min, r.sport_max, r.dport_min, r.dport_max = spmi[row], spma[row], dpmi[row], dpma[row]
            r.proto_value, r.proto_mask, r.l3, r.index = pv[row], pm[row], l3[row], row
            tp = &self.tuples[t]
            if not rule_inside_tuple(r, tp):
                raise ValueError(f"TupleClassifier: rule {row} is not inside one prefix of tuple {t}")
            if row < tp.min_index:
                tp.min_index = row
        for t in range(nt):
            if self.tuples[t].min_index == INT32_MAX or (t > 0 and self.tuples[t].min_index < self.tuples[t - 1].min_index):
                raise ValueError(f"TupleClassifier: tuple {t} is empty or not in ascending order of its best rule")

        # Buckets: maximal runs of equal (tuple, key); indexes must ascend inside each run.
        counts = np.zeros(nt, np.int64)
        cdef int64_t[::1] nb = counts
        for i in range(n):
            t = rule_tuple[i]
            if i == 0 or t != rule_tuple[i - 1] or not same_key(&self.rules[i], &self.rules[i - 1], &self.tuples[t]):
                nb[t] += 1
            elif self.rules[i].index <= self.rules[i - 1].index:
                raise ValueError(f"TupleClassifier: bucket of rule {self.rules[i].index} is not in ascending index order")
        total = 0
        for t in range(nt):
            cap = 2
            while cap < 2 * nb[t]:  # load factor <= 1/2: every probe chain ends at an empty slot
                cap *= 2
            self.tuples[t].slot_mask = <uint64_t>(cap - 1)
            self.tuples[t].slot_offset = total
            total += cap
        self.slots = <Slot*>PyMem_Malloc(total * sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()
        memset(self.slots, 0, total * sizeof(Slot))
        self.n_slots = total
        start = 0
        for i in range(n + 1):
            if i == n or (i > start and (rule_tuple[i] != rule_tuple[start]
                                        or not same_key(&self.rules[i], &self.rules[start], &self.tuples[rule_tuple[start]]))):
                tp = &self.tuples[rule_tuple[start]]
                h = rule_key_hash(&self.rules[start], tp)
                s = h & tp.slot_mask
                while self.slots[tp.slot_offset + s].count != 0:
                    s = (s + 1) & tp.slot_mask
                self.slots[tp.slot_offset + s].hash = h
                self.slots[tp.slot_offset + s].start = <uint32_t>start
                self.slots[tp.slot_offset + s].count = <uint32_t>(i - start)
                start = i

    def __dealloc__(self):
        PyMem_Free(self.rules)
        PyMem_Free(self.tuples)
        PyMem_Free(self.slots)

    @property
    def nbytes(self) -> int:
        """Bytes of C memory this classifier owns."""
        return self.n_rules * sizeof(Rule) + self.n_tuples * sizeof(Tuple) + self.n_slots * sizeof(Slot)

    cdef int32_t classify_one(self, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                              uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil:
        """The lowest index of a rule matching this header, or -1."""
        cdef TupleView v
        v.rules = self.rules
        v.tuples = self.tuples
        v.slots = self.slots
        v.n_tuples = self.n_tuples
        return tuple_lookup(&v, l3, src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto)

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
        with nogil:
            for i in range(n):  # i < n == every column's length (checked above)
                out[i] = self.classify_one(l3[i], src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i], dport[i], proto[i])
