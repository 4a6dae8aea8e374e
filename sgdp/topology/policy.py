"""Resolve a topology into the effective policy of each NIC and direction (S8–S10).

A NIC's rules for one direction and IP version are the rules of its groups, walked in binding order,
each group's rules sorted by priority, deny before allow, creation order (S8). Rules that do not take
effect are marked with why (S9, S10): ``disabled``, then ``quota`` (a property of the group), then
``flavor`` or ``kai1`` (a property of the instance's flavor family).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sgdp.topology.addr import Net
from sgdp.topology.model import ICMP, ICMPV6, KAI1_FAMILIES, LEGACY_FAMILIES, PORT_PROTOS, RULE_QUOTA, Nic, Rule, Topology


@dataclass(frozen=True, slots=True)
class NotEffective:
    security_group: str
    rule: str
    instance: str | None  # None for group-wide reasons (disabled, quota)
    why: str  # disabled | quota | flavor | kai1


def family_kind(family: str) -> str:
    """``legacy`` (S10 first list), ``kai1`` or ``normal``."""
    if family in LEGACY_FAMILIES:
        return "legacy"
    if family in KAI1_FAMILIES:
        return "kai1"
    return "normal"


class Policy:
    """Effective rules of a topology, computed once and cached."""

    def __init__(self, topo: Topology):
        self.topo = topo
        self._walks: dict[tuple[int, str, int], tuple[tuple[Rule, str | None], ...]] = {}

    @cached_property
    def group_status(self) -> dict[str, str | None]:
        """Rule id -> ``disabled`` / ``quota`` / None: the reasons that hold for every instance."""
        status: dict[str, str | None] = {}
        for sg in self.topo.security_groups.values():
            counted: dict[tuple[str, int], int] = {}
            for rule in sg.rules:  # creation order
                if not rule.enabled:
                    status[rule.id] = "disabled"
                    continue
                status[rule.id] = None
                if rule.uses_quota:
                    key = (rule.direction, rule.ethertype)
                    counted[key] = counted.get(key, 0) + 1
                    if counted[key] > RULE_QUOTA:
                        status[rule.id] = "quota"
        return status

    def family_status(self, kind: str) -> dict[str, str | None]:
        """Rule id -> why it does not take effect on an instance of this family kind (None = it does)."""
        return self._family_status[kind]

    @cached_property
    def _family_status(self) -> dict[str, dict[str, str | None]]:
        base = self.group_status
        out = {"normal": dict(base), "legacy": dict(base), "kai1": dict(base)}
        for sg in self.topo.security_groups.values():
            for rule in sg.rules:
                if base[rule.id] is None and (rule.remote_kind == "address_group" or rule.inconsecutive):
                    out["legacy"][rule.id] = "flavor"
            for direction in ("ingress", "egress"):
                cut = False
                for rule in sg.rules:  # creation order, both ethertypes
                    if rule.direction != direction or base[rule.id] is not None:
                        continue
                    if not cut and rule.inconsecutive:
                        cut = True
                    if cut:
                        out["kai1"][rule.id] = "kai1"
        return out

    def nic_kind(self, nic: Nic) -> str:
        return family_kind(self.topo.instances[nic.instance].family)

    def walk(self, nic: Nic, direction: str, version: int) -> tuple[tuple[Rule, str | None], ...]:
        """Every rule of the NIC's groups for this direction and version, in evaluation order, with why
        it does not take effect (None when it does)."""
        key = (nic.index, direction, version)
        cached = self._walks.get(key)
        if cached is not None:
            return cached
        status = self.family_status(self.nic_kind(nic))
        out = []
        for name in nic.security_groups:
            rules = [r for r in self.topo.security_groups[name].rules if r.direction == direction and r.ethertype == version]
            rules.sort(key=lambda r: r.sort_key)
            out.extend((r, status[r.id]) for r in rules)
        result = tuple(out)
        self._walks[key] = result
        return result

    def effective(self, nic: Nic, direction: str, version: int) -> tuple[Rule, ...]:
        return tuple(r for r, why in self.walk(nic, direction, version) if why is None)

    def not_effective(self) -> list[NotEffective]:
        """Every rule that does not take effect: where and why (S9, S10), for `check` and `explain`."""
        out: list[NotEffective] = []
        base = self.group_status
        for sg in self.topo.security_groups.values():
            for rule in sg.rules:
                if base[rule.id] is not None:
                    out.append(NotEffective(sg.name, rule.id, None, base[rule.id]))
        for inst in self.topo.instances.values():
            kind = family_kind(inst.family)
            if kind == "normal":
                continue
            status = self.family_status(kind)
            groups: list[str] = []
            for k in inst.nics:
                for g in self.topo.nics[k].security_groups:
                    if g not in groups:
                        groups.append(g)
            for g in groups:
                for rule in self.topo.security_groups[g].rules:
                    why = status[rule.id]
                    if why in ("flavor", "kai1"):
                        out.append(NotEffective(g, rule.id, inst.name, why))
        return out

    @cached_property
    def group_members(self) -> dict[str, frozenset[tuple[int, int]]]:
        """Group name -> the private fixed IPs ``(version, value)`` of every NIC bound to it."""
        out = {}
        for name, idx in self.topo.members.items():
            out[name] = frozenset(a for k in idx for a in self.topo.nics[k].fixed_ips)
        return out

    def remote_ranges(self, rule: Rule) -> tuple[list[tuple[int, int]], bool]:
        """The peer addresses a rule's remote admits, as inclusive intervals of its ethertype, and
        whether only genuine members match (a remote group: its members' fixed IPs, S8)."""
        kind = rule.remote_kind
        if kind == "any":
            return [(0, (1 << (32 if rule.ethertype == 4 else 128)) - 1)], False
        if kind == "prefix":
            assert isinstance(rule.remote, Net)
            return [(rule.remote.lo, rule.remote.hi)], False
        if kind == "address_group":
            return [(n.lo, n.hi) for n in self.topo.address_groups[rule.remote].entries], False  # type: ignore[index]
        members = self.group_members[rule.remote]  # type: ignore[index]
        return [(v, v) for ver, v in sorted(members) if ver == rule.ethertype], True

    def remote_matches(self, rule: Rule, version: int, peer: int, genuine: bool) -> bool:
        """Does the peer address lie in the rule's remote?

        ``genuine`` is false when the peer is not a NIC's own fixed IP as that NIC sent or received it
        (an EIP, a virtual IP, a forwarded address): such a peer is never a remote-group member (S8).
        """
        kind = rule.remote_kind
        if kind == "any":
            return True
        if kind == "prefix":
            assert isinstance(rule.remote, Net)
            return rule.remote.contains(version, peer)
        if kind == "address_group":
            return self.topo.address_groups[rule.remote].contains(version, peer)  # type: ignore[index]
        return genuine and (version, peer) in self.group_members[rule.remote]  # type: ignore[index]


def rule_matches_packet(rule: Rule, proto: int, dport: int | None, icmp_type: int | None, icmp_code: int | None) -> bool:
    """The non-address part of S8: protocol, destination port, ICMP type and code.

    ``dport`` is None for a packet without ports (a non-first fragment, S15): then only rules without
    ports match.
    """
    if rule.protocol is not None and rule.protocol != proto:
        return False
    if rule.ports is not None:
        if proto not in PORT_PROTOS or dport is None:
            return False
        if not any(lo <= dport <= hi for lo, hi in rule.ports):
            return False
    if rule.icmp_type is not None:
        if proto not in (ICMP, ICMPV6) or icmp_type != rule.icmp_type:
            return False
        if rule.icmp_code is not None and icmp_code != rule.icmp_code:
            return False
    return True
