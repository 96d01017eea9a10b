"""A SIP phone over UDP for the benches: one socket, any number of dialogs at once, no threads.
The bench's own loop feeds it datagrams (`receive`) and time (`tick`); it places calls through the
proxy (INVITE with digest auth, RFC 2617), answers calls (180 + 200 with SDP), answers in-dialog
requests (re-INVITE and UPDATE with an SDP answer, INFO, BYE) and sends its own along the route set.
Like a real UA it retransmits (RFC 3261): a request until a final response (Timers A/E, given up
after 64*T1 as B/F), a 2xx to an INVITE until its ACK (§13.3.1.4), the last response again for a
retransmitted request, the ACK again for a retransmitted 2xx.

    ua = UA("bencha", "secret", kamailio_port)          # registers; ua.sock is non-blocking
    d = ua.invite("sip:7701@switchboard.local", done=lambda status, msg: ...)
    ua.request(d, "INFO", "Signal=5\\r\\nDuration=160\\r\\n", "application/dtmf-relay", done=...)
    ua.bye(d, done=...)
Incoming requests (and the ACK of a 2xx) are answered first, then reported to
`on_request(ua, dialog, message)`; a 2xx never ACKed within 64*T1 to `on_no_ack(ua, dialog)`."""
import re
import socket
import time
import uuid

from . import DOMAIN, LOCAL
from .net import free_port
from .sip import digest_authorization, register

T1, T2 = 0.5, 4.0
GIVE_UP = 64 * T1
COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "x": "session-expires"}


class Message:
    """A parsed SIP message: `method` (None for a response), `status`, headers by lower-case name
    (compact forms expanded) in order, `body`."""

    def __init__(self, text):
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first = lines[0]
        self.status = int(self.first.split(" ", 2)[1]) if self.first.startswith("SIP/2.0") else None
        self.method = None if self.status is not None else self.first.split(" ", 1)[0]
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            self.headers.append((COMPACT.get(name, name), value.strip()))

    def all(self, name):
        return [v for n, v in self.headers if n == name]

    def get(self, name, default=""):
        return next((v for n, v in self.headers if n == name), default)

    @property
    def call_id(self):
        return self.get("call-id")

    @property
    def cseq(self):
        number, _, method = self.get("cseq").partition(" ")
        return int(number), method.strip()


def uris(values):
    """The <...> URIs of header values such as Record-Route, in order."""
    return [u for v in values for u in re.findall(r"<[^>]+>", v)]


def tag_of(value):
    m = re.search(r";\s*tag=([^;>\s]+)", value)
    return m.group(1) if m else None


def sdp(user, port, version, direction="sendrecv", marker="-"):
    """An audio offer or answer: PCMU on `port`, the direction attribute, `marker` as s= (a
    relayed body is found again by it)."""
    return (f"v=0\r\no={user} 1 {version} IN IP4 {LOCAL}\r\ns={marker}\r\nc=IN IP4 {LOCAL}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n")


def direction_of(body):
    m = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", body, re.M)
    return m.group(1) if m else ("sendrecv" if body.strip() else None)


ANSWER = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "sendrecv": "sendrecv"}


class Dialog:
    """One leg as this phone sees it. `received`: (monotonic, method, Message) of every new request
    the far end sent in it; `state`: "calling", "confirmed" (2xx sent or received) or "ended";
    `ended_by`: "local" (our BYE answered), "remote" (BYE received), or a reason."""

    def __init__(self, call_id, local, remote, role):
        self.call_id, self.local, self.remote, self.role = call_id, local, remote, role
        self.target, self.route, self.cseq, self.version = None, [], 1, 1
        self.state, self.ended_by, self.received, self.answered = "calling", None, [], False
        self.data = {}          # the bench's own


