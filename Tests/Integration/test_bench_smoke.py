"""Every benchmark (bench/) run once with the smallest load that still takes it through its whole path, so the
scripts keep working between the runs by hand: each exits 0 and its results file (--out, never bench/results/)
has a row for each system it compares, with numbers. Nothing here depends on speed: the checks are that calls
were made and, where a script counts them, that nothing was lost (events, calls left in the bridge, legs
without a BYE), which holds on any machine at these rates."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import harness

BENCH = harness.REPO / "bench"
TIMEOUT = 150       # s for one script; the whole file takes about 2.5 minutes on 2 busy cores


@pytest.fixture
def scratch():
    """The scripts' TMPDIR (sipp files, process logs), short because Kamailio's ctl socket is made under it and
    a Unix socket path holds 107 bytes at most (pytest's tmp_path is too long for that)."""
    path = Path(tempfile.mkdtemp(prefix="sb-smoke-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_bench(scratch, argv, timeout=TIMEOUT):
    """Runs a benchmark with the suite's binaries; returns (exit code, stdout, stderr). One that overruns gets
    SIGTERM (the scripts stop what they started on it), then SIGKILL, and fails the test."""
    env = {**os.environ, "SWITCHBOARD_BIN": str(harness.BIN_DIR), "TMPDIR": str(scratch)}
    proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=scratch, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"{Path(argv[0]).name} still running after {timeout} s\n" + report(scratch, out, err))
    return proc.returncode, out, err


def report(scratch, out, err):
    """What a failing test shows: the script's output and the end of every log it left."""
    logs = "\n".join(harness.tail(p, 25) for p in sorted(scratch.rglob("*.log"))[:12])
    return f"--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-6000:]}\n{logs}"


def run_ok(scratch, script, *args):
    code, out, err = run_bench(scratch, [BENCH / script, *args])
    assert code == 0, f"bench/{script} exited {code}\n" + report(scratch, out, err)
    return out, err


def table(path, first_column):
    """The rows of the results file's tab-separated tables whose header starts with `first_column`, as dicts
    (a file may hold several such tables, each under its own header)."""
    rows, header = [], None
    for line in Path(path).read_text().splitlines():
        fields = line.split("\t")
        if line.startswith("#") or len(fields) < 2:
            header = None
        elif fields[0] == first_column:
            header = fields
        elif header and len(fields) == len(header):
            rows.append(dict(zip(header, fields)))
    return rows


def number(row, key):
    """The row's value under `key` as a number; fails naming the row when it is not one."""
    try:
        return float(row[key])
    except (KeyError, ValueError):
        pytest.fail(f"no number under {key!r} in {row}")


def numbers(row, *keys):
    return [number(row, k) for k in keys]


# ---------------------------------------------------------------- the SIP load benches

def test_redirect_throughput_runs_both_systems(scratch, tmp_path):
    out = tmp_path / "redirect.txt"
    run_ok(scratch, "redirect-throughput", "--rates", "200", "--duration", "2", "--out", out)
    rows = {r["system"]: r for r in table(out, "system")}
    assert {"bridge+worker", "kamailio native"} <= set(rows), rows
    for row in rows.values():
        attempted, ok, _, achieved, _ = numbers(row, "attempted", "ok", "failed", "achieved_cps", "elapsed_s")
        assert row["rate"] == "200" and attempted > 0 and ok > 0 and achieved > 0, row
        assert row["alive"] == "True", row
    number(rows["bridge+worker"], "fallbacks")      # read from the bridge's /metrics before and after the step


def test_bridged_calls_runs_both_paths_and_the_memory_part(scratch, tmp_path):
    out = tmp_path / "bridged.txt"
    run_ok(scratch, "bridged-calls", "--rates", "20", "--duration", "1", "--warmup-calls", "10", "--probe-rate", "4",
           "--concurrent", "20", "--concurrent-rate", "20", "--hold", "1", "--drain-timeout", "30", "--out", out)
    rows = {r["path"]: r for r in table(out, "path")}
    assert set(rows) == {"bridged", "direct"}, rows
    for row in rows.values():
        attempted, ok, uas_ok, _ = numbers(row, "attempted", "ok", "uas_ok", "achieved_cps")
        assert attempted > 0 and ok > 0 and uas_ok > 0, row
    # Every bridged call ended in the bridge once the load stopped.
    assert number(rows["bridged"], "offered") > 0 and number(rows["bridged"], "left_active") == 0, rows["bridged"]
    [memory] = table(out, "calls")
    assert number(memory, "ok") > 0 and number(memory, "max_active") > 0, memory
    assert number(memory, "left_active") == 0, memory
    numbers(memory, "rss_idle_mb", "rss_at_n_mb", "rss_after_mb", "per_call_kb")


def test_bus_throughput_loses_no_event_and_decides(scratch, tmp_path):
    out = tmp_path / "bus.txt"
    run_ok(scratch, "bus-throughput", "--subscribers", "2", "--rates", "200", "--decision-rates", "200",
           "--duration", "2", "--out", out)
    rows = table(out, "part")
    events = [r for r in rows if r["part"] == "events"]
    decisions = [r for r in rows if r["part"] == "decisions"]
    assert len(events) == 1 and len(decisions) == 1, rows
    [ev], [dec] = events, decisions
    assert number(ev, "ok") > 0 and number(ev, "expected_events") > 0, ev
    numbers(ev, "achieved_cps", "journaled_per_s", "pub_per_s_min", "bridge_cpu_pct")
    # 800 events at most per step, under the PUB's high-water mark: every one journaled, published and received.
    expected = number(ev, "expected_events")
    assert number(ev, "journaled") == expected and number(ev, "published_metric") == expected, ev
    assert number(ev, "recv_min") == expected and number(ev, "recv_max") == expected, ev
    assert numbers(ev, "missed_max", "dup", "out_of_order", "unparsed", "not_published_log") == [0] * 5, ev
    assert number(dec, "ok") > 0 and number(dec, "decisions") > 0, dec
    numbers(dec, "achieved_cps", "decisions_per_s", "fallbacks")



def test_events_throughput_quick_run_loses_no_event(scratch, tmp_path):
    out = tmp_path / "events.txt"
    run_ok(scratch, "events-throughput", "--quick", "--out", out)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    assert [r["rate"] for r in rows] == [0, 20000], rows        # closed loop, then 20,000/s offered
    # 20,000 events, under the PUB's high-water mark whatever the speed: each subscriber got every one, and the
    # journal holds them all.
    for r in rows:
        assert r["passed"] and r["lost"] == 0 and r["journaled"] == r["events"] == 20000, r
        assert r["events_per_s"] > 0 and len(r["subscriber_events_per_s"]) == r["subscribers"], r

def test_gateway_originate_places_and_ends_every_call(scratch, tmp_path):
    out = tmp_path / "gateway.txt"
    run_ok(scratch, "gateway-originate", "--clients", "2", "--duration", "2", "--hold", "0.2",
           "--ring-calls", "5", "--ring-rate", "5", "--drain-timeout", "30", "--out", out)
    rows = {r["target"]: r for r in (json.loads(line) for line in out.read_text().splitlines() if line.startswith("{"))}
    assert set(rows) == {"health", "originate", "ringing"}, rows
    health, originate, ringing = rows["health"], rows["originate"], rows["ringing"]
    assert health["ok"] > 0 and health["p50_ms"] is not None, health
    placed = originate["ok"]
    assert placed > 0 and originate["p99_ms"] is not None, originate
    # Each 201 was a call really placed, answered and hung up, and none is left in the bridge or the gateway.
    assert originate["gateway_originates"].get("accepted") == placed, originate
    assert originate["bridge"]["ended"] == placed, originate
    assert originate["phone_a"]["invites"] == placed and originate["phone_b"]["byes_sent"] == placed, originate
    assert originate["left_active_bridge_gateway_waited_s"][:2] == [0, 0], originate
    assert ringing["timed"] == 5 and ringing["errors"] == {} and ringing["ring_p50_ms"] is not None, ringing


def test_exec_handoff_runs_both_handoffs_and_times_one_exec(scratch, tmp_path):
    out = tmp_path / "exec.txt"
    run_ok(scratch, "exec-handoff", "--rates", "10", "--duration", "2", "--exec-runs", "10", "--out", out)
    rows = {r["system"].split()[0]: r for r in table(out, "system")}
    assert set(rows) == {"zeromq", "exec"}, rows
    for row in rows.values():
        attempted, ok, _ = numbers(row, "attempted", "ok", "achieved_cps")
        assert attempted > 0 and ok > 0, row
    # hyperfine timed /bin/true, exec's start-up and a whole decide (which the script saw bring the route back).
    text = out.read_text()
    assert len(re.findall(r"Time \(mean ± σ\): +[\d.]+ ms", text)) == 3, text


def test_interop_mix_drops_no_call(scratch, tmp_path):
    out = tmp_path / "interop.txt"
    # Seed 1 gives these 5 calls every action at least once; exit 0 means no call dropped, failed or left.
    stdout, _ = run_ok(scratch, "interop-mix", "--calls", "5", "--rate", "5", "--duration", "2", "--max-actions", "5",
                       "--seed", "1", "--drain-timeout", "30", "--out", out)
    text = out.read_text()
    assert "calls set up: 5; failed to set up: 0" in text and "calls dropped by the bridge: 0" in text, text
    for action in ("hold", "info", "update", "refresh", "transfer", "hangup"):
        done = re.search(rf"^  {action} +(\d+) / (\d+)", text, re.M)
        assert done and int(done.group(1)) > 0 and done.group(2) == "0", (action, text)
    assert re.search(r"^legs not ended with BYE: 0 of [1-9]", text, re.M), text
    assert re.search(r"events received [1-9]\d*, missed \(seq gaps\) 0", text), text


# ---------------------------------------------------------------- the SIP core micro-benchmarks

def test_sip_core_times_and_counts_a_case(scratch, tmp_path):
    """switchboard-bench's timing table and valgrind's instruction and allocation counts, for one cheap case beside
    the reference (the suite's debug build is ~60x slower than release: every case would take minutes)."""
    out = tmp_path / "sip-core.txt"
    run_ok(scratch, "sip-core", "--scale", "1", "--filter", "callID", "--iterations", "20", "--out", out)
    text = out.read_text()
    timed = [m.group(1).strip() for m in re.finditer(r"^(.+?) +\d+ +\d+ +[\d.]+$", text, re.M)]
    assert len(timed) == 2 and timed[0].startswith("reference") and timed[1] == "callID", text
    counted = {m.group(1): (m.group(2), m.group(3))
               for m in re.finditer(r"^\| (\S.*?) +\| ([\d,]+) +\| (-?[\d.]+) +\|$", text, re.M)}
    assert set(counted) == set(timed), text
    assert all(int(instructions.replace(",", "")) > 0 for instructions, _ in counted.values()), text


def test_switchboard_bench_runs_every_case(scratch):
    """Every case the way bench/sip-core counts it (a few calls, untimed), so a case that no longer runs shows
    here although the sip-core test times and counts only one."""
    binary = harness.BIN_DIR / "switchboard-bench"
    assert binary.exists(), f"{binary} not built (swift build builds every product)"
    code, listed, err = run_bench(scratch, [binary, "--list"], timeout=30)
    assert code == 0, err
    names = listed.splitlines()
    assert len(names) >= 5 and names[0].startswith("reference") and "callID" in names, names
    for name in names:
        code, _, err = run_bench(scratch, [binary, "--count", "3", name], timeout=30)
        assert code == 0, (name, err)
