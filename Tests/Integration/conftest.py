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
def start_rtpengine(request, tmp_path):
    """start_rtpengine(dtmf_log_dest="127.0.0.1:PORT") -> a running harness.RTPEngine"""
    started = []

    def start(**kwargs):
        engine = harness.RTPEngine(tmp_path / f"rtp{len(started)}", **kwargs)
        started.append(engine)
        _register(request, f"rtpengine:{engine.ng_port}", engine.log)
        return engine.start()

    yield start
    for engine in started:
        engine.stop()


@pytest.fixture
def dtmf_log():
    """The UDP listener for rtpengine's DTMF reports (harness.DTMFLog)."""
    log = harness.DTMFLog()
    yield log
    log.close()


@pytest.fixture
def rtpengine(start_rtpengine, dtmf_log):
    """A running rtpengine that reports the DTMF it sees to the dtmf_log fixture."""
    return start_rtpengine(dtmf_log_dest=dtmf_log.address)


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
