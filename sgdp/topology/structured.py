"""Bounded reading of YAML and JSON input files (topologies, scenarios, timelines).

A hostile or mistaken file must end in one clear error, quickly and in little memory, never in a
traceback, a hang or gigabytes of RAM. This layer sits under every structured file sgdp reads:

* at most ``max_bytes`` are read (``SGDP_MAX_INPUT_BYTES``, default 64 MiB), in chunks, so a device
  or a stream (``/dev/zero``, a FIFO) is cut off as surely as a large file;
* YAML aliases may add at most ``MAX_ALIAS_NODES`` nodes to the document when expanded (a "billion
  laughs" file is refused while it is composed, before anything is expanded), and an alias may not
  refer to the collection it is in;
* collections nest at most ``MAX_DEPTH`` levels (YAML and JSON; no RecursionError, no crash of the
  C parser, which recurses without a limit);
* a mapping may not repeat a key: both lines are named (JSON: both found again with the YAML loader).

The YAML loader is libyaml's (``CSafeLoader``) when PyYAML was built with it, else the pure-Python
``SafeLoader``; either way the scanner and parser are PyYAML's and the composition (events to nodes)
is PyYAML's Python composer with the checks above, so both loaders give the same errors.

With libyaml, a fast path reads the files people write first (:func:`_plain_yaml`: libyaml's events
straight to Python data, no node tree, each distinct plain scalar resolved once): three to six
times faster on a topology. Anything unusual in the file (anchors, aliases, tags, merge keys, a key
twice, deep nesting, long numbers, any error) sends it to the bounded loader above, which reads it
again and gives its own answer or error.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sgdp.errors import ConfigError

DEFAULT_MAX_BYTES = 64 << 20
MAX_DEPTH = 100            # a topology nests about 7 levels deep
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to a document when expanded
MAX_NUMBER_DIGITS = 40     # longer numbers are refused while parsing, before any conversion
_CHUNK = 1 << 20


def max_input_bytes() -> int:
    """The byte limit for one input file: ``$SGDP_MAX_INPUT_BYTES`` or 64 MiB."""
    raw = os.environ.get("SGDP_MAX_INPUT_BYTES", "")
    if raw.isascii() and raw.isdigit() and int(raw) > 0:
        return int(raw)
    return DEFAULT_MAX_BYTES


def read_bounded(path: str, what: str, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``, read in chunks up to ``max_bytes``; more is a ConfigError."""
    limit = max_input_bytes() if max_bytes is None else max_bytes
    chunks: list[bytes] = []
    size = 0
    try:
        with open(path, "rb") as fh:
            while size <= limit:
                chunk = fh.read(min(_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except IsADirectoryError:
        raise ConfigError(path, "", f"is a directory, not a {what} file") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read {what} file: {exc.strerror or exc}") from None
    if size > limit:
        raise ConfigError(path, "", f"{what} file is larger than {limit:,} bytes "
                                    "(the limit; set SGDP_MAX_INPUT_BYTES to raise it)")
    return b"".join(chunks)


def parse_structured(path: str, what: str, data: bytes) -> Any:
    """YAML or JSON (by the file's extension) to Python data, with the bounds of this module."""
    text = _text(path, data, "utf-8")
    if path.endswith(".json"):
        return _load_json(path, text)
    return _load_yaml(path, text)


def _text(path: str, data: bytes, encoding: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not a text file (byte offset {exc.start} is not UTF-8)") from None
    if "\0" in text:
        raise ConfigError(path, "", f"not a text file (byte offset {data.index(0)} is a NUL byte)")
    return text


# -------------------------------------------------------------------------------------------- JSON


def _load_json(path: str, text: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out:
                raise _DuplicateJsonKey(key)
            out[key] = value
        return out

    def number(text: str) -> int:
        if len(text) > MAX_NUMBER_DIGITS:
            raise _LongNumber(len(text))
        return int(text)

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=number)
    except _LongNumber as exc:
        raise ConfigError(path, "", f"a number of {exc.args[0]:,} digits (at most {MAX_NUMBER_DIGITS})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(path, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(path, "", f"nesting deeper than {MAX_DEPTH} levels") from None
    except _DuplicateJsonKey as exc:
        try:  # JSON is YAML: the YAML loader names both lines
            _load_yaml(path, text)
        except ConfigError as again:
            if "duplicate key" in again.detail:
                raise again from None
        raise ConfigError(path, "", f"duplicate key {_short(exc.args[0])} in one object") from None
    _check_depth(path, data)
    return data


class _DuplicateJsonKey(Exception):
    pass


class _LongNumber(Exception):
    pass


def _check_depth(path: str, data: Any) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth > MAX_DEPTH:
                raise ConfigError(path, "", f"nesting deeper than {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


# -------------------------------------------------------------------------------------------- YAML


def _loader_classes():
    import yaml

    bases = [yaml.SafeLoader]
    if getattr(yaml, "__with_libyaml__", False):
        bases.insert(0, yaml.CSafeLoader)
    return tuple(_bounded(base) for base in bases)


_LOADERS: tuple | None = None


def yaml_loader():
    """The bounded YAML loader class: libyaml's parser when available, else PyYAML's."""
    global _LOADERS
    if _LOADERS is None:
        _LOADERS = _loader_classes()
    return _LOADERS[0]


def _bounded(base):
    """A subclass of ``base`` (CSafeLoader or SafeLoader) whose composition counts depth and alias
    expansion and whose mappings reject duplicate keys."""
    import yaml
    from yaml.composer import Composer
    from yaml.constructor import ConstructorError
    from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    class Loader(base):  # type: ignore[misc, valid-type]
        def __init__(self, stream):
            super().__init__(stream)
            self.anchors = {}
            self._depth = 0
            self._sizes: dict[int, int] = {}   # id(node) -> its size when expanded (finished nodes)
            self._added = 0                    # nodes added by aliases so far

        # Python composition over either parser's events (CParser offers the same event calls).
        get_single_node = Composer.get_single_node
        compose_document = Composer.compose_document
        check_node = Composer.check_node
        get_node = Composer.get_node

        def compose_node(self, parent, index):
            if self.check_event(AliasEvent):
                event = self.get_event()
                anchor = event.anchor
                if anchor not in self.anchors:
                    raise yaml.composer.ComposerError(None, None, f"found undefined alias {anchor!r}", event.start_mark)
                node = self.anchors[anchor]
                size = self._sizes.get(id(node))
                if size is None:
                    raise _Bound(f"alias *{anchor} refers to the collection it is in", event.start_mark)
                self._added += size
                if self._added > MAX_ALIAS_NODES:
                    raise _Bound(f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes", event.start_mark)
                return node
            event = self.peek_event()
            anchor = event.anchor
            if anchor is not None and anchor in self.anchors:
                raise yaml.composer.ComposerError(
                    "found duplicate anchor %r; first occurrence" % anchor, self.anchors[anchor].start_mark,
                    "second occurrence", event.start_mark)
            self.descend_resolver(parent, index)
            if self.check_event(ScalarEvent):
                node = self.compose_scalar_node(anchor)
                self._sizes[id(node)] = 1
            else:
                self._depth += 1
                if self._depth > MAX_DEPTH:
                    raise _Bound(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
                if self.check_event(SequenceStartEvent):
                    node = self.compose_sequence_node(anchor)
                    size = 1 + sum(self._sizes[id(v)] for v in node.value)
                elif self.check_event(MappingStartEvent):
                    node = self.compose_mapping_node(anchor)
                    size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
                else:  # pragma: no cover - the parser never gives anything else here
                    raise yaml.composer.ComposerError(None, None, "unexpected event", event.start_mark)
                self._depth -= 1
                self._sizes[id(node)] = size
            self.ascend_resolver()
            return node

        compose_scalar_node = Composer.compose_scalar_node
        compose_sequence_node = Composer.compose_sequence_node
        compose_mapping_node = Composer.compose_mapping_node

        def construct_mapping(self, node, deep=False):
            if isinstance(node, MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node)
                    try:
                        first = seen.setdefault(key, key_node)
                    except TypeError:
                        continue
                    if first is not key_node:
                        raise _Bound(f"duplicate key {_short(key)} (first at line {first.start_mark.line + 1})",
                                     key_node.start_mark)
            return super().construct_mapping(node, deep)

        def construct_yaml_int(self, node):
            text = str(node.value)
            if sum(c.isdigit() for c in text) > MAX_NUMBER_DIGITS:
                raise _Bound(f"a number of {len(text):,} characters (at most {MAX_NUMBER_DIGITS} digits)", node.start_mark)
            return super().construct_yaml_int(node)

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    del ConstructorError, SequenceNode
    Loader.__name__ = Loader.__qualname__ = f"Bounded{base.__name__}"
    return Loader


class _Bound(Exception):
    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem = problem
        self.mark = mark


def _load_yaml(path: str, text: str) -> Any:
    data = _compiled_plain_yaml(text)  # without importing PyYAML, when the file is plain
    if data is not _UNUSUAL:
        return data
    import yaml

    cls = yaml_loader()
    if issubclass(cls, getattr(yaml, "CSafeLoader", ())):
        data = _plain_yaml(cls, text)
        if data is not _UNUSUAL:
            return data
    _prescan_flow_depth(path, text)  # the pure-Python scanner is quadratic in it; libyaml's stops at 1,000 with its own words
    loader = cls(text)
    try:
        return loader.get_single_data()
    except _Bound as exc:
        where = f"line {exc.mark.line + 1} column {exc.mark.column + 1}: " if exc.mark is not None else ""
        raise ConfigError(path, "", f"{where}{exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, "", f"invalid YAML{where}: {_short(problem, quote=False)}") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops nesting long before this
        raise ConfigError(path, "", f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


_UNUSUAL = object()  # what _plain_yaml returns for a file it leaves to the bounded loader
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_PLAIN_SCALARS = frozenset({_INT, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:float"})


def _compiled_plain_yaml(text: str) -> Any:
    """The compiled fast path (sgdp.topology._plainyaml, on libyaml's C API: no Python object per
    parser event, no PyYAML import): the same files as ``_plain_yaml`` less some it leaves to it (a
    plain scalar that reads as a number other than a plain decimal integer), the same data.
    ``_UNUSUAL`` when it is not built (libyaml's headers were missing) or does not take the file."""
    try:
        from sgdp.topology import _plainyaml
    except ImportError:
        return _UNUSUAL
    return _plainyaml.load(text, _UNUSUAL, MAX_DEPTH, MAX_NUMBER_DIGITS)


def _plain_yaml(cls, text: str) -> Any:
    """The fast path for the files people write: libyaml's events straight to Python data, with no
    node tree and no per-node Python composer. It takes one document of mappings, sequences and
    scalars (strings, integers, booleans, nulls, floats) without anchors, aliases, explicit tags or
    merge keys, nested at most MAX_DEPTH deep, with no key twice in a mapping; for anything else —
    and for any error — it returns ``_UNUSUAL`` and the bounded loader reads the file again, so every
    message (and every bound) is the bounded loader's own. Scalars are resolved by the loader's own
    resolver and built by its own constructors (a plain decimal integer by ``int``)."""
    import yaml
    from yaml.events import (DocumentEndEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                             SequenceEndEvent, SequenceStartEvent, StreamEndEvent, StreamStartEvent)
    from yaml.nodes import ScalarNode

    loader = cls(text)
    try:
        get = loader.get_event
        resolve = loader.resolve
        constructors = loader.yaml_constructors
        if not isinstance(get(), StreamStartEvent) or not isinstance(get(), DocumentStartEvent):
            return _UNUSUAL
        plain: dict[str, Any] = {}  # plain scalar text -> its value
        stack: list[Any] = []  # open collections; a mapping's pending key follows it on the stack
        keys: list[Any] = []   # per open collection: _UNUSUAL for a sequence, else the pending key or None
        result: Any = _UNUSUAL
        while True:
            event = get()
            kind = type(event)
            if kind is ScalarEvent:
                if event.anchor is not None or event.tag is not None:
                    return _UNUSUAL
                value = event.value
                if not event.style:  # plain: resolved by its text alone, once per distinct text
                    text_ = value
                    value = plain.get(text_, _UNUSUAL)
                    if value is _UNUSUAL:
                        tag = resolve(ScalarNode, text_, event.implicit)
                        if tag == _STR:
                            value = text_
                        elif tag == _INT and text_.isdigit() and (text_[0] != "0" or text_ == "0") \
                                and len(text_) <= MAX_NUMBER_DIGITS:
                            value = int(text_)
                        elif tag in _PLAIN_SCALARS:
                            value = constructors[tag](loader, ScalarNode(tag, text_, event.start_mark, event.end_mark))
                        else:  # a merge key, a timestamp, binary...
                            return _UNUSUAL
                        plain[text_] = value
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if event.anchor is not None or event.tag is not None or len(stack) >= MAX_DEPTH:
                    return _UNUSUAL
                stack.append({} if kind is MappingStartEvent else [])
                keys.append(None if kind is MappingStartEvent else _UNUSUAL)
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                value = stack.pop()
                keys.pop()
            elif kind is DocumentEndEvent:
                if stack or not isinstance(get(), StreamEndEvent):
                    return _UNUSUAL  # a second document: the bounded loader says so
                return result
            else:  # an alias, or anything unexpected
                return _UNUSUAL
            if not stack:
                result = value
                continue
            top = stack[-1]
            key = keys[-1]
            if key is _UNUSUAL:
                top.append(value)
            elif key is None:
                if isinstance(value, (dict, list)) or value is None or value in top:
                    return _UNUSUAL  # a collection or null as a key, or a key twice
                keys[-1] = (value,)
            else:
                top[key[0]] = value
                keys[-1] = None
    except (yaml.YAMLError, _Bound, ValueError, TypeError, OverflowError):
        return _UNUSUAL
    finally:
        loader.dispose()


def _prescan_flow_depth(path: str, text: str) -> None:
    """Before the bounded loader scans: the pure-Python scanner looks ahead over every unclosed
    ``[``/``{`` (quadratic in their number), and libyaml's scanner refuses more than 1,000 with a
    message of its own: refuse flow nesting deeper than MAX_DEPTH before scanning, in our words. Brackets in strings and
    comments count too; only a file with more than MAX_DEPTH of them unclosed is refused."""
    import re

    depth = 0
    for m in re.finditer(r"[\[\]{}]", text):
        depth += 1 if m.group() in "[{" else -1
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, m.start()) + 1
            raise ConfigError(path, "", f"line {line}: nesting deeper than {MAX_DEPTH} levels")
        depth = max(depth, 0)


def _short(value: Any, quote: bool = True, limit: int = 60) -> str:
    """A value as a message shows it: repr'd (control characters escaped), cut with an ellipsis."""
    text = repr(value) if quote else str(value).encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_json_file(path: str, what: str, max_bytes: int | None = None) -> Any:
    """Parse a JSON file (whatever its name) within the bounds of this module: size, nesting depth,
    number length, duplicate keys. A UTF-8 byte order mark is allowed (saved API responses have one
    when a Windows tool wrote them)."""
    return _load_json(path, _text(path, read_bounded(path, what, max_bytes), "utf-8-sig"))


def read_structured_file(path: str, what: str, max_bytes: int | None = None) -> Any:
    """Parse a YAML or JSON file into Python data within the bounds of this module."""
    return parse_structured(path, what, read_bounded(path, what, max_bytes))
