"""Scenario files (SPEC §6): dataplane regression tests run through one stateful dataplane.

A ``packet:`` step describes one packet; ``expect`` is a verdict (``allow``) or a mapping of verdict
columns (``{verdict, reason, instance, direction, security_group, rule}``; ``null`` means empty). Only
the keys given are compared.

A ``capture:`` step replays a pcap/pcapng file (path relative to the scenario file) through the same
dataplane, between the steps before and after it. Its ``expect`` is either a verdict or mapping as
above, applied to every packet of the capture, or ``{verdicts: FILE}``: a saved verdict file (csv,
jsonl or parquet, as ``sgdp replay`` writes it) compared row by row — index (0-based in the capture),
verdict, reason, instance, direction, security_group and rule (not ts). The capture and the verdict
file are read once when the scenario loads, so a bad file is a load error (naming the scenario step,
the file and, for a corrupt capture, the byte offset), and again, streamed, when the step runs.

Time: packets keep their capture timestamps. A packet step without ``time`` takes the previous
step's time; after a capture step that is the latest timestamp in the capture. The dataplane clock
never goes back (docs/semantics.md), so a capture stamped earlier than the steps before it is
processed at their time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from sgdp.topology import format_ip, is_number, parse_ip, parse_mac
from sgdp.errors import ConfigError, SgdpError, UsageError, path_names
from sgdp.topology import ICMP, ICMPV6, PORT_PROTOS, PROTO_NAMES, TCP, Topology, load_topology, proto_label, read_structured_file, topology_from_data
from sgdp.capture import MALFORMED, NON_IP, TCP_FLAG_LETTERS, Packet, PacketBatch, Verdict, parse_tcp_flags
from sgdp.engine import ReferenceEngine, Trace

PACKET_KEYS = {
    "src", "dst", "proto", "sport", "dport", "flags", "time", "icmp_type", "icmp_code", "icmp_id", "src_mac",
    "frag_offset", "more_fragments", "frag_id", "inner",
}
INNER_KEYS = {"src", "dst", "proto", "sport", "dport", "icmp_id"}
EXPECT_KEYS = ("verdict", "reason", "instance", "direction", "security_group", "rule")
DEFAULT_SPORT = 40000
MAX_LISTED = 10  # failing packets of one capture step listed in a failure report


@dataclass
class Step:
    index: int
    path: str
    packet: Packet
    expect: dict[str, str]
    name: str = ""


@dataclass
class CaptureStep:
    """A ``capture:`` step: every packet of ``capture`` through the dataplane.

    ``expect`` applies to every packet, unless ``verdicts`` (a saved verdict file) gives one row per
    packet. ``packets`` and ``last_ts`` (the latest timestamp; None when empty) were read at load.
    """

    index: int
    path: str
    capture: str
    expect: dict[str, str]
    verdicts: str | None = None
    name: str = ""
    packets: int = 0
    last_ts: float | None = None


@dataclass
class Scenario:
    file: str
    name: str
    topology: Topology
    steps: list[Step | CaptureStep]


@dataclass
class StepFailure:
    step: Step
    actual: Verdict
    trace: Trace

    def describe(self) -> str:
        exp = ", ".join(f"{k}={v or '(empty)'}" for k, v in self.step.expect.items())
        act = ", ".join(f"{k}={getattr(self.actual, k) or '(empty)'}" for k in self.step.expect)
        lines = [
            f"step {self.step.index + 1} ({self.step.path}){': ' + self.step.name if self.step.name else ''}",
            f"  packet:   {describe_packet(self.step.packet)}",
            f"  expected: {exp}",
            f"  actual:   {act}",
            "  trace:",
        ]
        lines.extend("    " + line for line in format_trace(self.trace))
        return "\n".join(lines)


@dataclass
class PacketMismatch:
    """One packet of a capture step whose verdict differs from the expectation."""

    index: int                # 0-based position in the capture (the verdict file's index)
    packet: Packet | None     # None when the capture and the verdict file disagree on the row count
    expected: dict[str, str]
    actual: Verdict | None
    note: str = ""


@dataclass
class CaptureFailure:
    """A capture step with packets that do not meet the expectation (the first ones are kept)."""

    step: CaptureStep
    mismatches: list[PacketMismatch]
    count: int                 # every differing packet (and missing or extra verdict-file row)
    packets: int               # packets replayed
    trace: Trace | None        # the reference engine's trace of the first failing packet
    indexes: list[int] = field(default_factory=list)  # every failing packet (for --save-failures)

    def describe(self) -> str:
        step = self.step
        against = f"the verdict file {step.verdicts}" if step.verdicts else \
            "{" + ", ".join(f"{k}: {v or 'null'}" for k, v in step.expect.items()) + "} for every packet"
        lines = [
            f"step {step.index + 1} ({step.path}){': ' + step.name if step.name else ''}",
            f"  capture:  {step.capture} ({self.packets} packets), expected: {against}",
            f"  {self.count} packet(s) differ; packet indexes are 0-based positions in the capture:",
        ]
        for m in self.mismatches:
            if m.packet is not None:
                lines.append(f"  packet {m.index}: {describe_packet(m.packet)}")
            else:
                lines.append(f"  packet {m.index}:")
            if m.note:
                lines.append(f"    {m.note}")
            keys = [k for k in EXPECT_KEYS if k in m.expected] or list(EXPECT_KEYS)
            if m.expected:
                lines.append("    expected: " + ", ".join(f"{k}={m.expected[k] or '(empty)'}" for k in keys))
            if m.actual is not None:
                lines.append("    actual:   " + ", ".join(f"{k}={getattr(m.actual, k) or '(empty)'}" for k in keys))
        if self.count > len(self.mismatches):
            lines.append(f"  ... and {self.count - len(self.mismatches)} more")
        first = next((m for m in self.mismatches if m.packet is not None), None)
        if first is not None:
            lines.append(f"  trace of packet {first.index}:")
            trace_lines = format_trace(self.trace) if self.trace is not None else []
            if not trace_lines:
                trace_lines = [_no_trace(first.packet)]
            lines.extend("    " + line for line in trace_lines)
        return "\n".join(lines)


@dataclass
class ScenarioResult:
    scenario: Scenario
    failures: list[StepFailure | CaptureFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_scenario(path: str) -> Scenario:
    data = read_structured_file(path, "scenario")
    try:
        return _scenario_from_data(path, data)
    except ConfigError as exc:
        if exc.file != path or exc.names or not exc.path:
            raise
        names = path_names(data, exc.path)  # the step by its name, beside its index
        if not names:
            raise
        raise ConfigError(exc.file, exc.path, exc.detail, names) from None


def _scenario_from_data(path: str, data: Any) -> Scenario:
    err = lambda p, m: ConfigError(path, p, m)  # noqa: E731
    if not isinstance(data, dict):
        raise err("", f"a scenario is a mapping with `topology` and `steps`, got {type(data).__name__}")
    unknown = set(data) - {"name", "description", "topology", "steps"}
    if unknown:
        raise err(sorted(unknown)[0], f"unknown key {sorted(unknown)[0]!r} (allowed: description, name, steps, topology)")
    if data.get("topology") is None:
        raise err("topology", "is required (a path relative to this file, or an inline topology)")
    topo_ref = data["topology"]
    if isinstance(topo_ref, str):
        topo_path = os.path.join(os.path.dirname(path), topo_ref)
        if not os.path.exists(topo_path):
            raise err("topology", f"{topo_ref!r}: no such topology file ({topo_path})")
        topo = load_topology(topo_path)
    elif isinstance(topo_ref, dict):
        topo = topology_from_data(topo_ref, f"{path} (inline topology)")
    else:
        raise err("topology", f"expected a path or a mapping, got {topo_ref!r}")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data:
        raise err("steps", "expected a non-empty list of steps")
    steps: list[Step | CaptureStep] = []
    now = 0.0
    for i, raw in enumerate(steps_data):
        p = f"steps[{i}]"
        if not isinstance(raw, dict):
            raise err(p, f"expected a mapping, got {raw!r}")
        unknown = set(raw) - {"packet", "capture", "expect", "name"}
        if unknown:
            raise err(f"{p}.{sorted(unknown)[0]}", f"unknown key {sorted(unknown)[0]!r} (allowed: capture, expect, name, packet)")
        if "packet" in raw and "capture" in raw:
            raise err(p, "a step has either `packet` or `capture`, not both")
        if ("packet" not in raw and "capture" not in raw) or "expect" not in raw:
            raise err(p, "a step has `packet` (or `capture`) and `expect`")
        name = str(raw.get("name") or "")
        if "capture" in raw:
            step = _capture_step(raw, i, p, path)
            if step.last_ts is not None:
                now = step.last_ts
            steps.append(step)
            continue
        pkt = packet_from_spec(raw["packet"], f"{p}.packet", path, now)
        now = pkt.ts
        steps.append(Step(i, p, pkt, parse_expect(raw["expect"], f"{p}.expect", path), name))
    return Scenario(path, str(data.get("name") or os.path.basename(path)), topo, steps)


def _capture_step(raw: dict, i: int, p: str, path: str) -> CaptureStep:
    """A ``capture:`` step, with its capture (and verdict file) read once to check them."""
    from sgdp.capture import capture_problem, is_stream, read_batches

    base = os.path.dirname(path)
    ref = raw["capture"]
    if not isinstance(ref, str) or not ref:
        raise ConfigError(path, f"{p}.capture", f"expected the path of a pcap or pcapng file, got {ref!r}")
    capture = os.path.normpath(os.path.join(base, ref))
    problem = capture_problem(capture)
    if problem is None and is_stream(capture):
        problem = "is a stream; a scenario's capture must be a file (it is read more than once)"
    if problem is not None:
        raise ConfigError(path, f"{p}.capture", f"{capture}: {problem}")
    expect = raw["expect"]
    verdicts = None
    if isinstance(expect, dict) and "verdicts" in expect:
        if len(expect) != 1:
            other = sorted(k for k in expect if k != "verdicts")[0]
            raise ConfigError(path, f"{p}.expect.{other}", "`verdicts` (a verdict file) is compared whole: no other keys beside it")
        vref = expect["verdicts"]
        if not isinstance(vref, str) or not vref:
            raise ConfigError(path, f"{p}.expect.verdicts", f"expected the path of a verdict file (csv, jsonl or parquet), got {vref!r}")
        verdicts = os.path.normpath(os.path.join(base, vref))
        if not os.path.isfile(verdicts):
            raise ConfigError(path, f"{p}.expect.verdicts", f"{verdicts}: no such verdict file")
        try:
            for _ in _verdict_rows(verdicts):
                pass
        except SgdpError as exc:
            raise ConfigError(path, f"{p}.expect.verdicts", str(exc)) from None
        expected: dict[str, str] = {}
    else:
        expected = parse_expect(expect, f"{p}.expect", path)
    packets, last = 0, None
    try:
        for batch in read_batches([capture]):
            if len(batch):
                packets += len(batch)
                top = float(batch.columns["ts"].max())
                last = top if last is None else max(last, top)
    except SgdpError as exc:
        raise ConfigError(path, f"{p}.capture", str(exc)) from None
    return CaptureStep(i, p, capture, expected, verdicts, str(raw.get("name") or ""), packets, last)


def _verdict_rows(path: str):
    from sgdp.pipeline import read_verdict_file

    return read_verdict_file(path)


def parse_expect(value: Any, p: str, file: str) -> dict[str, str]:
    if isinstance(value, str):
        value = {"verdict": value}
    if not isinstance(value, dict) or not value:
        raise ConfigError(file, p, f"expected a verdict or a mapping of {', '.join(EXPECT_KEYS)}, got {value!r}")
    out = {}
    for key, v in value.items():
        if key not in EXPECT_KEYS:
            raise ConfigError(file, f"{p}.{key}", f"unknown key {key!r} (allowed: {', '.join(EXPECT_KEYS)})")
        out[key] = "" if v is None else str(v)
    if out.get("verdict") not in (None, "allow", "deny", "unmodelled", "malformed"):
        raise ConfigError(file, f"{p}.verdict", f"{out['verdict']!r} is not a verdict (allow, deny, unmodelled, malformed)")
    return out


def packet_from_spec(raw: Any, p: str, file: str, default_time: float = 0.0) -> Packet:
    """A packet from a scenario step or the explain command line."""
    err = lambda q, m: ConfigError(file, f"{p}.{q}" if q else p, m)  # noqa: E731
    if not isinstance(raw, dict):
        raise err("", f"expected a mapping, got {raw!r}")
    for key in raw:
        if key not in PACKET_KEYS:
            raise err(key, f"unknown key {key!r} (allowed: {', '.join(sorted(PACKET_KEYS))})")
    for key in ("src", "dst"):
        if raw.get(key) is None:
            raise err(key, "is required")
    addrs = []
    for key in ("src", "dst"):  # each address is checked on its own: the message names the one that is bad
        try:
            addrs.append(parse_ip(str(raw[key])))
        except ValueError as exc:
            raise err(key, str(exc)) from None
    src, dst = addrs
    if src[0] != dst[0]:
        raise err("dst", f"{raw['dst']!r} is not the same IP version as src {raw['src']!r}")
    proto = _proto(raw.get("proto", "tcp"), err)
    ts = raw.get("time", default_time)
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise err("time", f"{ts!r} is not a time in seconds (a finite number)")
    pkt = Packet(ts=float(ts), l3=src[0], src=src[1], dst=dst[1], proto=proto)
    if proto in PORT_PROTOS:
        pkt.sport = _int(raw.get("sport", DEFAULT_SPORT), "sport", 0, 65535, err)
        if raw.get("dport") is None:
            raise err("dport", f"is required for {proto_label(proto)}")
        pkt.dport = _int(raw["dport"], "dport", 0, 65535, err)
    if proto == TCP:
        try:
            pkt.tcp_flags = parse_tcp_flags(raw.get("flags", "S"))
        except ValueError as exc:
            raise err("flags", str(exc)) from None
    if proto in (ICMP, ICMPV6):
        echo = 8 if proto == ICMP else 128
        pkt.icmp_type = _int(raw.get("icmp_type", echo), "icmp_type", 0, 255, err)
        pkt.icmp_code = _int(raw.get("icmp_code", 0), "icmp_code", 0, 255, err)
        pkt.icmp_id = _int(raw.get("icmp_id", 1), "icmp_id", 0, 65535, err)
    if raw.get("src_mac") is not None:
        try:
            pkt.src_mac = parse_mac(raw["src_mac"])
        except ValueError as exc:
            raise err("src_mac", str(exc)) from None
    pkt.frag_offset = _int(raw.get("frag_offset", 0), "frag_offset", 0, 8191, err)
    pkt.more_fragments = 1 if raw.get("more_fragments") else 0
    pkt.frag_id = _int(raw.get("frag_id", 0), "frag_id", 0, 0xFFFFFFFF, err)
    if raw.get("inner") is not None:
        inner = raw["inner"]
        if not isinstance(inner, dict):
            raise err("inner", f"expected a mapping (the embedded header of an ICMP error), got {inner!r}")
        for key in inner:
            if key not in INNER_KEYS:
                raise err(f"inner.{key}", f"unknown key {key!r} (allowed: {', '.join(sorted(INNER_KEYS))})")
        try:
            isrc, idst = parse_ip(str(inner.get("src"))), parse_ip(str(inner.get("dst")))
        except ValueError as exc:
            raise err("inner", str(exc)) from None
        pkt.inner_l3, pkt.inner_src, pkt.inner_dst = isrc[0], isrc[1], idst[1]
        pkt.inner_proto = _proto(inner.get("proto", "udp"), err)
        if pkt.inner_proto in (ICMP, ICMPV6):
            pkt.inner_sport = _int(inner.get("icmp_id", 1), "inner.icmp_id", 0, 65535, err)
        else:
            pkt.inner_sport = _int(inner.get("sport", DEFAULT_SPORT), "inner.sport", 0, 65535, err)
            pkt.inner_dport = _int(inner.get("dport", 0), "inner.dport", 0, 65535, err)
    return pkt


def _proto(value: Any, err) -> int:
    if isinstance(value, str) and value.lower() in PROTO_NAMES:
        return PROTO_NAMES[value.lower()]
    if isinstance(value, str) and is_number(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise err("proto", f"{value!r} is not a protocol (tcp, udp, icmp, icmpv6, gre or 0..255)")


def _int(value: Any, key: str, lo: int, hi: int, err) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise err(key, f"{value!r} is not an integer {lo}..{hi}")
    return value


def run_scenario(scenario: Scenario, engine_name: str = "reference") -> ScenarioResult:
    """Run every step through one stateful dataplane; compare with expectations."""
    from sgdp.engine import make_engine

    engine = make_engine(scenario.topology, engine_name)
    # The reference engine also gives the trace shown on failure; another engine runs beside it.
    reference = engine if isinstance(engine, ReferenceEngine) else ReferenceEngine(scenario.topology)
    result = ScenarioResult(scenario)
    for step in scenario.steps:
        if isinstance(step, CaptureStep):
            failure = _run_capture(step, engine, reference)
            if failure is not None:
                result.failures.append(failure)
            continue
        trace = Trace()
        if engine is reference:
            actual = reference.step(step.packet, trace)
        else:
            actual = engine.names.decode(engine.process(PacketBatch.from_packets([step.packet])), 0)
            reference.step(step.packet, trace)
        if any(getattr(actual, k) != v for k, v in step.expect.items()):
            result.failures.append(StepFailure(step, actual, trace))
    return result


def _run_capture(step: CaptureStep, engine, reference: ReferenceEngine) -> CaptureFailure | None:
    """Replay one capture step through ``engine`` (and the reference engine shadowing it, for the
    trace); compare every packet with the expectation. Streams the capture and the verdict file."""
    from sgdp.capture import read_batches

    rows = iter(_verdict_rows(step.verdicts)) if step.verdicts else None
    mismatches: list[PacketMismatch] = []
    failing: list[int] = []
    count = 0
    trace: Trace | None = None
    index = 0
    for batch in read_batches([step.capture]):
        fast = None if engine is reference else engine.process(batch)
        for i in range(len(batch)):
            pkt = batch.packet(i)
            want = Trace() if trace is None else None  # trace packets until the first failure
            got = reference.step(pkt, want)
            if fast is not None:
                got = engine.names.decode(fast, i)
            note = ""
            if rows is None:
                expected = step.expect
                bad = any(getattr(got, k) != v for k, v in expected.items())
            else:
                exp_index, exp = next(rows, (-1, None))
                if exp is None:
                    expected, bad = {}, True
                    note = "the verdict file has no row for this packet"
                else:
                    expected = {k: getattr(exp, k) for k in EXPECT_KEYS}
                    bad = exp != got
                    if exp_index != index:
                        bad = True
                        note = f"the verdict file's row here has index {exp_index}"
            if bad:
                count += 1
                failing.append(index)
                if trace is None:
                    trace = want
                if len(mismatches) < MAX_LISTED:
                    mismatches.append(PacketMismatch(index, pkt, expected, got, note))
            index += 1
    if rows is not None:
        extra = sum(1 for _ in rows)
        if extra:
            count += extra
            if len(mismatches) < MAX_LISTED:
                mismatches.append(PacketMismatch(index, None, {}, None,
                                                 f"the verdict file has {extra} more row(s) than the {index} packet(s) of the capture"))
    elif index == 0:
        count += 1
        mismatches.append(PacketMismatch(0, None, {}, None,
                                         "the capture holds no packets: an expectation for every packet checks nothing"))
    if not count:
        return None
    return CaptureFailure(step, mismatches, count, index, trace, failing)


def _no_trace(pkt: Packet) -> str:
    if pkt.status == MALFORMED:
        return "(no trace: the frame is malformed, nothing was evaluated)"
    if pkt.status == NON_IP or pkt.l3 not in (4, 6):
        return "(no trace: the frame is not IP, nothing was evaluated)"
    return "(no trace)"


def describe_packet(pkt: Packet) -> str:
    if pkt.status == MALFORMED:
        return f"t={_time(pkt.ts)} malformed frame"
    if pkt.status == NON_IP or pkt.l3 not in (4, 6):
        return f"t={_time(pkt.ts)} non-IP frame"
    src, dst = format_ip(pkt.l3, pkt.src), format_ip(pkt.l3, pkt.dst)
    text = f"t={_time(pkt.ts)} {proto_label(pkt.proto)} {src}"
    if pkt.proto in PORT_PROTOS and not pkt.frag_offset:
        text += f":{pkt.sport} -> {dst}:{pkt.dport}"
    else:
        text += f" -> {dst}"
    if pkt.proto == TCP and not pkt.frag_offset:
        text += " flags=" + ("".join(k for k, v in TCP_FLAG_LETTERS.items() if pkt.tcp_flags & v) or "none")
    if pkt.proto in (ICMP, ICMPV6) and pkt.icmp_type >= 0:
        text += f" type={pkt.icmp_type} code={pkt.icmp_code}"
        if pkt.icmp_type in ((0, 8) if pkt.proto == ICMP else (128, 129)):
            text += f" id={pkt.icmp_id}"
    if pkt.inner_l3:
        isrc, idst = format_ip(pkt.inner_l3, pkt.inner_src), format_ip(pkt.inner_l3, pkt.inner_dst)
        if pkt.inner_proto in PORT_PROTOS:
            inner = f"{proto_label(pkt.inner_proto)} {isrc}:{pkt.inner_sport} -> {idst}:{pkt.inner_dport}"
        elif pkt.inner_proto in (ICMP, ICMPV6):
            inner = f"{proto_label(pkt.inner_proto)} {isrc} -> {idst} id={pkt.inner_sport}"
        else:
            inner = f"{proto_label(pkt.inner_proto)} {isrc} -> {idst}"
        text += f" quoting [{inner}]"
    if pkt.frag_offset or pkt.more_fragments:
        text += f" fragment id={pkt.frag_id} offset={pkt.frag_offset * 8}{' MF' if pkt.more_fragments else ''}"
    return text


def _time(ts: float) -> str:
    """A timestamp to the microsecond, without trailing zeros (``5``, ``0.01``, ``1700000005.022``)."""
    text = f"{ts:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def format_trace(trace: Trace) -> list[str]:
    """The explain trace as text lines."""
    lines = []
    for step in trace.steps:
        kind = step["step"]
        if kind == "endpoints":
            lines.append(f"sender   {step['sender']}")
            lines.append(f"receiver {step['receiver']}")
        elif kind == "path":
            lines.append("path: exists" if step["exists"] else f"path: none ({step['detail']})")
        elif kind == "security_groups":
            lines.append(f"{step['direction']} at {step['nic']} (groups {', '.join(step['groups'])}; peer {step['peer']}):")
            for r in step["rules"]:
                if "not_effective" in r:
                    lines.append(f"  - {r['security_group']}/{r['rule']}: skipped, not effective ({r['not_effective']})")
                else:
                    why = f" ({r['why']})" if r.get("why") else ""
                    lines.append(f"  - {r['security_group']}/{r['rule']} {r['action']}: {'MATCH' if r['matched'] else 'no match'}{why}")
            outcome = "allowed" if step["allowed"] else "denied"
            by = f"by {step['security_group']}/{step['rule']}" if step["rule"] else "by default (no rule matched)"
            lines.append(f"  => {outcome} {by}")
        elif kind == "conntrack":
            lines.append(f"{step['direction']} at {step['nic']}: {step['result']} (connection tracking)")
        elif kind == "network_acl":
            if "allowed" in step:
                lines.append(f"network ACL {step['acl']} {step['way']}: {'allowed' if step['allowed'] else 'denied'} by {step['rule']}")
            else:
                lines.append(f"network ACL {step['acl']} {step['way']}: {step['result']} (connection tracking)")
        else:
            rest = ", ".join(f"{k}={v}" for k, v in step.items() if k != "step")
            lines.append(f"{kind}: {rest}")
    return lines


def find_scenarios(paths: Sequence[str]) -> list[str]:
    """The scenario files named, directories searched for ``*.sgdp.yaml`` / ``*.sgdp.yml``."""
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
