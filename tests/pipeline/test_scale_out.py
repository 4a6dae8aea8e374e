"""Scale-out replay (issue 13): ``--workers N`` gives the single process's outputs, byte for byte.

* generated topologies and traffic (load balancers, EIPs, virtual IPs, ICMP errors, fragments), with
  1–4 shards in this process (hypothesis) and through worker processes;
* every bundled capture through ``sgdp replay --workers 2/3`` with --split and --expect, every verdict
  format, a timeline, and ``sgdp diff``;
* faults: a worker killed mid-run ends the replay with exit 2, one line naming it, and no output
  left behind; bad --workers values are usage errors.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp import cli
from sgdp.capture.packet import PacketBatch
from sgdp.engine.choice import available_engines
from sgdp.pipeline.executors import EngineSpec, ExecutorError, InlineExecutor, LocalExecutor, make_executor
from sgdp.topology.model import topology_from_data
from tests.pipeline.test_shard_keys import related
from tests.topogen import packet_sequences, topologies

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = [("figure1", "figure1"), ("figure2", "figure2"), ("figure2", "fragments"), ("lb", "lb")]
COLUMNS = ("verdict", "reason", "instance", "direction", "group", "rule")


def _columns(executor, batches):
    got = {c: [] for c in COLUMNS}
    for _, (vb,) in executor.run(batches):
        for c in COLUMNS:
            got[c].extend(getattr(vb, c).tolist())
    return got, executor.states()[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_shards_give_the_single_process_answers(data):
    topo_dict = data.draw(topologies())
    if data.draw(st.booleans()):
        for group in topo_dict["security_groups"]:
            group["rules"][:0] = [{"direction": "ingress"}, {"direction": "egress"}]
    packets = data.draw(related(topo_dict, data.draw(packet_sequences(topo_dict, max_packets=40))))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(packets)), max_size=3))))
    engine = data.draw(st.sampled_from(available_engines()))
    topo = topology_from_data(topo_dict, "generated.yaml")
    bounds = [0] + cuts + [len(packets)]
    batches = [PacketBatch.from_packets(packets[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    want, want_state = _columns(LocalExecutor([EngineSpec(topo, engine)]), batches)
    for shards in (1, 2, 3, 4):
        got, state = _columns(InlineExecutor([EngineSpec(topo, engine)], shards), batches)
        for c in COLUMNS:
            assert got[c] == want[c], (shards, c)
        assert state == want_state


# ------------------------------------------------------------------------------- command line


def _replay(tmp_path: Path, name: str, topology: str, capture: str, *extra: str) -> tuple[int, Path]:
    out = tmp_path / name
    code = cli.main(["replay", topology, capture, "-o", str(out), "--no-progress", "--json", *extra])
    return code, out


def _same_outputs(a: Path, b: Path) -> None:
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        if name == "summary.json":
            sa, sb = (json.loads((d / name).read_text()) for d in (a, b))
            for s in (sa, sb):
                s.pop("elapsed_s"), s.pop("packets_per_s")
            assert sa == sb
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("example,capture", CAPTURES)
def test_bundled_captures_with_workers(tmp_path, capsys, example, capture):
    topology = str(ROOT / "examples" / example / "topology.yaml")
    pcap = str(ROOT / "pcaps" / f"{capture}.pcap")
    expect = ["--expect", str(ROOT / "pcaps" / f"{capture}.expected.csv")]
    code1, one = _replay(tmp_path, "one", topology, pcap, "--split", *expect)
    assert code1 == 0
    for workers in ("2", "3"):
        code, out = _replay(tmp_path, f"w{workers}", topology, pcap, "--split", "--workers", workers, *expect)
        assert code == 0
        _same_outputs(one, out)
    capsys.readouterr()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_other_verdict_formats_with_workers(tmp_path, fmt):
    pytest.importorskip("pyarrow") if fmt == "parquet" else None
    topology, pcap = str(ROOT / "examples/figure2/topology.yaml"), str(ROOT / "pcaps/figure2.pcap")
    assert _replay(tmp_path, "one", topology, pcap, "--verdicts", fmt)[0] == 0
    assert _replay(tmp_path, "two", topology, pcap, "--verdicts", fmt, "--workers", "2")[0] == 0
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(tmp_path / "one" / "verdicts.parquet").equals(pq.read_table(tmp_path / "two" / "verdicts.parquet"))
    else:
        _same_outputs(tmp_path / "one", tmp_path / "two")


def _generated_capture(tmp_path: Path, packets: int = 30_000, seed: int = 5) -> tuple[str, str, dict]:
    from sgdp.capture import generated_topology, generated_traffic, write_pcap

    topo = generated_topology(seed=seed, instances=40, groups=6, rules_per_group=12)
    topo["load_balancers"] = [{"name": "lb", "type": "shared", "vip": "10.0.0.250", "subnet": "sn0",
                               "listeners": [{"protocol": "tcp", "port": 80, "transfer_client_ip": True,
                                              "backends": [{"instance": "ecs000", "port": 80},
                                                           {"instance": "ecs004", "port": 80}]}]}]
    topo["virtual_ips"] = [{"ip": "10.0.1.240", "subnet": "sn1", "instances": ["ecs001", "ecs005"]}]
    path = tmp_path / "topo.json"
    path.write_text(json.dumps(topo))
    pcap = tmp_path / "traffic.pcap"
    write_pcap(str(pcap), generated_traffic(topo, packets, 2_000))
    return str(path), str(pcap), topo


def test_generated_workload_with_workers_and_timeline(tmp_path, capsys):
    topology, pcap, topo = _generated_capture(tmp_path)
    # a timeline: half way through, the first group loses its rules and an EIP moves
    import copy

    from sgdp.capture import read_batches

    ts = np.concatenate([b.columns["ts"] for b in read_batches(pcap)])
    v2 = copy.deepcopy(topo)
    v2["security_groups"][0]["rules"] = v2["security_groups"][0]["rules"][:3]
    (tmp_path / "v2.json").write_text(json.dumps(v2))
    (tmp_path / "timeline.yaml").write_text(f"- {{at: {float(np.median(ts))!r}, topology: v2.json}}\n")
    timeline = ["--timeline", str(tmp_path / "timeline.yaml")]
    assert _replay(tmp_path, "one", topology, pcap, "--split", *timeline)[0] == 0
    for workers in ("2", "4"):
        assert _replay(tmp_path, f"w{workers}", topology, pcap, "--split", "--workers", workers, *timeline)[0] == 0
        _same_outputs(tmp_path / "one", tmp_path / f"w{workers}")
    summary = json.loads((tmp_path / "w2" / "summary.json").read_text())
    assert [v["packets"] for v in summary["versions"]][1] > 0
    capsys.readouterr()


def test_diff_with_workers(tmp_path, capsys):
    topology, pcap, topo = _generated_capture(tmp_path, packets=20_000)
    import copy

    v2 = copy.deepcopy(topo)
    for group in v2["security_groups"]:
        group["rules"] = group["rules"][len(group["rules"]) // 2:]
    new = tmp_path / "new.json"
    new.write_text(json.dumps(v2))
    outs = []
    for workers in ("1", "2", "3"):
        assert cli.main(["diff", topology, str(new), pcap, "--json", "--workers", workers]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["changed"], "the change must change some flows for this test to mean anything"
    assert outs[0] == outs[1] == outs[2]


def test_api_replay_takes_workers(tmp_path):
    import sgdp

    topology, pcap = ROOT / "examples/lb/topology.yaml", ROOT / "pcaps/lb.pcap"
    a = sgdp.replay(topology, [pcap], str(tmp_path / "a"))
    b = sgdp.replay(topology, [pcap], str(tmp_path / "b"), workers=2)
    for s in (a.summary, b.summary):
        s.pop("elapsed_s"), s.pop("packets_per_s")
    assert a.summary == b.summary
    assert (tmp_path / "a/verdicts.csv").read_bytes() == (tmp_path / "b/verdicts.csv").read_bytes()


def test_a_corrupt_capture_still_writes_what_came_before(tmp_path, capsys):
    """S15 with workers: the packets before the corruption are processed and written, then exit 2."""
    data = (ROOT / "pcaps/figure1.pcap").read_bytes()
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(data + b"\x00" * 8 + (10 ** 9).to_bytes(4, "little") * 2)
    topology = str(ROOT / "examples/figure1/topology.yaml")
    code1, one = _replay(tmp_path, "one", topology, str(bad))
    code2, two = _replay(tmp_path, "two", topology, str(bad), "--workers", "2")
    assert code1 == code2 == 2
    _same_outputs(one, two)
    capsys.readouterr()


# ------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("value", ["0", "-1", "x", "256"])
def test_bad_worker_counts_are_usage_errors(tmp_path, capsys, value):
    code = cli.main(["replay", str(ROOT / "examples/figure1/topology.yaml"), str(ROOT / "pcaps/figure1.pcap"),
                     "-o", str(tmp_path), "--workers", value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("sgdp: error: --workers") and err.count("\n") == 1


def test_workers_auto_uses_the_cores():
    topo = topology_from_data({"version": 1, "vpcs": []}, "t.yaml")
    with make_executor([EngineSpec(topo, "reference")], "auto") as ex:
        assert ex.shards == len(os.sched_getaffinity(0))


def test_workers_auto_keeps_small_captures_in_one_process(tmp_path, monkeypatch):
    """--workers auto: captures under AUTO_MIN_BYTES together run in this process; at or above it,
    one worker per core."""
    import sgdp.pipeline.executors as executors

    topo = topology_from_data({"version": 1, "vpcs": []}, "t.yaml")
    pcap = str(ROOT / "pcaps" / "figure1.pcap")
    with make_executor([EngineSpec(topo, "reference")], "auto", captures=[pcap, pcap]) as ex:
        assert isinstance(ex, LocalExecutor)
    monkeypatch.setattr(executors, "AUTO_MIN_BYTES", 2 * os.path.getsize(pcap))
    with make_executor([EngineSpec(topo, "reference")], "auto", captures=[pcap]) as ex:
        assert isinstance(ex, LocalExecutor)
    with make_executor([EngineSpec(topo, "reference")], "auto", captures=[pcap, pcap]) as ex:
        assert ex.shards == len(os.sched_getaffinity(0))


def test_a_killed_worker_ends_the_replay(tmp_path, capsys, monkeypatch):
    """SIGKILL one worker (what the out-of-memory killer does) mid-run: exit 2, one
    line naming the worker and the signal, no verdict file or split capture left, and a summary that
    says the run is incomplete."""
    import sgdp.pipeline.run as run

    topology, pcap, _ = _generated_capture(tmp_path, packets=20_000)
    made = []
    real_make, real_read = run.make_executor, run.read_batches

    def make(*a, **k):
        made.append(real_make(*a, **k))
        return made[-1]

    def read(*a, **k):
        for i, batch in enumerate(real_read(*a, **k)):
            yield batch  # the first batch is in flight when the worker dies
            os.kill(made[0].pids[1], signal.SIGKILL)

    monkeypatch.setattr(run, "make_executor", make)
    monkeypatch.setattr(run, "read_batches", read)
    out = tmp_path / "out"
    code = cli.main(["replay", topology, pcap, "-o", str(out), "--workers", "2", "--split", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sgdp: error: worker 1 (pid ") and "SIGKILL" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]  # only the record of an incomplete run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and "worker 1" in summary["error"]
    assert all(not p.is_alive() for p in made[0].procs) or not made[0].procs


def test_ctrl_c_stops_every_worker(tmp_path, monkeypatch):
    import sgdp.pipeline.run as run

    topology, pcap, _ = _generated_capture(tmp_path, packets=20_000)
    made = []
    real_make, real_read = run.make_executor, run.read_batches

    def make(*a, **k):
        made.append(real_make(*a, **k))
        made.append(list(made[0].procs))
        return made[0]

    def read(*a, **k):
        for i, batch in enumerate(real_read(*a, **k)):
            yield batch
            raise KeyboardInterrupt

    monkeypatch.setattr(run, "make_executor", make)
    monkeypatch.setattr(run, "read_batches", read)
    code = cli.main(["replay", topology, pcap, "-o", str(tmp_path / "out"), "--workers", "2", "--no-progress"])
    assert code == 130
    assert all(not p.is_alive() for p in made[1])
    assert not (tmp_path / "out" / "verdicts.csv").exists()


def test_a_worker_error_is_one_line(tmp_path):
    """An error inside a worker (here: a message it cannot read) comes back as ExecutorError."""
    topo = topology_from_data({"version": 1, "vpcs": []}, "t.yaml")
    ex = make_executor([EngineSpec(topo, "reference")], 2, batch_size=16)
    try:
        ex._send(0, ("run",))  # a message without its slot
        with pytest.raises(ExecutorError, match="worker 0 failed"):
            ex._recv(0)
    finally:
        ex.close()


def test_batches_larger_than_a_slot_go_in_pieces(tmp_path):
    """A batch of more rows than a shared-memory slot holds is run in slot-sized pieces and comes
    back whole, with the single process's columns; the batches around it are unaffected."""
    from sgdp.capture import read_batches

    topology, pcap, _ = _generated_capture(tmp_path, packets=500)
    topo = topology_from_data(json.loads(Path(topology).read_text()), topology)
    batches = list(read_batches([pcap], 100))
    big = PacketBatch({k: np.concatenate([b.columns[k] for b in batches[1:4]]) for k in batches[0].columns})
    stream = [batches[0], big, *batches[4:]]
    want, want_state = _columns(LocalExecutor([EngineSpec(topo, "fast")]), stream)
    with make_executor([EngineSpec(topo, "fast")], 2, batch_size=100) as ex:
        sizes = []
        got = {c: [] for c in COLUMNS}
        for batch, (vb,) in ex.run(stream):
            sizes.append(len(vb))
            for c in COLUMNS:
                got[c].extend(getattr(vb, c).tolist())
        assert sizes == [len(b) for b in stream] and got == want and ex.states()[0] == want_state


