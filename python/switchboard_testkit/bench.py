"""What the bench scripts (bench/*) share: how they run and fail, where the binaries are, the
bridge and the router worker as they start them, percentiles, the results file's header."""
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from . import LOCAL, REPO
from .net import free_port
from .procs import Failed, Process, wait_until
from .sip import sip_request
from .sipp import load_result, read_stats

BENCH = REPO / "bench"
NUMBER = "12025550100"          # the number the 302 benches dial; routed by prefix 1202
GATEWAY = f"{LOCAL}:5090"       # its redirect target (never contacted: the caller only ACKs the 302)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(main):
    """Runs a bench script's main(): Ctrl-C, SIGTERM and SIGHUP exit through sys.exit (so every
    process started is stopped, see procs.stop_all), and what a helper could not bring up ends
    the run with "bench: <why>" like the scripts' own checks."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        main()
    except Failed as e:
        sys.exit(f"bench: {e}")


def bindir():
    """Where the Swift binaries are: $SWITCHBOARD_BIN, else the release build of .build-bench."""
    return Path(os.environ.get("SWITCHBOARD_BIN", REPO / ".build-bench" / "release"))


def require_binaries(directory, *names):
    """The paths of these binaries in `directory`; exits with how to build one that is missing."""
    paths = [Path(directory) / name for name in names]
    for b in paths:
        if not os.access(b, os.X_OK):
            sys.exit(f"bench: {b} is missing: build it with\n  swift build -c release "
                     f"--scratch-path .build-bench --product {b.name}\nor set SWITCHBOARD_BIN")
    return paths


def sipp_binary():
    return shutil.which("sipp") or sys.exit("bench: sipp is not installed (apt-get install sip-tester)")


def raise_open_files():
    """Thousands of calls need as many sockets and files: lift the soft limit (sipp and the
    bridge inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def worker_cli(worker, cwd, *args):
    """Runs a switchboard-worker command (routes add, block add, ...); exits if it fails."""
    res = subprocess.run([str(worker), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if res.returncode != 0:
        sys.exit(f"bench: switchboard-worker {' '.join(map(str, args))} failed:\n{res.stdout}{res.stderr}")


def start_bridge(binary, port, args, workdir):
    """switchboard-bridge on 127.0.0.1:port with `args`, logging to <workdir>/bridge.log;
    returns (Process, argv) once it answers OPTIONS."""
    argv = [binary, "--sip-listen", f"{LOCAL}:{port}", *args]
    proc = Process("bridge", argv, workdir)
    wait_until(lambda: sip_request(port, timeout=0.3) == 200, 20,
               f"the bridge to answer OPTIONS on {port}", proc.tail, proc)
    return proc, argv


def start_302_router(worker, workdir, decisions, bridge_port):
    """The router worker with the 302 benches' dial plan (1202 -> sip:GATEWAY, 1900 blocked)
    joined to the bridge at `decisions`; returns (Process, argv) once the bridge routes a probe
    call with a 302 instead of its fallback."""
    routes = Path(workdir) / "routes.sqlite"
    worker_cli(worker, workdir, "routes", "add", "--db", routes, "--prefix", "1202", "--target", f"sip:{GATEWAY}",
               "--cost", "0.01")
    worker_cli(worker, workdir, "block", "add", "--db", routes, "--destination", "1900")
    argv = [worker, "router", "--db", routes, "--bridge", decisions, "--log-level", "warning"]
    proc = Process("worker", argv, workdir)
    wait_until(lambda: sip_request(bridge_port, "INVITE", user=NUMBER, timeout=2,
                                   headers="X-Switchboard-Auth-User: probe\r\n") == 302,
               20, "the router worker to join the bridge (302 for a probe call)", proc.tail, proc)
    return proc, argv


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def r3(v):
    return None if v is None else round(v, 3)


def fmt(v):
    """A number for a table cell; "-" for none."""
    return "-" if v is None else f"{v:g}"


def markdown_table(rows):
    """Rows of cells, the first the header, as the lines of a Markdown table (columns padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(row)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def sustained(rates, clean):
    """The highest rate whose step and every lower one were clean (`clean(rate)`), 0 if none, and
    how the report says it: "<rate> cps" or "none of [...]", plus higher rates clean all the same."""
    best = 0
    for rate in rates:
        if not clean(rate):
            break
        best = rate
    also = [rate for rate in rates if rate > best and clean(rate)]
    return best, (f"{best} cps" if best else f"none of {rates}") + (f" (also clean at {also})" if also else "")


def results_file(out, kind, now):
    """The results file: --out, else bench/results/<kind>-<date>-<time>.txt."""
    path = Path(out) if out else BENCH / "results" / f"{kind}-{now:%Y-%m-%d-%H%M%S}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_results(path, lines):
    """Writes the results file with the repository's own paths made relative, so a committed file
    names no folder of the machine it was measured on."""
    text = "\n".join(lines) + "\n"
    path.write_text(text.replace(str(REPO) + "/", ""))


def host_line():
    """The results file's line on the machine and the commit measured."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "none"
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "Sources"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        rev, dirty = "unknown", ""
    return (f"# host {platform.node()}  {os.cpu_count()} CPUs  {platform.platform()}  git {rev}"
            + (" (+ uncommitted changes under Sources/)" if dirty else ""))


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_302_load(sipp_bin, scenario, port, rate, duration, step_dir, rtt=False, started=lambda: None, extra=()):
    """sipp placing `rate` calls/s for `duration` s with `scenario` (INVITE -> final answer ->
    ACK) to 127.0.0.1:port, in `step_dir`; `started()` runs once sipp is up. Returns
    sipp.load_result's dict plus the exit code and the command line. rtt: also sipp's
    -trace_rtt file of every call (<step_dir>/*_rtt.csv). extra: more sipp options."""
    calls = int(rate * duration)
    argv = [sipp_bin, "-sf", scenario, "-s", NUMBER, "-i", LOCAL, "-p", free_port(), f"{LOCAL}:{port}",
            "-r", rate, "-rp", 1000, "-m", calls, "-l", max(1000, rate * 10),
            "-recv_timeout", 5000, "-max_retrans", 3, "-buff_size", 8 * 1024 * 1024,
            "-timeout", f"{duration + 30}s", "-nostdin", "-nd",
            *(["-trace_rtt", "-rtt_freq", 1] if rtt else []), "-trace_stat", "-fd", 1, "-trace_err",
            "-stf", step_dir / "stat.csv", "-error_file", step_dir / "errors.log", *extra]
    proc = Process("sipp", argv, step_dir)
    started()
    code = proc.wait_or_kill(duration + 45)
    return {**load_result(read_stats(step_dir / "stat.csv"), calls), "sipp_exit": code, "sipp": " ".join(proc.argv)}
