"""Caller -> Kamailio (openser-cfg) -> switchboard-bridge <-> switchboard-worker.
Needs the Swift binaries in SWITCHBOARD_BIN (default <repo>/.build/debug); these
tests fail (they are not skipped) until the binaries exist."""
import json
import socket
import time

import pytest
import zmq

import harness
from harness import LOCAL, DOMAIN

USERS = {"alice": "alice-secret"}
DECISION_TIMEOUT_MS = 500


@pytest.fixture
def switchboard(tmp_path, swift, sipp, start_kamailio):
    """Gateway UAS, routes DB, bridge and Kamailio; the worker is started by
    start_worker() so a test can leave it out."""
    gw_port, gw = sipp.start("gateway", "uas_answer.xml", timeout=60)
    routes = tmp_path / "routes.sqlite"
    swift.run("switchboard-worker", "routes", "add", "--db", routes, "--prefix", "1202",
              "--target", f"sip:{LOCAL}:{gw_port}", "--cost", "0.01")
    swift.run("switchboard-worker", "block", "add", "--db", routes, "--destination", "1900")
    sip_port, events, decisions = harness.free_port(), harness.free_port(), harness.free_port()
    bridge = swift.start("bridge", "switchboard-bridge",
                         "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{events}",
                         "--bus-decisions", f"tcp://{LOCAL}:{decisions}",
                         "--decision-timeout-ms", str(DECISION_TIMEOUT_MS),
                         "--fallback", "reject:503", "--fallback-retry-after", "30")
    harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200,
                       15, f"bridge to answer OPTIONS on {sip_port}", bridge.tail)
    assert bridge.running(), bridge.tail()
    k = start_kamailio(subscribers=USERS, bridge_ports=[sip_port])

    class S:
        pass
    s = S()
    s.kamailio, s.gateway, s.gw_port, s.bridge = k, gw, gw_port, bridge
    s.sip_port, s.events, s.decisions, s.routes = sip_port, events, decisions, routes

    def start_worker():
        worker = swift.start("worker", "switchboard-worker", "router", "--db", routes,
                             "--bridge", f"tcp://{LOCAL}:{decisions}")
        # ready = the bridge routes a probe instead of answering its 503 fallback
        uri = f"sip:12025550100@{LOCAL}:{sip_port}"
        harness.wait_until(
            lambda: not worker.running() or harness.sip_request(
                sip_port, "INVITE", uri, timeout=2,
                headers="X-Switchboard-Auth-User: probe\r\n") not in (None, 503),
            10, "the worker to join the bridge", swift.tails)
        assert worker.running(), worker.tail()
        return worker
    s.start_worker = start_worker
    return s


def call(sipp, name, k, number, status=None):
    scenario = "uac_auth_call.xml" if status is None else "uac_auth_status.xml"
    return sipp.run(name, scenario, k.port, status=status,
                    keys={"user": "alice", "domain": DOMAIN},
                    extra=["-s", number, "-au", "alice", "-ap", USERS["alice"]])


def test_routed_call_completes(switchboard, sipp):
    switchboard.start_worker()
    res = call(sipp, "alice", switchboard.kamailio, "12025550100")
    assert res.code == 0, res.report()
    assert switchboard.gateway.finish() == 0, switchboard.gateway.report()
    assert switchboard.gateway.received("BYE")


def test_blocked_number_gets_403(switchboard, sipp):
    switchboard.start_worker()
    res = call(sipp, "alice", switchboard.kamailio, "19005550100", status=403)
    assert res.code == 0, res.report()


def test_unknown_number_gets_404(switchboard, sipp):
    switchboard.start_worker()
    res = call(sipp, "alice", switchboard.kamailio, "4471234", status=404)
    assert res.code == 0, res.report()


def test_no_worker_gets_fallback_503_in_time(switchboard, sipp):
    res = call(sipp, "alice", switchboard.kamailio, "12025550100", status=503)
    assert res.code == 0, res.report()
    # two INVITEs (407 round trip) + the decision deadline, within 1 s of slack
    assert res.elapsed < DECISION_TIMEOUT_MS / 1000 + 1.0, res.report()
    final = [m for m in res.messages.read_text().split("-----") if "SIP/2.0 503" in m]
    assert final and "Retry-After: 30" in final[-1], res.report()



