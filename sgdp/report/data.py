"""What the report shows, aggregated with NumPy from the outputs of a replay.

A replay's verdict file has one row per packet (a million rows is ordinary); the report never
carries rows, only counts: verdicts per time bucket, per instance and direction, per source address
and per flow, and per rule from ``summary.json``. The packets' addresses are not in the verdict
file, so talkers and flows come from reading the captures again (the reader streams them in
batches); the i-th packet of the captures is the i-th row of the verdict file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from sgdp.capture import DIRECTIONS, REASONS, VERDICTS, read_batches
from sgdp.errors import InputError, SgdpError, UsageError
from sgdp.pipeline import FlowTable, unique_rows
from sgdp.topology import Topology, check, format_ip, load_topology, proto_label

NAME_COLUMNS = ("verdict", "reason", "instance", "direction", "security_group", "rule")
TOP = 20  # rows of the talker and flow tables
MAX_BUCKETS = 150  # bars of a time chart
_NICE = [m * 10.0 ** e for e in range(-3, 7) for m in (1, 2, 5)]


@dataclass
class VerdictColumns:
    """A verdict file as columns: timestamps and, per name column, codes into a table of names."""

    ts: np.ndarray
    codes: dict[str, np.ndarray]
    names: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.ts)

    def column(self, name: str) -> np.ndarray:
        """A name column as strings (an object array)."""
        table = np.array(self.names[name] + [""], dtype=object)
        return table[self.codes[name]]

    def name_at(self, name: str, row: int) -> str:
        """One row's value of a name column."""
        code = int(self.codes[name][row])
        return self.names[name][code] if code >= 0 else ""


def find_verdict_file(out_dir: str) -> str:
    """The ``verdicts.<fmt>`` a replay wrote into ``out_dir``."""
    found = [os.path.join(out_dir, f"verdicts.{fmt}") for fmt in ("csv", "jsonl", "parquet")]
    found = [p for p in found if os.path.isfile(p)]
    if not found:
        raise InputError(f"{out_dir}: no verdict file (verdicts.csv, .jsonl or .parquet); "
                         "replay with --verdicts csv, jsonl or parquet to make a report")
    if len(found) > 1:  # several replays into one directory: the newest
        found.sort(key=os.path.getmtime, reverse=True)
    return found[0]


