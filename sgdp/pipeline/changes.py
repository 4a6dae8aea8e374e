"""`sgdp diff OLD NEW CAPTURE...`: the flows whose verdict a topology change changes (SPEC §5).

The captures are read once, batch by batch; every batch goes through two stateful dataplanes side by
side, one per topology (the same engine kind), and its packets are grouped into flows
(:mod:`sgdp.pipeline.flows`). A flow is *changed* when at least one of its packets gets another verdict
(allow, deny, unmodelled, malformed) under NEW than under OLD; a packet whose verdict stays the same
but whose reason or rule differs does not count. For each changed flow the report gives the old and
the new row of its first packet whose verdict differs. Memory: one entry per flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sgdp.engine import resolve_engine
from sgdp.errors import InputError, SgdpError
from sgdp.pipeline.flows import FlowTable
from sgdp.capture import DEFAULT_BATCH_SIZE, check_captures, read_batches
from sgdp.topology import load_topology
from sgdp.capture import VERDICTS, Verdict

ROW_KEYS = ("verdict", "reason", "security_group", "rule")


@dataclass
class DiffResult:
    flows: int = 0
    packets: int = 0
    changed: list[dict[str, Any]] = field(default_factory=list)  # sorted as SPEC §5 says
    engine: str = ""
    error: SgdpError | None = None  # a capture error met after the earlier packets were compared
    # packets per (whole second of capture time, old verdict, new verdict), for the report's chart
    by_second: dict[tuple[int, str, str], int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"flows": self.flows, "changed": [{k: v for k, v in c.items() if not k.startswith("_")} for c in self.changed]}


def _row(v: Verdict) -> dict[str, Any]:
    return {k: getattr(v, k) or None for k in ROW_KEYS}


def diff(old: str, new: str, captures: list[str], engine_name: str | None = None,
         batch_size: int = DEFAULT_BATCH_SIZE, workers: Any = 1, ray: str | None = None) -> DiffResult:
    """Replay the captures through both topologies at once and collect the changed flows."""
    old_topo, new_topo = load_topology(old), load_topology(new)
    check_captures(captures)
    name = resolve_engine(engine_name)
    from sgdp.pipeline.executors import EngineSpec, make_executor

    executor = make_executor([EngineSpec(old_topo, name), EngineSpec(new_topo, name)], workers, ray, batch_size,
                             captures)
    names = executor.names
    table = FlowTable()
    changed = np.zeros(1024, np.int64)  # changed packets per flow id
    first_change: dict[int, tuple[Verdict, Verdict]] = {}
    result = DiffResult(engine=name)
    try:
        for batch, (vo, vn) in executor.run(read_batches(captures, batch_size, blocks=executor.blocks)):
            fid = table.assign(batch.columns)
            result.packets += len(batch)
            _count_seconds(result.by_second, batch.columns["ts"], vo.verdict, vn.verdict)
            rows = np.flatnonzero((vo.verdict != vn.verdict) & (fid >= 0))
            if len(rows) == 0:
                continue
            if len(table) > len(changed):
                changed = np.concatenate([changed, np.zeros(max(len(table), 2 * len(changed)) - len(changed), np.int64)])
            flows = fid[rows]
            np.add.at(changed, flows, 1)
            uniq, first = np.unique(flows, return_index=True)
            for f, r in zip(uniq.tolist(), rows[first].tolist()):
                if f not in first_change:
                    first_change[f] = (names[0].decode(vo, r), names[1].decode(vn, r))
    except InputError as exc:
        result.error = exc
    finally:
        executor.close()
    result.flows = len(table)
    out = []
    for f, (ov, nv) in first_change.items():
        flow = table.flow(f)
        item = flow.describe()
        item.update(first_ts=flow.first_ts, last_ts=flow.last_ts, packets=flow.packets,
                    changed_packets=int(changed[f]), old=_row(ov), new=_row(nv))
        item["_id"], item["_label"] = f, flow.label()
        out.append(item)
    out.sort(key=lambda c: (-c["changed_packets"], c["first_ts"], c["_id"]))
    result.changed = out
    return result


def _count_seconds(into: dict[tuple[int, str, str], int], ts: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
    """Add a batch's packets to the counts per (second, old verdict, new verdict)."""
    if len(ts) == 0:
        return
    nv = len(VERDICTS)
    sec = np.floor(ts).astype(np.int64)
    key = (sec - int(sec.min())) * nv * nv + old.astype(np.int64) * nv + new.astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    base = int(sec.min())
    for k, c in zip(uniq.tolist(), counts.tolist()):
        s, pair = divmod(k, nv * nv)
        o, n = divmod(pair, nv)
        item = (base + s, VERDICTS[o], VERDICTS[n])
        into[item] = into.get(item, 0) + c


def _cell(row: dict[str, Any]) -> str:
    by = "/".join(x for x in (row["security_group"], row["rule"]) if x)
    return f"{row['verdict']} ({row['reason']}{' ' + by if by else ''})"


def format_diff(result: DiffResult, old: str, new: str) -> list[str]:
    n = len(result.changed)
    lines = [f"{result.packets} packets in {result.flows} flows; {n} flow(s) change verdict from {old} to {new}"]
    if not n:
        return lines
    head = ("CHANGED", "FLOW", "OLD", "NEW")
    rows = [(f"{c['changed_packets']}/{c['packets']}", c["_label"], _cell(c["old"]), _cell(c["new"])) for c in result.changed]
    widths = [max(len(head[j]), *(len(r[j]) for r in rows)) for j in range(3)]
    for r in [head, *rows]:
        lines.append("  ".join(r[j].ljust(widths[j]) if j else r[j].rjust(widths[j]) for j in range(3)) + "  " + r[3])
    return lines
