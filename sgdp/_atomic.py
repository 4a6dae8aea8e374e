"""Output files that never look complete when they are not.

Every file sgdp writes is written as ``NAME.partial`` beside its final name and renamed to ``NAME``
only once the whole of it is written and closed; a write error, an exception or a signal removes the
partial file instead. So a file at its final name is always a whole one (the earlier one is kept
until the rename replaces it). A failed write is an :class:`~sgdp.errors.OutputError` naming the
final path.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import IO, Any, Iterator

from sgdp.errors import OutputError

PARTIAL = ".partial"


def cannot_write(path: str, exc: OSError) -> OutputError:
    """The one-line error for an output that could not be written."""
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}")


def replace_into_place(partial: str, final: str) -> None:
    try:
        os.replace(partial, final)
    except OSError as exc:
        raise cannot_write(final, exc) from None


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def discard(path: str) -> None:
    """Remove a partial file, ignoring every error (the run is failing already)."""
    try:
        os.remove(path)
    except OSError:
        pass


@contextmanager
def partial_file(path: str, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """Open ``path`` for writing as ``path.partial``; when the block ends normally the file is closed
    and renamed to ``path``, else it is removed. An OSError while opening, writing, closing or
    renaming is an OutputError naming ``path``. A path that exists and is not a regular file (a
    FIFO, ``/dev/stdout``) is written directly: there is nothing to rename."""
    if os.path.exists(path) and not os.path.isfile(path):
        try:
            with open(path, mode, **open_args) as fh:
                yield fh
        except OSError as exc:
            raise cannot_write(path, exc) from None
        return
    partial = path + PARTIAL
    try:
        fh = open(partial, mode, **open_args)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        try:
            yield fh
        finally:
            fh.close()  # flushes: may fail too
    except OSError as exc:
        discard(partial)
        raise cannot_write(path, exc) from None
    except BaseException:
        discard(partial)
        raise
    move_into_place(partial, path)


def move_into_place(partial: str, path: str) -> None:
    """Rename a whole ``partial`` file to ``path``; when the rename fails (an OutputError naming
    ``path``), the partial file is removed."""
    try:
        replace_into_place(partial, path)
    except OutputError:
        discard(partial)
        raise
