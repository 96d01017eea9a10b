"""The bridge as a B2BUA through the real Kamailio (openser-cfg/kamailio.cfg), with sipp
phones registered as users: bridge decisions from a Python worker (bridge_worker.py) and
third-party call control through the commands socket.

Calls to numbers that are not subscribers (5000, 5001, ...) go to the bridge; the
worker's plan bridges them to registered users, whom the bridge reaches through
Kamailio's location service (--outbound-proxy)."""
import json
import os
import sqlite3
import time
import uuid

import pytest
import zmq

import harness
import phones
from harness import DOMAIN, LOCAL
from switchboard_testkit.ua import UA, sdp, tag_of
from test_contract import channel_schemas, errors


def user_uri(user):
    return f"sip:{user}@{DOMAIN}"


class Bus:
    """The bridge's events (SUB) and commands (DEALER) as a client sees them."""

    def __init__(self, events, commands):
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(events)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(commands)
        self.seen = []
        self.replies = []

    def poll(self):
        while self.sub.poll(0):
            _, payload = self.sub.recv_multipart()
            self.seen.append(json.loads(payload))

    def events(self, call_id=None, type=None):
        self.poll()
        return [e for e in self.seen if (call_id is None or e.get("call_id") == call_id)
                and (type is None or e["type"] == type)]

    def wait(self, type, call_id=None, timeout=15, where=lambda e: True):
        harness.wait_until(lambda: any(where(e) for e in self.events(call_id, type)), timeout,
                           f"event {type} for {call_id}", lambda: json.dumps(self.events(call_id), indent=1))
        return [e for e in self.events(call_id, type) if where(e)][0]

    def types(self, call_id):
        return [e["type"] for e in self.events(call_id) if e["type"] != "call.offered"]

    def check_contract(self):
        """Every event seen and every reply received matches docs/asyncapi.yaml."""
        events, commands = channel_schemas("events"), channel_schemas("commands")
        for message in self.events() + self.replies:
            schema = (events | commands)[message["type"]]
            assert not errors(schema, message), (errors(schema, message), message)

    def command(self, command, request_id=None, raw=None):
        request_id = request_id or uuid.uuid4().hex[:8]
        frame = raw if raw is not None else json.dumps(
            {"v": 1, "type": "command", "request_id": request_id, "command": command}).encode()
        self.dealer.send(frame)
        assert self.dealer.poll(5000), "no reply to command"
        reply = json.loads(self.dealer.recv())
        assert reply["type"] == "command.reply"
        self.replies.append(reply)
        return reply

    def close(self):
        self.ctx.destroy(linger=0)


@pytest.fixture
def b2b(tmp_path, swift, sipp, start_kamailio):
    """start(plan) → Kamailio, the bridge (B2BUA through Kamailio) and the Python worker.
    spare_bridges: ports of further bridges in the dispatcher set, after this one; more
    keyword arguments go to start_kamailio (defines, trusted, trunks)."""
    state = {}

    def start(plan=None, bridge_args=(), spare_bridges=(), **kamailio):
        sip_port = harness.free_port()
        k = start_kamailio(subscribers=phones.USERS, bridge_ports=[sip_port, *spare_bridges], **kamailio)
        ports = dict(zip(("events", "decisions", "replay", "commands"), harness.free_ports(4)))
        args = ["--sip-listen", f"{LOCAL}:{sip_port}", "--outbound-proxy", f"{LOCAL}:{k.port}",
                "--bus-events", f"tcp://{LOCAL}:{ports['events']}",
                "--bus-decisions", f"tcp://{LOCAL}:{ports['decisions']}",
                "--bus-replay", f"tcp://{LOCAL}:{ports['replay']}",
                "--bus-commands", f"tcp://{LOCAL}:{ports['commands']}",
                "--journal", tmp_path / "journal.sqlite", "--dialogs", tmp_path / "dialogs.sqlite",
                "--metrics-listen", "", *bridge_args]

        def start_bridge(label="bridge"):
            bridge = swift.start(label, "switchboard-bridge", *args)
            harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200,
                               15, f"bridge to answer OPTIONS on {sip_port}", bridge.tail)
            assert bridge.running(), bridge.tail()
            return bridge

        bus = Bus(f"tcp://{LOCAL}:{ports['events']}", f"tcp://{LOCAL}:{ports['commands']}")
        state["bus"] = bus
        bridge = start_bridge()
        worker = None
        if plan is not None:
            plan_file = tmp_path / "plan.json"
            plan_file.write_text(json.dumps(plan))
            worker = harness.Process("worker", ["/usr/bin/python3", harness.Path(__file__).parent / "bridge_worker.py",
                                                f"tcp://{LOCAL}:{ports['decisions']}", plan_file], tmp_path)
            state["worker"] = worker
            harness.wait_until(lambda: "ready" in worker.tail() or not worker.running(), 10,
                               "the Python worker to join", worker.tail)
            assert worker.running(), worker.tail()
        time.sleep(0.3)  # the SUB socket's subscription reaches the bridge

        class S:
            pass
        s = S()
        s.kamailio, s.bridge, s.bus, s.worker, s.sip_port = k, bridge, bus, worker, sip_port
        s.endpoints = {name: f"tcp://{LOCAL}:{port}" for name, port in ports.items()}
        s.start_bridge = start_bridge
        s.journal = tmp_path / "journal.sqlite"
        return s

    yield start
    if "bus" in state:
        state["bus"].check_contract()
    if "worker" in state:
        state["worker"].stop()
    if "bus" in state:
        state["bus"].close()


