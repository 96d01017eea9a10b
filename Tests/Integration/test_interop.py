"""The bridge among other SIP elements (docs/interop.md): what of a B leg's final answer reaches
the caller and the proxy in front, and Max-Forwards across a loop through an external PBX.
Kamailio runs the shipped openser-cfg/kamailio.cfg; phones are sipp, registered as users."""
import hashlib
import socket
import threading

import harness
import phones
from harness import DOMAIN, LOCAL
from test_b2bua import b2b, finished, one_call, user_uri  # noqa: F401 (b2b is a fixture)


def _respond(request, status, reason):
    """A response to `request` (text) with its Via, From, To (tagged), Call-ID and CSeq."""
    lines = request.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    keep = [line for line in lines if line.split(":", 1)[0].strip().lower() in ("via", "from", "call-id", "cseq")]
    to = next(line for line in lines if line.lower().startswith("to:"))
    if ";tag=" not in to:
        to += ";tag=loopback"
    return "\r\n".join([f"SIP/2.0 {status} {reason}", *keep, to, "Content-Length: 0", "", ""]).encode()


class _UDPPeer:
    """A SIP peer on a loopback UDP port, served by a thread until close()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                data, address = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            self.handle(data.decode(errors="replace"), address)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class SpareBridge(_UDPPeer):
    """A second bridge in dispatcher set 1: 200 to Kamailio's OPTIONS probes, so it stays
    active; every INVITE it gets (a failover) is recorded and refused with 500."""

    def __init__(self):
        self.invites = []
        super().__init__()

    def handle(self, text, address):
        method = text.split(" ", 1)[0]
        if method == "OPTIONS":
            self.sock.sendto(_respond(text, 200, "OK"), address)
        elif method == "INVITE":
            self.invites.append(text)
            self.sock.sendto(_respond(text, 500, "Spare"), address)


class LoopingPBX(_UDPPeer):
    """An external PBX that routes every call it gets back to the proxy, as a misconfigured
    one does: a stateless proxy (RFC 3261 §16.11) that sets the Request-URI's host to our SIP
    domain (so Kamailio hands the call to a bridge again), adds its Via with a branch derived
    from the incoming one (its ACK and CANCEL match), decrements Max-Forwards (483 at 0) and
    sends responses back along the Via."""

    def __init__(self):
        self.proxy = None  # (host, port) of the proxy, set once it runs
        super().__init__()

    def handle(self, text, address):
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        if lines[0].startswith("SIP/2.0"):
            vias = [i for i, line in enumerate(lines) if line.lower().startswith("via:")]
            if len(vias) < 2:
                return
            del lines[vias[0]]
            sent_by = lines[vias[1] - 1].split(":", 1)[1].split()[1].split(";")
            host, port = sent_by[0].rsplit(":", 1)
            rport = [p.split("=", 1)[1] for p in sent_by[1:] if p.startswith("rport=")]
            self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), (host, int(rport[0] if rport else port)))
            return
        method, uri, version = lines[0].split(" ")
        forwards = next(i for i, line in enumerate(lines) if line.lower().startswith("max-forwards:"))
        hops = int(lines[forwards].split(":", 1)[1])
        if hops == 0 and method != "ACK":
            self.sock.sendto(_respond(text, 483, "Too Many Hops"), address)
            return
        user = uri.split(":", 1)[1].split("@", 1)[0]
        top_via = next(line for line in lines if line.lower().startswith("via:"))
        branch = hashlib.md5(top_via.split("branch=", 1)[1].split(";", 1)[0].encode()).hexdigest()[:16]
        lines[forwards] = f"Max-Forwards: {max(hops - 1, 0)}"
        lines[0] = f"{method} sip:{user}@{DOMAIN} {version}"
        lines.insert(1, f"Via: SIP/2.0/UDP {LOCAL}:{self.port};branch=z9hG4bK{branch}")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.proxy)


def final_response(phone):
    return [m for m in phone.responses("INVITE") if m.status >= 200][-1]


# --- a B leg's final answer, as the caller and the proxy in front get it ---

def test_a_b_legs_5xx_reaches_the_caller_as_480_and_is_not_failed_over(b2b, sipp):
    """A 5xx relayed as is would make Kamailio fail over to the next bridge, which would dial
    every target again: the caller gets 480 with a Reason naming the B leg's status."""
    spare = SpareBridge()
    try:
        s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}},
                spare_bridges=[spare.port], defines={"DS_ALG": '"8"'})
        bob = phones.start(sipp, s.kamailio, "bob", "refuse", final="503 Service Unavailable",
                           final_header="Retry-After: 60")
        alice = phones.call(sipp, s.kamailio, "alice", "5000")
        finished(alice, bob)
        assert alice.final_status() == 480, alice.report()
        reason = final_response(alice).header("Reason")
        assert len(reason) == 1 and reason[0].startswith("SIP;cause=50"), alice.report()
        assert spare.invites == [], spare.invites
        call_id = one_call(s.bus)
        assert [f["leg_failed"]["status"] // 100 for f in s.bus.events(call_id, "call.leg_failed")] == [5]
        assert s.bus.events(call_id, "call.ended")[0]["ended"]["status"] == 480
    finally:
        spare.close()


def test_a_b_legs_challenge_is_not_relayed_to_the_caller(b2b, sipp):
    """The B side's 407 asks for credentials the caller does not have: the caller gets 403
    with a Reason, no challenge."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "refuse", final="407 Proxy Authentication Required",
                       final_header='Proxy-Authenticate: Digest realm="downstream.example", nonce="4f2a", algorithm=MD5')
    alice = phones.call(sipp, s.kamailio, "alice", "5000")
    finished(alice, bob)
    assert alice.final_status() == 403, alice.report()
    final = final_response(alice)
    assert final.header("Proxy-Authenticate") == [] and final.header("WWW-Authenticate") == [], final
    assert final.header("Reason") == ['SIP;cause=407;text="Proxy Authentication Required"'], final


def test_a_b_legs_redirect_is_followed_by_the_bridge(b2b, sipp):
    """bob answers 302 to carol: the bridge calls carol itself (the contact passes the
    destination policy and Kamailio's rules for a bridge's legs), the caller never sees the 3xx."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "refuse", final="302 Moved Temporarily",
                       final_header=f"Contact: <{user_uri('carol')}>")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=300)
    finished(alice, bob, carol)
    assert alice.final_status() == 200, alice.report()
    assert [m.status for m in alice.responses("INVITE") if 300 <= m.status < 400] == [], alice.report()
    call_id = one_call(s.bus)
    dialing = [e["dialing"] for e in s.bus.events(call_id, "call.dialing")]
    assert [(d["uri"], d["attempt"]) for d in dialing] == [(user_uri("bob"), 1), (user_uri("carol"), 2)], dialing
    assert [f["leg_failed"]["status"] for f in s.bus.events(call_id, "call.leg_failed")] == [302]


