"""CPU samples of the compiled dataplane in a whole replay, this checkout against another, in turns.

    python benchmarks/replay_samples_ab.py WORK --baseline OTHER_CHECKOUT [--pairs 6]
                                           [--capture uniform] [--symbol NAME]

WORK is the folder of ``sgdp bench generate --out WORK``. Each pair runs ``sgdp replay
WORK/topology.yaml WORK/capture-CAPTURE.pcap --verdicts none`` under ``perf record`` (Linux
``perf``; Debian's package ``linux-perf``) once with this checkout and once with the baseline (a
second checkout, compiled modules built in place), each first on ``PYTHONPATH``, and counts the
samples that fell in the dataplane's and the classifier's compiled modules (``_dataplane``,
``_fastmatch``) — the CPU time of the packet loop inside the very process a user runs: fresh
memory, the reader thread beside it, nothing warmed — and, with ``--symbol``, in the functions
whose names contain NAME. Prints each pair and its ratio this / baseline. On a shared machine the
wall clock of a replay moves by a quarter from run to run; these counts move far less, and a
change that takes a tenth off the loop shows in every pair.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ("_dataplane", "_fastmatch")


def samples(checkout: str, work: str, capture: str, symbol: str | None, tmp: str) -> tuple[int, int]:
    """(samples in the compiled modules, samples in the functions named like ``symbol``) of one replay."""
    data = os.path.join(tmp, "perf.data")
    env = dict(os.environ, PYTHONPATH=checkout + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(["perf", "record", "-q", "-o", data, sys.executable, "-m", "sgdp", "replay",
                    os.path.join(work, "topology.yaml"), os.path.join(work, f"capture-{capture}.pcap"),
                    "--out", os.path.join(tmp, "out"), "--verdicts", "none"],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-n", "--sort", "dso,sym"],
                            check=True, capture_output=True, text=True).stdout
    in_modules = in_symbol = 0
    for line in report.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].endswith("%") or not fields[1].isdigit():
            continue
        count, dso, name = int(fields[1]), fields[2], fields[-1]
        if any(m in dso for m in MODULES):
            in_modules += count
            if symbol and symbol in name:
                in_symbol += count
    return in_modules, in_symbol


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", help="the folder of `sgdp bench generate --out WORK`")
    ap.add_argument("--baseline", required=True, help="a second sgdp checkout (built in place)")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--capture", default="uniform", choices=("generated", "uniform"))
    ap.add_argument("--symbol", help="also count the samples of the functions whose names contain this")
    args = ap.parse_args()
    ratios, sym_ratios = [], []
    with tempfile.TemporaryDirectory(prefix="sgdp-samples-") as tmp:
        for k in range(args.pairs):
            a, a_sym = samples(ROOT, args.work, args.capture, args.symbol, tmp)
            b, b_sym = samples(os.path.abspath(args.baseline), args.work, args.capture, args.symbol, tmp)
            ratios.append(a / b)
            line = f"pair {k + 1}: this {a}, baseline {b}, ratio {a / b:.2f}"
            if args.symbol and b_sym:
                sym_ratios.append(a_sym / b_sym)
                line += f"; {args.symbol}: {a_sym} against {b_sym}, ratio {a_sym / b_sym:.2f}"
            print(line, flush=True)
    print(f"{args.capture}: samples in {' and '.join(MODULES)}, this / baseline: median {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f})"
          + (f"; {args.symbol}: median {statistics.median(sym_ratios):.2f}" if sym_ratios else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
