#!/usr/bin/python3
"""Small helpers for scripts/demo (standard library, plus pyzmq for `events`).

  sbtools.py port PREFERRED         PREFERRED if free on 127.0.0.1 (UDP and TCP), else a free port
  sbtools.py in-use PORT            exit 0 if something is bound to UDP PORT on 127.0.0.1
  sbtools.py sip PORT [METHOD] [USER] [HEADER]...
                                    send one SIP request over UDP, print the final status (or "none")
  sbtools.py events ENDPOINT LOGFILE
                                    subscribe to every bus event; print each as a readable line
                                    (and append it to LOGFILE as: seq<TAB>type<TAB>call_id<TAB>json)
  sbtools.py kick PORT USER         make the sipp phone on PORT register as USER (scenarios/phone_*.xml)
  sbtools.py registered MESSAGES    exit 0 once the phone's message trace shows its REGISTER accepted
  sbtools.py originate URL KEY A B  Click2Call A -> B through the web gateway at URL; print the call id
  sbtools.py call-state URL KEY ID  print the state of a call as the web gateway reports it
  sbtools.py port-range COUNT       "FIRST LAST": COUNT consecutive free UDP ports (rtpengine's media ports)
  sbtools.py ng-ping PORT           exit 0 if rtpengine's ng control on 127.0.0.1:PORT answers ping
  sbtools.py prompt FOLDER NAME     write FOLDER/NAME.wav: a short tone sequence (8 kHz mono 16-bit), a menu prompt
  sbtools.py caller-pcaps FOLDER AUDIO_MS DIGIT
                                    write the pcaps a dtmf caller plays (AUDIO_MS of PCMU, then DIGIT as RFC 4733);
                                    print them as sipp -key arguments
"""
import json
import sys
from pathlib import Path

# The repository's shared Python test kit (python/switchboard_testkit).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

from switchboard_testkit.net import free_port, port_is_free, udp_port_in_use  # noqa: E402  (needs the path above)
from switchboard_testkit.sip import kick, sip_request  # noqa: E402


def cmd_port(preferred="0"):
    preferred = int(preferred)
    if preferred and port_is_free(preferred):
        return print(preferred)
    try:
        print(free_port())
    except RuntimeError:
        sys.exit("no free port on 127.0.0.1")


def cmd_in_use(port):
    sys.exit(0 if udp_port_in_use(int(port)) else 1)


def cmd_sip(port, method="OPTIONS", user="", *headers):
    status = sip_request(int(port), method, user=user or None, timeout=2,
                         headers="".join(h + "\r\n" for h in headers))
    print("none" if status is None else status)


def describe(event):
    """One readable line for a bus event (unknown types: their JSON)."""
    kind = event.get("type", "?")
    if kind == "call.offered":
        o = event.get("offer", {})
        src = o.get("source", {})
        who = o.get("auth_user") or (o.get("from", {}).get("user")) or o.get("from", {}).get("uri", "?")
        to = o.get("request_uri", {}).get("user") or o.get("request_uri", {}).get("uri", "?")
        return (f"{who} calls {to} (from {src.get('address', '?')}:{src.get('port', '?')} "
                f"{src.get('transport', '')}, SIP Call-ID {o.get('sip_call_id', '?')})")
    if kind == "call.routed":
        r = event.get("routed", {})
        targets = ", ".join(f"{t.get('uri')}" + (f" q={t['q']:g}" if t.get("q") is not None else "")
                            for t in r.get("targets", []))
        by = "FALLBACK" if r.get("fallback") else f"worker {r.get('worker_id', '?')}"
        if r.get("action") == "answer":
            return f"answered by the bridge, media in rtpengine ({by}, decided in {r.get('decision_ms', 0):.1f} ms)"
        step = f", after failure step {r['step']}" if r.get("step") else ""
        return f"routed to {targets} ({by}, decided in {r.get('decision_ms', 0):.1f} ms{step})"
    if kind == "call.rejected":
        r = event.get("rejected", {})
        by = "FALLBACK" if r.get("fallback") else f"worker {r.get('worker_id', '?')}"
        cause = f", cause {r['cause']}" if r.get("cause") else ""
        return (f"rejected {r.get('status', '?')} {r.get('reason', '')} ({by}{cause}, "
                f"decided in {r.get('decision_ms', 0):.1f} ms)")
    leg = lambda key: event.get(key, {}).get("leg", "?")
    if kind == "call.dialing":
        return f"leg {leg('dialing')}: calling {event['dialing'].get('uri')} (attempt {event['dialing'].get('attempt')})"
    if kind == "call.ringing":
        return f"leg {leg('ringing')}: {event['ringing'].get('status')} ringing"
    if kind == "call.answered":
        return f"leg {leg('answered')}: answered after {event['answered'].get('setup_ms', 0) / 1000:.1f} s"
    if kind == "call.connected":
        # an answered call (an IVR's) is connected to the bridge itself: no b party
        return f"connected: {event['connected'].get('a')} <-> {event['connected'].get('b') or 'the bridge (answered)'}"
    if kind == "call.ended":
        e = event.get("ended", {})
        return (f"ended: {e.get('cause')} by {e.get('by', '?')}, talked {e.get('talk_ms', 0) / 1000:.1f} s"
                + (f", status {e['status']}" if e.get("status") else ""))
    if kind == "call.media.played":
        p = event.get("played", {})
        what = f"prompt {p['prompt']}" if p.get("prompt") else f"tone {p.get('tone', '?')}"
        return f"leg {p.get('leg', '?')}: {what} {p.get('outcome', '?')} after {p.get('played_ms', 0) / 1000:.1f} s"
    if kind == "call.dtmf":
        d = event.get("dtmf", {})
        return f"leg {d.get('leg', '?')} pressed {d.get('digit', '?')} ({d.get('duration_ms', 0)} ms)"
    if kind == "call.media.recorded":
        r = event.get("recorded", {})
        size = f", {r['bytes']} bytes" if r.get("bytes") is not None else ""
        return f"recorded {r.get('duration_ms', 0) / 1000:.1f} s to {r.get('path', '?')} ({r.get('format', '?')}{size})"
    if kind == "call.transferred":
        t = event.get("transferred", {})
        by = {None: "", "command": " (transfer command)"}.get(t.get("by"), f" (REFER from leg {t.get('by')})")
        return f"leg {t.get('leg', '?')} transferred to {t.get('target', '?')}{by}"
    if kind.startswith("registration."):
        r = event.get("registration", {})
        agent = f", {r['user_agent']}" if r.get("user_agent") else ""
        return f"{r.get('aor')} at {r.get('contact')} ({r.get('transport', '?')}{agent}), expires in {r.get('expires', 0)} s"
    body = {k: v for k, v in event.items() if k not in ("v", "type", "bridge_id", "seq", "ts", "call_id")}
    return json.dumps(body, separators=(",", ":"))[:300]


