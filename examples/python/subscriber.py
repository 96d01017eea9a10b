#!/usr/bin/env python3
"""Prints every call event a Switchboard bridge publishes, one line each.

    /usr/bin/python3 examples/python/subscriber.py tcp://127.0.0.1:5570 [topic-prefix]
    /usr/bin/python3 examples/python/subscriber.py --curve-key py.key --bridge-key bridge.key.pub tcp://...

Events are [topic, json] frames on a PUB socket; the topic is the event type, so a prefix such
as "call.rejected" takes only what you need. A gap in `seq` means events were missed; the
bridge's replay endpoint (see ARCHITECTURE.md) returns them from its journal.
"""
import argparse
import json

import zmq

import curve


def main(endpoint, prefix, args):
    sock = zmq.Context.instance().socket(zmq.SUB)
    curve.secure(sock, args)
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
        # Call events carry their payload under offer/routed/rejected (dtmf/played/recorded for media);
        # system events (bridge.started, worker.joined, ...) have no call_id and carry bridge/worker.
        detail = next((event[k] for k in ("offer", "routed", "rejected", "dtmf", "played", "recorded", "bridge", "worker")
                       if k in event), None)
        print(f"{event['ts']} {bridge}#{seq} {topic.decode()} {event.get('call_id', '-')} {json.dumps(detail, sort_keys=True)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Prints a Switchboard bridge's events.")
    parser.add_argument("endpoint", help="the bridge's events endpoint")
    parser.add_argument("prefix", nargs="?", default="", help="only events whose type starts with this")
    curve.add_arguments(parser)
    args = parser.parse_args()
    try:
        main(args.endpoint, args.prefix, args)
    except KeyboardInterrupt:
        pass
