"""``sgdp import huawei FILE... -o TOPOLOGY``: saved Huawei Cloud API responses to a topology (SPEC S4).

Each FILE is one JSON response, recognised by its top-level key:

==========================================  ==============================================================
``security_groups`` / ``security_group``    ListSecurityGroups / ShowSecurityGroup (VPC v3, or v1/v2 with
                                            Neutron-style rules), rules inline
``security_group_rules`` / ``..._rule``     ListSecurityGroupRules (each rule names its
                                            ``security_group_id``)
``address_groups`` / ``address_group``      ListAddressGroup / ShowAddressGroup (VPC v3)
``servers`` / ``server``                    ECS ListServersDetails / ShowServer
``vpcs`` / ``vpc``                          ListVpcs / ShowVpc
``subnets`` / ``subnet``                    ListSubnets / ShowSubnet
``ports`` / ``port``                        ListPorts / ShowPort
==========================================  ==============================================================

``request_id``, ``count``, ``page_info`` and Neutron ``*_links`` are the response envelope (a
``page_info.next_marker`` or a ``next`` link means the file is one page of several: reported).

Mapping (the topology file's field names follow the VPC v3 API, so most fields carry over):

* IDs stay as ``id`` fields, and references between objects (a rule's remote group or address
  group, a subnet's VPC, a NIC's subnet and groups) are written as the referenced object's name.
  Names are kept where unique within their kind; objects sharing a name are renamed
  ``<name>-<first 8 characters of the id>`` (reported).
* Rules: v3 fields as they are; Neutron form (``port_range_min/max``, protocol names such as
  ``ipv6-icmp`` or ``sctp``, protocol numbers, ``remote_ip_prefix: null`` = all addresses, no
  ``action``/``priority`` = allow at priority 1) is normalised: tcp/udp ranges become ``multiport``,
  ICMP type/code stay ``port_range_min/max``.  ``created_at`` is kept (it orders rules, S2) when every
  rule of the group has it.
* Servers: each NIC is one ``OS-EXT-IPS:port_id`` (else MAC) of ``addresses``: the first fixed IPv4
  is ``ip``, the first fixed IPv6 ``ipv6``, the others ``extra_ips``, a floating IPv4 ``eip``; the
  subnet is found from the port (``fixed_ips[].subnet_id``, ``network_id``) or by CIDR in the VPC the
  address is keyed by; the flavor's name is kept.  A port export wins over the server's view: its
  fixed IPs, MAC and security-group ORDER are used.  ``ipv6_bandwidth_id`` on a port sets
  ``ipv6_internet``; an allowed address pair ``1.1.1.1/0`` (Huawei's "source/destination check
  off") sets ``source_dest_check: false``; a pair naming a virtual-IP port (``neutron:VIP_PORT``)
  makes the instance a holder of that ``virtual_ips`` entry.
* A security group or address group that is referenced but not exported becomes an empty
  placeholder (no rules / no entries), so that bindings, membership and quota still hold.

Everything that cannot be mapped exactly is reported (never dropped silently): unknown top-level
keys, fields sgdp has no model for, addresses in VPCs or subnets that were not exported, rules that
cannot be represented, other allowed address pairs, ``port_security_enabled: false``, ports that are
not ECS NICs, incomplete pages.  A malformed file is an :class:`~sgdp.errors.InputError` naming the
file and the JSON path.  The result is validated with :func:`sgdp.model.topology_from_data` before
it is written.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from sgdp.topology.addr import Net, parse_cidr, parse_ip, parse_ip_set_entry, parse_mac
from sgdp.errors import ConfigError, InputError
from sgdp.topology.model import parse_multiport, topology_from_data

PREFIX = "sgdp: import: "

# Neutron protocol names (neutron-lib constants) and Huawei's own.
PROTOCOLS = {
    "tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "gre": 47, "ah": 51, "dccp": 33,
    "egp": 8, "esp": 50, "igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-nonxt": 59,
    "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "udplite": 136,
    "vrrp": 112,
}
PROTOCOL_LABELS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 47: "gre"}
SDC_OFF = "1.1.1.1/0"  # Huawei: this allowed address pair turns the source/destination check off

# Fields per kind: the ones mapped, and the ones that carry no dataplane semantics (ignored quietly).
# Any other field is reported once per file, kind and field name.
SG_FIELDS = {"id", "name", "description", "security_group_rules", "stateful"}
SG_META = {"project_id", "tenant_id", "enterprise_project_id", "created_at", "updated_at", "tags", "vpc_id",
           "revision_number", "shared", "sys_tags", "standard_attr_id"}
RULE_FIELDS = {"id", "direction", "ethertype", "protocol", "multiport", "port_range_min", "port_range_max",
               "remote_ip_prefix", "remote_group_id", "remote_address_group_id", "action", "priority",
               "description", "created_at", "enabled", "security_group_id"}
RULE_META = {"updated_at", "project_id", "tenant_id", "revision_number", "tags", "normalized_cidr",
             "standard_attr_id", "name", "belongs_to_default_sg"}
AG_FIELDS = {"id", "name", "description", "ip_version", "ip_set", "ip_extra_set", "max_capacity"}
AG_META = {"created_at", "updated_at", "tenant_id", "project_id", "enterprise_project_id", "tags", "status",
           "status_message"}
VPC_FIELDS = {"id", "name", "description", "cidr", "extend_cidrs", "secondary_cidrs", "routes"}
VPC_META = {"status", "project_id", "tenant_id", "enterprise_project_id", "created_at", "updated_at",
            "cloud_resources", "tags", "block_service_endpoint_states", "enable_shared_snat"}
SUBNET_FIELDS = {"id", "name", "description", "cidr", "gateway_ip", "cidr_v6", "ipv6_cidr", "vpc_id",
                 "neutron_network_id", "neutron_subnet_id", "neutron_subnet_id_v6"}
SUBNET_META = {"ipv6_enable", "gateway_ip_v6", "dhcp_enable", "primary_dns", "secondary_dns", "dnsList",
               "dns_list", "availability_zone", "status", "extra_dhcp_opts", "scope", "tenant_id",
               "project_id", "created_at", "updated_at", "tags", "dhcp_lease_time", "dhcp_ipv6_lease_time",
               "enterprise_project_id"}
SERVER_FIELDS = {"id", "name", "description", "addresses", "flavor", "security_groups"}
SERVER_META = {
    "status", "progress", "created", "updated", "hostId", "host_status", "image", "key_name", "metadata",
    "tenant_id", "user_id", "links", "accessIPv4", "accessIPv6", "config_drive", "locked", "tags", "sys_tags",
    "enterprise_project_id", "fault", "os:scheduler_hints", "cpu_options", "hypervisor", "auto_terminate_time",
    "os-extended-volumes:volumes_attached", "OS-DCF:diskConfig", "OS-EXT-AZ:availability_zone",
    "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at", "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state",
    "OS-EXT-STS:power_state", "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:instance_name",
    "OS-EXT-SRV-ATTR:hypervisor_hostname", "OS-EXT-SRV-ATTR:reservation_id", "OS-EXT-SRV-ATTR:launch_index",
    "OS-EXT-SRV-ATTR:hostname", "OS-EXT-SRV-ATTR:kernel_id", "OS-EXT-SRV-ATTR:ramdisk_id",
    "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:user_data", "OS-EXT-SRV-ATTR:availability_zone",
    "host_name", "enterprise_project_name", "availability_zone",
}
ADDRESS_FIELDS = {"addr", "version", "OS-EXT-IPS:type", "OS-EXT-IPS:port_id", "OS-EXT-IPS-MAC:mac_addr"}
ADDRESS_META = {"primary"}
PORT_FIELDS = {"id", "name", "device_id", "device_owner", "fixed_ips", "mac_address", "security_groups",
               "allowed_address_pairs", "port_security_enabled", "ipv6_bandwidth_id", "network_id"}
PORT_META = {
    "admin_state_up", "tenant_id", "project_id", "status", "extra_dhcp_opts", "binding:vif_details",
    "binding:vif_type", "binding:host_id", "binding:profile", "binding:vnic_type", "dns_assignment", "dns_name",
    "instance_id", "instance_type", "zone_id", "enable_efi", "created_at", "updated_at", "description", "tags",
    "qos_policy_id", "revision_number", "enterprise_project_id",
}
ENVELOPE = {"request_id", "count", "page_info", "links"}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _key(path: str, key: Any) -> str:
    """JSON path of a member: ``a.b`` for identifier-like keys, else ``a["OS-EXT-IPS:type"]``."""
    k = str(key)
    if _IDENT.match(k):
        return f"{path}.{k}" if path else k
    return f"{path}[{json.dumps(k, ensure_ascii=False)}]"


def _jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Doc:
    """One input file: typed access that raises InputError naming the file and the JSON path."""

    def __init__(self, file: str):
        self.file = file

    def err(self, path: str, message: str) -> InputError:
        return InputError(f"{self.file}: {path}: {message}" if path else f"{self.file}: {message}")

    def mapping(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise self.err(path, f"expected an object, got {_jtype(value)}")
        return value

    def array(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.err(path, f"expected an array, got {_jtype(value)}")
        return value

    def string(self, value: Any, path: str, required: bool = False) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.err(path, "is required" if value is None else "must not be empty")
            return None
        if not isinstance(value, str):
            raise self.err(path, f"expected a string, got {_jtype(value)} {_show(value)}")
        return value.strip()

    def integer(self, value: Any, path: str, lo: int, hi: int) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.err(path, f"expected an integer {lo}..{hi}, got {_jtype(value)} {_show(value)}")
        if not lo <= value <= hi:
            raise self.err(path, f"{value} is out of range {lo}..{hi}")
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.err(path, f"expected true or false, got {_jtype(value)} {_show(value)}")
        return value

    def ip(self, value: Any, path: str) -> tuple[int, int]:
        text = self.string(value, path, required=True)
        try:
            return parse_ip(text)
        except ValueError as exc:
            raise self.err(path, str(exc)) from None

    def cidr(self, value: Any, path: str) -> Net:
        text = self.string(value, path, required=True)
        try:
            return parse_cidr(text)
        except ValueError as exc:
            raise self.err(path, str(exc)) from None


@dataclass
class _Src:
    file: str
    path: str

    def at(self, sub: str) -> "_Src":
        return _Src(self.file, sub)


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


@dataclass
class _Obj:
    """A VPC, subnet, address group, server or port: its raw data, where it came from, its output name."""

    id: str
    name: str | None
    raw: dict
    doc: _Doc
    path: str
    out: str = ""
    placeholder: bool = False

    @property
    def src(self) -> _Src:
        return _Src(self.doc.file, self.path)


@dataclass
class _NicDraft:
    key: str
    vpc_id: str | None
    port_id: str | None = None
    mac: str | None = None
    fixed: list[tuple[str, _Src]] = field(default_factory=list)
    floating: list[tuple[str, _Src]] = field(default_factory=list)
    primary: bool = False
    src: _Src | None = None


class _Importer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.unmapped = 0
        self.notes = 0
        self.files: list[str] = []
        self.vpcs: dict[str, _Obj] = {}
        self.subnets: dict[str, _Obj] = {}
        self.subnet_alias: dict[str, str] = {}
        self.groups: dict[str, _Group] = {}
        self.ags: dict[str, _Obj] = {}
        self.servers: dict[str, _Obj] = {}
        self.ports: dict[str, _Obj] = {}
        self.unknown_fields: dict[tuple[str, str, str], list] = {}
        self.sg_name_hints: dict[str, str] = {}
        self.origins: dict[str, _Src] = {}

    # -- reporting ----------------------------------------------------------------------------

    def _line(self, src: _Src | None, message: str) -> str:
        if src is None:
            return message
        return f"{src.file}: {src.path}: {message}" if src.path else f"{src.file}: {message}"

    def report(self, src: _Src | None, message: str) -> None:
        """Something that could not be mapped exactly (left out or approximated)."""
        self.unmapped += 1
        self.lines.append(self._line(src, message))

    def note(self, src: _Src | None, message: str) -> None:
        """A mapping decision the user should know about (a rename, an assumption, a choice)."""
        self.notes += 1
        self.lines.append(self._line(src, "note: " + message))

    def check_fields(self, doc: _Doc, kind: str, path: str, raw: dict, known: set[str], meta: set[str]) -> None:
        for k in raw:
            if k not in known and k not in meta:
                slot = self.unknown_fields.setdefault((doc.file, kind, k), [_key(path, k), 0])
                slot[1] += 1

    # -- reading ------------------------------------------------------------------------------

    def read_file(self, path: str) -> None:
        doc = _Doc(path)
        self.files.append(path)
        data = _read_json(path)
        if not isinstance(data, dict):
            raise doc.err("", f"expected a JSON object (one saved API response), got {_jtype(data)}")
        handlers = {
            "security_groups": (self.add_group, True), "security_group": (self.add_group, False),
            "security_group_rules": (self.add_loose_rule, True), "security_group_rule": (self.add_loose_rule, False),
            "address_groups": (self.add_ag, True), "address_group": (self.add_ag, False),
            "servers": (self.add_server, True), "server": (self.add_server, False),
            "vpcs": (self.add_vpc, True), "vpc": (self.add_vpc, False),
            "subnets": (self.add_subnet, True), "subnet": (self.add_subnet, False),
            "ports": (self.add_port, True), "port": (self.add_port, False),
        }
        recognised = 0
        for key, value in data.items():
            if key in handlers:
                fn, many = handlers[key]
                recognised += 1
                if many:
                    for i, item in enumerate(doc.array(value, _key("", key))):
                        fn(doc, item, f"{_key('', key)}[{i}]")
                else:
                    fn(doc, value, _key("", key))
            elif key == "page_info":
                if isinstance(value, dict) and value.get("next_marker"):
                    self.report(_Src(path, "page_info.next_marker"),
                                f"this response is one page of several (next_marker {value['next_marker']!r}): "
                                "objects on the later pages are missing; export them too")
            elif key.endswith("_links") and isinstance(value, list):
                if any(isinstance(link, dict) and link.get("rel") == "next" for link in value):
                    self.report(_Src(path, _key("", key)), "this response is one page of several (it has a 'next' "
                                "link): objects on the later pages are missing; export them too")
            elif key in ENVELOPE:
                continue
            else:
                self.report(_Src(path, _key("", key)), "unknown top-level key: not imported (sgdp reads "
                            "security_groups, security_group_rules, address_groups, servers, vpcs, subnets, ports)")
        if not recognised:
            self.report(_Src(path, ""), "no recognised top-level key: nothing imported from this file")

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
            if text.isdigit():
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

    def _duplicate(self, old: _Obj, raw: dict, doc: _Doc, path: str, kind: str) -> None:
        if old.raw != raw:
            self.note(_Src(doc.file, path), f"{kind} {old.id} is exported twice with different content; the "
                      f"first ({old.doc.file}: {old.path}) is kept")

    def add_vpc(self, doc: _Doc, raw: Any, path: str) -> None:
        raw = doc.mapping(raw, path)
        self.check_fields(doc, "VPC", path, raw, VPC_FIELDS, VPC_META)
        vid = doc.string(raw.get("id"), _key(path, "id"), required=True)
        name = doc.string(raw.get("name"), _key(path, "name"))
        cidr = doc.string(raw.get("cidr"), _key(path, "cidr"))
        if cidr is not None:
            net = doc.cidr(cidr, _key(path, "cidr"))
            if net.version != 4:
                raise doc.err(_key(path, "cidr"), f"{cidr!r} is not an IPv4 CIDR")
        for k in ("extend_cidrs", "secondary_cidrs"):
            extra = doc.array(raw.get(k), _key(path, k))
            if extra:
                self.report(_Src(doc.file, _key(path, k)), f"secondary CIDRs {_show(extra)}: sgdp models one CIDR "
                            "per VPC; subnets in them are left out")
        routes = doc.array(raw.get("routes"), _key(path, "routes"))
        if routes:
            self.report(_Src(doc.file, _key(path, "routes")), f"{len(routes)} VPC route(s): sgdp has no model of "
                        "routes (traffic forwarded through an instance is checked at its NIC only)")
        if vid in self.vpcs:
            self._duplicate(self.vpcs[vid], raw, doc, path, "VPC")
            return
        self.vpcs[vid] = _Obj(vid, name, raw, doc, path)

    def add_subnet(self, doc: _Doc, raw: Any, path: str) -> None:
        raw = doc.mapping(raw, path)
        self.check_fields(doc, "subnet", path, raw, SUBNET_FIELDS, SUBNET_META)
        sid = doc.string(raw.get("id"), _key(path, "id"), required=True)
        doc.string(raw.get("name"), _key(path, "name"))
        doc.string(raw.get("vpc_id"), _key(path, "vpc_id"), required=True)
        net = doc.cidr(raw.get("cidr"), _key(path, "cidr"))
        if net.version != 4:
            raise doc.err(_key(path, "cidr"), f"{raw['cidr']!r} is not an IPv4 CIDR")
        v6key = "cidr_v6" if raw.get("cidr_v6") else "ipv6_cidr"
        if doc.string(raw.get(v6key), _key(path, v6key)) is not None:
            if doc.cidr(raw[v6key], _key(path, v6key)).version != 6:
                raise doc.err(_key(path, v6key), f"{raw[v6key]!r} is not an IPv6 CIDR")
        if sid in self.subnets:
            self._duplicate(self.subnets[sid], raw, doc, path, "subnet")
            return
        self.subnets[sid] = _Obj(sid, doc.string(raw.get("name"), ""), raw, doc, path)
        for k in ("neutron_network_id", "neutron_subnet_id", "neutron_subnet_id_v6"):
            alias = doc.string(raw.get(k), _key(path, k))
            if alias and alias != sid:
                self.subnet_alias.setdefault(alias, sid)

    def add_server(self, doc: _Doc, raw: Any, path: str) -> None:
        raw = doc.mapping(raw, path)
        self.check_fields(doc, "server", path, raw, SERVER_FIELDS, SERVER_META)
        sid = doc.string(raw.get("id"), _key(path, "id"), required=True)
        name = doc.string(raw.get("name"), _key(path, "name"))
        for k, g in enumerate(doc.array(raw.get("security_groups"), _key(path, "security_groups"))):
            gp = f"{_key(path, 'security_groups')}[{k}]"
            g = doc.mapping(g, gp)
            gid, gname = doc.string(g.get("id"), _key(gp, "id")), doc.string(g.get("name"), _key(gp, "name"))
            if gid is None and gname is None:
                raise doc.err(gp, "a security group reference needs an id or a name")
            if gid and gname and gname != gid:
                self.sg_name_hints.setdefault(gid, gname)
        if sid in self.servers:
            self._duplicate(self.servers[sid], raw, doc, path, "server")
            return
        self.servers[sid] = _Obj(sid, name, raw, doc, path)

    def add_port(self, doc: _Doc, raw: Any, path: str) -> None:
        raw = doc.mapping(raw, path)
        self.check_fields(doc, "port", path, raw, PORT_FIELDS, PORT_META)
        pid = doc.string(raw.get("id"), _key(path, "id"), required=True)
        for k in ("device_id", "device_owner", "mac_address", "network_id", "name"):
            doc.string(raw.get(k), _key(path, k))
        if raw.get("mac_address"):
            try:
                parse_mac(raw["mac_address"])
            except ValueError as exc:
                raise doc.err(_key(path, "mac_address"), str(exc)) from None
        for k, fip in enumerate(doc.array(raw.get("fixed_ips"), _key(path, "fixed_ips"))):
            fp = f"{_key(path, 'fixed_ips')}[{k}]"
            fip = doc.mapping(fip, fp)
            doc.ip(fip.get("ip_address"), _key(fp, "ip_address"))
            doc.string(fip.get("subnet_id"), _key(fp, "subnet_id"))
        for k, g in enumerate(doc.array(raw.get("security_groups"), _key(path, "security_groups"))):
            doc.string(g, f"{_key(path, 'security_groups')}[{k}]", required=True)
        for k, pair in enumerate(doc.array(raw.get("allowed_address_pairs"), _key(path, "allowed_address_pairs"))):
            pp = f"{_key(path, 'allowed_address_pairs')}[{k}]"
            doc.string(doc.mapping(pair, pp).get("ip_address"), _key(pp, "ip_address"), required=True)
        doc.boolean(raw.get("port_security_enabled"), _key(path, "port_security_enabled"))
        if pid in self.ports:
            self._duplicate(self.ports[pid], raw, doc, path, "port")
            return
        self.ports[pid] = _Obj(pid, doc.string(raw.get("name"), ""), raw, doc, path)

    # -- building the topology ----------------------------------------------------------------

    def build(self) -> dict:
        for (file, kind, name), (first, count) in self.unknown_fields.items():
            more = f" (and in {count - 1} more {kind}s)" if count > 1 else ""
            self.report(_Src(file, first), f"field {name!r} of a {kind} is not modelled by sgdp: ignored{more}")

        vpc_subnets = self.place_subnets()
        vip_ports = self.find_vip_ports()
        instances = self.build_instances(vip_ports)
        vips = self.build_vips(vip_ports, instances)
        self.resolve_rule_remotes()

        # names, unique per kind
        self.assign_names("VPC", list(self.vpcs.values()))
        self.assign_names("subnet", [s for subs in vpc_subnets.values() for s in subs])
        self.assign_names("address group", list(self.ags.values()))
        groups = list(self.groups.values())
        for g in groups:
            if g.name is None:
                g.name = g.id
                self.note(self.group_src(g), f"security group {g.id} is known only from its rules "
                          "(no ListSecurityGroups/ShowSecurityGroup export): named by its id")
        self.assign_names("security group", groups)
        self.assign_names("instance", [inst for inst, _ in instances])

        return self.emit(vpc_subnets, instances, vips)

    def place_subnets(self) -> dict[str, list[_Obj]]:
        out: dict[str, list[_Obj]] = {vid: [] for vid in self.vpcs}
        for sn in self.subnets.values():
            raw = sn.raw
            vid = raw["vpc_id"].strip()
            vpc = self.vpcs.get(vid)
            if vpc is None:
                sn.placeholder = True
                self.report(sn.src, f"subnet {sn.name or sn.id!r} is in VPC {vid}, which is not exported: left "
                            "out (with the NICs in it)")
                continue
            if not vpc.raw.get("cidr"):
                sn.placeholder = True
                self.report(sn.src, f"subnet {sn.name or sn.id!r}: its VPC {vpc.name or vid!r} has no CIDR: left out")
                continue
            vnet, snet = parse_cidr(vpc.raw["cidr"].strip()), parse_cidr(raw["cidr"].strip())
            if not vnet.covers(snet):
                sn.placeholder = True
                self.report(sn.src, f"subnet {sn.name or sn.id!r} ({raw['cidr']}) is outside its VPC's CIDR "
                            f"{vpc.raw['cidr']} (a secondary CIDR?): left out (with the NICs in it)")
                continue
            out[vid].append(sn)
        for vid, vpc in self.vpcs.items():
            if not vpc.raw.get("cidr"):
                vpc.placeholder = True
                self.report(vpc.src, f"VPC {vpc.name or vid!r} has no CIDR: left out")
        return out

    def subnet_of(self, ref: str | None) -> _Obj | None:
        if not ref:
            return None
        sn = self.subnets.get(ref) or self.subnets.get(self.subnet_alias.get(ref, ""))
        return None if sn is None or sn.placeholder else sn

    def find_vip_ports(self) -> dict[tuple[str, str], _Obj]:
        """Virtual-IP ports by (VPC id, IP text)."""
        out: dict[tuple[str, str], _Obj] = {}
        for port in self.ports.values():
            if (port.raw.get("device_owner") or "") != "neutron:VIP_PORT":
                continue
            fips = port.raw.get("fixed_ips") or []
            sn = (self.subnet_of(fips[0].get("subnet_id") if fips else None)
                  or self.subnet_of(port.raw.get("network_id")))
            if not fips:
                self.report(port.src, "virtual-IP port without fixed_ips: left out")
                continue
            if sn is None:
                self.report(port.src, f"virtual IP {fips[0]['ip_address']}: its subnet is not exported: left out")
                continue
            out[(sn.raw["vpc_id"].strip(), _canon_ip(fips[0]["ip_address"]))] = port
        return out

    # -- instances ----------------------------------------------------------------------------

    def nic_drafts(self, server: _Obj) -> list[_NicDraft]:
        doc, path = server.doc, server.path
        addresses = server.raw.get("addresses")
        apath = _key(path, "addresses")
        if addresses is None:
            addresses = {}
        drafts: dict[str, _NicDraft] = {}
        loose_floating: list[tuple[str, str, _Src]] = []
        for vid, entries in doc.mapping(addresses, apath).items():
            vp = _key(apath, vid)
            for k, e in enumerate(doc.array(entries, vp)):
                ep = f"{vp}[{k}]"
                e = doc.mapping(e, ep)
                self.check_fields(doc, "server address", ep, e, ADDRESS_FIELDS, ADDRESS_META)
                version, _ = doc.ip(e.get("addr"), _key(ep, "addr"))
                declared = doc.integer(e.get("version"), _key(ep, "version"), 4, 6)
                if declared is not None and declared != version:
                    raise doc.err(_key(ep, "version"), f"{e['addr']!r} is not an IPv{declared} address")
                kind = (doc.string(e.get("OS-EXT-IPS:type"), _key(ep, "OS-EXT-IPS:type")) or "fixed").lower()
                if kind not in ("fixed", "floating"):
                    raise doc.err(_key(ep, "OS-EXT-IPS:type"),
                                  f"expected fixed or floating, got {_show(e['OS-EXT-IPS:type'])}")
                port_id = doc.string(e.get("OS-EXT-IPS:port_id"), _key(ep, "OS-EXT-IPS:port_id"))
                mac = doc.string(e.get("OS-EXT-IPS-MAC:mac_addr"), _key(ep, "OS-EXT-IPS-MAC:mac_addr"))
                if mac is not None:
                    try:
                        parse_mac(mac)
                    except ValueError as exc:
                        raise doc.err(_key(ep, "OS-EXT-IPS-MAC:mac_addr"), str(exc)) from None
                src = _Src(doc.file, ep)
                key = port_id or (mac.lower() if mac else None)
                if key is None:
                    if kind == "floating":
                        loose_floating.append((vid, e["addr"].strip(), src))
                        continue
                    key = f"{vid}#no-port"  # older responses: the VPC's addresses without port or MAC, one NIC
                d = drafts.get(key)
                if d is None:
                    d = drafts[key] = _NicDraft(key, vid, port_id, mac, src=src)
                d.mac = d.mac or mac
                d.primary = d.primary or e.get("primary") is True
                (d.floating if kind == "floating" else d.fixed).append((e["addr"].strip(), src))
        for vid, addr, src in loose_floating:
            same_vpc = [d for d in drafts.values() if d.vpc_id == vid]
            if len(same_vpc) == 1:
                same_vpc[0].floating.append((addr, src))
            else:
                self.report(src, f"floating IP {addr} names neither a port nor a MAC and the server has "
                            f"{len(same_vpc)} NICs in that VPC: its NIC is unknown; EIP left out")
        for d in drafts.values():
            if d.key.endswith("#no-port") and sum(parse_ip(a)[0] == 4 for a, _ in d.fixed) > 1:
                self.note(d.src, f"addresses {[a for a, _ in d.fixed]} name neither a port nor a MAC: taken as one "
                          "NIC (export the ports to tell NICs apart)")
        ordered = sorted(drafts.values(), key=lambda d: not d.primary)  # stable: the primary NIC first
        # ports of this server that its addresses do not show (a NIC without an address listed)
        known_ports = {d.port_id for d in ordered if d.port_id}
        known_macs = {d.mac.lower() for d in ordered if d.mac}
        for port in self.ports.values():
            if port.raw.get("device_id") == server.id and port.id not in known_ports:
                mac = (port.raw.get("mac_address") or "").lower()
                match = next((d for d in ordered if d.port_id is None and d.mac and d.mac.lower() == mac), None)
                if match is not None:
                    match.port_id = port.id
                elif mac not in known_macs and (port.raw.get("device_owner") or "").startswith("compute"):
                    ordered.append(_NicDraft(port.id, None, port.id, port.raw.get("mac_address"), src=port.src))
        return ordered

    def build_instances(self, vip_ports: dict[tuple[str, str], _Obj]) -> list[tuple[_Obj, list[dict]]]:
        self.vip_holders: dict[tuple[str, str], list[_Obj]] = defaultdict(list)
        self.used_ports: set[str] = set()
        out = []
        for server in self.servers.values():
            nics = []
            for slot, draft in enumerate(self.nic_drafts(server)):
                nic = self.build_nic(server, draft, slot, vip_ports)
                if nic is not None:
                    nics.append(nic)
            if not nics:
                self.report(server.src, f"server {server.name or server.id!r} has no NIC that could be mapped: "
                            "left out")
                continue
            out.append((server, nics))
        for port in self.ports.values():
            owner = port.raw.get("device_owner") or ""
            if port.id in self.used_ports or owner == "neutron:VIP_PORT":
                continue
            device = port.raw.get("device_id") or ""
            if owner.startswith("compute") and device and device not in self.servers:
                self.report(port.src, f"NIC of server {device}, which is not exported: left out")
        leftover: dict[str, list[_Obj]] = defaultdict(list)
        for port in self.ports.values():
            owner = port.raw.get("device_owner") or ""
            if port.id in self.used_ports or owner == "neutron:VIP_PORT" or owner.startswith("compute"):
                continue
            leftover[owner or "(none)"].append(port)
        for owner, ports in leftover.items():
            what = (f"{len(ports)} port(s) with device_owner {owner!r} (not ECS NICs) left out; their addresses "
                    "are unlisted hosts of their VPC (S6)")
            src = ports[0].src if len(ports) == 1 else _Src(ports[0].doc.file, ports[0].path)
            if owner.startswith("network:"):
                self.note(src, what)
            else:
                self.report(src, what)
        return out

    def build_nic(self, server: _Obj, draft: _NicDraft, slot: int, vip_ports) -> dict | None:
        label = f"server {server.name or server.id!r} NIC {slot + 1}"
        port = self.ports.get(draft.port_id) if draft.port_id else None
        nsrc = draft.src or server.src
        fixed = list(draft.fixed)
        mac = draft.mac
        subnet = None
        if port is not None:
            self.used_ports.add(port.id)
            praw = port.raw
            pfixed = [(f["ip_address"].strip(), port.src.at(f"{_key(port.path, 'fixed_ips')}[{k}]"))
                      for k, f in enumerate(praw.get("fixed_ips") or [])]
            if fixed and {_canon_ip(a) for a, _ in fixed} != {_canon_ip(a) for a, _ in pfixed}:
                self.note(port.src.at(_key(port.path, "fixed_ips")), f"{label}: fixed IPs {[a for a, _ in pfixed]} "
                          f"differ from the server's {[a for a, _ in fixed]}; the port's are used")
            fixed = pfixed
            mac = praw.get("mac_address") or mac
            for f in praw.get("fixed_ips") or []:
                if parse_ip(f["ip_address"].strip())[0] == 4:
                    subnet = self.subnet_of(f.get("subnet_id"))
                    break
            subnet = subnet or self.subnet_of(praw.get("network_id"))
        vid = draft.vpc_id or (subnet.raw["vpc_id"].strip() if subnet else None)
        v4 = [(a, s) for a, s in fixed if parse_ip(a)[0] == 4]
        v6 = [(a, s) for a, s in fixed if parse_ip(a)[0] == 6]
        if vid is None:
            self.report(nsrc, f"{label}: its VPC is unknown (no exported subnet holds it): NIC left out")
            return None
        vpc = self.vpcs.get(vid)
        if vpc is None or vpc.placeholder:
            addrs = ", ".join(a for a, _ in fixed) or "no address"
            self.report(nsrc, f"{label} ({addrs}) is in VPC {vid}, which is not exported: NIC left out")
            return None
        if not v4:
            self.report(nsrc, f"{label} has no fixed IPv4 address (sgdp needs one per NIC): NIC left out")
            return None
        ip, ip_src = v4[0]
        if subnet is None or subnet.raw["vpc_id"].strip() != vid or not _in(subnet.raw["cidr"], ip):
            subnet = next((s for s in self.subnets.values() if not s.placeholder and s.raw["vpc_id"].strip() == vid
                           and _in(s.raw["cidr"], ip)), None)
        if subnet is None:
            self.report(ip_src, f"{label}: {ip} is not inside any exported subnet of VPC {vpc.name or vid!r}: "
                        "NIC left out")
            return None
        nic: dict[str, Any] = {"subnet": subnet.id, "ip": ip}
        v6cidr = subnet.raw.get("cidr_v6") or subnet.raw.get("ipv6_cidr")
        extra = []
        for a, s in v4[1:]:
            if _in(subnet.raw["cidr"], a):
                extra.append(a)
            else:
                self.report(s, f"{label}: {a} is outside its subnet {subnet.name or subnet.id!r}: address left out")
        for a, s in v6:
            if not v6cidr or not _in(v6cidr, a):
                self.report(s, f"{label}: {a} is not inside its subnet's IPv6 CIDR ({v6cidr or 'none exported'}): "
                            "address left out")
            elif "ipv6" not in nic:
                nic["ipv6"] = a
            else:
                extra.append(a)
        if extra:
            nic["extra_ips"] = extra
        if mac:
            nic["mac"] = mac.lower()
        groups = self.nic_groups(server, port, label, nsrc)
        if groups is False:
            return None
        if groups is not None:
            nic["security_groups"] = groups
        floating4 = [(a, s) for a, s in draft.floating if parse_ip(a)[0] == 4]
        for a, s in draft.floating:
            if parse_ip(a)[0] == 6 or (floating4 and a != floating4[0][0]):
                self.report(s, f"{label}: floating IP {a}: sgdp models one IPv4 EIP per NIC: left out")
        if floating4:
            nic["eip"] = floating4[0][0]
        if port is not None:
            praw = port.raw
            if praw.get("ipv6_bandwidth_id"):
                nic["ipv6_internet"] = True
            if praw.get("port_security_enabled") is False:
                self.report(port.src.at(_key(port.path, "port_security_enabled")), f"{label}: port security is "
                            "disabled (security groups and anti-spoofing do not apply in the cloud); sgdp has no "
                            "model for an unfiltered NIC and applies its groups")
            for k, pair in enumerate(praw.get("allowed_address_pairs") or []):
                pp = port.src.at(f"{_key(port.path, 'allowed_address_pairs')}[{k}]")
                text = pair["ip_address"].strip()
                vip = vip_ports.get((vid, _canon_ip(text)))
                if text == SDC_OFF:
                    nic["source_dest_check"] = False
                elif vip is not None:
                    self.vip_holders[(vid, _canon_ip(text))].append(server)
                else:
                    self.report(pp, f"{label}: allowed address pair {text}: sgdp has no model for other addresses "
                                "a NIC may use (it treats their packets as forwarded: denied while the "
                                "source/destination check is on)")
        elif "ipv6" in nic:
            self.note(nsrc, f"{label}: no port exported, so whether its IPv6 address reaches the Internet is "
                      "unknown: ipv6_internet left false")
        return nic

    def nic_groups(self, server: _Obj, port: _Obj | None, label: str, src: _Src) -> list[str] | None | bool:
        """Group keys bound to a NIC, in order; None = none exported (the S3 default); False = leave out."""
        listed = server.raw.get("security_groups")
        from_server: list[str] = []
        for k, ref in enumerate(listed or []):
            gsrc = server.src.at(f"{_key(server.path, 'security_groups')}[{k}]")
            key = self.group_for_server_ref(ref, gsrc, label)
            if key is not None and key not in from_server:
                from_server.append(key)
        if port is not None and port.raw.get("security_groups") is not None:
            ids = [g.strip() for g in port.raw["security_groups"]]
            if not ids:
                self.report(port.src.at(_key(port.path, "security_groups")), f"{label}: the port has no security "
                            "group (sgdp needs at least one per NIC): NIC left out")
                return False
            keys = []
            for k, gid in enumerate(ids):
                gsrc = port.src.at(f"{_key(port.path, 'security_groups')}[{k}]")
                if gid not in self.groups:
                    self.placeholder_group(gid, self.sg_name_hints.get(gid), gsrc, f"{label} is bound to it")
                if gid not in keys:
                    keys.append(gid)
            if listed is not None and from_server != keys:
                self.note(port.src.at(_key(port.path, "security_groups")), f"{label}: the port's security-group "
                          f"order {self._group_names(keys)} is used; the server lists {self._group_names(from_server)}")
            return keys
        if listed is None:
            self.note(src, f"{label}: no security groups exported; sgdp binds it to 'default' (S3)")
            return None
        if not from_server:
            self.report(src, f"{label}: none of its security groups could be resolved: NIC left out")
            return False
        return from_server

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

    def build_vips(self, vip_ports, instances) -> list[tuple[_Obj, _Obj, list[_Obj]]]:
        emitted = {server.id for server, _ in instances}
        out = []
        for (vid, ip), port in vip_ports.items():
            holders = _unique([s for s in self.vip_holders.get((vid, ip), []) if s.id in emitted])
            fips = port.raw["fixed_ips"]
            sn = self.subnet_of(fips[0].get("subnet_id")) or self.subnet_of(port.raw.get("network_id"))
            if not holders:
                self.report(port.src, f"virtual IP {ip} is bound to no exported instance: left out")
                continue
            if len(holders) > 1:
                self.note(port.src, f"virtual IP {ip} is bound to {len(holders)} instances; the API does not say "
                          f"which holds it now: sgdp assumes the first, {holders[0].name or holders[0].id!r}")
            out.append((port, sn, holders))
        return out

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
                        _Doc(rule.src.file), rule.src.path, placeholder=True)
                    self.report(rule.src.at(_key(rule.src.path, "remote_address_group_id")),
                                f"address group {rule.remote_ag} is not exported: an empty placeholder group "
                                "stands for it, so this rule matches no address")
                elif rule.remote_ag:
                    ag = self.ags[rule.remote_ag]
                    want = 6 if rule.fields["ethertype"] == "IPv6" else 4
                    if ag.raw["ip_version"] != want:
                        raise _Doc(rule.src.file).err(
                            _key(rule.src.path, "remote_address_group_id"),
                            f"address group {ag.name or ag.id!r} is IPv{ag.raw['ip_version']} but the rule's "
                            f"ethertype is IPv{want}")

    def assign_names(self, kind: str, objs: list) -> None:
        by_name: dict[str, list] = defaultdict(list)
        for o in objs:
            by_name[o.name or o.id].append(o)
        taken = {n for n, group in by_name.items() if len(group) == 1}
        for name, group in by_name.items():
            if len(group) == 1:
                group[0].out = name
                continue
            for o in group:
                cand = f"{name}-{o.id[:8]}" if o.id else name
                if cand in taken:
                    cand = f"{name}-{o.id}"
                taken.add(cand)
                o.out = cand
            src = self.group_src(group[0]) if kind == "security group" else group[0].src
            self.note(src, f"{kind} name {name!r} is shared by {len(group)} objects: renamed "
                      + ", ".join(f"{o.id} -> {o.out!r}" for o in group))

    @staticmethod
    def group_src(g: _Group) -> _Src | None:
        if g.src is not None:
            return g.src
        first = next(iter(g.rules.values()), None)
        return first.src if first else None

    # -- output -------------------------------------------------------------------------------

    def emit(self, vpc_subnets, instances, vips) -> dict:
        origins = self.origins
        topo: dict[str, Any] = {"version": 1}
        names = ", ".join(os.path.basename(f) for f in self.files)
        topo["description"] = f"imported by `sgdp import huawei` from {names}"
        vpcs = []
        for vpc in self.vpcs.values():
            if vpc.placeholder:
                continue
            i = len(vpcs)
            origins[f"vpcs[{i}]"] = vpc.src
            v: dict[str, Any] = {"name": vpc.out, "id": vpc.id, "cidr": vpc.raw["cidr"].strip()}
            if vpc.raw.get("description"):
                v["description"] = vpc.raw["description"]
            subs = []
            for sn in vpc_subnets[vpc.id]:
                origins[f"vpcs[{i}].subnets[{len(subs)}]"] = sn.src
                s: dict[str, Any] = {"name": sn.out, "id": sn.id, "cidr": sn.raw["cidr"].strip()}
                v6 = sn.raw.get("cidr_v6") or sn.raw.get("ipv6_cidr")
                if v6:
                    s["ipv6_cidr"] = v6.strip()
                if sn.raw.get("gateway_ip"):
                    s["gateway_ip"] = sn.raw["gateway_ip"].strip()
                if sn.raw.get("description"):
                    s["description"] = sn.raw["description"]
                subs.append(s)
            v["subnets"] = subs
            vpcs.append(v)
        if vpcs:
            topo["vpcs"] = vpcs

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
        if ags:
            topo["address_groups"] = ags

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
        if sgs:
            topo["security_groups"] = sgs

        insts = []
        subnet_out = {sn.id: sn.out for sn in self.subnets.values()}
        for server, nics in instances:
            i = len(insts)
            origins[f"instances[{i}]"] = server.src
            inst: dict[str, Any] = {"name": server.out, "id": server.id}
            flavor = server.raw.get("flavor")
            fname = None
            if isinstance(flavor, dict):
                fname = (flavor.get("name") or flavor.get("id") or "").strip() or None
            elif isinstance(flavor, str):
                fname = flavor.strip() or None
            if fname:
                inst["flavor"] = fname
            else:
                self.note(server.src, f"server {server.out!r} has no flavor name: flavor effects (S10) unknown")
            if server.raw.get("description"):
                inst["description"] = server.raw["description"]
            out_nics = []
            for nic in nics:
                n = dict(nic)
                n["subnet"] = subnet_out[nic["subnet"]]
                if "security_groups" in n:
                    n["security_groups"] = [self.groups[k].out for k in nic["security_groups"]]
                out_nics.append(n)
            if len(out_nics) == 1:
                inst.update(out_nics[0])
            else:
                inst["nics"] = out_nics
            insts.append(inst)
        if insts:
            topo["instances"] = insts

        out_vips = []
        for port, sn, holders in vips:
            origins[f"virtual_ips[{len(out_vips)}]"] = port.src
            out_vips.append({"id": port.id, "ip": port.raw["fixed_ips"][0]["ip_address"].strip(),
                             "subnet": sn.out, "instances": [h.out for h in holders]})
        if out_vips:
            topo["virtual_ips"] = out_vips
        return topo

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

    # -- validation ---------------------------------------------------------------------------

    def validate(self, topo: dict) -> None:
        try:
            topology_from_data(topo, "<imported topology>")
        except ConfigError as exc:
            best = ""
            for key in self.origins:
                inside = exc.path == key or exc.path.startswith((key + ".", key + "["))
                if inside and len(key) > len(best):
                    best = key
            if best:
                src = self.origins[best]
                raise InputError(f"{src.file}: {src.path}: {exc.detail} (imported as {exc.path})") from None
            raise InputError(f"the imported topology is not valid: {exc.path}: {exc.detail}") from None

    def summary(self) -> str:
        return f"{self.unmapped} item(s) not mapped exactly, {self.notes} note(s)"


def _unique(items: list) -> list:
    seen, out = set(), []
    for x in items:
        if id(x) not in seen:
            seen.add(id(x))
            out.append(x)
    return out


def _canon_ip(text: str) -> str:
    text = text.strip()
    if text.endswith("/32") or text.endswith("/128"):
        text = text.rsplit("/", 1)[0]
    try:
        v, value = parse_ip(text)
    except ValueError:
        return text
    import ipaddress

    return str(ipaddress.ip_address(value) if v == 4 else ipaddress.IPv6Address(value))


def _in(cidr: str, ip: str) -> bool:
    try:
        return parse_cidr(cidr.strip()).contains(*parse_ip(ip.strip()))
    except ValueError:
        return False


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a JSON text file (byte offset {exc.start} is not UTF-8)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} (character {exc.pos}): "
                         f"{exc.msg}") from None


# ------------------------------------------------------------------------------------------- API


def import_huawei(paths: Iterable[str | os.PathLike[str]]) -> tuple[dict, list[str]]:
    """Saved Huawei Cloud API responses to topology data (validated) and report lines.

    The report lines are ``FILE: JSON-PATH: message`` (notes say ``note:``), without the
    ``sgdp: import:`` prefix the command prints; the last line is the summary count.
    """
    imp = _Importer()
    for p in paths:
        imp.read_file(os.fspath(p))
    topo = imp.build()
    imp.validate(topo)
    return topo, imp.lines + [imp.summary()]


def write_topology(topo: dict, output: str, sources: Iterable[str] = ()) -> None:
    """Write topology data as YAML (``.yaml``/``.yml``) or JSON (anything else); ``-`` is stdout (YAML)."""
    if output == "-" or output.lower().endswith((".yaml", ".yml")):
        import yaml

        header = "# Generated by `sgdp import huawei`"
        srcs = list(sources)
        if srcs:
            header += " from: " + " ".join(srcs)
        body = yaml.safe_dump(topo, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
        text = header + "\n" + body
    else:
        text = json.dumps(topo, indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise InputError(f"-o {output}: cannot write: {exc.strerror}") from None
