"""The HTML report (sgdp report, replay --html, diff --html): its figures checked against the hand-worked
verdicts of the bundled Figure 1 capture (pcaps/figure1.expected.csv), and its errors."""

from __future__ import annotations

import csv
import json
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

import sgdp
from sgdp.cli import main
from sgdp.report import bucket_width, diff_data, replay_data, stack_marks

ROOT = Path(__file__).resolve().parents[2]
TOPO = ROOT / "examples" / "figure1" / "topology.yaml"
PCAP = ROOT / "pcaps" / "figure1.pcap"
EXPECTED = ROOT / "pcaps" / "figure1.expected.csv"


def expected_rows() -> list[dict]:
    with open(EXPECTED, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def replayed(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    sgdp.replay(TOPO, [PCAP], str(out))
    return out


def test_bucket_width_is_a_nice_step():
    assert bucket_width(7.0) == 0.05  # 7 s in < 150 buckets: 50 ms
    assert bucket_width(2000.0) == 20.0
    assert bucket_width(0.0) == 0.001
    assert bucket_width(149.0) == 1.0 and bucket_width(150.0) == 2.0


def test_replay_data_matches_hand_worked_verdicts(replayed: Path):
    rows = expected_rows()
    data = replay_data(str(replayed))
    s = data["summary"]
    counts = Counter(r["verdict"] for r in rows)
    assert (s["packets"], s["allowed"], s["denied"], s["unmodelled"], s["malformed"]) == (
        17, counts["allow"], counts["deny"], counts["unmodelled"], counts["malformed"])
    # over time: the counts of every bucket, by verdict and by reason, from the expected file
    tv, tr = data["time_verdict"], data["time_reason"]
    assert tv["t0"] == 1700000000 and tv["width"] == 0.05
    want_v, want_r = Counter(), Counter()
    for r in rows:
        b = int(np.floor((float(r["ts"]) - tv["t0"]) / tv["width"]))
        want_v[b, r["verdict"]] += 1
        want_r[b, r["reason"]] += 1
    got_v = Counter({(b, data["verdicts"][k]): c for b, row in enumerate(tv["counts"]) for k, c in enumerate(row) if c})
    got_r = Counter({(b, data["reasons"][k]): c for b, row in enumerate(tr["counts"]) for k, c in enumerate(row) if c})
    assert got_v == want_v and got_r == want_r
    # per instance and direction
    inst = Counter((r["instance"], r["direction"], r["verdict"]) for r in rows)
    got = Counter()
    for r in data["instances"]:
        for v in ("allow", "deny", "unmodelled", "malformed"):
            if r[v]:
                got[r["instance"], r["direction"], v] = r[v]
    assert got == inst
    # talkers: 198.51.100.7 pings once (allowed), then tries SSH twice and RDP once (denied)
    talkers = {t["src"]: (t["packets"], t["denied"]) for t in data["talkers"]}
    assert talkers["198.51.100.7"] == (4, 3)
    assert sum(p for p, _ in talkers.values()) == 15  # all but the non-IP and the malformed frame
    denied = {f["flow"]: f for f in data["denied_flows"]}
    assert denied["tcp 198.51.100.7:51001 -> 192.168.0.10:3389"]["first_deny"]["rule"] == "A03"
    ssh = denied["tcp 198.51.100.7:51000 -> 192.168.0.10:22"]
    assert ssh["denied"] == 2 and ssh["first_deny"]["reason"] == "default" and ssh["first_deny"]["rule"] == ""
    # rules: every rule of Sg-A, hits as summary.json counts them, in evaluation order (deny first)
    groups = {g["name"]: g for g in data["groups"]}
    topo = yaml.safe_load(TOPO.read_text())
    assert [r["rule"] for r in groups["Sg-A"]["rules"]] == ["A03", "A01", "A02"]
    assert len(groups["Sg-A"]["rules"]) == len(topo["security_groups"][0]["rules"])
    decided = Counter(r["rule"] for r in rows if r["rule"])
    assert {r["rule"]: r["hits"] for r in groups["Sg-A"]["rules"]} == dict(decided)


def pcap_wirelens(path: Path) -> list[int]:
    """The original length of every record, from the pcap record headers (not through sgdp's reader)."""
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian, microseconds (as make_pcaps.py writes it)
    out, at = [], 24
    while at < len(data):
        _, _, incl, orig = struct.unpack_from("<IIII", data, at)
        out.append(orig)
        at += 16 + incl
    return out


@pytest.mark.parametrize("batch_size", [65536, 3])
def test_talker_and_flow_bytes_from_the_capture(replayed: Path, monkeypatch, batch_size: int):
    """Bytes are the frames' wire lengths; with small batches a source's and a flow's packets are
    summed across batches. Who sent what: pcaps/make_pcaps.py, figure1()."""
    import sgdp.report.data as data_module
    from sgdp.capture import read_batches

    monkeypatch.setattr(data_module, "read_batches", lambda paths, _size: read_batches(paths, batch_size))
    wl = pcap_wirelens(PCAP)
    assert len(wl) == 17
    client, ecs, web, dns = "198.51.100.7", "192.168.0.10", "93.184.216.34", "100.125.1.250"
    sent = {client: [1, 3, 4, 5], ecs: [2, 6, 8, 9, 11, 13, 14], web: [7, 10, 12], dns: [15]}  # 0: ARP, 16: cut
    data = replay_data(str(replayed))
    assert data["source_count"] == 4
    got = {t["src"]: (t["packets"], t["bytes"], t["denied"]) for t in data["talkers"]}
    denied = {client: 3}  # the two SSH SYNs (default) and the RDP SYN (A03)
    assert got == {s: (len(k), sum(wl[i] for i in k), denied.get(s, 0)) for s, k in sent.items()}
    assert [t["src"] for t in data["talkers"]] == [ecs, client, web, dns]  # most packets first: 7, 4, 3, 1
    flows = {f["flow"]: (f["packets"], f["bytes"]) for f in data["flows"]}
    assert flows == {
        "icmp 198.51.100.7 -> 192.168.0.10 id 7": (2, wl[1] + wl[2]),
        "tcp 198.51.100.7:51000 -> 192.168.0.10:22": (2, wl[3] + wl[4]),
        "tcp 198.51.100.7:51001 -> 192.168.0.10:3389": (1, wl[5]),
        "tcp 192.168.0.10:40000 -> 93.184.216.34:443": (8, sum(wl[6:14])),
        "udp 192.168.0.10:53000 -> 100.125.1.250:53": (2, wl[14] + wl[15]),
    }
    assert data["flow_count"] == 5
    assert [f["flow"] for f in data["flows"]][0] == "tcp 192.168.0.10:40000 -> 93.184.216.34:443"


def test_never_hit_and_check_findings_are_flagged(tmp_path: Path):
    topo = yaml.safe_load(TOPO.read_text())
    rules = topo["security_groups"][0]["rules"]
    rules.append({"id": "A04", "direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "10.0.0.0/8"})  # under A01
    rules.append({"id": "A05", "direction": "ingress", "protocol": "tcp", "multiport": "80", "enabled": False})
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(topo))
    sgdp.replay(path, [PCAP], str(tmp_path / "out"))
    rows = {r["rule"]: r for r in replay_data(str(tmp_path / "out"))["groups"][0]["rules"]}
    assert rows["A04"]["hits"] == 0 and rows["A04"]["findings"] == ["shadowed"]
    assert rows["A05"]["findings"] == ["not effective (disabled)"]
    assert rows["A01"]["findings"] == [] and rows["A01"]["hits"] == 1
    html = (Path(sgdp.write_report(tmp_path / "out"))).read_text()
    assert "never hit" in html and "shadowed" in html and "not effective (disabled)" in html
    no_check = replay_data(str(tmp_path / "out"), findings=False)
    assert all(not r["findings"] for r in no_check["groups"][0]["rules"])
    assert any("check was not run" in n for n in no_check["notes"])


def test_report_is_self_contained(replayed: Path, tmp_path: Path):
    assert main(["report", str(replayed), "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in html
    # nothing to fetch: no src/href but in-page anchors, no url(), no @import
    assert not re.search(r"""\b(src|href)\s*=\s*["'](?!#)""", html)
    assert "url(" not in html and "@import" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    payload = re.search(r'<script type="application/json" id="sgdp-data">(.*?)</script>', html, re.S).group(1)
    charts = json.loads(payload)["charts"]
    assert [c["id"] for c in charts] == ["chart-verdict", "chart-reason", "chart-talkers"]


def test_replay_html_and_findings_file(tmp_path: Path, capsys):
    out, page = tmp_path / "out", tmp_path / "page.html"
    assert main(["replay", str(TOPO), str(PCAP), "-o", str(out), "--html", str(page), "--no-progress"]) == 0
    assert page.is_file() and "report " + str(page) in capsys.readouterr().out
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps({"findings": [{"kind": "shadowed", "security_group": "Sg-A", "rule": "A02",
                                                  "instance": None, "why": None, "message": "x"}]}))
    assert main(["report", str(out), "--findings", str(findings)]) == 0
    assert "shadowed" in (out / "report.html").read_text()


def test_report_finds_moved_inputs_through_options(replayed: Path, tmp_path: Path):
    summary = json.loads((replayed / "summary.json").read_text())
    assert summary["topology"] == str(TOPO) and summary["captures"] == [str(PCAP)]
    summary["captures"] = [str(tmp_path / "gone.pcap")]
    summary["topology"] = str(tmp_path / "gone.yaml")
    (replayed / "summary.json").write_text(json.dumps(summary))
    data = replay_data(str(replayed))
    assert "talkers" not in data and len(data["notes"]) == 2
    assert data["groups"] and all(g["name"] == "Sg-A" for g in data["groups"])  # the rules that were hit
    data = replay_data(str(replayed), str(TOPO), [str(PCAP)])
    assert data["notes"] == [] and len(data["talkers"]) == 4


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_every_verdict_format_gives_the_same_report(tmp_path: Path, replayed: Path, fmt: str):
    pytest.importorskip("pyarrow")
    sgdp.replay(TOPO, [PCAP], str(tmp_path / fmt), fmt)
    a, b = replay_data(str(replayed)), replay_data(str(tmp_path / fmt))
    for d in (a, b):
        d["summary"].pop("elapsed_s"), d["summary"].pop("packets_per_s")
    for k in ("summary", "time_verdict", "time_reason", "instances", "groups", "talkers", "denied_flows"):
        assert a[k] == b[k], k


def test_report_without_pyarrow_is_the_same(replayed: Path):
    code = ("import sys, json; sys.modules['pyarrow'] = None; sys.modules['pandas'] = None\n"
            "from sgdp.report import replay_data\n"
            f"d = replay_data({str(replayed)!r})\n"
            "print(json.dumps({k: d[k] for k in ('time_verdict', 'time_reason', 'instances', 'groups', 'talkers')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    d = replay_data(str(replayed))
    assert json.loads(out) == json.loads(json.dumps({k: d[k] for k in ("time_verdict", "time_reason", "instances",
                                                                       "groups", "talkers")}))


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sgdp: error: ") and "Traceback" not in err
    return err


def test_report_errors(tmp_path: Path, replayed: Path, capsys):
    assert "no such directory" in _error(["report", str(tmp_path / "nope")], capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "summary.json: no such file" in _error(["report", str(empty)], capsys)
    no_verdicts = tmp_path / "nv"
    assert main(["replay", str(TOPO), str(PCAP), "-o", str(no_verdicts), "--verdicts", "none", "--no-progress"]) == 0
    assert "no verdict file" in _error(["report", str(no_verdicts)], capsys)
    assert "--html needs a verdict file" in _error(
        ["replay", str(TOPO), str(PCAP), "-o", str(no_verdicts), "--verdicts", "none", "--html", str(tmp_path / "x.html")], capsys)
    bad = tmp_path / "bad"
    shutil.copytree(replayed, bad)
    text = (bad / "verdicts.csv").read_text().replace(",deny,", ",maybe,", 1)
    (bad / "verdicts.csv").write_text(text)
    assert "verdict 'maybe' is not one of" in _error(["report", str(bad)], capsys)
    good = (replayed / "verdicts.csv").read_text()
    (bad / "verdicts.csv").write_text("\n".join(good.splitlines()[:5]) + "\n")
    assert "4 rows, but" in _error(["report", str(bad)], capsys)
    assert "no such capture file" in _error(["report", str(replayed), "--capture", str(tmp_path / "x.pcap")], capsys)
    assert f"{tmp_path / 'no' / 'r.html'}: cannot write: No such file or directory" in \
        _error(["report", str(replayed), "-o", str(tmp_path / "no" / "r.html")], capsys)
    assert "exclude each other" in _error(["report", str(replayed), "--no-check", "--findings", "f.json"], capsys)
    (tmp_path / "f.json").write_text("[1]")
    assert "not the output of sgdp check --json" in _error(["report", str(replayed), "--findings", str(tmp_path / "f.json")], capsys)


def changed_topology(tmp_path: Path) -> Path:
    """Figure 1 with A01 (ping from anywhere) turned into a deny."""
    topo = yaml.safe_load(TOPO.read_text())
    topo["security_groups"][0]["rules"][0]["action"] = "deny"
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(topo))
    return path


def test_diff_report(tmp_path: Path, capsys):
    new = changed_topology(tmp_path)
    page = tmp_path / "diff.html"
    assert main(["diff", str(TOPO), str(new), str(PCAP), "--html", str(page)]) == 0
    assert page.is_file()
    result = sgdp.diff(TOPO, new, [PCAP])
    data = diff_data(result.result, str(TOPO), str(new))
    # the ping (packet 1, allowed by A01) is now denied; its reply (packet 2) leaves ECS-A01, where
    # A02 still allows all outbound traffic
    assert data["transitions"][:1] == ["allow → deny"] and data["changed_series"] == 1
    changed = sum(row[0] for row in data["time_changes"]["counts"])
    assert changed == data["summary"]["changed_packets"] == 1
    assert sum(sum(row) for row in data["time_changes"]["counts"]) == 17
    assert [c["flow"] for c in data["changed"]] == ["icmp 198.51.100.7 -> 192.168.0.10 id 7"]
    html = page.read_text()
    assert "icmp 198.51.100.7 -&gt; 192.168.0.10 id 7" in html


def test_stack_marks_counts_nonzero_cells():
    assert stack_marks({"counts": [[1, 0, 2], [0, 0, 0], [5, 1, 1]]}) == 5


def test_top_talkers_sum_batches_and_break_ties_by_address():
    from sgdp.report.data import _top_talkers

    a, b, c = 0x0A000001, 0x0A000002, 0x0A000003  # 10.0.0.1, .2, .3
    u64 = lambda *v: np.array(v, np.uint64)  # noqa: E731
    batch1 = (np.array([4, 4], np.uint8), u64(0, 0), u64(c, a), np.array([2, 1]), np.array([200.0, 60.0]), np.array([0.0, 1.0]))
    batch2 = (np.array([4, 4], np.uint8), u64(0, 0), u64(b, a), np.array([3, 1]), np.array([90.0, 40.0]), np.array([3.0, 0.0]))
    rows, count = _top_talkers([batch1, batch2])
    assert count == 3
    # 10.0.0.2 sent 3; 10.0.0.1 (1 + 1) and 10.0.0.3 (2) tie at 2, the lower address first
    assert [(r["src"], r["packets"], r["bytes"], r["denied"], r["allowed"]) for r in rows] == [
        ("10.0.0.2", 3, 90, 3, 0), ("10.0.0.1", 2, 100, 1, 1), ("10.0.0.3", 2, 200, 0, 2)]
    assert _top_talkers([]) == ([], 0)


# ------------------------------------------------ a long replay, read and aggregated in pieces


@pytest.fixture(scope="module")
def long_replay(tmp_path_factory) -> Path:
    """A generated topology and 30,000 packets (IPv4 and IPv6, every verdict), replayed."""
    from sgdp.capture import generated_topology, generated_traffic, write_pcap

    d = tmp_path_factory.mktemp("long")
    topo = generated_topology(seed=3, instances=12)
    (d / "topology.json").write_text(json.dumps(topo))
    write_pcap(str(d / "c.pcap"), generated_traffic(topo, 30_000, 400))
    sgdp.replay(str(d / "topology.json"), [str(d / "c.pcap")], str(d / "out"))
    return d


def test_report_html_does_not_depend_on_the_pieces(long_replay: Path, tmp_path: Path, monkeypatch):
    """The verdict file is read in blocks, the rows aggregated in chunks and the captures read in
    batches: with pieces of any size (here tiny, cutting records, chunks and batches anywhere) the
    HTML is the same, byte for byte."""
    from sgdp.report import data as report_data

    out = str(long_replay / "out")
    assert main(["report", out, "-o", str(tmp_path / "a.html"), "--no-check"]) == 0
    monkeypatch.setattr(report_data, "BLOCK_BYTES", 4093)
    monkeypatch.setattr(report_data, "CHUNK_ROWS", 997)
    monkeypatch.setattr(report_data, "TRAFFIC_BATCH", 611)
    assert main(["report", out, "-o", str(tmp_path / "b.html"), "--no-check"]) == 0
    a, b = (tmp_path / "a.html").read_bytes(), (tmp_path / "b.html").read_bytes()
    assert a == b and len(a) > 10_000
    data = replay_data(out, findings=False)
    assert data["summary"]["packets"] == 30_000 and len(data["talkers"]) > 3


def test_verdict_file_blocks_cut_only_between_records(tmp_path: Path, monkeypatch):
    """Names with commas, quotes and newlines (quoted in the CSV) are never cut by a block end: the
    block reader gives what the plain csv reader does."""
    from sgdp.report import data as report_data

    names = ["a,b", 'say "hi"', "two\nlines", "plain", '"', ""]
    path = tmp_path / "verdicts.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "ts", "verdict", "reason", "instance", "direction", "security_group", "rule"])
        for i in range(500):
            w.writerow([i, f"{1700000000 + i / 7:.9f}", "allow", "rule", names[i % 6], "ingress", names[(i + 1) % 6],
                        names[(i + 2) % 6] or "r"])
    plain = report_data._read_plain(str(path))
    for block in (7, 64, 1000, 1 << 20):
        monkeypatch.setattr(report_data, "BLOCK_BYTES", block)
        got = report_data._read_arrow(str(path))
        assert got.ts.tolist() == plain.ts.tolist() and got.names == plain.names
        for k in report_data.NAME_COLUMNS:
            assert got.codes[k].tolist() == plain.codes[k].tolist(), (block, k)


def test_plain_reader_in_chunks_is_the_arrow_reader(long_replay: Path, monkeypatch):
    """Without pyarrow the rows are moved into arrays every CHUNK_ROWS rows: the same columns."""
    from sgdp.report import data as report_data

    path = str(long_replay / "out" / "verdicts.csv")
    whole = report_data._read_arrow(path)
    monkeypatch.setattr(report_data, "CHUNK_ROWS", 1009)
    plain = report_data._read_plain(path)
    assert plain.ts.tolist() == whole.ts.tolist() and plain.names == whole.names
    for k in report_data.NAME_COLUMNS:
        assert plain.codes[k].tolist() == whole.codes[k].tolist(), k


def test_a_summary_shadowed_finding_shows_its_count():
    """A summary finding of check (no instance, shadowed on many of its group's instances) shows
    as one badge with its count; a finding without one stays plain "shadowed"."""
    from sgdp.report.data import rule_tables
    from sgdp.topology import load_topology

    topo = load_topology(TOPO)
    group = next(iter(topo.security_groups.values()))
    first, second = group.rules[0], group.rules[1]
    message = f"rule {first.id} of {group.name} can never match on 1,234 of the 1,300 instances bound to it: ..."
    findings = [{"kind": "shadowed", "security_group": group.name, "rule": first.id, "instance": None, "why": None,
                 "message": message},
                {"kind": "shadowed", "security_group": group.name, "rule": second.id, "instance": None, "why": None,
                 "message": "can never match: ..."}]
    rows = {r["rule"]: r for r in rule_tables([], topo, check_findings=findings)[0]["rules"]}
    assert rows[first.id]["findings"] == ["shadowed on 1,234 of the 1,300 instances"]
    assert rows[second.id]["findings"] == ["shadowed"]
