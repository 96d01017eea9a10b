"""The bus loses nothing: a real bridge journals every event before publishing it, numbering
continues across a restart on the same journal, and a pyzmq DEALER replaying from seq 1 gets every
event of both runs, in order, none missing, none doubled, byte-for-byte what a SUB socket saw live."""
import json
import time

import zmq

import harness
from harness import LOCAL
from test_python_examples import invite


def replay_all(ctx, endpoint, from_seq=1, max_=7):
    """Every journaled event from `from_seq`, asking again from next_seq until caught up (a small
    `max` so the client's loop is exercised)."""
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    events, ends, next_seq = [], [], from_seq
    try:
        for round_ in range(1000):
            sock.send(json.dumps({"v": 1, "type": "replay.request", "request_id": f"r{round_}",
                                  "from_seq": next_seq, "max": max_}).encode())
            while True:
                assert sock.poll(5000), "no replay answer"
                reply = json.loads(sock.recv_multipart()[-1])
                assert reply["request_id"] == f"r{round_}", reply
                if reply["type"] == "replay.events":
                    assert 1 <= len(reply["events"]) <= 100, reply
                    events += reply["events"]
                    continue
                assert reply["type"] == "replay.end", reply
                ends.append(reply)
                break
            if reply["next_seq"] > reply["last_seq"]:
                return events, ends
            next_seq = reply["next_seq"]
        raise AssertionError("replay never caught up")
    finally:
        sock.close(linger=0)


def test_journal_survives_a_restart_and_replay_returns_both_runs(tmp_path, swift):
    sip_port = harness.free_port()
    events_ep, decisions_ep, replay_ep = (f"tcp://{LOCAL}:{harness.free_port()}" for _ in range(3))
    journal = tmp_path / "bridge.journal.sqlite"
    args = ["--bridge-id", "jb", "--sip-listen", f"{LOCAL}:{sip_port}", "--bus-events", events_ep,
            "--bus-decisions", decisions_ep, "--bus-replay", replay_ep, "--journal", journal,
            "--decision-timeout-ms", "300", "--metrics-listen", ""]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(events_ep)  # ZeroMQ reconnects it to the second run by itself
    live = []

    def drain(until_type=None, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sub.poll(200):
                if until_type is None or any(e["type"] == until_type for e in live):
                    return
                continue
            topic, payload = sub.recv_multipart()
            live.append(json.loads(payload))
            assert topic.decode() == live[-1]["type"]
        assert until_type is None, f"no {until_type} seen live: {[e['type'] for e in live]}"

    try:
        for run, calls in ((1, 5), (2, 3)):
            bridge = swift.start(f"bridge{run}", "switchboard-bridge", *args)
            harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200, 15,
                               "the bridge to answer OPTIONS", bridge.tail)
            assert bridge.running(), bridge.tail()
            time.sleep(0.5)  # the SUB socket (re)joins asynchronously
            for n in range(calls):
                assert invite(sip_port, f"1202555{run}{n:03d}").startswith("SIP/2.0 503"), bridge.tail()
            drain()
            assert bridge.stop() == 0, bridge.tail()
            drain(until_type="bridge.stopping" if run == 1 else None, timeout=2.0)

        bridge = swift.start("bridge3", "switchboard-bridge", *args)
        harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)
        # The third run's bridge.started is journaled a moment after the bridge answers OPTIONS.
        deadline = time.monotonic() + 5
        while True:
            replayed, ends = replay_all(ctx, replay_ep)
            if sum(e["type"] == "bridge.started" for e in replayed) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        sub.close(linger=0)
        ctx.term()

    seqs = [e["seq"] for e in replayed]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # no gap, none doubled, in order
    types = [e["type"] for e in replayed]
    run = ["call.offered", "call.rejected"]
    assert types == (["bridge.started"] + run * 5 + ["bridge.stopping"]
                     + ["bridge.started"] + run * 3 + ["bridge.stopping"] + ["bridge.started"]), types
    assert all(e["bridge_id"] == "jb" for e in replayed)
    assert all(("call_id" in e) == e["type"].startswith("call.") for e in replayed), replayed
    # The second run numbered on from the first: its bridge.started follows the first run's last event.
    second_start = [e for e in replayed if e["type"] == "bridge.started"][1]
    assert second_start["seq"] == 13, second_start
    # What the SUB socket saw live (it may miss each run's bridge.started: slow joiner) is exactly what replay returns.
    by_seq = {e["seq"]: e for e in replayed}
    assert len(live) >= 18, [e["type"] for e in live]
    assert [e["seq"] for e in live] == sorted({e["seq"] for e in live}), "live saw a duplicate or disorder"
    for event in live:
        assert by_seq[event["seq"]] == event
    assert ends[-1]["first_seq"] == 1 and ends[-1]["last_seq"] == len(replayed) and ends[-1]["next_seq"] == len(replayed) + 1


def test_a_journal_that_cannot_be_opened_fails_start_up(tmp_path, swift):
    bad = tmp_path / "no-such-dir" / "j.sqlite"
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{harness.free_port()}",
                         "--bus-events", f"tcp://{LOCAL}:{harness.free_port()}",
                         "--bus-decisions", f"tcp://{LOCAL}:{harness.free_port()}",
                         "--bus-replay", f"tcp://{LOCAL}:{harness.free_port()}",
                         "--journal", bad, "--metrics-listen", "")
    assert bridge.wait(15) != 0
    assert f"cannot open the event journal at {bad}" in bridge.log.read_text(), bridge.tail()


def test_help_documents_the_journal_options(swift):
    text = swift.run("switchboard-bridge", "--help")
    for option in ("--bus-replay", "--journal", "--journal-max-events", "--journal-max-age-hours"):
        assert option in text, text
