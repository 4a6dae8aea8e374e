# cython: language_level=3
"""The YAML files people write, read straight off libyaml's C parser into Python data.

:func:`load` takes one document of mappings, sequences and scalars and builds the dicts, lists,
strings, integers, booleans and ``None`` of it with no Python object per parser event and without
importing PyYAML. It is a fast path only: for anything it does not take — anchors, aliases,
explicit tags, nesting deeper than ``max_depth``, a key twice in a mapping, a collection or null
as a key, a plain scalar that YAML 1.1 could read as a float, a timestamp, a merge key or an
integer other than a plain decimal one, a second document, any parse error — it returns
``unusual`` and the caller reads the file with PyYAML's bounded loader, so every value the fast
path gives is the one PyYAML gives and every message is the loader's own.

Plain scalars are resolved as PyYAML's SafeLoader resolves them (YAML 1.1): ``null``, ``Null``,
``NULL``, ``~`` and the empty scalar are None; ``yes``/``no``, ``true``/``false``, ``on``/``off``
(each in lower case, capitalised or upper case) are booleans; a decimal integer without a leading
zero or ``_`` is an int; a scalar that could be any other number or a timestamp (a test holds the
set against PyYAML's resolver) goes to the slow path; the rest are strings. Quoted and block
scalars are strings.
"""

cdef extern from "yaml.h" nogil:
    ctypedef enum yaml_event_type_t:
        YAML_NO_EVENT
        YAML_STREAM_START_EVENT
        YAML_STREAM_END_EVENT
        YAML_DOCUMENT_START_EVENT
        YAML_DOCUMENT_END_EVENT
        YAML_ALIAS_EVENT
        YAML_SCALAR_EVENT
        YAML_SEQUENCE_START_EVENT
        YAML_SEQUENCE_END_EVENT
        YAML_MAPPING_START_EVENT
        YAML_MAPPING_END_EVENT

    ctypedef enum yaml_scalar_style_t:
        YAML_ANY_SCALAR_STYLE
        YAML_PLAIN_SCALAR_STYLE

    # the members of libyaml's anonymous structs that are read here (only ever reached through
    # yaml_event_t, never declared as variables, so these names do not reach the C code)
    ctypedef struct _scalar_data "__sgdp_scalar_data":
        unsigned char* anchor
        unsigned char* tag
        unsigned char* value
        size_t length
        int plain_implicit
        yaml_scalar_style_t style

    ctypedef struct _collection_data "__sgdp_collection_data":
        unsigned char* anchor
        unsigned char* tag

    ctypedef union _event_data "__sgdp_event_data":
        _scalar_data scalar
        _collection_data sequence_start
        _collection_data mapping_start

    ctypedef struct yaml_event_t:
        yaml_event_type_t type
        _event_data data

    ctypedef struct yaml_parser_t:
        pass

    int yaml_parser_initialize(yaml_parser_t* parser)
    void yaml_parser_delete(yaml_parser_t* parser)
    void yaml_parser_set_input_string(yaml_parser_t* parser, const unsigned char* input, size_t size)
    int yaml_parser_parse(yaml_parser_t* parser, yaml_event_t* event)
    void yaml_event_delete(yaml_event_t* event)


cdef dict _WORDS = {
    "": None, "~": None, "null": None, "Null": None, "NULL": None,
    "yes": True, "Yes": True, "YES": True, "true": True, "True": True, "TRUE": True,
    "on": True, "On": True, "ON": True,
    "no": False, "No": False, "NO": False, "false": False, "False": False, "FALSE": False,
    "off": False, "Off": False, "OFF": False,
}
_NUMBER_LIKE = None  # compiled on first use: see _number_like


def _number_like():
    """A superset of the plain scalars, starting with a sign, a digit or a dot, that YAML 1.1 reads
    as an integer, a float or a timestamp: every integer form (binary, octal, decimal, hex,
    base 60), every float form (with a dot, an exponent, base 60, .inf, .nan), and any scalar that
    starts like a date. Being a superset is what matters: a scalar outside it is a string."""
    import re

    global _NUMBER_LIKE
    if _NUMBER_LIKE is None:
        _NUMBER_LIKE = re.compile(
            r"[-+]?(?:[0-9_:]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9_]*)?"
            r"|0[xX][0-9a-fA-F_]*|0[bB][01_]*|\.(?:inf|Inf|INF|nan|NaN|NAN))\Z"
            r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9]")
    return _NUMBER_LIKE


