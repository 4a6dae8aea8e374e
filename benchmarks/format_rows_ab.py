"""The compiled CSV formatter alone (``sgdp.pipeline._writers.format_rows``), A/B between builds.

    python benchmarks/format_rows_ab.py [OTHER_CHECKOUT]

Formats 2,000,000 verdict rows (31 batches of 65,536) of the generated benchmark's shape — 274
instance names, 20 groups, 1,000 rules, timestamps 1 ms apart — into one buffer, best of 7, with
this checkout's compiled module and, given another checkout built in place, with that one's, each
in its own process, alternating, three rounds. Prints each and the best of each side.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(module_path: str) -> float:
    import importlib.util

    import numpy as np

    from sgdp.capture import DIRECTIONS, REASONS, VERDICTS
    from sgdp.pipeline.writers import _blob, _csv

    spec = importlib.util.spec_from_file_location("sgdp.pipeline._writers", module_path)
    writers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writers)  # type: ignore[union-attr]
    n = 65536
    rng = np.random.default_rng(1)
    tables = [list(VERDICTS), list(REASONS), [f"ecs{i:03d}" for i in range(274)] + [""], list(DIRECTIONS),
              [f"sg-{i}" for i in range(20)] + [""], [f"rule-{i}" for i in range(1000)] + [""]]
    blobs = tuple(_blob([_csv(t) for t in table]) for table in tables)
    bound = 200 + sum(max(len(_csv(t).encode()) for t in table) for table in tables)
    cols = ((1_700_000_000 + np.arange(n) // 1000).astype(np.int64), rng.integers(0, 10**9, n).astype(np.uint32),
            rng.integers(0, 2, n).astype(np.uint8), rng.integers(0, 7, n).astype(np.uint8),
            rng.integers(-1, 274, n).astype(np.int32), rng.integers(0, 3, n).astype(np.uint8),
            rng.integers(-1, 20, n).astype(np.int32), rng.integers(-1, 1000, n).astype(np.int32))
    buf = np.empty(n * bound + 1, np.uint8)
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for b in range(31):
            writers.format_rows(False, b * n, *cols, blobs, bound, buf)
        best = min(best, time.perf_counter() - start)
    return best


def module_of(checkout: str) -> str:
    found = glob.glob(os.path.join(checkout, "sgdp", "pipeline", "_writers*.so"))
    if not found:
        sys.exit(f"{checkout}: no compiled sgdp/pipeline/_writers module (build it in place first)")
    return found[0]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(f"{child(sys.argv[2]):.4f}")
        return 0
    sides = [("this", ROOT)] + ([("other", os.path.abspath(sys.argv[1]))] if len(sys.argv) > 1 else [])
    best: dict[str, float] = {}
    for _ in range(3):
        for name, checkout in sides:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", module_of(checkout)],
                                 capture_output=True, text=True, check=True).stdout.strip()
            best[name] = min(best.get(name, float("inf")), float(out))
            print(f"{name:5s} {checkout}: 2,000,000 rows formatted in {out} s")
    print("best of 3: " + ", ".join(f"{name} {t:.3f} s" for name, t in best.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