# --- identity and cause: a stated trust policy (docs/interop.md) ---

def test_a_phones_identity_claims_stop_at_kamailio_and_the_identity_it_proved_reaches_b(b2b, sipp):
    """alice's phone claims to be the CEO, diverted from 9999, and gives a Reason in its BYE.
    openser-cfg drops what a phone asserts and asserts who alice authenticated as; the bridge
    passes on what reaches it from Kamailio (P-Asserted-Identity, Privacy, Diversion, a BYE's
    Reason), so bob sees alice's proved identity and her Privacy request, and nothing of the claims."""
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}]}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=300)
    finished(alice, bob)
    assert alice.final_status() == 200, alice.report()
    sent = alice.sent("INVITE")[-1]
    assert sent.header("P-Asserted-Identity") and sent.header("Diversion"), sent
    invite = bob.received("INVITE")[0]
    assert invite.header("P-Asserted-Identity") == [f"<sip:alice@{DOMAIN}>"], invite
    assert invite.header("Privacy") == ["id"], invite
    assert invite.header("Diversion") == [], invite
    assert alice.sent("BYE")[0].header("Reason"), alice.report()
    assert bob.received("BYE")[0].header("Reason") == [], bob.report()


def test_a_request_over_1300_bytes_goes_over_udp_to_the_proxy_and_reaches_the_phone(b2b, sipp):
    """RFC 3261 §18.1.1 asks for a congestion-controlled transport past 1300 bytes on a 1500-byte
    MTU path. The bridge's only next hop is its outbound proxy, on the same host or LAN
    (docs/interop.md): it sends UDP there, and Kamailio picks the transport towards the phone.
    A B leg's INVITE of over 2 KB (a worker's headers) completes its call."""
    notes = {f"X-Note-{i}": "n" * 200 for i in range(8)}
    s = b2b({"5000": {"action": "bridge", "targets": [{"uri": user_uri("bob")}], "headers": notes}})
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=100)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=300)
    finished(alice, bob)
    assert alice.final_status() == 200, alice.report()
    invite = bob.received("INVITE")[0]
    assert len(invite.text.encode()) > 2000 and invite.header("X-Note-7") == ["n" * 200], invite


# --- loops ---

def test_a_loop_through_an_external_pbx_ends_with_483(b2b, sipp):
    """The worker bridges 5000 to a trunk (a PBX) that routes it back to Kamailio, which hands
    it to the bridge again. Each B leg carries the caller's Max-Forwards less one (RFC 7332),
    so the loop runs out of hops long before the bridge's call limit: 483, no call left up."""
    pbx = LoopingPBX()
    try:
        s = b2b({"5000": {"action": "bridge", "targets": [{"uri": f"sip:5000@{LOCAL}:{pbx.port}"}]}},
                bridge_args=("--max-calls", "60"), trusted=[f"{LOCAL}:{pbx.port}"], trunks=[f"{LOCAL}:{pbx.port}"])
        pbx.proxy = (LOCAL, s.kamailio.port)
        alice = phones.call(sipp, s.kamailio, "alice", "5000")
        finished(alice)
        assert alice.final_status() == 483, alice.report()
        calls = {e["call_id"] for e in s.bus.events(type="call.offered")}
        # every pass costs at least two of the caller's 70 hops (the bridge's and Kamailio's)
        assert 2 <= len(calls) <= 35, len(calls)
        harness.wait_until(lambda: {e["call_id"] for e in s.bus.events(type="call.ended")} == calls, 10,
                           "every call of the loop to end", lambda: s.bus.types(None))
        assert s.bus.command({"name": "list"})["result"]["calls"] == []
    finally:
        pbx.close()
