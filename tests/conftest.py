"""Shared fixtures: every dataplane test runs on every engine that is available here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sgdp.engine.choice import available_engines, make_engine
from sgdp.topology.model import Topology, topology_from_data
from sgdp.capture.packet import PacketBatch
from sgdp.testing.scenario import packet_from_spec

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(params=available_engines())
def engine_name(request) -> str:
    return request.param


@pytest.fixture
def run(engine_name):
    """``run(topology, [packet spec, ...]) -> [Verdict, ...]`` through one stateful dataplane.

    The topology is a dict (as in a topology file) or a Topology; packet specs are scenario-file
    packet mappings (``{src, dst, proto, sport, dport, flags, time, ...}``).
    """

    def _run(topology, packets):
        topo = topology if isinstance(topology, Topology) else topology_from_data(topology, "test.yaml")
        engine = make_engine(topo, engine_name)
        pkts = [packet_from_spec(p, f"packets[{i}]", "test") for i, p in enumerate(packets)]
        out = engine.process(PacketBatch.from_packets(pkts))
        return [engine.names.decode(out, i) for i in range(len(pkts))]

    return _run


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the shared data folder is not beside this checkout ({SHARED.name}/ next to the repo)")
    return SHARED


def pytest_configure(config):
    os.environ.setdefault("SGDP_ENGINE", "reference")
