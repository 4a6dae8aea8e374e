"""`sgdp check`: findings about a topology (SPEC §5).

* ``not_effective``: rules that do not take effect (S9, S10), where and why.
* ``shadowed``: rules no packet can reach because the earlier rules of the same walk (a NIC's groups
  in binding order, one direction and IP version) cover their whole match space. The match space is
  a union of boxes over (protocol, port-or-ICMP-type/code, peer address, genuine-member flag); a rule
  is shadowed when the earlier effective rules' boxes cover all of its boxes (decided exactly).
* ``too_many_groups`` (a NIC with more than 5 groups), ``too_many_instances`` (a group bound to more
  than 6,000 instances), ``open_to_internet`` (an allow rule from anywhere on a sensitive port),
  ``ignored_setting`` (a load-balancer setting that has no effect, S14).
"""

from __future__ import annotations

import bisect
from itertools import repeat
from dataclasses import asdict, dataclass

from sgdp.topology.addr import Net
from sgdp.topology.model import ICMP, ICMPV6, PORT_PROTOS, Rule, Topology, proto_label
from sgdp.topology.policy import Policy

SENSITIVE_PORTS = (20, 21, 22, 23, 25, 135, 137, 139, 445, 1433, 1521, 2375, 3306, 3389, 5432, 5900, 6379, 9200, 11211, 27017)
MAX_GROUPS_PER_NIC = 5
MAX_INSTANCES_PER_GROUP = 6000


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    security_group: str | None
    rule: str | None
    instance: str | None
    why: str | None
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def check(topo: Topology, policy: Policy | None = None) -> list[Finding]:
    policy = policy or Policy(topo)
    out: list[Finding] = []
    for ne in policy.not_effective():
        where = f" on {ne.instance}" if ne.instance else ""
        text = {
            "disabled": "is disabled",
            "quota": "is beyond the 120-rule quota for remote-group, address-group and inconsecutive-port rules (S9)",
            "flavor": "uses an address group or inconsecutive ports, which this instance's flavor family ignores (S10)",
            "kai1": "is at or after the first inconsecutive-port rule of its group and direction on a Kai1 instance (S10)",
        }[ne.why]
        out.append(Finding("not_effective", ne.security_group, ne.rule, ne.instance, ne.why,
                           f"rule {ne.rule} of {ne.security_group} does not take effect{where}: it {text}"))
    out.extend(shadowed(topo, policy))
    for nic in topo.nics:
        if len(nic.security_groups) > MAX_GROUPS_PER_NIC:
            out.append(Finding("too_many_groups", None, None, nic.instance, None,
                               f"{nic.label} has {len(nic.security_groups)} security groups (at most {MAX_GROUPS_PER_NIC})"))
    for name, idx in topo.members.items():
        count = len({topo.nics[k].instance for k in idx})
        if count > MAX_INSTANCES_PER_GROUP:
            out.append(Finding("too_many_instances", name, None, None, None,
                               f"{name} is bound to {count} instances (at most {MAX_INSTANCES_PER_GROUP})"))
    for sg in topo.security_groups.values():
        for rule in sg.rules:
            ports = open_ports(rule)
            if ports:
                shown = ", ".join(map(str, ports))
                out.append(Finding("open_to_internet", sg.name, rule.id, None, None,
                                   f"rule {rule.id} of {sg.name} allows {proto_label(rule.protocol)} from the whole Internet to sensitive port(s) {shown}"))
    for lb in topo.load_balancers.values():
        for listener in lb.listeners:
            if listener.transfer_client_ip is None:
                continue
            if lb.type == "dedicated":
                why = "a dedicated load balancer always passes the client IP on for TCP/UDP listeners" \
                    if listener.protocol in ("tcp", "udp") else "a dedicated load balancer's HTTP/HTTPS listeners do not bypass security groups"
            elif listener.transfer_client_ip and listener.protocol in ("http", "https"):
                why = "client-IP transfer does not bypass security groups on HTTP/HTTPS listeners"
            else:
                continue
            out.append(Finding("ignored_setting", None, None, None, None,
                               f"load balancer {lb.name}: listener {listener.protocol}/{listener.port} sets transfer_client_ip: "
                               f"{str(listener.transfer_client_ip).lower()}, which has no effect: {why}"))
    return out


