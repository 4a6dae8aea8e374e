"""Write report files: aggregate (:mod:`sgdp.report.data`), render (:mod:`sgdp.report.render`), save."""

from __future__ import annotations

import os
from typing import Any

from sgdp._atomic import partial_file
from sgdp.report.data import diff_data, replay_data
from sgdp.report.render import diff_html, replay_html
from sgdp.topology import Topology


def replay_report_html(out_dir: str, topology: str | Topology | None = None, captures: list[str] | None = None,
                       findings: list | str | bool | None = None) -> str:
    """The HTML of the report of the replay that wrote ``out_dir`` (arguments: :func:`sgdp.report.replay_data`)."""
    return replay_html(replay_data(out_dir, topology, captures, findings))


def write_replay_report(out_dir: str, path: str | None = None, topology: str | Topology | None = None,
                        captures: list[str] | None = None, findings: list | str | bool | None = None) -> str:
    """Write the report of the replay that wrote ``out_dir`` to ``path`` (default ``out_dir/report.html``);
    returns the path written."""
    text = replay_report_html(out_dir, topology, captures, findings)
    return _save(path or os.path.join(out_dir, "report.html"), text)


def diff_report_html(result: Any, old: str, new: str) -> str:
    """The HTML of a diff report (``result``: what :func:`sgdp.diff` returned)."""
    return diff_html(diff_data(result, old, new))


def write_diff_report(result: Any, old: str, new: str, path: str) -> str:
    return _save(path, diff_report_html(result, old, new))


def _save(path: str, text: str) -> str:
    """Write the report as ``path.partial``, renamed to ``path`` once whole (an earlier report stays
    until then)."""
    with partial_file(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