def cmd_events(endpoint, logfile):
    import zmq
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    with open(logfile, "a", buffering=1) as log:
        while True:
            frames = sub.recv_multipart()
            topic = frames[0].decode(errors="replace")
            try:
                event = json.loads(frames[1]) if len(frames) > 1 else {}
            except ValueError:
                print(f"  [event] {topic}: (not JSON) {frames[1][:200]!r}", flush=True)
                continue
            # system and registration events have no call id
            seq, call = event.get("seq", "?"), event.get("call_id", "-")
            ts = str(event.get("ts", ""))[11:23]
            print(f"  [event] {ts} #{seq:<4} {topic:<14} {call}: {describe(event)}", flush=True)
            log.write(f"{seq}\t{topic}\t{call}\t{json.dumps(event, separators=(',', ':'))}\n")


def cmd_kick(port, user):
    # A phone scenario waits for this request before it REGISTERs (see Tests/Integration/phones.py).
    kick(port, user, sender="demo")


def cmd_registered(messages):
    try:
        text = open(messages, errors="replace").read().replace("\r\n", "\n")
    except FileNotFoundError:
        sys.exit(1)
    sys.exit(0 if any(block.startswith("SIP/2.0 200") and "REGISTER" in block
                      for block in (part.strip() for part in text.split("\n\n"))) else 1)


def gateway(url, key, method, path, body=None):
    import urllib.request
    request = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def cmd_originate(url, key, a, b):
    print(gateway(url, key, "POST", "/api/v1/calls", {"from": a, "to": b})["call_id"])


def cmd_call_state(url, key, call_id):
    print(gateway(url, key, "GET", f"/api/v1/calls/{call_id}").get("state", ""))


def cmd_port_range(count):
    from switchboard_testkit.rtpengine import free_port_range
    print(*free_port_range(int(count)))


def cmd_ng_ping(port):
    import os
    import socket
    from switchboard_testkit.rtpengine import bdecode, bencode
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        cookie = os.urandom(6).hex().encode()
        try:
            sock.sendto(cookie + b" " + bencode({"command": "ping"}), ("127.0.0.1", int(port)))
            got, _, body = sock.recv(65535).partition(b" ")
        except OSError:         # timeout, or ICMP port unreachable: not up yet
            sys.exit(1)
    sys.exit(0 if got == cookie and bdecode(body).get("result") == "pong" else 1)


def cmd_prompt(folder, name):
    # three rising notes (C5, E5, G5), 0.4 s each with 0.1 s of silence after: a ~1.5 s "menu" that sounds like one
    import math
    import struct
    import wave
    rate = 8000
    samples = []
    for hz in (523.25, 659.25, 783.99):
        samples += [int(8000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(int(0.4 * rate))]
        samples += [0] * int(0.1 * rate)
    Path(folder).mkdir(parents=True, exist_ok=True)
    with wave.open(str(Path(folder) / f"{name}.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))


def cmd_caller_pcaps(folder, audio_ms, digit):
    from switchboard_testkit.rtpengine import caller_media_pcaps
    Path(folder).mkdir(parents=True, exist_ok=True)
    keys = caller_media_pcaps(folder, "ivr-caller", int(audio_ms), digit, gap_ms=300)
    print(" ".join(f"-key {k} {v}" for k, v in keys.items()))


if __name__ == "__main__":
    commands = {"port": cmd_port, "in-use": cmd_in_use, "sip": cmd_sip, "events": cmd_events, "kick": cmd_kick,
                "registered": cmd_registered, "originate": cmd_originate, "call-state": cmd_call_state,
                "port-range": cmd_port_range, "ng-ping": cmd_ng_ping, "prompt": cmd_prompt, "caller-pcaps": cmd_caller_pcaps}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[sys.argv[1]](*sys.argv[2:])
    except KeyboardInterrupt:
        pass
