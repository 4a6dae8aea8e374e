"""The HTML report in a real headless browser (Debian's chromium + chromium-driver, driven by
selenium): opened with the network off, no console errors, every chart drawn with the number of
marks the hand-worked verdicts of the Figure 1 capture give, and a screenshot kept as an artifact.

Skipped when no browser is installed, unless SGDP_REQUIRE_BROWSER=1 (CI sets it), where a missing
browser fails."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import sgdp

ROOT = Path(__file__).resolve().parents[2]
TOPO = ROOT / "examples" / "figure1" / "topology.yaml"
PCAP = ROOT / "pcaps" / "figure1.pcap"
EXPECTED = ROOT / "pcaps" / "figure1.expected.csv"
CHROMIUM = [os.environ.get("SGDP_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium")]
DRIVER = [os.environ.get("SGDP_CHROMEDRIVER"), "/usr/bin/chromedriver", shutil.which("chromedriver")]


def _first(paths):
    return next((p for p in paths if p and os.path.isfile(p)), None)


@pytest.fixture(scope="module")
def browser():
    missing = []
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium)")
    chromium, driver = _first(CHROMIUM), _first(DRIVER)
    if not chromium:
        missing.append("chromium (apt-get install chromium)")
    if not driver:
        missing.append("chromedriver (apt-get install chromium-driver)")
    if missing:
        if os.environ.get("SGDP_REQUIRE_BROWSER") == "1":
            pytest.fail("SGDP_REQUIRE_BROWSER=1 but missing: " + ", ".join(missing))
        pytest.skip("no headless browser here: missing " + ", ".join(missing))
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver), options=options)
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.emulateNetworkConditions",
                        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    yield drv
    drv.quit()


def _shot(tmp_path: Path, name: str) -> Path:
    """Where a screenshot goes: the folder SGDP_TEST_ARTIFACTS names (CI keeps it as the run's
    artifacts), else the test's temporary folder."""
    folder = Path(os.environ.get("SGDP_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _open(drv, path: Path, shot: Path) -> None:
    drv.get_log("browser")  # drop what earlier pages logged
    drv.get(path.as_uri())
    assert drv.execute_script("return navigator.onLine") is False  # the network really is off
    drv.find_element("css selector", "body[data-rendered]")
    errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [], errors
    height = drv.execute_script("return document.body.scrollHeight")
    drv.set_window_size(1280, min(height + 120, 8000))
    drv.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def _marks(drv, chart: str) -> int:
    return len(drv.find_elements("css selector", f"#{chart} svg rect.mark"))


def test_replay_report_renders_offline(browser, tmp_path: Path):
    out = tmp_path / "out"
    sgdp.replay(TOPO, [PCAP], str(out))
    page = Path(sgdp.write_report(out, tmp_path / "report.html"))
    _open(browser, page, _shot(tmp_path, "report.png"))
    with open(EXPECTED, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # time charts: one bar segment per non-empty (50 ms bucket, verdict) and (bucket, reason)
    bucket = [int(np.floor((float(r["ts"]) - 1700000000) / 0.05)) for r in rows]
    assert _marks(browser, "chart-verdict") == len({(b, r["verdict"]) for b, r in zip(bucket, rows)}) == 9
    assert _marks(browser, "chart-reason") == len({(b, r["reason"]) for b, r in zip(bucket, rows)})
    # talkers: one segment per source address and verdict (allowed / denied) of its IP packets
    src = {int(d[0]): d[sgdp.DECODE_COLUMNS.index("src")] for d in sgdp.decode([PCAP])}
    talk = {(src[int(r["index"])], r["verdict"]) for r in rows if src[int(r["index"])] and r["verdict"] in ("allow", "deny")}
    assert _marks(browser, "chart-talkers") == len(talk) == 5
    tooltips = [t.get_attribute("textContent") for t in browser.find_elements("css selector", "#chart-talkers rect.mark title")]
    assert "198.51.100.7: 3 denied of 4" in tooltips
    assert browser.find_element("css selector", "#rules details summary").text.startswith("Sg-A")


def test_diff_report_renders_offline(browser, tmp_path: Path):
    topo = yaml.safe_load(TOPO.read_text())
    topo["security_groups"][0]["rules"][0]["action"] = "deny"  # A01: ping from anywhere now denied
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(topo))
    page = Path(sgdp.diff(TOPO, new, [PCAP]).report(tmp_path / "diff.html"))
    _open(browser, page, _shot(tmp_path, "diff.png"))
    assert _marks(browser, "chart-changes") == 1  # the one echo request, allow -> deny
    assert "icmp 198.51.100.7 -> 192.168.0.10 id 7" in browser.find_element("css selector", "#changed table").text