def read_verdict_columns(path: str) -> VerdictColumns:
    """Read a verdict file (csv, jsonl or parquet, by extension) into columns.

    Uses pyarrow when installed (fast); else the csv and json modules (a parquet file needs pyarrow)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        if path.endswith(".parquet"):
            raise UsageError(f"{path}: reading parquet needs pyarrow: pip install 'sgdp[parquet]'") from None
        return _read_plain(path)
    return _read_arrow(path)


def _read_arrow(path: str) -> VerdictColumns:
    """Read the verdict file in blocks (a few MB each) and keep only compact columns: the times and,
    per name column, small integer codes into a table of names; no string per row is ever made, and
    memory holds the columns, not the file."""
    import pyarrow as pa

    acc = _Accumulator(path)
    try:
        for batch in _arrow_batches(path):
            if not acc.rows and batch.num_rows:
                missing = [k for k in ("index", "ts", *NAME_COLUMNS) if k not in batch.schema.names]
                if missing:
                    raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
            if batch.num_rows:
                acc.add(batch)
    except OSError as exc:
        raise InputError(f"{path}: cannot read verdict file: {exc.strerror or exc}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"{path}: not a verdict file: {str(exc).splitlines()[0]}") from None
    return acc.finish()


BLOCK_BYTES = 4 << 20  # bytes of a verdict file parsed at a time


def _arrow_batches(path: str) -> Iterable[Any]:
    """The record batches of a verdict file, streamed (csv and jsonl in blocks, parquet by row group)."""
    import pyarrow as pa

    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=1 << 18)
    elif path.endswith(".jsonl"):
        import pyarrow.json as pj

        options = pj.ReadOptions(block_size=BLOCK_BYTES)
        if hasattr(pj, "open_json"):
            yield from pj.open_json(path, read_options=options)
        else:  # pragma: no cover - pyarrow before 15
            yield from pj.read_json(path, read_options=options).to_batches()
    else:
        yield from _csv_batches(path)


def _csv_batches(path: str) -> Iterable[Any]:
    """A verdict CSV parsed block by block: the file is cut into blocks of about BLOCK_BYTES at the
    end of a record (a newline outside quotes), and each block is parsed on its own. (pyarrow's
    streaming reader parses far ahead of what is consumed, holding a hundred MB of a big file.)"""
    import pyarrow as pa
    import pyarrow.csv as pc

    # names read straight into dictionaries: no string per row is ever made
    types = {"index": pa.int64(), "ts": pa.float64(), **{k: pa.dictionary(pa.int32(), pa.string()) for k in NAME_COLUMNS}}
    convert = pc.ConvertOptions(column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False)
    with open(path, "rb") as fh:
        header = fh.readline()
        if not header.strip():
            raise pa.ArrowInvalid("Empty CSV file")
        try:
            columns = next(csv.reader([header.decode("utf-8")]))
        except UnicodeDecodeError as exc:
            raise pa.ArrowInvalid(f"the header is not UTF-8 (byte offset {exc.start})") from None
        read = pc.ReadOptions(column_names=columns, use_threads=False)
        carry = b""
        while True:
            data = fh.read(BLOCK_BYTES)
            block = carry + data
            cut = len(block) if not data else _record_end(block)
            if cut:
                yield from pc.read_csv(pa.py_buffer(block[:cut]), read_options=read, convert_options=convert).to_batches()
            if not data:
                return
            carry = block[cut:]


def _record_end(block: bytes) -> int:
    """The length of the longest head of ``block`` (which starts at a record) that ends with a
    newline outside quotes; 0 if there is none yet."""
    cut = block.rfind(b"\n") + 1
    while cut and block.count(b'"', 0, cut) % 2:  # that newline is inside a quoted value
        cut = block.rfind(b"\n", 0, cut - 1) + 1
    return cut


class _Accumulator:
    """Verdict rows, batch by batch, into compact columns: times, and per name column codes into a
    table of the names met so far (each batch's own dictionary is mapped onto it)."""

    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        self.ts: list[np.ndarray] = []
        self.codes: dict[str, list[np.ndarray]] = {k: [] for k in NAME_COLUMNS}
        self.lookup: dict[str, dict[str, int]] = {k: {} for k in NAME_COLUMNS}

    def add(self, batch: Any) -> None:
        import pyarrow as pa

        names = batch.schema.names
        try:
            index = _numbers(batch.column(names.index("index")).cast(pa.int64()), np.int64)
            ts = _numbers(batch.column(names.index("ts")).cast(pa.float64()), np.float64)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise InputError(f"{self.path}: index or ts is not a number ({str(exc).splitlines()[0]})") from None
        _check_index(self.path, index, self.rows)
        self.ts.append(ts)
        for name in NAME_COLUMNS:
            col = batch.column(names.index(name))
            if not pa.types.is_dictionary(col.type) or col.null_count:
                if not pa.types.is_string(col.type):
                    col = col.cast(pa.string())
                col = col.fill_null("").dictionary_encode()
            table = self.lookup[name]
            remap = np.array([table.setdefault(v, len(table)) for v in col.dictionary.to_pylist()] or [0], np.int32)
            codes = remap[_numbers(col.indices.cast(pa.int32()), np.int32)]
            self.codes[name].append(codes.astype(_code_dtype(len(table))))
        self.rows += len(ts)

    def finish(self) -> VerdictColumns:
        if not self.rows:
            return _empty()
        ts = _join(self.ts, np.float64)
        codes, names = {}, {}
        for name in NAME_COLUMNS:
            chunks = self.codes.pop(name)
            codes[name], names[name] = _recode(_join(chunks, _code_dtype(len(self.lookup[name]))),
                                               list(self.lookup[name]))
        col = VerdictColumns(ts, codes, names)
        _check_names(self.path, col)
        return col


def _join(chunks: list[np.ndarray], dtype: type) -> np.ndarray:
    """``np.concatenate(chunks)``, freeing each chunk once copied (the list is emptied): memory holds
    the result and what is left of the chunks, never both whole."""
    out = np.empty(sum(len(c) for c in chunks), dtype)
    at = 0
    chunks.reverse()
    while chunks:
        c = chunks.pop()
        out[at:at + len(c)] = c
        at += len(c)
    return out


def _code_dtype(n: int) -> type:
    """The smallest signed integer type for codes 0..n-1 and -1."""
    return np.int8 if n < 127 else np.int16 if n < 32767 else np.int32


def _numbers(col: Any, dtype: type) -> np.ndarray:
    """A numeric arrow column as a NumPy array, read from its buffer (``to_numpy`` would import pandas)."""
    arr = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    if arr.null_count:
        raise ValueError("empty values")
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * np.dtype(dtype).itemsize).copy()