def without_origin(message):
    """The message's body but for its o= line."""
    return "\n".join(line for line in message.body.strip().splitlines() if not line.startswith("o="))


def finished(*ps, timeout=30):
    for p in ps:
        assert p.finish(timeout) == 0, p.report()


def one_call(bus, type="call.ended"):
    ids = {e["call_id"] for e in bus.events(type=type)}
    assert len(ids) == 1, bus.events()
    return ids.pop()


# --- inbound calls bridged by a worker's decision ---

def test_bridged_call_answered_and_hung_up_by_the_caller(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=300)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=500)
    finished(alice, bob)
    assert alice.final_status() == 200, alice.report()
    assert 180 in [m.status for m in alice.responses("INVITE")], alice.report()
    assert len(bob.received("BYE")) == 1, bob.report()
    # SDP passes unchanged: bob got alice's offer, alice got bob's answer
    assert bob.received("INVITE")[0].body.strip() == alice.sent("INVITE")[-1].body.strip()
    call_id = one_call(s.bus)
    assert s.bus.types(call_id) == ["call.routed", "call.dialing", "call.ringing", "call.answered",
                                    "call.connected", "call.ended"], s.bus.events(call_id)
    ended = s.bus.events(call_id, "call.ended")[0]["ended"]
    assert ended["cause"] == "normal_clearing" and ended["by"] == "a", ended
    assert ended["talk_ms"] >= 400, ended
    # the B leg is a different SIP call (a B2BUA, not a proxy)
    assert bob.received("INVITE")[0].header("Call-ID") != alice.sent("INVITE")[0].header("Call-ID")


def test_sip_i_trunk_call_is_offered_its_sdp_and_its_multipart_bye_ends_it(b2b, sipp):
    """Issue 12 item 5: a SIP-I INVITE (SDP + ISUP in multipart/mixed) used to get 415, and its BYE was
    refused. The callee gets the SDP alone; the trunk's BYE with an ISUP REL ends the call."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", behaviour="sipi", hangup_after_ms=500)
    finished(alice, bob)
    assert alice.final_status() == 200, alice.report()
    assert alice.sent("INVITE")[-1].header("Content-Type") == ["multipart/mixed;boundary=sipi-boundary"], alice.report()
    offer = bob.received("INVITE")[0]
    assert offer.header("Content-Type") == ["application/sdp"], bob.report()
    assert offer.body.startswith("v=0") and "ISUP" not in offer.body and "sipi-boundary" not in offer.body, offer.body
    assert len(bob.received("BYE")) == 1, bob.report()
    assert [m.status for m in alice.responses("BYE")] == [200], alice.report()
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "normal_clearing" and ended["by"] == "a", ended


def test_bridged_call_hung_up_by_the_callee(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100, hangup_after_ms=500)
    alice = phones.call(sipp, s.kamailio, "alice", "5000")
    finished(alice, bob)
    assert len(alice.received("BYE")) == 1, alice.report()
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "normal_clearing" and ended["by"] == "b", ended


def test_caller_cancels_while_b_rings(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "noanswer")
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "cancel", cancel_after_ms=500)
    finished(alice, bob)
    assert alice.final_status() == 487, alice.report()
    assert len(bob.received("CANCEL")) == 1, bob.report()
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "caller_cancelled", ended


def test_b_busy_then_the_next_target_answers(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}, {"uri": user_uri("carol")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "busy")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=300)
    finished(alice, bob, carol)
    assert alice.final_status() == 200, alice.report()
    call_id = one_call(s.bus)
    failed = s.bus.events(call_id, "call.leg_failed")
    assert [f["leg_failed"]["cause"] for f in failed] == ["busy"], failed
    assert [e["dialing"]["attempt"] for e in s.bus.events(call_id, "call.dialing")] == [1, 2]
    assert len(carol.received("BYE")) == 1, carol.report()


def test_an_announcement_then_a_failure_then_another_carriers_answer_is_a_new_dialog_to_the_caller(b2b, sipp):
    """Issue 12 item 3, serial LCR: carrier 1 (bob) plays a 183 announcement and fails with 503,
    carrier 2 (carol) answers with other SDP. The caller's 183 and 200 carry different To tags
    (its sipp fails the call otherwise), so the 200's SDP is a new answer (RFC 6337 §3.1)."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}, {"uri": user_uri("carol")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "early_refuse", ring_ms=300, final="503 Service Unavailable",
                       final_header="Retry-After: 30")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "early", hangup_after_ms=300)
    finished(alice, bob, carol)
    early = [m for m in alice.responses("INVITE") if m.status == 183]
    answer = [m for m in alice.responses("INVITE") if m.status == 200]
    assert len(early) == 1 and answer, alice.report()
    assert "announcement" in early[0].body and "announcement" not in answer[0].body, alice.report()
    assert early[0].header("To") != answer[0].header("To"), alice.report()
    assert len(carol.received("BYE")) == 1, carol.report()


