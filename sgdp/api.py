"""The public Python API, re-exported by ``sgdp`` itself: what the command line does, as calls.

Every function takes paths or objects, returns result objects and raises the typed errors of
:mod:`sgdp.errors` (the messages the command line prints). The command line (:mod:`sgdp.cli`) is
argument parsing and printing over these functions and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from sgdp.capture import Packet, PacketBatch, decode_rows
from sgdp.engine import ReferenceEngine, Trace, make_engine
from sgdp.pipeline import DiffResult, ReplayResult
from sgdp.pipeline import diff as _diff
from sgdp.pipeline import replay as _replay
from sgdp.testing import describe_packet, format_trace, packet_from_spec
from sgdp.topology import Finding, Topology, topology_from_data
from sgdp.topology import check as _check
from sgdp.topology import load_topology as _load_topology

__all__ = ["load_topology", "check", "make_packet", "explain", "Explanation", "replay", "diff", "decode"]


def load_topology(source: str | os.PathLike[str] | Mapping[str, Any] | Topology) -> Topology:
    """A validated topology from a YAML/JSON file, or from a dict shaped like the file."""
    if isinstance(source, Topology):
        return source
    if isinstance(source, Mapping):
        return topology_from_data(dict(source), "<topology>")
    return _load_topology(source)


def check(topology: str | os.PathLike[str] | Mapping[str, Any] | Topology) -> list[Finding]:
    """The findings of ``sgdp check``: rules that do not take effect, shadowed rules, limits, risks."""
    return _check(load_topology(topology))


def make_packet(spec: Mapping[str, Any], time: float = 0.0) -> Packet:
    """A packet from the keys of a scenario step (``src``, ``dst``, ``proto``, ``dport``, ``flags``...)."""
    return packet_from_spec(dict(spec), "", "packet", time)


@dataclass
class Explanation:
    """The verdict for one new packet and every step that led to it."""

    packet: Packet
    verdict: Any
    trace: Trace
    not_effective: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {"verdict": v.verdict, "reason": v.reason, "instance": v.instance or None,
                "direction": v.direction or None, "security_group": v.security_group or None,
                "rule": v.rule or None, "steps": self.trace.steps, "not_effective": self.not_effective}

    def lines(self) -> list[str]:
        v = self.verdict
        where = " ".join(x for x in (v.instance, v.direction) if x)
        by = "/".join(x for x in (v.security_group, v.rule) if x)
        return [f"packet   {describe_packet(self.packet)}", *format_trace(self.trace),
                f"verdict  {v.verdict.upper()} ({v.reason}{', ' + where if where else ''}{', ' + by if by else ''})"]


def explain(topology: str | os.PathLike[str] | Mapping[str, Any] | Topology, packet: Packet | Mapping[str, Any],
            engine: str | None = None) -> Explanation:
    """Why ``packet`` (a Packet or scenario-step keys), sent as a new packet, gets its verdict.

    The steps come from the reference engine; the verdict from ``engine`` (they agree)."""
    topo = load_topology(topology)
    pkt = packet if isinstance(packet, Packet) else make_packet(packet)
    dataplane = make_engine(topo, engine)
    reference = dataplane if isinstance(dataplane, ReferenceEngine) else ReferenceEngine(topo)
    trace = Trace()
    verdict = reference.step(pkt, trace)
    if dataplane is not reference:
        verdict = dataplane.names.decode(dataplane.process(PacketBatch.from_packets([pkt])), 0)
    not_effective: list[dict[str, str]] = []
    for step in trace.steps:
        for r in step.get("rules", ()):
            if "not_effective" in r:
                item = {"security_group": r["security_group"], "rule": r["rule"],
                        "instance": step["nic"].split("#", 1)[0], "why": r["not_effective"]}
                if item not in not_effective:
                    not_effective.append(item)
    return Explanation(pkt, verdict, trace, not_effective)


def replay(topology: str | os.PathLike[str], captures: Iterable[str | os.PathLike[str]], out_dir: str = "sgdp-out",
           verdicts: str = "csv", **options: Any) -> ReplayResult:
    """Replay captures in order through one stateful dataplane; writes ``summary.json`` and the
    verdict file into ``out_dir`` (options: ``split``, ``engine_name``, ``expect``, ``timeline``,
    ``save_failures``, ``progress``, ``batch_size``)."""
    return _replay(os.fspath(topology), [os.fspath(c) for c in captures], out_dir, verdicts, **options)


def diff(old: str | os.PathLike[str], new: str | os.PathLike[str], captures: Iterable[str | os.PathLike[str]],
         engine: str | None = None) -> DiffResult:
    """Replay captures through two topologies; the flows whose verdict changes."""
    return _diff(os.fspath(old), os.fspath(new), [os.fspath(c) for c in captures], engine)


def decode(captures: Iterable[str | os.PathLike[str]]) -> Iterator[list[str]]:
    """What the capture reader sees, one row of strings per packet (the ``sgdp decode`` columns)."""
    return decode_rows([os.fspath(c) for c in captures])
