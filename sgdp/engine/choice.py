"""Choose an engine: ``fast`` (the compiled path) or ``reference`` (plain Python).

``fast`` falls back to the reference engine, with a warning, when the extension modules are not
built or when a topology exceeds a limit of the compiled engine (``sgdp.engine.fast.Unsupported``);
``SGDP_REQUIRE_EXTENSION=1`` turns that fallback into an error.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sgdp.errors import UsageError
from sgdp.topology import Topology
from sgdp.capture import Names

ENGINES = ("fast", "reference")


def default_engine() -> str:
    name = os.environ.get("SGDP_ENGINE", "fast")
    if name not in ENGINES:
        raise UsageError(f"SGDP_ENGINE={name!r} is not an engine (choose fast or reference)")
    return name


def fast_available() -> bool:
    """True when the compiled dataplane engine (``sgdp.engine.fast`` over ``sgdp._fastmatch``) imports."""
    try:
        import sgdp.engine.fast  # noqa: F401
    except ImportError:
        return False
    return True


_warned = False


def resolve_engine(name: str | None) -> str:
    """The engine that will actually run for a requested name (None = the default)."""
    global _warned
    name = name or default_engine()
    if name not in ENGINES:
        raise UsageError(f"{name!r} is not an engine (choose fast or reference)")
    if name == "fast" and not fast_available():
        if os.environ.get("SGDP_REQUIRE_EXTENSION") == "1":
            raise UsageError("the compiled engine is not available and SGDP_REQUIRE_EXTENSION=1")
        if not _warned:
            print("sgdp: warning: the compiled engine is not available; using the reference engine", file=sys.stderr)
            _warned = True
        return "reference"
    return name


def make_engine(topo: Topology, name: str | None = None, names: Names | None = None) -> Any:
    """A fresh stateful dataplane over ``topo`` (a ReferenceEngine or a FastEngine: the same
    interface); ``names``: name tables covering more than ``topo`` (a timeline's, sgdp.pipeline.timeline)."""
    if resolve_engine(name) == "fast":
        from sgdp.engine.fast import FastEngine, Unsupported

        try:
            return FastEngine(topo, names=names)
        except Unsupported as exc:
            if os.environ.get("SGDP_REQUIRE_EXTENSION") == "1":
                raise UsageError(f"the compiled engine cannot run this topology ({exc}) and SGDP_REQUIRE_EXTENSION=1") from None
            print(f"sgdp: warning: the compiled engine cannot run this topology ({exc}); using the reference engine",
                  file=sys.stderr)
    from sgdp.engine.reference import ReferenceEngine  # here: a fast run starts without it

    return ReferenceEngine(topo, names=names)


def available_engines() -> list[str]:
    """Engines that really run here (for tests that run on every engine)."""
    return ["reference", "fast"] if fast_available() else ["reference"]
