"""Simulated SIP phones for the integration tests: one sipp process per phone,
registered at Kamailio (openser-cfg/kamailio.cfg) as a subscriber, with a behaviour.

Callees (sipp UAS, scenarios/phone_<behaviour>.xml), started by start(): they REGISTER
with digest auth first, then treat every INVITE that Kamailio forwards to them:
    "answer"    180, ring_ms later 200 + SDP; answers re-INVITEs (hold/unhold; the 200's
                Contact names reinvite_contact_user), UPDATEs and BYE, or hangs up itself
                hangup_after_ms after the answer; a CANCEL while ringing gets 200 + 487
    "busy"      486 Busy Here
    "noanswer"  180 and nothing more; CANCEL -> 200 + 487
    "reject"    603 Decline
    "reinvite_cancelled"  answers (180, 200 + SDP); a re-INVITE then gets 100 and waits for
                its CANCEL (200, 487 for the re-INVITE), then the remote BYE gets 200
    "glare"     answers (180, 200 + SDP); the first re-INVITE gets 491, the next one 200
                (a=recvonly), then the remote BYE gets 200
    "refuse"    final = "STATUS REASON" with one header final_header (a 503 with its
                Retry-After, a 407 with its Proxy-Authenticate, a 302 with its Contact)
    "early_refuse"  183 with SDP (an announcement), ring_ms later final (as "refuse")
    "answer_100rel"  183 with SDP sent reliably (Require: 100rel, RSeq 1) until its PRACK,
                ring_ms after the PRACK 200 + SDP; the remote BYE gets 200
    "refer"     answers (180, 200 + SDP), talk_ms later REFERs its caller to refer_to (blind
                transfer, RFC 3515): 202, two NOTIFYs (100 Trying, 200 OK) answered 200, then
                the remote BYE gets 200
    "answer_media"  as "answer", its SDPs offering PCMU + telephone-event on 127.0.0.1:rtp_port,
                where the test's RTPSink (switchboard_testkit.rtpengine) counts what arrives
Callers (sipp UAC, scenarios/phone_call*.xml), started by call(): they REGISTER, then
INVITE a number through Kamailio (407 handled):
    "call"      waits for the answer; the remote BYE (or hangs up after hangup_after_ms);
                answers re-INVITEs; a final failure (486, 603, ...) just ends the call
    "hold"      re-INVITE a=sendonly talk_ms after the answer, a=sendrecv hold_ms later,
                BYE unhold_talk_ms after that (or answers the remote BYE)
    "cancel"    CANCEL cancel_after_ms after the 180
    "reinvite_cancel"  re-INVITE a=sendonly talk_ms after the answer, CANCEL it
                cancel_after_ms after the proxy's 100 (200 + 487, ACK), BYE hold_ms later
    "reinvite_nosdp"  re-INVITE without SDP talk_ms after the answer; the 200 carries the
                other side's offer, the ACK the answer; BYE hold_ms later
    "timer"     session timer (RFC 4028) Session-Expires: 90;refresher=uac: a refresh re-INVITE
                talk_ms after the answer, a refresh UPDATE hold_ms later, then none: it
                waits for the BYE of the expired session
    "timer_refreshed"  session timer Session-Expires: 90;refresher=uas (UPDATE allowed): answers
                the refreshes it gets, BYE after the refreshes-th
    "early"     expects a 183, maybe a 180, then a 200 whose To tag is not the 183's (the call
                fails otherwise); BYE hangup_after_ms after the answer
    "100rel"    INVITE with Require: 100rel; the 183 must be reliable (RSeq), PRACK, its 200,
                then the INVITE's 200; BYE hangup_after_ms after the answer
    "dtmf"      offers PCMU + telephone-event 101; after the answer plays audio_ms of PCMU, then
                three RFC 4733 digits dtmf_gap_ms apart to the 200's SDP address; BYE hold_ms
                after the last digit (or answers the remote BYE)

Every phone writes a message trace; messages(), received(), final_status() read it.
Phones are stopped with the `sipp` fixture (they are in its `running` list) and their
logs are attached to a failing test's report with the other sipp logs.

    k = start_kamailio(subscribers=phones.USERS)
    bob = phones.start(sipp, k, "bob", "answer", ring_ms=200)
    alice = phones.call(sipp, k, "alice", "bob", hangup_after_ms=500)
    assert alice.finish() == 0, alice.report()
    assert bob.finish() == 0, bob.report()
    assert bob.received("BYE")
"""
import re
from pathlib import Path

