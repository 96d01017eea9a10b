"""The media test kit (switchboard_testkit.rtpengine, scenarios phone_call_dtmf.xml and
phone_answer_media.xml) against a real rtpengine, Kamailio and sipp phones, without a bridge:
the bridge's media tests rely on every piece measuring what it claims to."""
import math
import re
import struct
import time
import wave

import pytest

import harness
import phones
from switchboard_testkit.rtpengine import (audio_sdp, bdecode, bencode, pcap_rtp_duration_ms,
                                           pcap_rtp_packets, sdp_media_address, write_dtmf_pcap,
                                           write_rtp_pcap)


@pytest.fixture
def kamailio(start_kamailio):
    return start_kamailio(subscribers=phones.USERS)


@pytest.fixture
def sinks():
    made = []

    def make(port=None):
        made.append(harness.RTPSink(port))
        return made[-1]

    yield make
    for sink in made:
        sink.close()


def anchor(engine, call_id, caller_sdp, callee_port):
    """An ng offer (from the caller, tag "alice") and answer (from the callee, tag "bob", media
    on callee_port) as a proxy does them; returns (where the caller sends to, where the callee
    sends to): rtpengine's two ports."""
    offer = engine.ng("offer", call_id=call_id, from_tag="alice", sdp=caller_sdp)
    assert offer["result"] == "ok", offer
    answer = engine.ng("answer", call_id=call_id, from_tag="alice", to_tag="bob", sdp=audio_sdp(callee_port))
    assert answer["result"] == "ok", answer
    return sdp_media_address(answer["sdp"]), sdp_media_address(offer["sdp"])


