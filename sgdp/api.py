"""The public Python API, re-exported by ``sgdp`` itself: what the command line does, as calls.

Every function takes paths or objects, returns result objects and raises the typed errors of
:mod:`sgdp.errors` (the messages the command line prints). The command line (:mod:`sgdp.cli`) is
argument parsing and printing over these functions and nothing else.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import numpy as np

from sgdp.capture import Packet, PacketBatch
from sgdp.engine import Trace, make_engine, resolve_engine
from sgdp.errors import SgdpError, UsageError
from sgdp.startup import gc_paused
from sgdp.pipeline import VERDICT_COLUMNS, Summary, VerdictWriter
from sgdp.pipeline import replay as _replay
from sgdp.topology import Topology, format_ip, proto_label, topology_from_data
from sgdp.topology import load_topology as _load_topology

if TYPE_CHECKING:
    from sgdp.pipeline import DiffResult

# The scenario, diff, check, decode and reference-engine modules are imported by the functions that
# use them: a replay from the command line starts without them and their imports.

__all__ = ["load_topology", "check", "Findings", "make_packet", "explain", "Explanation", "replay", "evaluate", "Replay",
           "diff", "Diff", "decode", "write_report", "table"]


def load_topology(source: str | os.PathLike[str] | Mapping[str, Any] | Topology) -> Topology:
    """A validated topology from a YAML/JSON file, or from a dict shaped like the file."""
    if isinstance(source, Topology):
        return source
    with gc_paused():  # many long-lived objects, no garbage worth a collection
        if isinstance(source, Mapping):
            return topology_from_data(dict(source), "<topology>")
        return _load_topology(source)


class Findings(list):
    """What :func:`check` returns: a list of :class:`Finding` (``kind, security_group, rule,
    instance, why, message``), and the same as a :attr:`table`."""

    @property
    def table(self) -> Any:
        keys = ("kind", "security_group", "rule", "instance", "why", "message")
        return table({k: np.array([getattr(f, k) for f in self], dtype=object) for k in keys})


def check(topology: str | os.PathLike[str] | Mapping[str, Any] | Topology) -> Findings:
    """The findings of ``sgdp check``: rules that do not take effect, shadowed rules, limits, risks."""
    from sgdp.topology import check as _check

    topo = load_topology(topology)
    with gc_paused():
        return Findings(_check(topo))


def make_packet(spec: Mapping[str, Any], time: float = 0.0) -> Packet:
    """A packet from the keys of a scenario step (``src``, ``dst``, ``proto``, ``dport``, ``flags``...)."""
    from sgdp.testing import packet_from_spec

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
        from sgdp.testing import describe_packet, format_trace

        v = self.verdict
        where = " ".join(x for x in (v.instance, v.direction) if x)
        by = "/".join(x for x in (v.security_group, v.rule) if x)
        return [f"packet   {describe_packet(self.packet)}", *format_trace(self.trace),
                f"verdict  {v.verdict.upper()} ({v.reason}{', ' + where if where else ''}{', ' + by if by else ''})"]


def explain(topology: str | os.PathLike[str] | Mapping[str, Any] | Topology, packet: Packet | Mapping[str, Any],
            engine: str | None = None) -> Explanation:
    """Why ``packet`` (a Packet or scenario-step keys), sent as a new packet, gets its verdict.

    The steps come from the reference engine; the verdict from ``engine`` (they agree)."""
    from sgdp.engine import ReferenceEngine

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


# ------------------------------------------------------------------------------------ tables


_TABLE_KINDS = (  # (kind, module, what it makes, how), in the order table() prefers them
    ("pandas", "pandas", "pandas DataFrame", lambda pd, cols: pd.DataFrame(cols)),
    ("arrow", "pyarrow", "pyarrow Table",
     lambda pa, cols: pa.table({k: (v.astype(str) if v.dtype == object else v) for k, v in cols.items()})),
)


def table(columns: Mapping[str, Any], kind: str | None = None) -> Any:
    """Columns (name -> NumPy array) as a table: a pandas DataFrame when pandas is installed, else a
    pyarrow Table when pyarrow is, else the dict of NumPy arrays itself. ``kind`` forces one of
    ``"pandas"``, ``"arrow"`` or ``"numpy"`` (pandas and pyarrow: ``pip install 'sgdp[notebook]'``)."""
    cols = {k: np.asarray(v) for k, v in columns.items()}
    if kind not in (None, "pandas", "arrow", "numpy"):
        raise UsageError(f"table kind {kind!r} is not one of pandas, arrow, numpy")
    for name, module, what, make in _TABLE_KINDS:
        if kind in (None, name):
            try:
                lib = importlib.import_module(module)
            except ImportError:
                if kind == name:
                    raise UsageError(f"a {what} needs {module}: pip install 'sgdp[notebook]'") from None
            else:
                return make(lib, cols)
    return cols


@dataclass
class Replay:
    """What :func:`replay` returns: the summary (the keys of ``summary.json``), the verdict of every
    packet (:attr:`verdicts`) and, for a replay of captures, where its outputs are."""

    summary: dict[str, Any]
    out_dir: str | None = None  # None for crafted packets (nothing is written)
    verdict_file: str | None = None
    differences: list[str] = field(default_factory=list)  # expect=...: the first mismatches
    difference_count: int = 0
    error: SgdpError | None = None  # a capture error met after the earlier packets were processed
    failures_file: str | None = None
    failures_packets: int = 0
    _columns: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _result: Any = field(default=None, repr=False)  # the pipeline's own result, for anything else it reports

    def __getattr__(self, name: str) -> Any:
        result = self.__dict__.get("_result")
        if result is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(result, name)

    def columns(self) -> dict[str, np.ndarray]:
        """The verdict rows as NumPy columns (read from the verdict file on first use)."""
        if self._columns is None:
            if self.verdict_file is None:
                raise UsageError("this replay wrote no verdict file (verdicts='none')")
            from sgdp.report import read_verdict_columns

            vc = read_verdict_columns(self.verdict_file)
            cols: dict[str, np.ndarray] = {"index": np.arange(len(vc), dtype=np.int64), "ts": vc.ts}
            for name in VERDICT_COLUMNS[2:]:
                cols[name] = vc.column(name)
            self._columns = cols
        return self._columns

    @property
    def verdicts(self) -> Any:
        """One row per packet (``index, ts, verdict, reason, instance, direction, security_group,
        rule``; crafted packets add ``src, dst, proto, sport, dport``): see :func:`table`."""
        return table(self.columns())

    def verdicts_as(self, kind: str) -> Any:
        """:attr:`verdicts` as ``"pandas"``, ``"arrow"`` or ``"numpy"``."""
        return table(self.columns(), kind)

    def report(self, path: str | os.PathLike[str] | None = None, **options: Any) -> str:
        """Write the HTML report of this replay (see :func:`write_report`); returns its path."""
        if self.out_dir is None:
            raise UsageError("a report is made from a replay's output directory; replay captures with out_dir=...")
        return write_report(self.out_dir, path, **options)


def replay(topology: str | os.PathLike[str] | Mapping[str, Any] | Topology,
           captures: Iterable[str | os.PathLike[str]] | None = None, out_dir: str = "sgdp-out",
           verdicts: str = "csv", *, packets: Iterable[Packet | Mapping[str, Any]] | PacketBatch | None = None,
           html: str | os.PathLike[str] | None = None, **options: Any) -> Replay:
    """Replay captures in order through one stateful dataplane; writes ``summary.json`` and the
    verdict file into ``out_dir`` (options: ``split``, ``engine_name``, ``expect``, ``timeline``,
    ``save_failures``, ``progress``, ``batch_size``; where the dataplane runs: ``workers=N`` processes
    of this machine or ``"auto"``, ``ray="auto"|"local"|"HOST:PORT"``, same outputs); ``html``:
    also write the report there.

    With ``packets=`` instead of captures (crafted :class:`Packet` objects or scenario-step dicts),
    the packets go through the dataplane in memory and nothing is written: see :func:`evaluate`."""
    if packets is not None:
        if captures is not None:
            raise UsageError("replay: give captures or packets, not both")
        return evaluate(topology, packets, engine=options.get("engine_name"))
    if captures is None:
        raise UsageError("replay: no captures (give capture files, or packets=[...])")
    if not isinstance(topology, (str, os.PathLike)):
        raise UsageError("replay of captures: give the topology as a file path (summary.json records it)")
    r = _replay(os.fspath(topology), _paths(captures), out_dir, verdicts, **options)
    vf = os.path.join(out_dir, f"verdicts.{verdicts}") if verdicts != "none" else None
    result = Replay(r.summary, out_dir, vf, r.differences, r.difference_count, r.error, r.failures_file,
                    r.failures_packets, _result=r)
    if html is not None:
        if vf is None:
            raise UsageError("--html needs a verdict file (--verdicts csv, jsonl or parquet)")
        result.report(html)
    return result


def evaluate(topology: str | os.PathLike[str] | Mapping[str, Any] | Topology,
             packets: Iterable[Packet | Mapping[str, Any]] | PacketBatch, engine: str | None = None) -> Replay:
    """Crafted packets, in order, through one stateful dataplane (as a capture would go): a
    :class:`Replay` whose verdicts have one row per packet. A dict is a scenario step's packet keys
    (``src``, ``dst``, ``proto``, ``sport``, ``dport``, ``flags``, ``time``...); a packet without
    ``time`` is sent at the previous one's time."""
    import time as _time

    topo = load_topology(topology)
    batch = packets if isinstance(packets, PacketBatch) else PacketBatch.from_packets(_packets(packets))
    dataplane = make_engine(topo, engine)
    start = _time.perf_counter()
    vb = dataplane.process(batch)
    elapsed = _time.perf_counter() - start
    summary = Summary(resolve_engine(engine))
    summary.add(vb)
    cols = dict(VerdictWriter("", "none", dataplane.names).columns(batch["ts"], vb))
    c = batch.columns
    for side in ("src", "dst"):
        cols[side] = np.array([format_ip(int(v), (int(h) << 64) | int(lo))
                               for v, h, lo in zip(c["l3"], c[f"{side}_hi"], c[f"{side}_lo"])], dtype=object)
    cols["proto"] = np.array([proto_label(int(p)) for p in c["proto"]], dtype=object)
    cols["sport"], cols["dport"] = c["sport"].astype(np.int64), c["dport"].astype(np.int64)
    return Replay(summary.as_dict(dataplane.rule_hits(), elapsed), _columns=cols)


