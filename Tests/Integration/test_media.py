"""Issue 16: calls anchored in rtpengine by the bridge, through the real Kamailio and sipp phones that
send RTP: DTMF as call.dtmf events, prompts to a phone, recordings, the IVR worker, and what the
media commands answer when they cannot be carried out."""
import json
import math
import struct
import threading
import time
import wave
from pathlib import Path

import pytest

import harness
import phones
from harness import DOMAIN, LOCAL
from switchboard_testkit.rtpengine import RTPSink, audio_sdp, pcap_rtp_duration_ms, rtp_packet, sdp_media_address
from switchboard_testkit.ua import UA
from test_b2bua import b2b, finished, user_uri  # noqa: F401  (b2b is a fixture)


def write_prompt(folder, name, seconds):
    """An 8 kHz mono 16-bit WAV of a 440 Hz tone, as a prompt of the bridge's prompts folder."""
    folder.mkdir(exist_ok=True)
    with wave.open(str(folder / f"{name}.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / 8000)))
                                 for i in range(int(8000 * seconds))))


@pytest.fixture
def media(b2b, start_rtpengine, tmp_path):
    """start(plan, bridge_args=()) → the b2b setup whose bridge anchors media in a fresh rtpengine,
    rtpengine's DTMF reports going to the bridge; s.engine, s.prompts (a 2 s "menu" and a 1 s "hello")."""
    def start(plan=None, bridge_args=(), engine_ng=None):
        dtmf_port = harness.free_port()
        engine = start_rtpengine(dtmf_log_dest=f"{LOCAL}:{dtmf_port}")
        prompts = tmp_path / "prompts"
        write_prompt(prompts, "menu", 2.0)
        write_prompt(prompts, "hello", 1.0)
        s = b2b(plan, bridge_args=["--media-rtpengine", engine_ng or engine.ng_address,
                                   "--media-dtmf-listen", f"{LOCAL}:{dtmf_port}",
                                   "--media-recordings", engine.recording_dir, "--media-prompts", prompts,
                                   *bridge_args])
        s.engine, s.prompts = engine, prompts
        return s
    return start


def in_engine_range(engine, sdp):
    host, port = sdp_media_address(sdp)
    return host == LOCAL and engine.port_min <= port <= engine.port_max


def anchored_plan(number="5000", user="bob"):
    return {number: {"action": "bridge", "targets": [{"uri": user_uri(user)}], "media": "anchor"}}


def test_an_anchored_calls_rtp_goes_through_rtpengine_and_the_callers_keys_arrive_in_order(media, sipp):
    s = media(anchored_plan())
    sink = RTPSink()
    bob = phones.start(sipp, s.kamailio, "bob", "answer_media", rtp_port=sink.port)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", behaviour="dtmf", audio_ms=500, digits="7#3",
                        dtmf_gap_ms=300, hold_ms=500)
    finished(alice, bob)
    # each phone got rtpengine's address, not the other phone's
    assert in_engine_range(s.engine, bob.received("INVITE")[0].body), bob.report()
    ok = [m for m in alice.responses("INVITE") if m.status == 200][0]
    assert in_engine_range(s.engine, ok.body), alice.report()
    # alice's audio and keys reached bob through rtpengine
    assert sink.count(0) >= 20, sink.payload_types()
    assert sink.digits() == [7, 11, 3], sink.events()
    call_id = s.bus.wait("call.ended")["call_id"]
    pressed = [e["dtmf"] for e in s.bus.events(call_id, "call.dtmf")]
    assert [p["digit"] for p in pressed] == ["7", "#", "3"], s.bus.events(call_id)
    assert all(p["leg"] == "a" and p["duration_ms"] > 0 for p in pressed), pressed
    # the call's rtpengine session is gone with the call
    harness.wait_until(lambda: s.engine.ng("list").get("calls") == [], 5, "rtpengine to forget the call",
                       lambda: str(s.engine.ng("list")))
    sink.close()


