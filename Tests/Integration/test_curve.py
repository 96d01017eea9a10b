"""CURVE on the bus with the real binaries: keys from `switchboard-worker keygen`, a bridge that
admits only listed keys, a router and an accounting worker that present theirs; a key removed
while the bridge runs stops being served."""
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import zmq

import harness
from harness import LOCAL
from test_python_examples import EXAMPLES, invite

sys.path.insert(0, str(EXAMPLES))
import curve  # noqa: E402  (examples/python/curve.py: reads the key files for pyzmq)


def test_only_listed_keys_reach_a_curve_bridge(tmp_path, swift):
    keys, clients = tmp_path / "keys", tmp_path / "keys" / "clients"
    clients.mkdir(parents=True)
    for name in ("bridge", "router", "accounting", "stranger"):
        swift.run("switchboard-worker", "keygen", "--out", keys / f"{name}.key")
    for name in ("router", "accounting"):
        (clients / f"{name}.pub").write_bytes((keys / f"{name}.key.pub").read_bytes())

    routes, cdr_db = tmp_path / "routes.sqlite", tmp_path / "cdr.sqlite"
    swift.run("switchboard-worker", "routes", "add", "--db", routes, "--prefix", "1202", "--target", "sip:gw.example.com")
    sip_port, events, decisions, replay = (harness.free_port() for _ in range(4))
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{events}", "--bus-decisions", f"tcp://{LOCAL}:{decisions}",
                         "--bus-replay", f"tcp://{LOCAL}:{replay}", "--journal", tmp_path / "journal.sqlite",
                         "--metrics-listen", "", "--curve-key", keys / "bridge.key", "--curve-clients", clients)
    harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)

    # A worker whose key is not listed never joins: calls get the fallback, and the refusal is logged.
    stranger = swift.start("stranger", "switchboard-worker", "router", "--db", routes, "--bridge", f"tcp://{LOCAL}:{decisions}",
                           "--curve-key", keys / "stranger.key", "--bridge-key", keys / "bridge.key.pub")
    harness.wait_until(lambda: "bus client refused" in bridge.log.read_text(), 10, "the bridge to refuse the stranger", bridge.tail)
    assert invite(sip_port, "12025550100").startswith("SIP/2.0 503"), bridge.tail()
    stranger.stop()

    swift.start("router", "switchboard-worker", "router", "--db", routes, "--bridge", f"tcp://{LOCAL}:{decisions}",
                "--curve-key", keys / "router.key", "--bridge-key", keys / "bridge.key.pub")
    swift.start("accounting", "switchboard-worker", "accounting", "--db", cdr_db, "--events", f"tcp://{LOCAL}:{events}",
                "--replay", f"tcp://{LOCAL}:{replay}", "--curve-key", keys / "accounting.key", "--bridge-key", keys / "bridge.key.pub")
    harness.wait_until(lambda: "worker joined" in bridge.log.read_text(), 10, "the router to join over CURVE", swift.tails)
    routed = invite(sip_port, "12025550100")
    assert routed.startswith("SIP/2.0 302") and "sip:12025550100@gw.example.com" in routed, routed

    def cdr_outcomes():
        rows = json.loads(swift.run("switchboard-worker", "cdrs", "list", "--db", cdr_db, "--json") or "[]")
        return [row["outcome"] for row in rows]

    # A fresh accounting worker starts with the first live event it hears (its SUB joins a moment
    # after start), so keep calling until CDRs arrive over the CURVE events and replay sockets.
    def calls_recorded():
        invite(sip_port, "12025550100")
        return len(cdr_outcomes()) >= 2
    harness.wait_until(calls_recorded, 15, "CDRs over CURVE", swift.tails)
    assert set(cdr_outcomes()) == {"routed"}, cdr_outcomes()