def _packets(items: Iterable[Packet | Mapping[str, Any]]) -> list[Packet]:
    from sgdp.testing import packet_from_spec

    out: list[Packet] = []
    previous = 0.0
    for i, item in enumerate(items):
        pkt = item if isinstance(item, Packet) else packet_from_spec(item, f"packets[{i}]", "<packets>", previous)
        previous = pkt.ts
        out.append(pkt)
    return out


def write_report(out_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None, *,
                 topology: str | os.PathLike[str] | Topology | None = None,
                 captures: Iterable[str | os.PathLike[str]] | None = None,
                 findings: str | os.PathLike[str] | list | bool | None = None) -> str:
    """Write the HTML report of the replay whose outputs are in ``out_dir`` to ``path`` (default
    ``out_dir/report.html``) and return the path. ``topology`` and ``captures`` default to the ones
    the replay recorded in ``summary.json``; ``findings``: the path of a saved ``sgdp check --json``
    output (else ``check`` runs on the topology; ``False``: no findings)."""
    from sgdp.report import write_replay_report

    topo = topology if isinstance(topology, Topology) or topology is None else os.fspath(topology)
    caps = None if captures is None else _paths(captures)
    found = os.fspath(findings) if isinstance(findings, os.PathLike) else findings
    return write_replay_report(os.fspath(out_dir), None if path is None else os.fspath(path), topo, caps, found)


