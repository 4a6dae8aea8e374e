"""Every output file is written as NAME.partial and renamed when whole: after a failure no file
looks complete (an earlier one stays as it was), whatever writer made it (sgdp._atomic)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml

from sgdp import craft
from sgdp._atomic import partial_file
from sgdp.cli import main
from sgdp.errors import InputError, OutputError
from sgdp.pipeline import split as split_module

ROOT = Path(__file__).resolve().parents[1]


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_partial_file_renames_only_when_whole(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with partial_file(str(final)) as fh:
        fh.write("new")
        assert final.read_text() == "old" and (tmp_path / "out.txt.partial").exists()
    assert final.read_text() == "new" and names(tmp_path) == ["out.txt"]


def test_partial_file_failure_removes_the_partial_and_keeps_the_old(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with partial_file(str(final)) as fh:
            fh.write("half")
            raise KeyboardInterrupt
    assert final.read_text() == "old" and names(tmp_path) == ["out.txt"]


def test_partial_file_write_error_names_the_final_path(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(OutputError, match=f"^{final}: cannot write: No space left on device$"):
        with partial_file(str(final)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert names(tmp_path) == []
    with pytest.raises(OutputError, match=f"^{tmp_path / 'no' / 'x'}: cannot write: No such file or directory$"):
        with partial_file(str(tmp_path / "no" / "x")):
            pass


def test_partial_file_writes_a_fifo_or_device_directly(tmp_path):
    import stat
    import threading

    with partial_file(os.devnull) as fh:
        fh.write("x")
    assert os.path.exists(os.devnull) and not os.path.exists(os.devnull + ".partial")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # still the device, not a file renamed over it
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with partial_file(str(fifo), "wb") as fh:
        fh.write(b"through the pipe")
    reader.join(5)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and names(tmp_path) == ["f"]


# ------------------------------------------------------------------------------- the writers


def full_disk_after(monkeypatch, n: int) -> None:
    """SplitWriter.add fails with ENOSPC after ``n`` frames."""
    real = split_module.SplitWriter._add
    count = {"n": 0}

    def add(self, *record):
        count["n"] += 1
        if count["n"] > n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *record)

    monkeypatch.setattr(split_module.SplitWriter, "_add", add)


def failing_scenario(tmp_path: Path) -> str:
    (tmp_path / "topology.yaml").write_text((ROOT / "examples" / "figure1" / "topology.yaml").read_text())
    steps = [{"capture": str(ROOT / "pcaps" / "figure1.pcap"), "expect": {"verdict": "deny"}}]
    path = tmp_path / "f.sgdp.yaml"
    path.write_text(yaml.safe_dump({"topology": "topology.yaml", "steps": steps}))
    return str(path)


def test_test_save_failures_cut_short_leaves_no_capture(tmp_path, capsys, monkeypatch):
    """`sgdp test --save-failures DIR`: a disk that fills up while the counterexample capture is
    written leaves no DIR/NAME.pcap (nor .partial), and an earlier one is kept as it was."""
    scenario = failing_scenario(tmp_path)
    out = tmp_path / "failures"
    assert main(["test", scenario, "--save-failures", str(out)]) == 1
    capsys.readouterr()
    whole = (out / "f.pcap").read_bytes()
    assert len(whole) > 100
    full_disk_after(monkeypatch, 3)
    assert main(["test", scenario, "--save-failures", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"sgdp: error: {out / 'f.pcap'}: cannot write: No space left on device"]
    assert names(out) == ["f.pcap"] and (out / "f.pcap").read_bytes() == whole


def test_replay_save_failures_cut_short_leaves_no_capture(tmp_path, capsys, monkeypatch):
    capture = str(ROOT / "pcaps" / "figure1.pcap")
    topo = str(ROOT / "examples" / "figure1" / "topology.yaml")
    expected = tmp_path / "exp.csv"
    rows = (ROOT / "pcaps" / "figure1.expected.csv").read_text().splitlines()
    flipped = [rows[0]] + [r.replace(",allow,", ",deny,") if ",allow," in r else r.replace(",deny,", ",allow,") for r in rows[1:]]
    expected.write_text("\n".join(flipped) + "\n")
    full_disk_after(monkeypatch, 2)
    rc = main(["replay", topo, capture, "-o", str(tmp_path / "o"), "--expect", str(expected),
               "--save-failures", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write: No space left on device" in err, err
    assert not [n for n in names(tmp_path / "f") if n.endswith((".pcap", ".partial"))]


def test_craft_write_pcap_error_midway_leaves_no_file(tmp_path):
    seg = craft.tcp_segment("10.0.0.1", "10.0.0.2", 1, 2)
    path = tmp_path / "t.pcap"
    with pytest.raises(InputError, match="frame 1"):
        craft.write_pcap(str(path), [(1, seg), (2, seg, 3)])
    assert names(tmp_path) == []


def test_import_keeps_the_earlier_file_when_the_rename_fails(tmp_path, capsys, monkeypatch):
    samples = sorted(str(p) for p in (ROOT / "examples" / "import").glob("*.json"))
    out = tmp_path / "t.yaml"
    assert main(["import", "huawei", *samples, "-o", str(out)]) == 0
    before = out.read_text()

    import sgdp._atomic as atomic

    real_replace = atomic.os.replace

    def refuse(src, dst):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    assert main(["import", "huawei", *samples, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"sgdp: error: {out}: cannot write: Permission denied"
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert out.read_text() == before and names(tmp_path) == ["t.yaml"]


def test_report_keeps_the_earlier_file_when_writing_fails(tmp_path, capsys, monkeypatch):
    topo = str(ROOT / "examples" / "figure1" / "topology.yaml")
    assert main(["replay", topo, str(ROOT / "pcaps" / "figure1.pcap"), "-o", str(tmp_path / "r")]) == 0
    html = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "r"), "-o", str(html), "--no-check"]) == 0
    before = html.read_bytes()
    capsys.readouterr()

    import sgdp._atomic as atomic

    class HalfWritten:
        """A file that takes half of what is written, then finds the disk full."""

        def __init__(self, path, mode, **kwargs):
            self.fh = open(path, mode, **kwargs)

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            self.fh.close()

    monkeypatch.setattr(atomic, "open", HalfWritten, raising=False)
    assert main(["report", str(tmp_path / "r"), "-o", str(html), "--no-check"]) == 2
    assert capsys.readouterr().err == f"sgdp: error: {html}: cannot write: No space left on device\n"
    assert html.read_bytes() == before and not (tmp_path / "report.html.partial").exists()