def test_killed_worker_means_fallback_within_the_deadline(switchboard, sipp):
    worker = switchboard.start_worker()
    worker.proc.kill()          # SIGKILL: no worker.bye, the bridge must find out by itself
    worker.proc.wait(5)
    res = call(sipp, "alice", switchboard.kamailio, "12025550100", status=503)
    assert res.code == 0, res.report()
    # the request goes to the dead worker and times out: still answered within the deadline + slack
    assert res.elapsed < DECISION_TIMEOUT_MS / 1000 + 1.0, res.report()
    # heartbeats stop, so the bridge drops the worker within 3 intervals and logs it
    harness.wait_until(lambda: "worker lost" in switchboard.bridge.log.read_text(), 6,
                       "the bridge to notice the dead worker", switchboard.bridge.tail)

def test_events_offered_then_routed(switchboard, sipp):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"call.")
    sub.connect(f"tcp://{LOCAL}:{switchboard.events}")
    try:
        switchboard.start_worker()
        time.sleep(0.2)      # ZeroMQ slow joiner: the SUB is connected before the call
        res = call(sipp, "alice", switchboard.kamailio, "12025550100")
        assert res.code == 0, res.report()
        sip_call_id = res.messages.read_text().split("Call-ID: ", 1)[1].split()[0]
        events, deadline = [], time.monotonic() + 5
        offered = routed = None
        while time.monotonic() < deadline and routed is None:
            if not sub.poll(200):
                continue
            topic, payload = sub.recv_multipart()[:2]
            event = json.loads(payload)
            assert topic.decode() == event["type"], (topic, event)
            events.append(event)
            # the readiness probe calls also produce events: follow this call only
            if event["type"] == "call.offered" and event["offer"]["sip_call_id"] == sip_call_id:
                offered = event
            elif offered and event["type"] == "call.routed" and event["call_id"] == offered["call_id"]:
                routed = event
        assert offered and routed, events
        for e in (offered, routed):
            assert e["v"] == 1 and e["bridge_id"] and isinstance(e["seq"], int) and e["ts"], e
        assert routed["seq"] > offered["seq"]
        assert offered["offer"]["auth_user"] == "alice", offered
        assert offered["offer"]["request_uri"]["user"] == "12025550100", offered
        assert routed["routed"]["fallback"] is False and routed["routed"]["worker_id"], routed
        assert routed["routed"]["targets"][0]["uri"].startswith("sip:12025550100@"), routed
    finally:
        sub.close()


def test_sip_from_a_stranger_gets_403_and_places_no_call(switchboard):
    """Only the proxy may send the bridge SIP: a stranger's INVITE, even one that claims
    Kamailio's X-Switchboard-Auth-User, is refused before any worker hears of it."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"call.offered")
    sub.connect(f"tcp://{LOCAL}:{switchboard.events}")
    try:
        switchboard.start_worker()
        time.sleep(0.2)      # ZeroMQ slow joiner
        while sub.poll(300):     # the readiness probe's events
            sub.recv_multipart()
        uri = f"sip:12025550100@{LOCAL}:{switchboard.sip_port}"
        claim = "X-Switchboard-Auth-User: alice\r\nX-Switchboard-Source: 127.0.0.1:5060;transport=udp\r\n"
        assert harness.sip_request(switchboard.sip_port, "INVITE", uri, headers=claim, source="127.0.0.2") == 403
        assert not sub.poll(1000), sub.recv_multipart()
        # A TCP connection from the stranger is closed before it can say anything.
        with socket.create_connection((LOCAL, switchboard.sip_port), timeout=2, source_address=("127.0.0.2", 0)) as tcp:
            tcp.settimeout(2)
            try:
                assert tcp.recv(1) == b""
            except ConnectionResetError:
                pass
        # The same INVITE from the proxy's address is offered and routed.
        assert harness.sip_request(switchboard.sip_port, "INVITE", uri, headers=claim) == 302
        assert sub.poll(2000)
    finally:
        sub.close()
