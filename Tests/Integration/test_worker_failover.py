"""Two router workers, one SIGKILLed under steady load: every INVITE still gets a final response,
and the bridge reports how many the fallback answered."""
import os
import signal
import time

from switchboard_testkit.metrics import metric

import harness
from harness import LOCAL
from test_accounting import answered_call_ids, start_uac_load

RATE, SECONDS = 50, 8


def fallbacks(metrics_port):
    return int(metric(f"http://{LOCAL}:{metrics_port}/metrics", "switchboard_decision_fallbacks_total"))


def test_killing_one_of_two_workers_under_load_leaves_no_invite_unanswered(tmp_path, swift):
    sip_port, metrics_port = harness.free_ports(2)
    decisions = f"tcp://{LOCAL}:{harness.free_port()}"
    routes = tmp_path / "routes.sqlite"
    swift.run("switchboard-worker", "routes", "add", "--db", routes, "--prefix", "", "--target", "sip:gw.example.com")
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{harness.free_port()}", "--bus-decisions", decisions,
                         "--bus-replay", f"tcp://{LOCAL}:{harness.free_port()}", "--journal", tmp_path / "journal.sqlite",
                         "--decision-timeout-ms", "500", "--metrics-listen", f"{LOCAL}:{metrics_port}")
    harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)
    workers = [swift.start(f"worker{n}", "switchboard-worker", "router", "--db", routes, "--bridge", decisions,
                           "--worker-id", f"router-{n}") for n in (1, 2)]
    harness.wait_until(lambda: bridge.log.read_text().count("worker joined") == 2, 10, "both workers to join", swift.tails)
    before = fallbacks(metrics_port)

    messages = tmp_path / "uac.messages"
    calls = RATE * SECONDS
    sipp = start_uac_load(tmp_path, sip_port, RATE, calls, messages)
    try:
        time.sleep(3)
        os.killpg(workers[0].proc.pid, signal.SIGKILL)   # no worker.bye: the bridge finds out by itself
        sipp.wait(60)
    finally:
        sipp.stop()

    answered = answered_call_ids(messages)
    fell_back = fallbacks(metrics_port) - before
    print(f"\n{len(answered)} of {calls} INVITEs answered; the fallback answered {fell_back} of them")
    assert len(answered) == calls, f"{calls - len(answered)} INVITEs got no final response\n{bridge.tail()}"
    # Only requests already sent to the dead worker can miss their deadline; the rest go to the living one.
    assert fell_back <= RATE * 1, f"{fell_back} fallbacks: more than a second's worth of calls"
    assert "worker lost" in bridge.log.read_text(), bridge.tail()
