"""End-to-end `sgdp replay` of a generated capture (pytest-benchmark; outside the default test run).

    python -m pytest benchmarks/bench_replay.py --benchmark-columns=min,median,rounds

The generated traffic of sgdp.capture.synth (``SGDP_BENCH_PACKETS`` packets, default 1M, in packets/20
flows) written as a pcap under the system temp dir; each round replays it with the fast engine into
a CSV verdict file and summary.json, in-process. ``sgdp bench replay`` measures the same as separate
processes, with peak memory and the reference engine side by side.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from sgdp.engine.choice import fast_available

PACKETS = int(os.environ.get("SGDP_BENCH_PACKETS", "1000000"))

pytestmark = pytest.mark.skipif(not fast_available(), reason="the compiled engine is not built")


@pytest.fixture(scope="module")
def capture():
    from sgdp.capture.synth import generated_topology, generated_traffic, write_pcap

    work = tempfile.mkdtemp(prefix="sgdp-bench-replay-")
    data = generated_topology()
    topo = os.path.join(work, "topology.json")
    with open(topo, "w") as fh:
        json.dump(data, fh)
    path = os.path.join(work, "traffic.pcap")
    write_pcap(path, generated_traffic(data, PACKETS, PACKETS // 20))
    return topo, path, work


def test_replay_fast_csv(benchmark, capture):
    from sgdp.pipeline.run import replay

    topo, path, work = capture
    result = benchmark.pedantic(replay, args=(topo, [path], os.path.join(work, "out")),
                                kwargs={"verdicts": "csv", "engine_name": "fast"}, rounds=3)
    assert result.summary["packets"] == PACKETS
    benchmark.extra_info["mpps"] = round(PACKETS / benchmark.stats.stats.min / 1e6, 3)
