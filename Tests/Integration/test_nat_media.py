"""Issue 16 item 1: openser-cfg/kamailio.cfg with -A WITH_RTPENGINE anchors the media of calls with a
phone behind NAT in rtpengine (Kamailio's rtpengine module), with a real Kamailio, rtpengine and a sipp
callee; no bridge (a local user calls a local user). The "NATed" caller is a testkit UA whose SDP names
a private address (10.0.0.5) it cannot be reached at, while it really sends SIP and RTP from 127.0.0.1."""
import re
import socket
import uuid

import pytest

import harness
import phones
from harness import DOMAIN, LOCAL
from switchboard_testkit import ua as ua_module
from switchboard_testkit.rtpengine import RTPSink, audio_sdp, sdp_media_address
from switchboard_testkit.sip import digest_authorization, header_values
from switchboard_testkit.ua import UA

PRIVATE = "10.0.0.5"


@pytest.fixture
def nat_proxy(start_kamailio, start_rtpengine):
    """(kamailio, rtpengine): Kamailio with WITH_RTPENGINE pointing at a fresh rtpengine."""
    engine = start_rtpengine()
    k = start_kamailio(subscribers=phones.USERS,
                       defines={"WITH_RTPENGINE": "1", "RTPENGINE_SOCK": f'"udp:{engine.ng_address}"'})
    return k, engine


@pytest.fixture
def sinks():
    """RTPSink(s) made by the test (on a given port, or a free one), closed after it."""
    made = []

    def make(port=None):
        made.append(RTPSink(port))
        return made[-1]

    yield make
    for sink in made:
        sink.close()


def behind_nat(sdp):
    """The SDP a phone behind NAT sends: its private address where it says it receives media."""
    return sdp.replace(f"IN IP4 {LOCAL}", f"IN IP4 {PRIVATE}")


def sessions(engine):
    reply = engine.ng("list")
    assert reply.get("result") == "ok", reply
    return reply.get("calls", [])


def place_call(ua, body, others=()):
    """`ua`'s INVITE to bob through Kamailio (the testkit UAs in `others` served meanwhile); returns
    (dialog, the 200) once answered and ACKed."""
    answers = []
    dialog = ua.invite(f"sip:bob@{DOMAIN}", body=body, done=lambda status, msg: answers.append((status, msg)))
    pump((ua, *others), lambda: answers, f"{ua.user}'s call to be answered")
    status, ok = answers[0]
    assert status == 200 and dialog.state == "confirmed", (status, ok and ok.first)
    return dialog, ok


def hang_up(ua, dialog, others=()):
    ended = []
    ua.bye(dialog, done=lambda status, msg: ended.append(status))
    pump((ua, *others), lambda: ended, f"{ua.user}'s BYE to be answered")
    assert ended == [200], ended


def pump(uas, condition, what, timeout=10):
    """Serves the testkit UAs `uas` until `condition()` holds."""
    harness.wait_until(lambda: [(ua.receive(), ua.tick()) for ua in uas] and condition(), timeout, what)


def lines(sdp):
    """An SDP's lines, line endings aside."""
    return re.split(r"\r?\n", sdp.strip())


def in_engine(engine, address):
    ip, port = address
    return ip == LOCAL and engine.port_min <= port <= engine.port_max


