"""The simulated phones (phones.py, scenarios/phone_*.xml) against the real Kamailio
with openser-cfg/kamailio.cfg: calls between two registered local users go straight
through Kamailio's LOCATION route (no bridge), which proves each behaviour works before
the B2BUA tests rely on it."""
import pytest

import harness
import phones


@pytest.fixture
def kamailio(start_kamailio):
    return start_kamailio(subscribers=phones.USERS)


def done(*ps, timeout=30):
    for p in ps:
        assert p.finish(timeout) == 0, p.report()


def test_phone_registers_and_kamailio_routes_to_it(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "busy")
    assert bob.registered()
    register = bob.sent("REGISTER")
    assert len(register) == 2 and register[1].header("Authorization"), bob.report()
    assert register[0].header("Contact") == [f"<sip:bob@{harness.LOCAL}:{bob.port}>"]
    # a call to bob now reaches the phone (480 if it were not registered)
    alice = phones.call(sipp, kamailio, "alice", "bob")
    done(alice, bob)
    assert alice.final_status() == 486, alice.report()


def test_wrong_password_does_not_register(kamailio, sipp):
    with pytest.raises(AssertionError, match="did not register|to register"):
        phones.start(sipp, kamailio, "bob", password="wrong", register_timeout=3)


def test_answered_call_caller_hangs_up(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "answer", ring_ms=300)
    alice = phones.call(sipp, kamailio, "alice", "bob", hangup_after_ms=300)
    done(alice, bob)
    assert alice.final_status() == 200, alice.report()
    assert [m.status for m in bob.responses("INVITE", "sent")] == [180, 200], bob.report()
    assert bob.responses("INVITE", "sent")[1].sdp_direction() == "sendrecv"
    assert len(bob.received("INVITE")) == 1 and len(bob.received("ACK")) == 1, bob.report()
    assert len(bob.received("BYE")) == 1, bob.report()
    assert not alice.received("BYE"), alice.report()
    # the BYE took the dialog's route set (through Kamailio) and kept the dialog's tags
    bye = bob.received("BYE")[0]
    assert bye.header("Call-ID") == bob.received("INVITE")[0].header("Call-ID")


def test_answered_call_callee_hangs_up(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "answer", hangup_after_ms=300)
    alice = phones.call(sipp, kamailio, "alice", "bob")        # waits for the remote BYE
    done(alice, bob)
    assert alice.final_status() == 200, alice.report()
    assert len(alice.received("BYE")) == 1, alice.report()
    assert not bob.received("BYE"), bob.report()
    bye = bob.sent("BYE")[0]
    # in-dialog: R-URI = the caller's Contact, Route = Kamailio's Record-Route
    assert bye.first_line.startswith(f"BYE sip:alice@{harness.LOCAL}:{alice.port}"), bye
    assert any(f":{kamailio.port};lr" in r for r in bye.header("Route")), bye
    assert [m.status for m in bob.responses("BYE")] == [200], bob.report()


def test_busy(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "busy")
    alice = phones.call(sipp, kamailio, "alice", "bob")
    done(alice, bob)
    assert alice.final_status() == 486, alice.report()
    assert bob.received("ACK"), bob.report()


def test_reject(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "reject")
    alice = phones.call(sipp, kamailio, "alice", "bob")
    done(alice, bob)
    assert alice.final_status() == 603, alice.report()
    assert bob.received("ACK"), bob.report()


def test_no_answer_then_caller_cancels(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "noanswer")
    alice = phones.call(sipp, kamailio, "alice", "bob", behaviour="cancel", cancel_after_ms=400)
    done(alice, bob)
    assert alice.final_status() == 487, alice.report()
    assert [m.status for m in alice.responses("INVITE")][-2:] == [180, 487], alice.report()
    assert len(bob.received("CANCEL")) == 1, bob.report()
    assert [m.status for m in bob.responses("INVITE", "sent")] == [180, 487], bob.report()
    assert bob.received("ACK"), bob.report()


def test_answering_phone_cancelled_while_ringing(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "answer", ring_ms=5000)
    alice = phones.call(sipp, kamailio, "alice", "bob", behaviour="cancel", cancel_after_ms=300)
    done(alice, bob)
    assert alice.final_status() == 487, alice.report()
    assert [m.status for m in bob.responses("INVITE", "sent")] == [180, 487], bob.report()


def test_hold_and_unhold_through_kamailio(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "answer")
    alice = phones.call(sipp, kamailio, "alice", "bob", behaviour="hold", talk_ms=200, hold_ms=300)
    done(alice, bob)
    invites = bob.received("INVITE")
    assert [m.sdp_direction() for m in invites] == ["sendrecv", "sendonly", "sendrecv"], bob.report()
    assert len({m.header("Call-ID")[0] for m in invites}) == 1
    answers = [m for m in bob.responses("INVITE", "sent") if m.status == 200]
    assert [m.sdp_direction() for m in answers] == ["sendrecv", "recvonly", "sendrecv"], bob.report()
    assert len(bob.received("ACK")) == 3 and len(bob.received("BYE")) == 1, bob.report()
    assert [m.status for m in alice.responses("INVITE")].count(200) == 3, alice.report()


def test_reinvites_while_callee_hangup_timer_runs_then_caller_hangs_up(kamailio, sipp):
    """re-INVITEs and the caller's BYE arrive while the callee waits to hang up itself."""
    bob = phones.start(sipp, kamailio, "bob", "answer", hangup_after_ms=1500)
    alice = phones.call(sipp, kamailio, "alice", "bob", behaviour="hold", talk_ms=200, hold_ms=200)
    done(alice, bob)
    assert [m.sdp_direction() for m in bob.received("INVITE")] == ["sendrecv", "sendonly", "sendrecv"]
    assert len(bob.received("BYE")) == 1 and not bob.sent("BYE"), bob.report()


def test_reinvites_then_callee_hangs_up(kamailio, sipp):
    """The callee hangs up after the hold/unhold re-INVITEs, while the caller still talks."""
    bob = phones.start(sipp, kamailio, "bob", "answer", hangup_after_ms=500)
    alice = phones.call(sipp, kamailio, "alice", "bob", behaviour="hold", talk_ms=100, hold_ms=100,
                        unhold_talk_ms=10000)
    done(alice, bob)
    assert len(bob.received("INVITE")) == 3 and len(bob.sent("BYE")) == 1, bob.report()
    assert len(alice.received("BYE")) == 1 and not alice.sent("BYE"), alice.report()


def test_phone_takes_several_calls_at_once(kamailio, sipp):
    bob = phones.start(sipp, kamailio, "bob", "answer", ring_ms=300, calls=2)
    alice = phones.call(sipp, kamailio, "alice", "bob", hangup_after_ms=500)
    carol = phones.call(sipp, kamailio, "carol", "bob", hangup_after_ms=500)
    done(alice, carol, bob)
    assert alice.final_status() == 200 and carol.final_status() == 200
    invites = bob.received("INVITE")
    assert {m.header("From")[0].split("@")[0] for m in invites} == {"<sip:alice", "<sip:carol"}
    assert len(bob.received("BYE")) == 2, bob.report()
