"""Fixtures: temp dir per test, Kamailio/sipp/Swift starters that stop what they
start, and the tails of every log attached to a failing test's report."""
import sys
from pathlib import Path

import pytest

# The shared test kit (python/switchboard_testkit), imported by harness.py and the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import harness  # noqa: E402  (needs the path above)
from switchboard_testkit import apifuzz  # noqa: E402


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, fn in getattr(item, "_sb_logs", []):
            report.sections.append((f"log: {name}", fn()))


def _register(request, name, fn):
    if not hasattr(request.node, "_sb_logs"):
        request.node._sb_logs = []
    request.node._sb_logs.append((name, fn))


@pytest.fixture
def start_kamailio(request, tmp_path):
    """start_kamailio(subscribers={...}, bridge_ports=[...], trusted=[...], defines={...})"""
    started = []

    def start(**kwargs):
        k = harness.Kamailio(tmp_path / f"k{len(started)}", **kwargs)
        started.append(k)
        _register(request, f"kamailio:{k.port}", k.tail)
        return k.start()

    yield start
    for k in started:
        k.stop()


@pytest.fixture
def sipp(request, tmp_path):
    s = harness.Sipp(tmp_path, harness.SCENARIOS)

    def logs():
        return "\n".join(harness.tail(p, 60) for p in sorted(s.dir.glob("*"))
                         if p.suffix in (".log", ".errors", ".messages"))

    _register(request, "sipp", logs)
    yield s
    s.stop()


@pytest.fixture
def swift(request, tmp_path):
    s = harness.Swift(tmp_path)
    _register(request, "swift", s.tails)
    yield s
    s.stop()


@pytest.fixture
def api_stack(request, tmp_path):
    """A bridge, the accounting worker and the gateway with an admin key and a user, for schemathesis
    (switchboard_testkit.apifuzz)."""
    stack = apifuzz.Stack(harness.BIN_DIR, tmp_path)
    _register(request, "gateway stack", stack.tails)
    yield stack
    stack.stop()
