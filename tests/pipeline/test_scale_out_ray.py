"""Scale-out replay on Ray (issue 13): ``--ray`` gives the single process's outputs, byte for byte.

One local Ray cluster of 2 CPUs serves the whole test session (``ray_cluster``); each replay joins
it (``ray="auto"`` finds the cluster this process started) with one actor per CPU. CI installs the
``ray`` extra and sets SGDP_REQUIRE_RAY=1, so these tests fail there rather than skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.pipeline.test_scale_out import CAPTURES, ROOT, _generated_capture, _replay, _same_outputs

try:
    import ray
except ImportError:  # pragma: no cover - CI installs the extra
    if os.environ.get("SGDP_REQUIRE_RAY") == "1":
        raise
    pytest.skip("Ray is not installed (pip install 'sgdp[ray]')", allow_module_level=True)


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 * 1024, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("example,capture", CAPTURES)
def test_bundled_captures_on_ray(ray_cluster, tmp_path, capsys, example, capture):
    topology = str(ROOT / "examples" / example / "topology.yaml")
    pcap = str(ROOT / "pcaps" / f"{capture}.pcap")
    expect = ["--expect", str(ROOT / "pcaps" / f"{capture}.expected.csv")]
    assert _replay(tmp_path, "one", topology, pcap, "--split", *expect)[0] == 0
    assert _replay(tmp_path, "ray", topology, pcap, "--split", "--ray", "auto", *expect)[0] == 0
    _same_outputs(tmp_path / "one", tmp_path / "ray")
    capsys.readouterr()


def test_generated_workload_and_diff_on_ray(ray_cluster, tmp_path, capsys):
    topology, pcap, topo = _generated_capture(tmp_path, packets=20_000)
    assert _replay(tmp_path, "one", topology, pcap, "--split")[0] == 0
    assert _replay(tmp_path, "ray", topology, pcap, "--split", "--ray", "auto", "--workers", "3")[0] == 0
    _same_outputs(tmp_path / "one", tmp_path / "ray")
    import copy

    from sgdp import cli

    v2 = copy.deepcopy(topo)
    for group in v2["security_groups"]:
        group["rules"] = group["rules"][len(group["rules"]) // 2:]
    (tmp_path / "new.json").write_text(json.dumps(v2))
    capsys.readouterr()
    outs = []
    for extra in ([], ["--ray", "auto"]):
        assert cli.main(["diff", topology, str(tmp_path / "new.json"), pcap, "--json", *extra]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["changed"] and outs[0] == outs[1]


def test_a_dead_actor_ends_the_run(ray_cluster, tmp_path):
    from sgdp.capture import read_batches
    from sgdp.pipeline.executors import EngineSpec, ExecutorError, make_executor
    from sgdp.topology import load_topology

    topology, pcap, _ = _generated_capture(tmp_path, packets=20_000)
    ex = make_executor([EngineSpec(load_topology(topology), "fast")], 1, ray="auto")

    def batches():
        for i, batch in enumerate(read_batches(pcap, 4096)):
            if i == 1:
                ray.kill(ex.actors[1], no_restart=True)
            yield batch

    try:
        with pytest.raises(ExecutorError, match="actor died"):
            for _ in ex.run(batches()):
                pass
    finally:
        ex.close()


def test_an_unreachable_cluster_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sgdp", "replay", str(ROOT / "examples/lb/topology.yaml"),
                           str(ROOT / "pcaps/lb.pcap"), "-o", str(tmp_path / "out"), "--ray", "127.0.0.1:9"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "cannot reach the Ray cluster at 127.0.0.1:9" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_without_ray_the_error_says_what_to_install(tmp_path, capsys, monkeypatch):
    from sgdp import cli

    monkeypatch.setitem(sys.modules, "ray", None)
    code = cli.main(["replay", str(ROOT / "examples/lb/topology.yaml"), str(ROOT / "pcaps/lb.pcap"),
                     "-o", str(tmp_path / "out"), "--ray", "local"])
    err = capsys.readouterr().err
    assert code == 2 and err == "sgdp: error: --ray needs Ray: pip install 'sgdp[ray]'\n"
