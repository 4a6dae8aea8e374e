"""Benchmarks behind ``sgdp bench`` (SPEC §7): measured in-process, reported as plain dicts.

``classbench``: load a ClassBench filter set and header trace (and optionally the first-match file),
build a classifier of the chosen engine, classify every header a few times and keep the best time.
``mpps`` is classification alone (headers already in memory as columns); ``build_s`` is the time to
build the classifier from the RuleTable; ``table_bytes`` the memory of its tables.

The reference engine is brute force (rules x headers comparisons, NumPy over the rules): about 1 s on
the 1k sets, 5-20 s on the 10k sets and 5-6 minutes on the 100k sets here (benchmarks/README.md);
it runs once, not best-of-N.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from sgdp._atomic import partial_file
from sgdp.errors import InputError, UsageError

FAST_REPEATS = 5


def classifier_engine(name: str | None) -> str:
    """The classifier engine that will run for a requested name (None: $SGDP_ENGINE or fast).

    Without the compiled module, ``fast`` falls back to ``reference`` with a warning, or is an error
    when ``SGDP_REQUIRE_EXTENSION=1`` (as for the dataplane engines).
    """
    name = name or os.environ.get("SGDP_ENGINE", "fast")
    if name not in ("fast", "reference"):
        raise UsageError(f"{name!r} is not an engine (choose fast or reference)")
    if name == "fast":
        try:
            import sgdp._fastmatch  # noqa: F401
        except ImportError:
            if os.environ.get("SGDP_REQUIRE_EXTENSION") == "1":
                raise UsageError("the compiled classifier (sgdp._fastmatch) is not available and SGDP_REQUIRE_EXTENSION=1") from None
            print("sgdp: warning: the compiled classifier is not available; using the reference engine", file=sys.stderr)
            return "reference"
    return name


def classbench(rules: str, trace: str, match: str | None = None, engine: str | None = None,
               repeats: int | None = None) -> dict[str, Any]:
    """Classify a ClassBench trace against a filter set; the dict holds the SPEC §7 keys.

    Keys: ``rules``, ``headers``, ``mismatches`` (None without a match file), ``mpps``, ``build_s``,
    ``table_bytes``, ``engine``; and, not printed by ``--json``, ``ns_per_packet``, ``repeats``,
    ``first_mismatches`` (up to 10 ``(header, expected, got)``).
    """
    from sgdp.bench.rulesets import load_matches, load_rules, load_trace
    from sgdp.engine import make_classifier

    engine = classifier_engine(engine)
    table = load_rules(rules)
    headers = load_trace(trace).headers
    expected = None
    if match is not None:
        expected = load_matches(match)
        if len(expected) != len(headers):
            raise InputError(f"{match}: {len(expected)} lines, but {trace} has {len(headers)} headers")
        if len(expected) and int(expected.max()) >= len(table):
            i = int(np.argmax(expected))
            raise InputError(f"{match}: line {i + 1}: filter {int(expected[i])} is past the last filter of {rules} ({len(table) - 1})")
    classifier = make_classifier(table, engine)
    if repeats is None:
        repeats = FAST_REPEATS if engine == "fast" else 1
    out = np.empty(len(headers), np.int32)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        classifier.classify(headers, out)
        best = min(best, time.perf_counter() - start)
    n = len(headers)
    result: dict[str, Any] = {
        "rules": len(table),
        "headers": n,
        "mismatches": None,
        "mpps": float(f"{n / best / 1e6:.4g}") if n and best > 0 else 0.0,  # 4 significant digits
        "build_s": round(classifier.build_s, 4),
        "table_bytes": int(classifier.table_bytes),
        "engine": engine,
        "ns_per_packet": round(best / n * 1e9, 1) if n else 0.0,
        "repeats": max(1, repeats),
        "first_mismatches": [],
    }
    if expected is not None:
        bad = np.flatnonzero(out != expected)
        result["mismatches"] = int(len(bad))
        result["first_mismatches"] = [(int(i), int(expected[i]), int(out[i])) for i in bad[:10]]
    return result


CLASSBENCH_JSON_KEYS = ("rules", "headers", "mismatches", "mpps", "build_s", "table_bytes", "engine")


# ------------------------------------------------------------------------------------ dataplane


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def dataplane(packets: int = 1_000_000, flows: int = 50_000, reference_packets: int = 20_000,
              batch_size: int = 1 << 16, repeats: int = 3) -> dict[str, Any]:
    """The dataplane on the generated topology (sgdp.capture.synth: 200 instances, 20 groups of about 50
    rules), packets already parsed: the fast engine over all packets (best of ``repeats``, each on a
    fresh engine) and the reference engine over the first ``reference_packets``, side by side; the
    two must agree on those packets row for row."""
    from sgdp.engine import fast_available
    from sgdp.topology import topology_from_data
    from sgdp.capture import PacketBatch
    from sgdp.engine import ReferenceEngine
    from sgdp.capture import generated_topology, generated_traffic

    if not fast_available():
        raise UsageError("bench dataplane compares the compiled engine with the reference engine; the compiled engine is not built")
    from sgdp.engine import FastEngine

    topo_data = generated_topology()
    topo = topology_from_data(topo_data, "generated topology")
    start = time.perf_counter()
    engine = FastEngine(topo)
    compile_s = time.perf_counter() - start
    batch = generated_traffic(topo_data, packets, flows)
    chunks = [PacketBatch({k: v[s:s + batch_size] for k, v in batch.columns.items()}) for s in range(0, packets, batch_size)]
    best = float("inf")
    for k in range(max(1, repeats)):
        fe = engine if k == 0 else FastEngine(topo)
        start = time.perf_counter()
        for chunk in chunks:
            fe.process(chunk)
        best = min(best, time.perf_counter() - start)
    m = min(reference_packets, packets)
    head = PacketBatch({k: v[:m] for k, v in batch.columns.items()})
    ref = ReferenceEngine(topo)
    start = time.perf_counter()
    want = ref.process(head)
    ref_s = time.perf_counter() - start
    got = FastEngine(topo).process(head)
    agree = all(np.array_equal(getattr(got, c), getattr(want, c)) for c in ("verdict", "reason", "instance", "direction", "group", "rule"))
    fast_pps = packets / best
    ref_pps = m / ref_s if ref_s > 0 else 0.0
    return {
        "topology": {"instances": len(topo.instances), "security_groups": len(topo.security_groups),
                     "rules": sum(len(g.rules) for g in topo.security_groups.values()), "policy_tables": len(engine.sg_tables)},
        "packets": packets, "flows": flows,
        "compile_s": round(compile_s, 3), "table_bytes": int(engine.table_bytes),
        "fast": {"mpps": round(fast_pps / 1e6, 3), "ns_per_packet": round(1e9 / fast_pps, 1)},
        "reference": {"packets": m, "mpps": round(ref_pps / 1e6, 5), "ns_per_packet": round(1e9 / ref_pps, 1) if ref_pps else None},
        "speedup": round(fast_pps / ref_pps, 1) if ref_pps else None,
        "agree": bool(agree),
        "peak_rss_mb": _peak_rss_mb(),
    }


# `sgdp replay` in a child process that reports its own peak memory: the high-water mark of its own
# address space (VmHWM, Linux), which, unlike getrusage's ru_maxrss, does not count what the child
# inherited from this (large) process before exec.
_CHILD = (
    "import sys, time\n"
    "import sgdp.pipeline.run as run\n"
    "run.PHASES = {}\n"
    "from sgdp.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "run.PHASES['exit'] = time.time()\n"
    "sys.stderr.write('sgdp-bench-phases %r\\n' % (run.PHASES,))\n"
    "try:\n"
    "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "    sys.stderr.write('sgdp-bench-peak-kb %s\\n' % hwm[0])\n"
    "except (OSError, IndexError):\n"
    "    pass\n"
    "sys.exit(rc)\n"
)

PHASE_NAMES = ("loaded", "validated", "compiled", "first_packet", "packets_done", "exit")


def run_replay_process(topology: str, capture: str, out_dir: str, engine: str = "fast",
                       verdicts: str = "csv", env: dict[str, str] | None = None,
                       cwd: str | None = None) -> dict[str, Any]:
    """``sgdp replay`` in its own process, timed from just before the process starts to its exit.

    Returns ``wall_s`` (start to exit), ``phases`` (seconds from process start to the end of each
    phase: ``loaded`` = topology file parsed, ``validated``, ``compiled`` = engine ready,
    ``first_packet`` = the first batch read, ready for the engine — the start-up —, ``packets_done``,
    ``exit``), ``packets``, ``packet_phase_mpps`` (packets over the time from the first packet to
    the last one written), ``mpps_wall`` (packets over the whole wall time) and ``peak_rss_mb`` (the
    child's own high-water mark, VmHWM). ``env`` and ``cwd``: the child's environment and working
    directory (a benchmark runs another checkout by its ``PYTHONPATH``)."""
    import ast
    import json
    import subprocess

    t0 = time.time()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, "replay", topology, capture, "-o", out_dir,
                           "--engine", engine, "--verdicts", verdicts, "--no-progress", "--json"],
                          capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise UsageError(f"bench: sgdp replay exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    summary = json.loads(proc.stdout)
    peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("sgdp-bench-peak-kb ")]
    marks = [line.split(" ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("sgdp-bench-phases ")]
    phases = {}
    if marks:
        raw = ast.literal_eval(marks[0])
        phases = {k: round(raw[k] - t0, 4) for k in PHASE_NAMES if k in raw}
    n = int(summary["packets"])
    packet_s = phases["packets_done"] - phases["first_packet"] if "packets_done" in phases and "first_packet" in phases else None
    return {"packets": n, "wall_s": round(wall, 3), "phases": phases,
            "startup_s": phases.get("first_packet"),
            "packet_phase_mpps": round(n / packet_s / 1e6, 3) if packet_s else None,
            "mpps_wall": round(n / wall / 1e6, 3) if wall > 0 else None,
            "mpps": round(summary["packets_per_s"] / 1e6, 4),
            "peak_rss_mb": round(int(peak[0]) / 1024, 1) if peak else None}


def replay_capture(packets: int = 1_000_000, flows: int = 50_000, reference_packets: int = 20_000,
                   capture: str | None = None, keep: bool = False) -> dict[str, Any]:
    """Ingest alone and end-to-end ``sgdp replay`` of a generated capture of the generated traffic:
    the fast engine over the whole capture, the reference engine over a capture of its first
    ``reference_packets``. Each replay runs as its own ``sgdp replay`` process (writing a CSV verdict
    file) that reports its own peak memory."""
    import json
    import shutil
    import tempfile

    from sgdp.capture import read_batches
    from sgdp.capture import PacketBatch
    from sgdp.capture import generated_topology, generated_traffic, write_pcap

    work = tempfile.mkdtemp(prefix="sgdp-bench-")
    try:
        from sgdp.capture import BENCH_INSTANCES

        topo_data = generated_topology(instances=BENCH_INSTANCES)
        topo_path = os.path.join(work, "topology.json")
        with open(topo_path, "w") as fh:
            json.dump(topo_data, fh)
        if capture is None:
            capture = os.path.join(work, "traffic.pcap")
            batch = generated_traffic(topo_data, packets, flows)
            write_pcap(capture, batch)
            small = os.path.join(work, "traffic-head.pcap")
            m = min(reference_packets, packets)
            write_pcap(small, PacketBatch({k: v[:m] for k, v in batch.columns.items()}))
            del batch
        else:
            small = None
        n = 0
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            n = sum(len(b) for b in read_batches(capture))
            best = min(best, time.perf_counter() - start)
        out: dict[str, Any] = {"packets": n, "capture_bytes": os.path.getsize(capture),
                               "ingest": {"mpps": round(n / best / 1e6, 3), "ns_per_packet": round(best / n * 1e9, 1) if n else None}}
        out.update(_scapy_baselines(capture, topo_data))
        runs = [("fast", capture)] + ([("reference", small)] if small else [])
        for engine, path in runs:
            out[engine] = run_replay_process(topo_path, path, os.path.join(work, f"out-{engine}"), engine)
        if keep:
            out["work_dir"] = work
        return out
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


SCAPY_RAW_PACKETS = 100_000
SCAPY_FULL_PACKETS = 2_000


def _scapy_baselines(capture: str, topo_data: dict) -> dict[str, Any]:
    """What a user would write today, for scale: scapy's RawPcapReader (records only) over the first
    100k packets, and scapy's PcapReader decoding packets into the reference engine over the first
    2k. Left out when scapy is not installed."""
    try:
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.utils import PcapReader, RawPcapReader
    except ImportError:
        return {}
    from sgdp.topology import topology_from_data
    from sgdp.capture import Packet
    from sgdp.engine import ReferenceEngine

    out: dict[str, Any] = {}
    start = time.perf_counter()
    n = 0
    for n, _ in enumerate(RawPcapReader(capture), 1):
        if n >= SCAPY_RAW_PACKETS:
            break
    out["scapy_raw_reader"] = {"packets": n, "mpps": round(n / (time.perf_counter() - start) / 1e6, 4)}
    engine = ReferenceEngine(topology_from_data(topo_data, "generated topology"))
    start = time.perf_counter()
    n = 0
    for n, frame in enumerate(PcapReader(capture), 1):
        ip = frame.getlayer(IP)
        pkt = Packet(ts=float(frame.time))
        if ip is not None:
            pkt.src, pkt.dst, pkt.proto = int.from_bytes(bytes(map(int, ip.src.split("."))), "big"), \
                int.from_bytes(bytes(map(int, ip.dst.split("."))), "big"), ip.proto
            l4 = frame.getlayer(TCP) or frame.getlayer(UDP)
            if l4 is not None:
                pkt.sport, pkt.dport = l4.sport, l4.dport
                pkt.tcp_flags = int(l4.flags) if frame.haslayer(TCP) else 0
            icmp = frame.getlayer(ICMP)
            if icmp is not None:
                pkt.icmp_type, pkt.icmp_code, pkt.icmp_id = icmp.type, icmp.code, icmp.id
        else:
            pkt.l3, pkt.status = 0, 1  # IPv6 and others: counted, not decoded, in this baseline
        engine.step(pkt)
        if n >= SCAPY_FULL_PACKETS:
            break
    out["scapy_reader_reference_engine"] = {"packets": n, "mpps": round(n / (time.perf_counter() - start) / 1e6, 5)}
    return out


# ------------------------------------------------------------------------------------- generate


def generate(out: str, instances: int | None = None, packets: int = 2_000_000, flows: int = 100_000,
             localities: tuple[str, ...] = ("generated", "uniform"), limits: tuple[int, ...] = (),
             seed: int = 1) -> dict[str, Any]:
    """Write the benchmark workloads into ``out``: ``topology.yaml`` (the generated topology, 274
    instances by default), one capture per locality shape (``capture-generated.pcap``,
    ``capture-uniform.pcap``: the same flows and packets, in capture order or spread uniformly)
    and, for each size in ``limits``, ``limits-N.yaml`` (a topology at the cloud's limits with N
    instances). Returns what was written (paths, packet counts, sizes)."""
    from sgdp.capture import generated_topology, generated_traffic, write_pcap
    from sgdp.capture import BENCH_INSTANCES, LOCALITIES, limits_topology

    for loc in localities:
        if loc not in LOCALITIES:
            raise UsageError(f"--locality: {loc!r} is not one of {', '.join(LOCALITIES)}")
    if packets < 0 or flows < 1 or (instances is not None and instances < 1) or any(n < 1 for n in limits):
        raise UsageError("--packets must be at least 0, --flows, --instances and --limits at least 1")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror}") from None
    written: dict[str, Any] = {"files": []}
    topo = generated_topology(seed=seed, instances=BENCH_INSTANCES if instances is None else instances - 1)
    path = os.path.join(out, "topology.yaml")
    _write_yaml(path, topo)
    written["files"].append({"path": path, "instances": len(topo["instances"]), "bytes": os.path.getsize(path)})
    for loc in localities:
        if not packets:
            break
        batch = generated_traffic(topo, packets, flows, locality=loc)
        path = os.path.join(out, f"capture-{loc}.pcap")
        write_pcap(path, batch)
        written["files"].append({"path": path, "packets": len(batch), "flows": flows, "locality": loc,
                                 "bytes": os.path.getsize(path)})
        del batch
    for n in limits:
        path = os.path.join(out, f"limits-{n}.yaml")
        _write_yaml(path, limits_topology(n))
        written["files"].append({"path": path, "instances": n, "bytes": os.path.getsize(path)})
    return written


def _write_yaml(path: str, data: dict) -> None:
    """YAML as people write topologies: one line per rule, instance or subnet (flow mappings)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    def flow(value: Any) -> str:
        return yaml.dump(value, Dumper=dumper, default_flow_style=True, width=1 << 30, sort_keys=False).strip()

    with partial_file(path, "w", encoding="utf-8") as fh:
        for key, value in data.items():
            if not isinstance(value, list):
                fh.write(f"{key}: {flow(value)}\n")
                continue
            fh.write(f"{key}:\n")
            for item in value:
                nested = {k: v for k, v in item.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
                plain = {k: v for k, v in item.items() if k not in nested}
                if not nested:
                    fh.write(f"  - {flow(plain)}\n")
                    continue
                lead = "  - "
                for k, v in plain.items():
                    fh.write(f"{lead}{k}: {flow(v)}\n")
                    lead = "    "
                for k, rows in nested.items():
                    fh.write(f"{lead}{k}:\n")
                    lead = "    "
                    for row in rows:
                        fh.write(f"      - {flow(row)}\n")
