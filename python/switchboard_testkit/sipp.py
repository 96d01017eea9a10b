"""sipp: scenario runs with message traces (the tests' UACs and UASes), and the statistics
file (-trace_stat) a bench's load run leaves."""
import csv
import shutil
import time
from pathlib import Path

from . import LOCAL
from .net import free_port, udp_port_in_use
from .procs import Process, tail, wait_until

SIPP = shutil.which("sipp") or "/usr/bin/sipp"


class Sipp:
    """sipp runs of the scenarios in `scenarios` (a folder): run() in the foreground with a
    timeout, start() in the background (a UAS); results carry the exit code (0 = every call
    succeeded) and logs."""

    def __init__(self, workdir, scenarios):
        self.dir = Path(workdir) / "sipp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.scenarios = Path(scenarios)
        self.running = []

    def _scenario(self, name, status=None):
        path = self.scenarios / name
        if status is None:
            return path
        rendered = self.dir / f"{path.stem}_{status}.xml"
        rendered.write_text(path.read_text().replace("@STATUS@", str(status)))
        return rendered

    def _argv(self, name, scenario, remote, port, keys, extra, calls, timeout):
        argv = [SIPP, "-sf", scenario, "-i", LOCAL, "-p", port, "-mp", free_port(False),
                "-m", calls, "-nostdin", "-timeout", f"{timeout}s", "-timeout_error",
                "-trace_msg", "-message_file", self.dir / f"{name}.messages",
                "-trace_err", "-error_file", self.dir / f"{name}.errors"]
        if remote:
            argv.append(f"{LOCAL}:{remote}")
        for k, v in (keys or {}).items():
            argv += ["-key", k, v]
        return [str(a) for a in argv + list(extra)]

    def run(self, name, scenario, remote, keys=None, extra=(), status=None, calls=1,
            timeout=20):
        """Run a UAC to completion; returns a SippResult."""
        port = free_port()
        argv = self._argv(name, self._scenario(scenario, status), remote, port, keys, extra,
                          calls, timeout)
        proc = Process(f"sipp-{name}", argv, self.dir)
        started = time.monotonic()
        try:
            code = proc.wait(timeout + 10)
        finally:
            proc.stop()
        return SippResult(name, code, time.monotonic() - started, proc, self.dir)

    def start(self, name, scenario, keys=None, extra=(), calls=1, timeout=30, port=None):
        """Start a UAS in the background (on a free port unless given); returns
        (port, SippBackground)."""
        port = port or free_port()
        argv = self._argv(name, self._scenario(scenario), None, port, keys, ["-aa", *extra],
                          calls, timeout)
        proc = Process(f"sipp-{name}", argv, self.dir)
        self.running.append(proc)
        wait_until(lambda: udp_port_in_use(port), 5, f"sipp {name} to bind {port}", proc.tail, proc)
        return port, SippBackground(name, proc, self.dir)

    def stop(self):
        for proc in self.running:
            proc.stop()


class SippResult:
    def __init__(self, name, code, elapsed, proc, d):
        self.name, self.code, self.elapsed, self.proc = name, code, elapsed, proc
        self.messages = Path(d) / f"{name}.messages"
        self.errors = Path(d) / f"{name}.errors"

    def report(self):
        return "\n".join([f"sipp {self.name}: exit {self.code} after {self.elapsed:.1f}s",
                          tail(self.errors, 30), tail(self.messages, 80)])


class SippBackground(SippResult):
    def __init__(self, name, proc, d):
        super().__init__(name, None, 0.0, proc, d)

    def finish(self, timeout=15):
        """Wait for the UAS to finish its calls; returns its exit code."""
        self.code = self.proc.wait(timeout)
        return self.code

    def received(self, method):
        """Text of the SIP requests with this method that the UAS received."""
        text = self.messages.read_text(errors="replace") if self.messages.exists() else ""
        out = []
        for block in text.split("----------------------------------------------- ")[1:]:
            head, _, body = block.partition("\n\n")
            if "message received" in head and body.startswith(method + " "):
                out.append(body.strip())
        return out


def read_stats(path):
    """The last row of a sipp -trace_stat file as a dict ({} if none yet)."""
    try:
        rows = list(csv.reader(open(path), delimiter=";"))
    except OSError:
        return {}
    return dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}


def stat_num(stats, key):
    try:
        return int(float(stats.get(key, "0") or 0))
    except ValueError:
        return 0


def stat_epoch(stats, key):       # "2026-11-26\t20:43:07.767765\t1795725787.767765"
    try:
        return float(stats.get(key, "0\t0\t0").split("\t")[-1] or 0)
    except ValueError:
        return 0.0


def load_result(stats, calls):
    """What a load run of `calls` calls did, from its statistics: failed = attempted -
    successful (a call never completed counts as failed), achieved cps = successful / sipp's
    elapsed time."""
    elapsed = max(1e-3, stat_epoch(stats, "CurrentTime") - stat_epoch(stats, "StartTime"))
    ok = stat_num(stats, "SuccessfulCall(C)")
    return {"attempted": calls, "created": stat_num(stats, "TotalCallCreated"), "ok": ok,
            "failed": max(calls - ok, stat_num(stats, "FailedCall(C)")),
            "sipp_failed": stat_num(stats, "FailedCall(C)"),
            "unexpected": stat_num(stats, "FailedUnexpectedMessage(C)"),
            "recv_timeouts": stat_num(stats, "FailedTimeoutOnRecv(C)"),
            "max_udp_retrans": stat_num(stats, "FailedMaxUDPRetrans(C)"),
            "retransmissions": stat_num(stats, "Retransmissions(C)"),
            "elapsed_s": round(elapsed, 3), "achieved_cps": round(ok / elapsed, 1)}
