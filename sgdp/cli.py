"""The command line: argument parsing and printing over the public API of :mod:`sgdp` only.
``main(argv) -> int``.

Exit codes (SPEC §5): 0 success; 1 expectations not met; 2 usage, config or input error, printed as
one line ``sgdp: error: …`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any, Sequence

import sgdp
from sgdp import __version__
from sgdp.errors import Interrupted, SgdpError, UsageError, one_line
from sgdp.startup import pause_until_started, started

# NumPy's BLAS starts a thread per core when NumPy is imported (later: nothing above imports it);
# sgdp does no linear algebra, and with --workers those threads would compete with the workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``sgdp: error:`` line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}" if self.prog != "sgdp" else message)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. With ``argv`` whose first word is a command, only that command's
    parser is built under the top one (argparse takes about 8 ms to build them all, a twentieth of a
    small replay's start-up); the top-level help, and any other first word, get them all."""
    parser = _Parser(prog="sgdp", description="Huawei Cloud VPC security-group dataplane emulator.",
                     epilog="Reference: docs/ in the sgdp repository (topology.md, commands.md, scenarios.md, "
                            "craft.md); the items S1..S16 that messages cite are defined in docs/semantics.md.")
    parser.add_argument("--version", action="version", version=f"sgdp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    only = argv[0] if argv and argv[0] in _COMMAND_PARSERS else None
    for name, add in _COMMAND_PARSERS.items():
        if only is None or name == only:
            add(sub)
    return parser


def _add_check(sub: Any) -> None:
    p = sub.add_parser("check", help="validate a topology and report findings")
    p.add_argument("topology")
    p.add_argument("--json", action="store_true", help="print findings as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 when there are findings")


def _add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="the verdict for one new packet, step by step")
    p.add_argument("topology")
    p.add_argument("--src", required=True, metavar="IP[:PORT]")
    p.add_argument("--dst", required=True, metavar="IP[:PORT]")
    p.add_argument("--proto", default="tcp", help="tcp (default), udp, icmp, icmpv6, gre or a number")
    p.add_argument("--icmp-type", type=int)
    p.add_argument("--icmp-code", type=int)
    p.add_argument("--tcp-flags", default="S", help="TCP flags as letters (default S)")
    p.add_argument("--json", action="store_true")
    _engine_arg(p)


def _add_replay(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay captures through the dataplane: every packet's verdict and why")
    p.add_argument("topology")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files, replayed in order")
    p.add_argument("-o", "--output", default="sgdp-out", metavar="DIR", help="output directory (default ./sgdp-out)")
    p.add_argument("--verdicts", default="csv", choices=("csv", "jsonl", "parquet", "none"),
                   help="verdict file format (parquet needs the parquet extra)")
    p.add_argument("--split", action="store_true", help="also write allowed.pcap and denied.pcap")
    p.add_argument("--expect", metavar="FILE", help="compare with a saved verdict file; exit 1 on any difference")
    p.add_argument("--timeline", metavar="FILE", help="topology versions applied at capture times (S12)")
    p.add_argument("--save-failures", metavar="DIR",
                   help="with --expect: write the differing packets and the earlier packets of their flows to DIR/differences.pcap")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown when not on a terminal)")
    p.add_argument("--html", metavar="FILE", help="also write the HTML report (as sgdp report DIR -o FILE)")
    _add_scale_out(p)
    _engine_arg(p)


