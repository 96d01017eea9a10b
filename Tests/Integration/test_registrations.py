"""Who is reachable, through the real stack: sipp phones REGISTER at Kamailio running
openser-cfg/kamailio.cfg, whose registrar outcomes (route REG_CHANGES, event_route
usrloc:contact-expired) reach the bridge as MESSAGEs of type
application/vnd.switchboard.registration+json and come out on the bus as registration.* events.

Register → registration.created, again → registration.refreshed, Expires: 0 →
registration.removed, a short expiry left to lapse → registration.expired; each seen live on a SUB
socket and the same bytes replayed from the journal. The gateway lists the user while registered
and unlists them after (a key that is no admin sees its own accounts only). A REGISTER without
User-Agent gives no user_agent; a second phone of a user is a binding of its own. Anyone but Kamailio
sending such a MESSAGE gets 403 and publishes nothing. `switchboard-worker registrations` lists the same
bindings from the journal (table, --json, --user), follows new events, and fails clearly without a bridge."""
import json
import re
import socket
import subprocess
import time
import urllib.request

import pytest
import zmq

import harness
from harness import DOMAIN, LOCAL
from switchboard_testkit.gateway import healthy as gateway_healthy
from switchboard_testkit.metrics import scrape
from test_journal import replay_all

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
NOTICE_TYPE = "application/vnd.switchboard.registration+json"


class Stack:
    def __init__(self, kamailio, bridge, bus, sip_port, metrics, ctx, sub):
        self.kamailio, self.bridge, self.bus, self.sip_port, self.metrics = kamailio, bridge, bus, sip_port, metrics
        self.ctx, self.sub, self.live = ctx, sub, []
        self.gateway = self.base = self.key = None

    def register(self, sipp, user, expires, contact_port, user_agent="Switchboard test phone 1.0"):
        res = sipp.run(f"register-{user}-{expires}-{time.monotonic_ns()}", "register_expires.xml", self.kamailio.port,
                       keys={"user": user, "domain": DOMAIN, "contact_port": str(contact_port),
                             "expires": str(expires), "user_agent": user_agent},
                       extra=["-au", user, "-ap", USERS[user]])
        assert res.code == 0, res.report()

    def read(self, until=lambda event: False, timeout=10):
        """Reads live events off the SUB socket for `timeout` seconds, or until one satisfies `until`;
        returns that one (None when the time ran out)."""
        deadline = time.monotonic() + timeout
        for event in self.live:
            if until(event):
                return event
        while time.monotonic() < deadline:
            if self.sub.poll(100):
                topic, payload = self.sub.recv_multipart()
                event = json.loads(payload)
                assert topic.decode() == event["type"]
                self.live.append(event)
                if until(event):
                    return event
        return None

    def wait_event(self, type_, user, timeout=10):
        """The first live event of this type for this user."""
        event = self.read(lambda e: e["type"] == type_ and e["registration"]["user"] == user, timeout)
        assert event, (f"no {type_} for {user}: saw {[e['type'] for e in self.live]}\n"
                       f"{self.kamailio.tail(40)}\n{self.bridge.tail(40)}")
        return event

    def online(self, key=None):
        with urllib.request.urlopen(urllib.request.Request(
                self.base + "/api/v1/registrations", headers={"Authorization": f"Bearer {key or self.key}"}), timeout=5) as response:
            assert response.status == 200
            return json.loads(response.read())["registrations"]


@pytest.fixture
def stack(tmp_path, swift, start_kamailio):
    """A bridge and Kamailio with the shipped cfg (bindings as short as 1 s, usrloc's timer every
    second), and a SUB socket on the bridge's events."""
    sip_port = harness.free_port()
    kamailio = start_kamailio(subscribers=USERS, bridge_ports=[sip_port],
                              defines={"REG_MIN_EXPIRES": "1", "REG_TIMER_INTERVAL": "1"})
    bus = {name: f"tcp://{LOCAL}:{port}" for name, port in zip(("events", "decisions", "replay", "commands"), harness.free_ports(4))}
    metrics = f"{LOCAL}:{harness.free_port()}"
    bridge = swift.start("bridge", "switchboard-bridge", "--bridge-id", "bridge-1", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--outbound-proxy", f"{LOCAL}:{kamailio.port}",
                         "--bus-events", bus["events"], "--bus-decisions", bus["decisions"],
                         "--bus-replay", bus["replay"], "--bus-commands", bus["commands"],
                         "--journal", tmp_path / "journal.sqlite", "--metrics-listen", metrics)
    harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200,
                       15, f"bridge to answer OPTIONS on {sip_port}", bridge.tail)
    assert bridge.running(), bridge.tail()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"registration.")
    sub.connect(bus["events"])
    time.sleep(0.5)  # the SUB subscription reaches the bridge
    stack = Stack(kamailio, bridge, bus, sip_port, f"http://{metrics}/metrics", ctx, sub)
    yield stack
    sub.close(linger=0)
    ctx.term()


