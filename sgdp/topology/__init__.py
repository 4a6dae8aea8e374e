"""Stage 1, the topology: the file format, loading and validation, addresses, the effective policy
of every NIC (S8-S10), ``check``, and the importer of Huawei Cloud API exports.

Imports nothing of the later stages. Other stages use only the names below.
"""

from sgdp._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "model": ["Topology", "Nic", "Rule", "AclRule", "LoadBalancer", "load_topology", "topology_from_data",
              "read_structured_file", "proto_label", "parse_multiport", "ICMP", "ICMPV6", "TCP", "UDP", "GRE",
              "PORT_PROTOS", "PROTO_NAMES"],
    "addr": ["Net", "format_ip", "parse_ip", "parse_mac", "parse_cidr", "parse_endpoint"],
    "policy": ["Policy", "rule_matches_packet"],
    "findings": ["check", "Finding"],
    "huawei": ["import_huawei", "write_topology"],
})
