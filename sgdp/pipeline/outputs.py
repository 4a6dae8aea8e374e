"""The output directory of a replay, written so that it never reads as a finished run when it is not.

* Every output is written as ``NAME.partial`` in the output directory and renamed to ``NAME`` only
  when the run ends (:meth:`OutputDir.commit`); ``summary.json`` is renamed last, so a directory
  with a ``summary.json`` holds the outputs of that run and no other.
* The ``summary.json`` of an earlier run is removed before anything is written; the other outputs
  of an earlier run (``verdicts.*``, ``allowed.pcap``, ``denied.pcap``) no longer read as a
  finished run from then on, and are removed by a background thread while this run reads and
  evaluates (the file system frees a large file's blocks slowly: replacing a 122 MB verdict file
  took 70 ms at the end of the run; now the rename finds no file). An output that is an input of
  this run (a split capture replayed again, an ``--expect`` file) is kept until it is replaced at
  the end, as before; one this run does not write is then removed.
* A run cut short by a write error (a full disk, a permission problem) or a signal keeps no
  verdicts or split captures (:meth:`OutputDir.abort`): the partial files and the earlier run's
  outputs are removed, and ``summary.json`` says ``"complete": false`` and why (when the disk still
  takes it).
* A corrupt capture is not a cut-short run: SPEC S15 processes the packets before the corruption
  and writes their outputs; they are committed under their usual names, and ``summary.json`` says
  ``"complete": false`` with the capture error.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Iterable

from sgdp._atomic import PARTIAL, cannot_write, discard, partial_file, remove_quietly, replace_into_place
from sgdp.errors import OutputError, UsageError

__all__ = ["OUTPUT_NAMES", "PARTIAL", "SUMMARY", "OutputDir", "cannot_write", "remove_quietly", "replace_into_place"]

OUTPUT_NAMES = ("verdicts.csv", "verdicts.jsonl", "verdicts.parquet", "allowed.pcap", "denied.pcap")
SUMMARY = "summary.json"


def _identities(paths: Iterable[str]) -> set:
    """What names each file, whichever path reaches it: its real path, and its device and inode
    (a bind mount or a case-insensitive file system reach one file by two real paths)."""
    out: set = set()
    for path in paths:
        out.add(os.path.realpath(path))
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


class OutputDir:
    """One replay's outputs in ``directory``: partial files while it runs, renamed when it ends."""

    def __init__(self, directory: str, inputs: Iterable[str] = ()):
        """``inputs``: the files this run reads (captures, the ``--expect`` file...): an earlier
        output among them stays until the end of the run."""
        self.directory = directory
        self.partials: dict[str, str] = {}  # final path -> partial path
        self._clearing: threading.Thread | None = None
        self._clear_error: tuple[str, OSError] | None = None
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError:
            raise UsageError(f"-o {directory}: exists and is not a directory") from None
        except OSError as exc:
            raise UsageError(f"-o {directory}: {exc.strerror}") from None
        if not os.path.isdir(directory):
            raise UsageError(f"-o {directory}: exists and is not a directory")
        try:  # the earlier run's summary goes first: its other outputs no longer read as a finished run
            remove_quietly(os.path.join(directory, SUMMARY))
        except OSError as exc:
            raise cannot_write(os.path.join(directory, SUMMARY), exc) from None
        read = _identities(inputs)
        earlier = [path for path in (self.final(n) for n in OUTPUT_NAMES)
                   if os.path.lexists(path) and not (_identities([path]) & read)]
        if earlier:
            self._clearing = threading.Thread(target=self._remove_earlier, args=(earlier,), name="sgdp-outputs",
                                              daemon=True)
            self._clearing.start()

    def _remove_earlier(self, paths: list[str]) -> None:
        for path in paths:
            try:
                remove_quietly(path)
            except OSError as exc:  # commit() reports the first (as it would have failed to replace it)
                if self._clear_error is None:
                    self._clear_error = (path, exc)

    def _wait_for_clearing(self) -> None:
        if self._clearing is not None:
            self._clearing.join()
            self._clearing = None

    def final(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def partial(self, name: str) -> str:
        """The path to write output ``name`` to while the run lasts."""
        final = self.final(name)
        self.partials[final] = final + PARTIAL
        return final + PARTIAL

    def commit(self, summary: dict[str, Any]) -> None:
        """Rename every output into place, remove the earlier run's others, write summary.json last."""
        self._wait_for_clearing()
        if self._clear_error is not None:
            raise cannot_write(*self._clear_error)
        for final, partial in self.partials.items():
            if os.path.exists(partial):
                replace_into_place(partial, final)
        for name in OUTPUT_NAMES:
            path = self.final(name)
            if path not in self.partials:
                try:
                    remove_quietly(path)
                except OSError as exc:
                    raise cannot_write(path, exc) from None
        self.write_summary(summary)

    def abort(self, summary: dict[str, Any] | None) -> None:
        """A run cut short: remove the partial files and the earlier run's outputs; then, if it can
        be written, a summary.json that says the run did not complete."""
        self._wait_for_clearing()
        for path in list(self.partials.values()) + [self.final(n) for n in OUTPUT_NAMES]:
            discard(path)
        if summary is not None:
            try:
                self.write_summary(summary)
            except OutputError:
                pass  # the disk refuses even that: partial_file removed its partial file

    def write_summary(self, summary: dict[str, Any]) -> None:
        with partial_file(self.final(SUMMARY), "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