def test_a_recording_of_the_right_length_appears_and_a_prompt_reaches_the_phone(media, sipp):
    s = media(anchored_plan())
    sink = RTPSink()
    bob = phones.start(sipp, s.kamailio, "bob", "answer_media", rtp_port=sink.port)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", behaviour="dtmf", audio_ms=2000, digits="123",
                        dtmf_gap_ms=300, hold_ms=3500)
    call_id = s.bus.wait("call.connected")["call_id"]
    started = time.monotonic()
    assert s.bus.command({"name": "record", "call_id": call_id, "action": "start"})["ok"]
    # digits to bob: rtpengine injects them (RFC 4733) into the stream alice is sending him
    assert s.bus.command({"name": "dtmf", "call_id": call_id, "leg": "b", "digits": "58", "duration_ms": 100})["ok"]
    # alice sends 2 s of audio, then her three keys: the recording holds what rtpengine received
    harness.wait_until(lambda: len(s.bus.events(call_id, "call.dtmf")) == 3, 10, "alice's keys", lambda: s.bus.types(call_id))
    time.sleep(0.3)
    assert s.bus.command({"name": "record", "call_id": call_id, "action": "stop"})["ok"]
    wall_ms = (time.monotonic() - started) * 1000
    recorded = s.bus.wait("call.media.recorded", call_id)["recorded"]
    path = Path(recorded["path"])
    assert path.parent.parent == Path(s.engine.recording_dir) and path.exists(), recorded
    assert recorded["bytes"] == path.stat().st_size > 0, recorded
    assert abs(recorded["duration_ms"] - wall_ms) < 500, (recorded, wall_ms)
    span_ms, packets = pcap_rtp_duration_ms(path)
    # 2 s of audio (100 packets) and the keys after it
    assert packets >= 100 and 2000 <= span_ms <= wall_ms, (span_ms, packets, wall_ms)

    # alice is silent now: what bob gets next is the prompt rtpengine plays him
    before = sink.count(0)
    reply = s.bus.command({"name": "play", "call_id": call_id, "leg": "b", "prompt": "menu"})
    assert reply["ok"], reply
    played = s.bus.wait("call.media.played", call_id, timeout=6)["played"]
    assert played == {"leg": "b", "prompt": "menu", "outcome": "finished", "played_ms": 2000}, played
    # a 2 s prompt is 100 packets of 20 ms
    assert sink.count(0) - before >= 90, (before, sink.count(0))
    # the digits sent to bob rode on alice's stream to him, ahead of her own keys; only hers are call.dtmf
    assert sink.digits() == [5, 8, 1, 2, 3], sink.events()
    assert [(e["dtmf"]["leg"], e["dtmf"]["digit"]) for e in s.bus.events(call_id, "call.dtmf")] == [("a", "1"), ("a", "2"), ("a", "3")]
    finished(alice, bob)
    sink.close()


def test_media_commands_say_why_they_cannot_be_carried_out(media, sipp):
    s = media(anchored_plan(), bridge_args=["--media-max-recordings", "0"])
    sink = RTPSink()
    bob = phones.start(sipp, s.kamailio, "bob", "answer_media", rtp_port=sink.port)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=2500)
    call_id = s.bus.wait("call.connected")["call_id"]

    def refused(command):
        reply = s.bus.command({"call_id": call_id, **command})
        assert not reply["ok"], reply
        return reply["error"]["code"], reply["error"]["message"]

    assert refused({"name": "play", "prompt": "nope"}) == ("bad_command", 'prompt "nope" is not in the prompts folder')
    assert refused({"name": "play", "prompt": "../../etc/passwd"})[0] == "bad_command"
    assert refused({"name": "record", "action": "start"})[0] == "limit_exceeded"
    assert refused({"name": "record", "action": "stop"}) == ("invalid_state", "the call is not being recorded")
    assert refused({"name": "stop_play"}) == ("invalid_state", "nothing is playing")
    assert refused({"name": "dtmf", "leg": "b", "digits": "12x"})[0] == "bad_command"
    finished(alice, bob)
    sink.close()


def test_rtpengine_unreachable_leaves_the_call_up_and_the_commands_say_why(media, sipp):
    dead = harness.free_port()
    s = media(anchored_plan(), engine_ng=f"{LOCAL}:{dead}")
    bob = phones.start(sipp, s.kamailio, "bob", "answer")
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=1500)
    call_id = s.bus.wait("call.connected", timeout=20)["call_id"]
    reply = s.bus.command({"name": "play", "call_id": call_id, "tone": "beep"})
    assert reply["error"]["code"] == "media_unavailable", reply
    assert "did not answer offer" in reply["error"]["message"], reply
    finished(alice, bob)
    # the phones talk to each other directly, as without anchoring
    assert bob.received("INVITE")[0].body.strip() == alice.sent("INVITE")[-1].body.strip()
    assert s.bus.wait("call.ended", call_id)["ended"]["cause"] == "normal_clearing"


def test_a_restarted_bridge_deletes_the_rtpengine_session_of_a_call_it_left_up(media, sipp):
    s = media(anchored_plan())
    bob = phones.start(sipp, s.kamailio, "bob", "answer")
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=8000)
    call_id = s.bus.wait("call.connected")["call_id"]
    assert call_id in s.engine.ng("list")["calls"]
    s.bridge.proc.kill()  # a crash: no BYE, no delete
    s.start_bridge("bridge-again")
    harness.wait_until(lambda: call_id not in s.engine.ng("list").get("calls", []), 10,
                       "the restarted bridge to delete the session", lambda: str(s.engine.ng("list")))
    finished(alice, bob)


class Talker:
    """A phone's media from a testkit UA: PCMU every 20 ms from its socket to the address its peer's SDP
    gave (`to`, which a re-INVITE may move), and RFC 4733 keys (payload type 101) on `press`."""

    def __init__(self, sock, to):
        self.sock, self.to, self.keys = sock, to, []
        self.seq, self.ts, self.open = 0, 0, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def press(self, digit):
        self.keys.append("0123456789*#ABCD".index(digit))

    def _send(self, payload_type, payload, marker=False, timestamp=None):
        self.sock.sendto(rtp_packet(payload_type, self.seq, self.ts if timestamp is None else timestamp, 0x5A11CE,
                                    payload, marker), self.to)
        self.seq += 1

    def _run(self):
        while self.open:
            if self.keys:
                event, start = self.keys.pop(0), self.ts
                # 140 ms of the key: six updates, then the end packet three times (RFC 4733 §2.5.1.4)
                for n in range(1, 10):
                    end = 0x80 if n >= 7 else 0
                    self._send(101, struct.pack("!BBH", event, end | 10, min(n, 7) * 160), marker=n == 1, timestamp=start)
                    time.sleep(0.02)
                self.ts += 7 * 160
            self._send(0, b"\xff" * 160)
            self.ts += 160
            time.sleep(0.02)

    def close(self):
        self.open = False
        self.thread.join()


