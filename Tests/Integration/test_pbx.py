"""Issue 13 point 3: the PBX worker (switchboard-worker pbx, rules in SQLite edited with pbx-rules) and the
decision protocol's failure step, through the real Kamailio (openser-cfg/kamailio.cfg) with sipp phones.

Extensions are numbers that are not subscribers (5000...), so Kamailio hands their calls to the bridge; each
extension's contact is a registered phone (bob, carol, ...), which the bridge reaches through Kamailio's
location service."""
import datetime
import json
import signal
import time

import pytest

import harness
import phones
from harness import DOMAIN, LOCAL
from test_b2bua import Bus, finished


def user_uri(user):
    return f"sip:{user}@{DOMAIN}"


@pytest.fixture
def pbx(tmp_path, swift, sipp, start_kamailio):
    """start(rules) → Kamailio, the bridge and the pbx worker on a PBX database that `rules` (a list of
    pbx-rules argument lists) filled first."""
    state = {}

    def start(rules, bridge_args=()):
        db = tmp_path / "pbx.sqlite"
        for args in rules:
            swift.run("switchboard-worker", "pbx-rules", *args, "--db", db)
        sip_port = harness.free_port()
        k = start_kamailio(subscribers=phones.USERS, bridge_ports=[sip_port])
        ports = dict(zip(("events", "decisions", "replay", "commands"), harness.free_ports(4)))
        bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                             "--outbound-proxy", f"{LOCAL}:{k.port}",
                             "--bus-events", f"tcp://{LOCAL}:{ports['events']}",
                             "--bus-decisions", f"tcp://{LOCAL}:{ports['decisions']}",
                             "--bus-replay", f"tcp://{LOCAL}:{ports['replay']}",
                             "--bus-commands", f"tcp://{LOCAL}:{ports['commands']}",
                             "--journal", tmp_path / "journal.sqlite", "--dialogs", tmp_path / "dialogs.sqlite",
                             "--metrics-listen", "", *bridge_args)
        harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200,
                           15, f"bridge to answer OPTIONS on {sip_port}", bridge.tail)
        bus = Bus(f"tcp://{LOCAL}:{ports['events']}", f"tcp://{LOCAL}:{ports['commands']}")
        state["bus"] = bus
        worker = swift.start("pbx", "switchboard-worker", "pbx", "--db", db, "--domain", DOMAIN,
                             "--bridge", f"tcp://{LOCAL}:{ports['decisions']}", "--reload-interval", "0.2")
        bus.wait("worker.joined", timeout=15)
        time.sleep(0.3)  # the SUB socket's subscription reaches the bridge

        class S:
            pass
        s = S()
        s.kamailio, s.bridge, s.bus, s.worker, s.db = k, bridge, bus, worker, db
        return s

    yield start
    if "bus" in state:
        state["bus"].check_contract()
        state["bus"].close()


def one_call(bus):
    ids = {e["call_id"] for e in bus.events(type="call.ended")}
    assert len(ids) == 1, bus.events()
    return ids.pop()


def test_busy_extension_is_forwarded(pbx, sipp):
    s = pbx([["extension", "--user", "5000", "--contact", user_uri("bob"), "--busy", "carol"]])
    bob = phones.start(sipp, s.kamailio, "bob", "busy")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=200)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=500)
    finished(alice, carol)
    assert alice.final_status() == 200, alice.report()
    assert [m.status for m in bob.responses("INVITE", direction="sent") if m.status >= 200] == [486], bob.report()
    assert len(carol.received("BYE")) == 1, carol.report()
    call_id = one_call(s.bus)
    routed = [e["routed"] for e in s.bus.events(call_id, "call.routed")]
    assert [r.get("step") for r in routed] == [None, 1], routed
    assert routed[0]["targets"] == [{"uri": user_uri("bob")}] and routed[1]["targets"] == [{"uri": user_uri("carol")}], routed
    failed = s.bus.events(call_id, "call.leg_failed")[0]["leg_failed"]
    assert failed["status"] == 486 and failed["cause"] == "busy", failed
    assert s.bus.types(call_id)[-2:] == ["call.connected", "call.ended"], s.bus.events(call_id)
    assert len(s.bus.events(type="call.offered")) == 1, "the step is no new call"


def test_hunt_group_moves_to_the_next_member_after_five_seconds(pbx, sipp):
    s = pbx([["group", "--name", "5001", "--strategy", "sequential", "--member", "bob", "--member", "carol",
              "--ring-seconds", "5"]])
    bob = phones.start(sipp, s.kamailio, "bob", "noanswer")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=200)
    started = time.monotonic()
    alice = phones.call(sipp, s.kamailio, "alice", "5001", hangup_after_ms=500)
    finished(alice, carol)
    assert alice.final_status() == 200, alice.report()
    assert len(bob.received("CANCEL")) == 1, bob.report()
    call_id = one_call(s.bus)
    dialing = s.bus.events(call_id, "call.dialing")
    assert [e["dialing"]["uri"] for e in dialing] == [user_uri("bob"), user_uri("carol")], dialing
    # bob rang for the group's 5 s, then carol was called
    answered = s.bus.events(call_id, "call.answered")[0]["answered"]
    assert answered["uri"] == user_uri("carol"), answered
    failed = s.bus.events(call_id, "call.leg_failed")[0]["leg_failed"]
    assert failed["cause"] == "no_answer", failed
    assert time.monotonic() - started >= 5


