"""The bus is language-neutral: examples/python's worker routes calls for a live bridge, and its
subscriber prints the events, with no Swift on the business side."""
import json
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import jsonschema
import pytest
import zmq

import harness
import test_contract
from harness import LOCAL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def invite(port, number, timeout=3.0):
    """One INVITE straight to the bridge over UDP; returns the final response's text (ACKed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOCAL, 0))
    lport, branch, call_id = s.getsockname()[1], uuid.uuid4().hex, uuid.uuid4().hex
    head = (f"sip:{number}@{LOCAL}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOCAL}:{lport};rport;branch=z9hG4bK{branch}\r\n"
            f"From: <sip:alice@{LOCAL}>;tag=a1\r\nCall-ID: {call_id}\r\nMax-Forwards: 70\r\n")
    s.sendto(f"INVITE {head}To: <sip:{number}@{LOCAL}>\r\nCSeq: 1 INVITE\r\n"
             f"Content-Length: 0\r\n\r\n".encode(), (LOCAL, port))
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65535).decode()
            if int(data.split(" ", 2)[1]) >= 200:
                to = next(line for line in data.split("\r\n") if line.startswith("To:"))
                s.sendto(f"ACK {head}{to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n".encode(), (LOCAL, port))
                return data
    finally:
        s.close()


@pytest.mark.parametrize("secured", [False, True], ids=["plain", "curve"])
def test_python_worker_and_subscriber_serve_a_swift_bridge(tmp_path, swift, secured):
    sip_port, events, decisions = harness.free_port(), harness.free_port(), harness.free_port()
    bridge_curve, client_curve = [], []
    if secured:
        keys, clients = tmp_path / "keys", tmp_path / "keys" / "clients"
        clients.mkdir(parents=True)
        for name in ("bridge", "python"):
            swift.run("switchboard-worker", "keygen", "--out", keys / f"{name}.key")
        (clients / "python.pub").write_bytes((keys / "python.key.pub").read_bytes())
        bridge_curve = ["--curve-key", keys / "bridge.key", "--curve-clients", clients]
        client_curve = ["--curve-key", keys / "python.key", "--bridge-key", keys / "bridge.key.pub"]
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{events}", "--bus-decisions", f"tcp://{LOCAL}:{decisions}",
                         "--decision-timeout-ms", "1000", "--metrics-listen", "", *bridge_curve)
    harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)
    subscriber = harness.Process("subscriber", [sys.executable, EXAMPLES / "subscriber.py", *client_curve,
                                                f"tcp://{LOCAL}:{events}"], tmp_path)
    worker = harness.Process("worker", [sys.executable, EXAMPLES / "worker.py", *client_curve,
                                        f"tcp://{LOCAL}:{decisions}", "sip:gw.example.com"], tmp_path)
    try:
        harness.wait_until(lambda: "joined" in worker.log.read_text(), 10, "the Python worker to join",
                           lambda: worker.tail() + bridge.tail())

        # A SUB hears only what is published after it connected (ZeroMQ's slow joiner): probe until it does.
        def subscriber_hears():
            invite(sip_port, "4400")
            return "call." in subscriber.log.read_text()
        harness.wait_until(subscriber_hears, 15, "the subscriber to hear the bridge", subscriber.tail)

        routed = invite(sip_port, "12025550100")
        assert routed.startswith("SIP/2.0 302"), routed
        assert "Contact: <sip:12025550100@gw.example.com>;q=1.0" in routed, routed
        blocked = invite(sip_port, "19005550100")
        assert blocked.startswith("SIP/2.0 403 Premium rate blocked"), blocked
        harness.wait_until(lambda: "Premium rate blocked" in subscriber.log.read_text(), 5,
                           "the subscriber to print the events", subscriber.tail)
        lines = subscriber.log.read_text().splitlines()
        kinds = [line.split()[2] for line in lines]
        assert kinds[-4:] == ["call.offered", "call.routed", "call.offered", "call.rejected"], lines
        assert not any(line.startswith("gap:") for line in lines), lines
        assert '"worker_id": "py-worker"' in lines[-1], lines
    finally:
        worker.stop()
        subscriber.stop()


def media_example():
    """examples/python/media.py as a module, for its functions."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import media
        return media
    finally:
        sys.path.remove(str(EXAMPLES))