from switchboard_testkit.rtpengine import caller_media_pcaps
from switchboard_testkit.sip import kick

import harness
from harness import DOMAIN, LOCAL

# Subscribers the phones use unless given a password: start_kamailio(subscribers=USERS).
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret",
         "dave": "dave-secret"}

CALLEE_SCENARIOS = {"answer": "phone_answer.xml", "busy": "phone_busy.xml",
                    "noanswer": "phone_noanswer.xml", "reject": "phone_reject.xml",
                    "reinvite_cancelled": "phone_answer_reinvite_cancelled.xml",
                    "glare": "phone_answer_491.xml", "refuse": "phone_refuse.xml",
                    "early_refuse": "phone_early_refuse.xml", "answer_100rel": "phone_answer_100rel.xml",
                    "refer": "phone_answer_refer.xml", "answer_media": "phone_answer_media.xml"}
CALLER_SCENARIOS = {"call": "phone_call.xml", "hold": "phone_call_hold.xml",
                    "cancel": "phone_call_cancel.xml", "sipi": "phone_call_sipi.xml",
                    "reinvite_cancel": "phone_call_reinvite_cancel.xml",
                    "reinvite_nosdp": "phone_call_reinvite_nosdp.xml",
                    "timer": "phone_call_timer.xml", "timer_refreshed": "phone_call_timer_refreshed.xml",
                    "early": "phone_call_early.xml", "100rel": "phone_call_100rel.xml",
                    "dtmf": "phone_call_dtmf.xml"}

_SEPARATOR = "----------------------------------------------- "


class Message:
    """One SIP message of a phone's trace: direction "received" or "sent", the text
    (start line, headers, body), and helpers to read it."""

    def __init__(self, direction, text):
        self.direction, self.text = direction, text

    @property
    def first_line(self):
        return self.text.split("\n", 1)[0].strip()

    @property
    def method(self):
        """Request method ("INVITE", ...), or None for a response."""
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ", 1)[0]

    @property
    def status(self):
        """Response status code (int), or None for a request."""
        return int(self.first_line.split(" ", 2)[1]) if self.first_line.startswith("SIP/2.0") else None

    @property
    def cseq_method(self):
        values = self.header("CSeq")
        return values[0].split()[-1] if values else None

    @property
    def body(self):
        return self.text.partition("\n\n")[2]

    def header(self, name):
        """Values of a header (all occurrences)."""
        return harness.header_values(self.text.partition("\n\n")[0], name)

    def sdp_direction(self):
        """The a=sendrecv/sendonly/recvonly/inactive attribute of the SDP body, or None."""
        m = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", self.body, re.M)
        return m.group(1) if m else None

    def sdp_origin(self):
        """(username, session id, version) of the SDP body's o= line, or None."""
        m = re.search(r"^o=(\S+) (\S+) (\d+) ", self.body, re.M)
        return (m.group(1), m.group(2), int(m.group(3))) if m else None

    def __repr__(self):
        return f"<{self.direction} {self.first_line}>"

    def __str__(self):
        return self.text


