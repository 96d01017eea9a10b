"""Helpers for the Switchboard integration tests: free ports, a real Kamailio
running the shipped openser-cfg/kamailio.cfg, sipp scenarios, our Swift
binaries. Every process started here is stopped by its owner's stop()."""
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CFG_DIR = REPO / "openser-cfg"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BIN_DIR = Path(os.environ.get("SWITCHBOARD_BIN", REPO / ".build" / "debug"))
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
DOMAIN = "switchboard.local"
LOCAL = "127.0.0.1"


def free_port(udp_and_tcp=True):
    """A port that is free on 127.0.0.1 for UDP (and TCP)."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        socks = []
        try:
            kinds = [socket.SOCK_DGRAM] + ([socket.SOCK_STREAM] if udp_and_tcp else [])
            for kind in kinds:
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind((LOCAL, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port")


def free_ports(count):
    """`count` distinct ports, each free on 127.0.0.1 for UDP and TCP (ZeroMQ and HTTP need TCP)."""
    ports = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def udp_port_in_use(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOCAL, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"<{path} missing>"
    return f"--- {path} (last {lines} lines) ---\n" + "\n".join(text[-lines:])


def sip_request(port, method="OPTIONS", uri=None, timeout=1.0, headers=""):
    """Send one SIP request over UDP; return the first final response status
    (int) or None. Provisional responses are skipped."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOCAL, 0))
        lport = s.getsockname()[1]
        uri = uri or f"sip:{LOCAL}:{port}"
        msg = (f"{method} {uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {LOCAL}:{lport};rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
               f"From: <sip:probe@{LOCAL}>;tag={uuid.uuid4().hex[:8]}\r\n"
               f"To: <{uri}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 {method}\r\n"
               f"Max-Forwards: 70\r\n{headers}Content-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), (LOCAL, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65535).decode(errors="replace")
            except (socket.timeout, ConnectionRefusedError):
                return None
            status = int(data.split(" ", 2)[1])
            if status >= 200:
                return status
        return None
    finally:
        s.close()


def wait_until(predicate, timeout, what, diagnostics=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{diagnostics()}")


class Process:
    """A child process with stdout+stderr in a log file; stop() is SIGTERM then
    SIGKILL of its whole process group."""

    def __init__(self, name, argv, workdir, env=None):
        self.name, self.argv = name, [str(a) for a in argv]
        self.log = Path(workdir) / f"{name}.log"
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir,
                                     env={**os.environ, **(env or {})}, start_new_session=True)

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout}s\n{self.tail()}")

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
        return self.proc.returncode

    def tail(self, lines=60):
        return f"$ {' '.join(self.argv)}\n" + tail(self.log, lines)


class Kamailio:
    """Kamailio running openser-cfg/kamailio.cfg (the shipped file, configured
    with -A defines) in the foreground, in its own temp dir."""

    def __init__(self, workdir, subscribers=None, bridge_ports=(), trusted=(),
                 defines=None):
        self.dir = Path(workdir) / "kamailio"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.db = self.dir / "switchboard.db"
        args = [str(CFG_DIR / "make-db.sh"), str(self.db)]
        for t in trusted:
            args += ["--trusted", t]
        for user, password in (subscribers or {}).items():
            args += [user, password]
        subprocess.run(args, check=True, env={**os.environ, "SIP_DOMAIN": DOMAIN})
        self.dispatcher_list = self.dir / "dispatcher.list"
        self.dispatcher_list.write_text(
            "# setid destination flags priority attrs\n"
            + "".join(f"1 sip:{LOCAL}:{p} 0 {len(bridge_ports) - i} duid=bridge-{i}\n"
                      for i, p in enumerate(bridge_ports)))
        self.defines = {
            "LISTEN_IP": LOCAL, "LISTEN_PORT": str(self.port),
            "SIP_DOMAIN": f'"{DOMAIN}"', "DB_URL": f'"sqlite:///{self.db}"',
            "DISPATCHER_LIST": f'"{self.dispatcher_list}"',
            "CTL_SOCKET": f'"unix:{self.dir}/kamailio_ctl"',
            "DS_PING_INTERVAL": "60", "BRIDGE_TIMEOUT_MS": "1500", "LOG_LEVEL": "2",
            **(defines or {})}
        self.proc = None

    def argv(self, *extra):
        argv = [KAMAILIO, "-f", CFG_DIR / "kamailio.cfg", *extra]
        for k, v in self.defines.items():
            argv += ["-A", f"{k}={v}"]
        return [str(a) for a in argv]

    def check_config(self):
        return subprocess.run(self.argv("-c"), capture_output=True, text=True)

    def start(self, timeout=10):
        self.proc = Process("kamailio", self.argv("-DD", "-E", "-Y", self.dir, "-w", self.dir,
                                                  "-m", "64", "-M", "8"), self.dir)
        wait_until(lambda: not self.proc.running() or sip_request(self.port, timeout=0.3) == 200,
                   timeout, f"Kamailio to answer OPTIONS on {self.port}", self.tail)
        assert self.proc.running(), f"Kamailio exited\n{self.tail()}"
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def tail(self, lines=80):
        return self.proc.tail(lines) if self.proc else "<kamailio not started>"


class Sipp:
    """sipp runs: run() in the foreground with a timeout, start() in the background
    (a UAS); results carry the exit code (0 = every call succeeded) and logs."""

    def __init__(self, workdir):
        self.dir = Path(workdir) / "sipp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.running = []

    def _scenario(self, name, status=None):
        path = SCENARIOS / name
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
        wait_until(lambda: not proc.running() or udp_port_in_use(port), 5,
                   f"sipp {name} to bind {port}", proc.tail)
        assert proc.running(), f"sipp {name} exited at start\n{proc.tail()}"
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


def header_values(message, name):
    name = name.lower() + ":"
    return [line.split(":", 1)[1].strip() for line in message.splitlines()
            if line.lower().startswith(name)]


class Swift:
    """Starts our Swift binaries from SWITCHBOARD_BIN (default <repo>/.build/debug)."""

    def __init__(self, workdir):
        self.dir = Path(workdir) / "swift"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs = []

    def binary(self, name):
        path = BIN_DIR / name
        assert path.exists(), f"{path} not built (set SWITCHBOARD_BIN or run swift build)"
        return path

    def run(self, name, *args, timeout=30):
        """Run a CLI command to completion; fails with its output if exit code != 0."""
        res = subprocess.run([str(self.binary(name)), *map(str, args)], capture_output=True,
                             text=True, timeout=timeout, cwd=self.dir)
        assert res.returncode == 0, (f"{name} {' '.join(map(str, args))} -> {res.returncode}\n"
                                     f"{res.stdout}\n{res.stderr}")
        return res.stdout

    def start(self, label, name, *args):
        args = [str(a) for a in args]
        if name == "switchboard-bridge" and "--bus-commands" not in args:
            # Tests choose every port: several bridges may run at once.
            args += ["--bus-commands", f"tcp://{LOCAL}:{free_port()}"]
        proc = Process(label, [self.binary(name), *args], self.dir)
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            proc.stop()

    def tails(self):
        return "\n".join(p.tail() for p in self.procs)
