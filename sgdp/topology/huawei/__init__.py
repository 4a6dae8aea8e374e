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
file and the JSON path.  The result is validated with :func:`sgdp.topology.model.topology_from_data`
before it is written.

The parts, one module each, mixed into one importer that holds the state they share:

* ``common``: the input records, typed access to a file's JSON, the field sets of each kind, the
  report (what could not be mapped, the notes);
* ``groups``: security groups, their rules (v3 and Neutron forms), address groups, rules' remotes
  and placeholder groups;
* ``network``: VPCs and subnets (placing each subnet in its VPC, finding a subnet);
* ``servers``: servers, ports, their NICs, and virtual-IP ports;
* ``importer``: reads each file and hands each top-level key to its part, then builds the topology
  (placing, resolving references, naming, emitting), validates it and counts what was reported.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Iterable

from sgdp._atomic import partial_file
from sgdp.topology.huawei.importer import _Importer


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
    with partial_file(output, "w", encoding="utf-8") as fh:  # OUTPUT.partial, renamed once whole
        fh.write(text)
