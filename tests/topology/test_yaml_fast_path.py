"""The fast YAML path (libyaml's events straight to Python data) gives exactly what the bounded
loader gives, or steps aside (``_UNUSUAL``) so that the bounded loader reads the file and gives its
own errors; it is taken for the files people write."""

from __future__ import annotations

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


def fast(text: str):
    return structured._plain_yaml(loaders()[0], text)


TRICKY = ["010", "0", "00", "1_000", "0x1F", "0o17", "-5", "+5", "1e3", "1.5", ".inf", "-.inf", ".nan", "yes", "No",
          "on", "~", "null", "", "true", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "<<", "=", "1" * 41, "1" * 40,
          "a: b", "- x", "#c", "'q'", "\"d\"", "tcp", "10.0.0.0/8", "22,80", "12:30", "1:2:3", "ü"]

scalars = st.one_of(st.sampled_from(TRICKY), st.integers(-10**45, 10**45), st.booleans(), st.none(),
                    st.text(max_size=8), st.floats(allow_nan=False))
keys = st.one_of(st.sampled_from(TRICKY), st.text(max_size=6), st.integers(-100, 100))
data = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data, st.sampled_from([None, True, False]))
def test_fast_path_gives_what_the_bounded_loader_gives(value, flow):
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    got = fast(text)
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
def test_fast_path_steps_aside_for_the_unusual(text):
    assert fast(text) is structured._UNUSUAL


def test_fast_path_is_taken_for_a_generated_topology(tmp_path):
    from sgdp.capture.synth import generated_topology

    text = yaml.safe_dump(generated_topology(instances=30), sort_keys=False)
    got = fast(text)
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
