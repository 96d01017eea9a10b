"""The bus contract: docs/asyncapi.yaml is a valid AsyncAPI 3.0 document, every golden frame in
Tests/Fixtures/bus (one per message kind, byte for byte as the Swift code writes it) validates against
its schemas, and so does every message a real bridge emits (and every message our test worker sends
it). A message type the bridge emits without a contract fails here."""
import copy
import json
import queue
import socket
import threading
import time
import uuid

import jsonschema
import yaml
import zmq

import harness
from harness import LOCAL

DOC = yaml.safe_load((harness.REPO / "docs" / "asyncapi.yaml").read_text())
GOLDEN = harness.REPO / "Tests" / "Fixtures" / "bus"
CHANNELS = ("events", "decisions", "replay", "commands")


def resolve(node, doc=DOC, seen=()):
    """`node` with every local `$ref` inlined; fails on a reference that does not resolve."""
    if isinstance(node, list):
        return [resolve(item, doc, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/") and ref not in seen, f"bad or cyclic $ref {ref}"
        target = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"$ref {ref} does not resolve"
            target = target[part]
        return resolve(target, doc, seen + (ref,))
    return {key: resolve(value, doc, seen) for key, value in node.items()}


def channel_schemas(channel):
    """type → payload schema (refs inlined) for each message the channel declares."""
    out = {}
    for message in resolve(DOC["channels"][channel]["messages"]).values():
        schema = message["payload"]
        parts = [schema] + schema.get("allOf", [])
        out[next(p["properties"]["type"]["const"] for p in parts if "const" in p.get("properties", {}).get("type", {}))] = schema
    return out


def errors(schema, message):
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(message)]


def test_document_is_asyncapi_3_with_valid_schemas():
    assert str(DOC["asyncapi"]).startswith("3.0."), DOC["asyncapi"]
    assert {"info", "servers", "channels", "operations", "components"} <= DOC.keys()
    resolve(DOC)  # every $ref resolves
    for name, message in DOC["components"]["messages"].items():
        jsonschema.Draft7Validator.check_schema(resolve(message["payload"]))
    for name, operation in DOC["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), (name, message)
    assert set(channel_schemas("events")) == {
        "call.offered", "call.routed", "call.rejected", "bridge.started", "bridge.stopping", "worker.joined",
        "worker.left", "worker.lost", "call.originated", "call.dialing", "call.ringing", "call.answered",
        "call.connected", "call.leg_failed", "call.held", "call.resumed", "call.transferred", "call.ended",
        "call.dtmf", "call.media.played", "call.media.recorded", "registration.created", "registration.refreshed", "registration.removed", "registration.expired"}
    assert set(channel_schemas("commands")) == {"command", "command.reply"}
    assert set(channel_schemas("replay")) == {"replay.request", "replay.events", "replay.end", "error"}
    assert set(channel_schemas("decisions")) == {
        "worker.ready", "worker.heartbeat", "decision", "worker.bye",
        "bridge.welcome", "bridge.heartbeat", "decision.request", "error"}


def test_every_golden_frame_matches_the_contract():
    seen = {channel: set() for channel in CHANNELS}
    files = sorted(GOLDEN.glob("*/*.json"))
    assert len(files) >= 40, files
    for path in files:
        channel = path.parent.name
        assert channel in CHANNELS, path
        schemas = channel_schemas(channel)
        message = json.loads(path.read_bytes())
        assert message["type"] in schemas, f"{path}: no {message['type']} on the {channel} channel"
        assert path.stem == message["type"] or path.stem.startswith(message["type"] + "-"), path
        assert not errors(schemas[message["type"]], message), (path.name, errors(schemas[message["type"]], message))
        seen[channel].add(message["type"])
    for channel in CHANNELS:
        assert seen[channel] == set(channel_schemas(channel)), f"{channel}: no golden frame for {set(channel_schemas(channel)) - seen[channel]}"
    # The command and reply shapes each have their own frame, and every one validates above.
    commands = {json.loads(p.read_bytes())["command"]["name"] for p in GOLDEN.glob("commands/command-*.json")}
    assert commands == {"originate", "hangup", "transfer", "hold", "unhold", "list", "get", "decide",
                        "play", "stop_play", "record", "dtmf"}, commands
    actions = {json.loads(p.read_bytes())["decision"]["action"] for p in GOLDEN.glob("decisions/decision-*.json")}
    assert actions == {"redirect", "reject", "bridge", "answer"}, actions


def golden(path):
    return json.loads((GOLDEN / path).read_bytes())


def with_members(message, key, **members):
    """A copy of `message` whose `key` object has `members` set (None: removed)."""
    copy_ = copy.deepcopy(message)
    for name, value in members.items():
        if value is None:
            copy_[key].pop(name, None)
        else:
            copy_[key][name] = value
    return copy_


def test_media_schemas_refuse_what_the_bridge_refuses():
    """The media messages' schemas hold the same bounds as BusSchema's checks (Playback.problem, DTMFDigits)."""
    commands, events, decisions = (channel_schemas(c) for c in ("commands", "events", "decisions"))
    play, dtmf, record = golden("commands/command-play.json"), golden("commands/command-dtmf.json"), golden("commands/command-record.json")
    for message in (play, dtmf, record, golden("commands/command-play-tone.json"), golden("commands/command-stop_play.json")):
        assert not errors(commands["command"], message), message
    for bad in [with_members(play, "command", prompt=None),                       # neither prompt nor tone
                with_members(play, "command", tone="ringback"),                   # both
                with_members(play, "command", prompt="../x"), with_members(play, "command", prompt="a/b"),
                with_members(play, "command", prompt=".hidden"), with_members(play, "command", prompt="p" * 65),
                with_members(play, "command", repeat=0), with_members(play, "command", repeat=101),
                with_members(play, "command", prompt=None, tone="siren"), with_members(play, "command", leg="c"),
                with_members(play, "command", call_id=""),
                with_members(record, "command", action="pause"), with_members(record, "command", action=None),
                with_members(dtmf, "command", digits=""), with_members(dtmf, "command", digits="12x"),
                with_members(dtmf, "command", digits="1" * 33), with_members(dtmf, "command", duration_ms=39),
                with_members(dtmf, "command", duration_ms=2001), with_members(dtmf, "command", leg=None)]:
        assert errors(commands["command"], bad), f"schema accepts {bad}"
    assert not errors(commands["command"], with_members(play, "command", prompt="p" * 64, repeat=100))
    assert not errors(commands["command"], with_members(dtmf, "command", digits="0123456789*#ABCD", duration_ms=40))

    originate = golden("commands/command-originate-anchor.json")
    assert errors(commands["command"], with_members(originate, "command", media="proxy"))
    bridge = golden("decisions/decision-bridge-anchor.json")
    assert errors(decisions["decision"], with_members(bridge, "decision", media="loud"))
    assert errors(decisions["decision"], {**golden("decisions/decision-answer.json"), "decision": {"action": "answr"}})

    dtmf_event, played = golden("events/call.dtmf.json"), golden("events/call.media.played.json")
    recorded = golden("events/call.media.recorded.json")
    for bad, schema in [(with_members(dtmf_event, "dtmf", digit="E"), "call.dtmf"),
                        (with_members(dtmf_event, "dtmf", digit="12"), "call.dtmf"),
                        (with_members(played, "played", outcome="skipped"), "call.media.played"),
                        (with_members(played, "played", prompt=None), "call.media.played"),
                        (with_members(played, "played", played_ms=None), "call.media.played"),
                        (with_members(recorded, "recorded", format="wav"), "call.media.recorded"),
                        (with_members(recorded, "recorded", bytes=-1), "call.media.recorded"),
                        ({k: v for k, v in dtmf_event.items() if k != "call_id"}, "call.dtmf")]:
        assert errors(events[schema], bad), f"schema accepts {bad}"
    error = golden("commands/command.reply-media.json")
    assert error["error"]["code"] == "media_unavailable" and not errors(commands["command.reply"], error)


class Worker(threading.Thread):
    """A DEALER worker on its own thread (a ZeroMQ socket stays on one thread): records every frame
    both ways, answers heartbeats, and decides by number — 486... rejected, anything else redirected."""

    def __init__(self, ctx, endpoint):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.connect(endpoint)
        self.received, self.sent, self.frame_counts = [], [], set()
        self.outbox, self.done = queue.Queue(), threading.Event()

    def send(self, message):
        self.outbox.put(message)

    def _send(self, message):
        if isinstance(message, dict):
            self.sent.append(message)
            message = json.dumps(message).encode()
        self.sock.send(message)

    def run(self):
        while not self.done.is_set():
            while not self.outbox.empty():
                self._send(self.outbox.get())
            if not self.sock.poll(20):
                continue
            frames = self.sock.recv_multipart()
            self.frame_counts.add(len(frames))  # must be 1: the ROUTER's identity frame is not seen
            message = json.loads(frames[-1])
            self.received.append(message)
            if message["type"] == "bridge.heartbeat":
                self._send({"v": 1, "type": "worker.heartbeat"})
            elif message["type"] == "decision.request":
                user = message["offer"]["request_uri"]["user"]
                decision = ({"action": "reject", "status": 486, "reason": "Busy Here", "headers": {"Retry-After": "60"}}
                            if user.startswith("486") else
                            {"action": "redirect", "targets": [{"uri": f"sip:{user}@gw1.example.com", "q": 1.0},
                                                               {"uri": f"sip:{user}@gw2.example.com"}]})
                self._send({"v": 1, "type": "decision", "request_id": message["request_id"], "decision": decision})
        self.sock.close(linger=0)

    def types(self):
        return [m["type"] for m in list(self.received)]


SDP = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"


def invite(port, number, timeout=3.0):
    """An INVITE as Kamailio relays it (X- headers, SDP) straight to the bridge; returns the final
    status line after sending the ACK."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        lport = s.getsockname()[1]
        head = (f"sip:{number}@{LOCAL}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOCAL}:{lport};rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                f"From: \"Alice\" <sip:alice@{LOCAL}>;tag=a1\r\nCall-ID: {uuid.uuid4().hex}\r\nMax-Forwards: 70\r\n")
        s.sendto((f"INVITE {head}To: <sip:{number}@{LOCAL}>\r\nCSeq: 1 INVITE\r\n"
                  f"X-Switchboard-Auth-User: alice\r\nX-Switchboard-Source: 192.0.2.10:5060;transport=udp\r\n"
                  f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}").encode(), (LOCAL, port))
        s.settimeout(timeout)
        while True:
            data = s.recv(65535).decode()
            if int(data.split(" ", 2)[1]) >= 200:
                to = next(line for line in data.split("\r\n") if line.startswith("To:"))
                s.sendto(f"ACK {head}{to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n".encode(), (LOCAL, port))
                return data.split("\r\n", 1)[0]


def replay(sock, request):
    """Sends one replay request (a dict, or raw bytes) on a DEALER; returns every reply up to replay.end or error."""
    sock.send(request if isinstance(request, bytes) else json.dumps(request).encode())
    replies = []
    while sock.poll(5000):
        replies.append(json.loads(sock.recv_multipart()[-1]))
        if replies[-1]["type"] in ("replay.end", "error"):
            break
    return replies


def test_real_bridge_messages_match_the_contract(swift):
    sip_port, events_port, decisions_port, replay_port = (harness.free_port() for _ in range(4))
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{events_port}",
                         "--bus-decisions", f"tcp://{LOCAL}:{decisions_port}",
                         "--bus-replay", f"tcp://{LOCAL}:{replay_port}",
                         "--decision-timeout-ms", "2000", "--metrics-listen", "")
    harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://{LOCAL}:{events_port}")
    worker = Worker(ctx, f"tcp://{LOCAL}:{decisions_port}")
    worker.start()
    try:
        worker.send({"v": 1, "type": "worker.ready", "worker_id": "contract-worker", "capacity": 2})
        harness.wait_until(lambda: "bridge.welcome" in worker.types(), 5, "bridge.welcome", bridge.tail)
        # A SUB socket joins asynchronously and PUB drops what it sends before that (slow joiner);
        # nothing on the bridge tells us when, so give it a moment.
        time.sleep(0.3)

        assert invite(sip_port, "12025550100").startswith("SIP/2.0 302"), bridge.tail()
        assert invite(sip_port, "4865550100").startswith("SIP/2.0 486"), bridge.tail()
        worker.send(b"this is not json")
        harness.wait_until(lambda: "error" in worker.types(), 5, "an error reply", bridge.tail)
        # Let at least one heartbeat go each way, then leave: the next call gets the fallback.
        harness.wait_until(lambda: "bridge.heartbeat" in worker.types(), 5, "a bridge.heartbeat", bridge.tail)
        worker.send({"v": 1, "type": "worker.bye"})
        harness.wait_until(lambda: any(m["type"] == "worker.bye" for m in worker.sent), 5, "worker.bye sent")
        harness.wait_until(lambda: "worker left" in bridge.log.read_text(), 5, "the bridge to drop the worker", bridge.tail)
        assert invite(sip_port, "12025550199").startswith("SIP/2.0 503"), bridge.tail()

        events = []
        while sub.poll(1000 if len(events) < 7 else 200):
            events.append(sub.recv_multipart())

        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(f"tcp://{LOCAL}:{replay_port}")
        replay_requests = [{"v": 1, "type": "replay.request", "request_id": "all", "from_seq": 0},
                           {"v": 1, "type": "replay.request", "request_id": "tail", "from_seq": 3, "max": 2},
                           {"v": 1, "type": "replay.request", "request_id": "bad", "from_seq": "one"}]
        replies = [reply for request in replay_requests for reply in replay(dealer, request)]
        replies += replay(dealer, b"not json")
        dealer.close(linger=0)
    finally:
        worker.done.set()
        worker.join(5)
        sub.close(linger=0)
        ctx.term()

    event_schemas, decision_schemas, replay_schemas = (channel_schemas(c) for c in ("events", "decisions", "replay"))
    bodies = []
    for frames in events:
        assert len(frames) == 2, frames  # [topic, json]
        body = json.loads(frames[1])
        assert frames[0].decode() == body["type"], frames
        bodies.append(body)
    # worker.joined may come before the SUB socket has joined; worker.left comes between the calls.
    assert [e["type"] for e in bodies if e["type"] != "worker.joined"] == [
        "call.offered", "call.routed", "call.offered", "call.rejected", "worker.left",
        "call.offered", "call.rejected"], bodies
    assert [e["seq"] for e in bodies] == list(range(bodies[0]["seq"], bodies[0]["seq"] + len(bodies))), bodies
    assert all("call_id" in e for e in bodies if e["type"].startswith("call.")), bodies
    assert next(e for e in bodies if e["type"] == "worker.left")["worker"] == {"worker_id": "contract-worker"}

    # Replay gives back the whole run from the journal: bridge.started first, then exactly what was published.
    replayed = [event for reply in replies if reply.get("request_id") == "all" and reply["type"] == "replay.events"
                for event in reply["events"]]
    assert [e["seq"] for e in replayed] == list(range(1, len(replayed) + 1)), replayed
    assert replayed[0]["type"] == "bridge.started" and "call_id" not in replayed[0], replayed[0]
    assert replayed[0]["bridge"]["sip_listen"] == f"{LOCAL}:{sip_port}", replayed[0]
    assert [e["type"] for e in replayed[1:3]] == ["worker.joined", "call.offered"], replayed
    assert replayed[-len(bodies):] == bodies
    ends = {r["request_id"]: r for r in replies if r["type"] == "replay.end"}
    assert (ends["all"]["first_seq"], ends["all"]["last_seq"], ends["all"]["next_seq"]) == (1, len(replayed), len(replayed) + 1)
    assert (ends["tail"]["first_seq"], ends["tail"]["next_seq"]) == (1, 5), ends["tail"]
    errors_ = [r for r in replies if r["type"] == "error"]
    assert [(e["code"], e.get("request_id")) for e in errors_] == [("bad_message", "bad"), ("bad_json", None)], errors_
    fallback = bodies[-1]["rejected"]
    assert (fallback["fallback"], fallback["cause"], fallback["status"]) == (True, "no_worker", 503), fallback
    assert worker.frame_counts == {1}, worker.frame_counts
    assert {"bridge.welcome", "bridge.heartbeat", "decision.request", "error"} <= set(worker.types())
    assert next(m for m in worker.received if m["type"] == "error")["code"] == "bad_json"

    # Every type the bridge emitted is in the contract, and every message validates.
    for channel, schemas, messages in (("events", event_schemas, bodies),
                                       ("events", event_schemas, replayed),
                                       ("decisions", decision_schemas, worker.received + worker.sent),
                                       ("replay", replay_schemas, replay_requests[:2] + replies)):
        undeclared = {m["type"] for m in messages} - schemas.keys()
        assert not undeclared, f"types without a contract on {channel}: {undeclared}"
        for message in messages:
            assert not errors(schemas[message["type"]], message), (message, errors(schemas[message["type"]], message))

    # Negative cases: the schemas do reject broken copies of real messages.
    offered = next(e for e in bodies if e["type"] == "call.offered")
    routed = next(e for e in bodies if e["type"] == "call.routed")
    request = next(m for m in worker.received if m["type"] == "decision.request")
    broken = []
    for message, path, value in [(offered, ["seq"], None), (offered, ["ts"], 12), (offered, ["v"], 2),
                                 (offered, ["offer", "source", "port"], "5060"),
                                 (offered, ["offer", "request_uri"], None),
                                 (routed, ["routed", "fallback"], "no"), (routed, ["routed", "targets"], []),
                                 (request, ["deadline_ms"], None), (request, ["offer", "headers"], ["X-A"])]:
        copy_ = copy.deepcopy(message)
        parent = copy_
        for key in path[:-1]:
            parent = parent[key]
        if value is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        schemas = decision_schemas if message is request else event_schemas
        if not errors(schemas[message["type"]], copy_):
            broken.append((path, value))
    assert not broken, f"schemas accept broken messages: {broken}"
    started = replayed[0]
    for message, schemas in [({**started, "call_id": "c1"}, event_schemas), ({**routed, "call_id": None}, event_schemas),
                             ({k: v for k, v in routed.items() if k != "call_id"}, event_schemas),
                             ({**ends["all"], "next_seq": "2"}, replay_schemas),
                             ({**replay_requests[0], "from_seq": -1}, replay_schemas),
                             ({k: v for k, v in started.items() if k != "bridge"}, event_schemas)]:
        assert errors(schemas[message["type"]], message), f"schema accepts {message}"
    bad_decision = {"v": 1, "type": "decision", "request_id": "r", "decision": {"action": "redirect"}}
    assert errors(decision_schemas["decision"], bad_decision)
    assert errors(decision_schemas["error"], {"v": 1, "type": "error", "code": "oops", "message": "x"})
