"""What every part of the Huawei importer shares: the input records, typed access to a file's
JSON with errors that name the file and the JSON path, the field sets of each kind, and the
reporting of what cannot be mapped exactly."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sgdp.errors import InputError, path_names
from sgdp.topology.addr import Net, is_number, parse_cidr, parse_ip


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
    """One input file: typed access that raises InputError naming the file, the JSON path and the
    objects on it by name (``data``: the file's JSON, once read)."""

    def __init__(self, file: str, data: Any = None):
        self.file = file
        self.data = data

    def where(self, path: str) -> str:
        """``FILE: PATH (names): `` or ``FILE: ``, as every line about this file starts."""
        if not path:
            return f"{self.file}: "
        names = path_names(self.data, path)
        return f"{self.file}: {path} ({names}): " if names else f"{self.file}: {path}: "

    def err(self, path: str, message: str) -> InputError:
        return InputError(self.where(path) + message)

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
        if isinstance(value, str) and is_number(value.strip()):
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


class _Reporter:
    """The report every part of the importer writes to: what could not be mapped exactly, the notes,
    and where each emitted object came from (so a validation error names its source)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.unmapped = 0
        self.notes = 0
        self.unknown_fields: dict[tuple[str, str, str], list] = {}
        self.origins: dict[str, _Src] = {}
        self.docs: dict[str, _Doc] = {}  # by file name, once read

    def doc(self, file: str) -> _Doc:
        """The input file ``file`` (with its data, when it has been read)."""
        return self.docs.get(file) or _Doc(file)

    def _line(self, src: _Src | None, message: str) -> str:
        if src is None:
            return message
        return self.doc(src.file).where(src.path) + message

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

    def report_unknown_fields(self) -> None:
        """One line per file, kind and field name that ``check_fields`` found unknown."""
        for (file, kind, name), (first, count) in self.unknown_fields.items():
            more = f" (and in {count - 1} more {kind}s)" if count > 1 else ""
            self.report(_Src(file, first), f"field {name!r} of a {kind} is not modelled by sgdp: ignored{more}")

    def _duplicate(self, old: _Obj, raw: dict, doc: _Doc, path: str, kind: str) -> None:
        if old.raw != raw:
            self.note(_Src(doc.file, path), f"{kind} {old.id} is exported twice with different content; the "
                      f"first ({old.doc.file}: {old.path}) is kept")


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
    """A saved API response, read by the same bounded reader as a topology (size, nesting depth,
    duplicate keys); a problem is an InputError naming the file."""
    from sgdp.errors import ConfigError
    from sgdp.topology.structured import read_json_file

    try:
        return read_json_file(path, "JSON")
    except ConfigError as exc:
        raise InputError(str(exc)) from None