def start_gateway(stack, swift, tmp_path):
    gateway_db = tmp_path / "gateway.sqlite"
    created = swift.run("switchboard-gateway", "keys", "create", "--db", gateway_db, "--name", "ops", "--admin")
    stack.key = created.strip().splitlines()[-1]
    created = swift.run("switchboard-gateway", "keys", "create", "--db", gateway_db, "--name", "alice-crm", "--number", "alice")
    stack.alice_key = created.strip().splitlines()[-1]
    http_port = harness.free_port()
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({
        "listen": {"host": LOCAL, "port": http_port},
        "bridges": {"ids": ["bridge-1"], "bridge-1": {"commands": stack.bus["commands"], "events": stack.bus["events"],
                                                      "replay": stack.bus["replay"]}},
        "bus": {"health_interval_ms": 1000}, "database": str(gateway_db),
    }))
    stack.gateway = swift.start("gateway", "switchboard-gateway", "serve", "--config", config)
    stack.base = f"http://{LOCAL}:{http_port}"
    harness.wait_until(lambda: gateway_healthy(http_port), 20, "the gateway to reach the bridge", stack.gateway.tail, stack.gateway)


def test_register_refresh_unregister_and_expiry_reach_the_bus_and_the_journal(stack, sipp):
    stack.register(sipp, "alice", 300, 5091)
    created = stack.wait_event("registration.created", "alice")
    assert "call_id" not in created and created["bridge_id"] == "bridge-1"
    reg = created["registration"]
    assert reg["aor"] == f"sip:alice@{DOMAIN}" and reg["contact"] == f"sip:alice@{LOCAL}:5091", reg
    assert reg["transport"] == "udp" and reg["user_agent"] == "Switchboard test phone 1.0", reg
    assert 295 <= reg["expires"] <= 300, reg
    assert reg["received"].startswith(f"{LOCAL}:"), reg

    stack.register(sipp, "alice", 600, 5091)
    refreshed = stack.wait_event("registration.refreshed", "alice")
    assert refreshed["registration"]["contact"] == reg["contact"] and 595 <= refreshed["registration"]["expires"] <= 600

    stack.register(sipp, "alice", 0, 5091)
    removed = stack.wait_event("registration.removed", "alice")
    assert removed["registration"]["expires"] == 0 and removed["registration"]["contact"] == reg["contact"]

    stack.register(sipp, "bob", 2, 5092, user_agent='Odd "agent" \\ with quotes')
    bob = stack.wait_event("registration.created", "bob")
    assert bob["registration"]["user_agent"] == 'Odd "agent" \\ with quotes', bob  # jansson escaped it
    started = time.monotonic()
    expired = stack.wait_event("registration.expired", "bob", timeout=10)
    lapse = time.monotonic() - started
    assert expired["registration"]["expires"] == 0 and expired["registration"]["contact"] == f"sip:bob@{LOCAL}:5092"
    assert expired["registration"]["transport"] == "udp"
    # usrloc keeps a source only for a phone behind NAT: none here, so none is made up
    assert "received" not in expired["registration"], expired
    print(f"registration.expired seen {lapse:.1f} s after the 2 s binding was made (usrloc timer 1 s)")

    # Nothing else happened to alice: one event per change, none for the query-free REGISTERs' 401s.
    alice = [e["type"] for e in stack.live if e["registration"]["user"] == "alice"]
    assert alice == ["registration.created", "registration.refreshed", "registration.removed"], alice

    # The journal holds the same events, byte for byte as published.
    replayed, _ = replay_all(stack.ctx, stack.bus["replay"])
    journaled = [e for e in replayed if e["type"].startswith("registration.")]
    assert journaled == stack.live, (journaled, stack.live)
    # ... and the bridge counted them by type.
    text = scrape(stack.metrics)
    for type_, count in (("created", 2), ("refreshed", 1), ("removed", 1), ("expired", 1)):
        assert f'switchboard_registration_events_total{{type="registration.{type_}"}} {count}' in text, text


