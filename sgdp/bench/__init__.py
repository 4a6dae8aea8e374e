"""Stage 5b, benchmarks behind ``sgdp bench``: ClassBench rule sets and traces, the dataplane on a
generated topology, end-to-end replay of a generated capture.

Imports every earlier stage through its public names.
"""

from sgdp._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "commands": ["classbench", "dataplane", "replay_capture", "CLASSBENCH_JSON_KEYS"],
    "rulesets": ["load_rules", "load_trace", "load_matches"],
})
