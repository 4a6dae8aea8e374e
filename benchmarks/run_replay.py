"""The replay benchmark of issue 11, rerunnable end to end: start-up, packet phase, end to end,
peak memory and the read floor measured in the same run, and the big-topology figures.

    python benchmarks/run_replay.py --runs 5 [--out DIR] [--limits 6000 --limits 100000] [--json FILE]
                                    [--limits 0] [--baseline OTHER_CHECKOUT]

It writes the workloads with the command a user would type (``sgdp bench generate --out DIR``:
the 274-instance generated topology, a 2M-packet capture of 100k flows in two locality shapes and
the limits topologies), then, ``--runs`` times each, interleaved so that load on a shared machine
hits every figure alike:

* the read floor: ``readfloor.c`` (a libpcap ``pcap_next_ex`` loop, compiled here) over each capture;
* ``sgdp replay TOPOLOGY CAPTURE --verdicts none|csv|parquet`` as its own process, timed from just
  before the process starts to its exit, with its phases (parsed, validated, compiled, first packet,
  last packet) and its own peak memory (VmHWM);
* start-up on the examples (``examples/figure1`` with its capture) and ``sgdp --help``;
* on each limits topology: ``sgdp check`` (wall, peak memory) and the start-up of a replay.

Prints a Markdown table: median and spread (min-max) of each figure, and the packet figures as a
ratio to the read floor of the same run. ``--limits 0`` leaves the limits topologies out.

``--baseline OTHER_CHECKOUT`` (a second checkout of sgdp, built in place) makes it an A/B: each
replay runs twice in a row, once with this checkout's sgdp and once with the other's (put first on
the child's ``PYTHONPATH``), so that both meet the same load; the table then has a column for each
and their ratio (median of the per-run ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SGDP = [sys.executable, "-m", "sgdp"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


def build_floor(work: str) -> tuple[str, str]:
    """The read floor compiled here, and what it is: libpcap's loop, or the plain loop without it."""
    exe = os.path.join(work, "readfloor")
    src = os.path.join(HERE, "readfloor.c")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("run_replay.py: a C compiler (cc) is needed for the read floor")
    try:
        sh([cc, "-O2", "-o", exe, src, "-lpcap"])
    except subprocess.CalledProcessError:
        sh([cc, "-O2", "-DNO_LIBPCAP", "-o", exe, src])  # no libpcap: the plain loop
        return exe, "plain read loop, no libpcap"
    return exe, "libpcap loop"


