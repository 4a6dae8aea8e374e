"""Outputs of a replay (SPEC §5): verdict files (csv, jsonl, parquet), the summary, verdict-file reading
for ``--expect``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from sgdp.errors import InputError, OutputError, SgdpError, UsageError
from sgdp.pipeline.outputs import cannot_write
from sgdp.capture import DIRECTIONS, FLAG, OK, REASONS, VERDICTS, Names, PacketBatch, Verdict, VerdictBatch

_F_TRUNC = FLAG["truncated"]

VERDICT_COLUMNS = ("index", "ts", "verdict", "reason", "instance", "direction", "security_group", "rule")
FORMATS = ("csv", "jsonl", "parquet", "none")
_ARROW_POOL = None  # the Arrow memory pool of the Parquet writer (set on first use)


def _arrow_strings(values: list[str]):
    """An Arrow string array of ``values``, made from its offsets and bytes."""
    import pyarrow as pa

    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)  # a topology's names are far below 2 GB
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def _arrow_numbers(values: np.ndarray):
    """An Arrow array over a contiguous NumPy array of numbers (no copy; it keeps ``values``)."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _table(values: list[str]) -> np.ndarray:
    """Names with '' appended, so index -1 maps to the empty string."""
    return np.array(list(values) + [""], dtype=object)


