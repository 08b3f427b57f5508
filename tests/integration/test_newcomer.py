"""What a newcomer meets: the README's test command on a machine without Chromium, the API docs offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_browser_tests(**env: str) -> subprocess.CompletedProcess[str]:
    """Collect and run tests/e2e with no Chromium to be found (an empty PATH, a CHROMIUM that is not there)."""
    environment = {key: value for key, value in os.environ.items() if key != "REQUIRE_BROWSER_TESTS"}
    environment.update({"PATH": str(ROOT / "no-such-bin"), "CHROMIUM": str(ROOT / "no-such-chromium"), **env})
    return subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-rs", "-p", "no:cacheprovider",
                           "tests/e2e"],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)


def test_without_chromium_the_browser_tests_skip_saying_how_to_install_it():
    result = run_browser_tests()
    assert result.returncode == 0, result.stdout + result.stderr
    assert " skipped" in result.stdout and " passed" not in result.stdout and " failed" not in result.stdout
    assert "error" not in result.stdout.lower()
    assert "Chromium not found" in result.stdout and "apt-get install -y chromium" in result.stdout


def test_ci_requires_the_browser_tests_so_a_missing_chromium_fails():
    result = run_browser_tests(REQUIRE_BROWSER_TESTS="1")
    assert result.returncode != 0
    assert "Chromium not found" in result.stdout + result.stderr


def test_ci_sets_the_variable_that_requires_the_browser_tests():
    assert "export REQUIRE_BROWSER_TESTS=1" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.usefixtures("connection")
def test_the_api_docs_load_no_asset_from_the_internet(client):
    page = client.get("/docs").get_data(as_text=True)
    assert "https://" not in page and "http://" not in page
    assets = [part.split('"')[0] for part in page.split('src="')[1:]] + \
             [part.split('"')[0] for part in page.split('href="')[1:]]
    assert assets, page
    for asset in assets:
        with client.get(asset) as response:
            assert response.status_code == 200, asset
            assert len(response.get_data()) > 1000, asset
