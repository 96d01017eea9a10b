#!/usr/bin/env python3
"""Media on a live call from Python: plays a prompt or a tone, prints the keys pressed, `#` stops it.

    /usr/bin/python3 examples/python/media.py tcp://127.0.0.1:5573 tcp://127.0.0.1:5570 CALL_ID welcome
    /usr/bin/python3 examples/python/media.py --leg a --repeat 3 tcp://... tcp://... CALL_ID tone:ringback

The call's media must go through the bridge's rtpengine: `"media":"anchor"` in the worker's bridge
decision or the originate, or the `answer` decision (the bridge answers the caller itself: an IVR).
Commands go on a DEALER to the commands socket, one `command.reply` per `command` matched by
`request_id`; a refusal (`unknown_call`, `bad_command`, `invalid_state`, `media_unavailable`) is
printed and exits 1. Events come on a SUB: `call.dtmf` per key, `call.media.played` when a playback
is over, `call.ended` last.
"""
import argparse
import json
import sys
import uuid

import zmq

import curve


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def command(sock, name, **members):
    """Sends one command and returns its result; raises Refused with the bridge's error code."""
    request_id = uuid.uuid4().hex
    body = {"name": name, **{key: value for key, value in members.items() if value is not None}}
    sock.send(json.dumps({"v": 1, "type": "command", "request_id": request_id, "command": body}).encode())
    while sock.poll(5000):
        reply = json.loads(sock.recv_multipart()[-1])
        if reply["request_id"] == request_id:
            if reply["ok"]:
                return reply["result"]
            raise Refused(reply["error"]["code"], reply["error"]["message"])
    raise TimeoutError(f"no reply to {name} within 5 s")


def play(sock, call_id, what, leg=None, repeat=1):
    """`what` names a prompt of the bridge's prompts folder (`welcome`), or a tone (`tone:busy`)."""
    kind, _, name = what.rpartition(":")
    sound = {"tone": name} if kind == "tone" else {"prompt": what}
    return command(sock, "play", call_id=call_id, leg=leg, repeat=repeat if repeat != 1 else None, **sound)


def on_event(sock, event):
    """One of the call's events; returns False once the call is over."""
    if event["type"] == "call.dtmf":
        key = event["dtmf"]
        print(f"pressed {key['digit']} on leg {key['leg']} ({key['duration_ms']} ms)", flush=True)
        if key["digit"] == "#":
            command(sock, "stop_play", call_id=event["call_id"])
    elif event["type"] == "call.media.played":
        played = event["played"]
        print(f"{played.get('prompt') or 'tone:' + played['tone']} {played['outcome']} after {played['played_ms']} ms", flush=True)
    return event["type"] != "call.ended"


def main(args):
    ctx = zmq.Context.instance()
    events = ctx.socket(zmq.SUB)
    curve.secure(events, args)
    events.setsockopt(zmq.SUBSCRIBE, b"call.")
    events.connect(args.events)
    commands = ctx.socket(zmq.DEALER)
    curve.secure(commands, args)
    commands.setsockopt(zmq.LINGER, 0)
    commands.connect(args.commands)
    try:
        play(commands, args.call_id, args.what, args.leg, args.repeat)
    except Refused as refused:
        print(f"play refused: {refused}", file=sys.stderr, flush=True)
        return 1
    print(f"playing {args.what} to {args.call_id}", flush=True)
    while True:
        event = json.loads(events.recv_multipart()[1])
        if event.get("call_id") == args.call_id and not on_event(commands, event):
            return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Plays a prompt or tone on a Switchboard call and prints its keys.")
    parser.add_argument("commands", help="the bridge's commands endpoint")
    parser.add_argument("events", help="the bridge's events endpoint")
    parser.add_argument("call_id", help="the bridge's call id (call.offered, call.originated)")
    parser.add_argument("what", help="a prompt name, or tone:ringback, tone:busy, tone:beep")
    parser.add_argument("--leg", choices=["a", "b"], help="who hears it (default: both)")
    parser.add_argument("--repeat", type=int, default=1, help="times played, 1-100")
    curve.add_arguments(parser)
    try:
        sys.exit(main(parser.parse_args()))
    except KeyboardInterrupt:
        pass
