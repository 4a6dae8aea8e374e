"""Every verdict format holds the same rows: the Parquet writer (name columns taken from the name
tables by Arrow, written in a background thread) against the CSV writer, over several batches."""

import csv
from pathlib import Path

import pytest

from sgdp.pipeline.run import replay

ROOT = Path(__file__).resolve().parents[2]
TOPO = ROOT / "examples" / "figure1" / "topology.yaml"
PCAP = ROOT / "pcaps" / "figure1.pcap"


def test_parquet_rows_are_the_csv_rows(tmp_path: Path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    replay(str(TOPO), [str(PCAP)], str(tmp_path / "c"), "csv", batch_size=4)
    replay(str(TOPO), [str(PCAP)], str(tmp_path / "p"), "parquet", batch_size=4)
    with open(tmp_path / "c" / "verdicts.csv", newline="") as fh:
        want = list(csv.DictReader(fh))
    table = pq.read_table(tmp_path / "p" / "verdicts.parquet")
    assert [f.type for f in table.schema] == [pa.int64(), pa.float64()] + [pa.string()] * 6
    got = table.to_pylist()
    assert len(got) == len(want) == 17
    assert {r["instance"] for r in got} > {""} and {r["rule"] for r in got} > {""}  # names and empties
    for g, w in zip(got, want):
        assert g["index"] == int(w["index"]) and g["ts"] == float(w["ts"])
        assert {k: g[k] for k in list(w)[2:]} == {k: w[k] for k in list(w)[2:]}


def test_parquet_replay_does_not_import_pandas(tmp_path: Path):
    """``pa.array``/``pa.table`` import pandas when it is installed (0.3 s and 40 MB of a replay's
    peak); the writer makes its arrays from buffers instead. Run in a fresh interpreter, since the
    test process may have pandas already."""
    import subprocess
    import sys

    pytest.importorskip("pyarrow")
    pytest.importorskip("pandas", reason="pandas is not installed: nothing could import it")
    code = ("import sys; from sgdp.pipeline.run import replay; "
            f"replay({str(TOPO)!r}, [{str(PCAP)!r}], {str(tmp_path)!r}, 'parquet', batch_size=4); "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
    assert (tmp_path / "verdicts.parquet").stat().st_size > 0


def test_parquet_rows_with_long_name_tables_are_the_csv_rows(tmp_path: Path):
    """Name tables far longer than a batch (100,000 instances, say): each row group's dictionary
    holds the names its batch uses, not the whole table; the rows are the CSV rows."""
    pytest.importorskip("pyarrow")
    import numpy as np
    import pyarrow.parquet as pq

    from sgdp.capture import DIRECTIONS, REASONS, VERDICTS, Names, VerdictBatch
    from sgdp.pipeline.writers import VerdictWriter

    names = Names([f"ecs-{i:05d}" for i in range(5000)], ["sg-a", "sg,b"], [f"rule-{i}" for i in range(3000)])
    rng = np.random.default_rng(7)
    writers = {}
    for fmt in ("csv", "parquet"):
        (tmp_path / fmt).mkdir()
        writers[fmt] = VerdictWriter(str(tmp_path / fmt), fmt, names)
    for b in range(3):
        n = 100
        vb = VerdictBatch(n)
        vb.verdict[:] = rng.integers(0, len(VERDICTS), n)
        vb.reason[:] = rng.integers(0, len(REASONS), n)
        vb.instance[:] = rng.integers(-1, 5000, n)
        vb.direction[:] = rng.integers(0, len(DIRECTIONS), n)
        vb.group[:] = rng.integers(-1, 2, n)
        vb.rule[:] = rng.integers(-1, 3000, n)
        batch = {"ts": 1700000000.0 + b + np.arange(n) / 1024}
        for w in writers.values():
            w.write(batch, vb)
    for w in writers.values():
        w.close()
    with open(tmp_path / "csv" / "verdicts.csv", newline="") as fh:
        want = list(csv.DictReader(fh))
    path = tmp_path / "parquet" / "verdicts.parquet"
    got = pq.read_table(path).to_pylist()
    assert len(got) == len(want) == 300
    for g, w in zip(got, want):
        assert g["index"] == int(w["index"]) and g["ts"] == float(w["ts"])
        assert {k: g[k] for k in list(w)[2:]} == {k: w[k] for k in list(w)[2:]}
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3
    # statistics for index and ts (row groups skipped by packet or time range), not the names
    assert [meta.row_group(1).column(c).is_stats_set for c in range(8)] == [True, True] + [False] * 6
    assert meta.row_group(1).column(0).statistics.min == 100
    for c in (4, 7):  # instance, rule: a row group of 100 rows holds at most 101 of their names
        assert meta.row_group(0).column(c).total_uncompressed_size < 101 * 12 + 2000