class Diff:
    """What :func:`diff` returns: ``flows``, ``packets``, ``changed`` (one dict per changed flow, as
    ``sgdp diff --json``), ``engine``, ``error``; :attr:`table` and :meth:`report`."""

    def __init__(self, result: DiffResult, old: str, new: str):
        self.result, self.old, self.new = result, old, new

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["result"], name)

    def as_json(self) -> dict[str, Any]:
        return self.result.as_json()

    @property
    def table(self) -> Any:
        """The changed flows, one row each (``src, dst, proto, sport, dport, first_ts, last_ts,
        packets, changed_packets, old_verdict, old_reason, old_rule, new_verdict, ...``): see :func:`table`."""
        rows = self.result.changed
        cols: dict[str, list] = {k: [c[k] for c in rows] for k in ("src", "dst", "proto", "sport", "dport", "first_ts",
                                                                    "last_ts", "packets", "changed_packets")}
        for side in ("old", "new"):
            for k in ("verdict", "reason", "security_group", "rule"):
                cols[f"{side}_{k}"] = [c[side][k] or "" for c in rows]
        numeric = ("first_ts", "last_ts", "packets", "changed_packets")
        return table({k: np.array(v, dtype=None if k in numeric else object) for k, v in cols.items()})

    def report(self, path: str | os.PathLike[str]) -> str:
        """Write the HTML diff report (changed flows, packets whose verdict changed over time); returns its path."""
        from sgdp.report import write_diff_report

        return write_diff_report(self.result, self.old, self.new, os.fspath(path))


def diff(old: str | os.PathLike[str], new: str | os.PathLike[str], captures: Iterable[str | os.PathLike[str]],
         engine: str | None = None, *, html: str | os.PathLike[str] | None = None, workers: Any = 1,
         ray: str | None = None) -> Diff:
    """Replay captures through two topologies; the flows whose verdict changes (``html``: also write
    the report there; ``workers`` / ``ray``: where the dataplane runs, as for :func:`replay`)."""
    from sgdp.pipeline import diff as _diff

    result = Diff(_diff(os.fspath(old), os.fspath(new), _paths(captures), engine, workers=workers, ray=ray),
                  os.fspath(old), os.fspath(new))
    if html is not None:
        result.report(html)
    return result


def decode(captures: Iterable[str | os.PathLike[str]]) -> Iterator[list[str]]:
    """What the capture reader sees, one row of strings per packet (the ``sgdp decode`` columns)."""
    from sgdp.capture import decode_rows

    return decode_rows(_paths(captures))


def _paths(captures: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Capture paths as strings: one path, or several."""
    if isinstance(captures, (str, os.PathLike)):
        return [os.fspath(captures)]
    return [os.fspath(c) for c in captures]
