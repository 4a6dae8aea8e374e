"""The compiled dataplane alone, as CPU time, A/B against another checkout, interleaved.

    python benchmarks/dataplane_cpu.py WORK [--baseline OTHER_CHECKOUT] [--rounds 3] [--reps 2]
                                            [--batches N]

WORK is the folder of ``sgdp bench generate --out WORK`` (topology.yaml, capture-generated.pcap,
capture-uniform.pcap). Each round runs, as its own process, this checkout and then the baseline
(a second checkout of sgdp, built in place, first on the child's ``PYTHONPATH``) over each capture:
the capture is read into batches first, then a fresh engine evaluates every batch ``--reps`` times;
the figure is the CPU time of the evaluation alone (``time.process_time``: other jobs on a shared
machine slow it less than they slow the wall clock), best of the reps. Prints each process's
figure and, per capture, the best over the rounds and the ratio baseline / this.

Under ``valgrind --tool=callgrind --toggle-collect='*Dataplane_8run*'`` (with ``--child``, one
process, ``--batches 4``) it counts the instructions of ``Dataplane.run``, a figure that other
jobs do not move at all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(work: str, capture: str, reps: int, batches: int) -> None:
    from sgdp.capture import read_batches
    from sgdp.engine.fast import FastEngine
    from sgdp.topology import read_structured_file, topology_from_data

    path = os.path.join(work, "topology.yaml")
    topo = topology_from_data(read_structured_file(path, "topology"), path)
    todo = []
    for batch in read_batches([os.path.join(work, f"capture-{capture}.pcap")], 1 << 16):
        todo.append(batch)
        if batches and len(todo) >= batches:
            break
    best = float("inf")
    for _ in range(reps):
        engine = FastEngine(topo)
        start = time.process_time()
        for batch in todo:
            engine.process(batch)
        best = min(best, time.process_time() - start)
    n = sum(len(b) for b in todo)
    print(f"{best:.4f} {n}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", help="the folder of `sgdp bench generate --out WORK`")
    ap.add_argument("--baseline", help="a second sgdp checkout (built in place)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batches", type=int, default=0, help="only the first N batches of 65,536 packets (0: all)")
    ap.add_argument("--captures", default="generated,uniform")
    ap.add_argument("--child", metavar="CAPTURE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.work, args.child, args.reps, args.batches)
        return 0
    sides = [("this", ROOT)] + ([("baseline", os.path.abspath(args.baseline))] if args.baseline else [])
    best: dict[tuple[str, str], float] = {}
    for r in range(args.rounds):
        for capture in args.captures.split(","):
            for name, checkout in sides:
                env = dict(os.environ, PYTHONPATH=checkout + os.pathsep + os.environ.get("PYTHONPATH", ""))
                out = subprocess.run([sys.executable, os.path.abspath(__file__), args.work, "--child", capture,
                                      "--reps", str(args.reps), "--batches", str(args.batches)],
                                     capture_output=True, text=True, check=True, env=env).stdout.split()
                cpu, n = float(out[0]), int(out[1])
                best[name, capture] = min(best.get((name, capture), float("inf")), cpu)
                print(f"round {r + 1} {capture:9s} {name:8s} {cpu:.3f} s CPU, {n / cpu / 1e6:.2f} Mpps", flush=True)
    for capture in args.captures.split(","):
        line = f"best of {args.rounds}: {capture:9s} this {best['this', capture]:.3f} s"
        if args.baseline:
            line += f", baseline {best['baseline', capture]:.3f} s, baseline / this {best['baseline', capture] / best['this', capture]:.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
