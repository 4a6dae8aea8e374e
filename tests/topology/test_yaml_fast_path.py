"""The fast YAML paths — libyaml's events straight to Python data, in Python over PyYAML's event
objects ("events") and compiled on libyaml's C API ("compiled") — give exactly what the bounded
loader gives, or step aside (``_UNUSUAL``) so that the bounded loader reads the file and gives its
own errors; they are taken for the files people write."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdp.topology import structured

if not getattr(yaml, "__with_libyaml__", False):
    pytest.skip("PyYAML was built without libyaml: there is no fast path", allow_module_level=True)


def loaders():
    classes = structured._loader_classes()
    return classes[0], classes[-1]  # libyaml's, the pure-Python one


def bounded(text: str):
    """The bounded loader alone, or the error it gives."""
    loader = loaders()[0](text)
    try:
        return ("ok", repr(loader.get_single_data()))
    except Exception as exc:  # noqa: BLE001 - any error is what is compared
        return ("error", type(exc).__name__)
    finally:
        loader.dispose()


def compiled_module():
    try:
        from sgdp.topology import _plainyaml
    except ImportError:
        if os.environ.get("SGDP_REQUIRE_EXTENSION") == "1":
            raise
        pytest.skip("sgdp.topology._plainyaml is not built (libyaml's headers were missing at install)")
    return _plainyaml


def fast(text: str, kind: str = "events"):
    if kind == "compiled":
        compiled_module()
        return structured._compiled_plain_yaml(text)
    return structured._plain_yaml(loaders()[0], text)


KINDS = pytest.mark.parametrize("kind", ["events", "compiled"])


TRICKY = ["010", "0", "00", "1_000", "0x1F", "0o17", "-5", "+5", "1e3", "1.5", ".inf", "-.inf", ".nan", "yes", "No",
          "on", "~", "null", "", "true", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "<<", "=", "1" * 41, "1" * 40,
          "a: b", "- x", "#c", "'q'", "\"d\"", "tcp", "10.0.0.0/8", "22,80", "12:30", "1:2:3", "ü"]

scalars = st.one_of(st.sampled_from(TRICKY), st.integers(-10**45, 10**45), st.booleans(), st.none(),
                    st.text(max_size=8), st.floats(allow_nan=False))
keys = st.one_of(st.sampled_from(TRICKY), st.text(max_size=6), st.integers(-100, 100))
data = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


@KINDS
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data, st.sampled_from([None, True, False]))
def test_fast_path_gives_what_the_bounded_loader_gives(kind, value, flow):
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    got = fast(text, kind)
    if got is not structured._UNUSUAL:
        assert ("ok", repr(got)) == bounded(text)


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n",                      # a key twice
    "a: 1\n1: 2\ntrue: 3\n",             # 1 and true are the same key
    "a: &x [1]\nb: *x\n",                # anchors and aliases
    "base: &b {x: 1}\nd: {<<: *b, y: 2}\n",
    "a: !!str 1\n",                      # an explicit tag
    "a: 2001-12-14\n",                   # a timestamp
    "a: " + "9" * 41 + "\n",             # a number too long
    "--- 1\n--- 2\n",                    # two documents
    "",                                  # no document
    "- " * 150 + "x\n",                  # deeper than MAX_DEPTH
    "a: [1, 2\n",                        # invalid YAML
    "? [1, 2]\n: x\n",                   # a collection as a key
    "~: x\n",                            # null as a key
])
@KINDS
def test_fast_path_steps_aside_for_the_unusual(kind, text):
    assert fast(text, kind) is structured._UNUSUAL


@KINDS
def test_fast_path_is_taken_for_a_generated_topology(kind, tmp_path):
    from sgdp.capture.synth import generated_topology

    text = yaml.safe_dump(generated_topology(instances=30), sort_keys=False)
    got = fast(text, kind)
    assert got is not structured._UNUSUAL
    assert ("ok", repr(got)) == bounded(text)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    assert repr(structured.read_structured_file(str(path), "topology")) == repr(got)


def test_within_depth_is_taken_and_plain_scalars_are_typed():
    text = "a: " + "[" * 99 + "1" + "]" * 99 + "\nb: [010, 0x10, yes, ~, 1.5, '7', 12]\n"
    got = fast(text)
    assert repr(got) == bounded(text)[1]
    assert got["b"] == [8, 16, True, None, 1.5, "7", 12]


# plain scalars made of the characters that YAML 1.1's numbers, dates, booleans and nulls are made of
PLAIN_CHARS = "0123456789-+.:_eExXbBoOaAfFnNiItTsSyYlLuUzZ /,~<="


@settings(max_examples=1500, deadline=None)
@given(st.text(PLAIN_CHARS, min_size=1, max_size=12) | st.sampled_from(TRICKY))
def test_compiled_plain_scalars_are_typed_as_pyyaml_types_them(scalar):
    """Every plain scalar the compiled path takes has the value (and type) PyYAML's resolver gives
    it; the rest it leaves to the bounded loader."""
    compiled_module()
    for text in (f"a: {scalar}\n", f"[{scalar}]\n", f"{scalar}: 1\n"):
        got = fast(text, "compiled")
        if got is not structured._UNUSUAL:
            assert ("ok", repr(got)) == bounded(text), text


@pytest.mark.parametrize("scalar, value", [
    ("010", 8), ("0x10", 16), ("0b11", 3), ("1_000", 1000), ("-1", -1), ("+7", 7), ("1:30", 90), ("1.5", 1.5),
    (".5", 0.5), ("-.inf", float("-inf")), ("2001-12-14", None), ("2001-1-2 1:2:3", None),
])
def test_compiled_path_leaves_other_numbers_to_the_loader(tmp_path, scalar, value):
    """Numbers other than plain decimal integers, and dates, read as the loader reads them."""
    compiled_module()
    text = f"a: {scalar}\nb: [tcp, 10.0.0.0/8, 80, 5000-5005, 2001:db8::/32, yes, off, ~, '7']\n"
    assert fast(text, "compiled") is structured._UNUSUAL
    path = tmp_path / "t.yaml"
    path.write_text(text)
    got = structured.read_structured_file(str(path), "topology")
    assert repr(got) == bounded(text)[1]
    if value is not None:
        assert got["a"] == value


def test_compiled_path_types_the_scalars_of_a_topology():
    compiled_module()
    text = "b: [tcp, 10.0.0.1, 10.0.0.0/8, 80, 0, 5000-5005, '22', 2001:db8::/32, '::1', yes, Off, NULL, ~, y, n]\n"
    got = fast(text, "compiled")
    assert got == {"b": ["tcp", "10.0.0.1", "10.0.0.0/8", 80, 0, "5000-5005", "22", "2001:db8::/32", "::1", True,
                         False, None, None, "y", "n"]}
    assert repr(got) == bounded(text)[1]


def test_a_plain_topology_loads_without_pyyaml(tmp_path):
    """The compiled path reads a plain file without importing PyYAML (its import is a tenth of the
    start-up of a small topology); a fresh interpreter, since this one has it already."""
    compiled_module()
    path = tmp_path / "t.yaml"
    path.write_text("version: 1\nvpcs:\n  - {name: v, cidr: 10.0.0.0/16}\n")
    code = ("import sys; from sgdp.topology.structured import read_structured_file; "
            f"d = read_structured_file({str(path)!r}, 'topology'); print(d['vpcs'][0]['cidr'], 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["10.0.0.0/16", "False"]


@pytest.mark.parametrize("text", ["\ufeffa: 1\n", "\ufeff\ufeffa: 1\n", "\ufeff\ufeff", "\ufeff\ufeff: 1\n",
                                  "a: 1\r\nb: [x, 2]\r\n"])
def test_compiled_path_reads_byte_order_marks_as_pyyaml_does(tmp_path, text):
    """libyaml's own encoding detection takes a leading byte-order mark off (its scanner a second
    one): the compiled path leaves the detection to it, as PyYAML does."""
    compiled_module()
    got = fast(text, "compiled")
    if got is not structured._UNUSUAL:
        assert ("ok", repr(got)) == bounded(text)
    path = tmp_path / "t.yaml"
    path.write_bytes(text.encode())
    want = bounded(text)
    if want[0] == "ok":
        assert repr(structured.read_structured_file(str(path), "topology")) == want[1]
