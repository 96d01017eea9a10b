#!/usr/bin/env python3
"""Prints every call event a Switchboard bridge publishes, one line each.

    /usr/bin/python3 examples/python/subscriber.py tcp://127.0.0.1:5570 [topic-prefix]

Events are [topic, json] frames on a PUB socket; the topic is the event type, so a prefix such
as "call.rejected" takes only what you need. A gap in `seq` means events were missed; the
bridge's replay endpoint (see ARCHITECTURE.md) returns them from its journal.
"""
import json
import sys

import zmq


def main(endpoint, prefix):
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(endpoint)
    last_seq = {}
    while True:
        topic, payload = sock.recv_multipart()
        event = json.loads(payload)
        bridge, seq = event["bridge_id"], event["seq"]
        if prefix == "" and bridge in last_seq and seq != last_seq[bridge] + 1:
            print(f"gap: missed {seq - last_seq[bridge] - 1} event(s) from {bridge}", flush=True)
        last_seq[bridge] = seq
        # Call events carry their payload under offer/routed/rejected; system events (bridge.started,
        # worker.joined, ...) have no call_id and carry bridge/worker.
        detail = next((event[k] for k in ("offer", "routed", "rejected", "bridge", "worker") if k in event), None)
        print(f"{event['ts']} {bridge}#{seq} {topic.decode()} {event.get('call_id', '-')} {json.dumps(detail, sort_keys=True)}", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
    except KeyboardInterrupt:
        pass
