"""sgdp: a packet-level emulator of Huawei Cloud VPC security groups and the dataplane around them.

The Python API (the command line is a thin layer over it)::

    import sgdp
    topo = sgdp.load_topology("topology.yaml")
    sgdp.check(topo)                                   # findings
    sgdp.explain(topo, {"src": "198.51.100.7", "dst": "203.0.113.10", "dport": 22})
    sgdp.replay("topology.yaml", ["traffic.pcap"], out_dir="out")
    sgdp.diff("topology.yaml", "new.yaml", ["traffic.pcap"])

Names are imported on first use, so ``import sgdp`` is cheap.
"""

from sgdp._lazy import lazy_exports
from sgdp.errors import ConfigError, InputError, SgdpError, UsageError

__version__ = "0.1.0"

_names, __getattr__, _dir = lazy_exports(__name__, {
    "api": ["load_topology", "check", "make_packet", "explain", "Explanation", "replay", "diff", "decode"],
    "topology": ["Topology", "import_huawei", "write_topology", "parse_endpoint", "format_ip"],
    "capture": ["DECODE_COLUMNS", "decode_batches"],
    "engine": ["resolve_engine", "available_engines"],
    "pipeline": ["format_diff"],
    "testing": ["find_scenarios", "load_scenario", "run_scenario", "save_scenario_failures"],
    "bench": ["bench"],
})
_SUBMODULES = {"craft": "sgdp.capture.craft"}
_lazy_getattr = __getattr__


def __getattr__(name: str):  # noqa: F811  (the API names, and sgdp.craft)
    if name in _SUBMODULES:
        import importlib

        module = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    return _lazy_getattr(name)


__all__ = ["ConfigError", "InputError", "SgdpError", "UsageError", "__version__", "craft", *_names]
