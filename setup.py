"""Build script: the compiled fast path (Cython) is declared here; metadata lives in pyproject.toml.

``SGDP_CYTHON_DEBUG=1`` rebuilds every extension with bounds and wraparound checks on;
``SGDP_LOOKUP_STATS=1`` builds the classifier with lookup counters (``sgdp._fastmatch.lookup_stats``).
"""

import glob
import os

from setuptools import setup

DEBUG = os.environ.get("SGDP_CYTHON_DEBUG") == "1"
STATS = os.environ.get("SGDP_LOOKUP_STATS") == "1"  # the classifier counts its work (sgdp._fastmatch.lookup_stats)


def extensions():
    sources = sorted(glob.glob(os.path.join("sgdp", "**", "_*.pyx"), recursive=True))
    if not sources:
        return []
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    exts = [
        Extension(
            os.path.splitext(src)[0].replace(os.sep, "."),
            [src],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
            + ([("SGDP_LOOKUP_STATS", "1")] if STATS else []),
            extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
        )
        for src in sources
    ]
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "cdivision": not DEBUG,
        "initializedcheck": DEBUG,
    }
    return cythonize(exts, compiler_directives=directives)


setup(ext_modules=extensions())
