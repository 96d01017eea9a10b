#!/usr/bin/python3
"""A business service in Python for the B2BUA tests: answers every decision.request
with the decision its plan gives for the dialled user, as a bridge decision.

    /usr/bin/python3 bridge_worker.py tcp://127.0.0.1:5571 plan.json

plan.json maps a dialled user (the request URI's user part) to a decision object as the
bus carries it, e.g. {"5000": {"action": "bridge", "targets": [{"uri": "sip:bob@..."}]}};
users not in the plan get 404. Prints "ready" once the bridge welcomed it.
"""
import json
import sys
import time

import zmq


def main(endpoint, plan_path):
    plan = json.load(open(plan_path))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)

    def send(message):
        sock.send(json.dumps({"v": 1, **message}).encode())

    send({"type": "worker.ready", "worker_id": "py-b2bua-test", "capacity": 32})
    last_beat = time.monotonic()
    while True:
        if sock.poll(250):
            message = json.loads(sock.recv())
            if message["type"] == "bridge.welcome":
                print("ready", flush=True)
            elif message["type"] == "decision.request":
                user = message["offer"]["request_uri"].get("user") or ""
                decision = plan.get(user, {"action": "reject", "status": 404, "reason": "Not In Plan"})
                send({"type": "decision", "request_id": message["request_id"], "decision": decision})
                print(f"{message['call_id']} {user}: {decision['action']}", flush=True)
            elif message["type"] == "error":
                print(f"refused: {message['code']}: {message['message']}", file=sys.stderr, flush=True)
        if time.monotonic() - last_beat >= 0.5:
            send({"type": "worker.heartbeat"})
            last_beat = time.monotonic()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