def test_a_caller_requiring_100rel_prack_s_the_bridge_and_the_bridge_prack_s_the_callee(b2b, sipp):
    """Issue 12 item 9, RFC 3262 per leg: the caller's `Require: 100rel` (once a 420) gets a reliable
    183 that it PRACKs; the callee's reliable 183 gets the bridge's PRACK (RAck 1 1 INVITE)."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer_100rel", ring_ms=300)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "100rel", hangup_after_ms=300)
    finished(alice, bob)
    early = [m for m in alice.responses("INVITE") if m.status == 183]
    assert early and early[0].header("RSeq") and early[0].header("Require") == ["100rel"], alice.report()
    assert [m.status for m in alice.responses("PRACK")] == [200], alice.report()
    assert alice.final_status() == 200, alice.report()
    pracks = bob.received("PRACK")
    assert len(pracks) == 1 and pracks[0].header("RAck") == ["1 1 INVITE"], bob.report()
    assert bob.received("INVITE")[0].header("Supported") == ["100rel, timer"], bob.report()
    assert len(bob.received("BYE")) == 1, bob.report()


def test_a_callees_reliable_183_reaches_a_caller_without_100rel_as_before(b2b, sipp):
    """Issue 12 item 9: the bridge PRACKs the callee itself; a caller without 100rel gets the 183
    unreliably (no RSeq) and the call completes."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer_100rel", ring_ms=300)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=300)
    finished(alice, bob)
    assert alice.final_status() == 200, alice.report()
    early = [m for m in alice.responses("INVITE") if m.status == 183]
    assert len(early) == 1 and not early[0].header("RSeq"), alice.report()
    assert len(bob.received("PRACK")) == 1, bob.report()
    assert len(bob.received("BYE")) == 1, bob.report()