def test_the_gateway_lists_who_is_online(stack, sipp, swift, tmp_path):
    stack.register(sipp, "alice", 300, 5093)
    stack.wait_event("registration.created", "alice")
    # Started after alice registered: it learns her binding from the journal.
    start_gateway(stack, swift, tmp_path)
    harness.wait_until(lambda: [r["user"] for r in stack.online()] == ["alice"], 10, "alice to be listed", stack.gateway.tail)
    listed = stack.online()[0]
    assert listed["aor"] == f"sip:alice@{DOMAIN}" and listed["contact"] == f"sip:alice@{LOCAL}:5093", listed

    stack.register(sipp, "bob", 300, 5094)
    harness.wait_until(lambda: sorted(r["user"] for r in stack.online()) == ["alice", "bob"], 10, "bob to be listed",
                       stack.gateway.tail)
    # A key that is not an admin sees the accounts it owns only.
    assert [r["user"] for r in stack.online(stack.alice_key)] == ["alice"]
    stack.register(sipp, "alice", 0, 5093)
    harness.wait_until(lambda: [r["user"] for r in stack.online()] == ["bob"], 10, "alice to be unlisted", stack.gateway.tail)


def test_a_notice_from_outside_the_trusted_sources_is_refused(stack):
    """Only Kamailio may say who is online: the bridge's sip_trusted_sources (its outbound proxy) holds."""
    body = json.dumps({"v": 1, "type": "registration.created", "registration": {
        "aor": f"sip:mallory@{DOMAIN}", "user": "mallory", "contact": "sip:mallory@203.0.113.9", "transport": "udp",
        "expires": 3600}})
    assert message(stack.sip_port, body, source=("127.0.0.5", 0)) == 403
    assert stack.read(timeout=1) is None, stack.live
    # The same MESSAGE from the trusted address (Kamailio's) is published.
    assert message(stack.sip_port, body, source=(LOCAL, 0)) == 200
    assert stack.wait_event("registration.created", "mallory")["registration"]["contact"] == "sip:mallory@203.0.113.9"


def message(port, body, source):
    """Sends one out-of-dialog MESSAGE with a registration notice from `source`; returns the status."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(source)
    sock.settimeout(3)
    host, local_port = sock.getsockname()
    text = (f"MESSAGE sip:{LOCAL}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK-{time.monotonic_ns()}\r\n"
            f"From: <sip:registrar@{DOMAIN}>;tag=1\r\nTo: <sip:{LOCAL}:{port}>\r\nCall-ID: n-{time.monotonic_ns()}\r\n"
            f"CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: {NOTICE_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    try:
        sock.sendto(text.encode(), (LOCAL, port))
        return int(sock.recv(65535).decode().split(" ", 2)[1])
    finally:
        sock.close()


def test_a_phone_without_user_agent_and_two_contacts_of_one_user(stack, sipp):
    """No User-Agent header: no user_agent member (not an empty or made-up one). A second phone of the same
    user is a second binding: created for it alone, nothing for the first."""
    for port in (5095, 5096):
        res = sipp.run(f"register-{port}", "register_auth.xml", stack.kamailio.port,
                       keys={"user": "alice", "domain": DOMAIN, "contact_port": str(port)},
                       extra=["-au", "alice", "-ap", USERS["alice"]])
        assert res.code == 0, res.report()
        assert stack.read(lambda e: e["registration"]["contact"].endswith(f":{port}")), (stack.live, stack.kamailio.tail(40))
    stack.read(timeout=1)  # anything else Kamailio would relay
    changes = [(e["type"], e["registration"]["contact"]) for e in stack.live]
    assert changes == [("registration.created", f"sip:alice@{LOCAL}:5095"),
                       ("registration.created", f"sip:alice@{LOCAL}:5096")], changes
    assert all("user_agent" not in e["registration"] for e in stack.live), json.dumps([e["registration"] for e in stack.live])


def cli(swift, stack, *args):
    """`switchboard-worker registrations` against the stack's bridge; its stdout."""
    return swift.run("switchboard-worker", "registrations", "--events", stack.bus["events"], "--replay", stack.bus["replay"], *args)


