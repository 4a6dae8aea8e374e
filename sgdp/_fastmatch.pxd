# The compiled first-match classifier's C structures (see _fastmatch.pyx and sgdp/compiler.py).
#
# A classifier is built from a RuleTable (sgdp.engine.compiler.RULE_COLUMNS) and the TupleSpace that
# sgdp.engine.compiler.build_tuple_space chose for it. Addresses are 128-bit values split in (hi, lo)
# uint64 halves exactly as in sgdp.capture.packet (IPv4 in the low half, high half 0). A rule's "index" is
# its row in the RuleTable: lower index = higher priority, the answer is the lowest matching index.
#
# Other extension modules (the dataplane) may cimport TupleClassifier and call classify_one from
# their own nogil loops.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# One rule, as one row of the RuleTable (dtypes in sgdp.engine.compiler.RULE_COLUMNS), stored in bucket
# order (TupleSpace.rule_order): the rules of one bucket are contiguous, in ascending index.
cdef struct Rule:
    uint64_t src_min_hi      # RuleTable.src_min_hi (uint64): source range [src_min, src_max], inclusive
    uint64_t src_min_lo      # RuleTable.src_min_lo (uint64)
    uint64_t src_max_hi      # RuleTable.src_max_hi (uint64)
    uint64_t src_max_lo      # RuleTable.src_max_lo (uint64)
    uint64_t dst_min_hi      # RuleTable.dst_min_hi (uint64): destination range, inclusive
    uint64_t dst_min_lo      # RuleTable.dst_min_lo (uint64)
    uint64_t dst_max_hi      # RuleTable.dst_max_hi (uint64)
    uint64_t dst_max_lo      # RuleTable.dst_max_lo (uint64)
    uint16_t sport_min       # RuleTable.sport_min (uint16): source port range, inclusive
    uint16_t sport_max       # RuleTable.sport_max (uint16)
    uint16_t dport_min       # RuleTable.dport_min (uint16): destination port range, inclusive
    uint16_t dport_max       # RuleTable.dport_max (uint16)
    uint8_t proto_value      # RuleTable.proto_value (uint8): matches when (proto & proto_mask) == proto_value
    uint8_t proto_mask       # RuleTable.proto_mask (uint8)
    uint8_t l3               # RuleTable.l3 (uint8): 4 or 6; a header of another version never matches
    int32_t index            # the rule's row in the RuleTable (0 <= index < number of rules)

# One tuple: a hash table over the rules whose fields all lie inside one prefix of the tuple's
# lengths. A header's key for this tuple is its fields ANDed with the masks (TupleSpace.*_mask);
# l3 is always part of the key. Tuples are stored in ascending min_index.
cdef struct Tuple:
    uint64_t src_mask_hi     # TupleSpace.src_mask_hi (uint64): source prefix mask, high half
    uint64_t src_mask_lo     # TupleSpace.src_mask_lo (uint64)
    uint64_t dst_mask_hi     # TupleSpace.dst_mask_hi (uint64)
    uint64_t dst_mask_lo     # TupleSpace.dst_mask_lo (uint64)
    uint16_t sport_mask      # TupleSpace.sport_mask (uint16)
    uint16_t dport_mask      # TupleSpace.dport_mask (uint16)
    uint8_t proto_mask       # TupleSpace.proto_mask (uint8)
    int32_t min_index        # TupleSpace.min_index (int32): the smallest rule index in this tuple
    uint64_t slot_mask       # capacity - 1; capacity is a power of two > number of buckets
    int64_t slot_offset      # this tuple's slots are slots[slot_offset : slot_offset + capacity]

# One slot of a tuple's open-addressing (linear probing) hash table; count == 0 marks it empty.
# Distinct keys may share a hash: lookup then scans each slot of that hash along the probe chain.
cdef struct Slot:
    uint64_t hash            # key_hash of the bucket's masked key
    uint32_t start           # the bucket's rules are rules[start : start + count]
    uint32_t count


# A borrowed view of one TupleClassifier's tables, for compiled callers that classify from their own
# nogil loops (the dataplane): valid while that TupleClassifier is alive.
cdef struct TupleView:
    const Rule* rules
    const Tuple* tuples
    const Slot* slots
    int64_t n_tuples

# The lowest index of a rule matching the header, or -1 (the search of TupleClassifier.classify_one).
cdef int32_t tuple_lookup(const TupleView* v, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                          uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil


cdef class TupleClassifier:
    cdef Rule* rules         # owned (malloc): n_rules entries, in bucket order
    cdef Tuple* tuples       # owned: n_tuples entries, ascending min_index
    cdef Slot* slots         # owned: n_slots entries, every tuple's table back to back
    cdef readonly int64_t n_rules
    cdef readonly int64_t n_tuples
    cdef readonly int64_t n_slots

    cdef int32_t classify_one(self, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                              uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil
