"""The package's layout holds: data flows one way through the stages, with no circles.

Read from the modules' own import statements (function-level imports included):

* every module belongs to a floor: errors -> topology -> capture -> engine -> pipeline ->
  testing | bench | report -> api -> cli; no module imports one on a later floor, and two stages on one
  floor do not import each other;
* a module imports another stage only through that stage's package (``from sgdp.engine import
  make_engine``), never one of its modules (``sgdp.engine.fast``) and never a private one;
* resolved to the modules that define the imported names, the import graph has no circles.
"""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

import sgdp
from sgdp import _lazy

ROOT = pathlib.Path(sgdp.__file__).parent
STAGES = ["topology", "capture", "engine", "pipeline", "testing", "bench", "report"]
FLOOR = {"sgdp.errors": 0, "sgdp._lazy": 0, "sgdp.startup": 0, "sgdp._atomic": 0.5, "sgdp.topology": 1, "sgdp.capture": 2, "sgdp._sorted": 2.4, "sgdp._fastmatch": 2.5, "sgdp.engine": 3,
         "sgdp.pipeline": 4, "sgdp.testing": 5, "sgdp.bench": 5, "sgdp.report": 5, "sgdp.api": 6, "sgdp": 6, "sgdp.cli": 7,
         "sgdp.__main__": 8}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, pathlib.Path]:
    found = {module_name(p): p for p in ROOT.rglob("*.py")}
    found.update({module_name(p): p for p in ROOT.rglob("*.pyx")})
    return found


def stage_of(module: str) -> str:
    """The stage (floor key) a module belongs to: its stage package, or the root module itself."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in STAGES:
        return ".".join(parts[:2])
    return module


def imports(path: pathlib.Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every import of sgdp code in a file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".pyx":  # cimports and imports of a Cython module, read as text
        out = []
        for no, line in enumerate(text.splitlines(), 1):
            words = line.split()
            if len(words) >= 4 and words[0] == "from" and words[1].startswith("sgdp") and words[2] in ("import", "cimport"):
                out.append((words[1], [w.strip(",") for w in words[3:]], no))
        return out
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sgdp" and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "sgdp":
                    out.append((a.name, [], node.lineno))
    return out


def resolve(target: str, names: list[str], known: dict[str, pathlib.Path]) -> list[str]:
    """The modules an import really reaches: through a package's lazy public names to their modules."""
    if target in _lazy.EXPORTS or target in STAGES_PKG:
        importlib.import_module(target)
        table = _lazy.EXPORTS.get(target, {})
        out = []
        for n in names:
            if f"{target}.{n}" in known:
                out.append(f"{target}.{n}")
            elif n in table:
                mod = f"{target}.{table[n]}"
                out.append(mod if mod in known else target)
            else:
                out.append(target)
        return out or [target]
    return [target]


STAGES_PKG = {f"sgdp.{s}" for s in STAGES} | {"sgdp"}


def edges() -> list[tuple[str, str, int, str]]:
    known = modules()
    out = []
    for mod, path in sorted(known.items()):
        for target, names, line in imports(path):
            for reached in resolve(target, names, known):
                out.append((mod, reached, line, target))
    return out


def test_every_module_has_a_floor():
    missing = [m for m in modules() if stage_of(m) not in FLOOR]
    assert not missing, f"modules outside every stage (give them a floor): {missing}"


def test_no_import_from_a_later_stage():
    bad = []
    for mod, reached, line, written in edges():
        a, b = stage_of(mod), stage_of(reached)
        if a == b:
            continue
        if FLOOR[b] > FLOOR[a] or (FLOOR[b] == FLOOR[a] and a != "sgdp"):
            bad.append(f"{mod}:{line} imports {written} ({b} is not before {a})")
    assert not bad, "\n".join(bad)


def test_other_stages_only_through_their_public_names():
    bad = []
    for mod, _, line, written in edges():
        a, b = stage_of(mod), stage_of(written)
        if a != b and b.split(".")[-1] in STAGES and written != b:
            bad.append(f"{mod}:{line} imports {written}: use `from {b} import ...`")
        if a != b and any(part.startswith("_") and part != "__init__" for part in written.split(".")[1:]) \
                and written not in ("sgdp._lazy", "sgdp._atomic", "sgdp._sorted", "sgdp._fastmatch"):
            bad.append(f"{mod}:{line} imports the private module {written}")
    assert not bad, "\n".join(bad)


def test_no_circles():
    graph: dict[str, set[str]] = {}
    for mod, reached, _, _ in edges():
        if reached != mod:
            graph.setdefault(mod, set()).add(reached)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif not state.get(m):
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if not state.get(n):
            visit(n)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", ["sgdp", *sorted(f"sgdp.{s}" for s in STAGES)])
def test_public_names_resolve(package):
    """Every name a stage (or sgdp itself) declares public really exists where it says."""
    pkg = importlib.import_module(package)
    for name in pkg.__all__:
        if name in ("craft",):
            pytest.importorskip("scapy")
        assert getattr(pkg, name) is not None, f"{package}.{name}"


def test_cli_uses_only_the_public_api():
    path = ROOT / "cli.py"
    written = {t for t, _, _ in imports(path)}
    # besides the API: the error types, and the process's start-up (the collector's pause)
    allowed = {"sgdp", "sgdp.errors", "sgdp.startup"}
    assert written <= allowed, f"cli.py imports {sorted(written - allowed)}"
