"""sgdp's classifier and DPDK's rte_acl side by side, on the same ClassBench sets, in one run.

    python benchmarks/dpdk_side_by_side.py [--data DIR] [--sets acl1_10k,fw1_10k,...] [--runs 5]
                                           [--core 1] [--alg avx2] [--json FILE]

For each set ``S`` of ``DIR`` (default ``../shared/classbench`` beside the repository: ``S.rules.gz``,
``S.trace.gz``, ``S.match.gz``), each run does, on one pinned core (``taskset -c CORE``) and in
alternating order so that neither side always goes first:

* **DPDK**: Debian's ``dpdk-test-acl`` (package ``dpdk-dev``, DPDK 22.11, ``--alg=avx2`` unless
  ``--alg`` names another of its classify methods (scalar, sse, avx2, avx512x16...), one lcore,
  ``--no-huge -m 2048 --no-pci``, ``-m 8192`` from 50,000 rules on) over the filter set and trace,
  written as plain text into a temporary directory. Throughput is dpdk-test-acl's own figure (rdtsc
  over at least 3M classifications: the trace repeated). Memory is the ACL context's runtime
  footprint (``total: N bytes`` in the ACL library's debug log). Build time, when ``strace`` is
  installed, is the time from opening the rules file to opening the trace file (rule parsing,
  ``rte_acl_add_rules``, ``rte_acl_build``), from ``strace -ttt`` timestamps.
* **sgdp**: ``sgdp bench classbench S.rules.gz S.trace.gz --match S.match.gz --engine fast --json``
  in its own process: Mpps of the best of 5 passes over the trace, the build time of the classifier
  from the parsed rules, the C memory of its tables, and the mismatches against the first-match file
  (must be 0).

It prints one table: per set the best Mpps of each side with the spread over the runs, the ratio of
the bests (sgdp / DPDK) and the range of the per-run ratios, the best build times, the memory. When
``dpdk-test-acl`` is not installed it says so and measures sgdp alone. Exit status 1 when sgdp
mismatched on any header.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sgdp.bench.rulesets import read_text

SETS = ("acl1_10k", "fw1_10k", "ipc1_10k", "acl1_100k", "fw1_100k", "ipc1_100k")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "classbench"
DPDK = "dpdk-test-acl"
MIN_PACKETS = 3_000_000  # DPDK classifies at least this many headers per run (the trace repeated)


def write_inputs(data: Path, name: str, work: Path) -> tuple[Path, Path, int, int]:
    """dpdk-test-acl's input files for set ``name``: the filter set and the trace as plain text."""
    rules, trace = work / name, work / f"{name}_trace"
    rules_text = read_text(data / f"{name}.rules.gz")
    trace_text = read_text(data / f"{name}.trace.gz")
    rules.write_text(rules_text)
    trace.write_text(trace_text)
    return rules, trace, rules_text.count("\n"), trace_text.count("\n")


def run_dpdk(rules: Path, trace: Path, n_rules: int, n_headers: int, core: str, work: Path, alg: str = "avx2") -> dict:
    """One dpdk-test-acl run: Mpps, memory and (with strace) build time."""
    memory_mb = 2048 if n_rules < 50_000 else 8192
    iters = max(1, math.ceil(MIN_PACKETS / n_headers))
    cmd = [DPDK, "--no-huge", "-m", str(memory_mb), "--no-pci", "-l", core, "--log-level=acl,debug", "--",
           f"--rulesf={rules}", f"--tracef={trace}", f"--rulenum={n_rules + 16}", f"--tracenum={n_headers}",
           "--verbose=1", f"--iter={iters}", f"--alg={alg}"]
    trace_log = work / "strace.log"
    if shutil.which("strace"):
        cmd = ["strace", "-f", "-ttt", "-e", "trace=openat", "-o", str(trace_log)] + cmd
    proc = subprocess.run(["taskset", "-c", core] + cmd, capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    rate = re.search(r"([\d.]+) cycles/pkt, ([\d.]+) pkt/sec", out)
    if proc.returncode != 0 or rate is None:
        raise RuntimeError(f"dpdk-test-acl failed (exit {proc.returncode}): {out.strip()[-400:]}")
    total = re.search(r"total: (\d+) bytes", out)
    build_s = None
    if trace_log.exists():
        opened = {}
        for line in trace_log.read_text().splitlines():
            for what, path in (("rules", rules), ("trace", trace)):
                if what not in opened and f'"{path}"' in line:
                    opened[what] = float(line.split()[1])
        trace_log.unlink()
        if len(opened) == 2:
            build_s = opened["trace"] - opened["rules"]
    return {"mpps": float(rate.group(2)) / 1e6, "build_s": build_s,
            "bytes": int(total.group(1)) if total else None}


def run_sgdp(data: Path, name: str, core: str) -> dict:
    """One ``sgdp bench classbench`` run in its own process."""
    cmd = [sys.executable, "-m", "sgdp", "bench", "classbench", str(data / f"{name}.rules.gz"),
           str(data / f"{name}.trace.gz"), "--match", str(data / f"{name}.match.gz"), "--engine", "fast", "--json"]
    proc = subprocess.run(["taskset", "-c", core] + cmd, capture_output=True, text=True, timeout=1200)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"sgdp bench classbench failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    r = json.loads(proc.stdout)
    return {"mpps": r["mpps"], "build_s": r["build_s"], "bytes": r["table_bytes"], "mismatches": r["mismatches"]}


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f}" if len(values) > 1 else ""


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e6:.2f} MB"


