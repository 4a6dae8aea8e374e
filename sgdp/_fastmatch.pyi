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

class TupleClassifier:
    n_rules: int
    n_tuples: int
    n_slots: int
    n_classes: int
    n_bits: int
    def __init__(self, table: RuleTable, space: TupleSpace) -> None: ...
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
