"""Stage 6, the report: one self-contained HTML file from the outputs of a replay (``sgdp report``,
``sgdp replay --html``) or from a diff (``sgdp diff --html``).

Imports the topology, capture and pipeline stages. Other stages use only the names below.
"""

from sgdp._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "build": ["write_replay_report", "write_diff_report", "replay_report_html", "diff_report_html"],
    "data": ["replay_data", "diff_data", "read_verdict_columns", "find_verdict_file", "VerdictColumns",
             "bucket_width", "rule_tables"],
    "render": ["stack_marks"],
})
