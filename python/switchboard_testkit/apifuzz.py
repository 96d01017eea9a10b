"""schemathesis against the web gateway's OpenAPI document, for scripts/schemathesis (the full budget)
and Tests/Integration/test_gateway_schemathesis.py (a small one in CI).

`Stack` starts, on loopback with fresh files: a bridge whose outbound proxy is a port nobody answers
(an originated call is placed, rings nowhere and ends), the accounting worker (so the CDR file
exists) and `switchboard-gateway serve`; then an admin API key and a page user, both owning every
number (`--number '*'`) with their rate and concurrency limits, and the source limit, out of the way.
`run_pass` runs `st run` with every check but use_after_free (see CONFIG) on the served document, one
request at a time (the login's hash pool answers a second concurrent login 503 `login-busy`,
documented but a 5xx), and reads its NDJSON report. `run` makes two passes, one per kind of
credentials: the API key on every operation, and the user's session (cookie + X-CSRF-Token) on
every operation but logout, which would end the session mid-run. Standard library only;
schemathesis itself is a command (pip package `schemathesis`, installed by scripts/install-deps)."""
import json
import shutil
import subprocess
import time
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path

from . import LOCAL, REPO
from .gateway import healthy
from .metrics import metric
from .net import free_port, free_ports
from .procs import Failed, Process, wait_until
from .sip import sip_request

PASSWORD = "schemathesis password"
# Both principals may do anything the default destination policy allows, as often as the run asks.
LIMITS = ["--number", "*", "--max-concurrent", "1000", "--rate", "10000", "--burst", "10000"]


def schemathesis():
    """The `st` command, or Failed saying how to install it."""
    found = shutil.which("st")
    if not found:
        raise Failed("schemathesis is not installed: scripts/install-deps, or "
                     "/usr/bin/python3 -m pip install --break-system-packages schemathesis")
    return found


