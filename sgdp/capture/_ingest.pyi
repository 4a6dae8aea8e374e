"""Type stub of the compiled capture parser (sgdp/_ingest.pyx)."""

from typing import Final

import numpy as np

RESULT: Final[dict[str, int]]    # feed results: full, need, end, error
FLAGS: Final[dict[str, int]]     # bits of the "flags" column: which fields were decoded
DETAILS: Final[dict[str, int]]   # codes of the "detail" column: why a row is not ok
ERRORS: Final[dict[str, int]]    # codes of Parser.err: why the capture stopped
LIMITS: Final[dict[str, int]]    # max_caplen, max_block, max_interfaces
COLUMNS: Final[tuple[tuple[str, str], ...]]   # (name, dtype) of every column a Batch holds

class Batch:
    """Columns ``COLUMNS`` of equal length >= 1, C-contiguous and writeable; ``n`` rows filled."""

    capacity: int
    n: int
    arrays: dict[str, np.ndarray]
    def __init__(self, arrays: dict[str, np.ndarray]) -> None: ...

class Parser:
    """Streaming state of one pcap/pcapng file."""

    fmt: int                 # 0 unknown yet, 1 pcap, 2 pcapng
    linktype: int            # pcap
    snaplen: int             # pcap
    n_interfaces: int        # pcapng: interfaces of the current section
    sections: int            # pcapng: section header blocks seen
    need: int                # after RESULT["need"]: bytes required from the returned position
    err: int                 # after RESULT["error"]: ERRORS code
    err_offset: int          # ... byte offset in the file
    err_a: int               # ... values the message quotes
    err_b: int
    @property
    def nano(self) -> bool: ...
    @property
    def big_endian(self) -> bool: ...
    def __init__(self) -> None: ...
    def feed(self, buf: bytes | bytearray | memoryview | np.ndarray, start: int, end: int, eof: bool, base: int,
             batch: Batch) -> tuple[int, int]: ...
