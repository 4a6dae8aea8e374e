"""Dataplane throughput on the generated topology (pytest-benchmark; outside the default test run).

    python -m pytest benchmarks/bench_dataplane.py --benchmark-columns=min,median,rounds

The generated topology (sgdp.capture.synth: 200 instances, 20 groups of about 50 rules with remote groups,
address groups, multiport, IPv4 and IPv6) and 1M packets in 50k flows, already parsed
(``SGDP_BENCH_PACKETS`` to change). The fast engine processes every packet on a fresh engine each
round; the reference engine the first 20k packets, once (it runs at tens of thousands of packets
per second). ``extra_info`` holds Mpps and the speedup.
"""

from __future__ import annotations

import os

import pytest

from sgdp.engine.choice import fast_available

PACKETS = int(os.environ.get("SGDP_BENCH_PACKETS", "1000000"))
REFERENCE_PACKETS = 20_000

pytestmark = pytest.mark.skipif(not fast_available(), reason="the compiled engine is not built")


@pytest.fixture(scope="module")
def workload():
    from sgdp.topology.model import topology_from_data
    from sgdp.capture.packet import PacketBatch
    from sgdp.capture.synth import generated_topology, generated_traffic

    data = generated_topology()
    topo = topology_from_data(data, "generated")
    batch = generated_traffic(data, PACKETS, PACKETS // 20)
    chunks = [PacketBatch({k: v[s:s + 65536] for k, v in batch.columns.items()}) for s in range(0, PACKETS, 65536)]
    head = PacketBatch({k: v[:REFERENCE_PACKETS] for k, v in batch.columns.items()})
    return topo, chunks, head


def test_dataplane_fast(benchmark, workload):
    from sgdp.engine.fast import FastEngine

    topo, chunks, _ = workload

    def run(engine):
        for chunk in chunks:
            engine.process(chunk)

    benchmark.pedantic(run, setup=lambda: ((FastEngine(topo),), {}), rounds=3)
    benchmark.extra_info["mpps"] = round(PACKETS / benchmark.stats.stats.min / 1e6, 3)


def test_dataplane_reference(benchmark, workload):
    from sgdp.engine.reference import ReferenceEngine

    topo, _, head = workload
    benchmark.pedantic(lambda e: e.process(head), setup=lambda: ((ReferenceEngine(topo),), {}), rounds=1)
    benchmark.extra_info["mpps"] = round(REFERENCE_PACKETS / benchmark.stats.stats.min / 1e6, 5)


def test_compile(benchmark, workload):
    from sgdp.engine.fast import FastEngine

    topo, _, _ = workload
    engine = benchmark.pedantic(FastEngine, args=(topo,), rounds=3)
    benchmark.extra_info["table_bytes"] = engine.table_bytes
