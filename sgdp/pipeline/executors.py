"""Executors: where the dataplane runs — this process, N processes of this machine, or Ray actors.

All three stream the same way (:meth:`Executor.run`): batches of a capture in, ``(batch, [verdict
batch per engine])`` out, in capture order. An executor runs one or more engines side by side over
the same packets (``replay`` runs one, ``diff`` two), each built from an :class:`EngineSpec`.

* :class:`LocalExecutor` — today's single process: the engines here, one batch at a time.
* :class:`ProcessExecutor` (``--workers N``) — N worker processes, each owning one shard of every
  engine. The capture reader decodes each batch's header columns straight into the workers'
  shared memory (:attr:`Executor.blocks`, given to ``read_batches``); the coordinator writes the
  dataplane clock and the rows grouped by shard (sgdp.pipeline.shard) into a small shared slot;
  every worker runs its rows where they lie and writes its verdict columns into the shared output
  slot at those rows, so the coordinator neither copies nor merges. Several slots are in flight,
  so reading and writing overlap the workers' work; pipes carry only slot and block numbers. No
  packet bytes move: headers only.
* :class:`RayExecutor` (``--ray ADDRESS``) — one Ray actor per shard; each batch goes into the
  object store once, with its rows grouped by shard, and every actor runs its rows of it.

Faults end the run with :class:`ExecutorError` (exit 2, one line naming the worker): a worker that
dies (killed, out of memory), a Ray actor that dies, a cluster that cannot be reached.
"""

from __future__ import annotations

import gc
import math
import mmap
import os
import signal
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from sgdp.capture import PACKET_COLUMNS, BlockPool, PacketBatch, VerdictBatch, block_size, is_stream
from sgdp.errors import SgdpError, UsageError
from sgdp._atomic import discard
from sgdp.topology import Topology
from sgdp.pipeline.shard import Router, ShardKeys

VERDICT_DTYPES = {"verdict": np.uint8, "reason": np.uint8, "instance": np.int32, "direction": np.uint8,
                  "group": np.int32, "rule": np.int32}
IN_FLIGHT = 4  # batches in flight between the coordinator and the workers
# Column blocks of the capture reader in the worker processes' shared memory: enough for every
# batch alive at once (IN_FLIGHT, the two read ahead, the one being read, the one being routed, the
# one the caller is writing: about ten), with room to spare (only the blocks used are ever touched,
# the pool hands out the first free one); a batch read into memory of its own is copied into its
# slot, as before.
SHARED_BLOCKS = IN_FLIGHT + 8


class ExecutorError(SgdpError):
    """A worker, an actor or the cluster failed; the run cannot finish (exit 2)."""


@dataclass
class EngineSpec:
    """What one engine runs: a topology, or the versions of a timeline (S12), and the engine name.

    Picklable (topologies are plain frozen dataclasses), so it travels to worker processes and Ray
    actors; each builds its own engine from it."""

    topology: Topology
    engine_name: str
    timeline: list[tuple[float | None, str, Topology]] | None = None  # (at, path, topology) of every version
    timeline_path: str = ""

    @property
    def topologies(self) -> list[Topology]:
        return [v[2] for v in self.timeline] if self.timeline else [self.topology]

    def build(self) -> Any:
        """A fresh engine (or a Timeline, which has the same ``process`` / ``rule_hits``)."""
        if self.timeline:
            from sgdp.pipeline.timeline import Timeline

            return Timeline.from_versions(self.timeline, self.engine_name, self.timeline_path)
        from sgdp.engine import make_engine

        return make_engine(self.topology, self.engine_name)


def _state(engine: Any) -> dict[str, Any]:
    """What the coordinator needs of an engine at the end: rule hits and the timeline's versions."""
    if hasattr(engine, "summary"):  # a Timeline
        return {"rule_hits": engine.engine.rule_hits(), "versions": engine.summary()}
    return {"rule_hits": engine.rule_hits(), "versions": None}


def _engine_name(engine: Any) -> str:
    return engine.engine_name if hasattr(engine, "engine_name") else engine.name