def test_a_run_that_cannot_start_leaves_no_worker(tmp_path, capsys, monkeypatch):
    """A missing --expect file is found before any worker starts; an output directory that cannot be
    made stops the workers already started."""
    import sgdp.pipeline.run as run

    made = []
    real_make = run.make_executor

    def make(*a, **k):
        made.append(real_make(*a, **k))
        made.append(list(made[-1].procs))
        return made[-2]

    monkeypatch.setattr(run, "make_executor", make)
    topology, pcap = str(ROOT / "examples/figure1/topology.yaml"), str(ROOT / "pcaps/figure1.pcap")
    code = cli.main(["replay", topology, pcap, "-o", str(tmp_path / "out"), "--workers", "2",
                     "--expect", str(tmp_path / "missing.csv")])
    assert code == 2 and made == []
    (tmp_path / "file").write_text("")
    code = cli.main(["replay", topology, pcap, "-o", str(tmp_path / "file"), "--workers", "2"])
    assert code == 2 and len(made[1]) == 2 and not any(p.is_alive() for p in made[1])
    capsys.readouterr()


def test_process_into_refuses_rows_outside_the_batch():
    """The compiled loop follows ``rows`` without bounds checks: they are checked first."""
    if "fast" not in available_engines():
        pytest.skip("built without the extensions")
    from sgdp.engine import make_engine
    from sgdp.pipeline.executors import VERDICT_DTYPES

    from sgdp.api import load_topology

    topo = load_topology(ROOT / "examples/figure1/topology.yaml")
    engine = make_engine(topo, "fast")
    from sgdp.capture import read_batches

    batch = next(iter(read_batches([str(ROOT / "pcaps" / "figure1.pcap")], 64)))
    out = {k: np.zeros(len(batch), dt) for k, dt in VERDICT_DTYPES.items()}
    for bad in (-1, len(batch)):
        with pytest.raises(ValueError, match="not in 0"):
            engine.process_into(batch.columns, out, np.array([0, bad], np.int64))
    rows = np.arange(len(batch), dtype=np.int64)[::2]
    engine.process_into(batch.columns, out, rows)
    want = make_engine(topo, "fast").process(PacketBatch({k: batch.columns[k][rows] for k in batch.columns}))
    assert out["verdict"][rows].tolist() == want.verdict.tolist() and not out["verdict"][1::2].any()


