"""The reference docs against the code, so they cannot drift.

- docs/topology.md documents exactly the keys the topology loader accepts (its table ``KEYS``), every
  "bad value → error" example gives exactly the documented message, every YAML example loads, and
  every `# error` example fails with the line printed after it.
- docs/commands.md names every command, option, verdict-file column and `reason` value.
- docs/craft.md documents every public helper of ``sgdp.craft`` and its Python examples run.
- README.md, docs/, benchmarks/README.md and examples/ link only files in the repository, never
  `../shared`, and cite only S-items that docs/semantics.md defines; so do the program's messages.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
from pathlib import Path

import pytest
import yaml

from sgdp.errors import ConfigError
from sgdp.topology.model import KEYS, topology_from_data

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TOPOLOGY_MD = DOCS / "topology.md"

# The heading (its path part) that documents each kind of object in docs/topology.md, and where an
# object of that kind sits in the complete example (the first YAML block of that file).
SECTIONS = {
    "topology": ("The top level", []),
    "vpc": ("`vpcs[]`", ["vpcs", 0]),
    "subnet": ("`vpcs[].subnets[]`", ["vpcs", 0, "subnets", 0]),
    "peering": ("`peerings[]`", ["peerings", 0]),
    "private_network": ("`private_networks[]`", ["private_networks", 0]),
    "address_group": ("`address_groups[]`", ["address_groups", 0]),
    "security_group": ("`security_groups[]`", ["security_groups", 0]),
    "security_group_rule": ("`security_groups[].rules[]`", ["security_groups", 0, "rules", 0]),
    "instance": ("`instances[]`", ["instances", 2]),
    "nic": ("`instances[].nics[]`", ["instances", 2, "nics", 0]),
    "virtual_ip": ("`virtual_ips[]`", ["virtual_ips", 0]),
    "load_balancer": ("`load_balancers[]`", ["load_balancers", 0]),
    "listener": ("`load_balancers[].listeners[]`", ["load_balancers", 0, "listeners", 0]),
    "backend": ("`load_balancers[].listeners[].backends[]`", ["load_balancers", 0, "listeners", 0, "backends", 0]),
    "network_acl": ("`network_acls[]`", ["network_acls", 0]),
    "network_acl_rule": ("`network_acls[].inbound_rules[]`", ["network_acls", 0, "inbound_rules", 0]),
}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text up to the next ``## `` heading."""
    out: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        out[heading.strip()] = body
    return out


def _section_for(kind: str) -> str:
    """The section whose heading is exactly the marker, or holds it as its path in parentheses
    (`security_groups[]` must not find `security_groups[].rules[]`)."""
    marker = SECTIONS[kind][0]
    exact = [body for heading, body in _sections(_text(TOPOLOGY_MD)).items()
             if heading == marker or re.search(r"\(" + re.escape(marker) + r"(\)| and )", heading)]
    assert len(exact) == 1, f"docs/topology.md: expected one section for {kind} ({marker}), found {len(exact)}"
    return exact[0]


def _table(body: str) -> list[list[str]]:
    """The rows (cells) of the first table of a section, header and rule lines left out."""
    rows = []
    started = False
    for line in body.splitlines():
        if line.startswith("|"):
            started = True
            if set(line.strip()) <= set("|-: "):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0] == "Key":
                continue
            rows.append(cells)
        elif started:
            break
    return rows


def _code(text: str) -> str:
    text = text.strip()
    if text.startswith("``"):
        return text[2:-2].strip()
    assert text.startswith("`") and text.endswith("`"), text
    return text[1:-1]


def documented_keys(kind: str) -> dict[str, list[str]]:
    return {_code(row[0]): row for row in _table(_section_for(kind))}


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S)


def complete_example() -> dict:
    return yaml.safe_load(yaml_blocks(_text(TOPOLOGY_MD))[0])


# ------------------------------------------------------------------------------- docs/topology.md


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_topology_doc_has_exactly_the_loader_keys(kind):
    assert kind in SECTIONS, f"the loader accepts a new kind of object {kind!r}: document it in docs/topology.md and add it here"
    documented = set(documented_keys(kind))
    assert documented - KEYS[kind] == set(), f"{kind}: documented but not accepted by the loader"
    assert KEYS[kind] - documented == set(), f"{kind}: accepted by the loader but not documented"


def test_every_documented_kind_is_a_loader_kind():
    assert set(SECTIONS) == set(KEYS)