def _add_test(sub: Any) -> None:
    p = sub.add_parser("test", help="run scenario files")
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files, or directories searched for *.sgdp.yaml")
    p.add_argument("--junit-xml", metavar="FILE")
    p.add_argument("--save-failures", metavar="DIR",
                   help="write each failing scenario's packets (with the earlier packets of their flows) to DIR/<scenario>.pcap")
    _engine_arg(p)


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure throughput")
    bench = p.add_subparsers(dest="bench_command", metavar="BENCH", parser_class=_Parser, required=True)
    b = bench.add_parser("classbench", help="classify a ClassBench trace against a filter set")
    b.add_argument("rules", help="ClassBench filter set (plain or gzip)")
    b.add_argument("trace", help="ClassBench header trace (plain or gzip)")
    b.add_argument("--match", metavar="MATCH", help="expected first match of every header; exit 1 on any mismatch")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    _engine_arg(b)
    b = bench.add_parser("dataplane", help="the dataplane on a generated topology: fast and reference engines side by side")
    b.add_argument("--packets", type=int, default=1_000_000)
    b.add_argument("--flows", type=int, default=50_000)
    b.add_argument("--reference-packets", type=int, default=20_000, help="packets for the (slow) reference engine")
    b.add_argument("--json", action="store_true")
    b = bench.add_parser("replay", help="ingest alone and end-to-end replay of a generated capture, with the start-up phases")
    b.add_argument("--packets", type=int, default=1_000_000)
    b.add_argument("--flows", type=int, default=50_000)
    b.add_argument("--reference-packets", type=int, default=20_000)
    b.add_argument("--json", action="store_true")
    b = bench.add_parser("generate", help="write the benchmark workloads: the generated topology and captures, big topologies")
    b.add_argument("--out", required=True, metavar="DIR", help="directory to write into (created if missing)")
    b.add_argument("--instances", type=int, default=None, help="instances of the generated topology (default 274)")
    b.add_argument("--packets", type=int, default=2_000_000, help="packets per capture (0: no capture)")
    b.add_argument("--flows", type=int, default=100_000)
    b.add_argument("--locality", choices=("generated", "uniform", "both"), default="both",
                   help="generated: flows live for a while, as in a real capture; uniform: flows spread over the whole capture")
    b.add_argument("--limits", type=int, action="append", default=[], metavar="N",
                   help="also write limits-N.yaml, a topology at the cloud's limits with N instances (repeatable)")


def _engine_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("fast", "reference"), default=None,
                   help="dataplane engine (default: $SGDP_ENGINE or fast)")


# the commands whose start-up ends in a gc_paused block (loading the topology, compiling it): the
# collector stays paused from main's first line to there; the others run with it as usual
_PAUSED_START_UP = ("replay", "check")


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the process's own command line: no garbage collection through its start-up
        pause_until_started()  # (sgdp.startup)
    try:
        return _main(argv)
    finally:
        started()