def test_python_media_example_sends_commands_as_the_contract_says():
    """play (prompt and tone) and the stop_play a `#` triggers, as media.py writes them, validate against
    docs/asyncapi.yaml and get their replies; an error reply becomes Refused with its code."""
    media = media_example()
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port(f"tcp://{LOCAL}")
    received, done = [], threading.Event()

    def bridge():
        while not done.is_set():
            if router.poll(50):
                identity, frame = router.recv_multipart()
                request = json.loads(frame)
                received.append(request)
                command = request["command"]
                reply = ({"ok": True, "result": {"call_id": command["call_id"]}} if command["call_id"] == "b1-7" else
                         {"ok": False, "error": {"code": "unknown_call", "message": f"no live call {command['call_id']}"}})
                router.send_multipart([identity, json.dumps({"v": 1, "type": "command.reply",
                                                             "request_id": request["request_id"], **reply}).encode()])

    thread = threading.Thread(target=bridge, daemon=True)
    thread.start()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"tcp://{LOCAL}:{port}")
    try:
        assert media.play(dealer, "b1-7", "welcome", leg="a", repeat=2) == {"call_id": "b1-7"}
        assert media.play(dealer, "b1-7", "tone:ringback") == {"call_id": "b1-7"}
        dtmf = {"v": 1, "type": "call.dtmf", "bridge_id": "b1", "seq": 3, "ts": "2026-11-26T20:00:00.000Z",
                "call_id": "b1-7", "dtmf": {"leg": "a", "digit": "#", "duration_ms": 100}}
        assert media.on_event(dealer, dtmf) is True
        assert media.on_event(dealer, {**dtmf, "type": "call.ended", "ended": {}}) is False
        with pytest.raises(media.Refused) as refused:
            media.play(dealer, "b1-gone", "welcome")
        assert refused.value.code == "unknown_call"
    finally:
        done.set()
        thread.join(5)
        dealer.close()
        router.close()
    assert [r["command"] for r in received] == [
        {"name": "play", "call_id": "b1-7", "leg": "a", "repeat": 2, "prompt": "welcome"},
        {"name": "play", "call_id": "b1-7", "tone": "ringback"},
        {"name": "stop_play", "call_id": "b1-7"},
        {"name": "play", "call_id": "b1-gone", "prompt": "welcome"}]
    schema = test_contract.channel_schemas("commands")["command"]
    for request in received:
        assert not list(jsonschema.Draft7Validator(schema).iter_errors(request)), request
    event_schema = test_contract.channel_schemas("events")["call.dtmf"]
    assert not list(jsonschema.Draft7Validator(event_schema).iter_errors(dtmf))


@pytest.mark.parametrize("call_id, what, extra, refusal", [
    ("b1-nope", "welcome", [], "play refused: unknown_call: "),
    ("b1-nope", "../etc/passwd", [], 'play refused: bad_command: prompt "../etc/passwd" is not a prompt name'),
    ("b1-nope", "welcome", ["--repeat", "0"], "play refused: bad_command: repeat 0 is outside 1...100"),
    ("b1-nope", "tone:siren", [], 'play refused: bad_message: invalid command: $.command.tone must be one of ringback, busy, beep, got "siren"'),
], ids=["unknown-call", "path-as-prompt", "repeat-0", "unknown-tone"])
def test_python_media_example_prints_a_real_bridges_refusal(tmp_path, swift, call_id, what, extra, refusal):
    """A live bridge (no rtpengine needed: each is refused before any media) names what is wrong; media.py
    prints it and exits 1."""
    sip_port, events, commands = harness.free_port(), harness.free_port(), harness.free_port()
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{events}", "--bus-commands", f"tcp://{LOCAL}:{commands}",
                         "--metrics-listen", "")
    harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)
    result = subprocess.run([sys.executable, EXAMPLES / "media.py", *extra, f"tcp://{LOCAL}:{commands}",
                             f"tcp://{LOCAL}:{events}", call_id, what], capture_output=True, text=True, timeout=15)
    assert result.returncode == 1, (result.stdout, result.stderr, bridge.tail())
    assert result.stderr.startswith(refusal), result.stderr
