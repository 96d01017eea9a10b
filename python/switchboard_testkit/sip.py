"""One-shot SIP requests over UDP from 127.0.0.1: OPTIONS probes (is it up?), a single INVITE
(ACKed), REGISTER with digest auth, and the request that makes a test phone register."""
import hashlib
import re
import socket
import time
import uuid

from . import DOMAIN, LOCAL


def header_lines(message, *names):
    """The lines of `message` that carry one of these headers (give the compact forms too)."""
    names = tuple(n.lower() + ":" for n in names)
    return [line for line in message.splitlines() if line.lower().startswith(names)]


def header_values(message, *names):
    """The values of these headers in `message`, in order."""
    return [line.split(":", 1)[1].strip() for line in header_lines(message, *names)]


def sip_request(port, method="OPTIONS", uri=None, user=None, timeout=1.0, headers="", timing=None, source=LOCAL):
    """Sends one SIP request over UDP to 127.0.0.1:port from `source` (another loopback address
    plays a stranger); returns the first final response's status (int) or None. Provisional
    responses are skipped; an INVITE's final answer is ACKed, as a phone would. The Request-URI
    is `uri`, else sip:[user@]127.0.0.1:port. With a list as `timing`, appends the ms from
    sending the request to the final answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((source, 0))
        lport = s.getsockname()[1]
        uri = uri or f"sip:{user + '@' if user else ''}{LOCAL}:{port}"
        tag, branch, callid = uuid.uuid4().hex[:8], uuid.uuid4().hex, uuid.uuid4().hex
        msg = (f"{method} {uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {source}:{lport};rport;branch=z9hG4bK{branch}\r\n"
               f"From: <sip:probe@{source}>;tag={tag}\r\nTo: <{uri}>\r\n"
               f"Call-ID: {callid}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
               f"{headers}Content-Length: 0\r\n\r\n")
        sent = time.perf_counter()
        s.sendto(msg.encode(), (LOCAL, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65535).decode(errors="replace")
            except (socket.timeout, ConnectionRefusedError):
                return None
            if not data.startswith("SIP/2.0 "):
                # its own request: the ephemeral port it got is the free port the server has yet to bind
                return None
            status = int(data.split(" ", 2)[1])
            if status >= 200:
                if timing is not None:
                    timing.append((time.perf_counter() - sent) * 1000.0)
                if method == "INVITE":
                    to = (header_lines(data, "To", "t") or [f"To: <{uri}>"])[0]
                    s.sendto((f"ACK {uri} SIP/2.0\r\n"
                              f"Via: SIP/2.0/UDP {source}:{lport};rport;branch=z9hG4bK{branch}\r\n"
                              f"From: <sip:probe@{source}>;tag={tag}\r\n{to}\r\nCall-ID: {callid}\r\n"
                              f"CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(),
                             (LOCAL, port))
                return status
        return None
    finally:
        s.close()


def kick(port, user, sender="harness"):
    """The request that makes a phone scenario (scenarios/phone_*.xml) register as `user`: it
    waits for it, and its Call-ID becomes the REGISTER's."""
    call_id = f"register-{user}-{uuid.uuid4().hex[:12]}@{LOCAL}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        s.sendto((f"KICK sip:{user}@{LOCAL}:{port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {LOCAL}:{s.getsockname()[1]};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                  f"From: <sip:{sender}@{LOCAL}>;tag={uuid.uuid4().hex[:8]}\r\nTo: <sip:{user}@{LOCAL}>\r\n"
                  f"Call-ID: {call_id}\r\nCSeq: 1 KICK\r\nContent-Length: 0\r\n\r\n").encode(),
                 (LOCAL, int(port)))


def digest_authorization(challenge, user, password, method, uri, header="Authorization"):
    """The `header` line (no CRLF) that answers a WWW-Authenticate / Proxy-Authenticate
    `challenge` (RFC 2617 digest, MD5, qop=auth when offered) for `method` on `uri`."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.replace("Digest", "", 1)))
    ha1 = hashlib.md5(f"{user}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    cnonce, nc = uuid.uuid4().hex[:16], "00000001"
    if "auth" in params.get("qop", "").split(","):
        resp = hashlib.md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        qop = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        resp = hashlib.md5(f"{ha1}:{params['nonce']}:{ha2}".encode()).hexdigest()
        qop = ""
    return (f'{header}: Digest username="{user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", response="{resp}", algorithm=MD5{qop}')


def register(kamailio_port, user, password, contact_port, expires=3600):
    """REGISTER `user` at Kamailio with digest auth (RFC 2617, qop=auth); the Contact is
    sip:user@127.0.0.1:contact_port. Returns the final status (None: no usable answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOCAL, 0))
        s.settimeout(2)
        lport = s.getsockname()[1]
        callid, tag, uri = uuid.uuid4().hex, uuid.uuid4().hex[:8], f"sip:{DOMAIN}"
        auth = ""
        for cseq in (1, 2):
            msg = (f"REGISTER {uri} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {LOCAL}:{lport};rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                   f"From: <sip:{user}@{DOMAIN}>;tag={tag}\r\nTo: <sip:{user}@{DOMAIN}>\r\n"
                   f"Call-ID: {callid}\r\nCSeq: {cseq} REGISTER\r\n"
                   f"Contact: <sip:{user}@{LOCAL}:{contact_port}>\r\nExpires: {expires}\r\n"
                   f"Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n")
            s.sendto(msg.encode(), (LOCAL, kamailio_port))
            while True:
                data = s.recv(65535).decode(errors="replace")
                status = int(data.split(" ", 2)[1])
                if status >= 200:
                    break
            if status != 401:
                return status
            auth = digest_authorization(header_values(data, "WWW-Authenticate")[0], user, password,
                                        "REGISTER", uri) + "\r\n"
        return status
    except (socket.timeout, IndexError, KeyError, ValueError):
        return None
    finally:
        s.close()
