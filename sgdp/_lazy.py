"""Lazy public faces for the stage packages.

Each stage's ``__init__`` names its public names and the module that defines each; a name is
imported on first use (PEP 562), so ``import sgdp.engine`` costs nothing until an engine is needed
and ``sgdp --help`` starts without NumPy or the compiled modules.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

EXPORTS: dict[str, dict[str, str]] = {}  # package -> {public name: defining module}, for the layout test


def lazy_exports(package: str, table: dict[str, list[str]]) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` from ``{module: [names]}``."""
    where = {name: module for module, names in table.items() for name in names}
    EXPORTS[package] = where

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod = importlib.import_module(f"{package}.{module}")
        value = mod if name == module else getattr(mod, name)
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(where)

    return sorted(where), __getattr__, __dir__
