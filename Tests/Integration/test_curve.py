"""CURVE on the bus with the real binaries: keys from `switchboard-worker keygen`, a bridge that
admits only listed keys, a router and an accounting worker that present theirs."""
import json
import urllib.error
import urllib.request

import harness
from harness import LOCAL
from test_python_examples import invite


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
