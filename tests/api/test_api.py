"""The Python API: result tables (pandas, pyarrow or NumPy), crafted packets, the same typed errors
and messages as the command line, and a core that imports without the optional table libraries."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sgdp
from sgdp.cli import main

ROOT = Path(__file__).resolve().parents[2]
TOPO = ROOT / "examples" / "figure1" / "topology.yaml"
PCAP = ROOT / "pcaps" / "figure1.pcap"
EXPECTED = ROOT / "pcaps" / "figure1.expected.csv"
PACKETS = [
    {"src": "198.51.100.7", "dst": "203.0.113.10", "proto": "icmp", "icmp_type": 8, "icmp_code": 0, "time": 1.0},
    {"src": "192.168.0.10", "dst": "198.51.100.7", "proto": "icmp", "icmp_type": 0, "icmp_code": 0},
    {"src": "198.51.100.7", "dst": "203.0.113.10", "dport": 3389, "time": 2.0},
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_replay_verdicts_are_the_verdict_file(tmp_path: Path, fmt: str):
    pytest.importorskip("pandas")
    run = sgdp.replay(TOPO, [PCAP], str(tmp_path), fmt)
    df = run.verdicts
    assert type(df).__name__ == "DataFrame" and list(df.columns)[:8] == [
        "index", "ts", "verdict", "reason", "instance", "direction", "security_group", "rule"]
    with open(EXPECTED, newline="") as fh:
        want = [(r["verdict"], r["reason"], r["instance"], r["direction"], r["security_group"], r["rule"]) for r in csv.DictReader(fh)]
    got = list(zip(df.verdict, df.reason, df.instance, df.direction, df.security_group, df.rule))
    assert got == want
    assert df["index"].tolist() == list(range(17))
    table = run.verdicts_as("arrow")
    assert table.num_rows == 17 and table.column("rule").to_pylist() == [w[5] for w in want]
    cols = run.verdicts_as("numpy")
    assert isinstance(cols["ts"], np.ndarray) and cols["ts"][1] == 1700000001.0


def test_crafted_packets(tmp_path: Path):
    run = sgdp.evaluate(TOPO, PACKETS)
    cols = run.verdicts_as("numpy")
    assert cols["verdict"].tolist() == ["allow", "allow", "deny"]
    assert cols["reason"].tolist() == ["rule", "established", "rule"]
    assert cols["rule"].tolist() == ["A01", "", "A03"]
    assert cols["ts"].tolist() == [1.0, 1.0, 2.0]  # no time: the previous packet's
    assert cols["dst"].tolist()[0] == "203.0.113.10" and cols["proto"].tolist() == ["icmp", "icmp", "tcp"]
    assert run.summary["packets"] == 3 and run.summary["denied"] == 1
    assert {(h["rule"], h["hits"]) for h in run.summary["rule_hits"]} == {("A01", 1), ("A03", 1)}
    same = sgdp.replay(sgdp.load_topology(TOPO), packets=[sgdp.make_packet(p) if "time" in p else p for p in PACKETS])
    assert same.verdicts_as("numpy")["verdict"].tolist() == ["allow", "allow", "deny"]
    # packets run through one stateful dataplane: without the request, the reply is new traffic
    alone = sgdp.evaluate(TOPO, PACKETS[1:2]).verdicts_as("numpy")
    assert alone["reason"].tolist() == ["rule"] and alone["rule"].tolist() == ["A02"]


def test_errors_are_the_command_lines(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsecurity_groups:\n  - {name: g, rules: [{direction: sideways}]}\n")
    with pytest.raises(sgdp.ConfigError) as info:
        sgdp.check(bad)
    assert main(["check", str(bad)]) == 2
    assert capsys.readouterr().err == f"sgdp: error: {info.value}\n"
    with pytest.raises(sgdp.ConfigError, match=r"packets\[1\]\.dport: is required for tcp"):
        sgdp.evaluate(TOPO, [PACKETS[0], {"src": "198.51.100.7", "dst": "203.0.113.10"}])
    with pytest.raises(sgdp.InputError) as info:
        sgdp.replay(TOPO, [tmp_path / "none.pcap"], str(tmp_path / "o"))
    assert main(["replay", str(TOPO), str(tmp_path / "none.pcap"), "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"sgdp: error: {info.value}\n"
    with pytest.raises(sgdp.UsageError, match="captures or packets, not both"):
        sgdp.replay(TOPO, [PCAP], packets=PACKETS)
    with pytest.raises(sgdp.UsageError, match="not one of pandas, arrow, numpy"):
        sgdp.table({"a": np.arange(2)}, "excel")


def test_findings_and_diff_tables(tmp_path: Path):
    pytest.importorskip("pandas")
    findings = sgdp.check(TOPO)
    assert isinstance(findings, list) and len(findings.table) == len(findings)
    assert main(["check", "--json", str(TOPO)]) == 0


def test_core_imports_without_pandas_or_pyarrow():
    code = ("import sys; sys.modules['pandas'] = None; sys.modules['pyarrow'] = None\n"
            "import json, sgdp\n"
            f"run = sgdp.evaluate({str(TOPO)!r}, {PACKETS!r})\n"
            "v = run.verdicts\n"
            "assert isinstance(v, dict), type(v)\n"
            "try:\n"
            "    run.verdicts_as('pandas')\n"
            "except sgdp.UsageError as exc:\n"
            "    print(json.dumps([v['verdict'].tolist(), str(exc)]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    verdicts, message = json.loads(out)
    assert verdicts == ["allow", "allow", "deny"]
    assert message == "a pandas DataFrame needs pandas: pip install 'sgdp[notebook]'"


def test_one_capture_path_is_a_capture_list(tmp_path: Path):
    """Every call that takes captures takes one path as well as several (a str is not a list of letters)."""
    assert list(sgdp.decode(str(PCAP))) == list(sgdp.decode([PCAP]))
    run = sgdp.replay(TOPO, PCAP, str(tmp_path / "out"))
    assert run.summary["packets"] == 17
    page = sgdp.write_report(tmp_path / "out", tmp_path / "r.html", captures=str(PCAP))
    assert "198.51.100.7" in Path(page).read_text()  # the talker table: the capture was read


def test_gc_paused_restores_the_collector_as_it_was():
    """Start-up pauses the cyclic collector and leaves it as it found it (also on an error)."""
    import gc

    from sgdp.startup import gc_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_command_line_called_in_process_does_not_pause_or_freeze():
    """main(argv) from a program (tests, an embedding tool): the collector is left alone."""
    import gc

    from sgdp.cli import main

    frozen = gc.get_freeze_count()
    assert main(["check", str(ROOT / "examples" / "figure1" / "topology.yaml")]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_the_command_lines_start_up_pause_ends_with_the_outermost_block():
    """The command line pauses the collector from its entry; the outermost gc_paused block (the
    start-up) ends the pause, freezing what was made by then; the collector then runs as usual."""
    import gc

    from sgdp import startup

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    startup._paused_once = False  # (this test process may have had its pause)
    try:
        startup.pause_until_started()
        assert not gc.isenabled()
        with startup.gc_paused():
            with startup.gc_paused():
                pass
            assert not gc.isenabled()  # an inner block does not end it
        assert gc.isenabled() and gc.get_freeze_count() >= frozen
        with startup.gc_paused():  # later blocks pause and restore as usual
            assert not gc.isenabled()
        assert gc.isenabled()
        startup.started()  # once over, a no-op
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_replay_collects_garbage_after_its_start_up(tmp_path):
    """Run as the command line runs it, a replay's packet phase has the collector on."""
    code = ("import gc, sys; import sgdp.pipeline.run as run; seen = []; "
            "orig = run.VerdictWriter.write; "
            "run.VerdictWriter.write = lambda self, *a: (seen.append(gc.isenabled()), orig(self, *a))[1]; "
            "from sgdp.cli import main; "
            f"sys.argv = ['sgdp', 'replay', {str(ROOT / 'examples/figure1/topology.yaml')!r}, "
            f"{str(ROOT / 'pcaps/figure1.pcap')!r}, '-o', {str(tmp_path)!r}]; "
            "rc = main(); print(rc, seen, gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[-2] == "0 [True] True"  # collecting, after the start-up was frozen
