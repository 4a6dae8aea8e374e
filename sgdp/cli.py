"""The command line: argument parsing and output formatting only. ``main(argv) -> int``.

Exit codes (SPEC §5): 0 success; 1 expectations not met; 2 usage, config or input error, printed as
one line ``sgdp: error: …`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET
from typing import Any, Sequence

from sgdp import __version__, decode, importer
from sgdp import diff as diff_cmd
from sgdp.addr import parse_endpoint
from sgdp.errors import SgdpError, UsageError
from sgdp.packet import Packet


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``sgdp: error:`` line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}" if self.prog != "sgdp" else message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sgdp", description="Huawei Cloud VPC security-group dataplane emulator.")
    parser.add_argument("--version", action="version", version=f"sgdp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("check", help="validate a topology and report findings")
    p.add_argument("topology")
    p.add_argument("--json", action="store_true", help="print findings as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 when there are findings")

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
    _engine_arg(p)

    p = sub.add_parser("test", help="run scenario files")
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files, or directories searched for *.sgdp.yaml")
    p.add_argument("--junit-xml", metavar="FILE")
    p.add_argument("--save-failures", metavar="DIR",
                   help="write each failing scenario's packets (with the earlier packets of their flows) to DIR/<scenario>.pcap")
    _engine_arg(p)

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
    b = bench.add_parser("replay", help="ingest alone and end-to-end replay of a generated capture")
    b.add_argument("--packets", type=int, default=1_000_000)
    b.add_argument("--flows", type=int, default=50_000)
    b.add_argument("--reference-packets", type=int, default=20_000)
    b.add_argument("--json", action="store_true")
    diff_cmd.add_parser(sub)
    decode.add_parser(sub)
    importer.add_parser(sub)
    return parser


def _engine_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("fast", "reference"), default=None,
                   help="dataplane engine (default: $SGDP_ENGINE or fast)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help(sys.stderr)
            return 2
        return COMMANDS[args.command](args)
    except SgdpError as exc:
        print(f"sgdp: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


# ------------------------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    from sgdp.check import check
    from sgdp.model import load_topology

    topo = load_topology(args.topology)
    findings = check(topo)
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
    from sgdp.engine import make_engine
    from sgdp.model import load_topology
    from sgdp.reference import ReferenceEngine, Trace
    from sgdp.scenario import describe_packet, format_trace, packet_from_spec

    topo = load_topology(args.topology)
    pkt = _explain_packet(args, packet_from_spec)
    engine = make_engine(topo, args.engine)
    reference = engine if isinstance(engine, ReferenceEngine) else ReferenceEngine(topo)
    trace = Trace()
    verdict = reference.step(pkt, trace)
    if engine is not reference:
        from sgdp.packet import PacketBatch

        verdict = engine.names.decode(engine.process(PacketBatch.from_packets([pkt])), 0)
    not_effective = []
    for step in trace.steps:
        for r in step.get("rules", ()):
            if "not_effective" in r:
                nic_instance = step["nic"].split("#", 1)[0]
                item = {"security_group": r["security_group"], "rule": r["rule"], "instance": nic_instance, "why": r["not_effective"]}
                if item not in not_effective:
                    not_effective.append(item)
    if args.json:
        out: dict[str, Any] = {
            "verdict": verdict.verdict, "reason": verdict.reason, "instance": verdict.instance or None,
            "direction": verdict.direction or None, "security_group": verdict.security_group or None,
            "rule": verdict.rule or None, "steps": trace.steps, "not_effective": not_effective,
        }
        print(json.dumps(out, indent=2))
    else:
        print(f"packet   {describe_packet(pkt)}")
        for line in format_trace(trace):
            print(line)
        where = " ".join(x for x in (verdict.instance, verdict.direction) if x)
        by = "/".join(x for x in (verdict.security_group, verdict.rule) if x)
        print(f"verdict  {verdict.verdict.upper()} ({verdict.reason}{', ' + where if where else ''}{', ' + by if by else ''})")
    return 0


def _explain_packet(args: argparse.Namespace, packet_from_spec) -> Packet:
    try:
        (src, sport), (dst, dport) = parse_endpoint(args.src), parse_endpoint(args.dst)
    except ValueError as exc:
        raise UsageError(f"--src/--dst: {exc}") from None
    from sgdp.addr import format_ip

    spec: dict[str, Any] = {"src": format_ip(*src), "dst": format_ip(*dst), "proto": args.proto, "flags": args.tcp_flags}
    if sport is not None:
        spec["sport"] = sport
    if dport is not None:
        spec["dport"] = dport
    if args.icmp_type is not None:
        spec["icmp_type"] = args.icmp_type
    if args.icmp_code is not None:
        spec["icmp_code"] = args.icmp_code
    try:
        return packet_from_spec(spec, "", "command line")
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
    from sgdp.replay import replay

    progress = not args.no_progress and sys.stderr.isatty()
    result = replay(args.topology, args.captures, args.output, args.verdicts, args.split, args.engine,
                    args.expect, progress, timeline=args.timeline, save_failures=args.save_failures)
    s = result.summary
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"{s['packets']} packets: {s['allowed']} allowed, {s['denied']} denied, "
              f"{s['unmodelled']} unmodelled, {s['malformed']} malformed "
              f"({s['engine']} engine, {s['packets_per_s'] or 0:,.0f} packets/s)")
        for reason, n in s["by_reason"].items():
            print(f"  {reason:<12} {n}")
        for v in s.get("versions", ()):
            since = "from the start" if v["at"] is None else f"from {v['at']}"
            print(f"  version {v['topology']} ({since}): {v['packets']} packets")
        print(f"outputs in {args.output}/")
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
    from sgdp.engine import resolve_engine
    from sgdp.scenario import load_scenario, run_scenario

    files = find_scenarios(args.paths)
    engine = resolve_engine(args.engine)
    passed = failed = errors = 0
    cases = []
    saved: set[str] = set()
    for path in files:
        try:
            scenario = load_scenario(path)
        except SgdpError as exc:
            print(f"sgdp: error: {exc}", file=sys.stderr)
            errors += 1
            cases.append((path, os.path.basename(path), "error", str(exc)))
            continue
        result = run_scenario(scenario, engine)
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
                from sgdp.counterexamples import save_scenario_failures

                print(f"  failing packets written to {save_scenario_failures(result, args.save_failures, saved)}")
            cases.append((path, scenario.name, "fail", text))
    print(f"{passed} passed, {failed} failed" + (f", {errors} errors" if errors else ""))
    if args.junit_xml:
        write_junit(args.junit_xml, cases, engine)
    if errors:
        return 2
    return 1 if failed else 0


def find_scenarios(paths: Sequence[str]) -> list[str]:
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = []
            for root, _, names in os.walk(path):
                found.extend(os.path.join(root, n) for n in names if n.endswith((".sgdp.yaml", ".sgdp.yml")))
            files.extend(sorted(found))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    if not files:
        raise UsageError(f"no scenario files (*.sgdp.yaml) under {' '.join(paths)}")
    return files


def write_junit(path: str, cases: list[tuple[str, str, str, str]], engine: str) -> None:
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
    from sgdp import bench

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


COMMANDS = {"check": cmd_check, "replay": cmd_replay, "explain": cmd_explain, "test": cmd_test, "bench": cmd_bench, "decode": decode.cmd_decode,
            "import": importer.cmd_import, "diff": diff_cmd.cmd_diff}
