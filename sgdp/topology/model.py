"""The topology model: load a YAML or JSON topology file, validate it (S1), order rules (S2), add the
default group (S3).

Every object is a frozen dataclass validated once, here. Addresses are kept as integers
(:mod:`sgdp.topology.addr`). References between objects (a subnet's ACL, an instance's groups, a rule's remote
group…) are resolved to names: after loading, every reference is the referenced object's ``name``.
"""

from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from sgdp.topology.addr import ANY4, ANY6, Addr, Net, format_ip, is_number, parse_cidr, parse_ip, parse_ip_set_entry, parse_mac
from sgdp.errors import ConfigError, path_names

PROTO_NAMES = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47}
PROTO_LABELS = {v: k for k, v in PROTO_NAMES.items()}
TCP, UDP, ICMP, ICMPV6, GRE = 6, 17, 1, 58, 47
PORT_PROTOS = (TCP, UDP)

LEGACY_FAMILIES = frozenset("s1 c1 c2 m1 h1 d1 g1 g2 e1 e2 et2".split())
KAI1_FAMILIES = frozenset(("kai1s", "kai1"))
MAX_MULTIPORT_SEGMENTS = 20
RULE_QUOTA = 120

Ports = tuple[tuple[int, int], ...]

# The keys each kind of object accepts, by kind: the loader checks every mapping against this table
# (unknown keys are errors, S1), and the docs test checks docs/topology.md against it. An
# instance also accepts the NIC keys (the one-NIC shorthand).
KEYS: dict[str, frozenset[str]] = {
    "topology": frozenset({
        "version", "name", "description", "vpcs", "peerings", "private_networks", "address_groups",
        "security_groups", "instances", "virtual_ips", "load_balancers", "network_acls"}),
    "vpc": frozenset({"name", "id", "description", "cidr", "subnets"}),
    "subnet": frozenset({"name", "id", "description", "cidr", "ipv6_cidr", "network_acl", "gateway_ip"}),
    "peering": frozenset({"name", "id", "description", "vpcs"}),
    "private_network": frozenset({"name", "description", "cidr", "vpcs"}),
    "address_group": frozenset({"name", "id", "description", "ip_version", "ip_set", "max_capacity"}),
    "security_group": frozenset({"name", "id", "description", "security_group_rules", "rules"}),
    "security_group_rule": frozenset({
        "id", "direction", "action", "priority", "ethertype", "protocol", "multiport", "remote_ip_prefix",
        "remote_group_id", "remote_address_group_id", "port_range_min", "port_range_max", "enabled",
        "description", "created_at", "security_group_id", "updated_at", "project_id"}),
    "instance": frozenset({"name", "id", "description", "flavor", "nics"}),
    "nic": frozenset({"subnet", "ip", "ipv6", "extra_ips", "mac", "security_groups", "eip", "ipv6_internet",
                      "source_dest_check"}),
    "virtual_ip": frozenset({"ip", "subnet", "instances", "description", "id"}),
    "load_balancer": frozenset({"name", "id", "description", "type", "vip", "eip", "subnet", "listeners"}),
    "listener": frozenset({"name", "id", "description", "protocol", "port", "transfer_client_ip", "backends"}),
    "backend": frozenset({"instance", "port", "weight"}),
    "network_acl": frozenset({"name", "id", "description", "inbound_rules", "outbound_rules"}),
    "network_acl_rule": frozenset({
        "id", "name", "description", "action", "ip_version", "protocol", "source_ip_address",
        "destination_ip_address", "source_address_group_id", "destination_address_group_id", "source_port",
        "destination_port", "enabled"}),
}


# --------------------------------------------------------------------------------------------- objects


@dataclass(frozen=True, slots=True)
class Subnet:
    name: str
    id: str | None
    vpc: str
    cidr: Net
    ipv6_cidr: Net | None
    network_acl: str | None

    def contains(self, version: int, value: int) -> bool:
        if version == 4:
            return self.cidr.contains(4, value)
        return self.ipv6_cidr is not None and self.ipv6_cidr.contains(6, value)


@dataclass(frozen=True, slots=True)
class Vpc:
    name: str
    id: str | None
    cidr: Net
    subnets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Peering:
    name: str
    vpcs: tuple[str, str]


@dataclass(frozen=True, slots=True)
class PrivateNetwork:
    name: str
    cidr: Net
    vpcs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AddressGroup:
    name: str
    id: str | None
    ip_version: int
    entries: tuple[Net, ...]

    def contains(self, version: int, value: int) -> bool:
        return any(n.contains(version, value) for n in self.entries)


@dataclass(frozen=True, slots=True)
class Rule:
    """One security-group rule, normalised.

    ``protocol`` is an IP protocol number or None (all). ``ports`` are the destination-port segments
    for tcp/udp (None = all ports). ``icmp_type``/``icmp_code`` are set for icmp/icmpv6 rules that
    name them. ``remote`` is ``("any", None)``, ``("prefix", Net)``, ``("group", name)`` or
    ``("address_group", name)``. ``order`` is the creation rank within the group (S2).
    """

    id: str
    security_group: str
    direction: str  # "ingress" | "egress"
    action: str  # "allow" | "deny"
    priority: int
    ethertype: int  # 4 | 6
    protocol: int | None
    ports: Ports | None
    icmp_type: int | None
    icmp_code: int | None
    remote_kind: str
    remote: Net | str | None
    enabled: bool
    description: str
    order: int
    position: int  # 1-based position in the file

    @property
    def inconsecutive(self) -> bool:
        """A multiport with more than one segment (S9), even ``22-24,25``."""
        return self.ports is not None and len(self.ports) > 1

    @property
    def uses_quota(self) -> bool:
        return self.enabled and (self.remote_kind in ("group", "address_group") or self.inconsecutive)

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """Order within a group (S8): priority, deny before allow, creation order."""
        return (self.priority, 0 if self.action == "deny" else 1, self.order)


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    name: str
    id: str | None
    description: str
    rules: tuple[Rule, ...]  # creation order (S2)