def test_the_ivr_worker_plays_its_menu_and_transfers_the_caller_to_the_key_it_pressed(media, sipp, swift):
    s = media()
    ivr = swift.start("ivr", "switchboard-worker", "ivr", "--bridge", s.endpoints["decisions"], "--events", s.endpoints["events"],
                      "--replay", s.endpoints["replay"], "--commands", s.endpoints["commands"], "--number", "800",
                      "--prompt", "hello", "--menu", f"4={user_uri('bob')}", "--worker-id", "ivr-test")
    s.bus.wait("worker.joined", timeout=15)
    sink = RTPSink()
    bob = phones.start(sipp, s.kamailio, "bob", "answer_media", rtp_port=sink.port)
    # alice is a testkit UA: the transfer reaches her as a re-INVITE (RFC 3725), which a sipp caller does not take
    alice = UA("alice", phones.USERS["alice"], s.kamailio.port)
    media_socket = RTPSink(port=alice.port + 1)
    answers = []
    talker = None

    def on_request(ua, dialog, message):
        if message.method == "INVITE" and talker is not None:
            talker.to = sdp_media_address(message.body)

    alice.on_request = on_request

    def run_until(condition, what, timeout=10):
        harness.wait_until(lambda: [(alice.receive(), alice.tick())] and condition(), timeout, what,
                           lambda: json.dumps(s.bus.events(), indent=1) + ivr.tail())

    x = alice.invite(f"sip:800@{DOMAIN}", body=audio_sdp(alice.port + 1), done=lambda status, message: answers.append(message))
    run_until(lambda: x.state == "confirmed", "the IVR to answer alice")
    assert in_engine_range(s.engine, answers[-1].body), answers[-1].body
    talker = Talker(media_socket.sock, sdp_media_address(answers[-1].body))
    call_id = s.bus.wait("call.connected")["call_id"]
    assert s.bus.events(call_id, "call.routed")[0]["routed"]["action"] == "answer"
    run_until(lambda: s.bus.events(call_id, "call.media.played"), "the menu to play", timeout=10)
    # the menu reached alice: 1 s of prompt is 50 packets
    assert media_socket.count(0) >= 40, media_socket.payload_types()
    talker.press("9")
    run_until(lambda: len(s.bus.events(call_id, "call.media.played")) >= 3, "the busy tone, then the menu again", timeout=10)
    talker.press("4")
    run_until(lambda: s.bus.types(call_id).count("call.connected") == 2, "alice to be joined to bob", timeout=15)
    assert [e["dtmf"]["digit"] for e in s.bus.events(call_id, "call.dtmf")] == ["9", "4"]
    played = [e["played"] for e in s.bus.events(call_id, "call.media.played")]
    assert [p.get("prompt") or p.get("tone") for p in played] == ["hello", "busy", "hello"], played
    assert s.bus.events(call_id, "call.transferred")[0]["transferred"]["target"] == user_uri("bob")
    # bob was called without an offer (RFC 3725): his offer went to alice, her answer came in his ACK, rtpengine's
    assert in_engine_range(s.engine, bob.received("ACK")[0].body), bob.report()
    sink.wait_for(20, payload_type=0)
    ended = []
    alice.bye(x, done=lambda status, message: ended.append(status))
    run_until(lambda: ended == [200], "alice's BYE")
    finished(bob)
    talker.close()
    media_socket.close()
    sink.close()
    assert ivr.running(), ivr.tail()


def test_the_ivr_hangs_up_on_a_caller_who_chooses_nothing(media, sipp, swift):
    s = media()
    swift.start("ivr", "switchboard-worker", "ivr", "--bridge", s.endpoints["decisions"], "--events", s.endpoints["events"],
                "--replay", s.endpoints["replay"], "--commands", s.endpoints["commands"], "--number", "800",
                "--menu", f"4={user_uri('bob')}", "--timeout", "0.5", "--attempts", "2", "--worker-id", "ivr-test")
    s.bus.wait("worker.joined", timeout=15)
    alice = phones.call(sipp, s.kamailio, "alice", "800")
    finished(alice, timeout=20)
    call_id = s.bus.wait("call.ended")["call_id"]
    played = [e["played"] for e in s.bus.events(call_id, "call.media.played")]
    assert [(p.get("tone"), p["outcome"]) for p in played] == [("beep", "finished"), ("beep", "finished")], played
    ended = s.bus.events(call_id, "call.ended")[0]["ended"]
    assert ended["cause"] == "hangup_command", ended
