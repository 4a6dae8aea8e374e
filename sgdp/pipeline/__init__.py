"""Stage 4, the replay pipeline: captures through one stateful engine into the outputs — the pipeline, the
verdict and summary writers (with their compiled formatter), split captures, flows, ``diff``,
topology timelines and counterexample captures.

Imports the topology, capture and engine stages. Other stages use only the names below;
``_writers`` is private to this package.
"""

from sgdp._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "run": ["replay", "ReplayResult"],
    "executors": ["make_executor", "EngineSpec", "ExecutorError", "LocalExecutor", "ProcessExecutor", "RayExecutor"],
    "shard": ["ShardKeys", "Router"],
    "writers": ["VerdictWriter", "Summary", "read_verdict_file", "FORMATS", "VERDICT_COLUMNS"],
    "split": ["SplitWriter", "batch_records", "write_split_file"],
    "flows": ["FlowTable", "unique_rows"],
    "changes": ["diff", "DiffResult", "format_diff"],
    "timeline": ["Timeline", "load_timeline"],
    "counterexamples": ["FlowSelection", "ReplayFailures", "make_failures_dir"],
})
