"""Issue 16 over REST: the gateway's media commands on a call anchored in a real rtpengine (Kamailio, sipp
phones, the bridge), the accounting worker putting the recording in the call's CDR, and the gateway
listing and serving the file to its account only."""
import csv
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import harness
import phones
from harness import LOCAL
from switchboard_testkit.gateway import healthy
from switchboard_testkit.rtpengine import RTPSink
from test_b2bua import b2b, finished  # noqa: F401  (b2b is a fixture)
from test_media import anchored_plan, media  # noqa: F401  (media is a fixture)


def request(base, method, path, key, body=None):
    """(status, headers, raw body) of one API request with an API key."""
    data = json.dumps(body).encode() if body is not None else None
    sent = urllib.request.Request(base + path, data=data, method=method,
                                  headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_a_call_recorded_over_rest_is_in_its_cdr_and_served_to_its_account_only(media, sipp, swift, tmp_path):
    s = media(anchored_plan())
    cdr_db, gateway_db = tmp_path / "cdr.sqlite", tmp_path / "gateway.sqlite"
    swift.start("accounting", "switchboard-worker", "accounting", "--db", cdr_db,
                "--events", s.endpoints["events"], "--replay", s.endpoints["replay"])
    limits = ["--rate", "50", "--burst", "100"]
    admin = swift.run("switchboard-gateway", "keys", "create", "--db", gateway_db, "--name", "ops", "--admin",
                      *limits).strip().splitlines()[-1]
    stranger = swift.run("switchboard-gateway", "keys", "create", "--db", gateway_db, "--name", "crm", "--number", "alice",
                         *limits).strip().splitlines()[-1]
    port = harness.free_port()
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({
        "listen": {"host": LOCAL, "port": port},
        "bridges": {"ids": ["bridge-1"], "bridge-1": {"commands": s.endpoints["commands"], "events": s.endpoints["events"],
                                                      "replay": s.endpoints["replay"]}},
        "bus": {"health_interval_ms": 1000},
        "database": str(gateway_db), "cdr_database": str(cdr_db), "recordings_dir": str(s.engine.recording_dir),
        "log_level": "notice",
    }))
    gateway = swift.start("gateway", "switchboard-gateway", "serve", "--config", config)
    base = f"http://{LOCAL}:{port}"
    harness.wait_until(lambda: healthy(port), 20, "the gateway to reach the bridge", gateway.tail, gateway)

    sink = RTPSink()
    bob = phones.start(sipp, s.kamailio, "bob", "answer_media", rtp_port=sink.port)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=7000)
    call_id = s.bus.wait("call.connected")["call_id"]
    harness.wait_until(lambda: request(base, "GET", f"/api/v1/calls/{call_id}", admin)[0] == 200, 10,
                       "the gateway to know the call", gateway.tail)

    def command(path, body, key=admin):
        status, _, raw = request(base, "POST", f"/api/v1/calls/{call_id}/{path}", key, body)
        return status, json.loads(raw)

    # someone else's call is not there; a prompt the bridge does not have is its 400
    assert command("recording", {"action": "start"}, key=stranger)[0] == 404
    status, problem = command("play", {"leg": "b", "prompt": "nope"})
    assert (status, problem["bridge_code"]) == (400, "bad_command"), problem
    status, problem = command("recording", {"action": "stop"})
    assert (status, problem["bridge_code"]) == (409, "invalid_state"), problem

    status, call = command("recording", {"action": "start"})
    assert status == 202 and call["state"] == "connected", call
    played_before = len(s.bus.events(call_id, "call.media.played"))
    status, call = command("play", {"leg": "b", "prompt": "menu"})
    assert status == 202 and call["call_id"] == call_id, call
    harness.wait_until(lambda: len(s.bus.events(call_id, "call.media.played")) > played_before, 6, "the menu to play",
                       lambda: json.dumps(s.bus.events(call_id), indent=1))
    assert sink.count(0) >= 90, sink.payload_types()
    # rtpengine injects DTMF into a stream it has seen, and alice's sipp sends no RTP: the bridge says so, the call goes on
    status, problem = command("dtmf", {"leg": "b", "digits": "12"})
    assert (status, problem["bridge_code"]) == (503, "media_unavailable") and "SSRC" in problem["detail"], problem
    assert command("recording", {"action": "stop"})[0] == 202
    recorded = s.bus.wait("call.media.recorded", call_id)["recorded"]
    finished(alice, bob)
    sink.close()

    # the accounting worker has put it in the call's CDR; the gateway lists it for the admin
    def listed(key):
        status, _, raw = request(base, "GET", "/api/v1/recordings", key)
        assert status == 200, raw
        return json.loads(raw)["recordings"]
    harness.wait_until(lambda: listed(admin), 10, "the recording in the CDR", gateway.tail)
    [row] = listed(admin)
    assert row["call_id"] == call_id and row["duration_ms"] == recorded["duration_ms"], (row, recorded)
    assert row["bytes"] == recorded["bytes"] == Path(recorded["path"]).stat().st_size, (row, recorded)
    status, headers, body = request(base, "GET", row["url"], admin)
    assert status == 200 and headers["Content-Type"] == "application/vnd.tcpdump.pcap", (status, body[:200])
    assert body == Path(recorded["path"]).read_bytes()
    # the CSV export has the recording's columns
    status, _, raw = request(base, "GET", "/api/v1/cdrs.csv", admin)
    [cdr] = [r for r in csv.DictReader(io.StringIO(raw.decode(), newline="")) if r["call_id"] == call_id]
    assert cdr["recording_path"] == recorded["path"] and int(cdr["recording_ms"]) == recorded["duration_ms"], cdr
    # another account sees neither the listing nor the file
    assert listed(stranger) == []
    assert request(base, "GET", row["url"], stranger)[0] == 404