def _merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Rule hits summed over the shards (by group, rule, direction), timeline packets summed."""
    counts: dict[tuple[str, str, str], int] = {}
    for s in states:
        for h in s["rule_hits"]:
            key = (h["security_group"], h["rule"], h["direction"])
            counts[key] = counts.get(key, 0) + h["hits"]
    hits = [{"security_group": g, "rule": r, "direction": d, "hits": n} for (g, r, d), n in sorted(counts.items())]
    versions = None
    if states and states[0]["versions"] is not None:
        versions = [dict(v) for v in states[0]["versions"]]
        for s in states[1:]:
            for v, w in zip(versions, s["versions"]):
                v["packets"] += w["packets"]
    return {"rule_hits": hits, "versions": versions}


class Executor:
    """Runs engines over a stream of batches; see the module docstring."""

    specs: list[EngineSpec]
    names: list[Any]  # the name tables of each engine (sgdp.capture.Names)
    engine_names: list[str]
    shards = 1
    # where the capture reader should put the batches' columns (read_batches(..., blocks=...)):
    # the worker processes' shared memory; None: the reader's own memory
    blocks: BlockPool | None = None

    def run(self, batches: Iterable[Any]) -> Iterator[tuple[Any, list[VerdictBatch]]]:
        raise NotImplementedError

    def states(self) -> list[dict[str, Any]]:
        """Per engine: ``{"rule_hits": [...], "versions": [...] or None}`` (after :meth:`run`)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor(Executor):
    """The single process: the engines in this process (``--workers 1``, the default)."""

    def __init__(self, specs: Sequence[EngineSpec]):
        self.specs = list(specs)
        self.engines = [s.build() for s in self.specs]
        self.names = [e.names for e in self.engines]
        self.engine_names = [_engine_name(e) for e in self.engines]

    def run(self, batches: Iterable[Any]) -> Iterator[tuple[Any, list[VerdictBatch]]]:
        # The capture is read by a thread of its own, one batch ahead: the reader and the dataplane
        # both run without the GIL, so reading overlaps the packets' evaluation (a deeper queue
        # gained nothing measurable and held another 9 MB batch).
        # While it waits for the engines, the reader's thread does their idle work (FastEngine.idle:
        # the memory their tables take when they next grow), which the engines would otherwise do
        # in the middle of a batch.
        idle = [e.idle for e in self.engines if hasattr(e, "idle")]
        for batch in _read_ahead(batches, depth=1, idle=(lambda: any([f() for f in idle])) if idle else None):
            yield batch, [e.process(batch) for e in self.engines]

    def states(self) -> list[dict[str, Any]]:
        return [_state(e) for e in self.engines]