def test_no_answer_forward_after_n_seconds_goes_through_the_failure_step(pbx, sipp):
    s = pbx([["extension", "--user", "5002", "--contact", user_uri("bob"), "--no-answer", "carol",
              "--no-answer-seconds", "5"]])
    bob = phones.start(sipp, s.kamailio, "bob", "noanswer")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=200)
    alice = phones.call(sipp, s.kamailio, "alice", "5002", hangup_after_ms=500)
    finished(alice, carol)
    assert alice.final_status() == 200, alice.report()
    assert len(bob.received("CANCEL")) == 1, bob.report()
    call_id = one_call(s.bus)
    routed = [e["routed"] for e in s.bus.events(call_id, "call.routed")]
    assert [r.get("step") for r in routed] == [None, 1] and routed[1]["targets"] == [{"uri": user_uri("carol")}], routed


def test_unregistered_extension_is_forwarded_as_unreachable(pbx, sipp):
    """Kamailio answers 480 for a subscriber with no registration, before anything rang."""
    s = pbx([["extension", "--user", "5003", "--contact", user_uri("dave"), "--unreachable", "carol"]])
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=200)
    alice = phones.call(sipp, s.kamailio, "alice", "5003", hangup_after_ms=500)
    finished(alice, carol)
    assert alice.final_status() == 200, alice.report()
    call_id = one_call(s.bus)
    routed = [e["routed"] for e in s.bus.events(call_id, "call.routed")]
    assert routed[-1]["targets"] == [{"uri": user_uri("carol")}] and routed[-1]["step"] == 1, routed
    failed = s.bus.events(call_id, "call.leg_failed")[0]["leg_failed"]
    assert failed["uri"] == user_uri("dave") and failed["status"] == 480, failed


def test_outside_the_schedule_the_configured_answer(pbx, sipp, swift):
    # Open for one hour starting two hours from now (UTC), every day: closed now, whatever the date.
    now = datetime.datetime.now(datetime.timezone.utc)
    opens, closes = now + datetime.timedelta(hours=2), now + datetime.timedelta(hours=3)
    s = pbx([["extension", "--user", "5004", "--contact", user_uri("bob"), "--time-zone", "UTC", "--days", "mon-sun",
              "--hours", f"{opens:%H:%M}-{closes:%H:%M}", "--closed-status", "480", "--closed-reason", "Closed"]])
    bob = phones.start(sipp, s.kamailio, "bob", "answer")
    alice = phones.call(sipp, s.kamailio, "alice", "5004")
    finished(alice)
    assert alice.final_status() == 480, alice.report()
    final = [m for m in alice.responses("INVITE") if m.status == 480][-1]
    assert final.first_line.endswith("480 Closed"), final
    assert bob.received("INVITE") == [], bob.report()
    rejected = s.bus.wait("call.rejected")["rejected"]
    assert rejected["status"] == 480 and rejected["reason"] == "Closed" and not rejected["fallback"], rejected

    # Hours around now: the running worker reloads the rule and rings bob.
    swift.run("switchboard-worker", "pbx-rules", "extension", "--db", s.db, "--user", "5004", "--contact", user_uri("bob"),
              "--time-zone", "UTC", "--days", "mon-sun",
              "--hours", f"{now - datetime.timedelta(hours=1):%H:%M}-{now + datetime.timedelta(hours=1):%H:%M}")
    time.sleep(0.6)
    alice2 = phones.call(sipp, s.kamailio, "alice", "5004", hangup_after_ms=300, name="caller-alice-2")
    finished(alice2)
    assert alice2.final_status() == 200, alice2.report()


def test_a_worker_that_dies_between_steps_leaves_the_caller_the_failure(pbx, sipp):
    s = pbx([["extension", "--user", "5005", "--contact", user_uri("bob"), "--no-answer", "carol",
              "--no-answer-seconds", "4"]])
    bob = phones.start(sipp, s.kamailio, "bob", "noanswer")
    carol = phones.start(sipp, s.kamailio, "carol", "answer")
    alice = phones.call(sipp, s.kamailio, "alice", "5005")
    s.bus.wait("call.ringing")
    s.worker.proc.send_signal(signal.SIGKILL)
    s.worker.wait(5)
    started = time.monotonic()
    finished(alice)
    # bob rang out; nobody was left to ask: the caller got bob's no-answer (480), and soon
    assert alice.final_status() == 480, alice.report()
    assert time.monotonic() - started < 8
    assert carol.received("INVITE") == [], carol.report()
    call_id = one_call(s.bus)
    ended = s.bus.events(call_id, "call.ended")[0]["ended"]
    assert ended["cause"] == "no_answer" and ended["status"] == 480, ended
    assert [e["routed"].get("step") for e in s.bus.events(call_id, "call.routed")] == [None]
    listed = s.bus.command({"name": "list"})
    assert listed["ok"] and listed["result"]["calls"] == [], listed
