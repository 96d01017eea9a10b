"""Rated CDRs and statistics through the real stack: Kamailio (openser-cfg), sipp phones
registered at it, the bridge as a B2BUA, the Swift router in bridge mode, the accounting worker
(with its /metrics) and the gateway.

Known calls with known rates: alice calls 5000 → bob (route "dc" = prefix 500, 0.0120/min, 60/60),
5001 → carol (route "nyc", 0.0100/min 1/1, alice's plan 0.0060/min 1/1), 5002 → dave, who is busy
("dc"), and 9999, which has no dial-plan route (404); the gateway places a Click2Call carol → bob
(route "local": every other destination, 0.0010/min 60/60). Each CDR's charge, the per-route totals, ASR, ACD and PDD, the /metrics
counters, the gateway's CSV and /stats (admin: every call; a user key: its own call only) and the
CLI export are checked against what the phones did, and so is the operator page's chart (a headless
Chromium; a screenshot goes to artifacts/operator-stats.png). A second test provisions a SIP account
with a billing account through the gateway: that account's plan prices its call."""
import csv
import io
import json
import math
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from switchboard_testkit.gateway import healthy as gateway_healthy
from switchboard_testkit.metrics import scrape

import harness
import phones
from harness import DOMAIN, LOCAL
from test_web_gateway import ARTIFACTS, OPERATOR, OPERATOR_PASSWORD, browser, log_in, wait_for  # noqa: F401 (browser: a fixture)


def charge_micros(billed, per_minute_micros):
    return (billed * per_minute_micros + 59) // 60


def billed(talk_ms, first, nxt):
    if talk_ms <= 0:
        return 0
    seconds = math.ceil(talk_ms / 1000)
    return first if seconds <= first else first + math.ceil((seconds - first) / nxt) * nxt


