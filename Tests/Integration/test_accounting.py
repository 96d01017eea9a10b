"""Accounting is exactly once: with the accounting worker SIGKILLed and the bridge restarted while
calls flow, the CDR table ends up with one row per call the bridge answered, none missing, none
doubled. The worker resumes from the cursor it stores with the CDRs; what it missed comes back
from the bridge's journal through the replay endpoint."""
import json
import re
import os
import signal
import time
from collections import Counter
from pathlib import Path

import harness
from harness import LOCAL

SCENARIO = harness.REPO / "bench" / "scenarios" / "uac_invite_302.xml"
RATE, SECONDS = 40, 8


def answered_call_ids(messages):
    """SIP Call-IDs for which sipp received a final response, from its -trace_msg file."""
    text = Path(messages).read_text(errors="replace") if Path(messages).exists() else ""
    answered = set()
    for block in text.split("----------------------------------------------- ")[1:]:
        head, _, body = block.partition("\n\n")
        body = body.strip()
        if "message received" not in head or not body.startswith("SIP/2.0 "):
            continue
        if int(body.split(" ", 2)[1]) < 200:
            continue
        answered.update(harness.header_values(body, "Call-ID"))
    return answered


def start_uac_load(workdir, sip_port, rate, calls, messages):
    """sipp calling the bridge directly (INVITE, 302, ACK) at a steady rate, tracing every message."""
    return harness.Process("sipp-uac", [
        harness.SIPP, "-sf", SCENARIO, "-s", "12025550100", "-i", LOCAL, "-p", harness.free_port(),
        "-mp", harness.free_port(False), "-r", rate, "-m", calls, "-nostdin", "-timeout", "40s",
        "-recv_timeout", "8000", "-trace_msg", "-message_file", messages, f"{LOCAL}:{sip_port}"], workdir)


def cdrs(swift, db):
    return json.loads(swift.run("switchboard-worker", "cdrs", "list", "--db", db, "--json"))


def test_cdrs_are_exactly_once_across_worker_kill_and_bridge_restart(tmp_path, swift):
    sip_port = harness.free_port()
    events, decisions, replay = (f"tcp://{LOCAL}:{harness.free_port()}" for _ in range(3))
    journal = tmp_path / "journal.sqlite"
    routes, cdr_db = tmp_path / "routes.sqlite", tmp_path / "cdr.sqlite"
    bridge_args = ["--bridge-id", "b1", "--sip-listen", f"{LOCAL}:{sip_port}", "--bus-events", events,
                   "--bus-decisions", decisions, "--bus-replay", replay, "--journal", journal,
                   "--decision-timeout-ms", "1000", "--metrics-listen", ""]

    def start_bridge(n):
        bridge = swift.start(f"bridge{n}", "switchboard-bridge", *bridge_args)
        harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200, 15,
                           "the bridge to answer OPTIONS", bridge.tail)
        assert bridge.running(), bridge.tail()
        return bridge

    def start_accounting(n):
        return swift.start(f"accounting{n}", "switchboard-worker", "accounting", "--db", cdr_db, "--events", events,
                           "--replay", replay, "--idle-check-interval", "1", "--log-level", "debug")

    swift.run("switchboard-worker", "routes", "add", "--db", routes, "--prefix", "", "--target", "sip:gw.example.com")
    bridge = start_bridge(1)
    router = swift.start("router", "switchboard-worker", "router", "--db", routes, "--bridge", decisions)
    harness.wait_until(lambda: "joined bridge" in router.log.read_text(), 10, "the router to join", router.tail)
    accounting = start_accounting(1)
    time.sleep(1)

    sipp_dir = tmp_path / "sipp"
    sipp_dir.mkdir()
    messages = sipp_dir / "uac.messages"
    calls = RATE * SECONDS
    sipp = start_uac_load(sipp_dir, sip_port, RATE, calls, messages)
    try:
        time.sleep(2.5)
        # The accounting worker dies without a chance to flush anything.
        os.killpg(accounting.proc.pid, signal.SIGKILL)
        accounting.proc.wait(5)
        time.sleep(1.0)
        accounting = start_accounting(2)
        time.sleep(1.5)
        # The bridge stops cleanly and comes back on the same journal and ports; sipp retransmits meanwhile.
        bridge.stop()
        bridge = start_bridge(2)
        sipp.wait(60)
    finally:
        sipp.stop()

    answered = answered_call_ids(messages)
    assert len(answered) >= calls * 0.9, f"sipp got answers for only {len(answered)} of {calls} calls\n{sipp.tail()}"

    def settled():
        rows = cdrs(swift, cdr_db)
        return {row.get("sip_call_id") for row in rows} >= answered

    harness.wait_until(settled, 20, "a CDR for every answered call",
                       lambda: accounting.tail() + f"\nmissing: {len(answered - {r.get('sip_call_id') for r in cdrs(swift, cdr_db)})}")
    time.sleep(2)  # anything still arriving would be a double or an extra
    rows = cdrs(swift, cdr_db)
    by_call = Counter((row["bridge_id"], row["call_id"]) for row in rows)
    assert all(n == 1 for n in by_call.values())
    sip_ids = Counter(row.get("sip_call_id") for row in rows)
    doubled = {k: n for k, n in sip_ids.items() if n > 1}
    assert not doubled, f"SIP calls with more than one CDR: {doubled}"
    extra = set(sip_ids) - answered
    assert not extra, f"CDRs for calls sipp never saw answered: {sorted(map(str, extra))[:10]}"
    assert set(sip_ids) == answered
    assert all(row["outcome"] in ("routed", "rejected") for row in rows)
    routed = [row for row in rows if row["outcome"] == "routed"]
    assert routed and all(row["sip_status"] == 302 and "gw.example.com" in row["route"] for row in routed)
    assert all(row["caller"] == "bench" and row["callee"] == "12025550100" for row in rows if row.get("sip_call_id"))
    log = Path(accounting.log).read_text()
    assert "events lost" not in log, accounting.tail()
    # The restarted worker resumed from its stored cursor, not from scratch.
    starting = next(line for line in log.splitlines() if "accounting starting" in line)
    assert re.search(r"bus\.resume_after=\d+", starting), starting
    outcomes = Counter(row["outcome"] for row in rows)
    print(f"{calls} calls, {len(answered)} answered, {len(rows)} CDRs {dict(outcomes)}")
    router.stop()