def _main(argv: Sequence[str] | None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    previous = _catch_sigterm()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help(sys.stderr)
            return 2
        if args.command not in _PAUSED_START_UP:
            started()
        return COMMANDS[args.command](args)
    except SgdpError as exc:
        print(f"sgdp: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:  # Ctrl-C: the command cleaned up on its way out
        print("sgdp: error: interrupted by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as exc:
        print(f"sgdp: error: {exc}", file=sys.stderr)
        return 128 + exc.signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _catch_sigterm():
    """SIGTERM raises :class:`Interrupted` (so outputs are cleaned up and one line says why); the
    previous handler, or None where no handler can be set (not the main thread)."""
    def handler(signum, frame):
        raise Interrupted(signum)

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    topo = sgdp.load_topology(args.topology)
    findings = sgdp.check(topo)
    if args.json:
        print(json.dumps({"findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        counts = (f"{len(topo.vpcs)} VPC(s), {len(topo.security_groups)} security group(s), "
                  f"{len(topo.instances)} instance(s), {len(topo.load_balancers)} load balancer(s)")
        print(f"{args.topology}: valid ({counts})")
        for f in findings:
            print(f"{f.kind}: {f.message}")
        print(f"{len(findings)} finding(s)")
    return 1 if findings and args.strict else 0


# ----------------------------------------------------------------------------------------- explain


def cmd_explain(args: argparse.Namespace) -> int:
    result = sgdp.explain(args.topology, _explain_packet(args), args.engine)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        for line in result.lines():
            print(line)
    return 0


def _explain_packet(args: argparse.Namespace) -> "sgdp.capture.Packet":
    try:
        (src, sport), (dst, dport) = sgdp.parse_endpoint(args.src), sgdp.parse_endpoint(args.dst)
    except ValueError as exc:
        raise UsageError(f"--src/--dst: {exc}") from None
    spec: dict[str, Any] = {"src": sgdp.format_ip(*src), "dst": sgdp.format_ip(*dst), "proto": args.proto, "flags": args.tcp_flags}
    if sport is not None:
        spec["sport"] = sport
    if dport is not None:
        spec["dport"] = dport
    if args.icmp_type is not None:
        spec["icmp_type"] = args.icmp_type
    if args.icmp_code is not None:
        spec["icmp_code"] = args.icmp_code
    try:
        return sgdp.make_packet(spec)
    except SgdpError as exc:
        detail = getattr(exc, "detail", str(exc))
        field = getattr(exc, "path", "").rsplit(".", 1)[-1]
        option = {"dport": "--dst", "sport": "--src", "src": "--src", "dst": "--dst", "proto": "--proto",
                  "flags": "--tcp-flags", "icmp_type": "--icmp-type", "icmp_code": "--icmp-code"}.get(field, "")
        if field == "dport" and detail.startswith("is required"):
            detail = f"needs a port (IP:PORT) for {args.proto}"
        raise UsageError(f"{option} {detail}".strip()) from None


# ------------------------------------------------------------------------------------------ replay


def cmd_replay(args: argparse.Namespace) -> int:
    progress = not args.no_progress and sys.stderr.isatty()
    result = sgdp.replay(args.topology, args.captures, args.output, args.verdicts, split=args.split,
                         engine_name=args.engine, expect=args.expect, progress=progress, timeline=args.timeline,
                         save_failures=args.save_failures, workers=args.workers, ray=args.ray)
    s = result.summary
    if getattr(args, "html", None):
        if args.verdicts == "none":
            raise UsageError("--html needs a verdict file (--verdicts csv, jsonl or parquet)")
        result.report(args.html)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"{s['packets']} packets: {s['allowed']} allowed, {s['denied']} denied, "
              f"{s['unmodelled']} unmodelled, {s['malformed']} malformed "
              f"({s['engine']} engine, {s['packets_per_s'] or 0:,.0f} packets/s)")
        for reason, n in s["by_reason"].items():
            print(f"  {reason:<12} {n}")
        if s.get("truncated"):
            print(f"  {s['truncated']} packet(s) cut by the snap length were evaluated from their headers")
        for v in s.get("versions", ()):
            since = "from the start" if v["at"] is None else f"from {v['at']}"
            print(f"  version {v['topology']} ({since}): {v['packets']} packets")
        print(f"outputs in {args.output}/" + (f"; report {args.html}" if getattr(args, "html", None) else ""))
    if s["packets"] and s["unmodelled"] * 2 > s["packets"]:
        pairs = ", ".join(f"{src} -> {dst} ({n})" for src, dst, n in result.unmodelled_top)
        print(f"sgdp: warning: {s['unmodelled']} of {s['packets']} packets are unmodelled (no endpoint of "
              f"{args.topology} on either side): is this the capture's topology?"
              + (f" most frequent address pairs: {pairs}" if pairs else ""), file=sys.stderr)
    if result.error is not None:
        raise result.error
    if args.expect:
        if result.difference_count:
            print(f"{result.difference_count} packet(s) differ from {args.expect}; the first:", file=sys.stderr)
            for line in result.differences:
                print(f"  {line}", file=sys.stderr)
            if result.failures_file:
                print(f"{result.failures_packets} packet(s) of the differing flows written to {result.failures_file}",
                      file=sys.stderr)
            return 1
        print(f"all {s['packets']} verdicts match {args.expect}")
    return 0


# -------------------------------------------------------------------------------------------- test


def cmd_test(args: argparse.Namespace) -> int:
    files = sgdp.find_scenarios(args.paths)
    engine = sgdp.resolve_engine(args.engine)
    passed = failed = errors = 0
    cases = []
    saved: set[str] = set()
    for path in files:
        try:
            scenario = sgdp.load_scenario(path)
        except SgdpError as exc:
            print(f"sgdp: error: {one_line(str(exc))}", file=sys.stderr)
            errors += 1
            cases.append((path, os.path.basename(path), "error", str(exc)))
            continue
        result = sgdp.run_scenario(scenario, engine)
        if result.passed:
            passed += 1
            print(f"PASS {path}: {scenario.name} ({len(scenario.steps)} steps)")
            cases.append((path, scenario.name, "pass", ""))
        else:
            failed += 1
            print(f"FAIL {path}: {scenario.name}")
            text = "\n".join(f.describe() for f in result.failures)
            for line in text.splitlines():
                print("  " + line)
            if args.save_failures:
                print(f"  failing packets written to {sgdp.save_scenario_failures(result, args.save_failures, saved)}")
            cases.append((path, scenario.name, "fail", text))
    print(f"{passed} passed, {failed} failed" + (f", {errors} errors" if errors else ""))
    if args.junit_xml:
        write_junit(args.junit_xml, cases, engine)
    if errors:
        return 2
    return 1 if failed else 0


def write_junit(path: str, cases: list[tuple[str, str, str, str]], engine: str) -> None:
    import xml.etree.ElementTree as ET  # only here: every command starts faster without it

    suite = ET.Element("testsuite", name="sgdp", tests=str(len(cases)),
                       failures=str(sum(c[2] == "fail" for c in cases)), errors=str(sum(c[2] == "error" for c in cases)))
    for file, name, status, text in cases:
        case = ET.SubElement(suite, "testcase", classname=file, name=f"{name} [{engine}]")
        if status != "pass":
            node = ET.SubElement(case, "failure" if status == "fail" else "error", message=text.splitlines()[0] if text else status)
            node.text = text
    try:
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise UsageError(f"--junit-xml {path}: {exc.strerror}") from None


# ------------------------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    bench = sgdp.bench
    if args.bench_command == "dataplane":
        r = bench.dataplane(args.packets, args.flows, args.reference_packets)
        if args.json:
            print(json.dumps(r, indent=2))
        else:
            t = r["topology"]
            print(f"generated topology: {t['instances']} instances, {t['security_groups']} groups, {t['rules']} rules, "
                  f"{t['policy_tables']} policy tables; compiled in {r['compile_s']:.2f} s, tables {r['table_bytes'] / 1e6:.1f} MB")
            print(f"fast engine:      {r['fast']['mpps']:.2f} Mpps ({r['fast']['ns_per_packet']:.0f} ns/packet), "
                  f"{r['packets']:,} packets in {r['flows']:,} flows")
            print(f"reference engine: {r['reference']['mpps'] * 1e3:.1f} kpps ({r['reference']['ns_per_packet']:.0f} ns/packet), "
                  f"first {r['reference']['packets']:,} packets")
            print(f"speedup {r['speedup']}x; engines agree: {'yes' if r['agree'] else 'NO'}; peak memory {r['peak_rss_mb']} MB")
        return 0 if r["agree"] else 1
    if args.bench_command == "generate":
        locs = ("generated", "uniform") if args.locality == "both" else (args.locality,)
        r = bench.generate(args.out, args.instances, args.packets, args.flows, locs, tuple(args.limits))
        for f in r["files"]:
            what = f"{f['packets']:,} packets, {f['flows']:,} flows, {f['locality']} locality" if "packets" in f else f"{f['instances']:,} instances"
            print(f"{f['path']}: {what} ({f['bytes'] / 1e6:.1f} MB)")
        return 0
    if args.bench_command == "replay":
        r = bench.replay_capture(args.packets, args.flows, args.reference_packets)
        if args.json:
            print(json.dumps(r, indent=2))
        else:
            print(f"generated capture: {r['packets']:,} packets, {r['capture_bytes'] / 1e6:.0f} MB")
            print(f"ingest alone:        {r['ingest']['mpps']:.2f} Mpps ({r['ingest']['ns_per_packet']:.0f} ns/packet)")
            for key, label in (("scapy_raw_reader", "scapy RawPcapReader"), ("scapy_reader_reference_engine", "scapy PcapReader + reference")):
                if key in r:
                    print(f"{label + ':':<21}{r[key]['mpps'] * 1e3:.1f} kpps over {r[key]['packets']:,} packets")
            for engine in ("fast", "reference"):
                if engine in r:
                    e = r[engine]
                    print(f"replay, {engine + ' engine:':<18}{e['mpps']:.3f} Mpps over {e['packets']:,} packets "
                          f"({e['wall_s']} s wall), peak memory {e['peak_rss_mb']} MB")
                    ph = e["phases"]
                    if ph:
                        print("  phases (s from process start): " + ", ".join(f"{k} {v:.3f}" for k, v in ph.items()))
        return 0
    r = bench.classbench(args.rules, args.trace, args.match, args.engine)
    CLASSBENCH_JSON_KEYS = bench.CLASSBENCH_JSON_KEYS
    if args.json:
        print(json.dumps({k: r[k] for k in CLASSBENCH_JSON_KEYS}))
    else:
        print(f"{args.rules}: {r['rules']:,} rules; {args.trace}: {r['headers']:,} headers")
        print(f"engine {r['engine']}: built in {r['build_s']:.3f} s, tables {r['table_bytes'] / 1e6:.1f} MB")
        print(f"classification: {r['mpps']:.2f} Mpps ({r['ns_per_packet']:.0f} ns/packet, best of {r['repeats']})")
        if r["mismatches"] is not None:
            agree = r["headers"] - r["mismatches"]
            pct = 100.0 * agree / r["headers"] if r["headers"] else 100.0
            print(f"agreement with {args.match}: {agree:,}/{r['headers']:,} ({pct:.3f}%), {r['mismatches']:,} mismatches")
            for i, want, got in r["first_mismatches"]:
                print(f"  header {i} (trace line {i + 1}): expected filter {want}, got {got}")
    return 1 if r["mismatches"] else 0


# ------------------------------------------------------------------------------- diff, decode, import

IMPORT_PREFIX = "sgdp: import: "


def _add_scale_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", default="1", metavar="N",
                   help="run the dataplane in N processes of this machine (auto: one per core, or one process "
                        "for captures under 40 MiB; default 1); "
                        "with --ray, the number of Ray actors (default: the cluster's CPUs)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the dataplane on a Ray cluster: auto (the running cluster), local (start one here) "
                        "or HOST:PORT; needs pip install 'sgdp[ray]'")


def _add_diff(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("diff", help="replay captures through two topologies and report the flows whose verdict changes")
    p.add_argument("old", metavar="OLD", help="the topology in effect now")
    p.add_argument("new", metavar="NEW", help="the topology after the change")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files, replayed in order")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--fail-on-change", action="store_true", help="exit 1 when any flow changes")
    p.add_argument("--html", metavar="FILE", help="also write the HTML report: changed flows, changed packets over time")
    _add_scale_out(p)
    p.add_argument("--engine", choices=("fast", "reference"), default=None,
                   help="dataplane engine (default: $SGDP_ENGINE or fast)")
    return p



def cmd_diff(args: argparse.Namespace) -> int:
    result = sgdp.diff(args.old, args.new, args.captures, args.engine, workers=args.workers, ray=args.ray)
    if getattr(args, "html", None):
        result.report(args.html)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        for line in sgdp.format_diff(result, args.old, args.new):
            print(line)
    sys.stdout.flush()
    if result.error is not None:
        raise result.error
    return 1 if args.fail_on_change and result.changed else 0



def _add_report(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="one self-contained HTML report of a replay's outputs",
                              description="Write one HTML file (no network needed to open it) from the outputs sgdp replay "
                                          "wrote into DIR: summary, verdicts over capture time, top talkers and denied "
                                          "flows, every security-group rule with its hits and check findings, per instance.")
    p.add_argument("out_dir", metavar="DIR", help="the output directory of sgdp replay (summary.json, verdicts.*)")
    p.add_argument("-o", "--output", metavar="FILE", help="report file (default DIR/report.html)")
    p.add_argument("--topology", metavar="FILE", help="the topology (default: the one summary.json records)")
    p.add_argument("--capture", action="append", metavar="CAPTURE",
                   help="a replayed capture, repeated in replay order (default: the ones summary.json records)")
    p.add_argument("--findings", metavar="FILE", help="saved output of sgdp check --json (default: run check)")
    p.add_argument("--no-check", action="store_true", help="do not flag shadowed or not-effective rules")
    return p


def cmd_report(args: argparse.Namespace) -> int:
    if args.findings and args.no_check:
        raise UsageError("--findings and --no-check exclude each other")
    path = sgdp.write_report(args.out_dir, args.output, topology=args.topology, captures=args.capture,
                             findings=False if args.no_check else args.findings)
    print(f"report written to {path} ({os.path.getsize(path):,} bytes)")
    return 0


def _add_decode(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("decode", help="print what the capture reader sees, one row per packet")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files")
    p.add_argument("--csv", action="store_true", help="print CSV (default: an aligned text table)")
    return p



class _Table:
    """An aligned text table printed as it streams: widths grow with the rows seen so far."""

    def __init__(self, out):
        self.out = out
        self.widths = [len(c) for c in sgdp.DECODE_COLUMNS[:-1]]
        self.header_done = False

    def write(self, rows: list[list[str]]) -> None:
        for row in rows:
            for j in range(len(self.widths)):
                if len(row[j]) > self.widths[j]:
                    self.widths[j] = len(row[j])
        if not self.header_done:
            self._line(list(sgdp.DECODE_COLUMNS))
            self.header_done = True
        for row in rows:
            self._line(row)

    def _line(self, row: list[str]) -> None:
        cells = [row[j].rjust(self.widths[j]) if j not in (5, 6, 16) else row[j].ljust(self.widths[j])
                 for j in range(len(self.widths))]
        self.out.write("  ".join(cells) + "  " + row[-1] + "\n" if row[-1] else "  ".join(cells).rstrip() + "\n")


def cmd_decode(args: argparse.Namespace) -> int:
    out = sys.stdout
    import csv

    writer = csv.writer(out, lineterminator="\n") if args.csv else None
    table = None if args.csv else _Table(out)
    if writer is not None:
        writer.writerow(sgdp.DECODE_COLUMNS)
    try:
        for rows in sgdp.decode_batches(args.captures):
            if writer is not None:
                writer.writerows(rows)
            else:
                table.write(rows)
        if table is not None and not table.header_done:
            table.write([])
    except SgdpError:
        out.flush()     # the rows before the error come first
        raise
    return 0



def _add_import(subparsers) -> argparse.ArgumentParser:
    """Register ``import`` with its ``huawei`` sub-command (uses the caller's parser class)."""
    p = subparsers.add_parser("import", help="turn saved cloud API responses into a topology file",
                              description="Turn saved cloud API responses into a topology file (S4).")
    clouds = p.add_subparsers(dest="import_cloud", metavar="CLOUD", parser_class=type(p), required=True)
    h = clouds.add_parser(
        "huawei", help="Huawei Cloud: VPC, ECS and port API responses (JSON)",
        description="Each FILE is one saved JSON response, recognised by its top-level key: security_groups / "
                    "security_group, security_group_rules, address_groups, servers, vpcs, subnets, ports. "
                    "What cannot be mapped is reported on stderr (lines starting 'sgdp: import:').")
    h.add_argument("files", nargs="+", metavar="FILE", help="saved API responses (JSON)")
    h.add_argument("-o", "--output", required=True, metavar="TOPOLOGY",
                   help="topology file to write: YAML if it ends in .yaml/.yml, else JSON; '-' prints YAML")
    return p



def cmd_import(args: argparse.Namespace) -> int:
    """``sgdp import huawei FILE... -o TOPOLOGY``: exit 0 (with reports on stderr); errors raise SgdpError."""
    topo, lines = sgdp.import_huawei(args.files)
    for line in lines[:-1]:
        print(IMPORT_PREFIX + line, file=sys.stderr)
    print(IMPORT_PREFIX + lines[-1], file=sys.stderr)
    sgdp.write_topology(topo, args.output, args.files)
    if args.output != "-":
        counts = []
        for key, what in (("vpcs", "VPC(s)"), ("security_groups", "security group(s)"),
                          ("address_groups", "address group(s)"), ("instances", "instance(s)"),
                          ("virtual_ips", "virtual IP(s)")):
            counts.append(f"{len(topo.get(key, []))} {what}")
        print(f"{args.output}: written ({', '.join(counts)}); {lines[-1]}")
    return 0


# each command's parser (build_parser), in the order of the top-level help
_COMMAND_PARSERS = {"check": _add_check, "explain": _add_explain, "replay": _add_replay, "test": _add_test,
                    "bench": _add_bench, "diff": _add_diff, "report": _add_report, "decode": _add_decode,
                    "import": _add_import}
COMMANDS = {"check": cmd_check, "replay": cmd_replay, "explain": cmd_explain, "test": cmd_test, "bench": cmd_bench, "decode": cmd_decode,
            "import": cmd_import, "diff": cmd_diff, "report": cmd_report}
