"""`capture:` steps in scenario files (SPEC §6; docs/semantics.md "Scenario files").

Captures are built byte by byte here (raw IPv4 frames, written by ``sgdp.craft.write_pcap``, which
needs no scapy for bytes), so these tests run without scapy. Every test runs on every engine.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import yaml

from sgdp.cli import main
from sgdp.capture.craft import write_pcap
from sgdp.errors import ConfigError
from sgdp.testing.scenario import CaptureFailure, CaptureStep, StepFailure, load_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[2]
T = 1_700_000_000.0

TOPOLOGY = {
    "version": 1,
    "vpcs": [{"name": "VPC-X", "cidr": "10.0.0.0/16", "subnets": [{"name": "Subnet-A", "cidr": "10.0.0.0/24"}]}],
    "private_networks": [{"name": "office", "cidr": "172.16.0.0/24", "vpcs": ["VPC-X"]}],
    "security_groups": [{"name": "Sg-Web", "rules": [
        {"id": "ssh", "direction": "ingress", "protocol": "tcp", "multiport": "22", "remote_ip_prefix": "172.16.0.0/24"},
        {"id": "out", "direction": "egress", "remote_ip_prefix": "0.0.0.0/0"},
    ]}],
    "instances": [{"name": "web", "flavor": "s6.large.2", "subnet": "Subnet-A", "ip": "10.0.0.10", "security_groups": ["Sg-Web"]}],
}
OFFICE, WEB = "172.16.0.5", "10.0.0.10"
S, SA, A = 0x02, 0x12, 0x10


# ------------------------------------------------------------------------------------ raw frames

def _ip(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def ip4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, frag: int = 0, mf: int = 0) -> bytes:
    fo = (mf << 13) | frag
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, fo, 64, proto, 0, _ip(src), _ip(dst)) + payload


def tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    return ip4(src, dst, 6, struct.pack("!HHIIHHHH", sport, dport, 1, 0, (5 << 12) | flags, 1024, 0, 0))


def udp(src: str, dst: str, sport: int, dport: int) -> bytes:
    return ip4(src, dst, 17, struct.pack("!HHHH", sport, dport, 12, 0) + b"data")


def write_raw(path: Path, frames: list[tuple[float, bytes]]) -> Path:
    write_pcap(str(path), frames, linktype=101)
    return path


def write_scenario(tmp_path: Path, steps: list[dict], name: str = "s.sgdp.yaml") -> Path:
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(TOPOLOGY))
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "capture steps", "topology": "topology.yaml", "steps": steps}, sort_keys=False))
    return path


def run(path: Path, engine_name: str):
    return run_scenario(load_scenario(str(path)), engine_name)


# Three packets: office SSH allowed by `ssh`, web's SYN-ACK established, office MySQL default deny.
MIXED = [
    (T, tcp(OFFICE, WEB, 50000, 22, S)),
    (T + 0.01, tcp(WEB, OFFICE, 22, 50000, SA)),
    (T + 1, tcp(OFFICE, WEB, 50001, 3306, S)),
]
MIXED_ROWS = [
    ("allow", "rule", "web", "ingress", "Sg-Web", "ssh"),
    ("allow", "established", "web", "egress", "", ""),
    ("deny", "default", "web", "ingress", "", ""),
]


def write_csv(path: Path, rows, start: int = 0) -> Path:
    lines = ["index,ts,verdict,reason,instance,direction,security_group,rule"]
    lines += [f"{start + i},0.0,{','.join(r)}" for i, r in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------ expectations

def test_expect_applies_to_every_packet(tmp_path, engine_name):
    """§6: `expect: deny` (or a mapping) is checked against every packet of the capture."""
    write_raw(tmp_path / "denied.pcap", [(T, tcp(OFFICE, WEB, 50001, 3306, S)), (T + 1, tcp(OFFICE, WEB, 50002, 3389, S)),
                                         (T + 2, udp(OFFICE, WEB, 5000, 53))])
    path = write_scenario(tmp_path, [
        {"capture": "denied.pcap", "expect": "deny"},
        {"capture": "denied.pcap", "expect": {"verdict": "deny", "reason": "default", "instance": "web",
                                              "direction": "ingress", "rule": None}},
    ])
    scenario = load_scenario(str(path))
    assert [type(s) for s in scenario.steps] == [CaptureStep, CaptureStep]
    assert scenario.steps[0].packets == 3 and scenario.steps[0].last_ts == T + 2
    assert run_scenario(scenario, engine_name).passed


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_expect_verdict_file(tmp_path, engine_name, fmt):
    """§6: `{verdicts: FILE}` compares row by row (csv, jsonl, parquet); ts is not compared."""
    write_raw(tmp_path / "mixed.pcap", MIXED)
    cols = ("verdict", "reason", "instance", "direction", "security_group", "rule")
    if fmt == "csv":
        write_csv(tmp_path / "exp.csv", MIXED_ROWS)
    elif fmt == "jsonl":
        (tmp_path / "exp.jsonl").write_text("".join(
            json.dumps({"index": i, "ts": 123.0, **dict(zip(cols, r))}) + "\n" for i, r in enumerate(MIXED_ROWS)))
    else:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        table = {"index": list(range(3)), "ts": [0.0] * 3, **{c: [r[k] for r in MIXED_ROWS] for k, c in enumerate(cols)}}
        pq.write_table(pa.table(table), tmp_path / "exp.parquet")
    path = write_scenario(tmp_path, [{"capture": "mixed.pcap", "expect": {"verdicts": f"exp.{fmt}"}}])
    assert run(path, engine_name).passed


def test_paths_are_relative_to_the_scenario_file(tmp_path, engine_name, monkeypatch):
    sub = tmp_path / "traffic"
    sub.mkdir()
    write_raw(sub / "mixed.pcap", MIXED)
    write_csv(sub / "mixed.expected.csv", MIXED_ROWS)
    path = write_scenario(tmp_path, [{"capture": "traffic/mixed.pcap", "expect": {"verdicts": "traffic/mixed.expected.csv"}}])
    monkeypatch.chdir(sub)  # the working directory does not matter
    assert run(path, engine_name).passed


# ------------------------------------------------------------------------------------ failures

def test_failure_reports_index_expected_actual_and_trace(tmp_path, engine_name):
    """A failing capture step names each differing packet by its index in the capture, with the
    expected and actual columns, and shows the reference engine's trace of the first one."""
    write_raw(tmp_path / "mixed.pcap", MIXED)
    path = write_scenario(tmp_path, [{"capture": "mixed.pcap", "expect": {"verdict": "allow", "reason": "rule"}, "name": "all by rule"}])
    result = run(path, engine_name)
    assert not result.passed
    (failure,) = result.failures
    assert isinstance(failure, CaptureFailure)
    assert failure.count == 2 and [m.index for m in failure.mismatches] == [1, 2]
    text = failure.describe()
    assert "step 1 (steps[0]): all by rule" in text
    assert "mixed.pcap (3 packets)" in text
    assert "2 packet(s) differ" in text
    assert f"packet 1: t=1700000000.01 tcp {WEB}:22 -> {OFFICE}:50000 flags=SA" in text
    assert "expected: verdict=allow, reason=rule" in text
    assert "actual:   verdict=allow, reason=established" in text
    assert "actual:   verdict=deny, reason=default" in text
    trace = text.split("trace of packet 1:")[1]
    assert "egress at web: established (connection tracking)" in trace