def _read_plain(path: str) -> VerdictColumns:
    """Without pyarrow: the csv/json modules, names coded through dicts; the rows are moved into
    compact arrays every CHUNK_ROWS rows, so that Python lists never hold the whole file."""
    lookup: dict[str, dict[str, int]] = {k: {} for k in NAME_COLUMNS}
    ts: list[float] = []
    idx: list[int] = []
    raw: dict[str, list[int]] = {k: [] for k in NAME_COLUMNS}
    done = {"rows": 0}
    ts_chunks: list[np.ndarray] = []
    code_chunks: dict[str, list[np.ndarray]] = {k: [] for k in NAME_COLUMNS}

    def flush() -> None:
        _check_index(path, np.array(idx, np.int64), done["rows"])
        done["rows"] += len(idx)
        ts_chunks.append(np.array(ts, np.float64))
        for k in NAME_COLUMNS:
            code_chunks[k].append(np.array(raw[k], _code_dtype(len(lookup[k]))))
            raw[k].clear()
        ts.clear()
        idx.clear()

    def add(row: dict, where: str) -> None:
        try:
            idx.append(int(row["index"]))
            ts.append(float(row["ts"]))
            for k in NAME_COLUMNS:
                table = lookup[k]
                v = row[k] or ""
                raw[k].append(table.setdefault(v, len(table)))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: {where}: not a verdict row ({exc})") from None
        if len(idx) >= CHUNK_ROWS:
            flush()

    try:
        with open(path, encoding="utf-8", newline="") as fh:
            if path.endswith(".jsonl"):
                for line_no, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            add(json.loads(line), f"line {line_no}")
                        except json.JSONDecodeError as exc:
                            raise InputError(f"{path}: line {line_no}: invalid JSON ({exc.msg})") from None
            else:
                reader = csv.DictReader(fh)
                for row in reader:
                    add(row, f"line {reader.line_num}")
    except OSError as exc:
        raise InputError(f"{path}: cannot read verdict file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text verdict file (byte offset {exc.start} is not UTF-8)") from None
    if idx:
        flush()
    if not done["rows"]:
        return _empty()
    codes, names = {}, {}
    for k in NAME_COLUMNS:
        codes[k], names[k] = _recode(_join(code_chunks[k], _code_dtype(len(lookup[k]))), list(lookup[k]))
    col = VerdictColumns(_join(ts_chunks, np.float64), codes, names)
    _check_names(path, col)
    return col


def _empty() -> VerdictColumns:
    return VerdictColumns(np.zeros(0), {k: np.zeros(0, np.int8) for k in NAME_COLUMNS}, {k: [] for k in NAME_COLUMNS})


