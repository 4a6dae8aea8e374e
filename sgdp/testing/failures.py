"""Counterexample captures of failing scenarios (`sgdp test --save-failures DIR`).

One capture per failing scenario, ``DIR/<scenario file>.pcap`` (``-2``, ``-3``… appended when two
scenario files have the same name): the failing packets with the earlier packets of their flows.
Packet steps are encoded by the capture stage's frame encoder with their step times; capture steps
contribute their original frames. Flows span steps (a crafted SYN and a captured reply are one flow).
"""

from __future__ import annotations

import os
import re

from sgdp.capture import LINKTYPE_ETHERNET, PacketBatch, packet_to_frame, read_batches, timestamp
from sgdp.errors import InputError
from sgdp.pipeline import FlowSelection, batch_records, make_failures_dir, write_split_file
from sgdp.testing.scenario import CaptureFailure, CaptureStep


def _scenario_chunks(scenario):
    """The scenario's packets in order, in chunks: (columns, frames(rows) -> records, step ids).

    Consecutive packet steps form one chunk of crafted frames; a capture step gives its batches.
    """
    pending: list = []

    def crafted(steps):
        batch = PacketBatch.from_packets([st.packet for st in steps])

        def frames(rows):
            for i in rows:
                pkt = steps[i].packet
                frame = packet_to_frame(pkt)
                sec, nsec = timestamp(pkt.ts)
                yield LINKTYPE_ETHERNET, sec, nsec, len(frame), frame
        return batch.columns, frames, ("packets", [st.index for st in steps])

    for step in scenario.steps:
        if not isinstance(step, CaptureStep):
            pending.append(step)
            continue
        if pending:
            yield crafted(pending)
            pending = []
        try:
            for batch in read_batches([step.capture], keep_frames=True):
                yield batch.columns, lambda rows, batch=batch: batch_records(batch, rows), ("capture", step.index, batch.first)
        except InputError:
            pass  # the scenario run reported it
    if pending:
        yield crafted(pending)


def save_scenario_failures(result, directory: str, used: set[str] | None = None) -> str | None:
    """Write the capture of a failing scenario (a :class:`sgdp.testing.scenario.ScenarioResult`); its path.

    Packet steps are encoded by :func:`sgdp.capture.frames.packet_to_frame`; capture steps contribute their
    original frames."""
    if result.passed:
        return None
    make_failures_dir(directory)
    failed_steps = {f.step.index for f in result.failures if not isinstance(f, CaptureFailure)}
    failed_packets = {f.step.index: set(f.indexes) for f in result.failures if isinstance(f, CaptureFailure)}

    def bad_rows(columns, what) -> list[int]:
        if what[0] == "packets":
            return [r for r, idx in enumerate(what[1]) if idx in failed_steps]
        wanted = failed_packets.get(what[1], ())
        return [r for r in range(len(columns["ts"])) if what[2] + r in wanted] if wanted else []

    selection = FlowSelection()
    pos = 0
    for columns, _, what in _scenario_chunks(result.scenario):
        selection.mark(columns, pos, bad_rows(columns, what))
        pos += len(columns["ts"])
    path = os.path.join(directory, _file_name(result.scenario.file, used) + ".pcap")

    def records():
        pos = 0
        stop = selection.stop
        for columns, frames, _ in _scenario_chunks(result.scenario):
            if pos > stop:
                break
            yield from frames(selection.select(columns, pos).tolist())
            pos += len(columns["ts"])

    write_split_file(path, records())  # as PATH.partial, renamed when whole
    return path


def _file_name(scenario_file: str, used: set[str] | None) -> str:
    base = os.path.basename(scenario_file)
    for suffix in (".sgdp.yaml", ".sgdp.yml", ".yaml", ".yml", ".json"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base) or "scenario"
    used = used if used is not None else set()
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base}-{k}"
    used.add(name)
    return name
