"""Stage 3, the dataplane: the reference engine (the semantics, plainly), the rule compiler and the
classifier over ``sgdp._fastmatch``, the fast engine over the compiled dataplane, and the engine
choice.

Imports the topology and capture stages. Inside, one direction: compiler -> classifier -> fast;
common -> reference and fast; choice on top. Other stages use only the names below; ``_dataplane`` is
private to this package.
"""

from sgdp._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "choice": ["make_engine", "resolve_engine", "available_engines", "fast_available", "default_engine", "ENGINES"],
    "reference": ["ReferenceEngine"],
    "common": ["names_for", "lb_source", "Trace"],
    "fast": ["FastEngine", "Unsupported", "check_supported"],
    "compiler": ["Headers", "RuleTable", "HEADER_COLUMNS", "build_tuple_space", "first_match_reference"],
    "classifier": ["make_classifier", "FastClassifier", "ReferenceClassifier", "Classifier"],
})
