"""Kamailio running the shipped openser-cfg/kamailio.cfg, configured with -A defines, in the
foreground, in its own folder: its SQLite database (make-db.sh: subscribers, trusted
addresses), its dispatcher list (the bridges) and its ctl socket."""
import os
import shutil
import subprocess
from pathlib import Path

from . import DOMAIN, LOCAL, REPO
from .net import free_port
from .procs import Failed, Process, wait_until
from .sip import sip_request

CFG_DIR = REPO / "openser-cfg"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"


class Kamailio:
    """subscribers: {user: password}; bridge_ports: the bridges of dispatcher set 1, the first
    preferred; trusted: "ip[:port]" gateways; trunks: "ip[:port]" hosts the bridges' legs may
    go to besides local users; defines: more -A defines (over the listen address, domain and
    files set here; the cfg's defaults for the rest)."""

    def __init__(self, workdir, subscribers=None, bridge_ports=(), trusted=(), trunks=(), defines=None):
        self.dir = Path(workdir) / "kamailio"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.db = self.dir / "switchboard.db"
        args = [str(CFG_DIR / "make-db.sh"), str(self.db)]
        for t in trusted:
            args += ["--trusted", t]
        for t in trunks:
            args += ["--trunk", t]
        for user, password in (subscribers or {}).items():
            args += [user, password]
        res = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "SIP_DOMAIN": DOMAIN})
        if res.returncode != 0:
            raise Failed(f"make-db.sh failed:\n{res.stdout}{res.stderr}")
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
            **(defines or {})}
        self.proc = None

    def argv(self, *extra):
        argv = [KAMAILIO, "-f", CFG_DIR / "kamailio.cfg", *extra]
        for k, v in self.defines.items():
            argv += ["-A", f"{k}={v}"]
        return [str(a) for a in argv]

    def check_config(self):
        return subprocess.run(self.argv("-c"), capture_output=True, text=True)

    def start(self, timeout=10, shm_mb=64, pkg_mb=8):
        """Starts it (shared and per-process memory in MB) and returns once it answers OPTIONS."""
        self.proc = Process("kamailio", self.argv("-DD", "-E", "-Y", self.dir, "-w", self.dir,
                                                  "-m", shm_mb, "-M", pkg_mb), self.dir)
        wait_until(lambda: sip_request(self.port, timeout=0.3) == 200, timeout,
                   f"Kamailio to answer OPTIONS on {self.port}", self.tail, self.proc)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def tail(self, lines=80):
        return self.proc.tail(lines) if self.proc else "<kamailio not started>"