class VerdictWriter:
    """Writes verdict rows batch by batch in one of ``FORMATS``."""

    def __init__(self, directory: str, fmt: str, names: Names, path: str | None = None):
        """Writes ``directory/verdicts.<fmt>``, or ``path`` when given (a partial file: errors still
        name the final one). Rows are formatted and written in a background thread (the compiled
        formatter releases the GIL), so the caller's thread only reads, routes and evaluates."""
        if fmt not in FORMATS:
            raise UsageError(f"--verdicts: {fmt!r} is not a format ({', '.join(FORMATS)})")
        self.fmt = fmt
        self.label = os.path.join(directory, f"verdicts.{fmt}") if fmt != "none" else None
        self.path = (path or self.label) if fmt != "none" else None
        self.instances = _table(names.instances)
        self.groups = _table(names.groups)
        self.rules = _table(names.rules)
        self._fh = None
        self._parquet = None
        self._pool = None
        self._pending = None
        self._buf: np.ndarray | None = None  # the formatting thread's buffer (_format_and_write)
        self._arrow_names = None
        self._index = 0
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise UsageError("--verdicts parquet needs pyarrow: pip install 'sgdp[parquet]'") from None
        if self.path is not None and fmt != "parquet":
            try:
                self._fh = open(self.path, "wb")
                if fmt == "csv":
                    self._fh.write((",".join(VERDICT_COLUMNS) + "\n").encode())
            except OSError as exc:
                raise cannot_write(self.label, exc) from None
            quote = (lambda t: json.dumps(t)) if fmt == "jsonl" else _csv
            tables = [list(VERDICTS), list(REASONS), list(names.instances) + [""], list(DIRECTIONS),
                      list(names.groups) + [""], list(names.rules) + [""]]
            self._tables = tuple(_blob([quote(t) for t in table]) for table in tables)
            self._row_bound = 200 + sum(max((len(quote(t).encode()) for t in table), default=0) for table in tables)

    def columns(self, ts: np.ndarray, vb: VerdictBatch) -> dict[str, Any]:
        n = len(vb)
        return {
            "index": np.arange(self._index, self._index + n, dtype=np.int64),
            "ts": ts,
            "verdict": np.array(VERDICTS, dtype=object)[vb.verdict],
            "reason": np.array(REASONS, dtype=object)[vb.reason],
            "instance": self.instances[vb.instance],
            "direction": np.array(DIRECTIONS, dtype=object)[vb.direction],
            "security_group": self.groups[vb.group],
            "rule": self.rules[vb.rule],
        }

    def write(self, batch: PacketBatch, vb: VerdictBatch) -> None:
        """Append the rows of one batch (``batch`` gives the timestamps: exact seconds and
        nanoseconds from a capture, else its float ``ts``). A failed write is an OutputError naming
        the file."""
        try:
            self._write(batch, vb)
        except OSError as exc:
            raise cannot_write(self.label or "verdicts", exc) from None

    def _write(self, batch: PacketBatch, vb: VerdictBatch) -> None:
        n = len(vb)
        if self.fmt == "none" or n == 0:
            self._index += n
            return
        if self.fmt == "parquet":
            table = self._arrow_table(batch["ts"], vb)
            self._index += n
            self._wait()
            self._pending = self._writer().submit(self._write_parquet, table)
            return
        sec, nsec = _seconds(batch)
        _check_codes(vb, len(sec), [len(t[1]) - 1 for t in self._tables])

        # Formatting (compiled, without the GIL) and the file write run in a background thread while
        # the caller reads and evaluates the next batch; at most one batch is pending, so memory stays
        # bounded. The thread gets its own copy of the columns (15 + 12 bytes a row): the caller may
        # reuse its arrays.
        cols = (np.array(sec, np.int64), np.array(nsec, np.uint32), vb.verdict.copy(), vb.reason.copy(),
                vb.instance.copy(), vb.direction.copy(), vb.group.copy(), vb.rule.copy())
        first = self._index
        self._index += n
        self._wait()
        self._pending = self._writer().submit(self._format_and_write, first, cols)

    def _format_and_write(self, first: int, cols: tuple) -> None:
        from sgdp.pipeline import _writers as _report

        # one buffer for every batch (only this thread formats, one batch at a time): the rows are
        # written from it as they are, not copied into a new bytes object first
        need = len(cols[0]) * self._row_bound + 1
        if self._buf is None or len(self._buf) < need:
            self._buf = np.empty(need, np.uint8)
        size = _report.format_rows(self.fmt == "jsonl", first, *cols, self._tables, self._row_bound, self._buf)
        self._fh.write(memoryview(self._buf)[:size])

    def _arrow_table(self, ts: np.ndarray, vb: VerdictBatch):
        """The batch as an Arrow table of the same columns as ``columns``: each name column a
        dictionary array, its codes over the name table (no string per row: the Parquet writer
        takes the codes as they are instead of hashing every name). A name table much longer than
        the batch is first cut to the names the batch uses, so that a row group's dictionary page
        stays the size of its names. Every array is made from its buffers: ``pa.array`` and
        ``pa.table`` on NumPy arrays or lists import pandas when it is installed (a third of a
        second and 40 MB, for nothing here)."""
        import pyarrow as pa

        global _ARROW_POOL
        if _ARROW_POOL is None:
            # the system allocator gives pages back; Arrow's default pool keeps tens of MB cached
            _ARROW_POOL = pa.system_memory_pool()
        if self._arrow_names is None:
            # per name column: its names, each once (a dictionary with a name twice would make the
            # writer fall back to plain strings) and the empty one among them; the code of the
            # empty name (-1's); how many codes the column may hold
            self._arrow_names = tuple(
                (_arrow_strings(t if "" in t else t + [""]), t.index("") if "" in t else len(t), len(t))
                for t in (list(n) for n in (VERDICTS, REASONS, self.instances[:-1], DIRECTIONS, self.groups[:-1],
                                            self.rules[:-1])))
        codes = (vb.verdict, vb.reason, vb.instance, vb.direction, vb.group, vb.rule)
        _check_codes(vb, len(ts), [size for _, _, size in self._arrow_names])
        n = len(vb)
        cols = [_arrow_numbers(np.arange(self._index, self._index + n, dtype=np.int64)),
                _arrow_numbers(np.array(ts, np.float64))]
        for code, (table, empty, _) in zip(codes, self._arrow_names):
            idx = code.astype(np.int32)
            idx[idx < 0] = empty  # -1: the empty name
            if len(table) > max(n // 8, 256):
                used = np.flatnonzero(np.bincount(idx, minlength=len(table)))
                renumber = np.zeros(len(table), np.int32)
                renumber[used] = np.arange(len(used), dtype=np.int32)
                idx, table = renumber[idx], table.take(_arrow_numbers(used))
            cols.append(pa.DictionaryArray.from_arrays(_arrow_numbers(idx), table))
        return pa.Table.from_arrays(cols, names=list(VERDICT_COLUMNS))

    def _write_parquet(self, table) -> None:
        import pyarrow.parquet as pq

        if self._parquet is None:
            # dictionary pages for the name columns only (the index and ts columns never repeat);
            # the index, consecutive integers, delta-encoded. No Arrow schema in the file: readers
            # would give the name columns back as dictionaries; without it they are strings.
            # Min/max statistics for the index and ts only (a reader can skip row groups by packet
            # or time range); the name columns' would cost 40 % of the writer's time.
            self._parquet = pq.ParquetWriter(self.path, table.schema, use_dictionary=list(VERDICT_COLUMNS[2:]),
                                             column_encoding={"index": "DELTA_BINARY_PACKED"},
                                             write_statistics=list(VERDICT_COLUMNS[:2]),
                                             store_schema=False, memory_pool=_ARROW_POOL)
        self._parquet.write_table(table)

    def _writer(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sgdp-verdicts")
        return self._pool

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()  # re-raises a write error (disk full...) here
            self._pending = None

    def close(self) -> None:
        """Finish the file; a failed write (the last one pending, or the flush) is an OutputError."""
        try:
            try:
                self._wait()
            finally:
                if self._pool is not None:
                    self._pool.shutdown()
                    self._pool = None
                fh, self._fh = self._fh, None
                if fh is not None:
                    fh.close()
            parquet, self._parquet = self._parquet, None
            if parquet is not None:
                parquet.close()
        except OSError as exc:
            raise cannot_write(self.label or "verdicts", exc) from None

    def discard(self) -> None:
        """Close without caring for errors (the run is being abandoned)."""
        try:
            self.close()
        except (OutputError, OSError):
            pass


def _check_codes(vb: VerdictBatch, n_ts: int, sizes: list[int]) -> None:
    """Every code is an index of its name table (-1 = empty where allowed) and every column has one
    row per packet: the compiled formatter follows them without checks."""
    cols = (vb.verdict, vb.reason, vb.instance, vb.direction, vb.group, vb.rule)
    if any(len(c) != len(vb) for c in cols) or n_ts != len(vb):
        raise ValueError("verdict batch: columns of different lengths")
    for col, size in zip(cols, sizes):
        if len(col) and (int(col.min()) < -1 or int(col.max()) >= size):
            raise ValueError(f"verdict batch: a code is outside its name table (0..{size - 1})")


def _blob(texts: list[str]) -> tuple[bytes, np.ndarray]:
    """Encoded names back to back, and the offsets of each (len + 1 entries)."""
    encoded = [t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return b"".join(encoded), offsets


def _seconds(batch: PacketBatch) -> tuple[np.ndarray, np.ndarray]:
    """Whole seconds and nanoseconds of each packet's timestamp."""
    sec = getattr(batch, "ts_sec", None)
    if sec is not None:
        return sec, batch.ts_nsec  # type: ignore[attr-defined]
    ts = batch["ts"]
    sec = np.floor(ts).astype(np.int64)
    nsec = np.minimum(np.round((ts - sec) * 1e9), 999_999_999).astype(np.uint32)
    return sec, nsec


def _csv(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


@dataclass
class Summary:
    """Running counts for summary.json."""

    engine: str
    packets: int = 0
    by_verdict: dict[str, int] = field(default_factory=lambda: {v: 0 for v in VERDICTS})
    by_reason: dict[str, int] = field(default_factory=dict)
    truncated: int = 0

    unmodelled_pairs: dict[tuple[int, ...], int] = field(default_factory=dict)

    MAX_PAIRS = 100_000  # distinct unmodelled address pairs remembered (memory stays bounded)

    def note_unmodelled(self, batch: PacketBatch, vb: VerdictBatch) -> None:
        """Count the address pairs of the IP packets that are ``unmodelled`` (for the replay's hint
        that the capture may not belong to the topology)."""
        from sgdp.capture import VERDICT_CODE

        counts = getattr(vb, "counts", None)
        if counts is not None and counts[VERDICT_CODE["unmodelled"]] == 0:
            return
        rows = np.flatnonzero((vb.verdict == VERDICT_CODE["unmodelled"]) & (batch["status"] == OK))
        if len(rows) == 0:
            return
        keys = np.stack([batch[k][rows].astype(np.uint64) for k in ("l3", "src_hi", "src_lo", "dst_hi", "dst_lo")], axis=1)
        uniq, counts = np.unique(keys, axis=0, return_counts=True)
        pairs = self.unmodelled_pairs
        for key, n in zip(map(tuple, uniq.tolist()), counts.tolist()):
            if key in pairs or len(pairs) < self.MAX_PAIRS:
                pairs[key] = pairs.get(key, 0) + n

    def top_unmodelled(self, n: int = 3) -> list[tuple[str, str, int]]:
        """The most frequent unmodelled address pairs: (src, dst, packets)."""
        from sgdp.topology import format_ip

        top = sorted(self.unmodelled_pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(format_ip(k[0], (k[1] << 64) | k[2]), format_ip(k[0], (k[3] << 64) | k[4]), c) for k, c in top]

    def add(self, vb: VerdictBatch, batch=None) -> None:
        """Count one batch's verdicts; with the capture batch, also its snap-length cuts that were
        evaluated from their headers (S15: ``truncated`` and not malformed)."""
        self.packets += len(vb)
        if batch is not None:
            cut = batch.flags & _F_TRUNC
            if cut.any():
                self.truncated += int(np.count_nonzero(cut.astype(bool) & (batch["status"] == OK)))
        counts = getattr(vb, "counts", None)  # the engine's own counts (VerdictBatch.counts), else:
        if counts is None:  # codes are small integers: one counting pass each (no sort)
            counts = np.concatenate((np.bincount(vb.verdict, minlength=len(VERDICTS)),
                                     np.bincount(vb.reason, minlength=len(REASONS))))
        for code, n in enumerate(counts[:len(VERDICTS)].tolist()):
            if n:
                self.by_verdict[VERDICTS[code]] += n
        for code, n in enumerate(counts[len(VERDICTS):].tolist()):
            if n:
                self.by_reason[REASONS[code]] = self.by_reason.get(REASONS[code], 0) + n

    def as_dict(self, rule_hits: list[dict], elapsed: float) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "allowed": self.by_verdict["allow"],
            "denied": self.by_verdict["deny"],
            "unmodelled": self.by_verdict["unmodelled"],
            "malformed": self.by_verdict["malformed"],
            "truncated": self.truncated,
            "by_reason": dict(sorted(self.by_reason.items())),
            "rule_hits": rule_hits,
            "elapsed_s": round(elapsed, 6),
            "packets_per_s": round(self.packets / elapsed, 1) if elapsed > 0 else None,
            "engine": self.engine,
        }


def read_verdict_file(path: str) -> Iterator[tuple[int, Verdict]]:
    """Rows of a saved verdict file (csv, jsonl or parquet, by extension) as (index, Verdict)."""
    def row_of(raw: dict, where: str) -> tuple[int, Verdict]:
        try:
            index = int(raw["index"])
            v = Verdict(*(str(raw.get(k) or "") for k in VERDICT_COLUMNS[2:]))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: {where}: not a verdict row ({exc})") from None
        if v.verdict not in VERDICTS:
            raise InputError(f"{path}: {where}: verdict {v.verdict!r} is not one of {', '.join(VERDICTS)}")
        return index, v

    import csv

    try:
        if path.endswith(".parquet"):
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise UsageError(f"{path}: reading parquet needs pyarrow: pip install 'sgdp[parquet]'") from None
            for k, raw in enumerate(pq.read_table(path).to_pylist()):
                yield row_of(raw, f"row {k}")
        elif path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as fh:
                for line_no, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            raw = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise InputError(f"{path}: line {line_no}: invalid JSON ({exc.msg})") from None
                        yield row_of(raw, f"line {line_no}")
        else:
            with open(path, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                missing = set(VERDICT_COLUMNS) - set(reader.fieldnames or ())
                if missing:
                    raise InputError(f"{path}: line 1: missing column(s) {', '.join(sorted(missing))}")
                for raw in reader:
                    yield row_of(raw, f"line {reader.line_num}")
    except OSError as exc:
        raise InputError(f"{path}: cannot read verdict file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text verdict file (byte offset {exc.start} is not UTF-8)") from None
    except SgdpError:
        raise
    except ValueError as exc:  # pyarrow's ArrowInvalid for a file that is not parquet
        raise InputError(f"{path}: not a verdict file: {exc}") from None
