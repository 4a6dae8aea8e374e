"""Type stub for the compiled classifier (sgdp/_fastmatch.pyx)."""

import numpy as np
import numpy.typing as npt

from sgdp.engine.compiler import RuleTable, TupleSpace

def key_hashes(
    l3: npt.NDArray[np.uint8],
    src_hi: npt.NDArray[np.uint64],
    src_lo: npt.NDArray[np.uint64],
    dst_hi: npt.NDArray[np.uint64],
    dst_lo: npt.NDArray[np.uint64],
    sport: npt.NDArray[np.uint16],
    dport: npt.NDArray[np.uint16],
    proto: npt.NDArray[np.uint8],
) -> npt.NDArray[np.uint64]: ...

def lookup_stats(reset: bool = True) -> dict[str, float] | None: ...

def place(
    l3: npt.NDArray[np.uint8],
    ls: npt.NDArray[np.int64],
    ld: npt.NDArray[np.int64],
    lsp: npt.NDArray[np.int64],
    ldp: npt.NDArray[np.int64],
    pmask: npt.NDArray[np.uint8],
    pvalue: npt.NDArray[np.uint8],
    src_hi: npt.NDArray[np.uint64],
    src_lo: npt.NDArray[np.uint64],
    dst_hi: npt.NDArray[np.uint64],
    dst_lo: npt.NDArray[np.uint64],
    sport: npt.NDArray[np.uint16],
    dport: npt.NDArray[np.uint16],
    address_step: int,
    bucket_limit: int,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...

def default_bits(n_rules: int) -> int: ...

def build_many(
    store: RuleTable,
    rows: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    address_step: int,
    bucket_limit: int,
) -> list[TupleClassifier]: ...

def chain(parts: list[TupleClassifier], offsets: npt.NDArray[np.int64], ordered: bool = ...) -> TupleClassifier: ...

class TupleClassifier:
    n_rules: int
    n_tuples: int
    n_slots: int
    n_classes: int
    n_bits: int
    def __init__(self, table: RuleTable | None, space: TupleSpace | None) -> None: ...
    @property
    def nbytes(self) -> int: ...
    def classify(
        self,
        l3: npt.NDArray[np.uint8],
        src_hi: npt.NDArray[np.uint64],
        src_lo: npt.NDArray[np.uint64],
        dst_hi: npt.NDArray[np.uint64],
        dst_lo: npt.NDArray[np.uint64],
        sport: npt.NDArray[np.uint16],
        dport: npt.NDArray[np.uint16],
        proto: npt.NDArray[np.uint8],
        out: npt.NDArray[np.int32],
    ) -> None: ...
