"""The replay benchmark, rerunnable end to end: start-up, packet phase, end to end,
peak memory and the read floor measured in the same run, and the big-topology figures.

    python benchmarks/run_replay.py --runs 5 [--out DIR] [--limits 6000 --limits 100000] [--json FILE]
                                    [--limits 0] [--baseline CHECKOUT]

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
ratio to the read floor of the same run. With ``--baseline CHECKOUT`` (another checkout, e.g. ``git
worktree add ../before main`` with its compiled modules built in place), every round is measured for
both, back to back, the order alternating, and the table has a column for each plus the ratios of
this checkout to the baseline pair by pair. Every child runs in the workload directory with its
checkout first on ``PYTHONPATH``.
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


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[float, float]:
    """Wall seconds and peak memory (MB, the child's VmHWM via /usr/bin/time when present)."""
    start = time.perf_counter()
    if os.path.exists("/usr/bin/time"):
        proc = subprocess.run(["/usr/bin/time", "-f", "sgdp-peak-kb %M"] + cmd, capture_output=True, text=True,
                              env=env, cwd=cwd)
        wall = time.perf_counter() - start
        peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("sgdp-peak-kb")]
        return wall, int(peak[0]) / 1024 if peak else float("nan")
    subprocess.run(cmd, capture_output=True, env=env, cwd=cwd)
    return time.perf_counter() - start, float("nan")


