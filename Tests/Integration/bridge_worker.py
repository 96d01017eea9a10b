#!/usr/bin/python3
"""A business service in Python for the B2BUA and overload tests: answers every decision.request
with the decision its plan gives for the dialled user.

    /usr/bin/python3 bridge_worker.py tcp://127.0.0.1:5571 plan.json [CAPACITY DELAY_MS]

plan.json maps a dialled user (the request URI's user part) to a decision object as the
bus carries it, e.g. {"5000": {"action": "bridge", "targets": [{"uri": "sip:bob@..."}]}};
users not in the plan get 404. CAPACITY (default 32) is what it announces in worker.ready;
with DELAY_MS each decision is sent that long after its request, so the worker serves at most
CAPACITY * 1000 / DELAY_MS calls per second. Prints "ready" once the bridge welcomed it.
"""
import heapq
import itertools
import json
import sys
import time

import zmq


def main(endpoint, plan_path, capacity=32, delay_ms=0):
    plan = json.load(open(plan_path))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)

    def send(message):
        sock.send(json.dumps({"v": 1, **message}).encode())

    send({"type": "worker.ready", "worker_id": "py-b2bua-test", "capacity": capacity})
    due, order = [], itertools.count()          # (when, n, decision message), soonest first
    last_beat = time.monotonic()
    while True:
        while due and due[0][0] <= time.monotonic():
            send(heapq.heappop(due)[2])
        wait_ms = max(0, int(1000 * (due[0][0] - time.monotonic()))) if due else 250
        if sock.poll(min(wait_ms, 250)):
            message = json.loads(sock.recv())
            if message["type"] == "bridge.welcome":
                print("ready", flush=True)
            elif message["type"] == "decision.request":
                user = message["offer"]["request_uri"].get("user") or ""
                decision = plan.get(user, {"action": "reject", "status": 404, "reason": "Not In Plan"})
                reply = {"type": "decision", "request_id": message["request_id"], "decision": decision}
                if delay_ms:
                    heapq.heappush(due, (time.monotonic() + delay_ms / 1000, next(order), reply))
                else:
                    send(reply)
                print(f"{message['call_id']} {user}: {decision['action']}", flush=True)
            elif message["type"] == "error":
                print(f"refused: {message['code']}: {message['message']}", file=sys.stderr, flush=True)
        if time.monotonic() - last_beat >= 0.5:
            send({"type": "worker.heartbeat"})
            last_beat = time.monotonic()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:5]))
