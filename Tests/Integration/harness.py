"""The integration tests' harness: the shared test kit (python/switchboard_testkit, on sys.path
through conftest.py) under the names the tests use, the tests' Kamailio settings, and the
starter of our Swift binaries. Every process started here is stopped by its owner's stop()."""
import os
import subprocess
from pathlib import Path

from switchboard_testkit import DOMAIN, LOCAL, REPO
from switchboard_testkit import kamailio
from switchboard_testkit.net import free_port, free_ports, udp_port_in_use
from switchboard_testkit.procs import Process, tail, wait_until
from switchboard_testkit.rtpengine import DTMFLog, RTPEngine, RTPSink
from switchboard_testkit.sip import header_values, sip_request
from switchboard_testkit.sipp import SIPP, Sipp

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BIN_DIR = Path(os.environ.get("SWITCHBOARD_BIN", REPO / ".build" / "debug"))

__all__ = ["DOMAIN", "LOCAL", "REPO", "free_port", "free_ports", "udp_port_in_use", "Process", "tail",
           "wait_until", "header_values", "sip_request", "SIPP", "Sipp", "SCENARIOS", "BIN_DIR", "Kamailio",
           "Swift", "RTPEngine", "RTPSink", "DTMFLog"]


class Kamailio(kamailio.Kamailio):
    """The shipped cfg with the tests' timers (as they have always run): OPTIONS probes of the
    bridges every 60 s (the cfg: 10) and 1.5 s for a bridge's first response (the cfg: 3 s),
    so a dead bridge fails over quickly; LOG_LEVEL 2 logs every call."""

    def __init__(self, workdir, defines=None, **kwargs):
        super().__init__(workdir, defines={"DS_PING_INTERVAL": "60", "BRIDGE_TIMEOUT_MS": "1500",
                                           "LOG_LEVEL": "2", **(defines or {})}, **kwargs)


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
        for option in ("--bus-commands", "--bus-replay"):
            if name == "switchboard-bridge" and option not in args:
                # Tests choose every port: several bridges (and other test runs) may run at once.
                args += [option, f"tcp://{LOCAL}:{free_port()}"]
        if name == "switchboard-bridge" and "--policy-trunks" not in args:
            # The hosts the tests' workers route to are the tests' trunks (the destination policy
            # allows a worker target at the SIP domain and these hosts only).
            args += ["--policy-trunks", f"{LOCAL},gw.example.com,gw1.example.com,gw2.example.com"]
        proc = Process(label, [self.binary(name), *args], self.dir)
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            proc.stop()

    def tails(self):
        return "\n".join(p.tail() for p in self.procs)
