"""The scale-out benchmark: one process, two worker processes and a local Ray cluster of
two actors, interleaved on the same capture, and the coordinator's own ceiling.

    python benchmarks/run_scaleout.py --runs 5 [--out DIR] [--no-ray] [--json FILE] [--locality uniform]

It writes the workload with the command a user would type (``sgdp bench generate --out DIR``: the
274-instance generated topology and its 2M-packet capture), then ``--runs`` rounds, each running
in turn, as processes of their own:

* ``sgdp replay TOPOLOGY CAPTURE -o OUT --json --no-progress`` with ``--workers 1``,
  ``--workers 2`` and ``--ray local --workers 2``: the wall clock from just before the process
  starts to its exit, the packet phase (``elapsed_s`` of ``summary.json``: reading, routing, the
  dataplane and writing the CSV verdicts; engine build and worker or cluster start excluded) and,
  without Ray, the CPU time of the process and its workers (they are its children, joined by it);
  the verdict files of a round are compared byte for byte;
* the *ceiling*: the same replay with engines that do nothing (each packet gets the first verdict
  code, no state), with one process and with two workers: what reading, routing, copying,
  merging and writing the verdicts cost on their own, in packets per second;
* the *CPU of the packet phase by process*: the same replay with ``--workers 1`` and ``2`` run
  inside a child of the benchmark, which takes the CPU seconds of its own threads (the
  coordinator) and of the worker processes (``/proc``, Linux) from the first batch to the last;
* after the rounds, the CPU seconds of each step of the packet phase (read, route, engine,
  format, summary) run one after the other in one process.

Prints a Markdown table: median and spread (min-max) of each figure, and the ratios of the medians
to one process. Bytes moved per packet are computed from the executors' slot layout.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SGDP = [sys.executable, "-m", "sgdp"]


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its waited-for descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def replay(topology: str, capture: str, out: str, extra: list[str]) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    wall, cpu = timed(SGDP + ["replay", topology, capture, "-o", out, "--json", "--no-progress"] + extra)
    with open(os.path.join(out, "summary.json")) as fh:
        summary = json.load(fh)
    return {"wall": wall, "cpu": cpu, "packets": summary["packets"], "phase": summary["elapsed_s"]}


def ceiling_child(workers: int, topology: str, capture: str, out: str) -> None:
    """Run one replay in this process with engines that do nothing; print the packet phase."""
    import numpy as np

    import sgdp.pipeline.run as run
    from sgdp.capture import VerdictBatch
    from sgdp.pipeline.executors import VERDICT_DTYPES, EngineSpec

    class NullEngine:
        name = "null"

        def __init__(self, names):
            self.names = names

        def process(self, batch):
            return VerdictBatch(len(batch))

        def process_into(self, cols, out, rows):
            for k in VERDICT_DTYPES:
                out[k][rows] = -1 if out[k].dtype == np.int32 else 0

        def rule_hits(self):
            return []

    class NullSpec(EngineSpec):
        def build(self):
            from sgdp.engine import names_for

            return NullEngine(names_for(self.topology))

    run.engine_spec = lambda path, topo, name, timeline=None: NullSpec(topo, name)
    result = run.replay(topology, [capture], out_dir=out, workers=workers)
    print(json.dumps({"phase": result.summary["elapsed_s"], "packets": result.summary["packets"]}))


def ceiling(topology: str, capture: str, out: str, workers: int) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--ceiling-child", str(workers),
                           topology, capture, out], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_child(workers: int, topology: str, capture: str, out: str) -> None:
    """Run one replay in this process; print the CPU seconds of the packet phase spent by this
    process (the coordinator: every thread) and by the worker processes (Linux: /proc)."""
    import sgdp.pipeline.executors as executors
    import sgdp.pipeline.run as run

    def worker_cpu(pid: int) -> float:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    figures: dict[str, float] = {}
    for cls in (executors.LocalExecutor, executors.ProcessExecutor):
        def measured(self, batches, _run=cls.run):
            pids = [p.pid for p in getattr(self, "procs", [])]
            w0 = [worker_cpu(p) for p in pids]
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            yield from _run(self, batches)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            figures["coordinator"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            figures["workers"] = sum(worker_cpu(p) - w for p, w in zip(pids, w0))
        cls.run = measured
    result = run.replay(topology, [capture], out_dir=out, workers=workers)
    figures["phase"] = result.summary["elapsed_s"]
    print(json.dumps(figures))


def cpu_figures(topology: str, capture: str, out: str, workers: int) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--cpu-child", str(workers),
                           topology, capture, out], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def steps_child(topology: str, capture: str) -> None:
    """CPU seconds of each step of the packet phase, one after the other in this process (best of
    two passes): what the single process does, and what the coordinator adds."""
    import numpy as np

    from sgdp.capture import PACKET_COLUMNS, read_batches
    from sgdp.engine import make_engine
    from sgdp.pipeline.shard import Router, ShardKeys
    from sgdp.pipeline.writers import Summary, VerdictWriter
    from sgdp.topology import read_structured_file, topology_from_data

    topo = topology_from_data(read_structured_file(topology, "topology"), topology)
    best: dict[str, float] = {}
    for _ in range(2):
        steps: dict[str, float] = {}
        t = time.process_time()
        for _ in read_batches([capture], 1 << 16):  # streamed, as a replay reads: the blocks are reused
            pass
        steps["read (decode into columns)"] = time.process_time() - t
        batches = list(read_batches([capture], 1 << 16))  # kept for the steps below
        router, clock, routed = Router(ShardKeys([topo]), 2), float("-inf"), []
        now_slot, order_slot = np.empty(1 << 16, np.float64), np.empty(1 << 16, np.int64)
        t = time.process_time()
        for b in batches:  # as the worker processes' executor: the clock and order written into the slot
            _, now, order, _ = router.grouped(b, clock, now_slot[:len(b)], order_slot[:len(b)])
            clock = float(now[-1])
        steps["route (shards, clock, grouping) into a slot"] = time.process_time() - t
        for b in batches:
            _, now, order, _ = router.grouped(b, clock)
            clock = float(now[-1])
            routed.append((now, order))
        engine = make_engine(topo, "fast")
        t = time.process_time()
        verdicts = [engine.process(b) for b in batches]
        steps["engine (fast)"] = time.process_time() - t
        writer = VerdictWriter(os.path.dirname(capture), "csv", engine.names, path=os.devnull)
        t = time.process_time()
        for b, v in zip(batches, verdicts):
            writer.write(b, v)
        writer.close()
        steps["format + write CSV"] = time.process_time() - t
        summary = Summary("fast")
        t = time.process_time()
        for b, v in zip(batches, verdicts):
            summary.add(v, b)
            summary.note_unmodelled(b, v)
        steps["summary counts"] = time.process_time() - t
        best = {k: min(v, best.get(k, v)) for k, v in steps.items()}
    print(json.dumps(best))


def bytes_per_packet() -> dict[str, int]:
    from sgdp.capture import PACKET_COLUMNS
    from sgdp.pipeline.executors import VERDICT_DTYPES, _slot_layout

    _, _, _, out_size = _slot_layout(1 << 16)
    header = sum(dt.itemsize for dt in PACKET_COLUMNS.values())
    verdicts = out_size // (1 << 16)
    # workers: the header columns where the reader decoded them (shared memory, no copy), the
    # clock and the order written into the slot, the verdicts back; Ray: the batch put with its
    # order, the verdicts back
    return {"header": header, "slot_in": 16, "verdicts": verdicts,
            "workers": header + 16 + verdicts, "ray": header + 8 + verdicts}


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", help="where the workload goes (default: a temporary directory)")
    ap.add_argument("--no-ray", action="store_true", help="leave out the Ray runs")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--locality", choices=("generated", "uniform"), default="generated",
                    help="the capture: flows as generated, or spread uniformly (the engine's worst case)")
    ap.add_argument("--ceiling-child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--steps-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--cpu-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cpu_child:
        w, topology, capture, out = args.cpu_child
        cpu_child(int(w), topology, capture, out)
        return
    if args.steps_child:
        steps_child(*args.steps_child)
        return
    if args.ceiling_child:
        w, topology, capture, out = args.ceiling_child
        ceiling_child(int(w), topology, capture, out)
        return
    # the bytecode cache written first, as `pip install` does, so that no run compiles sgdp's sources
    # (where the environment sets PYTHONDONTWRITEBYTECODE, every process would)
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "sgdp")], check=True, stdout=subprocess.DEVNULL)
    work = args.out or tempfile.mkdtemp(prefix="sgdp-scaleout-")
    topology, capture = os.path.join(work, "topology.yaml"), os.path.join(work, f"capture-{args.locality}.pcap")
    if not (os.path.exists(topology) and os.path.exists(capture)):
        subprocess.run(SGDP + ["bench", "generate", "--out", work], check=True, stdout=subprocess.DEVNULL)
    variants = {"w1": ["--workers", "1"], "w2": ["--workers", "2"]}
    if not args.no_ray:
        variants["ray"] = ["--ray", "local", "--workers", "2"]
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in list(variants) + ["ceiling1", "ceiling2", "cpu1", "cpu2"]}
    loads = [os.getloadavg()[0]]
    started = time.strftime("%H:%M UTC", time.gmtime())
    for r in range(args.runs):
        for name, extra in variants.items():
            runs[name].append(replay(topology, capture, os.path.join(work, f"out-{name}"), extra))
        for k, w in (("ceiling1", 1), ("ceiling2", 2)):
            runs[k].append(ceiling(topology, capture, os.path.join(work, f"out-{k}"), w))
        for k, w in (("cpu1", 1), ("cpu2", 2)):
            runs[k].append(cpu_figures(topology, capture, os.path.join(work, f"out-{k}"), w))
        want = os.path.join(work, "out-w1", "verdicts.csv")
        for name in variants:
            if not filecmp.cmp(want, os.path.join(work, f"out-{name}", "verdicts.csv"), shallow=False):
                raise SystemExit(f"round {r + 1}: the verdicts of {name} differ from one process's")
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.runs} done (load {loads[-1]:.1f})", file=sys.stderr)
    packets = runs["w1"][0]["packets"]
    phase1 = statistics.median(x["phase"] for x in runs["w1"])
    wall1 = statistics.median(x["wall"] for x in runs["w1"])
    print(f"{packets:,} packets, {args.runs} interleaved rounds from {started}, load average "
          f"{min(loads):.1f}–{max(loads):.1f}; median (min–max); verdict files identical in every round\n")
    print("| run | packet phase (s) | vs one process | Mpps | wall, start to exit (s) | vs one process | CPU, all processes (s) | cores used (CPU ÷ wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    labels = {"w1": "`--workers 1`", "w2": "`--workers 2`", "ray": "`--ray local --workers 2`"}
    for name in variants:
        xs = runs[name]
        phase = statistics.median(x["phase"] for x in xs)
        wall = statistics.median(x["wall"] for x in xs)
        cpu = spread([x["cpu"] for x in xs], "{:.2f}") if name != "ray" else "(actors not counted)"
        used = spread([x["cpu"] / x["wall"] for x in xs], "{:.2f}") if name != "ray" else ""
        print(f"| {labels[name]} | {spread([x['phase'] for x in xs])} | {phase1 / phase:.2f}× | {packets / phase / 1e6:.2f} "
              f"| {spread([x['wall'] for x in xs], '{:.2f}')} | {wall1 / wall:.2f}× | {cpu} | {used} |")
    for k, label in (("ceiling1", "one process"), ("ceiling2", "two workers")):
        xs = [x["phase"] for x in runs[k]]
        print(f"| ceiling, engines that do nothing, {label} | {spread(xs)} | | {packets / statistics.median(xs) / 1e6:.2f} | | | | |")
    print("\nCPU seconds of the packet phase, by process (the replay run in the benchmark's own child, "
          "the coordinator's threads together; the workers from /proc):\n")
    print("| run | coordinator (s) | workers (s) | together (s) | packet phase (s) |")
    print("|---|---:|---:|---:|---:|")
    for k, label in (("cpu1", "`--workers 1`"), ("cpu2", "`--workers 2`")):
        xs = runs[k]
        print(f"| {label} | {spread([x['coordinator'] for x in xs])} | {spread([x['workers'] for x in xs])} "
              f"| {spread([x['coordinator'] + x['workers'] for x in xs])} | {spread([x['phase'] for x in xs])} |")
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--steps-child", topology, capture],
                          check=True, capture_output=True, text=True)
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    print("\nCPU seconds of each step of the packet phase, in one process, best of two passes (after the rounds):\n")
    print("| step | CPU (s) | µs per packet |")
    print("|---|---:|---:|")
    for k, v in steps.items():
        print(f"| {k} | {v:.3f} | {v / packets * 1e6:.3f} |")
    runs["steps"] = [steps]
    b = bytes_per_packet()
    print(f"\nBytes moved per packet: workers {b['workers']} ({b['header']} of header columns read where the "
          f"reader decoded them in shared memory, {b['slot_in']} of clock and row order written into the slot, "
          f"{b['verdicts']} of verdicts back), Ray {b['ray']} ({b['header']} of header columns and 8 of row order "
          f"put once, {b['verdicts']} back).")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runs": runs, "loads": loads, "bytes": b}, fh, indent=1)


if __name__ == "__main__":
    main()
