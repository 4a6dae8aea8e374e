"""benchmarks/dpdk_side_by_side.py on a tiny ClassBench set: sgdp alone when dpdk-test-acl is absent
(a note, DPDK columns empty), both sides when it is installed, exit 1 on a mismatch."""

from __future__ import annotations

import gzip
import importlib.util
import shutil
from pathlib import Path

import pytest

pytest.importorskip("sgdp._fastmatch")

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "dpdk_side_by_side.py"
RULES = ("@10.0.0.0/8\t192.168.1.1/32\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n"
         "@10.1.0.0/16\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\n"
         "@0.0.0.0/0\t0.0.0.0/0\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000\n")
# (sip, dip, sport, dport, proto) -> first match: 0, 1, 2, 2
HEADERS = [(167772161, 3232235777, 1234, 80, 6, 0), (167837697, 1, 5, 81, 17, 1), (1, 2, 3, 4, 6, 2),
           (167772161, 3232235777, 1234, 81, 6, 2)]


def _harness():
    spec = importlib.util.spec_from_file_location("dpdk_side_by_side", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_set(folder: Path, matches: list[int]) -> None:
    trace = "".join(f"{s}\t{d}\t{sp}\t{dp}\t{p}\t0\t{m}\n" for s, d, sp, dp, p, m in HEADERS)
    for suffix, text in (("rules", RULES), ("trace", trace), ("match", "".join(f"{m}\n" for m in matches))):
        (folder / f"tiny.{suffix}.gz").write_bytes(gzip.compress(text.encode()))


def test_sgdp_alone_when_dpdk_is_absent(tmp_path, monkeypatch, capsys):
    harness = _harness()
    _write_set(tmp_path, [h[-1] for h in HEADERS])
    real_which = shutil.which
    monkeypatch.setattr(harness.shutil, "which", lambda name: None if name == harness.DPDK else real_which(name))
    assert harness.main(["--data", str(tmp_path), "--sets", "tiny", "--runs", "2", "--json", str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    assert "dpdk-test-acl is not installed" in err
    row = [line for line in out.splitlines() if line.startswith("| tiny |")]
    assert len(row) == 1 and row[0].split("|")[2].strip() == "–" and row[0].split("|")[-2].strip() == "0"
    assert '"mismatches": 0' in (tmp_path / "r.json").read_text()


def test_a_mismatch_fails_the_run(tmp_path, monkeypatch):
    harness = _harness()
    _write_set(tmp_path, [0, 1, 2, 0])  # the last header's first match is 2
    monkeypatch.setattr(harness.shutil, "which", lambda name: None)
    assert harness.main(["--data", str(tmp_path), "--sets", "tiny", "--runs", "1"]) == 1


@pytest.mark.skipif(shutil.which("dpdk-test-acl") is None, reason="dpdk-test-acl (Debian dpdk-dev) is not installed")
def test_both_sides_when_dpdk_is_installed(tmp_path, capsys):
    harness = _harness()
    _write_set(tmp_path, [h[-1] for h in HEADERS])
    assert harness.main(["--data", str(tmp_path), "--sets", "tiny", "--runs", "1", "--core", "0"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny |")][0].split("|")
    assert float(row[2].split()[0]) > 0 and float(row[4].split()[0]) > 0  # DPDK Mpps, ratio
    assert row[7].strip().endswith("MB")  # DPDK memory from the ACL debug log
