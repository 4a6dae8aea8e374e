"""sgdp: a packet-level emulator of Huawei Cloud VPC security groups and the dataplane around them.

The Python API (the command line is a thin layer over it)::

    import sgdp
    topo = sgdp.load_topology("topology.yaml")
    sgdp.check(topo)                                   # findings
    sgdp.explain(topo, {"src": "198.51.100.7", "dst": "203.0.113.10", "dport": 22})
    run = sgdp.replay("topology.yaml", ["traffic.pcap"], out_dir="out")
    run.verdicts                                       # a DataFrame (pandas), a Table (pyarrow) or NumPy columns
    run.report("report.html")                          # the HTML report
    sgdp.evaluate(topo, [{"src": "172.16.0.5", "dst": "192.168.0.10", "dport": 22}]).verdicts
    sgdp.diff("topology.yaml", "new.yaml", ["traffic.pcap"]).table

Names are imported on first use, so ``import sgdp`` is cheap.
"""

from sgdp._lazy import lazy_exports
from sgdp.errors import ConfigError, InputError, SgdpError, UsageError

__version__ = "0.1.0"

_names, __getattr__, _ = lazy_exports(__name__, {
    "api": ["load_topology", "check", "Findings", "make_packet", "explain", "Explanation", "replay", "evaluate", "Replay",
            "diff", "Diff", "decode", "write_report", "table"],
    "topology": ["Topology", "import_huawei", "write_topology", "parse_endpoint", "format_ip"],
    "capture": ["DECODE_COLUMNS", "decode_batches", "craft"],  # craft: the module sgdp.capture.craft (needs scapy)
    "engine": ["resolve_engine", "available_engines"],
    "pipeline": ["format_diff"],
    "testing": ["find_scenarios", "load_scenario", "run_scenario", "save_scenario_failures"],
    "bench": ["bench"],
})
__all__ = ["ConfigError", "InputError", "SgdpError", "UsageError", "__version__", *_names]