def test_without_fork_each_worker_builds_its_engine(tmp_path, monkeypatch):
    """Where fork is not available the workers start by forkserver and build their own engines
    from the specs; the answers are the same."""
    import multiprocessing

    from sgdp.capture import read_batches

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["forkserver", "spawn"])
    topology, pcap, _ = _generated_capture(tmp_path, packets=3000)
    topo = topology_from_data(json.loads(Path(topology).read_text()), topology)
    batches = list(read_batches([pcap], 700))
    want, want_state = _columns(LocalExecutor([EngineSpec(topo, "fast")]), batches)
    with make_executor([EngineSpec(topo, "fast")], 2, batch_size=1000) as ex:
        assert all(p._popen.__class__.__module__.endswith("popen_forkserver") for p in ex.procs)
        got, state = _columns(ex, batches)
    assert got == want and state == want_state


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_batches_read_into_shared_memory_and_copied_ones_mix(tmp_path, monkeypatch, start):
    """The reader decodes into the workers' shared blocks (``ex.blocks``) and the workers read the
    packet columns there; when every shared block is taken (here: the caller holds every batch),
    the reader falls back to memory of its own and those batches are copied into their slot. Both
    give the single process's answers, with workers forked or started by a forkserver (which maps
    the shared memory at another address)."""
    import multiprocessing

    from sgdp.capture import read_batches
    from sgdp.pipeline import executors

    if start == "forkserver":
        monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["forkserver", "spawn"])
    topology, pcap, _ = _generated_capture(tmp_path, packets=6000)
    topo = topology_from_data(json.loads(Path(topology).read_text()), topology)
    want, want_state = _columns(LocalExecutor([EngineSpec(topo, "fast")]), list(read_batches([pcap], 300)))
    where = []
    real = executors.ProcessExecutor._shared_block
    monkeypatch.setattr(executors.ProcessExecutor, "_shared_block", lambda self, b: where.append(real(self, b)) or where[-1])
    with make_executor([EngineSpec(topo, "fast")], 2, batch_size=300) as ex:
        held = list(read_batches([pcap], 300, blocks=ex.blocks))  # 20 batches for SHARED_BLOCKS (12) blocks
        got, state = _columns(ex, held)
    assert got == want and state == want_state
    assert sorted(set(where)) == [-1, *range(executors.SHARED_BLOCKS)], where
    where.clear()
    with make_executor([EngineSpec(topo, "fast")], 2, batch_size=300) as ex:
        got, state = _columns(ex, read_batches([pcap], 300, blocks=ex.blocks))  # streamed: blocks reused
    assert got == want and state == want_state
    assert len(where) == 20 and -1 not in where, where


