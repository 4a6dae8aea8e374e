"""Start-up helpers shared by the commands.

:func:`gc_paused`: loading and compiling a topology makes many long-lived objects and few cycles, so
Python's cyclic garbage collector would scan the growing heap again and again for nothing (a
quarter of the start-up on the larger topologies). It is paused for that stretch and restored
after, as it was.

:func:`pause_until_started`: the command line, run as its own process, pauses the collector from
its first line, so that the imports (NumPy's alone sets off dozens of collections) are not scanned
either. The pause ends when the first (outermost) :func:`gc_paused` block ends — the command's start-up — or at
:func:`started`: what was made by then is moved out of every later collection (``gc.freeze``: it
lives as long as the process) and the collector runs as usual from there on, so a long replay
still collects its garbage. A library caller never calls these, and its collector is only paused
and restored.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

_until_started = False  # the command line paused the collector for its start-up
_paused_once = False  # the pause is the process's: once, at its start
_depth = 0  # gc_paused blocks open


def pause_until_started() -> None:
    """Pause the collector until the start-up ends (the command line run as the process, at its
    entry; once per process: a program that calls the command line in-process again and again
    does not freeze its heap each time)."""
    global _until_started, _paused_once
    if gc.isenabled() and not _paused_once:
        gc.disable()
        _until_started = _paused_once = True


def started() -> None:
    """The start-up is over: freeze what it made and collect as usual (a no-op unless
    :func:`pause_until_started` paused the collector and it is still paused)."""
    global _until_started
    if _until_started:
        _until_started = False
        gc.freeze()
        gc.enable()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector is left as it was found (nested blocks
    and a collector already disabled are fine), except that the outermost block ends the command
    line's start-up pause (:func:`started`)."""
    global _depth
    was = gc.isenabled()
    gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _until_started:
            if _depth == 0:
                started()
        elif was:
            gc.enable()