def test_a_nated_callers_media_goes_through_rtpengine(nat_proxy, sipp, sinks):
    k, engine = nat_proxy
    bob_media, alice_media = sinks(), sinks()
    bob = phones.start(sipp, k, "bob", "answer_media", rtp_port=bob_media.port)
    alice = UA("alice", phones.USERS["alice"], k.port)
    offer = behind_nat(audio_sdp(alice_media.port))
    dialog, ok = place_call(alice, offer)

    # both SDPs name rtpengine, not the other phone
    to_bob = sdp_media_address(bob.wait_for("INVITE")[0].body)
    to_alice = sdp_media_address(ok.body)
    assert in_engine(engine, to_bob), (to_bob, bob.received("INVITE")[0].body)
    assert in_engine(engine, to_alice), (to_alice, ok.body)
    assert PRIVATE not in bob.received("INVITE")[0].body       # replace-origin, replace-session-connection
    assert sessions(engine) == [dialog.call_id]

    # bob's media first, before alice sent any: it reaches alice's real socket only because rtpengine
    # took her address from where her INVITE came from (SIP-source-address), not from her SDP
    bob_media.send(to_bob, count=5)
    got = alice_media.wait_for(5)
    assert {p.ssrc for p in got} == {0x5B5B0001}, got
    alice_media.send(to_alice, count=5, ssrc=0x5B5B00A1)
    assert {p.ssrc for p in bob_media.wait_for(5)} == {0x5B5B00A1}
    assert all(src[0] == LOCAL and engine.port_min <= src[1] <= engine.port_max
               for src in alice_media.sources | bob_media.sources), (alice_media.sources, bob_media.sources)

    # a hold re-INVITE goes through the same session: rtpengine's addresses again, the direction kept
    held = []
    alice.request(dialog, "INVITE", behind_nat(audio_sdp(alice_media.port, direction="sendonly")),
                  done=lambda status, msg: held.append((status, msg)))
    pump([alice], lambda: held, "alice's hold to be answered")
    assert held[0][0] == 200, held[0][1] and held[0][1].first
    reinvite = bob.wait_for("INVITE", 2)[1]
    assert sdp_media_address(reinvite.body) == to_bob and reinvite.sdp_direction() == "sendonly", reinvite
    assert sdp_media_address(held[0][1].body) == to_alice, held[0][1].body
    assert sessions(engine) == [dialog.call_id]

    bob.wait_for("ACK", 2)  # sipp aborts on a BYE that overtakes the ACK (Kamailio relays them in parallel)
    hang_up(alice, dialog)
    assert bob.finish() == 0, bob.report()
    harness.wait_until(lambda: not sessions(engine), 5, "rtpengine to drop the call", engine.log)


def test_a_call_without_nat_is_not_anchored(nat_proxy, sipp, sinks):
    k, engine = nat_proxy
    bob_media, alice_media = sinks(), sinks()
    bob = phones.start(sipp, k, "bob", "answer_media", rtp_port=bob_media.port)
    alice = UA("alice", phones.USERS["alice"], k.port)
    offer = audio_sdp(alice_media.port)
    dialog, ok = place_call(alice, offer)
    to_bob = bob.wait_for("INVITE")[0].body
    assert sdp_media_address(to_bob) == (LOCAL, alice_media.port), to_bob
    assert lines(to_bob) == lines(offer)
    assert sdp_media_address(ok.body) == (LOCAL, bob_media.port), ok.body
    assert sessions(engine) == []
    bob.wait_for("ACK")  # sipp aborts on a BYE that overtakes the ACK (Kamailio relays them in parallel)
    hang_up(alice, dialog)
    assert bob.finish() == 0, bob.report()


def test_a_failed_nated_call_leaves_no_session(nat_proxy, sipp, sinks):
    """The callee's 486 ends the call in the failure route, which deletes the session its INVITE made."""
    k, engine = nat_proxy
    alice_media = sinks()
    bob = phones.start(sipp, k, "bob", "busy")
    alice = UA("alice", phones.USERS["alice"], k.port)
    answers = []
    alice.invite(f"sip:bob@{DOMAIN}", body=behind_nat(audio_sdp(alice_media.port)),
                 done=lambda status, msg: answers.append(status))
    pump([alice], lambda: answers, "alice's call to fail")
    assert answers == [486], answers
    # it was anchored: bob was offered rtpengine's address
    assert in_engine(engine, sdp_media_address(bob.received("INVITE")[0].body)), bob.report()
    harness.wait_until(lambda: not sessions(engine), 5, "rtpengine to drop the failed call", engine.log)
    assert bob.finish() == 0, bob.report()