@dataclass(frozen=True, slots=True)
class Nic:
    """One network interface. ``index`` is its position among all NICs of the topology."""

    index: int
    instance: str
    slot: int  # 0-based position among the instance's NICs
    subnet: str
    vpc: str
    ip: int  # primary private IPv4
    ipv6: int | None
    extra_ips: tuple[Addr, ...]
    mac: int | None
    security_groups: tuple[str, ...]
    eip: int | None
    ipv6_internet: bool
    source_dest_check: bool

    @property
    def fixed_ips(self) -> tuple[Addr, ...]:
        out: list[Addr] = [(4, self.ip)]
        if self.ipv6 is not None:
            out.append((6, self.ipv6))
        out.extend(self.extra_ips)
        return tuple(out)

    @property
    def label(self) -> str:
        return self.instance if self.slot == 0 else f"{self.instance}#nic{self.slot}"


@dataclass(frozen=True, slots=True)
class Instance:
    name: str
    id: str | None
    flavor: str | None
    nics: tuple[int, ...]  # NIC indexes

    @property
    def family(self) -> str:
        return (self.flavor or "").split(".", 1)[0].lower()


@dataclass(frozen=True, slots=True)
class VirtualIp:
    ip: Addr
    subnet: str
    vpc: str
    instances: tuple[str, ...]
    holder_nic: int  # NIC index of the current holder (the first instance)


@dataclass(frozen=True, slots=True)
class Backend:
    instance: str
    port: int
    nic: int


@dataclass(frozen=True, slots=True)
class Listener:
    protocol: str  # tcp | udp | http | https
    port: int
    transfer_client_ip: bool | None  # None: not set (false)
    backends: tuple[Backend, ...]

    @property
    def ip_protocol(self) -> int:
        return UDP if self.protocol == "udp" else TCP


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    name: str
    id: str | None
    type: str  # shared | dedicated
    vip: Addr
    eip: int | None
    subnet: str
    vpc: str
    listeners: tuple[Listener, ...]

    def bypasses(self, listener: Listener) -> bool:
        """S14: the backend sees the client address and no ACL or security-group rule applies."""
        if listener.protocol not in ("tcp", "udp"):
            return False
        return self.type == "dedicated" or bool(listener.transfer_client_ip)


@dataclass(frozen=True, slots=True)
class AclRule:
    id: str
    action: str
    ip_version: int
    protocol: int | None
    src: Net | str | None  # Net, address-group name, or None (any)
    dst: Net | str | None
    sports: Ports | None
    dports: Ports | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class NetworkAcl:
    name: str
    id: str | None
    inbound: tuple[AclRule, ...]
    outbound: tuple[AclRule, ...]


@dataclass(slots=True)
class Topology:
    """A validated topology. Dicts are keyed by name and keep file order."""

    file: str
    vpcs: dict[str, Vpc]
    subnets: dict[str, Subnet]
    peerings: tuple[Peering, ...]
    private_networks: tuple[PrivateNetwork, ...]
    address_groups: dict[str, AddressGroup]
    security_groups: dict[str, SecurityGroup]
    instances: dict[str, Instance]
    nics: tuple[Nic, ...]
    virtual_ips: tuple[VirtualIp, ...]
    load_balancers: dict[str, LoadBalancer]
    network_acls: dict[str, NetworkAcl]
    created_default: bool = False
    members: dict[str, tuple[int, ...]] = field(default_factory=dict)  # group -> NIC indexes

    def __post_init__(self) -> None:
        members: dict[str, list[int]] = {g: [] for g in self.security_groups}
        for nic in self.nics:
            for g in nic.security_groups:
                members[g].append(nic.index)
        self.members = {g: tuple(v) for g, v in members.items()}

    def peered(self, a: str, b: str) -> bool:
        return a == b or any({a, b} == set(p.vpcs) for p in self.peerings)


