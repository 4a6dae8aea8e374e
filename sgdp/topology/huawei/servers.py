"""Servers and ports: each server's NICs (from its addresses and its ports), their subnets, groups,
EIPs and address pairs, and the virtual-IP ports the NICs hold."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sgdp.topology.addr import parse_ip, parse_mac
from sgdp.topology.huawei.common import (
    ADDRESS_FIELDS, ADDRESS_META, PORT_FIELDS, PORT_META, SERVER_FIELDS, SERVER_META, _canon_ip, _Doc, _in,
    _key, _Obj, _Reporter, _show, _Src, _unique,
)

SDC_OFF = "1.1.1.1/0"  # Huawei: this allowed address pair turns the source/destination check off


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


class _Servers(_Reporter):
    """Reads servers and ports and builds the instances, their NICs and the virtual IPs.

    Uses the groups (``placeholder_group``, ``group_for_server_ref``, ``_group_names``) and the network
    (``subnet_of``) of the importer it is mixed into.
    """

    def __init__(self) -> None:
        super().__init__()
        self.servers: dict[str, _Obj] = {}
        self.ports: dict[str, _Obj] = {}

    # -- reading ------------------------------------------------------------------------------

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

    # -- building -----------------------------------------------------------------------------

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

    # -- output -------------------------------------------------------------------------------

    def emit_instances(self, instances: list[tuple[_Obj, list[dict]]]) -> list[dict]:
        """The ``instances`` entries: one NIC inline, several as ``nics``."""
        origins = self.origins
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
        return insts

    def emit_virtual_ips(self, vips: list[tuple[_Obj, _Obj, list[_Obj]]]) -> list[dict]:
        """The ``virtual_ips`` entries."""
        origins = self.origins
        out_vips = []
        for port, sn, holders in vips:
            origins[f"virtual_ips[{len(out_vips)}]"] = port.src
            out_vips.append({"id": port.id, "ip": port.raw["fixed_ips"][0]["ip_address"].strip(),
                             "subnet": sn.out, "instances": [h.out for h in holders]})
        return out_vips