@pytest.fixture
def rated(tmp_path, swift, start_kamailio):
    sip_port = harness.free_port()
    kamailio = start_kamailio(subscribers=phones.USERS, bridge_ports=[sip_port])
    bus = {n: f"tcp://{LOCAL}:{p}" for n, p in zip(("events", "decisions", "replay", "commands"), harness.free_ports(4))}
    routes, cdr_db, gateway_db = tmp_path / "routes.sqlite", tmp_path / "cdr.sqlite", tmp_path / "gateway.sqlite"
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--outbound-proxy", f"{LOCAL}:{kamailio.port}", "--bus-events", bus["events"],
                         "--bus-decisions", bus["decisions"], "--bus-replay", bus["replay"], "--bus-commands", bus["commands"],
                         "--journal", tmp_path / "journal.sqlite", "--dialogs", tmp_path / "dialogs.sqlite",
                         "--metrics-listen", "")
    harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200, 15,
                       "the bridge to answer OPTIONS", bridge.tail)
    for prefix, user in (("5000", "bob"), ("5001", "carol"), ("5002", "dave")):
        swift.run("switchboard-worker", "routes", "add", "--db", routes, "--prefix", prefix, "--target", f"sip:{user}@{DOMAIN}")
    router = swift.start("router", "switchboard-worker", "router", "--db", routes, "--bridge", bus["decisions"], "--mode", "bridge")
    harness.wait_until(lambda: "joined bridge" in router.log.read_text(), 10, "the router to join", router.tail)

    for args in (["--route", "dc", "--prefix", "500", "--per-minute", "0.0120", "--increment", "60/60"],
                 ["--route", "nyc", "--prefix", "5001", "--per-minute", "0.0100", "--increment", "1/1"],
                 ["--route", "nyc", "--account", "alice", "--per-minute", "0.0060", "--increment", "1/1"],
                 ["--route", "local", "--prefix", "", "--per-minute", "0.0010", "--increment", "60/60"]):
        swift.run("switchboard-worker", "rates", "set", "--db", cdr_db, *args)
    assert swift.run("switchboard-worker", "rates", "currency", "--db", cdr_db, "--set", "EUR").strip() == "EUR"
    metrics_port = harness.free_port()
    accounting = swift.start("accounting", "switchboard-worker", "accounting", "--db", cdr_db, "--events", bus["events"],
                             "--replay", bus["replay"], "--metrics-listen", f"{LOCAL}:{metrics_port}")
    metrics_url = f"http://{LOCAL}:{metrics_port}/metrics"
    harness.wait_until(lambda: scrape(metrics_url) is not None or not accounting.running(), 10, "accounting /metrics",
                       accounting.tail)

    created = swift.run("switchboard-gateway", "keys", "create", "--db", gateway_db, "--name", "ops", "--admin",
                        "--rate", "50", "--burst", "100")
    admin_key = created.strip().splitlines()[-1]
    created = swift.run("switchboard-gateway", "keys", "create", "--db", gateway_db, "--name", "crm", "--number", "carol",
                        "--rate", "50", "--burst", "100")
    user_key = created.strip().splitlines()[-1]
    add_user = subprocess.run([str(swift.binary("switchboard-gateway")), "users", "add", "--db", str(gateway_db), "--name", OPERATOR,
                               "--admin", "--password-stdin", "--rate", "50", "--burst", "100"],
                              input=OPERATOR_PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert add_user.returncode == 0, add_user.stderr
    http_port = harness.free_port()
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({
        "listen": {"host": LOCAL, "port": http_port},
        "bridges": {"ids": ["bridge-1"], "bridge-1": {"commands": bus["commands"], "events": bus["events"], "replay": bus["replay"]}},
        "bus": {"health_interval_ms": 1000}, "database": str(gateway_db), "cdr_database": str(cdr_db),
        "kamailio_database": str(kamailio.db), "sip": {"domain": DOMAIN},
    }))
    gateway = swift.start("gateway", "switchboard-gateway", "serve", "--config", config)
    harness.wait_until(lambda: gateway_healthy(http_port), 20, "the gateway to reach the bridge", gateway.tail, gateway)
    time.sleep(0.5)  # the SUB subscriptions reach the bridge

    class S:
        def get(self, path, key=None):
            request = urllib.request.Request(f"http://{LOCAL}:{http_port}{path}", headers={"Authorization": f"Bearer {key or admin_key}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.headers, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.headers, error.read().decode()

        def post(self, path, body, key=None):
            key = key or admin_key
            request = urllib.request.Request(f"http://{LOCAL}:{http_port}{path}", data=json.dumps(body).encode(), method="POST",
                                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        def delete(self, path, key):
            request = urllib.request.Request(f"http://{LOCAL}:{http_port}{path}", method="DELETE",
                                             headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status

        def cdrs(self):
            return json.loads(swift.run("switchboard-worker", "cdrs", "list", "--db", cdr_db, "--json"))

    s = S()
    s.kamailio, s.cdr_db, s.metrics_url, s.accounting = kamailio, cdr_db, metrics_url, accounting
    s.admin_key, s.user_key = admin_key, user_key
    s.base = f"http://{LOCAL}:{http_port}"
    return s


def finished(*ps, timeout=30):
    for p in ps:
        assert p.finish(timeout) == 0, p.report()


def test_known_calls_get_known_charges_totals_metrics_and_csv(rated, sipp, swift, browser):
    s = rated
    start = time.time()
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start - 60))

    # bob and carol answer every call (each user registers one phone: a second binding would be forked to)
    bob = phones.start(sipp, s.kamailio, "bob", "answer", ring_ms=400, calls=None)
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=200, calls=None)
    dave = phones.start(sipp, s.kamailio, "dave", "busy")
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=1500)
    finished(alice)
    assert alice.final_status() == 200, alice.report()
    alice = phones.call(sipp, s.kamailio, "alice", "5001", hangup_after_ms=2500, name="caller-alice-2")
    finished(alice)
    assert alice.final_status() == 200, alice.report()
    alice = phones.call(sipp, s.kamailio, "alice", "5002", name="caller-alice-3")
    finished(alice, dave)
    assert alice.final_status() == 486, alice.report()
    alice = phones.call(sipp, s.kamailio, "alice", "9999", name="caller-alice-4")
    finished(alice)
    assert alice.final_status() == 404, alice.report()
    # A Click2Call carol → bob from the user key: its account is the key, its callee a SIP user ("local").
    placed = s.post("/api/v1/calls", {"from": "carol", "to": "bob"}, s.user_key)
    bob.wait_for("ACK", count=2)
    time.sleep(1.2)
    assert s.delete(f"/api/v1/calls/{placed['call_id']}", s.user_key) == 202
    bob.wait_for("BYE", count=2)

    def settled():
        rows = s.cdrs()
        return len(rows) == 5 and all(r.get("ended_at") or r["outcome"] == "rejected" for r in rows)
    harness.wait_until(settled, 15, "five finished CDRs", lambda: json.dumps(s.cdrs(), indent=1))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    rows = s.cdrs()
    dc, nyc, busy, none, click = rows
    print(json.dumps(rows, indent=1))

    # alice → 5000, answered: 60/60 at 0.0120 → one minute
    assert dc["callee"] == "5000" and dc["sip_status"] == 200 and 1000 <= dc["talk_ms"] < 3000, dc
    assert (dc["rate_route"], dc["rate_plan"], dc["rate_increment"], dc["currency"]) == ("dc", "default", "60/60", "EUR"), dc
    assert dc["billed_seconds"] == 60 and dc["charge_micros"] == 12_000, dc
    # bob's 180 is immediate (his 400 ms are between 180 and 200): the PDD is the path through Kamailio and the bridge
    assert 0 < dc["pdd_ms"] < 400 and dc["pdd_ms"] < dc["setup_ms"], dc
    # alice → 5001: alice's plan, 1/1 at 0.0060
    assert (nyc["rate_route"], nyc["rate_plan"], nyc["rate_increment"]) == ("nyc", "alice", "1/1"), nyc
    assert nyc["billed_seconds"] == billed(nyc["talk_ms"], 1, 1) and 3 <= nyc["billed_seconds"] <= 4, nyc
    assert nyc["charge_micros"] == charge_micros(nyc["billed_seconds"], 6_000), nyc
    # busy: failed, costs nothing; 9999: no dial-plan route (404), rated on "local" at 0
    assert busy["callee"] == "5002" and busy["sip_status"] == 486 and busy["rate_route"] == "dc" and busy["billed_seconds"] == 0 and busy["charge_micros"] == 0, busy
    assert none["outcome"] == "rejected" and none["sip_status"] == 404 and none["rate_route"] == "local", none
    assert none["charge_micros"] == 0 and none.get("pdd_ms") is None, none
    # the Click2Call: the key's account, callee sip:bob@..., "local" 60/60 at 0.0010
    assert click["outcome"] == "originated" and click["auth_account"].startswith("sbk_") and click["rate_route"] == "local", click
    assert click["billed_seconds"] == 60 and click["charge_micros"] == 1_000, click
    total = sum(r["charge_micros"] for r in rows)

    # /metrics: the counters of the same five calls
    text = scrape(s.metrics_url)
    assert 'switchboard_cdr_calls_total{account="alice",route="dc",result="answered"} 1' in text, text
    assert 'switchboard_cdr_calls_total{account="alice",route="dc",result="failed"} 1' in text, text
    assert 'switchboard_cdr_calls_total{account="alice",route="nyc",result="answered"} 1' in text, text
    assert 'switchboard_cdr_calls_total{account="alice",route="local",result="failed"} 1' in text, text
    assert 'switchboard_cdr_charge_micros_total{account="alice",route="dc",currency="EUR"} 12000' in text, text
    assert f'switchboard_cdr_charge_micros_total{{account="alice",route="nyc",currency="EUR"}} {nyc["charge_micros"]}' in text, text
    assert f'switchboard_cdr_billed_seconds_total{{account="alice",route="nyc"}} {nyc["billed_seconds"]}' in text, text
    assert 'switchboard_cdr_pdd_seconds_count{account="alice",route="dc"} 1' in text, text

    # the gateway's CSV: every call for the admin, parsed back, the same charges
    status, headers, body = s.get(f"/api/v1/cdrs.csv?since={since}&until={until}")
    assert status == 200 and headers["Content-Type"].startswith("text/csv"), (status, body)
    assert "attachment" in headers["Content-Disposition"]
    assert body.endswith("\r\n")
    table = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [r["call_id"] for r in table] == [r["call_id"] for r in rows]
    assert [r["charge"] for r in table] == [f"{r['charge_micros'] / 1e6:.6f}" for r in rows]
    assert table[0]["rate_per_minute"] == "0.012000" and table[0]["currency"] == "EUR"
    # the user key sees its own Click2Call only
    status, _, body = s.get(f"/api/v1/cdrs.csv?since={since}&until={until}", key=s.user_key)
    mine = list(csv.DictReader(io.StringIO(body, newline="")))
    assert status == 200 and [r["call_id"] for r in mine] == [click["call_id"]], body
    # the CLI writes the same file
    exported = subprocess.run([str(swift.binary("switchboard-worker")), "cdrs", "export", "--db", str(s.cdr_db), "--since", since,
                               "--until", until], capture_output=True, timeout=30, check=True).stdout.decode()
    assert exported == s.get(f"/api/v1/cdrs.csv?since={since}&until={until}")[2]

    # /stats per route: totals, ASR, ACD, PDD
    status, _, body = s.get(f"/api/v1/stats?since={since}&until={until}&interval=60&by=route")
    assert status == 200, body
    stats = json.loads(body)
    keys = {k["key"]: k for k in stats["keys"]}
    assert stats["currency"] == "EUR" and stats["total"]["attempts"] == 5 and stats["total"]["answered"] == 3
    assert stats["total"]["charge"] == f"{total / 1e6:.6f}"
    assert keys["dc"]["attempts"] == 2 and keys["dc"]["asr"] == 0.5 and keys["dc"]["acd_s"] == round(dc["talk_ms"]) / 1000
    rang = [r["pdd_ms"] for r in (dc, busy) if r.get("pdd_ms") is not None]
    assert keys["dc"]["pdd_ms"] == sum(rang) / len(rang)
    assert keys["nyc"]["charge"] == f"{nyc['charge_micros'] / 1e6:.6f}" and keys["nyc"]["asr"] == 1
    assert keys["local"]["attempts"] == 2 and keys["local"]["answered"] == 1
    assert sum(i["total"]["attempts"] for i in stats["intervals"]) == 5
    status, _, body = s.get(f"/api/v1/stats?since={since}&until={until}&by=account", key=s.user_key)
    assert status == 200 and [k["key"] for k in json.loads(body)["keys"]] == [click["auth_account"]], body
    status, _, body = s.get(f"/api/v1/stats?since={until}&until={since}")   # an empty period
    assert status == 200 and json.loads(body)["total"]["attempts"] == 0 and json.loads(body)["intervals"] == [], body
    status, _, body = s.get(f"/api/v1/stats?since={since}&until={until}&interval=30")
    assert status == 400 and "interval" in body, body
    print(f"rated 5 calls: total {total / 1e6:.6f} EUR; dc PDD {dc['pdd_ms']} ms; nyc talk {nyc['talk_ms']} ms")

    # The operator page draws the same statistics: bars per interval, a bar per route, the headline figures.
    from selenium.webdriver.common.by import By
    driver = browser
    log_in(driver, s.base + "/operator.html", OPERATOR, OPERATOR_PASSWORD)
    wait_for(driver, lambda d: d.find_element(By.ID, "stats-calls").text == "5", 15, "the statistics to load")
    assert driver.find_element(By.ID, "stats-asr").text == "60%"   # 3 answered, 2 failed
    assert driver.find_element(By.ID, "stats-charge").text == "0.0133 EUR"
    bars = driver.find_elements(By.CSS_SELECTOR, "#stats-chart rect")
    assert len(bars) >= 2, driver.find_element(By.ID, "stats-chart").get_attribute("outerHTML")   # answered and failed
    labels = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#stats-keys text")]
    assert {"dc", "nyc", "local"} <= set(labels) and "50%" in labels, labels
    assert "/api/v1/cdrs.csv?since=" in driver.find_element(By.ID, "stats-csv").get_attribute("href")
    section = driver.find_element(By.ID, "stats-section")
    driver.execute_script("arguments[0].scrollIntoView()", section)
    ARTIFACTS.mkdir(exist_ok=True)
    section.screenshot(str(ARTIFACTS / "operator-stats.png"))


