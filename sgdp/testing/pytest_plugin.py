"""pytest plugin (entry point ``sgdp``): collects scenario files ``*.sgdp.yaml`` as test items, one
per scenario and engine, so ``pytest`` runs dataplane regression tests beside unit tests."""

from __future__ import annotations

import pytest

from sgdp.engine import available_engines
from sgdp.errors import SgdpError


def pytest_collect_file(parent, file_path):
    if file_path.name.endswith((".sgdp.yaml", ".sgdp.yml")):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        for engine in available_engines():
            yield ScenarioItem.from_parent(self, name=f"scenario[{engine}]", engine=engine)


class ScenarioFailed(Exception):
    pass


class ScenarioItem(pytest.Item):
    def __init__(self, *, engine: str, **kw):
        super().__init__(**kw)
        self.engine = engine

    def runtest(self) -> None:
        from sgdp.testing.scenario import load_scenario, run_scenario

        try:
            scenario = load_scenario(str(self.path))
        except SgdpError as exc:
            raise ScenarioFailed(f"invalid scenario: {exc}") from None
        result = run_scenario(scenario, self.engine)
        if not result.passed:
            raise ScenarioFailed("\n".join(f.describe() for f in result.failures))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.path.name} [{self.engine}]"
