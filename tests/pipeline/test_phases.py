"""The start-up phases a replay marks (``sgdp bench replay`` and benchmarks/run_replay.py read them):
in order, and the first packet marked when the first batch is there for the engine, before any
packet of it is evaluated — the packet phase holds the evaluation of every packet."""

from __future__ import annotations

from pathlib import Path

import pytest

import sgdp.pipeline.run as run
from sgdp.capture.synth import generated_topology, generated_traffic, write_pcap
from sgdp.engine.fast import FastEngine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def phases(monkeypatch):
    marks: dict[str, float] = {}
    monkeypatch.setattr(run, "PHASES", marks)
    return marks


def test_phases_are_marked_in_order(tmp_path, phases):
    run.replay(str(ROOT / "examples" / "figure1" / "topology.yaml"), [str(ROOT / "pcaps" / "figure1.pcap")],
               str(tmp_path / "out"), verdicts="none")
    names = ["start", "loaded", "validated", "compiled", "first_packet", "packets_done", "end"]
    assert list(phases) == names
    assert [phases[n] for n in names] == sorted(phases[n] for n in names)


def test_the_first_packet_is_marked_before_the_engine_evaluates_it(tmp_path, phases, monkeypatch):
    """The start-up ends when the first batch has been read: the engine's first call comes after
    the mark, so the packet phase holds the evaluation of every packet."""
    import yaml

    pytest.importorskip("sgdp.engine._dataplane")
    topo = generated_topology(instances=8, groups=3, rules_per_group=6)
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(topo))
    capture = tmp_path / "c.pcap"
    write_pcap(str(capture), generated_traffic(topo, packets=5000, flows=50))
    calls: list[tuple[int, bool]] = []
    process = FastEngine.process

    def spy(self, batch):
        calls.append((len(batch), "first_packet" in phases))
        return process(self, batch)

    monkeypatch.setattr(FastEngine, "process", spy)
    run.replay(str(path), [str(capture)], str(tmp_path / "out"), verdicts="none", engine_name="fast",
               batch_size=2000)
    assert calls == [(2000, True), (2000, True), (1000, True)]