def _bad_values(kind: str):
    for key, row in documented_keys(kind).items():
        cell = row[-1]
        if cell in ("—", ""):
            continue
        for item in cell.split("<br>"):
            item = re.sub(r"^\([^`]*\)\s*", "", item.strip())  # a leading "(with nics given)" note
            value, arrow, message = item.partition(" → ")
            assert arrow, f"{kind}.{key}: cannot read {item!r}"
            yield key, _code(value), _code(message)


BAD_VALUES = [(kind, key, value, message) for kind in sorted(SECTIONS) for key, value, message in _bad_values(kind)]


@pytest.mark.parametrize("kind,key,value,message", BAD_VALUES, ids=[f"{k}.{key}={v}" for k, key, v, _ in BAD_VALUES])
def test_topology_doc_bad_value_gives_the_documented_error(kind, key, value, message):
    data = copy.deepcopy(complete_example())
    obj = data
    for step in SECTIONS[kind][1]:
        obj = obj[step]
    if value == "(missing)":
        del obj[key]
    else:
        obj[key] = yaml.safe_load(value)
    with pytest.raises(ConfigError) as exc:
        topology_from_data(data, "topo.yaml")
    err = exc.value
    assert f"{err.path}: {err.detail}" == message


def test_topology_doc_has_bad_value_examples():
    assert len(BAD_VALUES) >= 80


def test_topology_doc_complete_example_has_every_kind():
    data = complete_example()
    for kind, (_, where) in SECTIONS.items():
        obj = data
        for step in where:
            obj = obj[step]
        assert isinstance(obj, dict), kind
    topo = topology_from_data(data, "topo.yaml")
    assert len(topo.instances) == 4 and len(topo.load_balancers) == 1 and len(topo.network_acls) == 1


def test_topology_doc_yaml_examples():
    """Every YAML block loads, except `# error` blocks, which give the line in the text block after them."""
    text = _text(TOPOLOGY_MD)
    blocks = re.findall(r"^```yaml\n(.*?)^```\n\s*(?:```text\n(.*?)^```)?", text, flags=re.M | re.S)
    errors = 0
    for source, after in blocks:
        if source.startswith("# error"):
            errors += 1
            with pytest.raises(ConfigError) as exc:
                topology_from_data(yaml.safe_load(source), "topo.yaml")
            expected = after.strip()
            assert expected, f"an `# error` example needs the error line after it:\n{source}"
            assert f"sgdp: error: {exc.value}" == expected
        else:
            topology_from_data(yaml.safe_load(source), "topo.yaml")
    assert len(blocks) == len(yaml_blocks(text)) and errors >= 8


# ------------------------------------------------------------------------------- docs/commands.md


def _parsers(parser: argparse.ArgumentParser, prefix: str = "sgdp"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_commands_doc_names_every_command_and_option():
    from sgdp.cli import build_parser

    text = _text(DOCS / "commands.md")
    for name, parser in _parsers(build_parser()):
        assert f"`{name}" in text, f"docs/commands.md does not document `{name}`"
        for action in parser._actions:
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                assert option in text, f"docs/commands.md does not document {name} {option}"


def test_commands_doc_names_every_reason_verdict_and_column():
    from sgdp.capture.packet import REASONS, VERDICTS
    from sgdp.capture import DECODE_COLUMNS

    text = _text(DOCS / "commands.md")
    for word in (*REASONS, *VERDICTS, *DECODE_COLUMNS, "index", "ts", "instance", "direction", "security_group", "rule"):
        assert f"`{word}`" in text, f"docs/commands.md does not document `{word}`"


# ---------------------------------------------------------------------------------- docs/craft.md


def test_craft_doc_documents_every_public_helper():
    from sgdp.capture import craft

    text = _text(DOCS / "craft.md")
    public = [n for n, v in vars(craft).items() if callable(v) and not n.startswith("_")
              and getattr(v, "__module__", None) == craft.__name__ and not isinstance(v, type)]
    for name in public:
        assert re.search(rf"^### `{name}\(", text, flags=re.M), f"docs/craft.md does not document craft.{name}"


def test_craft_doc_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("scapy", reason="the crafting helpers need scapy (the test extra)")
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    import contextlib
    import io

    blocks = re.findall(r"^```python\n(.*?)^```", _text(DOCS / "craft.md"), flags=re.M | re.S)
    assert len(blocks) >= 10
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "docs/craft.md", "exec"), {"__name__": "docs_example"})
        assert out.getvalue().splitlines() == _printed(block), block