def test_the_gateway_reaches_a_curve_bridge_with_its_key_only(tmp_path, swift):
    """A bridge serving the web gateway can turn CURVE on: the gateway presents its key on the
    commands, events and replay connections; with a key the bridge does not list it never gets in."""
    keys, clients = tmp_path / "keys", tmp_path / "keys" / "clients"
    clients.mkdir(parents=True)
    for name in ("bridge", "gateway", "stranger"):
        swift.run("switchboard-worker", "keygen", "--out", keys / f"{name}.key")
    (clients / "gateway.pub").write_bytes((keys / "gateway.key.pub").read_bytes())
    sip_port, events, decisions, replay, commands = (harness.free_port() for _ in range(5))
    bus = {"commands": f"tcp://{LOCAL}:{commands}", "events": f"tcp://{LOCAL}:{events}", "replay": f"tcp://{LOCAL}:{replay}"}
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", bus["events"], "--bus-decisions", f"tcp://{LOCAL}:{decisions}",
                         "--bus-replay", bus["replay"], "--bus-commands", bus["commands"],
                         "--journal", tmp_path / "journal.sqlite", "--dialogs", tmp_path / "dialogs.sqlite",
                         "--metrics-listen", "", "--curve-key", keys / "bridge.key", "--curve-clients", clients)
    harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)

    def gateway(name, key):
        port, db = harness.free_port(), tmp_path / f"{name}.sqlite"
        admin = swift.run("switchboard-gateway", "keys", "create", "--db", db, "--name", "ops", "--admin").strip().splitlines()[-1]
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps({
            "listen": {"host": LOCAL, "port": port},
            "bridges": {"ids": ["bridge-1"], "bridge-1": bus},
            "bus": {"health_interval_ms": 500, "curve_key": str(keys / f"{key}.key"),
                    "bridge_key": str(keys / "bridge.key.pub")},
            "database": str(db),
        }))
        return port, admin, swift.start(name, "switchboard-gateway", "serve", "--config", config)

    def reachable(port, admin):
        """The bridge's reachability as the gateway last checked it (a `list` command): None before the first check."""
        request = urllib.request.Request(f"http://{LOCAL}:{port}/api/v1/health", headers={"Authorization": f"Bearer {admin}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.loads(response.read())["bridges"][0].get("reachable")
        except urllib.error.HTTPError as error:
            return json.loads(error.read())["bridges"][0].get("reachable")
        except OSError:
            return None

    port, admin, listed = gateway("gateway", "gateway")
    harness.wait_until(lambda: reachable(port, admin) is True, 20, "the gateway to reach the bridge over CURVE", listed.tail)
    assert "bus client refused" not in bridge.log.read_text(), bridge.tail()
    listed.stop()

    port, admin, stranger = gateway("stranger", "stranger")
    harness.wait_until(lambda: "bus client refused" in bridge.log.read_text(), 15, "the bridge to refuse the stranger",
                       bridge.tail)
    harness.wait_until(lambda: reachable(port, admin) is False, 20, "the stranger's gateway to find the bridge unreachable",
                       stranger.tail)
    stranger.stop()


ROLES = {"workers": "worker", "commanders": "crm", "subscribers": "listener"}


def role_keyed_bridge(tmp_path, swift, reload_interval):
    """A CURVE bridge admitting one key per role (keys/workers/worker.pub, ...), and a Python worker
    with its key, joined and routing. Returns the keys folder, the bridge and its ports."""
    keys = tmp_path / "keys"
    for folder in ROLES:
        (keys / folder).mkdir(parents=True)
    for name in ("bridge", *ROLES.values()):
        swift.run("switchboard-worker", "keygen", "--out", keys / f"{name}.key")
    for folder, name in ROLES.items():
        (keys / folder / f"{name}.pub").write_bytes((keys / f"{name}.key.pub").read_bytes())
    ports = SimpleNamespace(sip=harness.free_port(), events=harness.free_port(), decisions=harness.free_port(),
                            commands=harness.free_port())
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{ports.sip}",
                         "--bus-events", f"tcp://{LOCAL}:{ports.events}", "--bus-decisions", f"tcp://{LOCAL}:{ports.decisions}",
                         "--bus-replay", f"tcp://{LOCAL}:{harness.free_port()}", "--bus-commands", f"tcp://{LOCAL}:{ports.commands}",
                         "--journal", tmp_path / "journal.sqlite", "--dialogs", tmp_path / "dialogs.sqlite",
                         "--metrics-listen", "", "--decision-timeout-ms", "500", "--curve-key", keys / "bridge.key",
                         "--curve-workers", keys / "workers", "--curve-commanders", keys / "commanders",
                         "--curve-subscribers", keys / "subscribers", "--curve-reload-interval", reload_interval)
    harness.wait_until(lambda: harness.sip_request(ports.sip) == 200, 15, "the bridge", bridge.tail)
    worker = harness.Process("worker", [sys.executable, EXAMPLES / "worker.py", "--curve-key", keys / "worker.key",
                                        "--bridge-key", keys / "bridge.key.pub", f"tcp://{LOCAL}:{ports.decisions}",
                                        "sip:gw.example.com"], tmp_path)
    swift.procs.append(worker)   # stopped with the bridge when the test ends
    harness.wait_until(lambda: "joined" in worker.log.read_text(), 10, "the Python worker to join", swift.tails)
    assert invite(ports.sip, "12025550100").startswith("SIP/2.0 302")
    return keys, bridge, ports


def closed_roles(bridge):
    """The roles whose connections the bridge shut down for a key no longer admitted."""
    lines = [line for line in bridge.log.read_text().splitlines()
             if "bus connection of a key no longer admitted closed" in line and "bus.connection_closed=true" in line]
    return {role for role in ROLES for line in lines if f"bus.role={role}" in line}


def test_a_removed_key_is_no_longer_served_and_its_connections_close(tmp_path, swift):
    """No restart: the bridge reads its key directories again every --curve-reload-interval second.
    A worker, a command client and a subscriber are connected and served; their .pub files are
    removed; then the worker is out of the pool (calls get the fallback), the command client gets
    no answer, the subscriber hears no event, and each connection was closed by the bridge."""
    keys, bridge, ports = role_keyed_bridge(tmp_path, swift, reload_interval=1)
    sip_port, events, commands = ports.sip, ports.events, ports.commands

    def client_args(name):
        return SimpleNamespace(curve_key=keys / f"{name}.key", bridge_key=keys / "bridge.key.pub")

    context = zmq.Context()
    crm, listener = context.socket(zmq.DEALER), context.socket(zmq.SUB)
    try:
        crm.linger = 0
        curve.secure(crm, client_args("crm"))
        crm.connect(f"tcp://{LOCAL}:{commands}")

        def listed(request_id, timeout_ms):
            try:
                crm.send(json.dumps({"v": 1, "type": "command", "request_id": request_id, "command": {"name": "list"}}).encode(),
                         zmq.NOBLOCK)
            except zmq.Again:
                return False
            return bool(crm.poll(timeout_ms)) and json.loads(crm.recv())["ok"]
        assert listed("before", 5000)

        curve.secure(listener, client_args("listener"))
        listener.subscribe(b"")
        listener.connect(f"tcp://{LOCAL}:{events}")

        def hears_a_call(timeout_ms=1000):
            invite(sip_port, "12025550100")
            heard = False
            while listener.poll(timeout_ms):
                heard |= listener.recv_multipart()[0].startswith(b"call.")
                timeout_ms = 200
            return heard
        # A SUB hears only what is published after it joined: probe until it does.
        harness.wait_until(hears_a_call, 15, "the subscriber to hear calls", bridge.tail)

        for folder, name in ROLES.items():
            (keys / folder / f"{name}.pub").unlink()
        harness.wait_until(lambda: closed_roles(bridge) == set(ROLES), 10, "the bridge to close the three connections",
                           bridge.tail)
        # What the events socket makes itself when a connection ends (unsubscriptions) is no one's message.
        assert "bus.peer_key=- " not in bridge.log.read_text(), bridge.tail()

        # The worker is out of the pool: calls get the fallback (reject:503), not its 302.
        assert invite(sip_port, "12025550100").startswith("SIP/2.0 503"), bridge.tail()
        assert "worker lost" in bridge.log.read_text(), bridge.tail()
        # The command client gets no answer, and the subscriber no event.
        assert not listed("after", 3000)
        assert not hears_a_call(2000)
        # Their reconnections are refused at the handshake; the same bridge process served throughout.
        harness.wait_until(lambda: "bus client refused" in bridge.log.read_text(), 10, "ZAP to refuse the reconnections",
                           bridge.tail)
        assert bridge.running()
    finally:
        crm.close()
        listener.close()
        context.term()


def test_sighup_reads_the_keys_at_once(tmp_path, swift):
    """With an hour between reloads, SIGHUP is what makes the bridge read its key directories: the
    removed worker key's connection is closed at once, and the bridge keeps running."""
    keys, bridge, ports = role_keyed_bridge(tmp_path, swift, reload_interval=3600)
    (keys / "workers" / "worker.pub").unlink()
    time.sleep(1)
    assert closed_roles(bridge) == set(), bridge.tail()
    bridge.proc.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: closed_roles(bridge) == {"workers"}, 5, "SIGHUP to close the worker's connection", bridge.tail)
    assert invite(ports.sip, "12025550100").startswith("SIP/2.0 503"), bridge.tail()
    assert bridge.running()