# ---------------------------------------------------------------------------------------------- loading


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read and validate a topology file (YAML or JSON, chosen by content)."""
    path = os.fspath(path)
    data = read_structured_file(path, "topology")
    return topology_from_data(data, path)


def read_structured_file(path: str, what: str) -> Any:
    """Parse a YAML or JSON file into Python data; a parse error names the file and the line. Bounded in
    size, nesting and alias expansion; duplicate keys are errors (:mod:`sgdp.topology.structured`)."""
    from sgdp.topology.structured import read_structured_file as read_bounded_file

    return read_bounded_file(path, what)


def topology_from_data(data: Any, file: str = "<topology>") -> Topology:
    """Validate already-parsed topology data (a dict as the file holds it)."""
    return _Loader(file).load(data)


class _Loader:
    """One pass over the file's data, building objects and checking S1 as it goes."""

    TOP_KEYS = KEYS["topology"]

    def __init__(self, file: str):
        self.file = file
        self.data: Any = None

    # -- small helpers that know the file name --------------------------------------------------

    def err(self, path: str, message: str) -> ConfigError:
        """The error at ``path``, naming the objects on the path by their names."""
        return ConfigError(self.file, path, message, path_names(self.data, path))

    def obj(self, value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.err(path, f"expected a mapping, got {_show(value)}")
        for key in value:
            if key not in allowed:
                raise self.err(f"{path}.{key}" if path else str(key), f"unknown key {str(key)!r} (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if value.get(key) is None:
                raise self.err(f"{path}.{key}" if path else key, "is required")
        return value

    def lst(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.err(path, f"expected a list, got {_show(value)}")
        return value

    def text(self, value: Any, path: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.err(path, f"expected a non-empty string, got {_show(value)}")
        return value

    def ident(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.err(path, f"expected a string, got {_show(value)}")
        return str(value)

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.err(path, f"expected true or false, got {_show(value)}")
        return value

    def integer(self, value: Any, path: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and is_number(value.strip()):
                value = int(value)
            else:
                raise self.err(path, f"expected an integer {lo}..{hi}, got {_show(value)}")
        if not lo <= value <= hi:
            raise self.err(path, f"{_show(value)} is out of range {lo}..{hi}")
        return value

    def parse(self, fn: Callable[[str], Any], value: Any, path: str) -> Any:
        try:
            return fn(value)
        except ValueError as exc:
            raise self.err(path, str(exc)) from None

    def unique(self, seen: dict, key: Any, path: str, what: str, shown: str | None = None) -> None:
        """``shown``: the key as the user wrote it, when the key itself is not text."""
        if key in seen:
            raise self.err(path, f"duplicate {what} {shown or _show(key)} (first at {seen[key]})")
        seen[key] = path

    def register_id(self, ids: dict[str, str], raw_id: Any, name: str, path: str, what: str) -> None:
        """Remember an object's id for references; ids are unique per kind."""
        oid = self.ident(raw_id, path)
        if oid is None:
            return
        if oid in ids:
            raise self.err(path, f"duplicate {what} id {oid!r} (already the id of {ids[oid]!r})")
        ids[oid] = name

    def ref(self, table: dict[str, Any], ids: dict[str, str], value: Any, path: str, what: str) -> str:
        key = self.ident(value, path)
        if key in table:
            return key
        if key in ids:
            return ids[key]
        raise self.err(path, f"unknown {what} {key!r}")

    # -- the file ----------------------------------------------------------------------------

    def load(self, data: Any) -> Topology:
        self.data = data
        if data is None:
            raise self.err("", "the topology file is empty")
        top = self.obj(data, "", self.TOP_KEYS)
        version = top.get("version", 1)
        if version != 1:
            raise self.err("version", f"unsupported version {_show(version)} (expected 1)")

        self.address_groups, self.ag_ids = self.load_address_groups(top.get("address_groups"))
        self.acls, self.acl_ids = {}, {}
        acl_data = self.lst(top.get("network_acls"), "network_acls")
        acl_names: dict[str, str] = {}
        for i, raw in enumerate(acl_data):  # names first: subnets refer to ACLs
            p = f"network_acls[{i}]"
            self.obj(raw, p, KEYS["network_acl"], ("name",))
            name = self.text(raw["name"], f"{p}.name")
            self.unique(acl_names, name, f"{p}.name", "network ACL name")
            self.register_id(self.acl_ids, raw.get("id"), name, f"{p}.id", "network ACL")
        self.vpcs, self.subnets, self.vpc_ids, self.subnet_ids = self.load_vpcs(top.get("vpcs"), acl_names)
        peerings = self.load_peerings(top.get("peerings"))
        private = self.load_private_networks(top.get("private_networks"))

        sg_data = self.lst(top.get("security_groups"), "security_groups")
        instances_data = self.lst(top.get("instances"), "instances")
        groups_by_name: dict[str, int] = {}
        self.sg_ids: dict[str, str] = {}
        for i, raw in enumerate(sg_data):
            p = f"security_groups[{i}]"
            self.obj(raw, p, KEYS["security_group"], ("name",))
            name = self.text(raw["name"], f"{p}.name")
            if name in groups_by_name:
                raise self.err(f"{p}.name", f"duplicate security group name {name!r} (first at security_groups[{groups_by_name[name]}])")
            groups_by_name[name] = i
            self.register_id(self.sg_ids, raw.get("id"), name, f"{p}.id", "security group")
        needs_default = "default" not in groups_by_name and any(_lacks_groups(r) for r in instances_data)
        self.group_names = set(groups_by_name) | ({"default"} if needs_default else set())
        self.rule_ids: dict[str, str] = {}
        groups: dict[str, SecurityGroup] = {}
        for i, raw in enumerate(sg_data):
            sg = self.load_group(raw, f"security_groups[{i}]")
            groups[sg.name] = sg
        if needs_default:
            groups["default"] = default_group()
            for rule in groups["default"].rules:
                if rule.id in self.rule_ids:
                    raise self.err(f"{self.rule_ids[rule.id]}.id", f"rule id {rule.id!r} is taken by the created default group (S3)")

        acls = {}
        for i, raw in enumerate(acl_data):
            acl = self.load_acl(raw, f"network_acls[{i}]")
            acls[acl.name] = acl

        instances, nics = self.load_instances(instances_data, groups)
        self.instances, self.nics = instances, nics
        vips = self.load_vips(top.get("virtual_ips"))
        lbs = self.load_lbs(top.get("load_balancers"))
        self.check_addresses(nics, vips, lbs)
        return Topology(
            file=self.file, vpcs=self.vpcs, subnets=self.subnets, peerings=peerings, private_networks=private,
            address_groups=self.address_groups, security_groups=groups, instances=instances, nics=nics,
            virtual_ips=vips, load_balancers=lbs, network_acls=acls, created_default=needs_default,
        )

    def load_address_groups(self, data: Any) -> tuple[dict[str, AddressGroup], dict[str, str]]:
        out: dict[str, AddressGroup] = {}
        ids: dict[str, str] = {}
        for i, raw in enumerate(self.lst(data, "address_groups")):
            p = f"address_groups[{i}]"
            self.obj(raw, p, KEYS["address_group"], ("name",))
            name = self.text(raw["name"], f"{p}.name")
            if name in out:
                raise self.err(f"{p}.name", f"duplicate address group name {name!r}")
            version = raw.get("ip_version", 4)
            if type(version) is not int or version not in (4, 6):
                raise self.err(f"{p}.ip_version", f"expected 4 or 6, got {_show(version)}")
            entries = []
            for j, entry in enumerate(self.lst(raw.get("ip_set"), f"{p}.ip_set")):
                net = self.parse(parse_ip_set_entry, entry, f"{p}.ip_set[{j}]")
                if net.version != version:
                    raise self.err(f"{p}.ip_set[{j}]", f"{entry!r} is IPv{net.version} but the group's ip_version is {version}")
                entries.append(net)
            gid = self.ident(raw.get("id"), f"{p}.id")
            self.register_id(ids, gid, name, f"{p}.id", "address group")
            out[name] = AddressGroup(name, gid, version, tuple(entries))
        return out, ids

    def load_vpcs(self, data: Any, acl_names: dict[str, str]):
        vpcs: dict[str, Vpc] = {}
        subnets: dict[str, Subnet] = {}
        vpc_ids: dict[str, str] = {}
        subnet_ids: dict[str, str] = {}
        for i, raw in enumerate(self.lst(data, "vpcs")):
            p = f"vpcs[{i}]"
            self.obj(raw, p, KEYS["vpc"], ("name", "cidr"))
            name = self.text(raw["name"], f"{p}.name")
            if name in vpcs:
                raise self.err(f"{p}.name", f"duplicate VPC name {name!r}")
            cidr = self.parse(parse_cidr, raw["cidr"], f"{p}.cidr")
            if cidr.version != 4:
                raise self.err(f"{p}.cidr", f"{raw['cidr']!r} is not an IPv4 CIDR")
            names = []
            for j, sraw in enumerate(self.lst(raw.get("subnets"), f"{p}.subnets")):
                sp = f"{p}.subnets[{j}]"
                self.obj(sraw, sp, KEYS["subnet"], ("name", "cidr"))
                sname = self.text(sraw["name"], f"{sp}.name")
                if sname in subnets:
                    raise self.err(f"{sp}.name", f"duplicate subnet name {sname!r}")
                scidr = self.parse(parse_cidr, sraw["cidr"], f"{sp}.cidr")
                if not cidr.covers(scidr):
                    raise self.err(f"{sp}.cidr", f"{sraw['cidr']!r} is not inside the VPC's CIDR {raw['cidr']!r}")
                for other in names:
                    o = subnets[other].cidr
                    if o.lo <= scidr.hi and scidr.lo <= o.hi:
                        raise self.err(f"{sp}.cidr", f"{sraw['cidr']!r} overlaps subnet {other!r}")
                v6 = None
                if sraw.get("ipv6_cidr") is not None:
                    v6 = self.parse(parse_cidr, sraw["ipv6_cidr"], f"{sp}.ipv6_cidr")
                    if v6.version != 6:
                        raise self.err(f"{sp}.ipv6_cidr", f"{sraw['ipv6_cidr']!r} is not an IPv6 CIDR")
                    for other in names:
                        o6 = subnets[other].ipv6_cidr
                        if o6 is not None and o6.lo <= v6.hi and v6.lo <= o6.hi:
                            raise self.err(f"{sp}.ipv6_cidr", f"{sraw['ipv6_cidr']!r} overlaps subnet {other!r}")
                acl = None
                if sraw.get("network_acl") is not None:
                    acl = self.ident(sraw["network_acl"], f"{sp}.network_acl")
                    if acl not in acl_names:
                        if acl in self.acl_ids:
                            acl = self.acl_ids[acl]
                        else:
                            raise self.err(f"{sp}.network_acl", f"unknown network ACL {acl!r}")
                sid = self.ident(sraw.get("id"), f"{sp}.id")
                self.register_id(subnet_ids, sid, sname, f"{sp}.id", "subnet")
                subnets[sname] = Subnet(sname, sid, name, scidr, v6, acl)
                names.append(sname)
            vid = self.ident(raw.get("id"), f"{p}.id")
            self.register_id(vpc_ids, vid, name, f"{p}.id", "VPC")
            vpcs[name] = Vpc(name, vid, cidr, tuple(names))
        return vpcs, subnets, vpc_ids, subnet_ids

    def load_peerings(self, data: Any) -> tuple[Peering, ...]:
        out = []
        names: dict[str, str] = {}
        for i, raw in enumerate(self.lst(data, "peerings")):
            p = f"peerings[{i}]"
            self.obj(raw, p, KEYS["peering"], ("vpcs",))
            name = self.text(raw.get("name", f"peering-{i + 1}"), f"{p}.name")
            self.unique(names, name, f"{p}.name", "peering name")
            pair = self.lst(raw["vpcs"], f"{p}.vpcs")
            if len(pair) != 2:
                raise self.err(f"{p}.vpcs", f"a peering joins exactly two VPCs, got {_show(pair)}")
            a = self.ref(self.vpcs, self.vpc_ids, pair[0], f"{p}.vpcs[0]", "VPC")
            b = self.ref(self.vpcs, self.vpc_ids, pair[1], f"{p}.vpcs[1]", "VPC")
            if a == b:
                raise self.err(f"{p}.vpcs", f"a peering joins two different VPCs, got {a!r} twice")
            out.append(Peering(name, (a, b)))
        return tuple(out)

    def load_private_networks(self, data: Any) -> tuple[PrivateNetwork, ...]:
        out = []
        names: dict[str, str] = {}
        for i, raw in enumerate(self.lst(data, "private_networks")):
            p = f"private_networks[{i}]"
            self.obj(raw, p, KEYS["private_network"], ("name", "cidr", "vpcs"))
            name = self.text(raw["name"], f"{p}.name")
            self.unique(names, name, f"{p}.name", "private network name")
            cidr = self.parse(parse_cidr, raw["cidr"], f"{p}.cidr")
            vpcs = tuple(self.ref(self.vpcs, self.vpc_ids, v, f"{p}.vpcs[{j}]", "VPC") for j, v in enumerate(self.lst(raw["vpcs"], f"{p}.vpcs")))
            for v in vpcs:
                vc = self.vpcs[v].cidr
                if cidr.version == 4 and vc.lo <= cidr.hi and cidr.lo <= vc.hi:
                    raise self.err(f"{p}.cidr", f"{raw['cidr']!r} overlaps the CIDR of VPC {v!r}")
            out.append(PrivateNetwork(name, cidr, vpcs))
        return tuple(out)

    # -- security groups -----------------------------------------------------------------------

    RULE_KEYS = KEYS["security_group_rule"]

    def load_group(self, raw: dict, p: str) -> SecurityGroup:
        name = raw["name"]
        if raw.get("security_group_rules") is not None and raw.get("rules") is not None:
            raise self.err(p, "give either security_group_rules or rules, not both")
        key = "rules" if raw.get("rules") is not None else "security_group_rules"
        rules_data = self.lst(raw.get(key), f"{p}.{key}")
        stamps: list[datetime | None] = []
        drafts = []
        for j, rraw in enumerate(rules_data):
            rp = f"{p}.{key}[{j}]"
            draft, stamp = self.load_rule(rraw, rp, name, j + 1)
            drafts.append(draft)
            stamps.append(stamp)
        have = [s is not None for s in stamps]
        if any(have) and not all(have):
            j = have.index(not have[0]) if have[0] else have.index(True)
            raise self.err(f"{p}.{key}[{j}].created_at", "either every rule of a group has created_at or none has")
        order = list(range(len(drafts)))
        if all(have) and drafts:
            order.sort(key=lambda k: (stamps[k], k))
        rank = {k: r for r, k in enumerate(order)}
        rules = tuple(Rule(**{**drafts[k], "order": rank[k]}) for k in order)
        return SecurityGroup(name, self.ident(raw.get("id"), f"{p}.id"), str(raw.get("description") or ""), rules)

    def load_rule(self, raw: Any, p: str, group: str, position: int) -> tuple[dict, datetime | None]:
        self.obj(raw, p, self.RULE_KEYS, ("direction",))
        rid = self.ident(raw.get("id"), f"{p}.id") or f"{group}:{position}"
        if rid in self.rule_ids:
            raise self.err(f"{p}.id", f"duplicate rule id {rid!r} (first at {self.rule_ids[rid]})")
        self.rule_ids[rid] = p
        direction = _lower(raw["direction"])
        if direction not in ("ingress", "egress"):
            raise self.err(f"{p}.direction", f"expected ingress or egress, got {_show(raw['direction'])}")
        action = _lower(raw.get("action", "allow"))
        if action not in ("allow", "deny"):
            raise self.err(f"{p}.action", f"expected allow or deny, got {_show(raw.get('action'))}")
        priority = self.integer(raw.get("priority", 1), f"{p}.priority", 1, 100)
        eth = _lower(raw.get("ethertype", "IPv4"))
        if eth not in ("ipv4", "ipv6"):
            raise self.err(f"{p}.ethertype", f"expected IPv4 or IPv6, got {_show(raw.get('ethertype'))}")
        version = 4 if eth == "ipv4" else 6
        proto = self.protocol(raw.get("protocol"), f"{p}.protocol")
        if proto == ICMP and version == 6:
            raise self.err(f"{p}.protocol", "'icmp' is IPv4 only; use 'icmpv6' with ethertype IPv6")
        if proto == ICMPV6 and version == 4:
            raise self.err(f"{p}.protocol", "'icmpv6' is IPv6 only; use 'icmp' with ethertype IPv4")

        ports, itype, icode = None, None, None
        has_mp = raw.get("multiport") is not None
        has_range = raw.get("port_range_min") is not None or raw.get("port_range_max") is not None
        if has_mp and has_range:
            rng = ", ".join(f"{k}={raw[k]!r}" for k in ("port_range_min", "port_range_max") if raw.get(k) is not None)
            raise self.err(f"{p}.multiport", f"{raw['multiport']!r}: give either multiport or port_range_min/port_range_max ({rng}), not both")
        if has_mp:
            if proto not in PORT_PROTOS:
                raise self.err(f"{p}.multiport", f"{raw['multiport']!r}: multiport is only for tcp and udp rules (protocol is {_proto_label(proto)})")
            ports = self.multiport(raw["multiport"], f"{p}.multiport")
        elif has_range:
            lo, hi = raw.get("port_range_min"), raw.get("port_range_max")
            if proto in PORT_PROTOS:
                if lo is None:
                    raise self.err(f"{p}.port_range_min", "is required when port_range_max is given")
                lo = self.integer(lo, f"{p}.port_range_min", 1, 65535)
                hi = lo if hi is None else self.integer(hi, f"{p}.port_range_max", 1, 65535)
                if lo > hi:
                    raise self.err(f"{p}.port_range_max", f"{hi} is below port_range_min {lo}")
                ports = ((lo, hi),)
            elif proto in (ICMP, ICMPV6):
                if lo is None:
                    raise self.err(f"{p}.port_range_min", "is required (the ICMP type) when port_range_max (the code) is given")
                itype = self.integer(lo, f"{p}.port_range_min", 0, 255)
                icode = None if hi is None else self.integer(hi, f"{p}.port_range_max", 0, 255)
            else:
                key = "port_range_min" if lo is not None else "port_range_max"
                raise self.err(f"{p}.{key}", f"{raw[key]!r}: ports apply only to tcp, udp, icmp and icmpv6 rules (protocol is {_proto_label(proto)})")

        remotes = [k for k in ("remote_ip_prefix", "remote_group_id", "remote_address_group_id") if raw.get(k) is not None]
        if len(remotes) > 1:
            raise self.err(f"{p}.{remotes[1]}", f"{raw[remotes[1]]!r}: a rule has at most one remote; it already has {remotes[0]} {raw[remotes[0]]!r}")
        kind, remote = "any", None
        if remotes == ["remote_ip_prefix"]:
            net = self.parse(parse_cidr, raw["remote_ip_prefix"], f"{p}.remote_ip_prefix")
            if net.version != version:
                raise self.err(f"{p}.remote_ip_prefix", f"{raw['remote_ip_prefix']!r} is IPv{net.version} but the rule's ethertype is IPv{version}")
            kind, remote = "prefix", net
        elif remotes == ["remote_group_id"]:
            ref = self.ident(raw["remote_group_id"], f"{p}.remote_group_id")
            if ref in self.group_names:
                remote = ref
            elif ref in self.sg_ids:
                remote = self.sg_ids[ref]
            else:
                raise self.err(f"{p}.remote_group_id", f"unknown security group {ref!r}")
            kind = "group"
        elif remotes == ["remote_address_group_id"]:
            ag = self.ref(self.address_groups, self.ag_ids, raw["remote_address_group_id"], f"{p}.remote_address_group_id", "address group")
            if self.address_groups[ag].ip_version != version:
                raise self.err(f"{p}.remote_address_group_id", f"address group {ag!r} is IPv{self.address_groups[ag].ip_version} but the rule's ethertype is IPv{version}")
            kind, remote = "address_group", ag

        stamp = None
        if raw.get("created_at") is not None:
            stamp = self.timestamp(raw["created_at"], f"{p}.created_at")
        draft = dict(
            id=rid, security_group=group, direction=direction, action=action, priority=priority,
            ethertype=version, protocol=proto, ports=ports, icmp_type=itype, icmp_code=icode,
            remote_kind=kind, remote=remote, enabled=self.boolean(raw.get("enabled"), f"{p}.enabled", True),
            description=str(raw.get("description") or ""), position=position,
        )
        return draft, stamp

    def protocol(self, value: Any, path: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            v = value.strip().lower()
            if v in PROTO_NAMES:
                return PROTO_NAMES[v]
            if v in ("any", "all", ""):
                return None
            if is_number(v):
                value = int(v)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise self.err(path, f"expected tcp, udp, icmp, icmpv6, gre, any, a number 0..255 or null, got {_show(value)}")
        return value

    def multiport(self, value: Any, path: str) -> Ports:
        try:
            return parse_multiport(value)
        except ValueError as exc:
            raise self.err(path, str(exc)) from None

    def timestamp(self, value: Any, path: str) -> datetime:
        if isinstance(value, datetime):
            stamp = value
        else:
            try:
                stamp = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
            except ValueError:
                raise self.err(path, f"{value!r} is not an ISO 8601 date and time") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return stamp

    # -- instances ----------------------------------------------------------------------------

    NIC_KEYS = KEYS["nic"]

    def load_instances(self, data: list, groups: dict[str, SecurityGroup]):
        instances: dict[str, Instance] = {}
        nics: list[Nic] = []
        self.instance_ids: dict[str, str] = {}
        self.nic_paths: dict[int, str] = {}
        self.sg_lists: dict[tuple[str, ...], tuple[str, ...]] = {}  # a NIC's security_groups as written -> resolved
        for i, raw in enumerate(data):
            p = f"instances[{i}]"
            self.obj(raw, p, KEYS["instance"] | self.NIC_KEYS, ("name",))
            name = self.text(raw["name"], f"{p}.name")
            if name in instances:
                raise self.err(f"{p}.name", f"duplicate instance name {name!r}")
            flavor = self.text(raw.get("flavor"), f"{p}.flavor", optional=True)
            if raw.get("nics") is not None:
                shorthand = [k for k in self.NIC_KEYS if raw.get(k) is not None]
                if shorthand:
                    raise self.err(f"{p}.{sorted(shorthand)[0]}", "give NIC fields inside `nics:` or at the instance, not both")
                nic_data = [(f"{p}.nics[{j}]", n) for j, n in enumerate(self.lst(raw["nics"], f"{p}.nics"))]
                if not nic_data:
                    raise self.err(f"{p}.nics", "an instance needs at least one NIC")
            else:
                nic_data = [(p, {k: raw[k] for k in self.NIC_KEYS if k in raw})]
            indexes = []
            for slot, (np_, nraw) in enumerate(nic_data):
                nic = self.load_nic(nraw, np_, name, slot, len(nics), groups)
                nics.append(nic)
                indexes.append(nic.index)
            iid = self.ident(raw.get("id"), f"{p}.id")
            self.register_id(self.instance_ids, iid, name, f"{p}.id", "instance")
            instances[name] = Instance(name, iid, flavor, tuple(indexes))
        return instances, tuple(nics)

    def load_nic(self, raw: Any, p: str, instance: str, slot: int, index: int, groups: dict[str, SecurityGroup]) -> Nic:
        self.obj(raw, p, self.NIC_KEYS, ("subnet", "ip"))
        self.nic_paths[index] = p
        subnet = self.ref(self.subnets, self.subnet_ids, raw["subnet"], f"{p}.subnet", "subnet")
        sn = self.subnets[subnet]
        ip = self.address_in(raw["ip"], f"{p}.ip", sn, 4)
        ipv6 = None if raw.get("ipv6") is None else self.address_in(raw["ipv6"], f"{p}.ipv6", sn, 6)
        extra = tuple(self.address_in(x, f"{p}.extra_ips[{k}]", sn, None) for k, x in enumerate(self.lst(raw.get("extra_ips"), f"{p}.extra_ips")))
        mac = None if raw.get("mac") is None else self.parse(parse_mac, raw["mac"], f"{p}.mac")
        if raw.get("security_groups") is None:
            sgs = ("default",)
        else:
            refs = self.lst(raw["security_groups"], f"{p}.security_groups")
            if not refs:
                raise self.err(f"{p}.security_groups", "a NIC has at least one security group (omit the key for `default`)")
            key = tuple(refs) if set(map(type, refs)) == {str} else None  # NICs share their lists of groups
            sgs = self.sg_lists.get(key) if key is not None else None
            if sgs is None:
                sgs = tuple(self.ref(groups, self.sg_ids, r, f"{p}.security_groups[{k}]", "security group") for k, r in enumerate(refs))
                if len(set(sgs)) != len(sgs):
                    raise self.err(f"{p}.security_groups", f"{_show(refs)} names a group twice")
                if key is not None:
                    self.sg_lists[key] = sgs  # only a list that resolved without error
        eip = None
        if raw.get("eip") is not None:
            v, eip = self.parse(parse_ip, raw["eip"], f"{p}.eip")
            if v != 4:
                raise self.err(f"{p}.eip", f"{raw['eip']!r} is not an IPv4 address")
        return Nic(
            index=index, instance=instance, slot=slot, subnet=subnet, vpc=sn.vpc, ip=ip[1],
            ipv6=None if ipv6 is None else ipv6[1], extra_ips=extra, mac=mac, security_groups=sgs, eip=eip,
            ipv6_internet=self.boolean(raw.get("ipv6_internet"), f"{p}.ipv6_internet", False),
            source_dest_check=self.boolean(raw.get("source_dest_check"), f"{p}.source_dest_check", True),
        )

    def address_in(self, value: Any, path: str, subnet: Subnet, version: int | None) -> Addr:
        addr = self.parse(parse_ip, value, path)
        if version is not None and addr[0] != version:
            raise self.err(path, f"{value!r} is not an IPv{version} address")
        if not subnet.contains(*addr):
            where = subnet.cidr if addr[0] == 4 else subnet.ipv6_cidr
            raise self.err(path, f"{value!r} is not inside subnet {subnet.name!r} ({where if where else 'no IPv6 CIDR'})")
        return addr

    def nic_of(self, instance: str, vpc: str, subnet: str | None) -> int | None:
        """The instance's NIC in ``subnet`` if any, else its first NIC in ``vpc``."""
        idx = self.instances[instance].nics
        for k in idx:
            if self.nics[k].subnet == subnet:
                return k
        for k in idx:
            if self.nics[k].vpc == vpc:
                return k
        return None

    def load_vips(self, data: Any) -> tuple[VirtualIp, ...]:
        out = []
        for i, raw in enumerate(self.lst(data, "virtual_ips")):
            p = f"virtual_ips[{i}]"
            self.obj(raw, p, KEYS["virtual_ip"], ("ip", "subnet"))
            subnet = self.ref(self.subnets, self.subnet_ids, raw["subnet"], f"{p}.subnet", "subnet")
            addr = self.address_in(raw["ip"], f"{p}.ip", self.subnets[subnet], None)
            names = self.lst(raw.get("instances"), f"{p}.instances")
            if not names:
                raise self.err(f"{p}.instances", "a virtual IP needs at least one instance (the first holds it)")
            insts = tuple(self.ref(self.instances, self.instance_ids, n, f"{p}.instances[{k}]", "instance") for k, n in enumerate(names))
            vpc = self.subnets[subnet].vpc
            for k, inst in enumerate(insts):
                if self.nic_of(inst, vpc, subnet) is None:
                    raise self.err(f"{p}.instances[{k}]", f"instance {inst!r} has no NIC in VPC {vpc!r}")
            out.append(VirtualIp(addr, subnet, vpc, insts, self.nic_of(insts[0], vpc, subnet)))
        return tuple(out)

    def load_lbs(self, data: Any) -> dict[str, LoadBalancer]:
        out: dict[str, LoadBalancer] = {}
        for i, raw in enumerate(self.lst(data, "load_balancers")):
            p = f"load_balancers[{i}]"
            self.obj(raw, p, KEYS["load_balancer"], ("name", "vip", "subnet"))
            name = self.text(raw["name"], f"{p}.name")
            if name in out:
                raise self.err(f"{p}.name", f"duplicate load balancer name {name!r}")
            kind = _lower(raw.get("type", "shared"))
            if kind not in ("shared", "dedicated"):
                raise self.err(f"{p}.type", f"expected shared or dedicated, got {_show(raw.get('type'))}")
            subnet = self.ref(self.subnets, self.subnet_ids, raw["subnet"], f"{p}.subnet", "subnet")
            vpc = self.subnets[subnet].vpc
            vip = self.parse(parse_ip, raw["vip"], f"{p}.vip")
            if vip[0] != 4:
                raise self.err(f"{p}.vip", f"{raw['vip']!r} is not an IPv4 address (sgdp models IPv4 load balancers)")
            if not self.subnets[subnet].contains(*vip) and not (vip[0] == 4 and self.vpcs[vpc].cidr.contains(*vip)):
                raise self.err(f"{p}.vip", f"{raw['vip']!r} is not inside VPC {vpc!r}")
            eip = None
            if raw.get("eip") is not None:
                v, eip = self.parse(parse_ip, raw["eip"], f"{p}.eip")
                if v != 4:
                    raise self.err(f"{p}.eip", f"{raw['eip']!r} is not an IPv4 address")
            listeners = []
            seen: dict[str, str] = {}
            for j, lraw in enumerate(self.lst(raw.get("listeners"), f"{p}.listeners")):
                lp = f"{p}.listeners[{j}]"
                self.obj(lraw, lp, KEYS["listener"], ("protocol", "port"))
                proto = _lower(lraw["protocol"])
                if proto not in ("tcp", "udp", "http", "https"):
                    raise self.err(f"{lp}.protocol", f"expected tcp, udp, http or https, got {_show(lraw['protocol'])}")
                port = self.integer(lraw["port"], f"{lp}.port", 1, 65535)
                tci = lraw.get("transfer_client_ip")
                if tci is not None:
                    tci = self.boolean(tci, f"{lp}.transfer_client_ip", False)
                backends = []
                for k, braw in enumerate(self.lst(lraw.get("backends"), f"{lp}.backends")):
                    bp = f"{lp}.backends[{k}]"
                    self.obj(braw, bp, KEYS["backend"], ("instance", "port"))
                    inst = self.ref(self.instances, self.instance_ids, braw["instance"], f"{bp}.instance", "instance")
                    nic = self.nic_of(inst, vpc, None)
                    if nic is None:
                        raise self.err(f"{bp}.instance", f"instance {inst!r} has no NIC in the load balancer's VPC {vpc!r}")
                    backends.append(Backend(inst, self.integer(braw["port"], f"{bp}.port", 1, 65535), nic))
                if not backends:
                    raise self.err(f"{lp}.backends", "a listener needs at least one backend")
                listener = Listener(proto, port, tci, tuple(backends))
                self.unique(seen, f"{_proto_label(listener.ip_protocol)} {port}", f"{lp}.port", "listener (TCP or UDP) port")
                listeners.append(listener)
            out[name] = LoadBalancer(name, self.ident(raw.get("id"), f"{p}.id"), kind, vip, eip, subnet, vpc, tuple(listeners))
        return out

    # -- network ACLs -------------------------------------------------------------------------

    ACL_RULE_KEYS = KEYS["network_acl_rule"]

    def load_acl(self, raw: dict, p: str) -> NetworkAcl:
        name = raw["name"]
        lists = []
        for key, tag in (("inbound_rules", "in"), ("outbound_rules", "out")):
            rules = []
            for j, rraw in enumerate(self.lst(raw.get(key), f"{p}.{key}")):
                rp = f"{p}.{key}[{j}]"
                self.obj(rraw, rp, self.ACL_RULE_KEYS)
                rid = self.ident(rraw.get("id"), f"{rp}.id") or f"{name}:{tag}:{j + 1}"
                action = _lower(rraw.get("action", "allow"))
                if action not in ("allow", "deny"):
                    raise self.err(f"{rp}.action", f"expected allow or deny, got {_show(rraw.get('action'))}")
                version = rraw.get("ip_version", 4)
                if type(version) is not int or version not in (4, 6):
                    raise self.err(f"{rp}.ip_version", f"expected 4 or 6, got {_show(version)}")
                proto = self.protocol(rraw.get("protocol"), f"{rp}.protocol")
                if (proto == ICMP and version == 6) or (proto == ICMPV6 and version == 4):
                    raise self.err(f"{rp}.protocol", f"{_proto_label(proto)!r} does not go with ip_version {version}")
                ends = []
                for side in ("source", "destination"):
                    ipk, agk = f"{side}_ip_address", f"{side}_address_group_id"
                    if rraw.get(ipk) is not None and rraw.get(agk) is not None:
                        raise self.err(f"{rp}.{agk}", f"give either {ipk} or {agk}, not both")
                    end: Net | str | None = None
                    if rraw.get(ipk) is not None:
                        end = self.parse(parse_cidr, rraw[ipk], f"{rp}.{ipk}")
                        if end.version != version:
                            raise self.err(f"{rp}.{ipk}", f"{rraw[ipk]!r} is IPv{end.version} but the rule's ip_version is {version}")
                    elif rraw.get(agk) is not None:
                        end = self.ref(self.address_groups, self.ag_ids, rraw[agk], f"{rp}.{agk}", "address group")
                        if self.address_groups[end].ip_version != version:
                            raise self.err(f"{rp}.{agk}", f"address group {end!r} is IPv{self.address_groups[end].ip_version} but the rule's ip_version is {version}")
                    ends.append(end)
                port_sets = []
                for pk in ("source_port", "destination_port"):
                    ports = None
                    if rraw.get(pk) is not None:
                        if proto not in PORT_PROTOS:
                            raise self.err(f"{rp}.{pk}", f"{rraw[pk]!r}: ports are only for tcp and udp rules (protocol is {_proto_label(proto)})")
                        ports = self.multiport(rraw[pk], f"{rp}.{pk}")
                    port_sets.append(ports)
                if rid in self.rule_ids:
                    raise self.err(f"{rp}.id", f"duplicate rule id {rid!r} (first at {self.rule_ids[rid]})")
                self.rule_ids[rid] = rp
                rules.append(AclRule(rid, action, version, proto, ends[0], ends[1], port_sets[0], port_sets[1],
                                     self.boolean(rraw.get("enabled"), f"{rp}.enabled", True)))
            lists.append(tuple(rules))
        return NetworkAcl(name, self.ident(raw.get("id"), f"{p}.id"), lists[0], lists[1])

    # -- cross-object checks ------------------------------------------------------------------

    def check_addresses(self, nics: tuple[Nic, ...], vips: tuple[VirtualIp, ...], lbs: dict[str, LoadBalancer]) -> None:
        """IPs unique within a VPC; EIPs and MACs unique everywhere."""
        seen: dict[tuple[str, int, int], str] = {}
        eips: dict[str, str] = {}
        macs: dict[str, str] = {}
        owners = {n.index: f"instance {n.instance!r}" for n in nics}

        def claim(vpc: str, addr: Addr, path: str, owner: str) -> None:
            key = (vpc, addr[0], addr[1])
            if key in seen:
                raise self.err(path, f"{format_ip(*addr)} is already used in VPC {vpc!r} by {seen[key]}")
            seen[key] = owner

        paths = self.nic_paths
        for nic in nics:
            p = paths[nic.index]
            claim(nic.vpc, (4, nic.ip), f"{p}.ip", owners[nic.index])
            if nic.ipv6 is not None:
                claim(nic.vpc, (6, nic.ipv6), f"{p}.ipv6", owners[nic.index])
            for k, addr in enumerate(nic.extra_ips):
                claim(nic.vpc, addr, f"{p}.extra_ips[{k}]", owners[nic.index])
            if nic.eip is not None:
                self.unique(eips, format_ip(4, nic.eip), f"{p}.eip", "EIP")
            if nic.mac is not None:
                self.unique(macs, _format_mac(nic.mac), f"{p}.mac", "MAC")
        for i, vip in enumerate(vips):
            claim(vip.vpc, vip.ip, f"virtual_ips[{i}].ip", f"virtual IP {format_ip(*vip.ip)}")
        for i, lb in enumerate(lbs.values()):
            claim(lb.vpc, lb.vip, f"load_balancers[{i}].vip", f"load balancer {lb.name!r}")
            if lb.eip is not None:
                self.unique(eips, format_ip(4, lb.eip), f"load_balancers[{i}].eip", "EIP")


def parse_multiport(value: Any) -> Ports:
    """``"80"``, ``"1-30"``, ``"22,3389,80"``, ``"22-24,25"`` to sorted ``((lo, hi), ...)`` (S1)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{_show(value)} is not a port list")
    if isinstance(value, int) and not 1 <= value <= 65535:
        raise ValueError(f"{_show(value)}: a port is 1..65535")
    text = str(value)
    segments = []
    for part in text.split(","):
        part = part.strip()
        lo_text, dash, hi_text = part.partition("-")
        lo_text, hi_text = lo_text.strip(), hi_text.strip()
        if not is_number(lo_text) or (dash and not is_number(hi_text)):
            seg = "" if part == text.strip() else f" (segment {_show(part)})"
            hint = "; ports are written in ASCII digits" if any(c.isdigit() and not c.isascii() for c in part) else ""
            raise ValueError(f"{_show(text)} is not a port list{seg}{hint}")
        lo = int(lo_text)
        hi = int(hi_text) if dash else lo
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"{_show(text)}: segment {_show(part)} is not N or A-B with 1 <= A <= B <= 65535")
        segments.append((lo, hi))
    if len(segments) > MAX_MULTIPORT_SEGMENTS:
        raise ValueError(f"{_show(text)} has {len(segments)} segments (at most {MAX_MULTIPORT_SEGMENTS})")
    ordered = sorted(segments)
    for (alo, ahi), (blo, bhi) in zip(ordered, ordered[1:]):
        if blo <= ahi:
            raise ValueError(f"{_show(text)}: segments {_seg(alo, ahi)} and {_seg(blo, bhi)} overlap")
    return tuple(ordered)


def _seg(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def default_group() -> SecurityGroup:
    """S3: Huawei's current default rules, priority 100, allow."""

    def rule(n: int, direction: str, version: int, kind: str, remote: Any) -> Rule:
        return Rule(
            id=f"default:{n}", security_group="default", direction=direction, action="allow", priority=100,
            ethertype=version, protocol=None, ports=None, icmp_type=None, icmp_code=None, remote_kind=kind,
            remote=remote, enabled=True, description="default rule", order=n - 1, position=n,
        )

    return SecurityGroup("default", None, "created by sgdp (S3)", (
        rule(1, "ingress", 4, "group", "default"),
        rule(2, "ingress", 6, "group", "default"),
        rule(3, "egress", 4, "prefix", ANY4),
        rule(4, "egress", 6, "prefix", ANY6),
    ))


def _lacks_groups(raw: Any) -> bool:
    """Does an instance (or one of its NICs) leave out `security_groups` (S3: it gets `default`)?"""
    if not isinstance(raw, dict):
        return False
    nics = raw.get("nics")
    if isinstance(nics, list) and nics:
        return any(isinstance(n, dict) and n.get("security_groups") is None for n in nics)
    return raw.get("security_groups") is None


def _format_mac(value: int) -> str:
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _show(value: Any) -> str:
    """A value as an error message quotes it: repr'd (control characters escaped), at most 160
    characters (cut with an ellipsis), never converted whole (a huge int, a deep list)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, (list, dict, tuple)):
        short = reprlib.Repr()
        short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, 60, 60, 60
        text = short.repr(value)
    else:
        text = repr(value[:200]) if isinstance(value, str) else repr(value)
    return text if len(text) <= 160 else text[:159] + "…"


def _proto_label(proto: int | None) -> str:
    if proto is None:
        return "all"
    return PROTO_LABELS.get(proto, str(proto))


def proto_label(proto: int | None) -> str:
    return _proto_label(proto)