def test_without_rtpengine_a_nated_call_goes_on_unanchored(start_kamailio, sipp, sinks):
    """rtpengine not answering: the call is still placed and answered, its SDP as the phones sent it."""
    k = start_kamailio(subscribers=phones.USERS,
                       defines={"WITH_RTPENGINE": "1", "RTPENGINE_SOCK": f'"udp:{LOCAL}:{harness.free_port()}"'})
    bob_media, alice_media = sinks(), sinks()
    bob = phones.start(sipp, k, "bob", "answer_media", rtp_port=bob_media.port)
    alice = UA("alice", phones.USERS["alice"], k.port)
    dialog, ok = place_call(alice, behind_nat(audio_sdp(alice_media.port)))
    assert sdp_media_address(bob.wait_for("INVITE")[0].body) == (PRIVATE, alice_media.port), bob.report()
    assert sdp_media_address(ok.body) == (LOCAL, bob_media.port), ok.body
    bob.wait_for("ACK")  # sipp aborts on a BYE that overtakes the ACK (Kamailio relays them in parallel)
    hang_up(alice, dialog)
    assert bob.finish() == 0, bob.report()
    assert "media goes as its SDP says" in k.tail(200), k.tail(200)


def register_behind_nat(ua):
    """REGISTERs `ua` from its own socket with the Contact a phone behind NAT sends (its private
    address): Kamailio keeps where the REGISTER came from (fix_nated_register) and marks the binding
    NATed (usrloc's nat_bflag). Returns the final status."""
    ua.sock.setblocking(True)
    ua.sock.settimeout(2)
    try:
        call_id, tag, uri, auth = uuid.uuid4().hex, uuid.uuid4().hex[:8], f"sip:{DOMAIN}", ""
        for cseq in (1, 2):
            ua.sock.sendto((f"REGISTER {uri} SIP/2.0\r\n"
                            f"Via: SIP/2.0/UDP {PRIVATE}:5060;rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                            f"From: <sip:{ua.user}@{DOMAIN}>;tag={tag}\r\nTo: <sip:{ua.user}@{DOMAIN}>\r\n"
                            f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                            f"Contact: <sip:{ua.user}@{PRIVATE}:5060>\r\nExpires: 300\r\n"
                            f"Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n").encode(), ua.proxy)
            status = 100
            while status < 200:
                reply = ua.sock.recv(65535).decode(errors="replace")
                status = int(reply.split(" ", 2)[1])
            if status != 401:
                return status
            auth = digest_authorization(header_values(reply, "WWW-Authenticate")[0], ua.user, ua.password,
                                        "REGISTER", uri) + "\r\n"
        return status
    except socket.timeout:
        return None
    finally:
        ua.sock.setblocking(False)


def test_a_callee_registered_behind_nat_gets_its_media_through_rtpengine(nat_proxy, sinks, monkeypatch):
    """bob registered from behind NAT (private Contact) and answers with his private address: Kamailio
    reaches him where his REGISTER came from, anchors the call on that branch, and sends alice's media
    to where his 200 came from (SIP-source-address), not to his SDP's address."""
    k, engine = nat_proxy
    plain_sdp = ua_module.sdp
    # the UA answers with ua.sdp(): bob's answers name his private address (alice makes her own offer)
    monkeypatch.setattr(ua_module, "sdp", lambda *args, **kwargs: behind_nat(plain_sdp(*args, **kwargs)))
    bob = UA("bob", phones.USERS["bob"], k.port, register_as=False)
    assert register_behind_nat(bob) == 200
    bob_media = sinks(bob.port + 1)     # where bob's SDP says he receives (that port, a private address)
    alice_media = sinks()
    alice = UA("alice", phones.USERS["alice"], k.port)
    dialog, ok = place_call(alice, audio_sdp(alice_media.port), others=[bob])
    to_bob = sdp_media_address(next(iter(bob.dialogs.values())).received[0][2].body)
    to_alice = sdp_media_address(ok.body)
    assert in_engine(engine, to_bob) and in_engine(engine, to_alice), (to_bob, ok.body)
    alice_media.send(to_alice, count=5)
    assert len(bob_media.wait_for(5)) == 5
    bob_media.send(to_bob, count=5, ssrc=0x5B5B00B0)
    assert {p.ssrc for p in alice_media.wait_for(5)} == {0x5B5B00B0}
    hang_up(alice, dialog, others=[bob])        # the BYE reaches bob along the NATed branch's route
    harness.wait_until(lambda: not sessions(engine), 5, "rtpengine to drop the call", engine.log)