cdef object _plain(const unsigned char* s, size_t n, dict memo, object unusual, int max_digits):
    """A plain scalar's value, or ``unusual``."""
    cdef size_t i
    cdef bint digits = n > 0
    text = s[:n].decode("utf-8")
    value = memo.get(text, unusual)
    if value is not unusual:
        return value
    # the first characters of the plain scalars that YAML 1.1 may read as something other than a
    # string (booleans, nulls, numbers, timestamps, the merge key "<<" and the value key "=")
    if n == 0 or s[0] in b"yYnNtTfFoO~-+0123456789.<=":
        for i in range(n):
            if s[i] < 48 or s[i] > 57:
                digits = False
                break
        if digits and (s[0] != 48 or n == 1):  # a decimal integer without a leading zero
            if <int>n > max_digits:
                return unusual
            value = int(text)
        elif text in _WORDS:
            value = _WORDS[text]
        elif s[0] in b"-+0123456789.":
            if _number_like().match(text) is not None:
                return unusual
            value = text
        elif text == "<<" or text == "=":
            return unusual
        else:
            value = text
    else:
        value = text
    memo[text] = value
    return value


def load(str text, object unusual, int max_depth, int max_digits):
    """The document of ``text`` as Python data, or ``unusual`` (see the module's text)."""
    cdef yaml_parser_t parser
    cdef yaml_event_t event
    cdef bytes data = text.encode("utf-8")
    cdef list stack = []  # open collections
    cdef list keys = []   # per open collection: unusual for a sequence, else the pending key or None
    cdef dict memo = {}   # plain scalar text -> its value
    cdef object result = unusual, value, key, top
    cdef Py_ssize_t last
    cdef int state = 0    # 0: before the stream, 1: before the document, 2: in it, 3: after it
    cdef yaml_event_type_t kind
    if not yaml_parser_initialize(&parser):
        return unusual
    try:
        # the encoding is left to libyaml's detection, as PyYAML leaves it: the detection is what
        # takes a leading byte-order mark off (and the scanner a second one)
        yaml_parser_set_input_string(&parser, <const unsigned char*><char*>data, len(data))
        while True:
            if not yaml_parser_parse(&parser, &event):
                return unusual
            try:
                kind = event.type
                if state == 0 or state == 1:
                    if kind != (YAML_STREAM_START_EVENT if state == 0 else YAML_DOCUMENT_START_EVENT):
                        return unusual
                    state += 1
                    continue
                if state == 3:
                    return result if kind == YAML_STREAM_END_EVENT else unusual  # a second document
                if kind == YAML_SCALAR_EVENT:
                    if event.data.scalar.anchor != NULL or event.data.scalar.tag != NULL:
                        return unusual
                    if event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE:
                        value = _plain(event.data.scalar.value, event.data.scalar.length, memo, unusual, max_digits)
                        if value is unusual:
                            return unusual
                    else:
                        value = (<char*>event.data.scalar.value)[:event.data.scalar.length].decode("utf-8")
                elif kind == YAML_MAPPING_START_EVENT or kind == YAML_SEQUENCE_START_EVENT:
                    if kind == YAML_MAPPING_START_EVENT:
                        if event.data.mapping_start.anchor != NULL or event.data.mapping_start.tag != NULL:
                            return unusual
                    elif event.data.sequence_start.anchor != NULL or event.data.sequence_start.tag != NULL:
                        return unusual
                    if len(stack) >= max_depth:
                        return unusual
                    if kind == YAML_MAPPING_START_EVENT:
                        stack.append({})
                        keys.append(None)
                    else:
                        stack.append([])
                        keys.append(unusual)
                    continue
                elif kind == YAML_MAPPING_END_EVENT or kind == YAML_SEQUENCE_END_EVENT:
                    value = stack.pop()
                    keys.pop()
                elif kind == YAML_DOCUMENT_END_EVENT:
                    if stack:
                        return unusual
                    state = 3
                    continue
                else:  # an alias, or anything unexpected
                    return unusual
                if not stack:
                    result = value
                    continue
                last = len(stack) - 1  # (no negative indices: the build turns wraparound off)
                top = stack[last]
                key = keys[last]
                if key is unusual:
                    (<list>top).append(value)
                elif key is None:
                    if isinstance(value, (dict, list)) or value is None or value in top:
                        return unusual  # a collection or null as a key, or a key twice
                    keys[last] = (value,)
                else:
                    (<dict>top)[(<tuple>key)[0]] = value
                    keys[last] = None
            finally:
                yaml_event_delete(&event)
    except (UnicodeDecodeError, ValueError, OverflowError):
        return unusual
    finally:
        yaml_parser_delete(&parser)
