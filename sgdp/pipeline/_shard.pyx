# cython: language_level=3
"""The shard of every packet of a batch, the dataplane clock and the batch's rows grouped by shard,
in one compiled pass: what :mod:`sgdp.pipeline.shard` computes with NumPy (its ``ShardKeys`` and
``Router`` stay the reference, and tests compare the two), without the temporaries."""

from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint64_t

from sgdp._sorted cimport sorted_find

cdef uint64_t M1 = 0xBF58476D1CE4E5B9ULL
cdef uint64_t M2 = 0x94D049BB133111EBULL
cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL


cdef inline uint64_t address_value(uint8_t l3, uint64_t hi, uint64_t lo) noexcept nogil:
    return lo ^ (<uint64_t>l3 << 60) ^ (hi * GOLDEN)


cdef inline bint icmp_error(uint8_t proto, int16_t t) noexcept nogil:
    if proto == 1:
        return t == 3 or t == 4 or t == 5 or t == 11 or t == 12
    if proto == 58:
        return 1 <= t <= 4
    return False


cdef class Owners:
    """The address table of ``shard._AddressTable``: direct-mapped slots and a sorted overflow."""

    cdef const uint64_t[::1] key
    cdef const uint64_t[::1] owner
    cdef const uint8_t[::1] state
    cdef const uint64_t[::1] over_key
    cdef const uint64_t[::1] over_owner
    cdef uint64_t shift
    cdef bint empty
    cdef object keep

    def __init__(self, table):
        """``table``: a ``shard._AddressTable``, or None (no address is named: every owner is itself)."""
        self.empty = table is None
        if self.empty:
            return
        self.keep = table
        self.key = table.key
        self.owner = table.owner
        self.state = table.state
        self.over_key = table.over_key
        self.over_owner = table.over_owner
        self.shift = int(table.shift)

    cdef inline uint64_t find(self, uint64_t v) noexcept nogil:
        cdef uint64_t slot
        cdef Py_ssize_t j
        if self.empty:
            return v
        slot = (v * M2) >> self.shift
        if self.state[slot] == 1:
            return self.owner[slot] if self.key[slot] == v else v
        if self.state[slot] == 0:
            return v
        j = sorted_find(self.over_key, v)
        return self.over_owner[j] if j >= 0 else v


def route(Owners owners, bint load_balancers, uint64_t lb_token, uint64_t lb_key, int shards, dict c,
          double previous, uint8_t[::1] shard, double[::1] now, int64_t[::1] order, int64_t[::1] bounds):
    """Fill ``shard`` (each packet's shard), ``now`` (the clock: running maximum of the timestamps,
    from ``previous``), ``order`` (the rows grouped by shard, capture order within a shard) and
    ``bounds`` (shard k's rows are order[bounds[k]:bounds[k + 1]]). Returns how many first fragments
    of quoted ICMP errors the batch holds (their later fragments need ``Router``'s table)."""
    cdef const double[::1] ts = c["ts"]
    cdef const uint8_t[::1] l3 = c["l3"]
    cdef const uint64_t[::1] src_hi = c["src_hi"]
    cdef const uint64_t[::1] src_lo = c["src_lo"]
    cdef const uint64_t[::1] dst_hi = c["dst_hi"]
    cdef const uint64_t[::1] dst_lo = c["dst_lo"]
    cdef const uint8_t[::1] proto = c["proto"]
    cdef const int16_t[::1] icmp_type = c["icmp_type"]
    cdef const uint16_t[::1] frag_offset = c["frag_offset"]
    cdef const uint8_t[::1] more_fragments = c["more_fragments"]
    cdef const uint8_t[::1] inner_l3 = c["inner_l3"]
    cdef const uint64_t[::1] inner_src_hi = c["inner_src_hi"]
    cdef const uint64_t[::1] inner_src_lo = c["inner_src_lo"]
    cdef const uint64_t[::1] inner_dst_hi = c["inner_dst_hi"]
    cdef const uint64_t[::1] inner_dst_lo = c["inner_dst_lo"]
    cdef Py_ssize_t n = ts.shape[0], i, k
    cdef uint64_t a, b, lo, hi, key
    cdef double clock = previous
    cdef Py_ssize_t follow = 0
    if not (shard.shape[0] == now.shape[0] == order.shape[0] == n) or bounds.shape[0] != shards + 1 \
            or not 1 <= shards <= 255:
        raise ValueError("route: output arrays of the wrong size")
    for name, col in c.items():
        if len(col) != n:
            raise ValueError(f"route: packet column {name!r} has {len(col)} rows, not {n}")
    with nogil:
        bounds[:] = 0
        for i in range(n):
            if ts[i] > clock:
                clock = ts[i]
            now[i] = clock
            if (proto[i] == 1 or proto[i] == 58) and icmp_error(proto[i], icmp_type[i]) \
                    and frag_offset[i] == 0 and inner_l3[i] != 0:
                a = owners.find(address_value(inner_l3[i], inner_src_hi[i], inner_src_lo[i]))
                b = owners.find(address_value(inner_l3[i], inner_dst_hi[i], inner_dst_lo[i]))
                if more_fragments[i] != 0:
                    follow += 1
            else:
                a = owners.find(address_value(l3[i], src_hi[i], src_lo[i]))
                b = owners.find(address_value(l3[i], dst_hi[i], dst_lo[i]))
            if load_balancers and (a == lb_token or b == lb_token):
                key = lb_key
            else:
                lo = a if a < b else b
                hi = b if a < b else a
                key = (lo * M1) ^ (hi * M2)
                key = key ^ (key >> 29)
            k = <Py_ssize_t>((((key >> 32) * <uint64_t>shards) >> 32))
            shard[i] = <uint8_t>k
            bounds[k + 1] += 1
        for k in range(shards):
            bounds[k + 1] += bounds[k]
        group_rows(shard, bounds, order)
    return follow


cdef void group_rows(const uint8_t[::1] shard, const int64_t[::1] bounds, int64_t[::1] order) noexcept nogil:
    """A counting sort: the rows of each shard at its place, in capture order."""
    cdef int64_t at[256]
    cdef Py_ssize_t i, k
    for k in range(bounds.shape[0] - 1):
        at[k] = bounds[k]
    for i in range(shard.shape[0]):
        order[at[shard[i]]] = i
        at[shard[i]] += 1


def grouped(const uint8_t[::1] shard, int shards, int64_t[::1] order, int64_t[::1] bounds):
    """``order`` and ``bounds`` of :func:`route` for given shard numbers (all below ``shards``)."""
    cdef Py_ssize_t i, k
    if order.shape[0] != shard.shape[0] or bounds.shape[0] != shards + 1 or not 1 <= shards <= 255:
        raise ValueError("grouped: output arrays of the wrong size")
    bounds[:] = 0
    for i in range(shard.shape[0]):
        if shard[i] >= shards:
            raise ValueError(f"grouped: shard {shard[i]} of row {i} is not below {shards}")
        bounds[shard[i] + 1] += 1
    for k in range(shards):
        bounds[k + 1] += bounds[k]
    group_rows(shard, bounds, order)
