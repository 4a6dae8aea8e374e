"""Every verdict format holds the same rows: the Parquet writer (name columns taken from the name
tables by Arrow, written in a background thread) against the CSV writer, over several batches."""

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


NAMES = ["a", "b,c", 'q"uote', "ünï", "x" * 40]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**62), st.booleans(),
       st.lists(st.tuples(st.integers(-2**63, 2**63 - 1) | st.integers(1_700_000_000, 1_700_000_003),
                          st.integers(0, 10**9 - 1) | st.sampled_from([0, 1, 999_999_999]),
                          st.integers(0, 3), st.integers(0, 9), st.integers(-1, 4), st.integers(0, 2),
                          st.integers(-1, 4), st.integers(-1, 4)), min_size=1, max_size=40))
def test_compiled_rows_are_the_documented_rows(first, jsonl, rows):
    """The compiled formatter against the row format written out in Python: the index, the
    timestamp as seconds '.' nine digits (any int64 second, repeated seconds or not), the names
    CSV- or JSON-quoted."""
    import json

    import numpy as np

    from sgdp.capture import DIRECTIONS, REASONS, VERDICTS
    from sgdp.pipeline import _writers
    from sgdp.pipeline.writers import _blob, _csv

    quote = json.dumps if jsonl else _csv
    tables = [list(VERDICTS), list(REASONS), NAMES + [""], list(DIRECTIONS), NAMES + [""], NAMES + [""]]
    blobs = tuple(_blob([quote(t) for t in table]) for table in tables)
    bound = 200 + sum(max(len(quote(t).encode()) for t in table) for table in tables)
    c = list(zip(*rows))
    cols = (np.array(c[0], np.int64), np.array(c[1], np.uint32), np.array(c[2], np.uint8), np.array(c[3], np.uint8),
            np.array(c[4], np.int32), np.array(c[5], np.uint8), np.array(c[6], np.int32), np.array(c[7], np.int32))
    got = _writers.format_rows(jsonl, first, *cols, blobs, bound).decode()
    want = []
    for i, (sec, nsec, v, r, inst, d, g, rule) in enumerate(rows):
        names = [quote(VERDICTS[v]), quote(REASONS[r]), quote(NAMES[inst] if inst >= 0 else ""), quote(DIRECTIONS[d]),
                 quote(NAMES[g] if g >= 0 else ""), quote(NAMES[rule] if rule >= 0 else "")]
        ts = f"{sec}.{nsec:09d}"
        if jsonl:
            keys = ("verdict", "reason", "instance", "direction", "security_group", "rule")
            want.append("{" + f'"index":{first + i},"ts":{ts},' + ",".join(f'"{k}":{n}' for k, n in zip(keys, names)) + "}\n")
        else:
            want.append(",".join([str(first + i), ts, *names]) + "\n")
    assert got == "".join(want)
