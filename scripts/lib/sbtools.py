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
        return f"connected: {event['connected'].get('a')} <-> {event['connected'].get('b')}"
    if kind == "call.ended":
        e = event.get("ended", {})
        return (f"ended: {e.get('cause')} by {e.get('by', '?')}, talked {e.get('talk_ms', 0) / 1000:.1f} s"
                + (f", status {e['status']}" if e.get("status") else ""))
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


if __name__ == "__main__":
    commands = {"port": cmd_port, "in-use": cmd_in_use, "sip": cmd_sip, "events": cmd_events, "kick": cmd_kick,
                "registered": cmd_registered, "originate": cmd_originate, "call-state": cmd_call_state}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[sys.argv[1]](*sys.argv[2:])
    except KeyboardInterrupt:
        pass
