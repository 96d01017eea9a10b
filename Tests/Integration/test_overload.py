"""Admission control: offered three times what its only worker can decide, the bridge sheds the excess
with a quick 503 + Retry-After, keeps the worker busy with the calls it admits, leaves no INVITE without
a final answer, and admits every call again once the load is gone."""
import json
import time
from pathlib import Path

from switchboard_testkit import REPO
from switchboard_testkit.metrics import metric

import harness
from harness import LOCAL

CAPACITY, DELAY_MS = 4, 100               # the worker decides 40 calls/s at most
RATE, SECONDS = 120, 6
RETRY_AFTER = "7"                          # the shed 503's, told from the fallback's 30
SCENARIO = REPO / "bench" / "scenarios" / "uac_invite_302_or_503.xml"


def finals(messages):
    """Call-ID -> (status, Retry-After) of each final response sipp received (the first per call)."""
    text = Path(messages).read_text(errors="replace") if Path(messages).exists() else ""
    out = {}
    for block in text.split("----------------------------------------------- ")[1:]:
        head, _, body = block.partition("\n\n")
        body = body.strip()
        if "message received" not in head or not body.startswith("SIP/2.0 "):
            continue
        status = int(body.split(" ", 2)[1])
        if status >= 200:
            for call_id in harness.header_values(body, "Call-ID"):
                out.setdefault(call_id, (status, (harness.header_values(body, "Retry-After") or [None])[0]))
    return out


def test_excess_calls_are_shed_with_503_and_the_rest_are_served(tmp_path, swift):
    sip_port, metrics_port = harness.free_ports(2)
    decisions = f"tcp://{LOCAL}:{harness.free_port()}"
    metrics = f"http://{LOCAL}:{metrics_port}/metrics"
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--bus-events", f"tcp://{LOCAL}:{harness.free_port()}", "--bus-decisions", decisions,
                         "--journal", tmp_path / "journal.sqlite", "--decision-timeout-ms", "1000",
                         "--overload-retry-after", RETRY_AFTER, "--metrics-listen", f"{LOCAL}:{metrics_port}")
    harness.wait_until(lambda: harness.sip_request(sip_port) == 200, 15, "the bridge", bridge.tail)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"12025550100": {"action": "redirect", "targets": [{"uri": "sip:12025550100@gw.example.com"}]}}))
    worker = harness.Process("worker", ["/usr/bin/python3", Path(__file__).parent / "bridge_worker.py", decisions, plan,
                                        CAPACITY, DELAY_MS], tmp_path)
    try:
        harness.wait_until(lambda: "ready" in worker.tail() or not worker.running(), 10, "the worker to join", worker.tail)
        messages = tmp_path / "uac.messages"
        calls = RATE * SECONDS
        sipp = harness.Process("sipp-uac", [
            harness.SIPP, "-sf", SCENARIO, "-s", "12025550100", "-i", LOCAL, "-p", harness.free_port(),
            "-r", RATE, "-m", calls, "-nostdin", "-timeout", "40s", "-recv_timeout", "8000",
            "-trace_msg", "-message_file", messages, f"{LOCAL}:{sip_port}"], tmp_path)
        try:
            sipp.wait(60)
        finally:
            sipp.stop()

        answers = finals(messages)
        redirected = sum(1 for status, _ in answers.values() if status == 302)
        shed = [retry for status, retry in answers.values() if status == 503 and retry == RETRY_AFTER]
        fell_back = int(metric(metrics, "switchboard_decision_fallbacks_total"))
        print(f"\n{calls} offered at {RATE}/s to a worker serving {CAPACITY * 1000 // DELAY_MS}/s: "
              f"{redirected} got 302, {len(shed)} shed with 503, {fell_back} fallbacks, "
              f"{calls - len(answers)} without a final answer")
        assert len(answers) == calls, f"{calls - len(answers)} INVITEs got no final answer\n{bridge.tail()}"
        assert int(metric(metrics, "switchboard_overload_shed_total")) == len(shed) > 0
        # The worker was kept busy: at least half of what it can decide in the run was admitted and redirected.
        assert redirected >= CAPACITY * 1000 // DELAY_MS * SECONDS // 2, f"{redirected} redirected"
        # The excess is refused at the door, not offered to a full pool and answered by the fallback.
        assert fell_back < len(shed) / 2, f"{fell_back} fallbacks against {len(shed)} shed"
        assert "overload: new calls beyond the admitted rate get 503" in bridge.log.read_text()
        # The 503s were stateless, their ACKs absorbed by the shed To tag rather than counted as strays.
        assert metric(metrics, "switchboard_sip_dropped_total") == 0

        # The load is gone: the next call is admitted and decided.
        time.sleep(1)
        assert harness.sip_request(sip_port, "INVITE", user="12025550100", timeout=3) == 302
        harness.wait_until(lambda: metric(metrics, "switchboard_overload_active") == 0, 5, "the overload to end", bridge.tail)
    finally:
        worker.stop()
