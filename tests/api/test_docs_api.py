"""The examples of docs/api.md run as tests: each ```python block, in order, in one namespace, from a
copy of the repository's Figure 1 example; a run of code followed by whole-line `# ` comments must
print exactly those comments."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"


def segments(text: str) -> list[tuple[int, str, str]]:
    """(line number, code, expected output) for every block of the document."""
    out = []
    for m in re.finditer(r"```python\n(.*?)```", text, re.S):
        first = text[:m.start()].count("\n") + 2
        code: list[str] = []
        expected: list[str] = []
        start = first
        for k, line in enumerate(m.group(1).splitlines()):
            if line.startswith("#"):
                expected.append(line[2:] if line.startswith("# ") else line[1:])
                continue
            if expected:
                out.append((start, "\n".join(code), "\n".join(expected)))
                code, expected, start = [], [], first + k
            code.append(line)
        if code or expected:
            out.append((start, "\n".join(code), "\n".join(expected)))
    return out


def test_api_examples_run(tmp_path: Path, monkeypatch):
    pytest.importorskip("pandas")
    shutil.copytree(ROOT / "examples" / "figure1", tmp_path / "examples" / "figure1")
    (tmp_path / "pcaps").mkdir()
    shutil.copy(ROOT / "pcaps" / "figure1.pcap", tmp_path / "pcaps")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    parts = segments(DOC.read_text(encoding="utf-8"))
    assert len(parts) > 10
    for line, code, expected in parts:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, f"docs/api.md:{line}", "exec"), namespace)
        got = "\n".join(x.rstrip() for x in buf.getvalue().rstrip("\n").splitlines())
        want = "\n".join(x.rstrip() for x in expected.splitlines())
        assert got == want, f"docs/api.md line {line}: printed\n{got}\nbut the document shows\n{want}"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "diff.html").is_file()


def test_readme_notebook_example_runs(tmp_path: Path, monkeypatch):
    pytest.importorskip("pandas")
    shutil.copytree(ROOT / "examples" / "figure1", tmp_path / "examples" / "figure1")
    (tmp_path / "pcaps").mkdir()
    shutil.copy(ROOT / "pcaps" / "figure1.pcap", tmp_path / "pcaps")
    monkeypatch.chdir(tmp_path)
    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
              if "run.verdicts" in b]
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert len(namespace["df"]) == 17 and (tmp_path / "sgdp-out" / "verdicts.csv").is_file()