def test_failure_trace_shows_rules_tried(tmp_path, engine_name):
    write_raw(tmp_path / "mysql.pcap", [(T, tcp(OFFICE, WEB, 50001, 3306, S))])
    path = write_scenario(tmp_path, [{"capture": "mysql.pcap", "expect": "allow"}])
    text = run(path, engine_name).failures[0].describe()
    assert "trace of packet 0:" in text
    assert "Sg-Web/ssh allow: no match" in text
    assert "=> denied by default (no rule matched)" in text


def test_verdict_file_differences(tmp_path, engine_name):
    write_raw(tmp_path / "mixed.pcap", MIXED)
    rows = list(MIXED_ROWS)
    rows[2] = ("deny", "rule", "web", "ingress", "Sg-Web", "no-mysql")
    write_csv(tmp_path / "exp.csv", rows)
    path = write_scenario(tmp_path, [{"capture": "mixed.pcap", "expect": {"verdicts": "exp.csv"}}])
    (failure,) = run(path, engine_name).failures
    assert failure.count == 1
    text = failure.describe()
    assert "packet 2: " in text
    assert "expected: verdict=deny, reason=rule, instance=web, direction=ingress, security_group=Sg-Web, rule=no-mysql" in text
    assert "actual:   verdict=deny, reason=default, instance=web, direction=ingress, security_group=(empty), rule=(empty)" in text


