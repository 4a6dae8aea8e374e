"""Stage 5a, regression tests: scenario files (``sgdp test``), their counterexample captures and
the pytest plugin that collects ``*.sgdp.yaml``.

Imports every earlier stage through its public names.
"""

from sgdp._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "scenario": ["load_scenario", "run_scenario", "describe_packet", "format_trace", "packet_from_spec",
                 "find_scenarios", "Scenario", "ScenarioResult", "CaptureStep", "CaptureFailure"],
    "failures": ["save_scenario_failures"],
})
