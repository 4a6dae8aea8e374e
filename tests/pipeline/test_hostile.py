"""Hostile inputs to the compiled entry points of the dataplane and the verdict formatter raise a
clean ValueError/TypeError, never read past a buffer (STYLE: like cytoolz's test_none_safe)."""

from __future__ import annotations

import numpy as np
import pytest

from sgdp.engine.choice import fast_available
from sgdp.topology.model import topology_from_data
from sgdp.capture.packet import PACKET_COLUMNS, PacketBatch, Packet, VerdictBatch

pytestmark = pytest.mark.skipif(not fast_available(), reason="the compiled engine is not built")

TOPO = {
    "vpcs": [{"name": "V", "cidr": "10.0.0.0/16", "subnets": [{"name": "S", "cidr": "10.0.0.0/24"}]}],
    "security_groups": [{"name": "G", "rules": [{"direction": "ingress"}, {"direction": "egress"}]}],
    "instances": [{"name": "E1", "subnet": "S", "ip": "10.0.0.10", "security_groups": ["G"]},
                  {"name": "E2", "subnet": "S", "ip": "10.0.0.11", "security_groups": ["G"]}],
}


@pytest.fixture
def engine():
    from sgdp.engine.fast import FastEngine

    return FastEngine(topology_from_data(TOPO, "t.yaml"))


def _columns(n: int) -> dict[str, np.ndarray]:
    batch = PacketBatch.from_packets([Packet(src=0x0A00000A, dst=0x0A00000B, proto=6, dport=22, tcp_flags=2)] * n)
    return dict(batch.columns)


def _out(n: int) -> dict[str, np.ndarray]:
    vb = VerdictBatch(n)
    return {k: getattr(vb, k) for k in ("verdict", "reason", "instance", "direction", "group", "rule")}


def test_run_accepts_an_empty_batch(engine):
    engine.dp.run(engine.plan, _columns(0), _out(0))


def test_run_rejects_packet_columns_of_different_lengths(engine):
    cols = _columns(4)
    cols["dport"] = cols["dport"][:2]
    with pytest.raises(ValueError):
        engine.dp.run(engine.plan, cols, _out(4))


def test_run_rejects_verdict_columns_of_the_wrong_length(engine):
    with pytest.raises(ValueError):
        engine.dp.run(engine.plan, _columns(4), _out(3))


@pytest.mark.parametrize("name", ["src_lo", "ts", "icmp_type", "src_mac"])
def test_run_rejects_a_wrong_dtype(engine, name):
    cols = _columns(3)
    cols[name] = cols[name].astype(np.float32 if name != "ts" else np.int64)
    with pytest.raises((ValueError, TypeError)):
        engine.dp.run(engine.plan, cols, _out(3))


def test_run_rejects_a_missing_column(engine):
    cols = _columns(2)
    del cols["proto"]
    with pytest.raises(KeyError):
        engine.dp.run(engine.plan, cols, _out(2))


def test_packet_batch_validates_before_compiled_code():
    cols = {k: np.zeros(2, dt) for k, dt in PACKET_COLUMNS.items()}
    cols["sport"] = np.zeros(3, np.uint16)
    with pytest.raises(ValueError, match="sport"):
        PacketBatch(cols)


def test_format_rows_rejects_mismatched_lengths_and_bad_codes(engine, tmp_path):
    from sgdp.pipeline import _writers as _report
    from sgdp.pipeline.writers import VerdictWriter

    writer = VerdictWriter(str(tmp_path), "csv", engine.names)
    vb = VerdictBatch(3)
    sec, nsec = np.zeros(2, np.int64), np.zeros(2, np.uint32)
    with pytest.raises(ValueError):
        _report.format_rows(False, 0, sec, nsec, vb.verdict, vb.reason, vb.instance, vb.direction, vb.group,
                            vb.rule, writer._tables, writer._row_bound)
    vb.verdict[1] = 250  # not a verdict code
    batch = PacketBatch.from_packets([Packet()] * 3)
    with pytest.raises(ValueError, match="outside its name table"):
        writer.write(batch, vb)
    writer.close()


@pytest.mark.parametrize("jsonl", [False, True])
def test_format_rows_into_a_buffer_gives_the_same_bytes_and_checks_its_size(engine, tmp_path, jsonl):
    from sgdp.pipeline import _writers as _report
    from sgdp.pipeline.writers import VerdictWriter

    writer = VerdictWriter(str(tmp_path), "jsonl" if jsonl else "csv", engine.names)
    vb = VerdictBatch(5)
    vb.instance[:] = -1
    vb.group[:] = -1
    vb.rule[:] = -1
    sec, nsec = np.arange(5, dtype=np.int64) + 1_700_000_000, np.arange(5, dtype=np.uint32) * 1000
    args = (jsonl, 7, sec, nsec, vb.verdict, vb.reason, vb.instance, vb.direction, vb.group, vb.rule,
            writer._tables, writer._row_bound)
    expected = _report.format_rows(*args)
    buf = np.full(5 * writer._row_bound + 1, 0xFF, np.uint8)
    size = _report.format_rows(*args, buf)
    assert bytes(buf[:size]) == expected
    with pytest.raises(ValueError, match="too small"):
        _report.format_rows(*args, np.empty(5 * writer._row_bound, np.uint8))
    writer.close()
