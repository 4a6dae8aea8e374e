# cython: language_level=3
"""Verdict rows formatted as CSV or JSON lines, in compiled code (replay writes millions of rows).

Names (verdicts, reasons, instances, directions, groups, rules) arrive already encoded — CSV-quoted
or JSON-quoted by sgdp/report.py — as one bytes blob with offsets, so the loop only copies bytes and
formats integers.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize


# "00" "01" ... "99": two digits per table look-up (half the divisions of one digit at a time)
cdef const char* DIGITS2 = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"


cdef inline Py_ssize_t put_uint(char* out, Py_ssize_t pos, uint64_t v) noexcept nogil:
    cdef char tmp[24]
    cdef int k = 24, d
    while v >= 100:
        d = <int>(v % 100) * 2
        v //= 100
        k -= 2
        tmp[k] = DIGITS2[d]
        tmp[k + 1] = DIGITS2[d + 1]
    if v >= 10:
        d = <int>v * 2
        k -= 2
        tmp[k] = DIGITS2[d]
        tmp[k + 1] = DIGITS2[d + 1]
    else:
        k -= 1
        tmp[k] = <char>(c'0' + v)
    memcpy(out + pos, tmp + k, 24 - k)
    return pos + 24 - k


cdef inline Py_ssize_t put_int(char* out, Py_ssize_t pos, int64_t v) noexcept nogil:
    if v < 0:
        out[pos] = c'-'
        return put_uint(out, pos + 1, <uint64_t>0 - <uint64_t>v)  # (-v overflows for the smallest int64)
    return put_uint(out, pos, <uint64_t>v)


cdef inline Py_ssize_t put_frac9(char* out, Py_ssize_t pos, uint32_t nsec) noexcept nogil:
    """The last nine digits of ``nsec``, with leading zeros (it is below 10**9 from every reader)."""
    cdef int k, d
    for k in range(7, 0, -2):
        d = <int>(nsec % 100) * 2
        nsec //= 100
        out[pos + k] = DIGITS2[d]
        out[pos + k + 1] = DIGITS2[d + 1]
    out[pos] = <char>(c'0' + nsec % 10)
    return pos + 9


cdef inline Py_ssize_t put_name(char* out, Py_ssize_t pos, const char* blob, const int64_t* offs,
                                Py_ssize_t idx) noexcept nogil:
    # idx is a valid table index (report._check_codes), offs has len(table) + 1 entries
    cdef int64_t a = offs[idx], b = offs[idx + 1]
    memcpy(out + pos, blob + a, b - a)
    return pos + (b - a)


cdef inline Py_ssize_t put_lit(char* out, Py_ssize_t pos, const char* lit, Py_ssize_t n) noexcept nogil:
    memcpy(out + pos, lit, n)
    return pos + n


def format_rows(bint jsonl, int64_t first, const int64_t[::1] ts_sec, const uint32_t[::1] ts_nsec,
                const uint8_t[::1] verdict, const uint8_t[::1] reason, const int32_t[::1] instance,
                const uint8_t[::1] direction, const int32_t[::1] group, const int32_t[::1] rule,
                tuple tables, Py_ssize_t row_bound, uint8_t[::1] out=None):
    """The rows as bytes. ``tables`` holds six (blob: bytes, offsets: int64 array) pairs, in column
    order; empty names (index -1) are the table's last entry. ``row_bound`` bounds one row's length
    (report.py computes it from the longest names). With ``out`` (a writeable buffer of at least
    ``len(verdict) * row_bound + 1`` bytes, kept by the caller from batch to batch), the rows are
    written into it and their length in bytes is returned: no allocation, no copy into a bytes
    object (a new buffer of some MB a batch costs the kernel's page zeroing, and the copy a pass)."""
    cdef Py_ssize_t n = verdict.shape[0], i, pos = 0
    if not (ts_sec.shape[0] == ts_nsec.shape[0] == reason.shape[0] == instance.shape[0] == direction.shape[0]
            == group.shape[0] == rule.shape[0] == n):
        raise ValueError("format_rows: columns of different lengths")
    cdef const char* blobs[6]
    cdef const int64_t* offs[6]
    cdef Py_ssize_t last[6]
    cdef int t
    cdef const int64_t[::1] o
    keep = []
    for t in range(6):
        blob, offsets = tables[t]
        keep.append((blob, offsets))
        blobs[t] = <const char*>blob
        o = offsets
        offs[t] = &o[0]
        last[t] = o.shape[0] - 2  # index of the empty name
    cdef char* buf
    if out is not None:
        if out.shape[0] < n * row_bound + 1:
            raise ValueError("format_rows: the output buffer is too small")
        buf = <char*>&out[0]
    else:
        buf = <char*>malloc(n * row_bound + 1)  # never more than row_bound bytes a row
        if buf == NULL:
            raise MemoryError()
    cdef char sec_text[24]  # the seconds of the last row, formatted
    cdef Py_ssize_t sec_len = 0
    cdef int64_t last_sec = 0
    with nogil:
        for i in range(n):
            if jsonl:
                pos = put_lit(buf, pos, b'{"index":', 9)
                pos = put_int(buf, pos, first + i)
                pos = put_lit(buf, pos, b',"ts":', 6)
            else:
                pos = put_int(buf, pos, first + i)
                buf[pos] = c','
                pos += 1
            if ts_sec[i] != last_sec or sec_len == 0:  # consecutive packets mostly share their second
                last_sec = ts_sec[i]
                sec_len = put_int(sec_text, 0, last_sec)
            memcpy(buf + pos, sec_text, sec_len)
            pos += sec_len
            buf[pos] = c'.'
            pos = put_frac9(buf, pos + 1, ts_nsec[i])
            if jsonl:
                pos = put_lit(buf, pos, b',"verdict":', 11)
            else:
                buf[pos] = c','
                pos += 1
            pos = put_name(buf, pos, blobs[0], offs[0], verdict[i])
            pos = put_lit(buf, pos, b',"reason":', 10) if jsonl else put_lit(buf, pos, b',', 1)
            pos = put_name(buf, pos, blobs[1], offs[1], reason[i])
            pos = put_lit(buf, pos, b',"instance":', 12) if jsonl else put_lit(buf, pos, b',', 1)
            pos = put_name(buf, pos, blobs[2], offs[2], instance[i] if instance[i] >= 0 else last[2])
            pos = put_lit(buf, pos, b',"direction":', 13) if jsonl else put_lit(buf, pos, b',', 1)
            pos = put_name(buf, pos, blobs[3], offs[3], direction[i])
            pos = put_lit(buf, pos, b',"security_group":', 18) if jsonl else put_lit(buf, pos, b',', 1)
            pos = put_name(buf, pos, blobs[4], offs[4], group[i] if group[i] >= 0 else last[4])
            pos = put_lit(buf, pos, b',"rule":', 8) if jsonl else put_lit(buf, pos, b',', 1)
            pos = put_name(buf, pos, blobs[5], offs[5], rule[i] if rule[i] >= 0 else last[5])
            if jsonl:
                buf[pos] = c'}'
                pos += 1
            buf[pos] = c'\n'
            pos += 1
    if out is not None:
        del keep
        return pos
    try:
        return PyBytes_FromStringAndSize(buf, pos)
    finally:
        free(buf)
        del keep
