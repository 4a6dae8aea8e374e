# The compiled first-match classifier's C structures (see _fastmatch.pyx and sgdp/engine/compiler.py).
#
# A classifier is built from a RuleTable (sgdp.engine.compiler.RULE_COLUMNS) and the TupleSpace that
# sgdp.engine.compiler.build_tuple_space chose for it. Addresses are 128-bit values split in (hi, lo)
# uint64 halves exactly as in sgdp.capture.packet (IPv4 in the low half, high half 0). A rule's "index" is
# its row in the RuleTable: lower index = higher priority, the answer is the lowest matching index.
#
# Other extension modules (the dataplane) may cimport TupleClassifier and call tuple_lookup on its
# view from their own nogil loops.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# One rule, as one row of the RuleTable (dtypes in sgdp.engine.compiler.RULE_COLUMNS), stored in bucket
# order (TupleSpace.rule_order): the rules of one bucket are contiguous, in ascending index. Only the
# low halves of the addresses are here (all an IPv4 rule has); an IPv6 rule's high halves are in
# RuleHi at the same position. 48 bytes.
cdef struct Rule:
    uint64_t src_min         # RuleTable.src_min_lo (uint64): source range [src_min, src_max], inclusive
    uint64_t src_max         # RuleTable.src_max_lo (uint64)
    uint64_t dst_min         # RuleTable.dst_min_lo (uint64): destination range, inclusive
    uint64_t dst_max         # RuleTable.dst_max_lo (uint64)
    uint16_t sport_min       # RuleTable.sport_min (uint16): source port range, inclusive
    uint16_t sport_max       # RuleTable.sport_max (uint16)
    uint16_t dport_min       # RuleTable.dport_min (uint16): destination port range, inclusive
    uint16_t dport_max       # RuleTable.dport_max (uint16)
    uint8_t proto_value      # RuleTable.proto_value (uint8): matches when (proto & proto_mask) == proto_value
    uint8_t proto_mask       # RuleTable.proto_mask (uint8)
    uint8_t l3               # RuleTable.l3 (uint8): 4 or 6; a header of another version never matches
    uint8_t last             # 1 on the last rule of its bucket
    int32_t index            # the rule's row in the RuleTable (0 <= index < number of rules)

# The high address halves of the rule at the same position (RuleTable.*_hi, uint64); kept only when
# the table has an IPv6 rule (an IPv4 rule's high halves are 0).
cdef struct RuleHi:
    uint64_t src_min
    uint64_t src_max
    uint64_t dst_min
    uint64_t dst_max

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
    uint64_t slot_mask       # capacity - 1; capacity is a power of two >= 2 x number of buckets
    int64_t slot_offset      # this tuple's slots are slots[slot_offset : slot_offset + capacity]

# One slot of a tuple's open-addressing (linear probing) hash table; start == EMPTY_SLOT marks it
# empty. tag is the high half of the bucket key's hash (the low bits chose the slot): distinct keys
# may share a tag, and lookup then scans each bucket of that tag along the probe chain.
cdef struct Slot:
    uint32_t tag
    uint32_t start           # the bucket's rules are rules[start], ... up to the one marked last

# A borrowed view of one TupleClassifier's tables, for compiled callers that classify from their own
# nogil loops (the dataplane): valid while that TupleClassifier is alive. A zero-filled view (n_tuples
# 0) is an empty table.
#
# The tuple filter: for each field f, a class table classes[f] maps a chunk of the header's value to
# a class, and bits[f][class] says which tuples hold a rule whose range reaches that chunk (bit t for
# tuple t < 63, bit 63 for every tuple from 63 on). The AND over the fields (and proto_bits) is a
# superset of the tuples that can hold a match, so a lookup probes only those. Fields, by f: 0 and 1
# the source address's first and second addr_bits-bit chunks (of its first 32 bits: an IPv4 address
# whole, an IPv6 address's top 32 bits), 2 and 3 the destination's, 4 the source port's first
# port_bits bits, 5 the destination port's.
cdef struct TupleView:
    const Rule* rules
    const RuleHi* rules_hi   # NULL when the table has no IPv6 rule
    const Tuple* tuples
    const Slot* slots
    int64_t n_tuples
    const uint16_t* classes[6]   # 2**addr_bits entries for fields 0-3, 2**port_bits for 4-5
    const uint64_t* bits[6]      # one tuple bitmap per class
    const uint64_t* proto_bits   # 512 entries: [0 for IPv4, 256 for IPv6] + protocol
    uint32_t addr_shift          # 32 - addr_bits: an address's first chunk is a >> addr_shift
    uint32_t addr_shift2         # 32 - 2 x addr_bits: its second is (a >> addr_shift2) & chunk_mask
    uint64_t chunk_mask          # 2**addr_bits - 1
    uint32_t port_shift          # 16 - port_bits: a port's chunk is port >> port_shift
    # A chained table (chain()): its rows are its parts' rows laid end to end, and its answer is the
    # first part's answer (plus that part's offset) in order; its own fields above are unused.
    const TupleView* parts       # n_parts views, or NULL for a plain table
    const int32_t* part_offset   # each part's first row in the chained table
    int64_t n_parts

# A rule with both address halves (RuleTable columns of one row; index: its row): what the build
# places, checks and hashes, in bucket order (not kept).
cdef struct FullRule:
    uint64_t src_min_hi
    uint64_t src_min_lo
    uint64_t src_max_hi
    uint64_t src_max_lo
    uint64_t dst_min_hi
    uint64_t dst_min_lo
    uint64_t dst_max_hi
    uint64_t dst_max_lo
    uint16_t sport_min
    uint16_t sport_max
    uint16_t dport_min
    uint16_t dport_max
    uint8_t proto_value
    uint8_t proto_mask
    uint8_t l3
    int32_t index


# The lowest index of a rule matching the header, or -1 (the search of TupleClassifier.classify).
cdef int32_t tuple_lookup(const TupleView* v, uint8_t l3, uint64_t src_hi, uint64_t src_lo, uint64_t dst_hi,
                          uint64_t dst_lo, uint16_t sport, uint16_t dport, uint8_t proto) noexcept nogil


cdef class TupleClassifier:
    cdef Rule* rules         # owned (malloc): n_rules entries, in bucket order
    cdef RuleHi* rules_hi    # owned: n_rules entries, or NULL when there is no IPv6 rule
    cdef Tuple* tuples       # owned: n_tuples entries, ascending min_index
    cdef Slot* slots         # owned: n_slots entries, every tuple's table back to back
    cdef uint16_t* classes   # owned: the six class tables of the filter back to back
    cdef uint64_t* bits      # owned: proto_bits (512), then the six fields' class bitmaps
    cdef readonly int64_t n_rules
    cdef readonly int64_t n_tuples
    cdef readonly int64_t n_slots
    cdef readonly int64_t n_classes  # class-table entries
    cdef readonly int64_t n_bits     # bitmap entries
    cdef TupleView view      # what tuple_lookup reads; points into the arrays above
    cdef TupleView* part_views   # owned: a chained table's parts' views (copies), else NULL
    cdef int32_t* part_offsets   # owned: their first rows
    cdef object part_refs        # the part classifiers, kept alive while their views are used
    cdef int _alloc_tuples(self, Py_ssize_t nt) except -1
    cdef int _build(self, const FullRule* full, Py_ssize_t n, const int32_t[::1] rule_tuple, int addr_bits,
                    int port_bits) except -1
    cdef int _fill(self, const FullRule* full, Py_ssize_t n, const int32_t[::1] rule_tuple, uint8_t* bstart,
                   int64_t* nb) except -1