def _recode(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes into ``names`` without the empty string, which becomes -1 (the last entry of
    :meth:`VerdictColumns.column`'s table), in the smallest integer type that holds them."""
    keep = [n for n in names if n != ""]
    order = sorted(keep)
    position = {n: i for i, n in enumerate(order)}
    remap = np.array([position.get(n, -1) for n in names] or [-1], _code_dtype(len(order)))
    return remap[codes], order


def _check_index(path: str, index: np.ndarray, start: int = 0) -> None:
    """Rows are numbered 0, 1, 2, ...: ``index`` holds the numbers of rows ``start`` onwards."""
    bad = np.flatnonzero(index != np.arange(start, start + len(index)))
    if len(bad):
        raise InputError(f"{path}: row {start + int(bad[0])}: index {int(index[bad[0]])} (rows must be numbered 0, 1, "
                         "2, ... as sgdp replay writes them)")


def _check_names(path: str, col: VerdictColumns) -> None:
    for name in ("verdict", "reason"):
        empty = np.flatnonzero(col.codes[name] < 0)
        if len(empty):
            raise InputError(f"{path}: row {int(empty[0])}: {name} is empty")
    for name, allowed in (("verdict", VERDICTS), ("reason", REASONS), ("direction", DIRECTIONS)):
        for value in col.names[name]:
            if value not in allowed:
                raise InputError(f"{path}: {name} {value!r} is not one of {', '.join(a for a in allowed if a)}")


def _fixed(col: VerdictColumns, name: str, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Codes of a fixed-vocabulary column as positions in ``vocabulary`` (empty = its '' or -1), int8."""
    table = np.array([vocabulary.index(n) for n in col.names[name]] + [vocabulary.index("") if "" in vocabulary else -1],
                     np.int8)
    return table[col.codes[name]]


CHUNK_ROWS = 1 << 18  # rows aggregated at a time: bounds the temporary arrays of a long replay
TRAFFIC_BATCH = 1 << 14  # packets of the captures read at a time for the talker and flow tables


def _slices(n: int) -> Iterable[slice]:
    return (slice(s, min(s + CHUNK_ROWS, n)) for s in range(0, n, CHUNK_ROWS))


# ------------------------------------------------------------------------------------------ buckets


def bucket_width(span: float, max_buckets: int = MAX_BUCKETS) -> float:
    """The smallest of 1, 2, 5 x 10^k seconds (1 ms at least) that cuts ``span`` into at most
    ``max_buckets`` buckets."""
    for w in _NICE:
        if span / w < max_buckets:
            return w
    return _NICE[-1] * math.ceil(span / _NICE[-1] / max_buckets)


def time_series(ts: np.ndarray, codes: np.ndarray, n_codes: int, t0: float | None = None,
                width: float | None = None) -> dict[str, Any]:
    """Counts per (time bucket, code): ``{"t0", "width", "buckets", "counts": [[per code] per bucket]}``."""
    if len(ts) == 0:
        return {"t0": 0.0, "width": 1.0, "buckets": 0, "counts": []}
    lo, hi = float(ts.min()), float(ts.max())
    if t0 is None:
        t0 = math.floor(lo)
    if width is None:
        width = bucket_width(hi - t0)
    # floor((t - t0) / width) grows with t, so the last bucket is the one of the latest time
    nb = max(int(np.floor((hi - t0) / width)), 0) + 1
    counts = np.zeros(nb * n_codes, np.int64)
    for part in _slices(len(ts)):
        b = np.floor((ts[part] - t0) / width).astype(np.int64)
        np.clip(b, 0, None, out=b)
        counts += np.bincount(b * n_codes + codes[part], minlength=nb * n_codes)
    return {"t0": t0, "width": width, "buckets": nb, "counts": counts.reshape(nb, n_codes).tolist()}


# ------------------------------------------------------------------------------------------- replay


def replay_data(out_dir: str, topology: str | Topology | None = None, captures: list[str] | None = None,
                findings: list | str | bool | None = None) -> dict[str, Any]:
    """Everything the replay report shows, from a replay's output directory.

    ``topology`` and ``captures`` default to the ones ``summary.json`` records; without a topology
    the per-group rule tables list only the rules that were hit; without the captures there are no
    talker and flow tables (the report says why). ``findings``: None runs ``check`` on the topology
    (its cost grows with the topology's rules and NICs, not with the capture); a list of findings
    or the path of a saved ``sgdp check --json`` output uses those; False leaves them out."""
    summary_path = os.path.join(out_dir, "summary.json")
    if not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: no such directory (give the output directory of sgdp replay)")
    try:
        with open(summary_path, encoding="utf-8") as fh:
            summary = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{summary_path}: no such file (give the output directory of sgdp replay)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{summary_path}: not a summary file ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("packets"), int):
        raise InputError(f"{summary_path}: not a summary file (no packets count)")
    verdict_file = find_verdict_file(out_dir)
    cols = read_verdict_columns(verdict_file)
    if len(cols) != summary["packets"]:
        raise InputError(f"{verdict_file}: {len(cols)} rows, but {summary_path} counts {summary['packets']} packets "
                         "(the two come from different replays)")
    notes: list[str] = []
    topo = _topology(topology, summary, notes)
    if captures is None:
        captures = [c for c in summary.get("captures") or [] if isinstance(c, str)]
        missing = [c for c in captures if not os.path.isfile(c)]
        if not captures:
            notes.append("summary.json names no capture (an older replay): no talker or flow tables; "
                         "give the captures with --capture")
        elif missing:
            notes.append(f"capture {missing[0]} is not there any more: no talker or flow tables; "
                         "give the captures with --capture")
            captures = []
    else:
        for c in captures:
            if not os.path.isfile(c):
                raise InputError(f"{c}: no such capture file")
    if isinstance(findings, str):
        findings = load_findings(findings)
    elif findings is False:
        notes.append("check was not run: the rule tables do not flag shadowed or not-effective rules")
        findings = []
    data = build(cols, summary, topo, findings)
    data["source"] = {"out_dir": out_dir, "verdict_file": os.path.basename(verdict_file),
                      "topology": summary.get("topology") if topology is None else str(getattr(topology, "file", topology)),
                      "captures": captures or summary.get("captures") or []}
    if captures:
        try:
            data.update(traffic(cols, captures))
        except InputError as exc:  # a capture that turned corrupt (the replay stopped there too) or changed
            notes.append(f"no talker or flow tables: {exc}")
    data["notes"] = notes
    return data


def _topology(topology: str | Topology | None, summary: dict, notes: list[str]) -> Topology | None:
    if isinstance(topology, Topology):
        return topology
    if topology is not None:
        return load_topology(topology)
    path = summary.get("topology")
    if not isinstance(path, str):
        notes.append("summary.json names no topology: the rule tables list only rules that were hit; "
                     "give the topology with --topology")
        return None
    if not os.path.isfile(path):
        notes.append(f"topology {path} is not there any more: the rule tables list only rules that were hit; "
                     "give the topology with --topology")
        return None
    try:
        return load_topology(path)
    except SgdpError as exc:
        notes.append(f"topology {path} no longer loads ({exc}): the rule tables list only rules that were hit")
        return None


def build(cols: VerdictColumns, summary: dict[str, Any], topo: Topology | None, findings: list | None = None) -> dict[str, Any]:
    """The aggregates that need only the verdict columns, the summary and the topology."""
    verdict = _fixed(cols, "verdict", VERDICTS)
    reason = _fixed(cols, "reason", REASONS)
    data: dict[str, Any] = {"kind": "replay", "verdicts": list(VERDICTS), "reasons": list(REASONS)}
    data["summary"] = {k: summary.get(k) for k in ("packets", "allowed", "denied", "unmodelled", "malformed", "by_reason",
                                                   "engine", "elapsed_s", "packets_per_s", "versions")}
    if len(cols):
        data["summary"]["first_ts"], data["summary"]["last_ts"] = float(cols.ts.min()), float(cols.ts.max())
    by_verdict = time_series(cols.ts, verdict, len(VERDICTS))
    data["time_verdict"] = by_verdict
    data["time_reason"] = time_series(cols.ts, reason, len(REASONS), by_verdict["t0"], by_verdict["width"])
    data["instances"] = _instances(cols, verdict)
    data["groups"] = rule_tables(summary.get("rule_hits") or [], topo, _decided(cols), findings)
    return data


def _instances(cols: VerdictColumns, verdict: np.ndarray) -> list[dict[str, Any]]:
    """Packets per (instance, direction) where the verdict was decided, by verdict."""
    ninst = len(cols.names["instance"]) + 1
    direction = _fixed(cols, "direction", DIRECTIONS)
    nv, nd = len(VERDICTS), len(DIRECTIONS)
    counts = np.zeros(ninst * nd * nv, np.int64)
    for part in _slices(len(cols)):
        inst = cols.codes["instance"][part].astype(np.int64)
        inst[inst < 0] = ninst - 1
        counts += np.bincount((inst * nd + direction[part]) * nv + verdict[part], minlength=ninst * nd * nv)
    counts = counts.reshape(ninst, nd, nv)
    names = cols.names["instance"] + [""]
    rows = []
    for i, d in zip(*np.nonzero(counts.sum(axis=2))):
        c = counts[i, d]
        rows.append({"instance": names[i], "direction": DIRECTIONS[d], "packets": int(c.sum()),
                     **{v: int(c[k]) for k, v in enumerate(VERDICTS)}})
    rows.sort(key=lambda r: (r["instance"] == "", r["instance"], r["direction"]))
    return rows


def _decided(cols: VerdictColumns) -> dict[tuple[str, str], dict[str, int]]:
    """Packets decided by each (security group, rule): allowed and denied."""
    verdict = _fixed(cols, "verdict", VERDICTS)
    ng, nr = len(cols.names["security_group"]) + 1, len(cols.names["rule"])
    totals: dict[int, int] = {}
    for part in _slices(len(cols)):
        r = cols.codes["rule"][part]
        rows = np.flatnonzero(r >= 0)
        if len(rows) == 0:
            continue
        gg = cols.codes["security_group"][part][rows].astype(np.int64)
        gg[gg < 0] = ng - 1
        key = (gg * nr + r[rows]) * 2 + (verdict[part][rows] == VERDICTS.index("deny"))
        uniq, n = np.unique(key, return_counts=True)
        for k, c in zip(uniq.tolist(), n.tolist()):
            totals[k] = totals.get(k, 0) + c
    gnames = cols.names["security_group"] + [""]
    out: dict[tuple[str, str], dict[str, int]] = {}
    for k, c in sorted(totals.items()):
        pair, denied = divmod(k, 2)
        gi, ri = divmod(pair, nr)
        item = out.setdefault((gnames[gi], cols.names["rule"][ri]), {"allowed": 0, "denied": 0})
        item["denied" if denied else "allowed"] += c
    return out


def describe_rule(rule: Any) -> dict[str, Any]:
    """A topology rule as the cells of its table row."""
    if rule.protocol is None:
        proto = "any"
    else:
        proto = proto_label(rule.protocol)
    if rule.ports is not None:
        ports = ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in rule.ports)
    elif rule.icmp_type is not None:
        ports = f"type {rule.icmp_type}" + (f" code {rule.icmp_code}" if rule.icmp_code is not None else "")
    else:
        ports = "all"
    if rule.remote_kind == "any":
        remote = "any (IPv6)" if rule.ethertype == 6 else "any"
    elif rule.remote_kind == "prefix":
        remote = str(rule.remote)
    elif rule.remote_kind == "group":
        remote = f"group {rule.remote}"
    else:
        remote = f"address group {rule.remote}"
    return {"rule": rule.id, "direction": rule.direction, "action": rule.action, "priority": rule.priority,
            "protocol": proto, "ports": ports, "remote": remote, "enabled": rule.enabled}


def load_findings(path: str) -> list[dict[str, Any]]:
    """The findings of a saved ``sgdp check --json`` output."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read findings: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not the output of sgdp check --json ({exc})") from None
    items = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(f, dict) and "kind" in f for f in items):
        raise InputError(f"{path}: not the output of sgdp check --json (no findings list)")
    return items


#: a summary ``shadowed`` finding (no instance, on many of its group's instances) gives its count here
_SUMMARY_COUNT = re.compile(r"can never match on ([\d,]+ of the [\d,]+ instances) bound to it")


def rule_tables(rule_hits: Iterable[dict], topo: Topology | None,
                decided: dict[tuple[str, str], dict[str, int]] | None = None,
                check_findings: list | None = None) -> list[dict[str, Any]]:
    """Per security group, every rule in evaluation order with its hits (``summary.json``'s
    ``rule_hits``, summed over directions), the packets it decided, and what ``check`` says of it:
    ``never hit``, ``shadowed``, ``not effective (why)``."""
    hits: dict[tuple[str, str], int] = {}
    for h in rule_hits:
        try:
            key = (str(h["security_group"]), str(h["rule"]))
            hits[key] = hits.get(key, 0) + int(h["hits"])
        except (KeyError, TypeError, ValueError):
            continue
    decided = decided or {}
    findings: dict[tuple[str, str], list[str]] = {}
    groups: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    if topo is not None:
        if check_findings is None:
            check_findings = check(topo)
        for f in check_findings:
            f = f if isinstance(f, dict) else f.as_dict()
            kind, group, rule, why, instance = (f.get(k) for k in ("kind", "security_group", "rule", "why", "instance"))
            if kind in ("shadowed", "not_effective") and group and rule:
                if kind == "shadowed":
                    count = _SUMMARY_COUNT.search(str(f.get("message") or "")) if not instance else None
                    text = "shadowed" + (f" on {instance}" if instance else f" on {count.group(1)}" if count else "")
                else:
                    text = f"not effective ({why}"
                if kind == "not_effective":
                    text += f" on {instance})" if instance else ")"
                lst = findings.setdefault((group, rule), [])
                if text not in lst:
                    lst.append(text)
        for name, sg in topo.security_groups.items():
            rows = []
            for rule in sorted(sg.rules, key=lambda r: r.sort_key):
                key = (name, rule.id)
                seen.add(key)
                row = describe_rule(rule)
                row["hits"] = hits.get(key, 0)
                d = decided.get(key, {})
                row["allowed"], row["denied"] = d.get("allowed", 0), d.get("denied", 0)
                row["findings"] = findings.get(key, [])
                rows.append(row)
            groups.append(_group(name, rows))
    extra: dict[str, list[dict[str, Any]]] = {}
    for key, texts in findings.items():  # "shadowed on a", "shadowed on b", ... -> one badge naming the count
        where = [t[len("shadowed on "):] for t in texts if t.startswith("shadowed on ")]
        if len(where) > 2:
            findings[key] = [f"shadowed on {len(where)} instances ({', '.join(where)})"] + \
                [t for t in texts if not t.startswith("shadowed on ")]
    for key in sorted(set(hits) | set(decided)):
        if key in seen or (topo is not None and key[0] in topo.network_acls):
            continue
        d = decided.get(key, {})
        extra.setdefault(key[0], []).append({"rule": key[1], "direction": "", "action": "", "priority": None,
                                              "protocol": "", "ports": "", "remote": "", "enabled": True,
                                              "hits": hits.get(key, 0), "allowed": d.get("allowed", 0),
                                              "denied": d.get("denied", 0),
                                              "findings": [] if topo is None else ["not in this topology"]})
    for name, rows in extra.items():
        groups.append(_group(name, rows))
    return groups


def _group(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "rules": rows, "never_hit": sum(1 for r in rows if not r["hits"]),
            "flagged": sum(1 for r in rows if r["findings"]), "hits": sum(r["hits"] for r in rows)}


# ---------------------------------------------------------------------------------- talkers, flows


def traffic(cols: VerdictColumns, captures: list[str]) -> dict[str, Any]:
    """Top talkers (source addresses) and top flows, from the captures read again beside the verdicts."""
    verdict = _fixed(cols, "verdict", VERDICTS)
    deny = VERDICTS.index("deny")
    n = len(cols)
    table = FlowTable()
    sources: list[tuple[np.ndarray, ...]] = []  # per batch: its distinct sources (l3, hi, lo), packets, bytes, denied
    flow_denied = np.zeros(0, np.int64)
    flow_bytes = np.zeros(0, np.int64)
    first_deny = np.zeros(0, np.int64)  # row of the first denied packet, -1 if none
    done = 0
    for batch in read_batches(captures, TRAFFIC_BATCH):
        m = len(batch)
        if done + m > n:
            raise InputError(f"{batch.path}: the captures have more packets than the verdict file's {n} rows "
                             "(not the captures of this replay?)")
        c = batch.columns
        v = verdict[done:done + m]
        denied = v == deny
        fid = table.assign(c)
        if len(table) > len(flow_denied):
            grow = max(len(table), 2 * len(flow_denied), 1024) - len(flow_denied)
            flow_denied = np.concatenate([flow_denied, np.zeros(grow, np.int64)])
            flow_bytes = np.concatenate([flow_bytes, np.zeros(grow, np.int64)])
            first_deny = np.concatenate([first_deny, np.full(grow, -1, np.int64)])
        inflow = fid >= 0
        wl = batch.wirelen.astype(np.int64)
        np.add.at(flow_bytes, fid[inflow], wl[inflow])
        rows = np.flatnonzero(inflow & denied)
        if len(rows):
            np.add.at(flow_denied, fid[rows], 1)
            uniq, first = np.unique(fid[rows], return_index=True)
            unset = first_deny[uniq] < 0
            first_deny[uniq[unset]] = done + rows[first[unset]]
        ip = np.flatnonzero((c["l3"] == 4) | (c["l3"] == 6))
        if len(ip):
            l3, hi, lo = c["l3"][ip], c["src_hi"][ip], c["src_lo"][ip]
            first, inverse = unique_rows(l3, hi, lo)
            sources.append((l3[first], hi[first], lo[first], np.bincount(inverse, minlength=len(first)),
                            np.bincount(inverse, weights=wl[ip], minlength=len(first)),
                            np.bincount(inverse, weights=denied[ip], minlength=len(first))))
        done += m
    if done != n:
        raise InputError(f"{captures[-1]}: the captures have {done} packets but the verdict file {n} rows "
                         "(not the captures of this replay?)")
    out_talkers, source_count = _top_talkers(sources)
    nf = len(table)
    counts = table.packets[:nf]
    flows = [_flow_row(table, f, int(flow_bytes[f]), int(flow_denied[f]), None) for f in
             np.argsort(-counts, kind="stable")[:TOP].tolist()]
    denied_ids = np.flatnonzero(flow_denied[:nf] > 0)
    denied_ids = denied_ids[np.argsort(-flow_denied[denied_ids], kind="stable")][:TOP]
    denied_flows = []
    for f in denied_ids.tolist():
        r = int(first_deny[f])
        by = {k: cols.name_at(k, r) for k in ("reason", "security_group", "rule", "instance", "direction")}
        by["ts"] = float(cols.ts[r])
        denied_flows.append(_flow_row(table, f, int(flow_bytes[f]), int(flow_denied[f]), by))
    return {"talkers": out_talkers, "flows": flows, "denied_flows": denied_flows, "flow_count": nf,
            "source_count": source_count}


def _top_talkers(sources: list[tuple[np.ndarray, ...]]) -> tuple[list[dict[str, Any]], int]:
    """The batches' per-source counts summed per source: the top sources by packets (then by
    address), and the number of sources."""
    if not sources:
        return [], 0
    l3, hi, lo, packets, nbytes, ndenied = (np.concatenate(x) for x in zip(*sources))
    first, inverse = unique_rows(l3, hi, lo)
    l3, hi, lo = l3[first], hi[first], lo[first]
    packets, nbytes, ndenied = (np.bincount(inverse, weights=w, minlength=len(first)).astype(np.int64)
                                for w in (packets, nbytes, ndenied))
    top = np.lexsort((lo, hi, l3, -packets))[:TOP]
    return [{"src": format_ip(int(l3[k]), (int(hi[k]) << 64) | int(lo[k])), "packets": int(packets[k]),
             "bytes": int(nbytes[k]), "denied": int(ndenied[k]), "allowed": int(packets[k] - ndenied[k])}
            for k in top.tolist()], len(first)


def _flow_row(table: FlowTable, f: int, nbytes: int, denied: int, by: dict | None) -> dict[str, Any]:
    flow = table.flow(f)
    row = {"flow": flow.label(), "packets": flow.packets, "bytes": nbytes, "denied": denied,
           "first_ts": flow.first_ts, "last_ts": flow.last_ts}
    if by is not None:
        row["first_deny"] = by
    return row


# --------------------------------------------------------------------------------------------- diff


def diff_data(result: Any, old: str, new: str) -> dict[str, Any]:
    """What the diff report shows: the changed flows and the packets whose verdict changed, over time.

    ``result`` is a :class:`sgdp.pipeline.DiffResult`; its ``by_second`` counts packets per (second,
    old verdict, new verdict)."""
    transitions = sorted({(o, n) for (_, o, n) in result.by_second})
    changed_keys = [t for t in transitions if t[0] != t[1]]
    order = changed_keys + [t for t in transitions if t[0] == t[1]]
    labels = [f"{o} → {n}" if o != n else f"unchanged ({o})" for o, n in order]
    secs = np.array([s for s, _, _ in result.by_second], np.float64)
    codes = np.array([order.index((o, n)) for _, o, n in result.by_second], np.int64)
    weights = np.array(list(result.by_second.values()), np.int64)
    series = _weighted_series(secs, codes, weights, len(order))
    changed = []
    for c in result.changed[:200]:
        changed.append({"flow": c.get("_label") or f"{c['proto']} {c['src']} -> {c['dst']}", "packets": c["packets"],
                        "changed_packets": c["changed_packets"], "first_ts": c["first_ts"], "last_ts": c["last_ts"],
                        "old": c["old"], "new": c["new"]})
    return {"kind": "diff", "old": old, "new": new, "summary": {"packets": result.packets, "flows": result.flows,
            "changed_flows": len(result.changed), "changed_packets": int(sum(c["changed_packets"] for c in result.changed)),
            "engine": result.engine}, "transitions": labels, "changed_series": len(changed_keys),
            "time_changes": series, "changed": changed, "more_changed": max(0, len(result.changed) - len(changed)),
            "notes": [f"stopped early: {result.error}"] if result.error is not None else []}


def _weighted_series(secs: np.ndarray, codes: np.ndarray, weights: np.ndarray, n_codes: int) -> dict[str, Any]:
    if len(secs) == 0:
        return {"t0": 0.0, "width": 1.0, "buckets": 0, "counts": []}
    t0 = float(secs.min())
    width = max(1.0, bucket_width(float(secs.max()) + 1 - t0))
    b = np.floor((secs - t0) / width).astype(np.int64)
    nb = int(b.max()) + 1
    counts = np.bincount(b * n_codes + codes, weights=weights, minlength=nb * n_codes).reshape(nb, n_codes)
    return {"t0": t0, "width": width, "buckets": nb, "counts": counts.astype(np.int64).tolist()}
