"""Child processes with their output in a log file, each in its own session (stopping one
stops what it started, and nothing else), all stopped when the Python process exits; waiting
for a condition; CPU and memory of processes from /proc."""
import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

RUNNING = []    # every Process not stopped yet, stopped at exit


class Failed(AssertionError):
    """Something a helper started or waited for did not come up. An AssertionError, so a test
    fails with the message; the bench scripts print it (bench.run)."""


def tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"<{path} missing>"
    return f"--- {path} (last {lines} lines) ---\n" + "\n".join(text[-lines:])


def wait_until(predicate, timeout, what, diagnostics=lambda: "", process=None):
    """Polls `predicate` until it holds; raises Failed after `timeout` s, or as soon as
    `process` (a Process it waits on) has exited, with `diagnostics()` in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.running():
            raise Failed(f"{process.name} exited while waiting for {what}\n{diagnostics()}")
        if predicate():
            return
        time.sleep(0.1)
    raise Failed(f"timed out after {timeout}s waiting for {what}\n{diagnostics()}")


class Process:
    """A child process with stdout+stderr in <workdir>/<name>.log; stop() is SIGTERM then
    SIGKILL of its whole process group."""

    def __init__(self, name, argv, workdir, env=None):
        self.name, self.argv = name, [str(a) for a in argv]
        self.log = Path(workdir) / f"{name}.log"
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        RUNNING.append(self)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{self.name} still running after {timeout}s\n{self.tail()}")

    def wait_or_kill(self, timeout):
        """Its exit code once it ends, or SIGKILL (no grace: a load run that overran) after
        `timeout` s; either way it is stopped afterwards."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.stop()

    def stop(self, grace=5):
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._logf.close()
        if self in RUNNING:
            RUNNING.remove(self)
        return self.proc.returncode

    def tail(self, lines=60):
        return f"$ {' '.join(self.argv)}\n" + tail(self.log, lines)


@atexit.register
def stop_all():
    """Stops every Process still running, the last started first."""
    for proc in reversed(list(RUNNING)):
        proc.stop()


def _stat_fields(pid_dir):
    """The fields of /proc/<pid>/stat after the command name, or None if it is gone."""
    try:
        return (Path(pid_dir) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _group_members(leaders):
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            fields = _stat_fields(d)
            if fields is not None and int(fields[2]) in leaders:        # pgrp
                yield int(d.name), fields


def group_pids(leader):
    """Every process in the process group of `leader` (a Process's pid: its own session)."""
    return [pid for pid, _ in _group_members({leader})]


def cpu_seconds(leaders):
    """CPU time (user+system, s) of every process in the process groups of `leaders`."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / tick for _, f in _group_members(leaders))   # utime + stime


def thread_cpu(pid):
    """CPU seconds per thread name of a process (NIO loop, bus thread, journal writer, ...)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (t / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        f = raw.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(f[11]) + int(f[12])) / tick
    return out


def proc_status(pid):
    """VmRSS, VmHWM and RssAnon of a process, in kB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out