class _Sharded(Executor):
    """What the sharded executors share: routing, the clock, and the batches in flight (:meth:`run`)."""

    def _setup(self, specs: Sequence[EngineSpec], shards: int) -> None:
        self.specs = list(specs)
        self.shards = shards
        topologies = [t for s in self.specs for t in s.topologies]
        self.router = Router(ShardKeys(topologies), shards)
        self.clock = -math.inf
        # the name tables, as each shard's engine will have them (built here once, cheaply)
        from sgdp.engine import names_for
        from sgdp.pipeline.timeline import union_names

        self.names = [union_names(s.topologies) if s.timeline else names_for(s.topology) for s in self.specs]
        self.engine_names = [s.engine_name for s in self.specs]

    def _route(self, batch: PacketBatch, now: np.ndarray | None = None,
               order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(the dataplane clock of every packet, the rows grouped by shard, the bounds of each
        shard's rows in that order: shard k's rows are ``order[bounds[k]:bounds[k + 1]]``); the
        clock and the order written into ``now`` and ``order`` when given."""
        _, now, order, bounds = self.router.grouped(batch, self.clock, now, order)
        if len(now):
            self.clock = float(now[-1])
        return now, order, bounds.tolist()

    # The parallel executors: ``_submit`` hands a batch to the shards and returns a token,
    # ``_collect`` waits for that token's verdicts; at most IN_FLIGHT batches are out at once, and
    # a batch larger than ``max_rows`` goes in pieces.
    max_rows = math.inf
    read_ahead = False  # read the capture in a thread of its own (see _read_ahead)

    def _submit(self, batch: PacketBatch) -> Any:
        raise NotImplementedError

    def _collect(self, batch: PacketBatch, token: Any) -> list[VerdictBatch]:
        raise NotImplementedError

    def run(self, batches: Iterable[Any]) -> Iterator[tuple[Any, list[VerdictBatch]]]:
        pending: deque[tuple[Any, Any]] = deque()
        for batch in _drained(_read_ahead(batches) if self.read_ahead else batches, pending):
            while pending and (batch is None or len(pending) >= IN_FLIGHT or len(batch) > self.max_rows):
                done, token = pending.popleft()  # the source failed, every slot is taken, or a big batch
                yield done, self._collect(done, token)
            if batch is None:
                continue
            if len(batch) > self.max_rows:  # in pieces, one at a time, then whole again
                step = int(self.max_rows)
                pieces = [_slice(batch, a, a + step) for a in range(0, len(batch), step)]
                parts = [self._collect(p, self._submit(p)) for p in pieces]
                yield batch, [_concat([p[e] for p in parts]) for e in range(len(self.specs))]
                continue
            pending.append((batch, self._submit(batch)))
        while pending:
            done, token = pending.popleft()
            yield done, self._collect(done, token)


def _scatter(out: list[VerdictBatch], rows: np.ndarray, parts: list[dict[str, np.ndarray]]) -> None:
    """Each engine's verdict columns of a shard (``parts``: dicts of columns) into its rows
    ``rows`` of ``out``."""
    for target, part in zip(out, parts):
        for name in VERDICT_DTYPES:
            getattr(target, name)[rows] = part[name]


class InlineExecutor(_Sharded):
    """N shards in this process, one after the other: the sharded path without processes (tests,
    and a reference for what the parallel executors must produce)."""

    def __init__(self, specs: Sequence[EngineSpec], shards: int):
        self._setup(specs, shards)
        self.engines = [[s.build() for s in self.specs] for _ in range(shards)]
        self.engine_names = [_engine_name(e) for e in self.engines[0]]

    def _submit(self, batch: PacketBatch) -> list[VerdictBatch]:
        now, order, bounds = self._route(batch)
        cols = dict(batch.columns, ts=now)
        out = [VerdictBatch(len(batch)) for _ in self.specs]
        for i in range(self.shards):
            mine = order[bounds[i]:bounds[i + 1]]
            if len(mine):  # as a worker process does: its rows where they lie
                for engine, vb in zip(self.engines[i], out):
                    process_into(engine, cols, {k: getattr(vb, k) for k in VERDICT_DTYPES}, mine)
        return out

    def _collect(self, batch: PacketBatch, out: list[VerdictBatch]) -> list[VerdictBatch]:
        return out

    def states(self) -> list[dict[str, Any]]:
        return [_merge_states([_state(shard[e]) for shard in self.engines]) for e in range(len(self.specs))]


# ----------------------------------------------------------------------------- worker processes


def _slot_layout(rows: int) -> tuple[dict[str, tuple[int, np.dtype]], int, dict[str, tuple[int, np.dtype]], int]:
    """Byte offsets of every column in an input slot and an output slot of ``rows`` rows."""
    inp: dict[str, tuple[int, np.dtype]] = {}
    off = 0
    for name, dt in list(PACKET_COLUMNS.items()) + [("order", np.dtype(np.int64))]:
        off = -(-off // 8) * 8
        inp[name] = (off, dt)
        off += rows * dt.itemsize
    in_size = -(-off // 8) * 8
    out: dict[str, tuple[int, np.dtype]] = {}
    off = 0
    for name, dt in VERDICT_DTYPES.items():
        off = -(-off // 8) * 8
        out[name] = (off, np.dtype(dt))
        off += rows * np.dtype(dt).itemsize
    return inp, in_size, out, -(-off // 8) * 8


def _views(buf: np.ndarray, base: int, layout: dict[str, tuple[int, np.dtype]], rows: int, n: int) -> dict[str, np.ndarray]:
    return {name: buf[base + off: base + off + rows * dt.itemsize].view(dt)[:n] for name, (off, dt) in layout.items()}


def process_into(engine: Any, cols: dict[str, np.ndarray], out: dict[str, np.ndarray], rows: np.ndarray) -> None:
    """Run rows ``rows`` (in that order) of packet columns through an engine, their verdicts written
    into ``out`` at the same rows: in place when the engine can (the fast engine's
    ``process_into``), else gathered, run through its ``process`` and scattered back."""
    if hasattr(engine, "process_into"):
        engine.process_into(cols, out, rows)
        return
    vb = engine.process(PacketBatch({k: cols[k][rows] for k in PACKET_COLUMNS}))
    for name in VERDICT_DTYPES:
        out[name][rows] = getattr(vb, name)


def _block_stride(rows: int) -> int:
    """Bytes from one shared column block to the next: a multiple of 64, so that every block has
    the same place in a cache line and ``new_columns`` lays every one out alike."""
    return -(-block_size(rows) // 64) * 64


def _shared_blocks(raw: Any, rows: int) -> list[np.ndarray]:
    """The column blocks in the shared memory ``raw``: each an array of its own over a memoryview
    (not a view of one array), so that the columns cut from a block refer to that block — the
    reader's pool sees by its reference count when a block is free again (BlockPool)."""
    stride = _block_stride(rows)
    mem = memoryview(raw).cast("B")
    return [np.frombuffer(mem[i * stride:(i + 1) * stride], np.uint8) for i in range(len(mem) // stride)]


def _block_offsets(block: np.ndarray, rows: int) -> dict[str, int]:
    """Where the reader puts each packet column in a shared block (the same in every block: see
    _block_stride); the workers read them there."""
    from sgdp.capture import new_columns

    cols = new_columns(rows, block)
    return {k: cols[k].ctypes.data - block.ctypes.data for k in PACKET_COLUMNS}


def _worker_main(index: int, engines: list[Any] | None, specs: list[EngineSpec], conn: Any, in_raw: Any,
                 out_raw: Any, blocks_raw: Any, offsets: dict[str, int], rows: int) -> None:
    """A worker process: run its range of every batch slot the coordinator names. ``engines`` are
    the coordinator's, inherited through fork (built once, before the workers start); with another
    start method they are None and the worker builds its own from ``specs``. A batch's packet
    columns are in its slot, or (``block`` >= 0) where the capture reader decoded them, in shared
    block ``block``; the slot then holds only the clock and the order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle: it stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # forked: not the coordinator's handler (how it stops us)
    # Forked while the coordinator's start-up had the cyclic GC paused: what was inherited stays out
    # of every collection (freeze: no page of the shared engines is touched by one), new objects
    # are collected as usual.
    gc.freeze()
    gc.enable()
    try:
        if engines is None:
            engines = [s.build() for s in specs]
        conn.send(("ready", [_engine_name(e) for e in engines]))
        inp, in_size, out, out_size = _slot_layout(rows)
        in_buf = np.frombuffer(in_raw, np.uint8)
        out_buf = np.frombuffer(out_raw, np.uint8)
        blocks = _shared_blocks(blocks_raw, rows)
        block_cols: dict[int, dict[str, np.ndarray]] = {}  # views of each shared block, made once
        n_specs = len(engines)
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                conn.send(("states", [_state(e) for e in engines]))
                return
            _, slot, n, bounds, block = msg
            start, stop = bounds[index], bounds[index + 1]
            if stop > start:
                cols = _views(in_buf, slot * in_size, inp, rows, n)
                if block >= 0:  # decoded into shared memory: the slot has the clock and the order
                    if block not in block_cols:  # where the coordinator's reader put them
                        block_cols[block] = {k: blocks[block][off:off + rows * PACKET_COLUMNS[k].itemsize].view(
                            PACKET_COLUMNS[k]) for k, off in offsets.items()}
                    shared = block_cols[block]
                    cols = dict({k: shared[k][:n] for k in PACKET_COLUMNS}, ts=cols["ts"], order=cols["order"])
                mine = cols.pop("order")[start:stop]  # our rows, in capture order
                for e_i, engine in enumerate(engines):  # read and written where they lie: nothing gathered
                    process_into(engine, cols, _views(out_buf, (slot * n_specs + e_i) * out_size, out, rows, n), mine)
            conn.send(("done", slot))
    except MemoryError:
        _send_quietly(conn, ("error", f"worker {index} ran out of memory"))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    except SgdpError as exc:
        _send_quietly(conn, ("error", str(exc)))
    except Exception as exc:  # a bug: report it as one line with its type
        _send_quietly(conn, ("error", f"worker {index} failed: {type(exc).__name__}: {exc}"))


def _send_quietly(conn: Any, msg: Any) -> None:
    try:
        conn.send(msg)
    except Exception:
        pass


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = " (the kernel's out-of-memory killer sends this)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{why}"
    return f"exited with status {code}"


class ProcessExecutor(_Sharded):
    """``--workers N``: N worker processes of this machine (see the module docstring)."""

    def __init__(self, specs: Sequence[EngineSpec], workers: int, batch_size: int):
        import multiprocessing as mp

        self._setup(specs, workers)
        self.rows = batch_size
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self.stopped = False  # every worker has sent its final state (states())
        # fork after building the engines once here: no worker imports sgdp or compiles a topology
        # again (fork is there on Linux and the BSDs; elsewhere each worker builds its own)
        forks = "fork" in mp.get_all_start_methods()
        ctx = mp.get_context("fork" if forks else "forkserver" if "forkserver" in mp.get_all_start_methods()
                             else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["sgdp.pipeline.executors"])
        engines = [s.build() for s in self.specs] if forks else None
        self.max_rows = batch_size
        self.read_ahead = True
        self.free = list(range(IN_FLIGHT))  # the slots not in flight
        self.inp, self.in_size, self.out, self.out_size = _slot_layout(self.rows)
        n_specs = len(self.specs)
        try:
            in_raw = ctx.RawArray("B", self.in_size * IN_FLIGHT)
            out_raw = ctx.RawArray("B", self.out_size * IN_FLIGHT * n_specs)
            # anonymous shared memory when the workers are forked (inherited; not a file of
            # /dev/shm, whose size containers often limit to 64 MB: these blocks are ~110 MB of
            # address space, of which only the blocks in use are ever touched); else a RawArray,
            # which the workers map by its file
            size = _block_stride(self.rows) * SHARED_BLOCKS
            blocks_raw = mmap.mmap(-1, size) if forks else ctx.RawArray("B", size)
        except (OSError, MemoryError) as exc:
            raise ExecutorError(f"--workers: cannot allocate the shared batch memory ({exc})") from None
        self.in_buf = np.frombuffer(in_raw, np.uint8)
        self.out_buf = np.frombuffer(out_raw, np.uint8)
        # The capture reader decodes into these blocks (self.blocks, given to read_batches): the
        # workers read the packet columns where they were decoded, and only the clock and the order
        # are written into the slot. The pool holds the only references to the blocks.
        shared = _shared_blocks(blocks_raw, self.rows)
        self.block_index = {id(b): (i, b.ctypes.data) for i, b in enumerate(shared)}
        self.block_offsets = _block_offsets(shared[0], self.rows)
        self.blocks = BlockPool(self.rows, blocks=shared)
        del shared
        try:
            for i in range(workers):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_worker_main, name=f"sgdp-worker-{i}",
                                args=(i, engines, None if forks else self.specs, child, in_raw, out_raw, blocks_raw,
                                      self.block_offsets, self.rows),
                                daemon=True)
                p.start()
                child.close()
                self.procs.append(p)
                self.conns.append(parent)
            del engines  # the workers have their copies; this process runs no engine
            for i in range(workers):
                kind, value = self._recv(i)
                if kind != "ready":
                    raise ExecutorError(f"worker {i}: unexpected message {kind!r}")
                self.engine_names = value
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _recv(self, i: int) -> tuple[str, Any]:
        """The next message of worker ``i``; a dead worker is an ExecutorError naming it."""
        from multiprocessing.connection import wait

        conn, proc = self.conns[i], self.procs[i]
        while True:
            ready = wait([conn, proc.sentinel])
            if conn in ready:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    break
                if msg[0] == "error":
                    raise ExecutorError(msg[1])
                return msg
            if proc.sentinel in ready:
                break
        proc.join(1)
        raise ExecutorError(f"worker {i} (pid {proc.pid}) {_describe_exit(proc.exitcode)}; the replay is incomplete")

    def _send(self, i: int, msg: Any) -> None:
        try:
            self.conns[i].send(msg)
        except (BrokenPipeError, OSError):
            try:  # a worker that failed has usually said why before leaving
                msg = self.conns[i].recv() if self.conns[i].poll(0.5) else None
            except (EOFError, OSError):
                msg = None
            if msg is not None and msg[0] == "error":
                raise ExecutorError(msg[1]) from None
            self.procs[i].join(1)
            raise ExecutorError(f"worker {i} (pid {self.procs[i].pid}) {_describe_exit(self.procs[i].exitcode)}; "
                                "the replay is incomplete") from None

    def _submit(self, batch: PacketBatch) -> int:
        """Write the batch's clock (in place of the timestamps) and its rows grouped by shard into
        a free slot, and its header columns too unless the reader decoded them into a shared
        block; every worker runs its rows where they lie and writes their verdicts in place into
        the output slot."""
        slot = self.free.pop()
        cols = _views(self.in_buf, slot * self.in_size, self.inp, self.rows, len(batch))
        # the clock (in place of the timestamps) and the order, computed straight into the slot
        _, _, bounds = self._route(batch, cols["ts"], cols["order"])
        block = self._shared_block(batch)
        if block < 0:  # not read into shared memory (a batch of the API, a pool run dry): copied
            for name in PACKET_COLUMNS:
                if name != "ts":
                    cols[name][:] = batch.columns[name]
        for i in range(self.shards):
            self._send(i, ("run", slot, len(batch), bounds, block))
        return slot

    def _shared_block(self, batch: PacketBatch) -> int:
        """The shared block holding every packet column of the batch where the workers look for it,
        or -1. (The block stays in use while the batch is alive: the executor keeps the batch until
        the workers have answered for it.)"""
        base = batch.columns["l3"].base
        found = self.block_index.get(id(base))
        if found is None:
            return -1
        block, address = found
        for name, offset in self.block_offsets.items():
            col = batch.columns[name]
            if col.base is not base or col.ctypes.data != address + offset:
                return -1
        return block

    def _collect(self, batch: PacketBatch, slot: int) -> list[VerdictBatch]:
        for i in range(self.shards):
            kind, value = self._recv(i)
            if kind != "done" or value != slot:
                raise ExecutorError(f"worker {i}: out of step (got {kind} {value}, expected slot {slot})")
        out = []
        for e_i in range(len(self.specs)):
            res = _views(self.out_buf, (slot * len(self.specs) + e_i) * self.out_size, self.out, self.rows, len(batch))
            vb = VerdictBatch(0)
            for name, col in res.items():
                setattr(vb, name, col.copy())
            out.append(vb)
        self.free.append(slot)
        return out

    def states(self) -> list[dict[str, Any]]:
        per_worker = []
        for i in range(self.shards):
            self._send(i, ("stop",))
        for i in range(self.shards):
            kind, value = self._recv(i)
            if kind != "states":
                raise ExecutorError(f"worker {i}: out of step (got {kind})")
            per_worker.append(value)
        self.stopped = True
        return [_merge_states([w[e] for w in per_worker]) for e in range(len(self.specs))]

    def close(self) -> None:
        if self.procs and self.stopped:  # they answered "stop" and are leaving: let them
            for p in self.procs:
                p.join(1)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(2)
            if p.is_alive():
                p.kill()
                p.join(1)
        for c in self.conns:
            c.close()
        self.procs, self.conns = [], []
        self.in_buf = self.out_buf = None  # the last references to the shared slots: freed with them
        self.blocks = None


def _slice(batch: Any, start: int, stop: int) -> Any:
    from sgdp.capture import CaptureBatch

    cols = {k: v[start:stop] for k, v in batch.columns.items()}
    if isinstance(batch, CaptureBatch):
        return CaptureBatch(cols, batch.path, batch.first + start)
    return PacketBatch(cols)


def _concat(parts: list[VerdictBatch]) -> VerdictBatch:
    out = VerdictBatch(0)
    for name in VERDICT_DTYPES:
        setattr(out, name, np.concatenate([getattr(p, name) for p in parts]))
    return out


def _read_ahead(batches: Iterable[Any], depth: int = 2, idle: Any = None) -> Iterator[Any]:
    """The batches, read by a thread of their own up to ``depth`` batches ahead: the capture reader
    decodes without the GIL, so reading overlaps the coordinator's routing and merging. Whatever the
    source raises (a corrupt capture, an interrupt) is raised here, after the batches before it.
    ``idle``: called by that thread, step by step, while the queue is full (it returns whether there
    is more to do). It is only ever a speed-up: should it fail, it is not called again."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    def put(item: tuple) -> bool:
        nonlocal idle  # None once it failed
        busy = idle is not None
        while not stop.is_set():
            if busy:
                try:
                    q.put_nowait(item)
                    return True
                except queue.Full:
                    pass
                try:
                    busy = bool(idle())
                except Exception:
                    idle = None
                    busy = False
                continue
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
            return
        put(("end", None))

    thread = threading.Thread(target=read, name="sgdp-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(1.0)  # it stops at its next batch (a daemon: a reader blocked on a pipe dies with us)


def _drained(batches: Iterable[Any], pending: deque) -> Iterator[Any]:
    """The batches; when the source raises an ordinary error (a corrupt capture, S15), first a None
    (the executor then finishes the batches in flight, so their outputs are written), then the error."""
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception:
            if pending:
                yield None
            raise
        yield batch


# ----------------------------------------------------------------------------------------- Ray


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'sgdp[ray]'") from None
    return ray


class _ShardActor:
    """One shard of every engine, as a Ray actor (the class is wrapped by ``ray.remote`` on use)."""

    def __init__(self, index: int, specs: list[EngineSpec]):
        self.index = index
        self.engines = [s.build() for s in specs]
        self.out: list[dict[str, np.ndarray]] = []  # verdict columns of a whole batch, per engine: reused

    def engine_names(self) -> list[str]:
        return [_engine_name(e) for e in self.engines]

    def process(self, cols: dict[str, np.ndarray], start: int, stop: int) -> list[dict[str, np.ndarray]]:
        """Verdict columns of this shard's rows of a batch, in capture order. ``cols``: the batch's
        columns and its ``order`` (the rows grouped by shard; ours are ``order[start:stop]``), put
        into the object store once for every actor and, on the coordinator's node, read in place:
        the engine follows our rows where they lie, as a worker process does (nothing gathered)."""
        n = len(cols["order"])
        mine = cols["order"][start:stop]
        packet = {k: cols[k] for k in PACKET_COLUMNS}
        if not self.out or len(self.out[0]["verdict"]) < n:
            self.out = [{k: np.empty(n, dt) for k, dt in VERDICT_DTYPES.items()} for _ in self.engines]
        result = []
        for engine, whole in zip(self.engines, self.out):
            out = {k: v[:n] for k, v in whole.items()}
            process_into(engine, packet, out, mine)
            result.append({k: v[mine] for k, v in out.items()})  # our rows only: 15 bytes a packet back
        return result

    def states(self) -> list[dict[str, Any]]:
        return [_state(e) for e in self.engines]

    def pid(self) -> int:
        return os.getpid()


class RayExecutor(_Sharded):
    """``--ray ADDRESS``: one Ray actor per shard (see the module docstring)."""

    def __init__(self, specs: Sequence[EngineSpec], address: str, workers: int | None):
        ray = import_ray()
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            try:
                if address == "local":
                    # Ray starts its workers at nice 15 so that they yield to the driver; on a machine
                    # of a few cores the coordinator's reader and writer threads then keep the shards'
                    # actors waiting whenever two of them run (the actors, not the coordinator, are
                    # the bottleneck). The cluster we start here runs its workers at our priority.
                    ray.init(num_cpus=workers or None, include_dashboard=False, log_to_driver=False,
                             configure_logging=False, _system_config={"worker_niceness": 0})
                else:
                    _probe(address)
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
            except ExecutorError:
                raise
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError...
                raise ExecutorError(f"--ray {address}: cannot reach the Ray cluster: {_first_line(exc)}") from None
            self.started = True
        cpus = float(ray.cluster_resources().get("CPU", 1))
        if workers is None:
            workers = max(1, int(cpus))
        self._setup(specs, workers)
        self.read_ahead = True  # the capture is decoded in a thread of its own, as for worker processes
        # one CPU per actor, or a share when more actors than CPUs are asked for (else they would wait forever)
        actor = ray.remote(num_cpus=min(1.0, cpus / workers), max_restarts=0)(_ShardActor)
        self.actors = [actor.options(name=None).remote(i, self.specs) for i in range(workers)]
        try:
            names = ray.get([a.engine_names.remote() for a in self.actors])
        except Exception as exc:
            self.close()
            raise self._error(exc) from None
        self.engine_names = names[0]

    def _error(self, exc: BaseException) -> ExecutorError:
        ray = self.ray
        kind = type(exc).__name__
        if isinstance(exc, getattr(ray.exceptions, "OutOfMemoryError", ())):
            return ExecutorError(f"Ray: a node ran out of memory running a shard ({kind}); the replay is incomplete")
        if isinstance(exc, getattr(ray.exceptions, "RayActorError", ())):
            return ExecutorError(f"Ray: a shard's actor died ({_first_line(exc)}); the replay is incomplete")
        if isinstance(exc, getattr(ray.exceptions, "RayTaskError", ())):
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SgdpError):
                return ExecutorError(str(cause))
            if isinstance(cause, MemoryError):
                return ExecutorError("Ray: a shard ran out of memory; the replay is incomplete")
        return ExecutorError(f"Ray: {kind}: {_first_line(exc)}; the replay is incomplete")

    def _submit(self, batch: PacketBatch) -> list[tuple[np.ndarray, Any]]:
        """Each shard's rows of the batch to its actor: (rows, the actor's future) per shard."""
        now, order, bounds = self._route(batch)
        # the columns as they are (the clock in place of the timestamps) and the rows grouped by
        # shard: put copies them into the object store once, and nothing is gathered here
        cols = {k: now if k == "ts" else batch.columns[k] for k in PACKET_COLUMNS}
        cols["order"] = order
        try:
            ref = self.ray.put(cols)  # once: every actor reads its rows of the same object
        except Exception as exc:
            raise self._error(exc) from None
        parts = []
        for i in range(self.shards):
            start, stop = bounds[i], bounds[i + 1]
            if stop > start:
                parts.append((order[start:stop], self.actors[i].process.remote(ref, start, stop)))
        return parts

    def _collect(self, batch: PacketBatch, parts: list[tuple[np.ndarray, Any]]) -> list[VerdictBatch]:
        try:
            results = self.ray.get([ref for _, ref in parts])
        except Exception as exc:
            raise self._error(exc) from None
        out = [VerdictBatch(len(batch)) for _ in self.specs]
        for (rows, _), res in zip(parts, results):
            _scatter(out, rows, res)
        return out

    def states(self) -> list[dict[str, Any]]:
        try:
            per_actor = self.ray.get([a.states.remote() for a in self.actors])
        except Exception as exc:
            raise self._error(exc) from None
        return [_merge_states([w[e] for w in per_actor]) for e in range(len(self.specs))]

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            try:
                self.ray.kill(a)
            except Exception:
                pass
        self.actors = []
        if self.started:
            self.ray.shutdown()
            self.started = False


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail fast (one line) when the cluster's address does not answer: Ray itself retries for
    minutes, logging as it goes. ``auto`` is looked up as Ray does ($RAY_ADDRESS, then the address
    file of the cluster started last on this machine)."""
    import socket

    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS", "")
        if not target:
            try:
                with open(os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), "ray", "ray_current_cluster")) as fh:
                    target = fh.read().strip()
            except OSError:
                raise ExecutorError("--ray auto: no running Ray cluster found on this machine "
                                    "(start one with `ray start --head`, or give --ray HOST:PORT or --ray local)") from None
    target = target.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorError(f"--ray {address}: {target!r} is not HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"--ray {address}: cannot reach the Ray cluster at {host}:{port}: "
                            f"{exc.strerror or exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------- choosing


def parse_workers(value: Any) -> int | None:
    """``--workers``: a positive count or ``auto`` (None here: the machine's or cluster's cores)."""
    if value is None:
        return 1
    if isinstance(value, str):
        if value == "auto":
            return None
        try:
            value = int(value)
        except ValueError:
            raise UsageError(f"--workers: {value!r} is not a number of workers (a positive integer or auto)") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
        raise UsageError(f"--workers: {value!r} is not a number of workers (1..255 or auto)")
    return value


AUTO_MIN_BYTES = 40 << 20  # --workers auto: smaller captures run in one process (see make_executor)


def make_executor(specs: Sequence[EngineSpec], workers: Any = 1, ray: str | None = None,
                  batch_size: int = 1 << 16, captures: Sequence[str] = ()) -> Executor:
    """The executor for ``--workers`` / ``--ray``: this process when neither asks for more.

    ``--workers auto`` with ``captures`` (files) that hold less than AUTO_MIN_BYTES together runs in
    this process: starting the workers and the coordinator's copies cost more than they save on a
    capture of a few hundred thousand packets (benchmarks/README.md, "Scale-out replay")."""
    count = parse_workers(workers)
    if count is None and ray is None and captures and not any(is_stream(c) for c in captures):
        if sum(os.path.getsize(c) for c in captures) < AUTO_MIN_BYTES:
            count = 1
    if ray is not None:
        if not isinstance(ray, str) or not ray.strip():
            raise UsageError(f"--ray: {ray!r} is not a cluster address (auto, local or HOST:PORT)")
        return RayExecutor(specs, ray, count if workers not in (None, 1) else None)
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if count == 1:
        return LocalExecutor(specs)
    return ProcessExecutor(specs, count, batch_size)


def engine_spec(topology_path: str, topo: Topology, engine_name: str, timeline: str | None = None) -> EngineSpec:
    """The spec of ``replay``'s engine: the topology, or with ``timeline`` every version of it (S12)."""
    if not timeline:
        return EngineSpec(topo, engine_name)
    from sgdp.pipeline.timeline import load_timeline

    versions = [(None, topology_path, topo)] + [(v.at, v.path, v.topo) for v in load_timeline(timeline)]
    return EngineSpec(topo, engine_name, versions, timeline)


def discard_outputs(paths: Iterable[str | None]) -> None:
    """Remove the outputs of a run that did not finish, so none is taken for a complete one."""
    for path in paths:
        if path:
            discard(path)
