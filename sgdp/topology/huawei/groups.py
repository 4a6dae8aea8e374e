"""Security groups, their rules (VPC v3 and Neutron forms), address groups, rules' remotes, and the
placeholder groups that stand for referenced groups that were not exported."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sgdp.topology.addr import is_number, parse_ip_set_entry
from sgdp.topology.huawei.common import (
    AG_FIELDS, AG_META, RULE_FIELDS, RULE_META, SG_FIELDS, SG_META, _Doc, _jtype, _key, _Obj, _Reporter, _show,
    _Src,
)
from sgdp.topology.model import parse_multiport

# Neutron protocol names (neutron-lib constants) and Huawei's own.
PROTOCOLS = {
    "tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "gre": 47, "ah": 51, "dccp": 33,
    "egp": 8, "esp": 50, "igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-nonxt": 59,
    "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "udplite": 136,
    "vrrp": 112,
}
PROTOCOL_LABELS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 47: "gre"}


@dataclass
class _Rule:
    key: str  # its id, or a synthetic key for rules without one
    fields: dict  # output fields except the remote group / address group
    remote_group: str | None
    remote_ag: str | None
    src: _Src

    def same(self, other: "_Rule") -> bool:
        return (self.fields, self.remote_group, self.remote_ag) == (other.fields, other.remote_group, other.remote_ag)


@dataclass
class _Group:
    key: str
    id: str | None
    name: str | None
    description: str | None
    src: _Src | None
    rules: dict[str, _Rule] = field(default_factory=dict)
    placeholder: bool = False
    out: str = ""


class _Groups(_Reporter):
    """Reads and emits security groups, their rules and address groups."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: dict[str, _Group] = {}
        self.ags: dict[str, _Obj] = {}
        self.sg_name_hints: dict[str, str] = {}  # group id -> a name a server gives it

    # -- reading ------------------------------------------------------------------------------

    def add_group(self, doc: _Doc, raw: Any, path: str) -> None:
        raw = doc.mapping(raw, path)
        self.check_fields(doc, "security group", path, raw, SG_FIELDS, SG_META)
        gid = doc.string(raw.get("id"), _key(path, "id"))
        name = doc.string(raw.get("name"), _key(path, "name"))
        if gid is None and name is None:
            raise doc.err(path, "a security group needs an id or a name")
        description = doc.string(raw.get("description"), _key(path, "description"))
        key = gid or f"name:{name}"
        group = self.groups.get(key)
        src = _Src(doc.file, path)
        if group is None:
            group = self.groups[key] = _Group(key, gid, name, description, src)
        elif group.src is None:  # known so far only from ListSecurityGroupRules
            group.name, group.description, group.src = name, description, src
        elif name is not None and group.name is not None and name != group.name:
            self.note(src, f"security group {gid} is also exported as {group.name!r} at {group.src.file}: "
                      f"{group.src.path}; the first name is kept")
        if doc.boolean(raw.get("stateful"), _key(path, "stateful")) is False:
            self.report(src.at(_key(path, "stateful")), "a stateless security group: sgdp models stateful groups "
                        "only, so replies are tracked as if it were stateful")
        rules_path = _key(path, "security_group_rules")
        for j, rraw in enumerate(doc.array(raw.get("security_group_rules"), rules_path)):
            rule = self.parse_rule(doc, rraw, f"{rules_path}[{j}]")
            if rule is not None:
                self.add_rule(group, rule)

    def add_loose_rule(self, doc: _Doc, raw: Any, path: str) -> None:
        raw = doc.mapping(raw, path)
        sgid = doc.string(raw.get("security_group_id"), _key(path, "security_group_id"), required=True)
        rule = self.parse_rule(doc, raw, path)
        group = self.groups.get(sgid)
        if group is None:
            group = self.groups[sgid] = _Group(sgid, sgid, None, None, None)
        if rule is not None:
            self.add_rule(group, rule)

    def add_rule(self, group: _Group, rule: _Rule) -> None:
        old = group.rules.get(rule.key)
        if old is None:
            group.rules[rule.key] = rule
        elif not old.same(rule):
            self.note(rule.src, f"rule {rule.key} is exported twice with different content; the first "
                      f"({old.src.file}: {old.src.path}) is kept")

    def parse_rule(self, doc: _Doc, raw: Any, path: str) -> _Rule | None:
        raw = doc.mapping(raw, path)
        self.check_fields(doc, "security group rule", path, raw, RULE_FIELDS, RULE_META)
        src = _Src(doc.file, path)
        rid = doc.string(raw.get("id"), _key(path, "id"))
        direction = doc.string(raw.get("direction"), _key(path, "direction"), required=True).lower()
        if direction not in ("ingress", "egress"):
            raise doc.err(_key(path, "direction"), f"expected ingress or egress, got {_show(raw['direction'])}")
        eth = doc.string(raw.get("ethertype"), _key(path, "ethertype")) or "IPv4"
        if eth.lower() not in ("ipv4", "ipv6"):
            raise doc.err(_key(path, "ethertype"), f"expected IPv4 or IPv6, got {_show(raw['ethertype'])}")
        version = 4 if eth.lower() == "ipv4" else 6
        proto = self.protocol(doc, raw.get("protocol"), _key(path, "protocol"), version)
        action = (doc.string(raw.get("action"), _key(path, "action")) or "allow").lower()
        if action not in ("allow", "deny"):
            raise doc.err(_key(path, "action"), f"expected allow or deny, got {_show(raw['action'])}")
        priority = doc.integer(raw.get("priority"), _key(path, "priority"), 1, 100)
        out: dict[str, Any] = {}
        if rid is not None:
            out["id"] = rid
        out["direction"] = direction
        out["action"] = action
        out["priority"] = 1 if priority is None else priority
        out["ethertype"] = f"IPv{version}"
        if proto is not None:
            out["protocol"] = PROTOCOL_LABELS.get(proto, proto)
        label = "all protocols" if proto is None else str(PROTOCOL_LABELS.get(proto, proto))

        # ports: v3 multiport, or Neutron port_range_min/max
        mp_path, lo_path, hi_path = _key(path, "multiport"), _key(path, "port_range_min"), _key(path, "port_range_max")
        mp = raw.get("multiport")
        if isinstance(mp, int) and not isinstance(mp, bool):
            mp = str(mp)
        mp = doc.string(mp, mp_path)
        lo = doc.integer(raw.get("port_range_min"), lo_path, 0, 65535)
        hi = doc.integer(raw.get("port_range_max"), hi_path, 0, 65535)
        segs = None
        if mp is not None:
            try:
                segs = parse_multiport(mp)
            except ValueError as exc:
                raise doc.err(mp_path, str(exc)) from None
        if proto in (6, 17):
            if lo is not None or hi is not None:
                if lo is None:
                    raise doc.err(lo_path, "is required when port_range_max is given")
                hi = lo if hi is None else hi
                if not 1 <= lo <= hi:
                    raise doc.err(hi_path if lo else lo_path, f"port range {lo}-{hi} is not 1 <= min <= max <= 65535")
                if segs is not None and segs != ((lo, hi),):
                    raise doc.err(mp_path, f"multiport {mp!r} disagrees with port_range_min/max {lo}-{hi}")
                if segs is None:
                    mp = str(lo) if lo == hi else f"{lo}-{hi}"
            if mp is not None:
                out["multiport"] = mp
        elif proto in (1, 58):
            if mp is not None:
                self.report(src.at(mp_path), f"multiport {mp!r} on an {label} rule: sgdp cannot tell which ICMP "
                            "types it means; rule left out")
                return None
            if lo is not None or hi is not None:
                if lo is None:
                    raise doc.err(lo_path, "is required (the ICMP type) when port_range_max (the code) is given")
                if lo > 255 or (hi is not None and hi > 255):
                    raise doc.err(hi_path if lo <= 255 else lo_path, "ICMP type and code are 0..255")
                out["port_range_min"] = lo
                if hi is not None:
                    out["port_range_max"] = hi
        else:
            full = segs == ((1, 65535),) if mp is not None else (lo in (None, 1) and hi in (None, 65535))
            if (mp is not None or lo is not None or hi is not None) and not full:
                shown = mp if mp is not None else f"{lo}-{hi}"
                self.report(src, f"ports {shown!r} on a rule for {label}: ports apply only to tcp and udp "
                            "(and ICMP type/code); rule left out")
                return None

        remotes = {}
        prefix = doc.string(raw.get("remote_ip_prefix"), _key(path, "remote_ip_prefix"))
        if prefix is not None:
            net = doc.cidr(prefix, _key(path, "remote_ip_prefix"))
            if net.version != version:
                raise doc.err(_key(path, "remote_ip_prefix"), f"{prefix!r} is IPv{net.version} but the rule's "
                              f"ethertype is IPv{version}")
            remotes["remote_ip_prefix"] = prefix
        rg = doc.string(raw.get("remote_group_id"), _key(path, "remote_group_id"))
        if rg is not None:
            remotes["remote_group_id"] = rg
        ag = doc.string(raw.get("remote_address_group_id"), _key(path, "remote_address_group_id"))
        if ag is not None:
            remotes["remote_address_group_id"] = ag
        if len(remotes) > 1:
            names = list(remotes)
            raise doc.err(_key(path, names[1]), f"a rule has at most one remote; it also has {names[0]}")
        if prefix is not None:
            out["remote_ip_prefix"] = prefix
        enabled = doc.boolean(raw.get("enabled"), _key(path, "enabled"))
        if enabled is False:
            out["enabled"] = False
        description = doc.string(raw.get("description"), _key(path, "description"))
        if description:
            out["description"] = description
        created = doc.string(raw.get("created_at"), _key(path, "created_at"))
        if created is not None:
            try:
                datetime.fromisoformat(created.replace("Z", "+00:00"))
            except ValueError:
                raise doc.err(_key(path, "created_at"), f"{created!r} is not an ISO 8601 date and time") from None
            out["created_at"] = created
        key = rid if rid is not None else f"{doc.file}#{path}"
        return _Rule(key, out, rg, ag, src)

    @staticmethod
    def protocol(doc: _Doc, value: Any, path: str, version: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("", "any", "all"):
                return None
            if is_number(text):
                value = int(text)
            elif text in PROTOCOLS:
                value = PROTOCOLS[text]
            else:
                raise doc.err(path, f"unknown protocol {value!r}")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise doc.err(path, f"expected a protocol name or number 0..255, got {_jtype(value)} {_show(value)}")
        if value == 1 and version == 6:
            return 58  # Neutron: "icmp" in an IPv6 rule means ICMPv6
        if value == 58 and version == 4:
            raise doc.err(path, "icmpv6 in an IPv4 rule")
        return value

    def add_ag(self, doc: _Doc, raw: Any, path: str) -> None:
        raw = doc.mapping(raw, path)
        self.check_fields(doc, "address group", path, raw, AG_FIELDS, AG_META)
        agid = doc.string(raw.get("id"), _key(path, "id"))
        name = doc.string(raw.get("name"), _key(path, "name"))
        if agid is None and name is None:
            raise doc.err(path, "an address group needs an id or a name")
        version = doc.integer(raw.get("ip_version"), _key(path, "ip_version"), 4, 6)
        if version == 5:
            raise doc.err(_key(path, "ip_version"), "expected 4 or 6, got 5")
        entries: list[str] = []
        if raw.get("ip_set") is not None:
            ip_set = doc.array(raw["ip_set"], _key(path, "ip_set"))
            items = [(e, f"{_key(path, 'ip_set')}[{k}]") for k, e in enumerate(ip_set)]
        else:
            items = []
            for k, e in enumerate(doc.array(raw.get("ip_extra_set"), _key(path, "ip_extra_set"))):
                ep = f"{_key(path, 'ip_extra_set')}[{k}]"
                items.append((doc.mapping(e, ep).get("ip"), _key(ep, "ip")))
        for entry, ep in items:
            text = doc.string(entry, ep, required=True)
            try:
                net = parse_ip_set_entry(text)
            except ValueError as exc:
                raise doc.err(ep, str(exc)) from None
            if version is None:
                version = net.version
            if net.version != version:
                raise doc.err(ep, f"{text!r} is IPv{net.version} but the group's ip_version is {version}")
            entries.append(text)
        raw = dict(raw, ip_version=version or 4, ip_set=entries)
        key = agid or f"name:{name}"
        if key in self.ags:
            self._duplicate(self.ags[key], raw, doc, path, "address group")
            return
        self.ags[key] = _Obj(key, name, raw, doc, path)

    # -- references and placeholders ----------------------------------------------------------

    def _group_names(self, keys: list[str]) -> list[str]:
        return [self.groups[k].name or k for k in keys]

    def group_for_server_ref(self, ref: dict, src: _Src, label: str) -> str | None:
        gid = (ref.get("id") or "").strip() or None
        name = (ref.get("name") or "").strip() or None
        if gid and gid in self.groups:
            return gid
        if name and name in self.groups:  # ECS: "the security group name or UUID"
            return name
        if gid:
            self.placeholder_group(gid, name, src, f"{label} is bound to it")
            return gid
        matches = [g.key for g in self.groups.values() if g.name == name and not g.placeholder]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            self.report(src, f"{label}: security group name {name!r} is shared by {len(matches)} exported groups "
                        "and the server gives no id: binding left out (export the ports to resolve it)")
            return None
        key = f"name:{name}"
        if key not in self.groups:
            self.placeholder_group(key, name, src, f"{label} is bound to it", gid=None)
        return key

    def placeholder_group(self, key: str, name: str | None, src: _Src, why: str, gid: str | None = "") -> None:
        if key in self.groups:
            return
        gid = key if gid == "" else gid
        self.groups[key] = _Group(key, gid, name or gid, "placeholder: this security group was not exported", None,
                                  placeholder=True)
        shown = f"{name!r} ({gid})" if name and gid else repr(name or gid)
        self.report(src, f"security group {shown} is not exported ({why}): an empty placeholder group (no "
                    "rules) stands for it")

    def resolve_rule_remotes(self) -> None:
        for group in list(self.groups.values()):
            for rule in group.rules.values():
                if rule.remote_group and rule.remote_group not in self.groups:
                    self.placeholder_group(rule.remote_group, self.sg_name_hints.get(rule.remote_group),
                                           rule.src.at(_key(rule.src.path, "remote_group_id")),
                                           "it is this rule's remote group; only exported NICs bound to it are members")
                if rule.remote_ag and rule.remote_ag not in self.ags:
                    version = 6 if rule.fields["ethertype"] == "IPv6" else 4
                    self.ags[rule.remote_ag] = _Obj(rule.remote_ag, None, {
                        "ip_version": version, "ip_set": [],
                        "description": "placeholder: this address group was not exported"},
                        self.doc(rule.src.file), rule.src.path, placeholder=True)
                    self.report(rule.src.at(_key(rule.src.path, "remote_address_group_id")),
                                f"address group {rule.remote_ag} is not exported: an empty placeholder group "
                                "stands for it, so this rule matches no address")
                elif rule.remote_ag:
                    ag = self.ags[rule.remote_ag]
                    want = 6 if rule.fields["ethertype"] == "IPv6" else 4
                    if ag.raw["ip_version"] != want:
                        raise self.doc(rule.src.file).err(
                            _key(rule.src.path, "remote_address_group_id"),
                            f"address group {ag.name or ag.id!r} is IPv{ag.raw['ip_version']} but the rule's "
                            f"ethertype is IPv{want}")

    @staticmethod
    def group_src(g: _Group) -> _Src | None:
        if g.src is not None:
            return g.src
        first = next(iter(g.rules.values()), None)
        return first.src if first else None

    # -- output -------------------------------------------------------------------------------

    def emit_address_groups(self) -> list[dict]:
        """The ``address_groups`` entries."""
        origins = self.origins
        ags = []
        for ag in self.ags.values():
            origins[f"address_groups[{len(ags)}]"] = ag.src
            a: dict[str, Any] = {"name": ag.out}
            if not ag.id.startswith("name:"):
                a["id"] = ag.id
            if ag.raw.get("description"):
                a["description"] = ag.raw["description"]
            a["ip_version"] = ag.raw["ip_version"]
            a["ip_set"] = list(ag.raw["ip_set"])
            if isinstance(ag.raw.get("max_capacity"), int) and not isinstance(ag.raw["max_capacity"], bool):
                a["max_capacity"] = ag.raw["max_capacity"]
            ags.append(a)
        return ags

    def emit_security_groups(self) -> list[dict]:
        """The ``security_groups`` entries, with their rules."""
        origins = self.origins
        sgs = []
        for g in self.groups.values():
            i = len(sgs)
            if g.src is not None:
                origins[f"security_groups[{i}]"] = g.src
            s = {"name": g.out}
            if g.id:
                s["id"] = g.id
            if g.description:
                s["description"] = g.description
            rules = [self.emit_rule(r) for r in g.rules.values()]
            stamped = ["created_at" in r for r in rules]
            if any(stamped) and not all(stamped):
                for r in rules:
                    r.pop("created_at", None)
                self.note(self.group_src(g), f"security group {g.out!r}: only {sum(stamped)} of its {len(rules)} "
                          "rules have created_at, so all are ordered as exported (S2)")
            for j, r in enumerate(g.rules.values()):
                origins[f"security_groups[{i}].security_group_rules[{j}]"] = r.src
            s["security_group_rules"] = rules
            sgs.append(s)
        return sgs

    def emit_rule(self, rule: _Rule) -> dict:
        f = rule.fields
        out = {k: f[k] for k in ("id", "direction", "action", "priority", "ethertype", "protocol", "multiport",
                                 "port_range_min", "port_range_max", "remote_ip_prefix") if k in f}
        if rule.remote_group:
            out["remote_group_id"] = self.groups[rule.remote_group].out
        if rule.remote_ag:
            out["remote_address_group_id"] = self.ags[rule.remote_ag].out
        for k in ("enabled", "description", "created_at"):
            if k in f:
                out[k] = f[k]
        return out