def stat(values: list[float]) -> dict:
    vals = [v for v in values if v == v]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt(s: dict, digits: int = 2, unit: str = "") -> str:
    if s["median"] is None:
        return "n/a"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def side_env(root: str) -> dict[str, str]:
    """The environment of the children of one side: its checkout first on the path, and its
    bytecode cache written beforehand, as ``pip install`` does (where the environment sets
    PYTHONDONTWRITEBYTECODE, every start would otherwise compile sgdp's sources again: 0.1 s)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(root, "sgdp")], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure(m: dict[str, list], side: str, env: dict[str, str], work: str, topo: str, captures: dict[str, str],
            formats: list[str], limits: list[int], exe: str) -> None:
    """One round of every figure for one side (this checkout, or the baseline)."""
    from sgdp.bench import run_replay_process

    def add(key: str, value) -> None:
        m.setdefault(f"{side}:{key}", []).append(value)

    example_topo = os.path.join(ROOT, "examples", "figure1", "topology.yaml")
    example_cap = os.path.join(ROOT, "pcaps", "figure1.pcap")
    for loc, cap in captures.items():
        fl = floor(exe, cap)
        add(f"floor/{loc}", fl)
        for fmt_ in (formats if loc == "generated" else ["none"]):
            r = run_replay_process(topo, cap, os.path.join(work, f"out-{side}-{loc}-{fmt_}"), "fast", fmt_, env=env, cwd=work)
            add(f"replay/{loc}/{fmt_}", r)
            add(f"ratio/{loc}/{fmt_}", r["packet_phase_mpps"] / fl if r["packet_phase_mpps"] else float("nan"))
    r = run_replay_process(example_topo, example_cap, os.path.join(work, f"out-{side}-example"), "fast", "none", env=env, cwd=work)
    add("example", r)
    add("help", timed(SGDP + ["--help"], env, work)[0])
    for n in limits:
        path = os.path.join(work, f"limits-{n}.yaml")
        add(f"check/{n}", timed(SGDP + ["check", path], env, work))
        add(f"limits-replay/{n}", run_replay_process(path, example_cap, os.path.join(work, f"out-{side}-limits-{n}"),
                                                     "fast", "none", env=env, cwd=work))


def rows_of(m: dict[str, list], side: str, captures: dict[str, str], formats: list[str], limits: list[int],
            floor_kind: str) -> list[tuple[str, str]]:
    def get(key: str) -> list:
        return m[f"{side}:{key}"]

    def rec(key: str, field: str) -> list[float]:
        return [x[field] if x[field] is not None else float("nan") for x in get(key)]

    def ph(key: str, name: str) -> list[float]:
        return [x["phases"].get(name, float("nan")) for x in get(key)]

    rows = [("`sgdp --help`, wall", fmt(stat(get("help")), 3, " s")),
            ("start-up, examples/figure1 (process start to first packet)", fmt(stat(ph("example", "first_packet")), 3, " s"))]
    k = "replay/generated/none"
    rows.append(("start-up, 274 instances: parsed / validated / compiled / first packet",
                 " / ".join(fmt(stat(ph(k, p)), 3, " s") for p in ("loaded", "validated", "compiled", "first_packet"))))
    for loc in captures:
        rows.append((f"read floor ({floor_kind}), {loc} locality", fmt(stat(get(f"floor/{loc}")), 2, " Mpps")))
        k = f"replay/{loc}/none"
        rows.append((f"packet phase, {loc} locality (ratio to floor)",
                     f"{fmt(stat(rec(k, 'packet_phase_mpps')), 2, ' Mpps')}, ratio {fmt(stat(get(f'ratio/{loc}/none')), 2)}"))
    for fmt_ in formats:
        k = f"replay/generated/{fmt_}"
        rows.append((f"end to end `--verdicts {fmt_}`, wall incl. start-up", f"{fmt(stat(rec(k, 'mpps_wall')), 2, ' Mpps')}, "
                     f"{fmt(stat(rec(k, 'wall_s')), 2, ' s')}"))
        rows.append((f"peak memory `--verdicts {fmt_}`", fmt(stat(rec(k, "peak_rss_mb")), 0, " MB")))
    rows.append(("peak memory, uniform locality, `none`", fmt(stat(rec("replay/uniform/none", "peak_rss_mb")), 0, " MB")))
    for n in limits:
        rows.append((f"limits topology, {n:,} instances: `sgdp check` wall, peak",
                     f"{fmt(stat([w for w, _ in get(f'check/{n}')]), 2, ' s')}, {fmt(stat([p for _, p in get(f'check/{n}')]), 0, ' MB')}"))
        k = f"limits-replay/{n}"
        rows.append((f"limits topology, {n:,} instances: replay start-up (first packet), peak",
                     f"{fmt(stat(ph(k, 'first_packet')), 2, ' s')}, {fmt(stat(rec(k, 'peak_rss_mb')), 0, ' MB')}"))
    return rows


def ratios(m: dict[str, list], limits: list[int]) -> list[tuple[str, str]]:
    """This checkout over the baseline, run by run (each pair measured back to back): median (min-max)."""
    def pair(key: str, value) -> list[float]:
        return [value(a) / value(b) for a, b in zip(m[f"new:{key}"], m[f"base:{key}"]) if value(b)]

    first = lambda r: r["phases"].get("first_packet", float("nan"))  # noqa: E731
    out = [("`sgdp --help`, wall", fmt(stat(pair("help", lambda x: x)), 2)),
           ("start-up, examples/figure1", fmt(stat(pair("example", first)), 2)),
           ("start-up, 274 instances (first packet)", fmt(stat(pair("replay/generated/none", first)), 2))]
    phase = lambda r: 1 / r["packet_phase_mpps"] if r["packet_phase_mpps"] else float("nan")  # noqa: E731
    for loc in ("generated", "uniform"):
        if f"new:replay/{loc}/none" in m:
            out.append((f"packet phase, {loc} locality (time)", fmt(stat(pair(f"replay/{loc}/none", phase)), 2)))
    for key in sorted(k[len("new:replay/generated/"):] for k in m if k.startswith("new:replay/generated/")):
        out.append((f"end to end `--verdicts {key}`, wall", fmt(stat(pair(f"replay/generated/{key}", lambda r: r["wall_s"])), 2)))
    for n in limits:
        out.append((f"limits {n:,}: `sgdp check` wall / peak", f"{fmt(stat(pair(f'check/{n}', lambda x: x[0])), 2)} / "
                     f"{fmt(stat(pair(f'check/{n}', lambda x: x[1])), 2)}"))
        out.append((f"limits {n:,}: replay start-up / peak", f"{fmt(stat(pair(f'limits-replay/{n}', first)), 2)} / "
                     f"{fmt(stat(pair(f'limits-replay/{n}', lambda r: r['peak_rss_mb'])), 2)}"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="workload directory (default: a new one under the system temp dir)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--limits", type=int, action="append", default=None, help="limits topology sizes (default 6000 and 100000)")
    ap.add_argument("--formats", default="none,csv,parquet", help="verdict formats for the end-to-end runs")
    ap.add_argument("--baseline", metavar="CHECKOUT",
                    help="another checkout of sgdp (its compiled modules built in place) measured in the same run, "
                         "each round of it right after this one's: before/after columns and their ratios")
    ap.add_argument("--json", help="also write every measurement as JSON here")
    args = ap.parse_args()
    limits = [n for n in (args.limits or [6000, 100_000]) if n > 0]  # --limits 0: none
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "sgdp", "__init__.py")):
        raise SystemExit(f"run_replay.py: --baseline {args.baseline}: not an sgdp checkout (no sgdp/__init__.py)")
    work = os.path.abspath(args.out or tempfile.mkdtemp(prefix="sgdp-bench-replay-"))
    sys.path.insert(0, ROOT)

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
    sides = [("new", side_env(ROOT))]
    if args.baseline:
        sides.append(("base", side_env(os.path.abspath(args.baseline))))
    m: dict[str, list] = {}
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", file=sys.stderr)
        for side, env in (sides if run % 2 == 0 else sides[::-1]):  # who goes first alternates
            measure(m, side, env, work, topo, captures, formats, limits, exe)

    print(f"\n{args.runs} runs, median (min–max); {args.packets:,} packets, {args.flows:,} flows\n")
    rows = rows_of(m, "new", captures, formats, limits, floor_kind)
    if args.baseline:
        before = dict(rows_of(m, "base", captures, formats, limits, floor_kind))
        print("| figure | this checkout | baseline |\n|---|---|---|")
        for a, b in rows:
            print(f"| {a} | {b} | {before[a]} |")
        print("\nThis checkout / baseline, run by run (median (min–max) of the ratios):\n")
        print("| figure | ratio |\n|---|---|")
        for a, b in ratios(m, limits):
            print(f"| {a} | {b} |")
    else:
        print("| figure | value |\n|---|---|")
        for a, b in rows:
            print(f"| {a} | {b} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(m, fh, indent=1)
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