def open_ports(rule: Rule) -> list[int]:
    """Sensitive ports an enabled ingress allow rule opens to the whole Internet."""
    if not rule.enabled or rule.direction != "ingress" or rule.action != "allow":
        return []
    if rule.remote_kind == "prefix":
        assert isinstance(rule.remote, Net)
        if rule.remote.size != (1 << (32 if rule.ethertype == 4 else 128)):
            return []
    elif rule.remote_kind != "any":
        return []
    if rule.protocol is not None and rule.protocol not in PORT_PROTOS:
        return []
    if rule.ports is None:
        return list(SENSITIVE_PORTS)
    return [p for p in SENSITIVE_PORTS if any(lo <= p <= hi for lo, hi in rule.ports)]


# ----------------------------------------------------------------------------------------- shadowing

Box = tuple[int, int, int, int, int, int, int, int]  # proto lo/hi, x lo/hi, addr lo/hi, genuine lo/hi


def rule_boxes(rule: Rule, policy: Policy) -> list[Box]:
    """The match space of a rule (one direction and version) as disjoint-enough boxes."""
    if rule.protocol is None:
        protos = [(0, 255)]
    else:
        protos = [(rule.protocol, rule.protocol)]
    if rule.ports is not None:
        xs = list(rule.ports)
    elif rule.icmp_type is not None and rule.protocol in (ICMP, ICMPV6):
        code = rule.icmp_code
        xs = [(rule.icmp_type * 256 + (code or 0), rule.icmp_type * 256 + (255 if code is None else code))]
    else:
        xs = [(0, 65535)]
    addrs, members_only = policy.remote_ranges(rule)
    genuine = (1, 1) if members_only else (0, 1)
    return [(p[0], p[1], x[0], x[1], a[0], a[1], genuine[0], genuine[1]) for p in protos for x in xs for a in addrs]


def address_run(rule: Rule, policy: Policy) -> int:
    """How many of :func:`rule_boxes`'s boxes in a row differ only by address: one per remote range
    (sorted, disjoint), for each protocol and port range in turn."""
    return len(policy.remote_ranges(rule)[0])


def shadowed_in_walk(rules: list[Rule], policy: Policy) -> list[tuple[Rule, Rule | None]]:
    """Rules of an effective walk whose whole match space earlier rules cover, each with the single
    earlier rule that covers it alone (None when only several together do).

    Earlier rules' boxes are indexed by protocol and by single port (or ICMP type/code) value, and
    each of a rule's boxes is tested only against the earlier boxes that meet it, box by box,
    stopping at the first box that stays partly uncovered: the work per rule follows the rules it
    overlaps, not the length of the walk. Coverage is decided exactly (:func:`_cover`), with no
    budget: a rule is shadowed exactly when the earlier rules cover its whole match space."""
    out = []
    index = _CutIndex()
    for k, rule in enumerate(rules):
        boxes = rule_boxes(rule, policy)
        run = address_run(rule, policy)
        if boxes:
            cuts = index.meeting(boxes, run)
            near = _AddressIndex([c for _, c in cuts])
            if all(_covered(box, near.near(box)) for box in boxes):
                by_rule: dict[int, list[Box]] = {}
                for owner, cut in cuts:
                    by_rule.setdefault(owner, []).append(cut)
                alone = next((rules[e] for e in sorted(by_rule) if _covers_alone(boxes, by_rule[e])), None)
                out.append((rule, alone))
        index.add(k, boxes, run)
    return out


def _meeting(box: Box, cuts) -> list[Box]:
    return [c for c in cuts if c[0] <= box[1] and c[1] >= box[0] and c[2] <= box[3] and c[3] >= box[2]
            and c[4] <= box[5] and c[5] >= box[4] and c[6] <= box[7] and c[7] >= box[6]]


class _AddressIndex:
    """Boxes findable by address: the few wide ones in a list, the narrow ones sorted by their
    first address, so that the boxes near one address range are found by bisection."""

    WIDE = 1 << 20

    def __init__(self, cuts: list[Box]):
        self.wide = [c for c in cuts if c[5] - c[4] >= self.WIDE]
        narrow = sorted((c for c in cuts if c[5] - c[4] < self.WIDE), key=lambda c: c[4])
        self.narrow = narrow
        self.starts = [c[4] for c in narrow]
        self.span = max((c[5] - c[4] for c in narrow), default=0)

    def near(self, box: Box) -> list[Box]:
        """Every box whose address range can meet the box's (a superset; order does not matter)."""
        a = bisect.bisect_left(self.starts, box[4] - self.span)
        b = bisect.bisect_right(self.starts, box[5])
        return self.wide + self.narrow[a:b]


