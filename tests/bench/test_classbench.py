"""ClassBench files: reading (plain and gzip), errors on bad lines, the compiled classifier's agreement
with the first-match oracle on the 1k sets, and ``sgdp bench classbench``."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from sgdp.bench import rulesets as cb
from sgdp.engine.classifier import FastClassifier, ReferenceClassifier
from sgdp.cli import main
from sgdp.errors import InputError

SETS_1K = ["acl1_1k", "fw1_1k", "ipc1_1k"]

RULES = (
    "@10.0.0.0/8\t192.168.1.0/24\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\t\n"
    "@10.1.2.3/32\t0.0.0.0/0\t1024 : 65535\t0 : 65535\t0x11/0xFF\t0x1000/0x1000\t\n"
    "@0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\t\n"
)
# sip dip sport dport proto flags genfilter; 167772161 = 10.0.0.1, 3232235777 = 192.168.1.1
TRACE = (
    "167772161\t3232235777\t5\t80\t6\t0\t0\n"
    "167838211\t1\t2000\t53\t17\t0\t1\n"
    "167838211\t1\t80\t53\t17\t0\t2\n"
    "1\t2\t3\t4\t1\t0\t2\n"
)
MATCH = "0\n1\n2\n2\n"


@pytest.fixture
def small(tmp_path):
    rules, trace, match = tmp_path / "s.rules", tmp_path / "s.trace.gz", tmp_path / "s.match"
    rules.write_text(RULES)
    trace.write_bytes(gzip.compress(TRACE.encode()))
    match.write_text(MATCH)
    return rules, trace, match


@pytest.mark.parametrize("name", SETS_1K)
def test_compiled_classifier_agrees_with_oracle_on_1k_sets(shared_dir, name):
    folder = shared_dir / "classbench"
    table = cb.load_rules(folder / f"{name}.rules.gz")
    trace = cb.load_trace(folder / f"{name}.trace.gz")
    expected = cb.load_matches(folder / f"{name}.match.gz")
    assert len(expected) == len(trace.headers) > 0
    got = FastClassifier(table).classify(trace.headers)
    assert int((got != expected).sum()) == 0
    # the generating filter matches too, so the first match is never after it (README check 1)
    assert (got <= trace.genfilter).all()


def test_reference_classifier_agrees_with_oracle_on_a_sample(shared_dir):
    folder = shared_dir / "classbench"
    table = cb.load_rules(folder / "fw1_1k.rules.gz")
    trace = cb.load_trace(folder / "fw1_1k.trace.gz")
    expected = cb.load_matches(folder / "fw1_1k.match.gz")
    pick = np.arange(0, len(expected), 37)
    h = trace.headers
    sample = type(h)(**{name: getattr(h, name)[pick] for name in h.__dataclass_fields__})
    assert ReferenceClassifier(table).classify(sample).tolist() == expected[pick].tolist()


def test_small_files_read_plain_and_gzip(small):
    rules, trace, match = small
    table = cb.load_rules(rules)
    assert len(table) == 3
    r0 = table.rule(0)
    assert r0.src == (0x0A000000, 0x0AFFFFFF) and r0.dst == (0xC0A80100, 0xC0A801FF)
    assert r0.dport == (80, 80) and r0.proto == (6, 0xFF)
    assert table.rule(2).proto == (0, 0)
    t = cb.load_trace(trace)
    assert len(t.headers) == 4 and t.genfilter.tolist() == [0, 1, 2, 2]
    assert FastClassifier(table).classify(t.headers).tolist() == cb.load_matches(match).tolist()
    # gzip is recognised by its magic bytes, not by its name
    gz_named_plain = rules.with_name("r.txt")
    gz_named_plain.write_bytes(gzip.compress(RULES.encode()))
    assert len(cb.load_rules(gz_named_plain)) == 3


def test_cli_json_keys_and_agreement(small, capsys):
    rules, trace, match = small
    for engine in ("fast", "reference"):
        assert main(["bench", "classbench", str(rules), str(trace), "--match", str(match), "--engine", engine, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert set(out) == {"rules", "headers", "mismatches", "mpps", "build_s", "table_bytes", "engine"}
        assert out["rules"] == 3 and out["headers"] == 4 and out["mismatches"] == 0 and out["engine"] == engine
        assert out["mpps"] > 0 and out["build_s"] >= 0 and out["table_bytes"] > 0
    assert main(["bench", "classbench", str(rules), str(trace), "--engine", "fast", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mismatches"] is None


def test_cli_text_output_and_mismatch_exit(small, capsys):
    rules, trace, match = small
    assert main(["bench", "classbench", str(rules), str(trace), "--match", str(match), "--engine", "fast"]) == 0
    text = capsys.readouterr().out
    assert "Mpps" in text and "4/4 (100.000%), 0 mismatches" in text
    wrong = match.with_name("wrong.match")
    wrong.write_text("0\n2\n2\n2\n")
    assert main(["bench", "classbench", str(rules), str(trace), "--match", str(wrong), "--engine", "fast"]) == 1
    assert "header 1 (trace line 2): expected filter 2, got 1" in capsys.readouterr().out
    short = match.with_name("short.match")
    short.write_text("0\n")
    assert main(["bench", "classbench", str(rules), str(trace), "--match", str(short), "--engine", "fast"]) == 2
    assert "1 lines, but" in capsys.readouterr().err


@pytest.mark.parametrize("text, where, what", [
    ("@10.0.0.0/8\t1.2.3.4/32\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n@garbage\n", "line 2", "'@garbage'"),
    ("@10.0.0.300/8\t1.2.3.4/32\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n", "line 1", "10.0.0.300/8"),
    ("@10.0.0.0/33\t1.2.3.4/32\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n", "line 1", "10.0.0.0/33"),
    ("@10.0.0.0/8\t1.2.3.4/32\t0 : 65535\t90 : 80\t0x06/0xFF\t0x0000/0x0000\n", "line 1", "'90 : 80'"),
    ("@10.0.0.0/8\t1.2.3.4/32\t0 : 70000\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n", "line 1", "'0 : 70000'"),
    ("@10.0.0.0/8\t1.2.3.4/32\t0 : 65535\t80 : 80\t0x16/0x0F\t0x0000/0x0000\n", "line 1", "0x16/0x0F"),
    ("\n", "line 1", "''"),
])
def test_bad_rule_lines(tmp_path, text, where, what):
    path = tmp_path / "bad.rules"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        cb.load_rules(path)
    assert str(err.value).startswith(f"{path}: {where}: ") and what in str(err.value)


@pytest.mark.parametrize("text, where, what", [
    ("1\t2\t3\t4\t6\t0\t0\n1\t2\t3\t4\t6\t0\n", "line 2", "6 fields"),
    ("1\t2\t3\t4\t6\t0\t0\n1\t2\t3\t70000\t6\t0\t0\n", "line 2", "destination port '70000'"),
    ("1\t2\t3\t4\t6\t0\t0\n1\t2\t3\t4\tx6\t0\t0\n", "line 2", "protocol 'x6'"),
    ("4294967296\t2\t3\t4\t6\t0\t0\n", "line 1", "source address '4294967296'"),
    ("1\t2\t3\t4\t256\t0\t0\n", "line 1", "protocol '256'"),
    ("1\t2\t3\t4\t6\t0\t0\t1\n", "line 1", "8 fields"),
])
def test_bad_trace_lines(tmp_path, text, where, what):
    path = tmp_path / "bad.trace"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        cb.load_trace(path)
    assert str(err.value).startswith(f"{path}: {where}: ") and what in str(err.value)


def test_bad_match_lines_and_bad_files(tmp_path, capsys):
    path = tmp_path / "bad.match"
    path.write_text("0\n1\nseven\n")
    with pytest.raises(InputError, match=r"bad.match: line 3: 'seven' is not a filter index"):
        cb.load_matches(path)
    path.write_text("0\n-2\n")
    with pytest.raises(InputError, match="line 2: '-2'"):
        cb.load_matches(path)
    with pytest.raises(InputError, match="No such file"):
        cb.load_rules(tmp_path / "missing.rules")
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(gzip.compress(RULES.encode())[:-12])
    with pytest.raises(InputError, match="corrupt gzip"):
        cb.load_rules(corrupt)
    binary = tmp_path / "binary.rules"
    binary.write_bytes(b"@1.2.3.4/32\xff\n")
    with pytest.raises(InputError, match="line 1: byte 0xff is not ASCII"):
        cb.load_rules(binary)
    # the command line turns them into one error line and exit 2
    assert main(["bench", "classbench", str(binary), str(binary), "--engine", "fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgdp: error: ") and err.count("\n") == 1


def test_empty_files(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("")
    assert len(cb.load_rules(empty)) == 0
    assert len(cb.load_trace(empty).headers) == 0
    assert len(cb.load_matches(empty)) == 0


def test_match_file_tolerates_surrounding_spaces(tmp_path):
    path = tmp_path / "m.match"
    path.write_text("1 \r\n 2\n-1\n")
    assert cb.load_matches(path).tolist() == [1, 2, -1]


def test_bench_generate_writes_loadable_workloads(tmp_path):
    """`sgdp bench generate`: the topology and captures a user reruns the replay benchmark on."""
    from sgdp.cli import main
    from sgdp.topology import load_topology

    out = tmp_path / "w"
    assert main(["bench", "generate", "--out", str(out), "--instances", "30", "--packets", "500", "--flows", "40",
                 "--limits", "50"]) == 0
    topo = load_topology(out / "topology.yaml")
    assert len(topo.instances) == 30
    assert len(load_topology(out / "limits-50.yaml").instances) == 50
    for loc in ("generated", "uniform"):
        path = out / f"capture-{loc}.pcap"
        assert main(["replay", str(out / "topology.yaml"), str(path), "-o", str(tmp_path / loc), "--verdicts", "none",
                     "--no-progress"]) == 0
        assert json.loads((tmp_path / loc / "summary.json").read_text())["packets"] == 500
    assert main(["bench", "generate", "--out", str(out), "--flows", "0"]) == 2
