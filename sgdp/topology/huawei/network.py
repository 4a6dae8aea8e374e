"""VPCs and subnets: reading them, placing each subnet in its VPC, finding a subnet by id or alias."""

from __future__ import annotations

from typing import Any

from sgdp.topology.addr import parse_cidr
from sgdp.topology.huawei.common import (
    SUBNET_FIELDS, SUBNET_META, VPC_FIELDS, VPC_META, _Doc, _key, _Obj, _Reporter, _show, _Src,
)


class _Network(_Reporter):
    """Reads and emits VPCs and their subnets."""

    def __init__(self) -> None:
        super().__init__()
        self.vpcs: dict[str, _Obj] = {}
        self.subnets: dict[str, _Obj] = {}
        self.subnet_alias: dict[str, str] = {}  # Neutron network/subnet id -> subnet id

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
        doc.string(raw.get("gateway_ip"), _key(path, "gateway_ip"))
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

    def emit_vpcs(self, vpc_subnets: dict[str, list[_Obj]]) -> list[dict]:
        """The ``vpcs`` entries, each with the subnets placed in it."""
        origins = self.origins
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
        return vpcs
