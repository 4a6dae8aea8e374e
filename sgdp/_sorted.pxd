# A search in a sorted key column, for the compiled modules (header only: cimported, nothing to
# import at run time).
from libc.stdint cimport int64_t, uint64_t

ctypedef fused sorted_key:
    int64_t
    uint64_t


cdef inline Py_ssize_t sorted_find(const sorted_key[::1] keys, sorted_key v) noexcept nogil:
    """The index of ``v`` in ascending ``keys``, or -1."""
    cdef Py_ssize_t lo = 0, hi = keys.shape[0], mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < keys.shape[0] and keys[lo] == v else -1