def write_tone(path, seconds):
    """A 8 kHz 16-bit mono WAV of a 440 Hz tone."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / 8000)))
                               for n in range(int(8000 * seconds))))
    return path


def test_bencode_round_trip_and_bad_input():
    value = {"command": "offer", "flags": ["trust-address", 7], "sdp": "v=0\r\n", "raw": b"\xff\x00"}
    assert bencode(value) == b"d7:command5:offer5:flagsl13:trust-addressi7ee3:raw2:\xff\x003:sdp5:v=0\r\ne"
    assert bdecode(bencode(value)) == value
    for bad in (b"d3:key", b"x", b"i1ei2e"):
        with pytest.raises((ValueError, IndexError)):
            bdecode(bad)


def test_rtpengine_answers_ping_and_errors(rtpengine):
    assert rtpengine.ng("ping") == {"result": "pong"}
    assert harness.udp_port_in_use(rtpengine.ng_port)
    reply = rtpengine.ng("answer", call_id="no-such-call", from_tag="a", to_tag="b", sdp=audio_sdp(9))
    assert reply["result"] == "error" and "Unknown call-id" in reply["error-reason"], reply
    rtpengine.stop()
    with pytest.raises(AssertionError, match="no ng reply to 'ping'"):
        rtpengine.ng("ping", timeout=0.5)


def test_forwarding_and_play_media_reach_the_parties(rtpengine, sinks, tmp_path):
    alice, bob = sinks(), sinks()
    alice_sends_to, bob_sends_to = anchor(rtpengine, "kit-play", audio_sdp(alice.port), bob.port)
    for _, port in (alice_sends_to, bob_sends_to):
        assert rtpengine.port_min <= port <= rtpengine.port_max
    alice.send(alice_sends_to, count=25)
    assert len(bob.wait_for(25, payload_type=0)) == 25
    assert alice.count() == 0

    tone = write_tone(tmp_path / "tone.wav", 1.0)
    reply = rtpengine.ng("play media", call_id="kit-play", from_tag="alice", file=str(tone))
    assert reply == {"result": "ok", "duration": 1000}, reply
    alice.wait_for(45, timeout=3, payload_type=0)
    time.sleep(0.5)         # what comes after the second of audio
    assert 45 <= alice.count(0) <= 55, alice.count(0)
    assert alice.payload_types() == [0]
    assert bob.count() == 25, "play media to alice reached bob"
    assert rtpengine.ng("delete", call_id="kit-play")["result"] == "ok"


def test_recording_spans_the_media(rtpengine, sinks):
    alice, bob = sinks(), sinks()
    alice_sends_to, _ = anchor(rtpengine, "kit-rec", audio_sdp(alice.port), bob.port)
    assert rtpengine.ng("start recording", call_id="kit-rec")["result"] == "ok"
    alice.send(alice_sends_to, count=50)        # 1 s: 50 packets 20 ms apart
    bob.wait_for(50)
    assert rtpengine.ng("stop recording", call_id="kit-rec")["result"] == "ok"
    assert rtpengine.ng("delete", call_id="kit-rec")["result"] == "ok"
    pcaps = rtpengine.recordings()
    assert len(pcaps) == 1 and pcaps[0].name.startswith("kit-rec-"), pcaps
    duration_ms, count = pcap_rtp_duration_ms(pcaps[0])
    assert count == 50, (count, duration_ms)       # each packet once: as rtpengine received it
    assert 900 <= duration_ms <= 1300, duration_ms


def test_pcap_reader_reads_the_pcaps_it_writes_and_sipps(tmp_path):
    assert pcap_rtp_duration_ms(write_rtp_pcap(tmp_path / "a.pcap", 1000)) == (980.0, 50)
    written = pcap_rtp_packets(write_dtmf_pcap(tmp_path / "d.pcap", "#", seq=7, timestamp=800))
    assert [(p.seq, p.timestamp, p.event, p.end, p.marker) for p in written] == (
        [(7, 800, 11, False, True)] + [(7 + k, 800, 11, False, False) for k in range(1, 6)]
        + [(13, 800, 11, True, False)] * 3)
    digit = pcap_rtp_packets("/usr/share/sip-tester/dtmf_2833_5.pcap")
    assert [(p.pt, p.event, p.end) for p in digit] == [(101, 5, False)] * 7 + [(101, 5, True)] * 3
    with pytest.raises(ValueError, match="not a pcap"):
        pcap_rtp_duration_ms(write_tone(tmp_path / "tone.wav", 0.1))


def test_sipp_caller_media_and_digits_reach_the_phones_sink(kamailio, sipp, sinks):
    """Kamailio routes alice's call straight to registered bob: the 200's SDP (bob's rtp_port)
    is where sipp plays the caller's pcaps to."""
    sink = sinks()
    bob = phones.start(sipp, kamailio, "bob", "answer_media", rtp_port=sink.port)
    alice = phones.call(sipp, kamailio, "alice", "bob", "dtmf", audio_ms=500, digits="123",
                        dtmf_gap_ms=300, hold_ms=300)
    assert alice.finish(20) == 0, alice.report()
    assert bob.finish(10) == 0, bob.report()
    assert f"m=audio {sink.port} RTP/AVP 0 101" in alice.responses("INVITE")[-1].body
    media_port = int(re.search(r"^m=audio (\d+) ", alice.sent("INVITE")[-1].body, re.M).group(1))
    assert sink.sources == {(harness.LOCAL, media_port)}      # sipp plays from its offer's port
    assert sink.count(0) == 25, sink.count(0)
    assert sink.digits() == [1, 2, 3], sink.events()
    assert sink.events().count((2, True)) == 3          # each digit's end packet three times
    assert sink.payload_types() == [0, 101]


def test_sipp_digits_through_rtpengine_reach_the_dtmf_log(kamailio, sipp, sinks, rtpengine, dtmf_log):
    """rtpengine anchored as a proxy would: bob's SDP names rtpengine's port, rtpengine forwards
    to bob's sink and reports each digit. The offer's caller address is a placeholder: rtpengine
    learns alice's from her first packet."""
    sink = sinks()
    alice_sends_to, _ = anchor(rtpengine, "kit-dtmf", audio_sdp(9), sink.port)
    bob = phones.start(sipp, kamailio, "bob", "answer_media", rtp_port=alice_sends_to[1])
    alice = phones.call(sipp, kamailio, "alice", "bob", "dtmf", audio_ms=500, digits="4#0",
                        dtmf_gap_ms=300, hold_ms=300)
    assert alice.finish(20) == 0, alice.report()
    assert bob.finish(10) == 0, bob.report()
    assert dtmf_log.wait_for(3, call_id="kit-dtmf") == [4, 11, 0]
    report = dtmf_log.reports[0]
    assert (report["callid"], report["source_tag"], report["type"]) == ("kit-dtmf", "alice", "DTMF"), report
    assert sink.digits() == [4, 11, 0], sink.events()
    assert sink.count(0) == 25, sink.count(0)