def test_b_never_answers_ring_timeout(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob"), "ring_timeout_ms": 1500}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "noanswer")
    alice = phones.call(sipp, s.kamailio, "alice", "5000")
    finished(alice, bob)
    assert alice.final_status() == 480, alice.report()
    assert len(bob.received("CANCEL")) == 1, bob.report()
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "no_answer" and ended["status"] == 480, ended


def test_parallel_targets_first_answer_wins_the_other_is_cancelled(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "mode": "parallel",
                      "targets": [{"uri": user_uri("bob")}, {"uri": user_uri("carol")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "noanswer")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=500)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=300)
    finished(alice, bob, carol)
    assert alice.final_status() == 200, alice.report()
    assert len(bob.received("CANCEL")) == 1, bob.report()
    assert len(carol.received("BYE")) == 1, carol.report()


def test_hold_and_unhold_reinvites_pass_through_the_b2bua(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "hold", talk_ms=300, hold_ms=300)
    finished(alice, bob)
    invites = bob.received("INVITE")
    assert [m.sdp_direction() for m in invites] == ["sendrecv", "sendonly", "sendrecv"], bob.report()
    assert len(bob.received("ACK")) == 3, bob.report()
    call_id = one_call(s.bus)
    assert [e["type"] for e in s.bus.events(call_id) if e["type"] in ("call.held", "call.resumed")] == \
        ["call.held", "call.resumed"], s.bus.events(call_id)


def test_a_cancelled_reinvite_is_cancelled_on_the_far_leg_and_the_call_stays_up(b2b, sipp):
    """Issue 12: RFC 3261 §9.1/§9.2 through the B2BUA. The caller CANCELs its re-INVITE; the CANCEL
    reaches bob, bob's 487 reaches the caller, and the call goes on until the caller's BYE (it used
    to be BYEd on both legs 64·T1 later, and bob never heard of the CANCEL)."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "reinvite_cancelled")
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "reinvite_cancel", talk_ms=300,
                        cancel_after_ms=300, hold_ms=1000)
    finished(alice, bob)
    assert len(bob.received("CANCEL")) == 1, bob.report()
    assert alice.final_status() == 487, alice.report()  # the re-INVITE's final answer: bob's 487
    # the call stayed up: the caller hung up, bob got exactly that BYE, and nobody BYEd the caller
    assert len(bob.received("BYE")) == 1 and not alice.received("BYE"), (alice.report(), bob.report())
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "normal_clearing" and ended["by"] == "a", ended


def test_an_offerless_reinvite_gets_the_far_offer_and_its_ack_answers_the_far_leg(b2b, sipp):
    """Issue 12, RFC 3261 §14.1 delayed offer: alice re-INVITEs without SDP; bob's offer reaches her in
    the 200, and her answer, in her ACK, reaches bob in his ACK (it used to be dropped: bob got an
    empty ACK the moment he answered)."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "reinvite_nosdp", talk_ms=300, hold_ms=500)
    finished(alice, bob)
    assert bob.received("INVITE")[-1].body.strip() == "", bob.report()
    # the bodies pass but for their o= lines, which keep each phone's view of one session (RFC 3264 §8)
    bob_offer = without_origin([m for m in bob.responses("INVITE", direction="sent") if m.status == 200][-1])
    alice_ok = [m for m in alice.responses("INVITE") if m.status == 200][-1]
    assert without_origin(alice_ok) == bob_offer, alice.report()
    answer = without_origin(alice.sent("ACK")[-1])
    assert answer and without_origin(bob.received("ACK")[-1]) == answer, bob.report()
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "normal_clearing" and ended["by"] == "a", ended


def test_session_timers_per_leg_refresh_through_kamailio_and_a_quiet_refresher_ends_the_call(b2b, sipp):
    """Issue 12 item 8, RFC 4028 per leg: alice asks Session-Expires 90 and refreshes herself, by
    re-INVITE at 30 s and UPDATE at 60 s; both reach bob with bob's leg's own interval (the bridge
    asks bob 100 s and refreshes his leg), never alice's. The bridge refreshes bob by re-INVITE with
    the SDP bob last got once no refresh crossed his leg for half of it (at 110 s). Alice then stops
    refreshing, and at her session's expiry (120 s: 90 less a third, 30 s, after her UPDATE) the bridge
    BYEs both legs with cause session_expired. About two minutes: the smallest interval is 90 s."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}},
            bridge_args=("--session-expires", "100"))
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100, timeout=200)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "timer", talk_ms=30_000, hold_ms=30_000, timeout=200)
    finished(alice, bob, timeout=190)
    ok = [m for m in alice.responses("INVITE") if m.status == 200]
    assert [m.header("Session-Expires") for m in ok] == [["90;refresher=uac"]] * 2, alice.report()
    assert all("timer" in m.header("Require") for m in ok), alice.report()
    assert [m.header("Session-Expires") for m in alice.responses("UPDATE") if m.status == 200] == \
        [["90;refresher=uac"]], alice.report()
    invites = bob.received("INVITE")
    assert len(invites) == 3 and len(bob.received("UPDATE")) == 1, bob.report()
    assert invites[0].header("Session-Expires") == ["100"] and invites[0].header("Supported") == ["100rel, timer"], bob.report()
    # alice's refreshes reach bob with his leg's interval; the last re-INVITE is the bridge's own
    assert invites[1].header("Session-Expires") == ["100;refresher=uac"], bob.report()
    assert bob.received("UPDATE")[0].header("Session-Expires") == ["100;refresher=uac"], bob.report()
    assert invites[2].body.strip() == invites[0].body.strip(), bob.report()
    assert len(bob.received("BYE")) == 1 and len(alice.received("BYE")) == 1, (alice.report(), bob.report())
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "session_expired" and ended["by"] == "bridge", ended
    assert 115_000 <= ended["talk_ms"] <= 130_000, ended


def test_the_bridge_refreshes_each_leg_itself_by_update_and_by_reinvite(b2b, sipp):
    """Issue 12 item 8, the bridge as refresher on both legs: alice asks Session-Expires
    90;refresher=uas with UPDATE in her Allow, so the bridge refreshes her every 45 s by UPDATE; bob
    allows no UPDATE, so his leg (100 s) gets a re-INVITE with the SDP he last got every 50 s. Alice
    hangs up after SWITCHBOARD_SESSION_TIMER_REFRESHES of the bridge's refreshes (default 2, about
    a minute and a half; 13 is the issue's ten-minute run) and the call ends normally."""
    refreshes = int(os.environ.get("SWITCHBOARD_SESSION_TIMER_REFRESHES", "2"))
    seconds = refreshes * 45
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}},
            bridge_args=("--session-expires", "100"))
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100, timeout=seconds + 60)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "timer_refreshed", refreshes=refreshes,
                        timeout=seconds + 60)
    finished(alice, bob, timeout=seconds + 50)
    ok = [m for m in alice.responses("INVITE") if m.status == 200]
    assert ok[0].header("Session-Expires") == ["90;refresher=uas"] and not ok[0].header("Require"), alice.report()
    updates = alice.received("UPDATE")
    assert len(updates) == refreshes and not alice.received("INVITE"), alice.report()
    assert all(u.header("Session-Expires") == ["90;refresher=uac"] and not u.body.strip() for u in updates), alice.report()
    invites = bob.received("INVITE")
    assert len(invites) - 1 == seconds // 50 and not bob.received("UPDATE"), bob.report()
    assert all(i.body.strip() == invites[0].body.strip() for i in invites[1:]), bob.report()
    ended = s.bus.wait("call.ended")["ended"]
    assert ended["cause"] == "normal_clearing" and ended["by"] == "a", ended