def _printed(block: str) -> list[str]:
    """What an example says it prints: the comment after a print(...) and the comment lines below it."""
    expected: list[str] = []
    after_print = False
    for line in block.splitlines():
        if line.lstrip().startswith("print("):
            after_print = True
            if "  # " in line:
                expected.append(line.split("  # ", 1)[1].strip())
        elif after_print and line.startswith("# "):
            expected.append(line[2:])
        else:
            after_print = False
    return expected


# ------------------------------------------------------------------------------------ links, S-items

USER_DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted(DOCS.glob("*.md")),
             *sorted((ROOT / "examples").rglob("*.md"))]


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_link_only_files_of_the_repository(doc):
    text = _text(doc)
    assert "../shared" not in text, f"{doc.name} sends users to ../shared, which the published package does not have"
    assert not re.search(r"\bSPEC\b", text), f"{doc.name} cites the SPEC, which users do not have"
    for source in re.findall(r"\b((?:sgdp|tests|benchmarks|pcaps|examples)/[\w/.-]*\.(?:py|pyx|pxd|pcap|csv))\b", text):
        assert (ROOT / source).exists(), f"{doc.name} names {source}, which is not in the repository"
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.exists(), f"{doc.name}: link {target!r} points to nothing"
        assert ROOT in resolved.parents or resolved == ROOT, f"{doc.name}: link {target!r} leaves the repository"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(_text(resolved)), f"{doc.name}: link {target!r}: no heading #{anchor}"


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # not the comments of code blocks
    for heading in re.findall(r"^#+ (.*)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def _defined_items() -> set[int]:
    return {int(n) for n in re.findall(r"^### S(\d+)\b", _text(DOCS / "semantics.md"), flags=re.M)}


def test_semantics_doc_defines_s1_to_s16():
    assert _defined_items() == set(range(1, 17))


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_cite_only_defined_items(doc):
    cited = {int(n) for n in re.findall(r"\bS(\d{1,2})\b", _text(doc))}
    assert cited <= _defined_items(), f"{doc.name} cites S{sorted(cited - _defined_items())}, not defined in docs/semantics.md"


def _message_strings():
    """String constants of the package that are not docstrings: what the program may print."""
    for path in sorted((ROOT / "sgdp").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                body = getattr(node, "body", [])
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    docstrings.add(id(body[0].value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                yield path.relative_to(ROOT), node.lineno, node.value


def test_program_messages_cite_only_what_the_docs_define():
    defined = _defined_items()
    for path, line, text in _message_strings():
        assert not re.search(r"\bSPEC\b|§", text), f"{path}:{line}: a message cites the SPEC: {text!r}"
        cited = {int(n) for n in re.findall(r"\bS(\d{1,2})\b", text)}
        assert cited <= defined, f"{path}:{line}: a message cites S{sorted(cited - defined)}: {text!r}"


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_tests_cited_by_the_docs_exist(doc):
    for file, name in re.findall(r"`tests/([\w/]+\.py)::(\w+)`", _text(doc)):
        path = ROOT / "tests" / file
        assert path.exists(), f"{doc.name} cites tests/{file}, which does not exist"
        assert re.search(rf"^def {name}\(", _text(path), flags=re.M), f"{doc.name} cites tests/{file}::{name}, which does not exist"


def test_semantics_doc_points_every_item_at_tests():
    text = _text(DOCS / "semantics.md")
    items = re.split(r"^### (S\d+)\b", text, flags=re.M)[1:]
    for number, body in zip(items[::2], items[1::2]):
        body = body.split("\n#", 1)[0]
        assert "`tests/" in body, f"docs/semantics.md: {number} names no test that pins it"


# ------------------------------------------------------------------------------ docs/scenarios.md


def _saved_examples(doc: Path) -> list[tuple[str, str]]:
    """(path, source) of every YAML block preceded by "Saved as `PATH`"."""
    out = []
    text = _text(doc)
    pieces = re.split(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S)
    for before, source in zip(pieces[0::2], pieces[1::2]):
        tail = before.rsplit("```", 1)[-1]
        where = re.findall(r"Saved as `([^`]+)`", tail)
        assert where, f"{doc.name}: a YAML example without 'Saved as `PATH`' before it:\n{source}"
        out.append((where[-1], source))
    return out


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_scenarios_doc_examples_pass(tmp_path, engine):
    import shutil

    from sgdp.engine import available_engines
    from sgdp.testing import load_scenario, run_scenario

    if engine not in available_engines():
        pytest.skip(f"the {engine} engine is not built")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "pcaps", tmp_path / "pcaps")
    examples = _saved_examples(DOCS / "scenarios.md")
    assert len(examples) >= 2
    for where, source in examples:
        path = tmp_path / where
        path.write_text(source, encoding="utf-8")
        result = run_scenario(load_scenario(str(path)), engine)
        assert result.passed, "\n".join(f.describe() for f in result.failures)


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_topology_doc_keys_of_any_type_take_anything(kind):
    """A key documented with type `any` (and no error example) really accepts any value."""
    for key, row in documented_keys(kind).items():
        if row[1] != "any":
            assert row[-1] != "—", f"{kind}.{key}: a checked key needs a bad-value example"
            continue
        assert row[-1] == "—", f"{kind}.{key}: documented as `any` but with an error example"
        data = copy.deepcopy(complete_example())
        obj = data
        for step in SECTIONS[kind][1]:
            obj = obj[step]
        obj[key] = [1, {"a": None}, "x"]
        topology_from_data(data, "topo.yaml")


# ------------------------------------------------------------------- shell examples of the docs

RUNNABLE = ("check", "explain", "decode", "test")  # read-only and deterministic (no timings)


def _files_exist(argv: list[str]) -> bool:
    """Every file the command names is in the repository (or is the complete example, topology.yaml)."""
    paths = [a for a in argv[2:] if not a.startswith("-") and ("/" in a or a.endswith((".yaml", ".pcap")))]
    return all(p == "topology.yaml" or (ROOT / p).exists() for p in paths)


def _shell_examples():
    """(doc, command, expected output lines) of `$ sgdp ...` lines in text blocks, for RUNNABLE commands."""
    for doc in (DOCS / "topology.md", DOCS / "commands.md"):
        for block in re.findall(r"^```text\n(.*?)^```", _text(doc), flags=re.M | re.S):
            lines = block.splitlines()
            starts = [i for i, line in enumerate(lines) if line.startswith("$ ")] + [len(lines)]
            for a, b in zip(starts, starts[1:]):
                argv = lines[a][2:].split()
                if argv[0] == "sgdp" and argv[1] in RUNNABLE and _files_exist(argv):
                    if "--json" in argv and any(line.strip().startswith("...") for line in lines[a + 1:b]):
                        continue  # an abridged JSON example
                    yield doc.name, argv, lines[a + 1:b]


def _matches(got: list[str], want: list[str]) -> bool:
    """``want`` with "..." lines standing for any number of lines."""
    if not want:
        return not got
    if want[0] == "...":
        return any(_matches(got[k:], want[1:]) for k in range(len(got) + 1))
    return bool(got) and got[0] == want[0] and _matches(got[1:], want[1:])


SHELL_EXAMPLES = list(_shell_examples())


@pytest.mark.parametrize("doc,argv,want", SHELL_EXAMPLES, ids=[f"{d}: {' '.join(a[1:])}" for d, a, _ in SHELL_EXAMPLES])
def test_docs_shell_examples_print_what_the_docs_show(tmp_path, doc, argv, want):
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "pcaps", tmp_path / "pcaps")
    (tmp_path / "topology.yaml").write_text(yaml_blocks(_text(TOPOLOGY_MD))[0], encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "sgdp", *argv[1:]], cwd=tmp_path, capture_output=True, text=True)
    if "--json" in argv:  # the docs may fold the JSON: compare the data
        import json

        assert json.loads(run.stdout) == json.loads("\n".join(want))
        return
    got = (run.stdout + run.stderr).splitlines()
    assert _matches(got, want), "\n".join(["got:", *got, "documented:", *want])


def test_docs_have_shell_examples():
    assert len(SHELL_EXAMPLES) >= 6


def test_loader_checks_keys_only_through_its_table():
    """Every mapping the loader reads is checked against ``KEYS`` (no key set written inline), so the
    table — and with it docs/topology.md — is the whole truth."""
    source = (ROOT / "sgdp" / "topology" / "model.py").read_text(encoding="utf-8")
    calls = re.findall(r"self\.obj\(([^\n]*)\)", source)
    assert len(calls) >= 16
    for args in calls:
        allowed = [a.strip() for a in args.split(",")][2]
        assert re.fullmatch(r"(KEYS\[\"\w+\"\]|self\.\w+_KEYS)( \| (KEYS\[\"\w+\"\]|self\.\w+_KEYS))*", allowed), args