@pytest.mark.parametrize("kind", ["fewer", "more", "index"])
def test_verdict_file_row_count_and_index(tmp_path, engine_name, kind):
    write_raw(tmp_path / "mixed.pcap", MIXED)
    if kind == "fewer":
        write_csv(tmp_path / "exp.csv", MIXED_ROWS[:2])
        note = "the verdict file has no row for this packet"
    elif kind == "more":
        write_csv(tmp_path / "exp.csv", MIXED_ROWS + MIXED_ROWS[2:])
        note = "the verdict file has 1 more row(s) than the 3 packet(s) of the capture"
    else:
        write_csv(tmp_path / "exp.csv", MIXED_ROWS, start=5)
        note = "the verdict file's row here has index 5"
    path = write_scenario(tmp_path, [{"capture": "mixed.pcap", "expect": {"verdicts": "exp.csv"}}])
    (failure,) = run(path, engine_name).failures
    assert note in failure.describe()


def test_empty_capture(tmp_path, engine_name):
    """A per-packet expectation on a capture without packets checks nothing: it fails; a verdict
    file without rows matches it."""
    write_raw(tmp_path / "empty.pcap", [])
    write_csv(tmp_path / "empty.csv", [])
    path = write_scenario(tmp_path, [{"capture": "empty.pcap", "expect": "allow"}])
    (failure,) = run(path, engine_name).failures
    assert "the capture holds no packets" in failure.describe()
    path = write_scenario(tmp_path, [{"capture": "empty.pcap", "expect": {"verdicts": "empty.csv"}}])
    assert run(path, engine_name).passed


def test_non_ip_and_malformed_rows(tmp_path, engine_name):
    """S15 rows in a capture step: a non-IP frame is unmodelled, a frame cut by the snap length
    malformed; both are compared and described."""
    arp = bytes.fromhex("ffffffffffff020000000001") + b"\x08\x06" + bytes(28)
    cut = b"\x00" * 12 + b"\x08\x00" + tcp(OFFICE, WEB, 50000, 22, S)
    write_pcap(str(tmp_path / "odd.pcap"), [(T, arp), (T + 1, cut[:20], len(cut)), (T + 2, cut)], linktype=1)
    write_csv(tmp_path / "odd.csv", [("unmodelled", "unmodelled", "", "", "", ""), ("malformed", "malformed", "", "", "", ""),
                                     ("allow", "rule", "web", "ingress", "Sg-Web", "ssh")])
    path = write_scenario(tmp_path, [{"capture": "odd.pcap", "expect": {"verdicts": "odd.csv"}}])
    assert run(path, engine_name).passed
    path = write_scenario(tmp_path, [{"capture": "odd.pcap", "expect": "deny"}])
    text = run(path, engine_name).failures[0].describe()
    assert "packet 0: t=1700000000 non-IP frame" in text
    assert "packet 1: t=1700000001 malformed frame" in text
    assert "(no trace: the frame is not IP, nothing was evaluated)" in text


# ------------------------------------------------------------------------------------ time and state

def test_state_flows_between_packet_and_capture_steps(tmp_path, engine_name):
    """Captures run through the same stateful dataplane as the packet steps around them: a SYN in a
    packet step, its SYN-ACK in the capture, the ACK in a later packet step without `time` (which
    takes the capture's latest timestamp)."""
    write_raw(tmp_path / "reply.pcap", [(T, tcp(WEB, OFFICE, 22, 50000, SA))])
    path = write_scenario(tmp_path, [
        {"packet": {"src": OFFICE, "dst": WEB, "sport": 50000, "dport": 22, "time": T - 0.5},
         "expect": {"verdict": "allow", "reason": "rule", "rule": "ssh"}},
        {"capture": "reply.pcap", "expect": {"verdict": "allow", "reason": "established", "direction": "egress"}},
        {"packet": {"src": OFFICE, "dst": WEB, "sport": 50000, "dport": 22, "flags": "A"},
         "expect": {"verdict": "allow", "reason": "established", "direction": "ingress"}},
    ])
    scenario = load_scenario(str(path))
    assert scenario.steps[2].packet.ts == T
    result = run_scenario(scenario, engine_name)
    assert result.passed, "\n".join(f.describe() for f in result.failures)