def test_a_shard_actor_runs_its_rows_where_they_lie(tmp_path):
    """The Ray actor's work without Ray: each batch as the coordinator puts it (the clock in place of
    the timestamps, the rows grouped by shard), every actor its rows of it; batches of different
    sizes, larger then smaller, through the actor's reused output columns give the single
    process's answers."""
    from sgdp.capture import read_batches
    from sgdp.pipeline.executors import PACKET_COLUMNS, VERDICT_DTYPES, _ShardActor
    from sgdp.pipeline.shard import Router, ShardKeys

    topology, pcap, _ = _generated_capture(tmp_path, packets=3000)
    topo = topology_from_data(json.loads(Path(topology).read_text()), topology)
    batches = list(read_batches([pcap], 1000)) + list(read_batches([pcap], 300))[:3]
    want, _ = _columns(LocalExecutor([EngineSpec(topo, "fast")]), batches)
    router, clock = Router(ShardKeys([topo]), 2), float("-inf")
    actors = [_ShardActor(i, [EngineSpec(topo, "fast")]) for i in range(2)]
    got = {c: [] for c in COLUMNS}
    for batch in batches:
        _, now, order, bounds = router.grouped(batch, clock)
        clock = float(now[-1])
        cols = {k: now if k == "ts" else batch.columns[k] for k in PACKET_COLUMNS}
        cols["order"] = order
        out = {k: np.zeros(len(batch), dt) for k, dt in VERDICT_DTYPES.items()}
        for i, actor in enumerate(actors):
            (res,) = actor.process(cols, int(bounds[i]), int(bounds[i + 1]))
            for k in VERDICT_DTYPES:
                out[k][order[bounds[i]:bounds[i + 1]]] = res[k]
        for c in COLUMNS:
            got[c].extend(out[c].tolist())
    assert got == want