def test_a_new_contact_in_a_reinvite_answer_moves_the_far_legs_remote_target(b2b, sipp):
    """Issue 12, RFC 3261 §12.2.1.2: bob answers alice's hold re-INVITE from a new Contact
    (bob-moved); the bridge's ACK, the unhold re-INVITE and the BYE then go to that Contact (they
    used to keep the Contact of bob's first 200)."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100, reinvite_contact_user="bob-moved")
    alice = phones.call(sipp, s.kamailio, "alice", "5000", "hold", talk_ms=300, hold_ms=300)
    finished(alice, bob)
    invites, acks = bob.received("INVITE"), bob.received("ACK")
    assert len(invites) == 3 and len(acks) == 3, bob.report()
    after_move = [invites[2], acks[1], acks[2]] + bob.received("BYE")
    assert all(m.first_line.split()[1].startswith("sip:bob-moved@") for m in after_move), bob.report()
    assert not invites[1].first_line.split()[1].startswith("sip:bob-moved@"), bob.report()


# --- third-party call control (Click2Call) ---

def originate(bus, a, b, **extra):
    reply = bus.command({"name": "originate", "a": {"uri": user_uri(a), **extra.pop("a_extra", {})},
                         "b": {"uri": user_uri(b)}, **extra})
    assert reply["ok"], reply
    return reply["result"]["call_id"]


def test_click2call_both_answer_then_hangup_command(b2b, sipp):
    s = b2b()
    alice = phones.start(sipp, s.kamailio, "alice", "answer", ring_ms=200)
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=200)
    call_id = originate(s.bus, "alice", "bob", idempotency_key="k-1", account="acme")
    s.bus.wait("call.connected", call_id)
    # A was called without SDP, answered inactive, then re-INVITEd with B's offer (RFC 3725 Flow III)
    a_invites = alice.received("INVITE")
    assert a_invites[0].body.strip() == "" and len(a_invites) == 2, alice.report()
    assert a_invites[1].body.strip() == bob.sent("ACK")[0].body.strip() if bob.sent("ACK") else True
    assert alice.received("ACK")[0].sdp_direction() == "inactive", alice.report()
    listed = s.bus.command({"name": "list"})["result"]["calls"]
    assert [c["call_id"] for c in listed] == [call_id] and listed[0]["state"] == "connected", listed
    got = s.bus.command({"name": "get", "call_id": call_id})["result"]["call"]
    assert [(leg["leg"], leg["state"]) for leg in got["legs"]] == [("a", "answered"), ("b", "answered")], got
    # the same idempotency key places no second call
    again = s.bus.command({"name": "originate", "a": {"uri": user_uri("alice")}, "b": {"uri": user_uri("bob")},
                           "idempotency_key": "k-1", "account": "acme"})
    assert again["result"] == {"call_id": call_id, "existing": True}, again
    assert s.bus.command({"name": "hangup", "call_id": call_id})["ok"]
    finished(alice, bob)
    assert len(alice.received("BYE")) == 1 and len(bob.received("BYE")) == 1
    ended = s.bus.wait("call.ended", call_id)["ended"]
    assert ended["cause"] == "hangup_command" and ended["by"] == "command", ended
    assert s.bus.types(call_id) == ["call.originated", "call.dialing", "call.ringing", "call.answered",
                                    "call.dialing", "call.ringing", "call.answered", "call.connected",
                                    "call.ended"], s.bus.events(call_id)


def test_click2call_a_rejects(b2b, sipp):
    s = b2b()
    alice = phones.start(sipp, s.kamailio, "alice", "reject")
    call_id = originate(s.bus, "alice", "bob")
    ended = s.bus.wait("call.ended", call_id)["ended"]
    assert ended["cause"] == "rejected" and ended["status"] == 603, ended
    finished(alice)
    assert "call.dialing" in s.bus.types(call_id)
    assert sum(1 for e in s.bus.events(call_id, "call.dialing")) == 1  # B was never called


def test_click2call_b_busy_hangs_up_a(b2b, sipp):
    s = b2b()
    alice = phones.start(sipp, s.kamailio, "alice", "answer", ring_ms=100)
    bob = phones.start(sipp, s.kamailio, "bob", "busy")
    call_id = originate(s.bus, "alice", "bob")
    ended = s.bus.wait("call.ended", call_id)["ended"]
    assert ended["cause"] == "busy" and ended["by"] == "b", ended
    finished(alice, bob)
    assert len(alice.received("BYE")) == 1, alice.report()


def test_hold_command_and_transfer_keep_one_sdp_origin_per_phone(b2b, sipp):
    """Issue 12 item 13 too, RFC 3264 §8: alice gets the bridge's held answer (Flow III), bob's offer,
    then carol's after the transfer; bob gets alice's answer, then the holds. Whoever wrote each,
    a phone sees one origin, its version one higher with each, and alice never her own."""
    s = b2b()
    alice = phones.start(sipp, s.kamailio, "alice", "answer", ring_ms=100)
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100)
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=100)
    call_id = originate(s.bus, "alice", "bob")
    s.bus.wait("call.connected", call_id)
    assert s.bus.command({"name": "hold", "call_id": call_id, "leg": "b"})["ok"]
    s.bus.wait("call.held", call_id)
    assert bob.received("INVITE")[-1].sdp_direction() == "sendonly", bob.report()
    again = s.bus.command({"name": "hold", "call_id": call_id, "leg": "b"})
    assert not again["ok"] and again["error"]["code"] == "invalid_state", again
    assert s.bus.command({"name": "unhold", "call_id": call_id, "leg": "b"})["ok"]
    s.bus.wait("call.resumed", call_id)
    assert bob.received("INVITE")[-1].sdp_direction() == "sendrecv", bob.report()
    # blind transfer: alice stays and is joined to carol; bob is released
    assert s.bus.command({"name": "transfer", "call_id": call_id, "leg": "a", "target": user_uri("carol")})["ok"]
    s.bus.wait("call.connected", call_id, where=lambda e: e["connected"]["b"] == user_uri("carol"))
    bob.wait_for("BYE")
    assert s.bus.command({"name": "hangup", "call_id": call_id})["ok"]
    finished(alice, bob, carol)
    assert len(carol.received("BYE")) == 1, carol.report()
    for phone, count in ((alice, 3), (bob, 3)):
        origins = sdp_origins(phone)
        assert len(origins) == count, (phone.name, origins, phone.report())
        assert len({o[:2] for o in origins}) == 1, (phone.name, origins)
        versions = [o[2] for o in origins]
        assert versions == list(range(versions[0], versions[0] + count)), (phone.name, origins)
    assert sdp_origins(alice)[0][0] == "switchboard", sdp_origins(alice)


def sdp_origins(phone):
    """The o= (username, session id, version) of each SDP the phone received in a request
    (INVITE, ACK), once per transaction, in order."""
    seen, origins = set(), []
    for m in phone.messages():
        key = (m.method, tuple(m.header("CSeq")), tuple(m.header("Call-ID")))
        if m.direction == "received" and m.method in ("INVITE", "ACK") and m.sdp_origin() and key not in seen:
            seen.add(key)
            origins.append(m.sdp_origin())
    return origins


def test_a_phones_blind_refer_is_carried_out_by_the_bridge(b2b, sipp):
    """Issue 12 item 10, RFC 3515: bob, called by alice through the bridge, REFERs her to carol. The
    bridge answers 202, asks the worker where carol is (its plan routes her as any call), NOTIFYs
    bob (100 Trying, 200 OK), calls carol for alice and joins them by re-INVITE, then hangs bob up;
    carol ends the call. Every leg ends with a BYE."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]},
             "carol": {"action": "bridge", "targets": [{"uri": user_uri("carol")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "refer", talk_ms=300, refer_to=user_uri("carol"))
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=100, hangup_after_ms=800)
    alice = phones.call(sipp, s.kamailio, "alice", "5000")
    finished(alice, bob, carol)
    assert [m.status for m in bob.responses("REFER") if m.status >= 200] == [202], bob.report()
    notifies = bob.received("NOTIFY")
    assert [n.body.strip() for n in notifies] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"], bob.report()
    assert notifies[-1].header("Subscription-State")[0].startswith("terminated"), bob.report()
    assert len(bob.received("BYE")) == 1, bob.report()
    # alice was re-INVITEd with carol's SDP (under the origin bob's had, RFC 3264 §8), and carol's BYE ended her leg
    assert carol.received("INVITE")[0].header("Referred-By") == [f"<{user_uri('bob')}>"], carol.report()
    carol_ok = [m for m in carol.responses("INVITE", direction="sent") if m.status == 200][0]
    assert [without_origin(m) for m in alice.received("INVITE")] == [without_origin(carol_ok)], alice.report()
    assert alice.received("INVITE")[0].sdp_origin()[:2] == ("bob", "1000"), alice.report()
    assert len(alice.received("BYE")) == 1, alice.report()
    assert len(carol.sent("BYE")) == 1, carol.report()
    call_id = one_call(s.bus)
    transferred = s.bus.events(call_id, "call.transferred")
    assert [e["transferred"] for e in transferred] == [{"leg": "a", "target": user_uri("carol"), "by": "b"}], transferred
    ended = s.bus.events(call_id, "call.ended")[0]["ended"]
    assert ended["cause"] == "normal_clearing" and ended["by"] == "b", ended


def test_a_phones_attended_refer_joins_its_two_calls_in_the_bridge(b2b):
    """Issue 12 item 10, RFC 3891: bob talks to alice (call X, 5000) and to carol (call Y, 5001), both
    through the bridge, and REFERs alice with Replaces naming his dialog of Y. The bridge joins alice
    and carol in X by re-INVITEs, ends Y, and BYEs both of bob's legs; alice's BYE then ends X.
    Phones are testkit UAs: a sipp scenario holds one dialog, bob needs two."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]},
             "5001": {"action": "bridge", "targets": [{"uri": user_uri("carol")}]}})
    alice, bob, carol = (UA(user, phones.USERS[user], s.kamailio.port) for user in ("alice", "bob", "carol"))

    def run_until(condition, what, timeout=10):
        harness.wait_until(lambda: [(ua.receive(), ua.tick()) for ua in (alice, bob, carol)] and condition(), timeout, what,
                           lambda: json.dumps(s.bus.events(), indent=1))

    x = alice.invite(f"sip:5000@{DOMAIN}", body=sdp("alice", alice.port + 1, 1))
    run_until(lambda: x.state == "confirmed", "alice's call to bob")
    y = bob.invite(f"sip:5001@{DOMAIN}", body=sdp("bob", bob.port + 1, 1))
    run_until(lambda: y.state == "confirmed", "bob's call to carol")
    bob_x = next(d for d in bob.dialogs.values() if d.role == "uas")
    carol_y = next(iter(carol.dialogs.values()))
    # RFC 3891 §3: the tags as the replaced dialog's other end (the bridge) sees them
    replaces = f"{y.call_id};to-tag={tag_of(y.remote)};from-tag={tag_of(y.local)}".replace(";", "%3B").replace("=", "%3D")
    referred = []
    bob.request(bob_x, "REFER", extra=f"Contact: {bob.contact}\r\nRefer-To: <{user_uri('carol')}?Replaces={replaces}>\r\n",
                done=lambda status, msg: referred.append(status))
    run_until(lambda: bob_x.state == "ended" and y.state == "ended", "bob's two legs to end", timeout=15)
    assert referred == [202], referred
    notifies = [m.body.strip() for _, method, m in bob_x.received if method == "NOTIFY"]
    assert notifies == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"], notifies
    # alice got carol's media and carol alice's (each under the SDP origin it knew bob by, RFC 3264 §8);
    # neither was hung up
    to_alice = [m.body for _, method, m in x.received if method == "INVITE"][-1]
    to_carol = [m.body for _, method, m in carol_y.received if method == "INVITE"][-1]
    assert f"m=audio {carol.port + 1} " in to_alice and "o=bob " in to_alice, x.received
    assert f"m=audio {alice.port + 1} " in to_carol and "o=bob " in to_carol, carol_y.received
    assert x.state == "confirmed" and carol_y.state == "confirmed"
    ended = []
    alice.bye(x, done=lambda status, msg: ended.append(status))
    run_until(lambda: ended == [200] and carol_y.state == "ended", "alice's BYE to reach carol")
    call_x, call_y = (e["call_id"] for e in s.bus.events(type="call.offered"))
    assert [e["transferred"] for e in s.bus.events(call_x, "call.transferred")] == [
        {"leg": "a", "target": user_uri("carol"), "by": "b"}], s.bus.events(call_x)
    assert s.bus.types(call_y)[-2:] == ["call.transferred", "call.ended"], s.bus.events(call_y)
    assert s.bus.events(call_y, "call.ended")[0]["ended"]["cause"] == "normal_clearing"
    assert s.bus.events(call_x, "call.ended")[0]["ended"]["by"] == "a", s.bus.events(call_x)


def test_a_hold_command_that_meets_491_is_retried_after_the_back_off(b2b, sipp):
    """Issue 12, RFC 3261 §14.1: bob answers the hold re-INVITE 491; the bridge, which made bob's
    Call-ID, sends it again 2.1-4 s later and bob is held (the hold used to be dropped)."""
    s = b2b()
    alice = phones.start(sipp, s.kamailio, "alice", "answer", ring_ms=100)
    bob = phones.start(sipp, s.kamailio, "bob", "glare", ring_ms=100)
    call_id = originate(s.bus, "alice", "bob")
    s.bus.wait("call.connected", call_id)
    assert s.bus.command({"name": "hold", "call_id": call_id, "leg": "b"})["ok"]
    s.bus.wait("call.held", call_id, timeout=10)
    assert s.bus.command({"name": "hangup", "call_id": call_id})["ok"]
    finished(alice, bob)
    holds = bob.received("INVITE")[1:]
    assert [m.sdp_direction() for m in holds] == ["sendonly", "sendonly"], bob.report()
    assert [m.status for m in bob.responses("INVITE", direction="sent") if m.status >= 400] == [491], bob.report()


def test_commands_name_their_problems(b2b):
    s = b2b()
    unknown = s.bus.command({"name": "hangup", "call_id": "nope"})
    assert not unknown["ok"] and unknown["error"]["code"] == "unknown_call", unknown
    bad = s.bus.command({"name": "originate", "a": {"uri": "sip:a@x"}}, request_id="r-bad")
    assert bad["request_id"] == "r-bad" and bad["error"]["code"] == "bad_message" and "b" in bad["error"]["message"], bad
    notjson = s.bus.command(None, raw=b"{nope")
    assert notjson["error"]["code"] == "bad_json", notjson
    too_long = s.bus.command({"name": "originate", "a": {"uri": "sip:a@x", "ring_timeout_ms": 900000},
                              "b": {"uri": "sip:b@x"}})
    assert not too_long["ok"] and "ring_timeout_ms" in too_long["error"]["message"], too_long


# --- state that survives ---

def test_bridge_restart_mid_call_ends_both_legs_with_bye(b2b, sipp):
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000")
    call_id = s.bus.wait("call.connected")["call_id"]
    time.sleep(0.5)  # the dialog store writes in the background
    s.bridge.proc.kill()  # a crash: no shutdown, no BYE
    s.bridge.proc.wait()
    s.start_bridge("bridge-restarted")
    finished(alice, bob)
    assert len(alice.received("BYE")) == 1, alice.report()
    assert len(bob.received("BYE")) == 1, bob.report()
    # published as the new run starts, before our SUB has reconnected: read it back from the journal
    def journaled():
        with sqlite3.connect(s.journal) as db:
            return [json.loads(row[0]) for row in db.execute(
                "SELECT json FROM events WHERE type = 'call.ended' AND call_id = ?", (call_id,))]
    harness.wait_until(lambda: journaled(), 10, "call.ended in the journal")
    ended = journaled()[0]["ended"]
    assert ended["cause"] == "bridge_restart" and ended["by"] == "bridge", ended