def table_rows(text):
    """The CLI's table as lists of cells (columns are two or more spaces apart; a user agent has single spaces)."""
    lines = text.strip().splitlines()
    assert re.split(r" {2,}", lines[0]) == ["USER", "AOR", "CONTACT", "TRANSPORT", "USER AGENT", "SECONDS LEFT"], text
    return [re.split(r" {2,}", line) for line in lines[1:]]


def test_the_cli_lists_who_is_online(stack, sipp, swift):
    stack.register(sipp, "alice", 300, 5097)
    stack.wait_event("registration.created", "alice")
    # A fresh process each time: what it lists comes from the journal.
    [row] = table_rows(cli(swift, stack))
    assert row[:5] == ["alice", f"sip:alice@{DOMAIN}", f"sip:alice@{LOCAL}:5097", "udp", "Switchboard test phone 1.0"], row
    assert 290 <= int(row[5]) <= 300, row
    [listed] = json.loads(cli(swift, stack, "--json"))["registrations"]
    assert listed["user"] == "alice" and listed["contact"] == f"sip:alice@{LOCAL}:5097" and listed["bridge_id"] == "bridge-1", listed
    assert listed["transport"] == "udp" and listed["user_agent"] == "Switchboard test phone 1.0" and 290 <= listed["expires"] <= 300
    assert cli(swift, stack, "--user", "bob").strip() == "bob is not registered"

    stack.register(sipp, "bob", 300, 5098, user_agent="Bob phone 2.0")
    stack.wait_event("registration.created", "bob")
    assert sorted(row[0] for row in table_rows(cli(swift, stack))) == ["alice", "bob"]
    assert [r["user"] for r in json.loads(cli(swift, stack, "--user", "bob", "--json"))["registrations"]] == ["bob"]

    stack.register(sipp, "alice", 0, 5097)
    stack.wait_event("registration.removed", "alice")
    assert [row[0] for row in table_rows(cli(swift, stack))] == ["bob"]
    assert cli(swift, stack, "--user", "alice").strip() == "alice is not registered"
    assert json.loads(cli(swift, stack, "--user", "alice", "--json")) == {"registrations": []}


def test_the_cli_follows_registration_events(stack, sipp, swift):
    stack.register(sipp, "alice", 300, 5099)
    stack.wait_event("registration.created", "alice")
    follower = swift.start("follower", "switchboard-worker", "registrations", "--events", stack.bus["events"],
                           "--replay", stack.bus["replay"], "--follow", "--json")

    def printed():
        return [json.loads(line) for line in follower.log.read_text().split("\n")[:-1]]  # whole lines only

    harness.wait_until(lambda: printed() or not follower.running(), 10, "the listing", follower.tail)
    assert [r["user"] for r in printed()[0]["registrations"]] == ["alice"], follower.tail()
    stack.register(sipp, "bob", 300, 5100)
    stack.register(sipp, "alice", 0, 5099)
    stack.wait_event("registration.removed", "alice")
    harness.wait_until(lambda: len(printed()) >= 3, 10, "the two events", follower.tail)
    # Each event as the bus carried it; alice's creation, replayed into the listing, is not printed again.
    assert printed()[1:] == [stack.wait_event("registration.created", "bob"), stack.wait_event("registration.removed", "alice")]
    assert follower.stop() == 0, follower.tail()  # SIGTERM ends it cleanly


def test_the_cli_fails_clearly_when_the_bridge_cannot_be_reached(swift):
    events, replay = (f"tcp://{LOCAL}:{port}" for port in harness.free_ports(2))
    started = time.monotonic()
    res = subprocess.run([str(swift.binary("switchboard-worker")), "registrations", "--events", events, "--replay", replay,
                          "--timeout-ms", "500"], capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert res.returncode != 0 and res.stdout == "", (res.returncode, res.stdout, res.stderr)
    assert f"no answer from the bridge's replay endpoint {replay} within 500 ms" in res.stderr, res.stderr
    assert 0.5 <= elapsed < 10, elapsed