def test_the_billing_account_a_sip_account_bills_to_pays_with_its_plan(rated, sipp, swift):
    """Provisioning's billing account: Kamailio adds it to the INVITE to the bridge, the CDR keeps it as
    `bill_to`, its plan prices the call, and the totals and metrics count the call under it."""
    s = rated
    password = "Zq4-Lm8v-Ht2r"
    created = s.post("/api/v1/sip-accounts", {"user": "erin", "password": password, "billing_account": "acme"})
    assert created["user"] == "erin", created
    swift.run("switchboard-worker", "rates", "set", "--db", s.cdr_db, "--route", "nyc", "--account", "acme",
              "--per-minute", "0.0030", "--increment", "1/1")
    carol = phones.start(sipp, s.kamailio, "carol", "answer")
    erin = phones.call(sipp, s.kamailio, "erin", "5001", password=password, hangup_after_ms=1500)
    finished(erin, carol)
    assert erin.final_status() == 200, erin.report()
    harness.wait_until(lambda: any(r.get("ended_at") for r in s.cdrs()), 15, "the CDR", lambda: json.dumps(s.cdrs(), indent=1))
    cdr = s.cdrs()[0]
    assert (cdr["auth_account"], cdr["bill_to"], cdr["rate_route"], cdr["rate_plan"]) == ("erin", "acme", "nyc", "acme"), cdr
    assert cdr["billed_seconds"] == billed(cdr["talk_ms"], 1, 1) and cdr["charge_micros"] == charge_micros(cdr["billed_seconds"], 3_000), cdr
    assert f'switchboard_cdr_charge_micros_total{{account="acme",route="nyc",currency="EUR"}} {cdr["charge_micros"]}' in scrape(s.metrics_url)
    status, _, body = s.get("/api/v1/stats?by=account")
    assert status == 200 and [k["key"] for k in json.loads(body)["keys"]] == ["acme"], body
