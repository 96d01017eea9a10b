"""The OpenSER 1.x hand-off: caller -> Kamailio (openser-cfg/kamailio.cfg with -A WITH_EXEC, the
exec_dset path openser.cfg uses) -> switchboard-exec -> the bridge's `decide` command -> a worker.
Kamailio relays to what switchboard-exec printed or answers its reject line itself."""
import json
import time

import pytest
import zmq

import harness
from harness import LOCAL, DOMAIN

USERS = {"alice": "alice-secret"}
DECISION_TIMEOUT_MS = 500
EXEC_TIMEOUT_MS = 1000


def exec_cmd(bridge_endpoint, timeout_ms=EXEC_TIMEOUT_MS, fallback="reject:480:Switchboard Unreachable"):
    return (f"{harness.BIN_DIR / 'switchboard-exec'} --bridge {bridge_endpoint} --timeout-ms {timeout_ms} "
            f"--fallback '{fallback}'")


@pytest.fixture
def handoff(tmp_path, swift, sipp, start_kamailio):
    """Gateway UAS, routes DB, a bridge (no worker until start_worker()) and Kamailio handing calls to
    it through switchboard-exec; `kamailio_to(endpoint, ...)` starts another Kamailio towards any endpoint."""
    gw_port, gw = sipp.start("gateway", "uas_answer.xml", timeout=60)
    routes = tmp_path / "routes.sqlite"
    swift.run("switchboard-worker", "routes", "add", "--db", routes, "--prefix", "1202",
              "--target", f"sip:{LOCAL}:{gw_port}", "--cost", "0.01")
    swift.run("switchboard-worker", "block", "add", "--db", routes, "--destination", "1900")
    sip_port, events, decisions, commands = harness.free_ports(4)
    bridge = swift.start("bridge", "switchboard-bridge",
                         "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{events}",
                         "--bus-decisions", f"tcp://{LOCAL}:{decisions}",
                         "--bus-commands", f"tcp://{LOCAL}:{commands}",
                         "--decision-timeout-ms", str(DECISION_TIMEOUT_MS),
                         "--fallback", "reject:503", "--fallback-retry-after", "30")
    harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200,
                       15, f"bridge to answer OPTIONS on {sip_port}", bridge.tail)
    assert bridge.running(), bridge.tail()

    class S:
        pass
    s = S()
    s.gateway, s.bridge, s.events = gw, bridge, events
    s.commands = f"tcp://{LOCAL}:{commands}"

    def kamailio_to(endpoint, **kwargs):
        return start_kamailio(subscribers=USERS, bridge_ports=[sip_port],
                              defines={"WITH_EXEC": "1", "EXEC_CMD": f'"{exec_cmd(endpoint, **kwargs)}"'})
    s.kamailio_to = kamailio_to
    s.kamailio = kamailio_to(s.commands)

    def start_worker():
        worker = swift.start("worker", "switchboard-worker", "router", "--db", routes,
                             "--bridge", f"tcp://{LOCAL}:{decisions}")
        harness.wait_until(lambda: not worker.running() or "worker joined" in bridge.log.read_text(),
                           10, "the worker to join the bridge", swift.tails)
        assert worker.running(), worker.tail()
        return worker
    s.start_worker = start_worker
    return s


def call(sipp, k, number, status=None, name="alice"):
    scenario = "uac_auth_call.xml" if status is None else "uac_auth_status.xml"
    return sipp.run(name, scenario, k.port, status=status, keys={"user": "alice", "domain": DOMAIN},
                    extra=["-s", number, "-au", "alice", "-ap", USERS["alice"]])


def final_response(res, status):
    finals = [m for m in res.messages.read_text().split("-----") if f"SIP/2.0 {status}" in m]
    assert finals, res.report()
    return finals[-1]


def test_a_call_a_worker_routes_reaches_its_target_with_events(handoff, sipp):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"call.")
    sub.connect(f"tcp://{LOCAL}:{handoff.events}")
    try:
        handoff.start_worker()
        time.sleep(0.2)      # ZeroMQ slow joiner: the SUB is connected before the call
        res = call(sipp, handoff.kamailio, "12025550100")
        assert res.code == 0, res.report()
        assert handoff.gateway.finish() == 0, handoff.gateway.report()
        assert handoff.gateway.received("BYE")
        seen = {}
        while sub.poll(1000):
            event = json.loads(sub.recv_multipart()[-1])
            seen[event["type"]] = event
        assert "call.offered" in seen and "call.routed" in seen, seen
        offered = seen["call.offered"]["offer"]
        assert offered["request_uri"]["user"] == "12025550100"
        assert offered["auth_user"] == "alice"
        assert offered["from"]["user"] == "alice"
        routed = seen["call.routed"]["routed"]
        assert routed["fallback"] is False and routed["worker_id"], routed
        assert seen["call.routed"]["call_id"] == seen["call.offered"]["call_id"]
    finally:
        sub.close()


@pytest.mark.parametrize("number, status", [("19005550100", 403), ("4471234", 404)])
def test_a_workers_reject_reaches_the_caller(handoff, sipp, number, status):
    handoff.start_worker()
    res = call(sipp, handoff.kamailio, number, status=status)
    assert res.code == 0, res.report()


def test_no_worker_means_the_bridges_fallback_within_its_deadline(handoff, sipp):
    res = call(sipp, handoff.kamailio, "12025550100", status=503)
    assert res.code == 0, res.report()
    # two INVITEs (407 round trip) + at most the decision deadline, within 1 s of slack
    assert res.elapsed < DECISION_TIMEOUT_MS / 1000 + 1.0, res.report()
    assert "Retry-After: 30" in final_response(res, 503), res.report()


def test_bridge_down_means_execs_own_fallback_and_kamailio_keeps_answering(handoff, sipp):
    k = handoff.kamailio_to(f"tcp://{LOCAL}:{harness.free_port()}", timeout_ms=300)
    res = call(sipp, k, "12025550100", status=480, name="down")
    assert res.code == 0, res.report()
    assert res.elapsed < 0.3 + 1.0, res.report()
    assert "Switchboard Unreachable" in final_response(res, 480)
    assert harness.sip_request(k.port) == 200


def test_a_bridge_that_never_answers_means_execs_fallback_in_time(handoff, sipp):
    silent = zmq.Context.instance().socket(zmq.ROUTER)
    silent.setsockopt(zmq.LINGER, 0)
    port = silent.bind_to_random_port(f"tcp://{LOCAL}")
    try:
        k = handoff.kamailio_to(f"tcp://{LOCAL}:{port}", timeout_ms=300)
        res = call(sipp, k, "12025550100", status=480, name="silent")
        assert res.code == 0, res.report()
        assert res.elapsed < 0.3 + 1.0, res.report()
        assert silent.poll(100), "switchboard-exec sent nothing to the bridge"
        frames = silent.recv_multipart()
        request = json.loads(frames[-1])
        assert request["command"]["name"] == "decide" and request["command"]["auth_user"] == "alice", request
    finally:
        silent.close()