def test_packet_steps_at_small_times_expire_before_a_dated_capture(tmp_path, engine_name):
    """Time continues: a connection opened by a step at time 0 has expired (600 s) by a capture
    stamped 1700000000, so the capture's mid-stream ACK is evaluated as new (loose pickup, S11)."""
    write_raw(tmp_path / "ack.pcap", [(T, tcp(OFFICE, WEB, 50000, 22, A))])
    path = write_scenario(tmp_path, [
        {"packet": {"src": OFFICE, "dst": WEB, "sport": 50000, "dport": 22}, "expect": "allow"},
        {"capture": "ack.pcap", "expect": {"verdict": "allow", "reason": "rule", "rule": "ssh"}},
    ])
    assert run(path, engine_name).passed


def test_capture_stamped_before_the_clock_runs_at_the_clock(tmp_path, engine_name):
    """The dataplane clock never goes back: a capture stamped before the previous step is processed
    at that step's time, so the entry it opened is still alive (docs/semantics.md)."""
    write_raw(tmp_path / "early.pcap", [(T - 3600, tcp(WEB, OFFICE, 22, 50000, SA))])
    path = write_scenario(tmp_path, [
        {"packet": {"src": OFFICE, "dst": WEB, "sport": 50000, "dport": 22, "time": T}, "expect": "allow"},
        {"capture": "early.pcap", "expect": {"reason": "established"}},
        {"packet": {"src": OFFICE, "dst": WEB, "sport": 50000, "dport": 22, "flags": "A"}, "expect": {"reason": "established"}},
    ])
    scenario = load_scenario(str(path))
    assert scenario.steps[2].packet.ts == T - 3600  # the capture's latest timestamp ...
    assert run_scenario(scenario, engine_name).passed  # ... processed at the clock T


def test_packet_and_capture_failures_together(tmp_path, engine_name):
    write_raw(tmp_path / "mixed.pcap", MIXED)
    path = write_scenario(tmp_path, [
        {"packet": {"src": OFFICE, "dst": WEB, "dport": 3306, "time": T - 10}, "expect": "allow"},
        {"capture": "mixed.pcap", "expect": "allow"},
    ])
    result = run(path, engine_name)
    assert [type(f) for f in result.failures] == [StepFailure, CaptureFailure]


# ------------------------------------------------------------------------------------ bad input

def test_not_a_capture_is_a_load_error(tmp_path):
    (tmp_path / "notes.pcap").write_text("these are my notes, not a capture\n")
    path = write_scenario(tmp_path, [{"capture": "notes.pcap", "expect": "allow"}])
    with pytest.raises(ConfigError) as exc:
        load_scenario(str(path))
    text = str(exc.value)
    assert text.startswith(f"{path}: steps[0].capture: {tmp_path / 'notes.pcap'}: byte offset 0: not a pcap or pcapng capture")