class UA:
    """The phone `user`: its socket on 127.0.0.1 (`port`, else a free one), registered at the proxy
    unless register_as is False (then the caller registers it, e.g. with sip.register)."""

    def __init__(self, user, password, proxy_port, on_request=lambda ua, dialog, msg: None,
                 on_no_ack=lambda ua, dialog: None, register_as=True, port=None):
        self.user, self.password, self.proxy = user, password, (LOCAL, proxy_port)
        self.on_request, self.on_no_ack = on_request, on_no_ack
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.port = port or free_port(udp_and_tcp=False)
        self.sock.bind((LOCAL, self.port))
        self.sock.setblocking(False)
        self.contact = f"<sip:{user}@{LOCAL}:{self.port}>"
        self.dialogs = {}       # Call-ID -> Dialog
        self.pending = {}       # (Call-ID, CSeq number, method) -> client transaction (dict)
        self.served = {}        # (Call-ID, CSeq number, method) -> [response bytes, forget at]
        self.unacked = {}       # (Call-ID, CSeq number) -> [due, interval, give up at, 2xx bytes, addr]
        self.acks = {}          # (Call-ID, CSeq number) -> [ACK bytes, forget at]
        self.next_sweep = 0.0
        self.counters = {"retransmitted": 0, "retransmissions_received": 0, "no_ack": 0, "stray": 0}
        if register_as:
            status = register(proxy_port, user, password, self.port)
            if status != 200:
                raise RuntimeError(f"REGISTER of {user} got {status}")

    def fileno(self):
        return self.sock.fileno()

    # ------------------------------------------------------------ sending

    def _via(self):
        return f"Via: SIP/2.0/UDP {LOCAL}:{self.port};rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"

    def _send(self, data, addr=None):
        try:
            self.sock.sendto(data, addr or self.proxy)
        except BlockingIOError:
            pass                # a full send buffer is a lost datagram: retransmission covers it

    def _request_bytes(self, d, method, cseq, body="", ctype="application/sdp", extra="", via=None, ruri=None):
        route = f"Route: {', '.join(d.route)}\r\n" if d.route else ""
        btype = f"Content-Type: {ctype}\r\n" if body else ""
        contact = f"Contact: {self.contact}\r\n" if method in ("INVITE", "UPDATE") else ""
        return (f"{method} {ruri or d.target} SIP/2.0\r\n{via or self._via()}{route}Max-Forwards: 70\r\n"
                f"From: {d.local}\r\nTo: {d.remote}\r\nCall-ID: {d.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"{contact}{extra}{btype}Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()

    def _start(self, d, method, data, done, cseq):
        now = time.monotonic()
        self.pending[(d.call_id, cseq, method)] = {
            "dialog": d, "method": method, "bytes": data, "due": now + T1, "interval": T1,
            "give_up": now + GIVE_UP, "done": done, "provisional": False, "sent": now}
        self._send(data)

    def invite(self, ruri, done=lambda status, msg: None, body=None, extra=""):
        """A new call to `ruri` through the proxy (a 407 is answered once with credentials);
        `done(status, message)` gets the final answer (None, None after 64*T1)."""
        call_id = f"{uuid.uuid4().hex}@{LOCAL}"
        d = Dialog(call_id, f"<sip:{self.user}@{DOMAIN}>;tag={uuid.uuid4().hex[:10]}", f"<{ruri}>", "uac")
        d.target, d.data["ruri"], d.data["extra"] = ruri, ruri, extra
        d.data["body"] = body if body is not None else sdp(self.user, self.port + 1, 1)
        self.dialogs[call_id] = d
        self._start(d, "INVITE", self._request_bytes(d, "INVITE", 1, d.data["body"], extra=extra), done, 1)
        return d

    def request(self, d, method, body="", ctype="application/sdp", extra="", done=lambda status, msg: None):
        """An in-dialog request (re-INVITE, UPDATE, INFO, BYE, ...) along the route set; a 2xx to an
        INVITE is ACKed. `done(status, message)` as for invite()."""
        d.cseq += 1
        self._start(d, method, self._request_bytes(d, method, d.cseq, body, ctype, extra), done, d.cseq)

    def bye(self, d, done=lambda status, msg: None):
        d.state = "ending"
        d.ended_by = "local"
        self.request(d, "BYE", done=done)

    def _ack(self, d, cseq, addr=None):
        data = self._request_bytes(d, "ACK", cseq)
        self.acks[(d.call_id, cseq)] = [data, time.monotonic() + GIVE_UP]
        self._send(data, addr)

    # ------------------------------------------------------------ receiving

    def receive(self):
        """Reads every datagram waiting on the socket."""
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            try:
                msg = Message(data.decode(errors="replace"))
                if msg.status is not None:
                    self._response(msg)
                else:
                    self._incoming(msg, addr)
            except (ValueError, IndexError):
                self.counters["stray"] += 1

    def _response(self, msg):
        number, method = msg.cseq
        t = self.pending.get((msg.call_id, number, method))
        if t is None:
            if method == "INVITE" and 200 <= msg.status < 300 and (msg.call_id, number) in self.acks:
                self.counters["retransmissions_received"] += 1
                self._send(self.acks[(msg.call_id, number)][0])       # our ACK was lost
            return
        d = t["dialog"]
        if msg.status < 200:
            t["provisional"] = True
            return
        del self.pending[(msg.call_id, number, method)]
        if method == "INVITE":
            if msg.status >= 300:       # hop-by-hop ACK, same branch as the INVITE
                via = next(line + "\r\n" for line in t["bytes"].decode().split("\r\n") if line.startswith("Via:"))
                to = msg.get("to")
                remote = d.remote
                d.remote = to
                self._send(self._request_bytes(d, "ACK", number, via=via, ruri=d.data.get("ruri") if d.role == "uac"
                                               and d.state == "calling" else None))
                d.remote = remote
                if msg.status in (401, 407) and d.state == "calling" and not d.data.get("authed"):
                    d.data["authed"] = True
                    header = "Proxy-Authorization" if msg.status == 407 else "Authorization"
                    challenge = msg.get("proxy-authenticate" if msg.status == 407 else "www-authenticate")
                    auth = digest_authorization(challenge, self.user, self.password, "INVITE", d.data["ruri"], header)
                    d.cseq += 1
                    self._start(d, "INVITE", self._request_bytes(d, "INVITE", d.cseq, d.data["body"],
                                                                 extra=d.data["extra"] + auth + "\r\n"), t["done"], d.cseq)
                    return
                if d.state == "calling":
                    d.state, d.ended_by = "ended", f"status {msg.status}"
            else:
                if d.state == "calling":
                    d.remote = msg.get("to")
                    d.route = list(reversed(uris(msg.all("record-route"))))
                    d.target = uris(msg.all("contact"))[0][1:-1]
                    d.state, d.answered = "confirmed", True
                self._ack(d, number)
        elif method == "BYE":
            d.state = "ended"
            self.dialogs.pop(d.call_id, None)
        t["done"](msg.status, msg)

    def _reply(self, msg, addr, status, reason, to=None, extra="", body=""):
        vias = "".join(f"Via: {v}\r\n" for v in msg.all("via"))
        btype = "Content-Type: application/sdp\r\n" if body else ""
        data = (f"SIP/2.0 {status} {reason}\r\n{vias}From: {msg.get('from')}\r\nTo: {to or msg.get('to')}\r\n"
                f"Call-ID: {msg.call_id}\r\nCSeq: {msg.get('cseq')}\r\n{extra}{btype}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()
        self._send(data, addr)
        number, method = msg.cseq
        self.served[(msg.call_id, number, method)] = [data, time.monotonic() + GIVE_UP]
        return data

    def _incoming(self, msg, addr):
        number, method = msg.cseq
        now = time.monotonic()
        if method == "ACK":
            if self.unacked.pop((msg.call_id, number), None) is not None:
                d = self.dialogs.get(msg.call_id)
                if d is not None:
                    d.received.append((now, "ACK", msg))
                    self.on_request(self, d, msg)
            return
        seen = self.served.get((msg.call_id, number, method))
        if seen is not None:            # a retransmission: the same answer again
            self.counters["retransmissions_received"] += 1
            self._send(seen[0], addr)
            return
        d = self.dialogs.get(msg.call_id)
        has_tag = tag_of(msg.get("to")) is not None
        if method == "CANCEL":
            self._reply(msg, addr, 200, "OK")
            return
        if d is None and has_tag:
            self._reply(msg, addr, 481, "Call/Transaction Does Not Exist")
            self.on_request(self, None, msg)
            return
        if method == "INVITE" and d is None:
            d = Dialog(msg.call_id, f"{msg.get('to')};tag={uuid.uuid4().hex[:10]}", msg.get("from"), "uas")
            d.route = uris(msg.all("record-route"))
            d.target = uris(msg.all("contact"))[0][1:-1]
            self.dialogs[msg.call_id] = d
        elif d is None:
            if method == "OPTIONS":
                self._reply(msg, addr, 200, "OK")
            else:
                self._reply(msg, addr, 481, "Call/Transaction Does Not Exist")
            return
        d.received.append((now, method, msg))
        contact = f"Contact: {self.contact}\r\n"
        timer = ""
        if msg.get("session-expires"):
            timer = f"Session-Expires: {msg.get('session-expires').split(';')[0]};refresher=uac\r\nRequire: timer\r\n"
        if method == "INVITE":
            rr = "".join(f"Record-Route: {v}\r\n" for v in msg.all("record-route"))
            if d.state == "calling":
                self._reply(msg, addr, 180, "Ringing", d.local, rr + contact)
                d.state, d.answered = "confirmed", True
            d.version += 1
            body = sdp(self.user, self.port + 1, d.version, ANSWER.get(direction_of(msg.body) or "sendrecv", "sendrecv"))
            ok = self._reply(msg, addr, 200, "OK", d.local, rr + contact + timer, body)
            self.unacked[(msg.call_id, number)] = [now + T1, T1, now + GIVE_UP, ok, addr]
        elif method == "UPDATE":
            body = ""
            if msg.body.strip():
                d.version += 1
                body = sdp(self.user, self.port + 1, d.version, ANSWER.get(direction_of(msg.body), "sendrecv"))
            self._reply(msg, addr, 200, "OK", d.local, contact + timer, body)
        elif method == "BYE":
            self._reply(msg, addr, 200, "OK", d.local)
            if d.state != "ended":
                d.state = "ended"
                d.ended_by = d.ended_by or "remote"
            self.dialogs.pop(msg.call_id, None)
            for key in [k for k in self.unacked if k[0] == msg.call_id]:
                del self.unacked[key]
        else:
            self._reply(msg, addr, 200, "OK", d.local)
        self.on_request(self, d, msg)

    # ------------------------------------------------------------ time

    def tick(self, now=None):
        """Retransmits what is due and gives up what is too old; call it every 50 ms or so."""
        now = now or time.monotonic()
        for key, t in list(self.pending.items()):
            if t["give_up"] <= now:
                del self.pending[key]
                if t["method"] == "BYE":
                    t["dialog"].state = "ended"
                    self.dialogs.pop(t["dialog"].call_id, None)
                t["done"](None, None)
            elif t["due"] <= now and not (t["provisional"] and t["method"] == "INVITE"):
                self.counters["retransmitted"] += 1
                self._send(t["bytes"])
                t["interval"] = t["interval"] * 2 if t["method"] == "INVITE" else min(t["interval"] * 2, T2)
                t["due"] = now + t["interval"]
        for key, r in list(self.unacked.items()):
            if r[2] <= now:
                del self.unacked[key]
                self.counters["no_ack"] += 1
                d = self.dialogs.get(key[0])
                if d is not None:
                    d.received.append((now, "NO-ACK", None))
                    self.on_no_ack(self, d)
            elif r[0] <= now:
                self.counters["retransmitted"] += 1
                self._send(r[3], r[4])
                r[1] = min(r[1] * 2, T2)
                r[0] = now + r[1]
        if now < self.next_sweep:
            return
        self.next_sweep = now + 1.0
        for table in (self.served, self.acks):
            for key in [k for k, v in table.items() if v[1] <= now]:
                del table[key]
