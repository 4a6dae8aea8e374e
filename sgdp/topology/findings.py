"""`sgdp check`: findings about a topology (SPEC §5).

* ``not_effective``: rules that do not take effect (S9, S10), where and why.
* ``shadowed``: rules no packet can reach because the earlier rules of the same walk (a NIC's groups
  in binding order, one direction and IP version) cover their whole match space. The match space is
  a union of boxes over (protocol, port-or-ICMP-type/code, peer address, genuine-member flag); a rule
  is shadowed when subtracting every earlier effective rule's boxes leaves nothing.
* ``too_many_groups`` (a NIC with more than 5 groups), ``too_many_instances`` (a group bound to more
  than 6,000 instances), ``open_to_internet`` (an allow rule from anywhere on a sensitive port),
  ``ignored_setting`` (a load-balancer setting that has no effect, S14).
"""

from __future__ import annotations

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


def subtract(box: Box, cut: Box) -> list[Box]:
    """``box`` minus ``cut`` as up to 8 boxes."""
    for d in range(4):
        if cut[2 * d] > box[2 * d + 1] or cut[2 * d + 1] < box[2 * d]:
            return [box]
    out = []
    rest = list(box)
    for d in range(4):
        lo, hi = rest[2 * d], rest[2 * d + 1]
        clo, chi = cut[2 * d], cut[2 * d + 1]
        if lo < clo:
            piece = list(rest)
            piece[2 * d], piece[2 * d + 1] = lo, clo - 1
            out.append(tuple(piece))
        if hi > chi:
            piece = list(rest)
            piece[2 * d], piece[2 * d + 1] = chi + 1, hi
            out.append(tuple(piece))
        rest[2 * d], rest[2 * d + 1] = max(lo, clo), min(hi, chi)
    return out  # type: ignore[return-value]


MAX_PIECES = 20000  # past this many pieces a rule is reported as not shadowed (undecided)


def shadowed_in_walk(rules: list[Rule], policy: Policy) -> list[tuple[Rule, Rule | None]]:
    """Rules of an effective walk whose whole match space earlier rules cover, each with the single
    earlier rule that covers it alone (None when only several together do)."""
    out = []
    earlier: list[tuple[Rule, list[Box]]] = []
    for rule in rules:
        boxes = rule_boxes(rule, policy)
        if boxes:
            pieces = boxes
            for _, cuts in earlier:
                for cut in cuts:
                    pieces = [p for piece in pieces for p in subtract(piece, cut)]
                    if not pieces or len(pieces) > MAX_PIECES:
                        break
                if not pieces or len(pieces) > MAX_PIECES:
                    break
            if not pieces:
                alone = next((e for e, cuts in earlier if _covers_alone(boxes, cuts)), None)
                out.append((rule, alone))
        earlier.append((rule, boxes))
    return out


def _covers_alone(boxes: list[Box], cuts: list[Box]) -> bool:
    pieces = boxes
    for cut in cuts:
        pieces = [p for piece in pieces for p in subtract(piece, cut)]
    return not pieces


def shadowed(topo: Topology, policy: Policy) -> list[Finding]:
    """Shadowed rules, found per NIC walk. A rule shadowed on every NIC bound to its group is one
    finding without an instance; otherwise one finding per instance where it is shadowed (naming the
    NICs when the instance has others where the rule can still match). Groups bound to no NIC are
    checked on their own."""
    found: dict[tuple[str, str], dict[int | None, Rule | None]] = {}
    for nic in topo.nics:
        for direction in ("ingress", "egress"):
            for version in (4, 6):
                for rule, by in shadowed_in_walk(list(policy.effective(nic, direction, version)), policy):
                    found.setdefault((rule.security_group, rule.id), {})[nic.index] = by
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
    for (group, rule_id), per in sorted(found.items(), key=lambda item: order[item[0]]):
        bound = topo.members.get(group, ())
        if None in per or set(bound) <= set(per):
            out.append(_shadow_finding(group, rule_id, None, "", next(iter(per.values()))))
            continue
        for inst in dict.fromkeys(topo.nics[k].instance for k in sorted(per)):  # type: ignore[index]
            mine = [k for k in bound if topo.nics[k].instance == inst]
            hit = [k for k in mine if k in per]
            where = inst if len(hit) == len(mine) else ", ".join(topo.nics[k].label for k in hit)
            out.append(_shadow_finding(group, rule_id, inst, where, per[hit[0]]))
    return out


def _shadow_finding(group: str, rule_id: str, instance: str | None, where: str, by: Rule | None) -> Finding:
    cover = f"rule {by.id} of {by.security_group}" if by is not None else "the earlier rules together"
    on = f" on {where}" if where else ""
    return Finding("shadowed", group, rule_id, instance, None,
                   f"rule {rule_id} of {group} can never match{on}: {cover} already cover(s) every packet it matches")
