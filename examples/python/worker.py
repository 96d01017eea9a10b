#!/usr/bin/env python3
"""A Switchboard worker in Python: routes every number to one gateway, refuses 1900 numbers.

    /usr/bin/python3 examples/python/worker.py tcp://127.0.0.1:5571 sip:gw.example.com
    /usr/bin/python3 examples/python/worker.py --curve-key py.key --bridge-key bridge.key.pub tcp://... sip:...

Speaks the decisions protocol of ARCHITECTURE.md over a DEALER socket: worker.ready, then a
decision for each decision.request, a heartbeat every second, and a re-announce when the bridge
says it does not know us (it restarted) or stays silent (it died).
"""
import argparse
import json
import sys
import time
import uuid

import zmq

import curve

HEARTBEAT = 1.0   # seconds
LIVENESS = 3      # silent heartbeats before reconnecting


def decide(offer, gateway):
    number = (offer["request_uri"].get("user") or "").lstrip("+")
    if not number.isdigit():
        return {"action": "reject", "status": 404, "reason": "Not Found"}
    if number.startswith("1900"):
        return {"action": "reject", "status": 403, "reason": "Premium rate blocked"}
    return {"action": "redirect", "targets": [{"uri": f"sip:{number}@{gateway.removeprefix('sip:')}", "q": 1.0}]}


def connect(ctx, endpoint, args):
    sock = ctx.socket(zmq.DEALER)
    curve.secure(sock, args)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, f"py-worker/{uuid.uuid4().hex[:8]}".encode())
    sock.connect(endpoint)
    send(sock, {"type": "worker.ready", "worker_id": "py-worker", "capacity": 16})
    return sock


def send(sock, message):
    sock.send(json.dumps({"v": 1, **message}).encode())


def main(endpoint, gateway, args):
    ctx = zmq.Context.instance()
    sock = connect(ctx, endpoint, args)
    last_heard = last_sent = time.monotonic()
    while True:
        if sock.poll(int(HEARTBEAT * 250)):
            message = json.loads(sock.recv())
            last_heard = time.monotonic()
            if message["type"] == "decision.request":
                decision = decide(message["offer"], gateway)
                send(sock, {"type": "decision", "request_id": message["request_id"], "decision": decision})
                print(f"{message['call_id']}: {decision}", flush=True)
            elif message["type"] == "error":
                print(f"bridge refused a message: {message['code']}: {message['message']}", file=sys.stderr, flush=True)
                if message["code"] == "not_ready":
                    send(sock, {"type": "worker.ready", "worker_id": "py-worker", "capacity": 16})
            elif message["type"] == "bridge.welcome":
                print(f"joined {message['bridge_id']}", flush=True)
        now = time.monotonic()
        if now - last_sent >= HEARTBEAT:
            send(sock, {"type": "worker.heartbeat"})
            last_sent = now
        if now - last_heard > HEARTBEAT * LIVENESS:
            print("bridge silent, reconnecting", file=sys.stderr, flush=True)
            sock.close()
            sock = connect(ctx, endpoint, args)
            last_heard = now


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A Switchboard worker in Python.")
    parser.add_argument("endpoint", help="the bridge's decisions endpoint")
    parser.add_argument("gateway", help="where numbers are routed, e.g. sip:gw.example.com")
    curve.add_arguments(parser)
    args = parser.parse_args()
    try:
        main(args.endpoint, args.gateway, args)
    except KeyboardInterrupt:
        pass
