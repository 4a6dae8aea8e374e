"""Rule changes during a replay (S12): `sgdp replay --timeline FILE`.

A timeline file is a YAML (or JSON) list ``[{at: <capture time, seconds>, topology: <path>}, ...]``;
paths are relative to the timeline file, ``at`` values strictly increase. The topology given on the
command line applies before the first ``at``. Version *k* applies from the first packet at which the
dataplane clock (the latest capture timestamp seen so far, docs/semantics.md) reaches its ``at``
(clock >= at); when one packet passes several ``at`` values, the versions in between are applied in
turn (each change has its effect) and see no packets.

One dataplane runs through all versions and keeps its state (:meth:`ReferenceEngine.retarget`):

* NICs are matched across versions by identity — instance name and NIC slot (position among the
  instance's NICs). A NIC that disappears takes its connection entries with it; a new NIC starts
  empty.
* A security group *changes* when it appears or disappears, when its rules change (any field but the
  description and file position; an address group a rule uses changes its entries; a group a rule
  uses as remote changes its member addresses), or when its membership (the set of NICs bound to it)
  changes. The security-group entries opened by inbound traffic at every NIC of a changed group (in
  the old or the new version) are dropped, so their next packet is evaluated by the new rules;
  entries opened by outbound traffic survive. So are those of a NIC whose own binding changes (order
  of its groups) or whose instance's flavor family kind changes (S10 effects).
* Network ACLs follow the same rule for their own connection tables: when an ACL's rules (or an
  address group they use) change, or a subnet's ACL binding changes, the ACL entries opened by
  inbound traffic at the NICs of the affected subnets are dropped.
* Entries of load-balancer client-IP-transfer flows are never dropped (no rule decides them).

The verdict rows name instances, groups and rules from the union of every version's names.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sgdp.engine import make_engine
from sgdp.errors import ConfigError
from sgdp.topology import Nic, Topology, load_topology, read_structured_file
from sgdp.capture import PACKET_COLUMNS, Names, PacketBatch, VerdictBatch
from sgdp.topology import Policy
from sgdp.engine import names_for


@dataclass
class Version:
    at: float | None  # None: the command-line topology, before the first `at`
    path: str
    topo: Topology
    packets: int = 0


@dataclass
class Change:
    """What moving from one version to the next does to the dataplane state."""

    nic_map: dict[int, int]  # old NIC index -> new NIC index (NICs in both versions)
    drop_sg: set[int] = field(default_factory=set)  # new NIC indexes: drop inbound-opened group entries
    drop_acl: set[int] = field(default_factory=set)  # new NIC indexes: drop inbound-opened ACL entries
    changed_groups: set[str] = field(default_factory=set)
    changed_acls: set[str] = field(default_factory=set)


def load_timeline(path: str) -> list[Version]:
    """The versions a timeline file lists (without the command-line topology)."""
    data = read_structured_file(path, "timeline")
    err = lambda p, m: ConfigError(path, p, m)  # noqa: E731
    if not isinstance(data, list) or not data:
        raise err("", f"a timeline is a non-empty list of {{at: <capture time in seconds>, topology: <file>}}, got {_show(data)}")
    base = os.path.dirname(path)
    out: list[Version] = []
    previous: float | None = None
    for i, raw in enumerate(data):
        p = f"[{i}]"
        if not isinstance(raw, dict):
            raise err(p, f"{_show(raw)}: expected a mapping with `at` and `topology`")
        for key in raw:
            if key not in ("at", "topology"):
                raise err(f"{p}.{key}", f"unknown key {key!r} (allowed: at, topology)")
        for key in ("at", "topology"):
            if key not in raw:
                raise err(f"{p}.{key}", "is required")
        at = raw["at"]
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            raise err(f"{p}.at", f"{_show(at)}: not a capture time in seconds (a number such as 1700000100.0)")
        at = float(at)
        if previous is not None and at <= previous:
            raise err(f"{p}.at", f"{_show(raw['at'])}: must be later than the previous version's at ({previous!r})")
        previous = at
        ref = raw["topology"]
        if not isinstance(ref, str) or not ref.strip():
            raise err(f"{p}.topology", f"{_show(ref)}: expected the path of a topology file (relative to the timeline)")
        topo_path = os.path.join(base, ref)
        if not os.path.isfile(topo_path):
            raise err(f"{p}.topology", f"{ref!r}: no such topology file ({topo_path})")
        out.append(Version(at, topo_path, load_topology(topo_path)))
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def union_names(topos: list[Topology]) -> Names:
    """Name tables covering every version: instances, groups, rules in order of first appearance."""
    tables: list[list[str]] = [[], [], []]
    seen: list[set[str]] = [set(), set(), set()]
    for topo in topos:
        n = names_for(topo)
        for j, values in enumerate((n.instances, n.groups, n.rules)):
            for v in values:
                if v not in seen[j]:
                    seen[j].add(v)
                    tables[j].append(v)
    return Names(*tables)


def _ident(nic: Nic) -> tuple[str, int]:
    return nic.instance, nic.slot


def _group_signature(topo: Topology, policy: Policy, name: str) -> Any:
    sg = topo.security_groups.get(name)
    if sg is None:
        return None
    rules = []
    for r in sg.rules:
        remote: Any = r.remote
        if r.remote_kind == "address_group":
            remote = (r.remote, topo.address_groups[r.remote].entries)  # type: ignore[index]
        elif r.remote_kind == "group":
            remote = (r.remote, policy.group_members.get(r.remote, frozenset()))  # type: ignore[arg-type]
        rules.append((r.id, r.direction, r.action, r.priority, r.ethertype, r.protocol, r.ports, r.icmp_type,
                      r.icmp_code, r.remote_kind, remote, r.enabled, r.order))
    members = frozenset(_ident(topo.nics[i]) for i in topo.members.get(name, ()))
    return tuple(rules), members


def _acl_signature(topo: Topology, name: str) -> Any:
    acl = topo.network_acls.get(name)
    if acl is None:
        return None

    def end(value: Any) -> Any:
        return (value, topo.address_groups[value].entries) if isinstance(value, str) else value

    return tuple(
        (way, r.id, r.action, r.ip_version, r.protocol, end(r.src), end(r.dst), r.sports, r.dports, r.enabled)
        for way, rules in (("in", acl.inbound), ("out", acl.outbound)) for r in rules
    )


def plan_change(old: Topology, new: Topology) -> Change:
    """NIC mapping and the entries to drop when ``new`` replaces ``old`` (S12; module docstring)."""
    old_ids = {_ident(n): n.index for n in old.nics}
    new_ids = {_ident(n): n.index for n in new.nics}
    change = Change({old_ids[k]: new_ids[k] for k in old_ids if k in new_ids})
    pol_old, pol_new = Policy(old), Policy(new)
    for g in list(old.security_groups) + [g for g in new.security_groups if g not in old.security_groups]:
        if _group_signature(old, pol_old, g) != _group_signature(new, pol_new, g):
            change.changed_groups.add(g)
            change.drop_sg.update(change.nic_map[i] for i in old.members.get(g, ()) if i in change.nic_map)
            change.drop_sg.update(new.members.get(g, ()))
    for a in list(old.network_acls) + [a for a in new.network_acls if a not in old.network_acls]:
        if _acl_signature(old, a) != _acl_signature(new, a):
            change.changed_acls.add(a)
    for k, i in old_ids.items():
        j = new_ids.get(k)
        if j is None:
            continue
        on, nn = old.nics[i], new.nics[j]
        if on.security_groups != nn.security_groups or pol_old.nic_kind(on) != pol_new.nic_kind(nn):
            change.drop_sg.add(j)
        acl_old, acl_new = old.subnets[on.subnet].network_acl, new.subnets[nn.subnet].network_acl
        if acl_old != acl_new or acl_old in change.changed_acls or acl_new in change.changed_acls:
            change.drop_acl.add(j)
    return change


class Timeline:
    """One dataplane through every topology version of a timeline; feed it batches in capture order."""

    def __init__(self, topology_path: str, topo: Topology, timeline_path: str, engine_name: str):
        self._start([Version(None, topology_path, topo)] + load_timeline(timeline_path), engine_name, timeline_path)

    @classmethod
    def from_versions(cls, versions: list[tuple[float | None, str, Topology]], engine_name: str,
                      timeline_path: str) -> "Timeline":
        """A timeline over versions already loaded (``(at, path, topology)``; a shard's, sgdp.pipeline.executors)."""
        self = cls.__new__(cls)
        self._start([Version(at, path, topo) for at, path, topo in versions], engine_name, timeline_path)
        return self

    def _start(self, versions: list[Version], engine_name: str, timeline_path: str) -> None:
        self.versions = versions
        self.names = union_names([v.topo for v in self.versions])
        self.engine = make_engine(versions[0].topo, engine_name, self.names)
        self.engine_name = self.engine.name
        if self.engine_name == "fast":
            from sgdp.engine import check_supported

            for version in self.versions[1:]:
                check_supported(version.topo, timeline_path)
        self.current = 0
        self.clock = -math.inf

    def _advance(self) -> None:
        old, new = self.versions[self.current], self.versions[self.current + 1]
        change = plan_change(old.topo, new.topo)
        self.engine.retarget(new.topo, self.names, change.nic_map, change.drop_sg, change.drop_acl)  # type: ignore[attr-defined]
        self.current += 1

    def idle(self) -> bool:
        """The engine's idle work (``FastEngine.idle``) for the capture reader's thread; False for
        an engine without any."""
        idle = getattr(self.engine, "idle", None)
        return bool(idle()) if idle is not None else False

    def _run(self, batch: PacketBatch, start: int, stop: int) -> VerdictBatch:
        self.versions[self.current].packets += stop - start
        if start == 0 and stop == len(batch):
            return self.engine.process(batch)
        return self.engine.process(PacketBatch({k: batch.columns[k][start:stop] for k in PACKET_COLUMNS}))

    def process(self, batch: PacketBatch) -> VerdictBatch:
        """Verdict columns of a batch, switching versions where the clock reaches their `at`."""
        n = len(batch)
        if n == 0:
            return self.engine.process(batch)
        clock = np.maximum(np.maximum.accumulate(batch.columns["ts"]), self.clock)
        self.clock = float(clock[-1])
        pieces: list[tuple[int, VerdictBatch]] = []
        start = 0
        while self.current + 1 < len(self.versions):
            at = self.versions[self.current + 1].at
            pos = int(np.searchsorted(clock, at, side="left"))  # the first packet with clock >= at
            if pos >= n:
                break
            if pos > start:
                pieces.append((start, self._run(batch, start, pos)))
            start = pos
            self._advance()
        pieces.append((start, self._run(batch, start, n)))
        if len(pieces) == 1:
            return pieces[0][1]
        out = VerdictBatch(n)
        for first, vb in pieces:
            for name in VerdictBatch.COLUMNS:
                getattr(out, name)[first:first + len(vb)] = getattr(vb, name)
        return out

    def summary(self) -> list[dict[str, Any]]:
        """The summary's ``versions``: when each version applied, its topology file, its packets."""
        return [{"at": v.at, "topology": v.path, "packets": v.packets} for v in self.versions]