def _covered(box: Box, cuts: list[Box]) -> bool:
    """Do the cuts cover the whole box? Exact."""
    meet = _meeting(box, cuts)
    if not meet:
        return False
    for c in meet:  # one earlier box holds it whole
        if c[0] <= box[0] and c[1] >= box[1] and c[2] <= box[2] and c[3] >= box[3] and c[4] <= box[4] \
                and c[5] >= box[5] and c[6] <= box[6] and c[7] >= box[7]:
            return True
    for d in range(0, 8, 2):  # necessary: on every axis the boxes that meet it cover its whole extent
        if not _covers_interval(box[d], box[d + 1], [(c[d], c[d + 1]) for c in meet]):
            return False
    return _cover(box, meet, _AXES)


_AXES = (6, 0, 2, 4)  # genuine flag, protocol, port / ICMP, then the address (the widest) last


def _covers_interval(lo: int, hi: int, intervals: list[tuple[int, int]]) -> bool:
    reach = lo
    for a, b in sorted(intervals):
        if a > reach:
            return False
        if b >= reach:
            reach = b + 1
            if reach > hi:
                return True
    return reach > hi


def _cover(box: Box, cuts: list[Box], axes: tuple[int, ...]) -> bool:
    """Exact coverage of ``box`` by ``cuts`` (all meeting it): split the box along the first axis at
    every cut boundary inside it; each slab must be covered by the cuts spanning the whole slab on
    that axis, over the remaining axes; the last axis is a union of intervals."""
    d = axes[0]
    lo, hi = box[d], box[d + 1]
    if len(axes) == 1:
        return _covers_interval(lo, hi, [(c[d], c[d + 1]) for c in cuts])
    points = {lo}
    for c in cuts:
        if c[d] > lo:
            points.add(c[d])
        if c[d + 1] < hi:
            points.add(c[d + 1] + 1)
    starts = sorted(points)
    for k, a in enumerate(starts):
        b = starts[k + 1] - 1 if k + 1 < len(starts) else hi
        spanning = [c for c in cuts if c[d] <= a and c[d + 1] >= b]
        if not spanning or not _cover(box, spanning, axes[1:]):
            return False
    return True


def _covers_alone(boxes: list[Box], cuts: list[Box]) -> bool:
    near = _AddressIndex(cuts)
    return all(_covered(box, near.near(box)) for box in boxes)


class _CutIndex:
    """The boxes of a walk's earlier rules, in walk order, findable by protocol and single x value.

    A rule's boxes are kept in runs that differ only by address (one box per range of its remote:
    a remote group of 6,000 members is 6,000 boxes), with the runs' address ranges sorted and
    disjoint, so the boxes of a run that meet an address range are a slice found by bisection
    rather than a scan."""

    def __init__(self) -> None:
        self.count = 0
        # (proto|-1, x|-1) -> runs: (first seq, owner, boxes, their low addresses, their high addresses)
        self.buckets: dict[tuple[int, int], list[tuple[int, int, list[Box], list[int], list[int]]]] = {}

    def add(self, owner: int, boxes: list[Box], run: int) -> None:
        """The boxes of one rule: runs of ``run`` boxes in a row that differ only by their address
        ranges, which ascend and do not overlap (:func:`address_run`)."""
        seq = self.count
        buckets = self.buckets
        for start in range(0, len(boxes), max(run, 1)):
            chunk = boxes[start:start + run]
            box = chunk[0]
            key = (box[0] if box[0] == box[1] else -1, box[2] if box[2] == box[3] else -1)
            items = buckets.get(key)
            if items is None:
                items = buckets[key] = []
            items.append((seq, owner, chunk, [c[4] for c in chunk], [c[5] for c in chunk]))
            seq += len(chunk)
        self.count = seq

    def meeting(self, boxes: list[Box], run: int) -> list[tuple[int, Box]]:
        """(owner, box) of every earlier box that meets the hull of ``boxes`` (a rule's boxes, in runs
        of ``run`` as :meth:`add` takes them); each owner's boxes in its own order, the owners in no
        particular order (callers sort the owners)."""
        heads = boxes[::max(run, 1)]  # the runs' boxes share their addresses: the first and last run box span them
        cols = tuple(zip(*heads))  # the hull, column by column (min of the lows, max of the highs)
        h = [min(cols[d]) if d % 2 == 0 else max(cols[d]) for d in range(8)]
        h[4], h[5] = boxes[0][4], boxes[max(run, 1) - 1][5]
        found = []
        for (p, x), items in self.buckets.items():
            if p >= 0 and not h[0] <= p <= h[1]:
                continue
            if x >= 0 and not h[2] <= x <= h[3]:
                continue
            for seq, owner, chunk, lows, highs in items:
                c = chunk[0]  # the run's boxes share everything but the address
                if c[0] <= h[1] and c[1] >= h[0] and c[2] <= h[3] and c[3] >= h[2] and c[6] <= h[7] and c[7] >= h[6]:
                    first = bisect.bisect_left(highs, h[4])  # the first whose high end reaches the hull
                    last = bisect.bisect_right(lows, h[5])  # past the last whose low end is inside it
                    found.extend(zip(repeat(owner, last - first), chunk[first:last]))
        return found