def _sec(s: float | None) -> str:
    return "–" if s is None else f"{s:.2f} s" if s >= 0.1 else f"{s * 1e3:.0f} ms"


def summarize(name: str, dpdk: list[dict], ours: list[dict]) -> dict:
    row = {"set": name, "runs": len(ours),
           "sgdp_mpps": max(r["mpps"] for r in ours), "sgdp_mpps_runs": [r["mpps"] for r in ours],
           "sgdp_build_s": min(r["build_s"] for r in ours), "sgdp_bytes": ours[0]["bytes"],
           "mismatches": max(r["mismatches"] for r in ours)}
    if dpdk:
        builds = [r["build_s"] for r in dpdk if r["build_s"] is not None]
        row.update({"dpdk_mpps": max(r["mpps"] for r in dpdk), "dpdk_mpps_runs": [r["mpps"] for r in dpdk],
                    "dpdk_build_s": min(builds) if builds else None, "dpdk_bytes": dpdk[0]["bytes"]})
        row["ratio"] = row["sgdp_mpps"] / row["dpdk_mpps"]
        row["ratio_runs"] = [o / d for o, d in zip(row["sgdp_mpps_runs"], row["dpdk_mpps_runs"])]
    return row


def table(rows: list[dict]) -> str:
    lines = ["| set | DPDK Mpps | sgdp Mpps | ratio | DPDK build | sgdp build | DPDK memory | sgdp memory | mismatches |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "dpdk_mpps" in r:
            dpdk = f"{r['dpdk_mpps']:.1f} ({_spread(r['dpdk_mpps_runs'])})"
            ratio = f"{r['ratio']:.2f} ({min(r['ratio_runs']):.2f}–{max(r['ratio_runs']):.2f})"
        else:
            dpdk = ratio = "–"
        lines.append(f"| {r['set']} | {dpdk} | {r['sgdp_mpps']:.1f} ({_spread(r['sgdp_mpps_runs'])}) | {ratio} | "
                     f"{_sec(r.get('dpdk_build_s'))} | {_sec(r['sgdp_build_s'])} | {_mb(r.get('dpdk_bytes'))} | "
                     f"{_mb(r['sgdp_bytes'])} | {r['mismatches']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the ClassBench .gz files")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    ap.add_argument("--runs", type=int, default=5, help="runs of each side per set (best and spread are reported)")
    ap.add_argument("--core", default="1", help="the CPU both sides are pinned to")
    ap.add_argument("--alg", default="avx2", help="dpdk-test-acl's classify method (default avx2)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    have_dpdk = shutil.which(DPDK) is not None
    if not have_dpdk:
        print(f"note: {DPDK} is not installed (Debian package dpdk-dev): measuring sgdp alone", file=sys.stderr)
    elif not shutil.which("strace"):
        print("note: strace is not installed: DPDK's build time is not measured", file=sys.stderr)
    rows = []
    for name in args.sets.split(","):
        dpdk: list[dict] = []
        ours: list[dict] = []
        with tempfile.TemporaryDirectory(prefix="sgdp-dpdk-") as tmp:
            work = Path(tmp)
            if have_dpdk:
                rules, trace, n_rules, n_headers = write_inputs(args.data, name, work)
            for k in range(args.runs):
                sides = ["dpdk", "sgdp"] if k % 2 == 0 else ["sgdp", "dpdk"]
                for side in sides:
                    if side == "sgdp":
                        ours.append(run_sgdp(args.data, name, args.core))
                    elif have_dpdk:
                        dpdk.append(run_dpdk(rules, trace, n_rules, n_headers, args.core, work, args.alg))
                print(f"{name} run {k + 1}: sgdp {ours[-1]['mpps']:.1f} Mpps"
                      + (f", DPDK {dpdk[-1]['mpps']:.1f} Mpps" if dpdk else ""), file=sys.stderr, flush=True)
        rows.append(summarize(name, dpdk, ours))
    print(f"sgdp vs DPDK rte_acl (dpdk-test-acl --alg={args.alg}), one core ({args.core}), best of {args.runs} runs "
          "(spread in brackets):\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(r["mismatches"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