def test_corrupt_capture_names_the_byte_offset(tmp_path, capsys):
    """A capture corrupt before its end: `sgdp test` prints one `sgdp: error:` line naming the
    scenario, the step, the file and the byte offset, and exits 2."""
    write_raw(tmp_path / "mixed.pcap", MIXED)
    data = bytearray((tmp_path / "mixed.pcap").read_bytes())
    second = 24 + 16 + len(MIXED[0][1])  # the second record's header
    data[second + 8:second + 12] = struct.pack("<I", 10_000_000)
    (tmp_path / "mixed.pcap").write_bytes(bytes(data))
    path = write_scenario(tmp_path, [{"capture": "mixed.pcap", "expect": "allow"}])
    assert main(["test", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    # the offset of the bad field: the record's captured-length word
    assert err[0].startswith(f"sgdp: error: {path}: steps[0].capture: {tmp_path / 'mixed.pcap'}: byte offset {second + 8}: ")
    assert "corrupt capture" in err[0]


def test_capture_cut_at_its_end_is_not_an_error(tmp_path, engine_name):
    """S15: a last record cut short by the end of the file is a malformed row, not an error."""
    write_raw(tmp_path / "mixed.pcap", MIXED)
    data = (tmp_path / "mixed.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[:-10])
    write_csv(tmp_path / "cut.csv", MIXED_ROWS[:2] + [("malformed", "malformed", "", "", "", "")])
    path = write_scenario(tmp_path, [{"capture": "cut.pcap", "expect": {"verdicts": "cut.csv"}}])
    assert run(path, engine_name).passed


@pytest.mark.parametrize("step, message", [
    ({"capture": "missing.pcap", "expect": "allow"}, "steps[0].capture: {tmp}/missing.pcap: no such capture file"),
    ({"capture": "mixed.pcap", "expect": {"verdicts": "missing.csv"}}, "steps[0].expect.verdicts: {tmp}/missing.csv: no such verdict file"),
    ({"capture": "mixed.pcap", "expect": {"verdicts": "bad.csv"}}, "steps[0].expect.verdicts: {tmp}/bad.csv: line 2: verdict 'maybe'"),
    ({"capture": "mixed.pcap", "expect": {"verdicts": "mixed.csv", "rule": "ssh"}}, "steps[0].expect.rule: `verdicts`"),
    ({"capture": "mixed.pcap", "expect": {"verdict": "perhaps"}}, "steps[0].expect.verdict: 'perhaps' is not a verdict"),
    ({"capture": 7, "expect": "allow"}, "steps[0].capture: expected the path of a pcap or pcapng file, got 7"),
    ({"capture": "mixed.pcap", "packet": {"src": OFFICE, "dst": WEB, "dport": 22}, "expect": "allow"},
     "steps[0]: a step has either `packet` or `capture`, not both"),
    ({"capture": "mixed.pcap"}, "steps[0]: a step has `packet` (or `capture`) and `expect`"),
    ({"capture": "mixed.pcap", "expect": "allow", "verdicts": "x"}, "steps[0].verdicts: unknown key 'verdicts'"),
])
def test_invalid_capture_steps(tmp_path, step, message):
    write_raw(tmp_path / "mixed.pcap", MIXED)
    write_csv(tmp_path / "mixed.csv", MIXED_ROWS)
    (tmp_path / "bad.csv").write_text("index,ts,verdict,reason,instance,direction,security_group,rule\n0,0,maybe,rule,,,,\n")
    path = write_scenario(tmp_path, [step])
    with pytest.raises(ConfigError) as exc:
        load_scenario(str(path))
    assert message.format(tmp=tmp_path) in str(exc.value)


# ------------------------------------------------------------------------------------ command line, bundled

def test_sgdp_test_runs_capture_steps(tmp_path, capsys):
    write_raw(tmp_path / "mixed.pcap", MIXED)
    write_csv(tmp_path / "mixed.csv", MIXED_ROWS)
    good = write_scenario(tmp_path, [{"capture": "mixed.pcap", "expect": {"verdicts": "mixed.csv"}}], "good.sgdp.yaml")
    assert main(["test", str(good)]) == 0
    assert "PASS" in capsys.readouterr().out
    bad = write_scenario(tmp_path, [{"capture": "mixed.pcap", "expect": "deny"}], "bad.sgdp.yaml")
    assert main(["test", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "packet 0:" in out and "trace of packet 0:" in out


@pytest.mark.parametrize("scenario, captures", [
    ("examples/figure1/figure1.sgdp.yaml", ["figure1.pcap"]),
    ("examples/figure2/figure2.sgdp.yaml", ["figure2.pcap", "fragments.pcap"]),
    ("examples/lb/lb.sgdp.yaml", ["lb.pcap"]),
])
def test_bundled_captures(engine_name, scenario, captures):
    """The example scenarios replay the bundled captures against their hand-worked verdict files."""
    loaded = load_scenario(str(ROOT / scenario))
    steps = [s for s in loaded.steps if isinstance(s, CaptureStep)]
    assert [Path(s.capture).name for s in steps] == captures
    assert all(s.verdicts and Path(s.verdicts).name == Path(s.capture).stem + ".expected.csv" for s in steps)
    result = run_scenario(loaded, engine_name)
    assert result.passed, "\n".join(f.describe() for f in result.failures)


@pytest.mark.parametrize("time", [-1.0, 18_446_744_074.0, 1e30])
def test_packet_step_time_outside_the_range_is_a_config_error(tmp_path, time):
    """A packet step's time is kept within 1970-01-01 .. 2554-07-21 (what 64 bits of nanoseconds
    hold), as capture times are: outside it, one error naming the step's `time`."""
    from sgdp.errors import ConfigError

    path = write_scenario(tmp_path, [{"packet": {"src": OFFICE, "dst": WEB, "dport": 22, "time": time}, "expect": "allow"}])
    with pytest.raises(ConfigError, match=r"steps\[0\]\.packet\.time: .* is outside 1970-01-01 \.\. 2554-07-21"):
        load_scenario(str(path))