SUMMARY_OVER = 20  # a rule shadowed on more instances than this (but not all) is one summary finding


def shadowed(topo: Topology, policy: Policy) -> list[Finding]:
    """Shadowed rules, found per walk: NICs with the same groups (same order), the same flavor kind,
    direction and IP version share one walk and one search. A rule shadowed on every NIC bound to
    its group is one finding without an instance; a rule shadowed on more than ``SUMMARY_OVER`` of
    the instances bound to its group but not on all is one summary finding without an instance (its
    message gives the count); otherwise one finding per instance where it is shadowed (naming the
    NICs when the instance has others where the rule can still match). Groups bound to no NIC are
    checked on their own."""
    walks: dict[tuple, list[int]] = {}  # the walk's key -> its NICs, in NIC order
    for nic in topo.nics:
        walks.setdefault((nic.security_groups, policy.nic_kind(nic)), []).append(nic.index)
    found: dict[tuple[str, str], dict] = {}  # rule -> walk key (None: the group alone) -> covering rule
    for (groups, kind), nics in walks.items():
        for direction in ("ingress", "egress"):
            for version in (4, 6):
                rules = list(policy.effective(topo.nics[nics[0]], direction, version))
                for rule, by in shadowed_in_walk(rules, policy):
                    found.setdefault((rule.security_group, rule.id), {})[(groups, kind)] = by
    for name, sg in topo.security_groups.items():
        if topo.members.get(name):
            continue
        for direction in ("ingress", "egress"):
            for version in (4, 6):
                rules = sorted((r for r in sg.rules if r.direction == direction and r.ethertype == version
                                and policy.group_status[r.id] is None), key=lambda r: r.sort_key)
                for rule, by in shadowed_in_walk(rules, policy):
                    found.setdefault((name, rule.id), {})[None] = by
    out = []
    order = {(r.security_group, r.id): k for k, r in enumerate(r for sg in topo.security_groups.values() for r in sg.rules)}
    instances: dict[tuple, set[str]] = {}  # walk keys -> the instances of their NICs
    bound_instances: dict[str, int] = {}  # group -> how many instances it is bound to
    for (group, rule_id), per in sorted(found.items(), key=lambda item: order[item[0]]):
        bound = topo.members.get(group, ())
        first = min(per, key=lambda w: -1 if w is None else walks[w][0])  # the walk of the first NIC
        if None in per or sum(len(walks[w]) for w in per) == len(bound):  # a NIC is in one walk
            out.append(_shadow_finding(group, rule_id, None, "", per[first]))
            continue
        keys = tuple(per)
        hit_instances = instances.get(keys)
        if hit_instances is None:
            hit_instances = instances[keys] = {topo.nics[k].instance for w in keys for k in walks[w]}
        if len(hit_instances) > SUMMARY_OVER:
            total = bound_instances.get(group)
            if total is None:
                total = bound_instances[group] = len({topo.nics[k].instance for k in bound})
            out.append(_shadow_finding(group, rule_id, None, f"{len(hit_instances):,} of the {total:,} instances bound to it",
                                       per[first]))
            continue
        by_nic = {k: by for w, by in per.items() for k in walks[w]}
        for inst in dict.fromkeys(topo.nics[k].instance for k in sorted(by_nic)):
            mine = sorted(k for k in topo.instances[inst].nics if group in topo.nics[k].security_groups)
            hit = [k for k in mine if k in by_nic]
            where = inst if len(hit) == len(mine) else ", ".join(topo.nics[k].label for k in hit)
            out.append(_shadow_finding(group, rule_id, inst, where, by_nic[hit[0]]))
    return out


def _shadow_finding(group: str, rule_id: str, instance: str | None, where: str, by: Rule | None) -> Finding:
    cover = f"rule {by.id} of {by.security_group}" if by is not None else "the earlier rules together"
    on = f" on {where}" if where else ""
    return Finding("shadowed", group, rule_id, instance, None,
                   f"rule {rule_id} of {group} can never match{on}: {cover} already cover(s) every packet it matches")