def floor(exe: str, capture: str) -> float:
    n, seconds, _ = sh([exe, capture]).stdout.split()
    return int(n) / float(seconds) / 1e6


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak memory (MB, the child's VmHWM via /usr/bin/time when present)."""
    start = time.perf_counter()
    if os.path.exists("/usr/bin/time"):
        proc = subprocess.run(["/usr/bin/time", "-f", "sgdp-peak-kb %M"] + cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("sgdp-peak-kb")]
        return wall, int(peak[0]) / 1024 if peak else float("nan")
    subprocess.run(cmd, capture_output=True)
    return time.perf_counter() - start, float("nan")


def replay_in(checkout: str, topology: str, capture: str, out_dir: str, fmt: str) -> dict:
    """``run_replay_process`` with the sgdp of ``checkout``: the child (``python -c``) imports from
    its working directory first, so it runs there, with the checkout also first on its
    ``PYTHONPATH`` (paths are absolute)."""
    from sgdp.bench import run_replay_process

    saved_path, saved_cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = os.path.abspath(checkout) + (os.pathsep + saved_path if saved_path else "")
    os.chdir(checkout)
    try:
        return run_replay_process(topology, capture, out_dir, "fast", fmt)
    finally:
        os.chdir(saved_cwd)
        if saved_path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved_path


def stat(values: list[float]) -> dict:
    vals = [v for v in values if v == v]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt(s: dict, digits: int = 2, unit: str = "") -> str:
    if s["median"] is None:
        return "n/a"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="workload directory (default: a new one under the system temp dir)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--limits", type=int, action="append", default=None, help="limits topology sizes (default 6000 and 100000)")
    ap.add_argument("--formats", default="none,csv,parquet", help="verdict formats for the end-to-end runs")
    ap.add_argument("--json", help="also write every measurement as JSON here")
    ap.add_argument("--baseline", help="a second sgdp checkout (built in place) to run interleaved as an A/B")
    args = ap.parse_args()
    limits = [n for n in (args.limits or [6000, 100_000]) if n > 0]
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "sgdp", "__init__.py")):
        raise SystemExit(f"run_replay.py: --baseline {args.baseline}: not an sgdp checkout (no sgdp/__init__.py)")
    work = os.path.abspath(args.out or tempfile.mkdtemp(prefix="sgdp-bench-replay-"))
    sys.path.insert(0, ROOT)
    from sgdp.bench import run_replay_process

    topo = os.path.join(work, "topology.yaml")
    captures = {loc: os.path.join(work, f"capture-{loc}.pcap") for loc in ("generated", "uniform")}
    if not all(os.path.exists(p) for p in [topo, *captures.values()]):
        print(f"generating workloads into {work} ...", file=sys.stderr)
        sh(SGDP + ["bench", "generate", "--out", work, "--packets", str(args.packets), "--flows", str(args.flows)])
    for n in limits:
        if not os.path.exists(os.path.join(work, f"limits-{n}.yaml")):
            sh(SGDP + ["bench", "generate", "--out", work, "--packets", "0", "--limits", str(n)])
    exe, floor_kind = build_floor(work)
    formats = [f for f in args.formats.split(",") if f]
    example_topo = os.path.join(ROOT, "examples", "figure1", "topology.yaml")
    example_cap = os.path.join(ROOT, "pcaps", "figure1.pcap")
    m: dict[str, list] = {}

    def add(key: str, value) -> None:
        m.setdefault(key, []).append(value)

    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", file=sys.stderr)
        for loc, cap in captures.items():
            fl = floor(exe, cap)
            add(f"floor/{loc}", fl)
            for fmt_ in (formats if loc == "generated" else ["none"]):
                r = replay_in(ROOT, topo, cap, os.path.join(work, f"out-{loc}-{fmt_}"), fmt_)
                add(f"replay/{loc}/{fmt_}", r)
                add(f"ratio/{loc}/{fmt_}", r["packet_phase_mpps"] / fl if r["packet_phase_mpps"] else float("nan"))
                if args.baseline:
                    b = replay_in(args.baseline, topo, cap, os.path.join(work, f"out-base-{loc}-{fmt_}"), fmt_)
                    add(f"base/{loc}/{fmt_}", b)
        r = run_replay_process(example_topo, example_cap, os.path.join(work, "out-example"), "fast", "none")
        add("example", r)
        add("help", timed(SGDP + ["--help"])[0])
        for n in limits:
            path = os.path.join(work, f"limits-{n}.yaml")
            add(f"check/{n}", timed(SGDP + ["check", path]))
            add(f"limits-replay/{n}", run_replay_process(path, example_cap, os.path.join(work, f"out-limits-{n}"), "fast", "none"))

    rows = []

    def rec(key: str, field: str) -> list[float]:
        return [x[field] if x[field] is not None else float("nan") for x in m[key]]

    def ph(key: str, name: str) -> list[float]:
        return [x["phases"].get(name, float("nan")) for x in m[key]]

    rows.append(("`sgdp --help`, wall", fmt(stat(m["help"]), 3, " s")))
    e = "example"
    rows.append(("start-up, examples/figure1 (process start to first packet)", fmt(stat(ph(e, "first_packet")), 3, " s")))
    k = "replay/generated/none"
    rows.append(("start-up, 274 instances: parsed / validated / compiled / first packet",
                 " / ".join(fmt(stat(ph(k, p)), 3, " s") for p in ("loaded", "validated", "compiled", "first_packet"))))
    for loc in captures:
        rows.append((f"read floor ({floor_kind}), {loc} locality", fmt(stat(m[f"floor/{loc}"]), 2, " Mpps")))
        k = f"replay/{loc}/none"
        rows.append((f"packet phase, {loc} locality (ratio to floor)",
                     f"{fmt(stat(rec(k, 'packet_phase_mpps')), 2, ' Mpps')}, ratio {fmt(stat(m[f'ratio/{loc}/none']), 2)}"))
    for fmt_ in formats:
        k = f"replay/generated/{fmt_}"
        rows.append((f"end to end `--verdicts {fmt_}`, wall incl. start-up", f"{fmt(stat(rec(k, 'mpps_wall')), 2, ' Mpps')}, "
                     f"{fmt(stat(rec(k, 'wall_s')), 2, ' s')}"))
        rows.append((f"peak memory `--verdicts {fmt_}`", fmt(stat(rec(k, "peak_rss_mb")), 0, " MB")))
    rows.append(("peak memory, uniform locality, `none`", fmt(stat(rec("replay/uniform/none", "peak_rss_mb")), 0, " MB")))
    for n in limits:
        rows.append((f"limits topology, {n:,} instances: `sgdp check` wall, peak",
                     f"{fmt(stat([w for w, _ in m[f'check/{n}']]), 2, ' s')}, {fmt(stat([p for _, p in m[f'check/{n}']]), 0, ' MB')}"))
        k = f"limits-replay/{n}"
        rows.append((f"limits topology, {n:,} instances: replay start-up (first packet), peak",
                     f"{fmt(stat(ph(k, 'first_packet')), 2, ' s')}, {fmt(stat(rec(k, 'peak_rss_mb')), 0, ' MB')}"))
    print(f"\n{args.runs} runs, median (min–max); {args.packets:,} packets, {args.flows:,} flows\n")
    print("| figure | value |\n|---|---|")
    for a, b in rows:
        print(f"| {a} | {b} |")
    if args.baseline:
        print(f"\nA/B, interleaved: this checkout against {args.baseline} (ratio: this / baseline, median of"
              " the per-run ratios)\n")
        print("| figure | this checkout | baseline | ratio |\n|---|---|---|---|")
        for loc in captures:
            for fmt_ in (formats if loc == "generated" else ["none"]):
                for field, what, digits, unit in (("packet_phase_mpps", "packet phase", 2, " Mpps"),
                                                  ("mpps_wall", "wall", 2, " Mpps"), ("wall_s", "wall", 2, " s"),
                                                  ("peak_rss_mb", "peak memory", 0, " MB")):
                    new, old = rec(f"replay/{loc}/{fmt_}", field), rec(f"base/{loc}/{fmt_}", field)
                    print(f"| {loc}, `--verdicts {fmt_}`, {what} | {fmt(stat(new), digits, unit)} | "
                          f"{fmt(stat(old), digits, unit)} | {fmt(stat([a / b for a, b in zip(new, old)]), 2)} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(m, fh, indent=1)
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
