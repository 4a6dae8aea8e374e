"""The coordinating importer: reads each file, hands each top-level key to the part that maps it,
then builds the topology (placing, resolving, naming, emitting) and validates it."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from sgdp.errors import ConfigError, InputError
from sgdp.topology.huawei.common import ENVELOPE, _Doc, _jtype, _key, _read_json, _Src
from sgdp.topology.huawei.groups import _Groups
from sgdp.topology.huawei.network import _Network
from sgdp.topology.huawei.servers import _Servers
from sgdp.topology.model import topology_from_data


class _Importer(_Groups, _Network, _Servers):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []

    # -- reading ------------------------------------------------------------------------------

    def read_file(self, path: str) -> None:
        self.files.append(path)
        data = _read_json(path)
        doc = self.docs[path] = _Doc(path, data)
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

    # -- building the topology ----------------------------------------------------------------

    def build(self) -> dict:
        self.report_unknown_fields()

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

    # -- output -------------------------------------------------------------------------------

    def emit(self, vpc_subnets, instances, vips) -> dict:
        topo: dict[str, Any] = {"version": 1}
        names = ", ".join(os.path.basename(f) for f in self.files)
        topo["description"] = f"imported by `sgdp import huawei` from {names}"
        parts = [("vpcs", self.emit_vpcs(vpc_subnets)), ("address_groups", self.emit_address_groups()),
                 ("security_groups", self.emit_security_groups()), ("instances", self.emit_instances(instances)),
                 ("virtual_ips", self.emit_virtual_ips(vips))]
        for key, items in parts:
            if items:
                topo[key] = items
        return topo

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
                raise self.doc(src.file).err(src.path, f"{exc.detail} (imported as {exc.path})") from None
            raise InputError(f"the imported topology is not valid: {exc.path}: {exc.detail}") from None

    def summary(self) -> str:
        return f"{self.unmapped} item(s) not mapped exactly, {self.notes} note(s)"