class Stack:
    """A bridge, the accounting worker and the gateway from `bindir`, in `workdir`; stop() ends them."""

    def __init__(self, bindir, workdir):
        self.dir = Path(workdir)
        self.procs = []
        try:
            self._start_all(Path(bindir))
        except BaseException:
            self.stop()
            raise

    def _start_all(self, bindir):
        bus = {name: f"tcp://{LOCAL}:{port}" for name, port in
               zip(("events", "decisions", "replay", "commands"), free_ports(4))}
        sip_port, nobody = free_port(), free_port()
        bridge = self._start("bridge", bindir / "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                             "--outbound-proxy", f"{LOCAL}:{nobody}", "--bus-events", bus["events"],
                             "--bus-decisions", bus["decisions"], "--bus-replay", bus["replay"],
                             "--bus-commands", bus["commands"], "--journal", self.dir / "journal.sqlite",
                             "--dialogs", self.dir / "dialogs.sqlite", "--metrics-listen", "")
        wait_until(lambda: sip_request(sip_port, timeout=0.3) == 200, 20, f"the bridge to answer OPTIONS on {sip_port}",
                   bridge.tail, bridge)
        cdrs = self.dir / "cdr.sqlite"
        accounting = self._start("accounting", bindir / "switchboard-worker", "accounting", "--db", cdrs,
                                 "--events", bus["events"], "--replay", bus["replay"])
        wait_until(cdrs.exists, 20, "the accounting worker to create its CDR file", accounting.tail, accounting)

        gateway = bindir / "switchboard-gateway"
        database = self.dir / "gateway.sqlite"
        created = self._cli(gateway, "keys", "create", "--db", database, "--name", "schemathesis", "--admin", *LIMITS)
        self.key = created.strip().splitlines()[-1]
        self._cli(gateway, "users", "add", "--db", database, "--name", "schemathesis", "--admin", "--password-stdin", *LIMITS,
                  stdin=PASSWORD + "\n")
        # Kamailio's database (make-db.sh) for /sip-accounts; no Kamailio needs to run for the API to answer.
        kamailio_db = self.dir / "kamailio.db"
        result = subprocess.run([str(REPO / "openser-cfg" / "make-db.sh"), str(kamailio_db)], capture_output=True, text=True)
        if result.returncode != 0:
            raise Failed(f"make-db.sh -> {result.returncode}\n{result.stdout}{result.stderr}")
        self.port = free_port()
        self.base = f"http://{LOCAL}:{self.port}"
        config = self.dir / "gateway.json"
        config.write_text(json.dumps({
            "listen": {"host": LOCAL, "port": self.port},
            "bridges": {"ids": ["bridge-1"], "bridge-1": {"commands": bus["commands"], "events": bus["events"],
                                                          "replay": bus["replay"]}},
            "bus": {"health_interval_ms": 1000},
            "database": str(database), "cdr_database": str(cdrs), "kamailio_database": str(kamailio_db),
            "pbx_database": str(self.dir / "pbx.sqlite"),
            "limits": {"source": {"rate_per_second": 10000, "burst": 10000}},
            "log_level": "warning",
        }))
        self.gateway = self._start("gateway", gateway, "serve", "--config", config)
        wait_until(lambda: healthy(self.port), 30, "the gateway to reach the bridge", self.gateway.tail, self.gateway)

    def _start(self, name, *argv):
        proc = Process(name, argv, self.dir)
        self.procs.append(proc)
        return proc

    def _cli(self, binary, *args, stdin=None):
        result = subprocess.run([str(binary), *map(str, args)], input=stdin, capture_output=True, text=True,
                                timeout=120, cwd=self.dir)
        if result.returncode != 0:
            raise Failed(f"{binary.name} {' '.join(map(str, args))} -> {result.returncode}\n{result.stdout}{result.stderr}")
        return result.stdout

    def login(self):
        """Logs the user in: (the session cookie's value, its CSRF token header)."""
        request = urllib.request.Request(self.base + "/api/v1/session", method="POST",
                                         data=json.dumps({"username": "schemathesis", "password": PASSWORD}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            cookie = SimpleCookie(response.headers["Set-Cookie"])["sb_session"].value
            return cookie, f"X-CSRF-Token: {json.loads(response.read())['csrf_token']}"

    def requests_answered(self):
        """HTTP requests the gateway has answered (its switchboard_gateway_http_requests_total, every status)."""
        return int(metric(self.base + "/metrics", "switchboard_gateway_http_requests_total"))

    def stop(self):
        for proc in reversed(self.procs):
            proc.stop()

    def tails(self):
        return "\n".join(proc.tail() for proc in self.procs)


# Two checks are fitted to the API as designed. `DELETE /calls/{id}` hangs the call up: the ended call stays
# readable at GET /calls/{id} (`state` ended) as documented, where use_after_free expects a 404, so run_pass
# leaves that check out. /events is a WebSocket, which schemathesis does not speak: over plain HTTP it is
# always 426 (documented), never accepted, which the configuration below says. A SIP account's password
# passes the schema yet may be refused by the password policy (a well-known password, one with the user name
# in it), which no JSON schema can say: 422 is an expected answer there; so for a PBX rule the PBX refuses (a
# target that is not a name or URI, an unknown time zone), and 400 for a rule whose user or name is not its path's.
# The stack's bridge has no rtpengine: a media command that reaches one of its live calls (the originate's
# Location leads schemathesis there) is 503 `media-unavailable`, as documented, and the call goes on.
CONFIG = """
[auth.openapi.{scheme}]
{field} = "{secret}"

[[operations]]
include-operation-id = "events"
checks.positive_data_acceptance.expected-statuses = [426]

[[operations]]
include-operation-id = "createSIPAccount"
checks.positive_data_acceptance.expected-statuses = ["2xx", 409, 422]

[[operations]]
include-operation-id = "updateSIPAccount"
checks.positive_data_acceptance.expected-statuses = ["2xx", 404, 409, 422]

[[operations]]
include-operation-id = "savePBXExtension"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 409, 422]

[[operations]]
include-operation-id = "savePBXGroup"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 409, 422]

[[operations]]
include-operation-id = ["playMedia", "stopMedia", "recordCall", "sendDTMF"]
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", 503]
"""


def run_pass(stack, name, scheme, secret, max_examples, seed, headers=(), exclude_operations=()):
    """One `st run` with every check, `max_examples` cases per operation and phase, and `secret` as the
    credentials of the document's security scheme `scheme` (`bearer`: an API key; `session`: the cookie);
    the summary of its NDJSON report (the full text output is in <workdir>/st-<name>.log)."""
    config = stack.dir / f"st-{name}.toml"
    config.write_text(CONFIG.format(scheme=scheme, field="bearer" if scheme == "bearer" else "api_key", secret=secret))
    options = ["--checks", "all", "--exclude-checks", "use_after_free", "--max-examples", str(max_examples),
               "--seed", str(seed), "--workers", "1", "--request-timeout", "10", "--generation-database", "none", "--no-color"]
    options += [option for operation in exclude_operations for option in ("--exclude-operation-id", operation)]
    report = f"st-{name}.ndjson"
    argv = [schemathesis(), "--config-file", config.name, "run", f"{stack.base}/api/v1/openapi.yaml", *options,
            "--report", "ndjson", "--report-ndjson-path", report]
    argv += [option for header in headers for option in ("--header", header)]
    before, started = stack.requests_answered(), time.monotonic()
    log = stack.dir / f"st-{name}.log"
    with open(log, "w") as output:
        status = subprocess.run(argv, cwd=stack.dir, stdout=output, stderr=subprocess.STDOUT).returncode
    summary = summarize(stack.dir / report)
    summary.update(name=name, status=status, seconds=round(time.monotonic() - started, 1),
                   answered=stack.requests_answered() - before, log=log,
                   command=f"st --config-file ({scheme}) run URL {' '.join(options)}"
                           + "".join(f" --header '{header.split(':')[0]}: ...'" for header in headers))
    return summary


def run(stack, max_examples, seed):
    """Both passes: the API key on every operation, then the user's session on every operation but logout
    (which would end the session mid-run); their summaries."""
    passes = [run_pass(stack, "key", "bearer", stack.key, max_examples, seed)]
    cookie, csrf = stack.login()
    passes.append(run_pass(stack, "session", "session", cookie, max_examples, seed, headers=[csrf],
                           exclude_operations=["logout"]))
    return passes


def summarize(report):
    """Operations, test cases, check results and failures (operation, code, title) from an NDJSON report."""
    operations, cases, checks, failures, errors = set(), 0, 0, set(), 0
    for line in Path(report).read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            recorder = event["ScenarioFinished"]["recorder"]
            if recorder["label"] != "Stateful tests":
                operations.add(recorder["label"])
            cases += len(recorder.get("cases", {}))
            for results in recorder.get("checks", {}).values():
                checks += len(results)
                failures.update((result["failure_info"]["failure"]["operation"], result["failure_info"]["failure"]["code"],
                                 result["failure_info"]["failure"]["title"])
                                for result in results if result["status"] == "failure")
        errors += "NonFatalError" in event or "FatalError" in event
    return {"operations": sorted(operations), "cases": cases, "checks": checks, "failures": sorted(failures), "errors": errors}