class Phone:
    """A running phone (one sipp process). `port` is where it listens and sends from."""

    def __init__(self, name, user, role, behaviour, port, proc, workdir):
        self.name, self.user, self.role, self.behaviour = name, user, role, behaviour
        self.port, self.proc = port, proc
        self.messages_file = Path(workdir) / f"{name}.messages"
        self.errors_file = Path(workdir) / f"{name}.errors"
        self.code = None

    # --- process ---
    def running(self):
        return self.proc.running()

    def finish(self, timeout=30):
        """Wait for the phone's sipp to end (its calls are done: callee phones end after
        `calls` calls); returns its exit code (0 = every call went as scripted)."""
        self.code = self.proc.wait(timeout)
        return self.code

    def stop(self):
        """Stop it now (SIGTERM, then SIGKILL); returns the exit code."""
        self.code = self.proc.stop()
        return self.code

    # --- trace ---
    def messages(self):
        """Every SIP message in the trace, in order (the harness's KICK excluded)."""
        try:
            text = self.messages_file.read_text(errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for block in text.split(_SEPARATOR)[1:]:
            head, _, body = block.partition("\n\n")
            direction = ("received" if "message received" in head
                         else "sent" if "message sent" in head else None)
            body = body.replace("\r\n", "\n").strip()
            if direction and body and not body.startswith("KICK "):
                out.append(Message(direction, body))
        return out

    def received(self, method):
        """Requests with this method the phone received (Message objects; str() = text)."""
        return [m for m in self.messages() if m.direction == "received" and m.method == method]

    def sent(self, method):
        """Requests with this method the phone sent."""
        return [m for m in self.messages() if m.direction == "sent" and m.method == method]

    def responses(self, cseq_method="INVITE", direction="received"):
        """Responses (received by default) to requests with this CSeq method."""
        return [m for m in self.messages() if m.direction == direction and m.status
                and m.cseq_method == cseq_method]

    def final_status(self):
        """The status of the last final response the phone received to an INVITE (for a
        caller: how its call ended up: 200, 486, 487, ...), or None."""
        finals = [m.status for m in self.responses("INVITE") if m.status >= 200]
        return finals[-1] if finals else None

    def registered(self):
        return any(m.status == 200 for m in self.responses("REGISTER"))

    def wait_for(self, method, count=1, timeout=10):
        """Wait until the phone received `count` requests with this method; returns them."""
        harness.wait_until(lambda: len(self.received(method)) >= count or not self.running(),
                           timeout, f"{self.name} to receive {count} {method}", self.report)
        got = self.received(method)
        assert len(got) >= count, f"{self.name} ended before {count} {method}\n{self.report()}"
        return got

    def report(self):
        return "\n".join([f"phone {self.name} ({self.user}, {self.role} {self.behaviour}, "
                          f"port {self.port}): exit {self.code}", self.proc.tail(30),
                          harness.tail(self.errors_file, 30), harness.tail(self.messages_file, 120)])


def _argv(sipp, name, scenario, port, user, password, keys, extra, timeout):
    argv = [harness.SIPP, "-sf", harness.SCENARIOS / scenario, "-i", LOCAL, "-p", port,
            "-mp", harness.free_port(False), "-nostdin", "-timeout", f"{timeout}s",
            "-timeout_error", "-trace_msg", "-message_file", sipp.dir / f"{name}.messages",
            "-trace_err", "-error_file", sipp.dir / f"{name}.errors",
            "-au", user, "-ap", password]
    for k, v in {"user": user, "domain": DOMAIN, **keys}.items():
        argv += ["-key", k, v]
    return [str(a) for a in argv + list(extra)]


def _launch(sipp, name, argv):
    proc = harness.Process(f"sipp-{name}", argv, sipp.dir)
    sipp.running.append(proc)
    return proc


def start(sipp, kamailio, user, behaviour="answer", password=None, ring_ms=0,
          hangup_after_ms=0, calls=1, timeout=60, name=None, register_timeout=10,
          reinvite_contact_user=None, final=None, final_header=None, talk_ms=500, refer_to=None,
          rtp_port=None):
    """Start a callee phone registered at `kamailio` as `user` and return it once Kamailio
    accepted its REGISTER (200 in its trace). behaviour: answer | busy | noanswer | reject |
    reinvite_cancelled | glare | refuse | early_refuse (final, final_header) | answer_100rel |
    refer (talk_ms, refer_to) | answer_media (rtp_port: the m= port of its SDPs).
    ring_ms: pause between 180 and 200 ("answer"). hangup_after_ms: > 0 = the phone sends
    BYE that long after answering (the timer restarts after each re-INVITE); 0 = it waits
    for the remote BYE. calls: the phone's sipp ends after that many calls (None: runs
    until stopped). timeout: sipp's global timeout in seconds (exit code != 0 if hit).
    reinvite_contact_user ("answer"): the user part of the Contact in the phone's 200s to
    re-INVITEs (default: `user`); another one moves the dialog's remote target."""
    scenario = CALLEE_SCENARIOS[behaviour]
    name = name or f"phone-{user}"
    password = password if password is not None else USERS[user]
    port = harness.free_port()
    keys = {"registrar_ip": LOCAL, "registrar_port": kamailio.port,
            "ring_ms": int(ring_ms), "hangup_after_ms": int(hangup_after_ms),
            "reinvite_contact_user": reinvite_contact_user or user}
    if behaviour in ("refuse", "early_refuse"):
        # sipp checks a response's status when it loads the scenario: the code is written in
        status, reason = final.split(" ", 1)
        scenario = sipp._scenario(scenario, status)
        keys |= {"final_reason": reason, "final_header": final_header}
    if behaviour == "answer_media":
        keys["rtp_port"] = int(rtp_port)
    if behaviour == "refer":
        keys |= {"talk_ms": int(talk_ms), "refer_to": refer_to}
    # the remote host only sets [remote_ip]:[remote_port] (sipp's digest uri); replies go
    # where requests came from, the REGISTER where the scenario's setdest says
    extra = (["-m", calls + 1] if calls is not None else []) + [f"{LOCAL}:{kamailio.port}"]
    argv = _argv(sipp, name, scenario, port, user, password, keys, extra, timeout)
    proc = _launch(sipp, name, argv)
    phone = Phone(name, user, "callee", behaviour, port, proc, sipp.dir)
    harness.wait_until(lambda: harness.udp_port_in_use(port), 5, f"phone {name} to bind {port}",
                       phone.report, proc)
    kick(port, user)
    harness.wait_until(phone.registered, register_timeout, f"phone {name} to register as {user}",
                       phone.report, proc)
    return phone


def call(sipp, kamailio, user, number, behaviour="call", password=None, hangup_after_ms=0,
         talk_ms=500, hold_ms=500, unhold_talk_ms=None, cancel_after_ms=500, refreshes=2,
         audio_ms=500, digits="123", dtmf_gap_ms=400, timeout=30,
         name=None):
    """Start a caller phone: it registers as `user`, then calls `number` through
    `kamailio`; returns at once (finish() waits for the end of the call).
    behaviour: call | sipi | early | 100rel | hold | cancel | reinvite_cancel | reinvite_nosdp | timer |
    timer_refreshed | dtmf. "early" and "100rel" hang up hangup_after_ms after the answer. "call":
    hangup_after_ms > 0 = BYE that long after the answer, 0 = wait for the remote BYE; final failures
    (486, 603, ...) end the call normally (see final_status()); "sipi" the same as a SIP-I trunk (SDP
    and ISUP in multipart/mixed). "hold": talk_ms, hold (sendonly) for hold_ms, unhold,
    unhold_talk_ms (default talk_ms), BYE; a BYE from the other side meanwhile ends the
    call normally. "cancel": CANCEL cancel_after_ms after the 180. "reinvite_cancel": talk_ms,
    re-INVITE, CANCEL it cancel_after_ms after the proxy's 100, BYE hold_ms after the 487.
    "reinvite_nosdp": talk_ms, re-INVITE without SDP, answer in the ACK, BYE hold_ms later.
    "timer": Session-Expires 90 refreshed by re-INVITE talk_ms after the answer and by UPDATE hold_ms
    later, then no more: the call ends at the session's expiry with the bridge's BYE.
    "timer_refreshed": Session-Expires 90 refreshed by the other side; BYE after `refreshes` refreshes.
    "dtmf": audio_ms of PCMU, then the three `digits` (of 0-9 * # A-D) as RFC 4733 events (payload
    type 101) dtmf_gap_ms apart, BYE hold_ms after the last (sipp plays pcaps: needs root)."""
    scenario = CALLER_SCENARIOS[behaviour]
    name = name or f"caller-{user}"
    password = password if password is not None else USERS[user]
    port = harness.free_port()
    keys = {"call": {"hangup_after_ms": int(hangup_after_ms)}, "sipi": {"hangup_after_ms": int(hangup_after_ms)},
            "early": {"hangup_after_ms": int(hangup_after_ms)}, "100rel": {"hangup_after_ms": int(hangup_after_ms)},
            "hold": {"talk_ms": int(talk_ms), "hold_ms": int(hold_ms),
                     "unhold_talk_ms": int(talk_ms if unhold_talk_ms is None else unhold_talk_ms)},
            "cancel": {"cancel_after_ms": int(cancel_after_ms)},
            "reinvite_cancel": {"talk_ms": int(talk_ms), "cancel_after_ms": int(cancel_after_ms),
                                "hold_ms": int(hold_ms)},
            "reinvite_nosdp": {"talk_ms": int(talk_ms), "hold_ms": int(hold_ms)},
            "timer": {"talk_ms": int(talk_ms), "hold_ms": int(hold_ms)},
            "timer_refreshed": {"refreshes": int(refreshes)},
            "dtmf": {"audio_ms": int(audio_ms), "dtmf_gap_ms": int(dtmf_gap_ms), "hold_ms": int(hold_ms)}}[behaviour]
    if behaviour == "dtmf":
        assert len(digits) == 3, f"the dtmf phone plays 3 digits, not {digits!r}"
        keys |= caller_media_pcaps(sipp.dir, name, int(audio_ms), digits, int(dtmf_gap_ms))
    argv = _argv(sipp, name, scenario, port, user, password, keys,
                 ["-m", 1, "-s", number, f"{LOCAL}:{kamailio.port}"], timeout)
    proc = _launch(sipp, name, argv)
    return Phone(name, user, "caller", behaviour, port, proc, sipp.dir)
