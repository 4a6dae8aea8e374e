"""Start-up helpers shared by the commands.

:func:`gc_paused`: loading and compiling a topology makes many long-lived objects and few cycles, so
Python's cyclic garbage collector would scan the growing heap again and again for nothing (a
quarter of the start-up on the larger topologies). It is paused for that stretch and restored
after, as it was.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector is left as it was found (nested blocks
    and a collector already disabled are fine)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
