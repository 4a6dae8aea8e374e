"""Scenario files (SPEC §6): dataplane regression tests run through one stateful dataplane.

A ``packet:`` step describes one packet; ``expect`` is a verdict (``allow``) or a mapping of verdict
columns (``{verdict, reason, instance, direction, security_group, rule}``; ``null`` means empty). Only
the keys given are compared. ``capture:`` steps need the capture reader and are reported as
unsupported by this version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sgdp.addr import format_ip, parse_ip, parse_mac
from sgdp.errors import ConfigError
from sgdp.model import ICMP, ICMPV6, PORT_PROTOS, PROTO_NAMES, TCP, Topology, load_topology, proto_label, read_structured_file, topology_from_data
from sgdp.packet import TCP_FLAG_LETTERS, Packet, PacketBatch, Verdict, parse_tcp_flags
from sgdp.reference import ReferenceEngine, Trace

PACKET_KEYS = {
    "src", "dst", "proto", "sport", "dport", "flags", "time", "icmp_type", "icmp_code", "icmp_id", "src_mac",
    "frag_offset", "more_fragments", "frag_id", "inner",
}
INNER_KEYS = {"src", "dst", "proto", "sport", "dport", "icmp_id"}
EXPECT_KEYS = ("verdict", "reason", "instance", "direction", "security_group", "rule")
DEFAULT_SPORT = 40000


@dataclass
class Step:
    index: int
    path: str
    packet: Packet
    expect: dict[str, str]
    name: str = ""


@dataclass
class Scenario:
    file: str
    name: str
    topology: Topology
    steps: list[Step]


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
class ScenarioResult:
    scenario: Scenario
    failures: list[StepFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_scenario(path: str) -> Scenario:
    data = read_structured_file(path, "scenario")
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
        topo = load_topology(os.path.join(os.path.dirname(path), topo_ref))
    elif isinstance(topo_ref, dict):
        topo = topology_from_data(topo_ref, f"{path} (inline topology)")
    else:
        raise err("topology", f"expected a path or a mapping, got {topo_ref!r}")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data:
        raise err("steps", "expected a non-empty list of steps")
    steps = []
    now = 0.0
    for i, raw in enumerate(steps_data):
        p = f"steps[{i}]"
        if not isinstance(raw, dict):
            raise err(p, f"expected a mapping, got {raw!r}")
        if "capture" in raw:
            raise err(f"{p}.capture", "capture steps need the capture reader, which this version of sgdp does not have yet")
        unknown = set(raw) - {"packet", "expect", "name"}
        if unknown:
            raise err(f"{p}.{sorted(unknown)[0]}", f"unknown key {sorted(unknown)[0]!r} (allowed: expect, name, packet, capture)")
        if "packet" not in raw or "expect" not in raw:
            raise err(p, "a step has `packet` and `expect`")
        pkt = packet_from_spec(raw["packet"], f"{p}.packet", path, now)
        now = pkt.ts
        steps.append(Step(i, p, pkt, parse_expect(raw["expect"], f"{p}.expect", path), str(raw.get("name") or "")))
    return Scenario(path, str(data.get("name") or os.path.basename(path)), topo, steps)


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
    try:
        src, dst = parse_ip(str(raw["src"])), parse_ip(str(raw["dst"]))
    except ValueError as exc:
        raise err("src" if "src" in str(exc) else "dst", str(exc)) from None
    if src[0] != dst[0]:
        raise err("dst", f"{raw['dst']!r} is not the same IP version as src {raw['src']!r}")
    proto = _proto(raw.get("proto", "tcp"), err)
    pkt = Packet(ts=float(raw.get("time", default_time)), l3=src[0], src=src[1], dst=dst[1], proto=proto)
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
    if isinstance(value, str) and value.isdigit():
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
        trace = Trace()
        if engine is reference:
            actual = reference.step(step.packet, trace)
        else:
            actual = engine.names.decode(engine.process(PacketBatch.from_packets([step.packet])), 0)
            reference.step(step.packet, trace)
        if any(getattr(actual, k) != v for k, v in step.expect.items()):
            result.failures.append(StepFailure(step, actual, trace))
    return result


def describe_packet(pkt: Packet) -> str:
    src, dst = format_ip(pkt.l3, pkt.src), format_ip(pkt.l3, pkt.dst)
    text = f"t={pkt.ts:g} {proto_label(pkt.proto)} {src}"
    if pkt.proto in PORT_PROTOS:
        text += f":{pkt.sport} -> {dst}:{pkt.dport}"
    else:
        text += f" -> {dst}"
    if pkt.proto == TCP:
        text += " flags=" + ("".join(k for k, v in TCP_FLAG_LETTERS.items() if pkt.tcp_flags & v) or "none")
    if pkt.proto in (ICMP, ICMPV6):
        text += f" type={pkt.icmp_type} code={pkt.icmp_code} id={pkt.icmp_id}"
    return text


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
                    lines.append(f"  - {r['security_group']}/{r['rule']} {r['action']}: {'MATCH' if r['matched'] else 'no match'}")
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
