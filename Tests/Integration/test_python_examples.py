"""The bus is language-neutral: examples/python's worker routes calls for a live bridge, and its
subscriber prints the events, with no Swift on the business side."""
import socket
import sys
import uuid
from pathlib import Path

import pytest

import harness
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
