"""The web gateway through the real stack: Kamailio (openser-cfg), sipp phones registered at it,
the bridge (3PCC through Kamailio), the accounting worker (CDRs) and `switchboard-gateway serve`.

A headless Chromium (Selenium) logs in to the Click2Call page, calls alice → bob, sees every state
appear in order, hangs up from the page and finds the call among the operator view's CDRs; a
screenshot of the connected state is saved to artifacts/click2call-connected.png. The REST API is
driven with urllib: a denied destination is a 403 with no SIP sent, a key over its concurrency cap
gets a 429, and a repeated Idempotency-Key places one call."""
import http.client
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from switchboard_testkit.gateway import healthy as gateway_healthy

import harness
import phones
from harness import LOCAL

ARTIFACTS = harness.REPO / "artifacts"
OPERATOR, OPERATOR_PASSWORD = "operator", "correct horse battery"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


class Stack:
    """What the `stack` fixture started, and small helpers to talk to it."""

    def __init__(self, kamailio, bridge, gateway, base, key, journal, cdr_db):
        self.kamailio, self.bridge, self.gateway = kamailio, bridge, gateway
        self.base, self.key, self.journal, self.cdr_db = base, key, journal, cdr_db

    def request(self, method, path, body=None, key=None, headers=None):
        """(status, headers, JSON body or None) of one API request with an API key."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, head, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, head, raw = error.code, error.headers, error.read()
        return status, head, json.loads(raw) if raw else None

    def journaled(self, type):
        """Events of this type in the bridge's journal (every event the bridge published)."""
        with sqlite3.connect(self.journal) as db:
            return [json.loads(row[0]) for row in db.execute("SELECT json FROM events WHERE type = ?", (type,))]

    def kamailio_invites(self):
        """INVITEs Kamailio has received since it started (its core statistics, over its ctl socket)."""
        out = subprocess.run(["kamcmd", "-s", self.kamailio.defines["CTL_SOCKET"].strip('"'),
                              "stats.get_statistics", "rcv_requests_invite"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return int(out.split("=")[-1].strip().strip('"').split()[0])

    def wait_call(self, call_id, state, timeout=20):
        def reached():
            status, _, call = self.request("GET", f"/api/v1/calls/{call_id}")
            return status == 200 and call["state"] == state
        harness.wait_until(reached, timeout, f"call {call_id} to be {state}", self.gateway.tail)


@pytest.fixture
def stack(tmp_path, swift, start_kamailio):
    """Kamailio with the phones' subscribers, a bridge behind it, the accounting worker and the
    gateway (a user for the page, an API key with max 1 concurrent call for the API tests)."""
    sip_port = harness.free_port()
    kamailio = start_kamailio(subscribers=phones.USERS, bridge_ports=[sip_port])
    bus = {name: f"tcp://{LOCAL}:{port}" for name, port in zip(("events", "decisions", "replay", "commands"), harness.free_ports(4))}
    journal, cdr_db, gateway_db = tmp_path / "journal.sqlite", tmp_path / "cdr.sqlite", tmp_path / "gateway.sqlite"
    bridge = swift.start("bridge", "switchboard-bridge", "--sip-listen", f"{LOCAL}:{sip_port}",
                         "--outbound-proxy", f"{LOCAL}:{kamailio.port}",
                         "--bus-events", bus["events"], "--bus-decisions", bus["decisions"],
                         "--bus-replay", bus["replay"], "--bus-commands", bus["commands"],
                         "--journal", journal, "--dialogs", tmp_path / "dialogs.sqlite", "--metrics-listen", "")
    harness.wait_until(lambda: not bridge.running() or harness.sip_request(sip_port) == 200,
                       15, f"bridge to answer OPTIONS on {sip_port}", bridge.tail)
    assert bridge.running(), bridge.tail()
    swift.start("accounting", "switchboard-worker", "accounting", "--db", cdr_db,
                "--events", bus["events"], "--replay", bus["replay"])

    add_user = subprocess.run([str(swift.binary("switchboard-gateway")), "users", "add", "--db", str(gateway_db),
                               "--name", OPERATOR, "--admin", "--number", "alice", "--password-stdin", "--rate", "50", "--burst", "100"],
                              input=OPERATOR_PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert add_user.returncode == 0, add_user.stderr
    created = swift.run("switchboard-gateway", "keys", "create", "--db", gateway_db, "--name", "crm",
                        "--number", "alice", "--number", "carol", "--max-concurrent", "1", "--rate", "50", "--burst", "100")
    key = created.strip().splitlines()[-1]
    assert key.startswith("sbk_"), created

    http_port = harness.free_port()
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({
        "listen": {"host": LOCAL, "port": http_port},
        "bridges": {"ids": ["bridge-1"], "bridge-1": {"commands": bus["commands"], "events": bus["events"],
                                                      "replay": bus["replay"]}},
        "bus": {"health_interval_ms": 1000},
        "database": str(gateway_db), "cdr_database": str(cdr_db),
        "limits": {"source": {"rate_per_second": 200, "burst": 400}},
    }))
    gateway = swift.start("gateway", "switchboard-gateway", "serve", "--config", config)
    base = f"http://{LOCAL}:{http_port}"
    harness.wait_until(lambda: gateway_healthy(http_port), 20, "the gateway to reach the bridge", gateway.tail, gateway)
    time.sleep(0.5)  # the gateway's and the accounting worker's SUB subscriptions reach the bridge
    stack = Stack(kamailio, bridge, gateway, base, key, journal, cdr_db)
    stack.bus = bus  # the bridge's endpoints, for tests that bypass the gateway
    return stack


# --- the page, in a real browser ---

@pytest.fixture
def browser():
    from selenium import webdriver  # python3-selenium, with chromium and chromium-driver (scripts/install-deps)
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1000,1300", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def wait_for(driver, predicate, timeout, what):
    harness.wait_until(lambda: predicate(driver), timeout, what,
                       lambda: driver.execute_script("return document.body.innerText"))


def log_in(driver, url, user, password):
    """Opens a gateway page and submits its login form."""
    from selenium.webdriver.common.by import By
    driver.get(url)
    wait_for(driver, lambda d: d.find_element(By.ID, "username").is_displayed(), 10, "the login form")
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


# Every value the status line takes, in order, recorded in the page as it changes.
RECORD_STATUS = """
window.__seen = [];
const status = document.getElementById('status');
new MutationObserver(() => {
  const last = window.__seen[window.__seen.length - 1];
  if (!last || last.state !== status.dataset.state) window.__seen.push({state: status.dataset.state, text: status.textContent});
}).observe(status, {attributes: true, childList: true, characterData: true, subtree: true});
"""

STEPS = ["calling_you", "you_answered", "calling_them", "ringing", "connected", "ended"]


def test_click2call_from_the_page_states_in_order_hangup_and_cdr(stack, sipp, browser):
    from selenium.webdriver.common.by import By
    started = time.monotonic()
    alice = phones.start(sipp, stack.kamailio, "alice", "answer", ring_ms=1500)
    bob = phones.start(sipp, stack.kamailio, "bob", "answer", ring_ms=1500)
    driver = browser
    driver.get(stack.base + "/")
    wait_for(driver, lambda d: d.find_element(By.ID, "username").is_displayed(), 10, "the login form")
    # The labels name the inputs (what a screen reader says).
    assert driver.find_element(By.CSS_SELECTOR, "label[for=username]").text == "User name"
    driver.find_element(By.ID, "username").send_keys(OPERATOR)
    driver.find_element(By.ID, "password").send_keys(OPERATOR_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "call-section").is_displayed(), 10, "the Click2Call form")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=from]").text == "Your number"
    assert driver.find_element(By.CSS_SELECTOR, "label[for=to]").text == "Number to call"
    status = driver.find_element(By.ID, "status")
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    assert not driver.find_element(By.ID, "hangup").is_enabled()

    driver.execute_script(RECORD_STATUS)
    driver.find_element(By.ID, "from").send_keys("alice")
    driver.find_element(By.ID, "to").send_keys("bob")
    driver.find_element(By.ID, "call").click()

    wait_for(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "connected", 30,
             "the page to show the call connected")
    assert driver.find_element(By.ID, "hangup").is_enabled()
    # The timer runs: let it pass two seconds, then keep the picture.
    wait_for(driver, lambda d: d.find_element(By.ID, "timer").text >= "00:02", 10, "the talk timer to run")
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "click2call-connected.png"))
    driver.set_window_size(360, 800)
    driver.save_screenshot(str(ARTIFACTS / "click2call-connected-360px.png"))
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 360, f"the page is {width}px wide at a 360px window"
    driver.set_window_size(1000, 1300)

    call_id = driver.find_element(By.ID, "progress-section").get_attribute("data-call-id")
    assert call_id
    driver.find_element(By.ID, "hangup").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "ended", 15,
             "the page to show the call ended")
    alice.wait_for("BYE")
    bob.wait_for("BYE")
    assert alice.finish() == 0, alice.report()
    assert bob.finish() == 0, bob.report()

    steps = [item.get_attribute("data-state") for item in driver.find_elements(By.CSS_SELECTOR, "#steps li")]
    assert steps == STEPS, steps
    ended = driver.find_element(By.CSS_SELECTOR, "#steps li[data-state=ended]")
    assert ended.get_attribute("data-cause") == "hangup_command" and "Ended: Hung up" in ended.text, ended.text
    assert status.text == "Call ended: Hung up."
    # What the status line (the screen reader's live region) said, in order: every step, none skipped
    # or out of order (the hang-up adds "ending" between connected and ended).
    seen = [entry["state"] for entry in driver.execute_script("return window.__seen")]
    assert [s for s in seen if s in STEPS] == STEPS, seen
    assert not driver.find_element(By.ID, "hangup").is_enabled() and driver.find_element(By.ID, "call").is_enabled()

    # The operator view lists the call among the CDRs once the accounting worker has written it.
    def cdr_written():
        with sqlite3.connect(stack.cdr_db) as db:
            return db.execute("SELECT end_cause FROM cdrs WHERE call_id = ?", (call_id,)).fetchone() == ("hangup_command",)
    harness.wait_until(cdr_written, 10, "the call's CDR")
    driver.get(stack.base + "/operator.html")
    row = f"#cdrs tbody tr[data-call-id='{call_id}']"
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), 10, "the call among the CDRs")
    cells = [td.text for td in driver.find_elements(By.CSS_SELECTOR, row + " td")]
    assert cells[1:5] == ["alice", "bob", "Click2Call", "Hung up"], cells
    assert cells[6] >= "00:02", cells  # talk time
    wait_for(driver, lambda d: "1 call in the last hour" in d.find_element(By.ID, "chart-summary").text, 10,
             "the chart's summary")
    assert driver.find_elements(By.CSS_SELECTOR, "#chart rect.bar-rect"), "no bar in the chart"
    assert "1 of 1 bridged or Click2Call calls answered (100%)" in driver.find_element(By.ID, "chart-summary").text
    driver.save_screenshot(str(ARTIFACTS / "operator.png"))
    print(f"browser test: {time.monotonic() - started:.1f}s from the phones' start")


# --- the REST API through the real stack ---

def test_denied_destination_is_403_and_sends_no_sip(stack, sipp):
    alice = phones.start(sipp, stack.kamailio, "alice", "answer", ring_ms=200)
    bob = phones.start(sipp, stack.kamailio, "bob", "answer", ring_ms=200)
    before = stack.kamailio_invites()
    for to, rule in (("+33142685300", "international"), ("+19005550100", "premium_rate"),
                     ("011 44 20 7946 0000", "international")):
        status, headers, problem = stack.request("POST", "/api/v1/calls", {"from": "alice", "to": to})
        assert status == 403, (to, status, problem)
        assert headers["Content-Type"].startswith("application/problem+json"), headers
        assert problem["rule"] == rule and problem["field"] == "to", problem
        assert problem["type"].endswith("/destination-denied") and problem["status"] == 403, problem
    time.sleep(1)  # anything sent would have arrived by now
    assert alice.received("INVITE") == [] and bob.received("INVITE") == [], alice.report()
    assert stack.kamailio_invites() == before
    assert stack.journaled("call.originated") == []

    # The same key and phones do place a permitted call: the checks above could see one.
    status, _, placed = stack.request("POST", "/api/v1/calls", {"from": "alice", "to": "bob"})
    assert status == 201, placed
    alice.wait_for("INVITE")
    assert stack.kamailio_invites() > before
    stack.wait_call(placed["call_id"], "connected")
    assert stack.request("DELETE", f"/api/v1/calls/{placed['call_id']}")[0] == 202
    alice.wait_for("BYE")
    bob.wait_for("BYE")


def test_idempotency_key_places_one_call_and_the_cap_is_429(stack, sipp):
    alice = phones.start(sipp, stack.kamailio, "alice", "answer", ring_ms=300)
    bob = phones.start(sipp, stack.kamailio, "bob", "answer", ring_ms=300)
    order = {"Idempotency-Key": f"order-{uuid.uuid4().hex[:8]}"}
    status, headers, first = stack.request("POST", "/api/v1/calls", {"from": "alice", "to": "bob"}, headers=order)
    assert status == 201 and not first["existing"], first
    assert headers["Location"] == f"/api/v1/calls/{first['call_id']}"
    status, _, again = stack.request("POST", "/api/v1/calls", {"from": "alice", "to": "bob"}, headers=order)
    assert status == 200 and again["existing"] and again["call_id"] == first["call_id"], again
    # The key may have one live call: another originate is refused, and nothing reaches the bridge.
    status, headers, problem = stack.request("POST", "/api/v1/calls", {"from": "carol", "to": "dave"})
    assert status == 429 and problem["type"].endswith("/concurrency-limit"), problem
    assert headers["Retry-After"], headers
    stack.wait_call(first["call_id"], "connected")
    originated = stack.journaled("call.originated")
    assert [e["call_id"] for e in originated] == [first["call_id"]], originated
    # RFC 3725 Flow III: alice gets an INVITE and the re-INVITE with bob's offer; bob one INVITE.
    assert len(alice.received("INVITE")) == 2, alice.report()
    assert len(bob.received("INVITE")) == 1, bob.report()
    assert stack.request("DELETE", f"/api/v1/calls/{first['call_id']}")[0] == 202
    alice.wait_for("BYE")
    bob.wait_for("BYE")
    stack.wait_call(first["call_id"], "ended")
    assert stack.request("GET", "/api/v1/calls")[2] == {"calls": []}  # the cap is free again


# --- hardening (issue 11 part 5), against the real process ---

def raw_request(stack, method, path, headers, body=None):
    """(status, headers, body bytes) over a fresh connection, whatever the status (101 included)."""
    host, port = stack.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read() if response.status != 101 else b""
    finally:
        connection.close()


def test_gateway_hardening_health_origin_caller_and_login_lockout(stack):
    # Health: anyone learns the status; the tenants' live calls only with an admin's credentials.
    with urllib.request.urlopen(stack.base + "/api/v1/health", timeout=5) as response:
        assert json.loads(response.read()) == {"status": "ok"}
    status, _, body = stack.request("GET", "/api/v1/health")  # the crm key is no admin
    assert status == 200 and body == {"status": "ok"}, body

    # The events WebSocket with the operator's cookie: from the gateway's own page, not another site's.
    status, headers, _ = raw_request(stack, "POST", "/api/v1/session", {"Content-Type": "application/json"},
                                     json.dumps({"username": OPERATOR, "password": OPERATOR_PASSWORD}))
    assert status == 200, status
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "Secure" not in headers["Set-Cookie"]  # plain HTTP on loopback: a Secure cookie would never come back
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Cookie": cookie}
    status, headers, body = raw_request(stack, "GET", "/api/v1/events", {**upgrade, "Origin": "https://evil.example"})
    assert status == 403 and headers["Content-Type"] == "application/problem+json", (status, body)
    assert json.loads(body)["type"].endswith("/origin-denied")
    status, _, _ = raw_request(stack, "GET", "/api/v1/events", {**upgrade, "Origin": stack.base})
    assert status == 101, status

    # from and caller_id: only what the key owns (alice, carol); nothing reaches the bridge otherwise.
    for body, rule in (({"from": "bob", "to": "alice"}, "from_not_owned"),
                       ({"from": "alice", "to": "bob", "caller_id": "+18005550100"}, "caller_id_not_allowed")):
        status, headers, problem = stack.request("POST", "/api/v1/calls", body)
        assert status == 403 and headers["Content-Type"].startswith("application/problem+json"), (status, problem)
        assert problem["type"].endswith("/caller-denied") and problem["rule"] == rule, problem
    assert stack.journaled("call.originated") == []

    # A user name that keeps failing is locked out (counted per name, known or not), with Retry-After.
    def login(name, password):
        return raw_request(stack, "POST", "/api/v1/session", {"Content-Type": "application/json"},
                           json.dumps({"username": name, "password": password}))
    assert [login("mallory", "guess")[0] for _ in range(4)] == [401, 401, 401, 401]
    status, headers, body = login("mallory", "guess")
    assert status == 429 and int(headers["Retry-After"]) >= 1, (status, body)
    assert json.loads(body)["type"].endswith("/login-locked")
    assert login(OPERATOR, OPERATOR_PASSWORD)[0] == 200  # another name is not affected



def test_a_malformed_first_request_is_400_and_closed_and_the_gateway_still_stops(stack):
    """schemathesis' probe: a first request that does not parse (a NUL in a header, a broken request line)
    got no answer and held its connection. It is 400 problem+json and closed, and leaves nothing behind
    that would keep the gateway from stopping on SIGTERM."""
    host, port = stack.base.removeprefix("http://").split(":")
    for request in (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Probe: a\x00b\r\n\r\n", b"GE T / HTTP/1.1\r\n\r\n"):
        for _ in range(5):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(request)
                answer = b""
                while chunk := s.recv(4096):  # until the gateway closes; a timeout fails the test
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
            assert b"Content-Type: application/problem+json" in head, answer
            assert json.loads(body)["type"].endswith("/malformed-request"), body
    os.kill(stack.gateway.pid, signal.SIGTERM)
    stack.gateway.wait(20)  # fails the test, with the gateway's log, when it is still running


def test_an_idle_or_dribbling_http_connection_is_closed(stack, swift, tmp_path):
    """slowloris: a connection that sends nothing, or its head a byte at a time, held a gateway
    connection for ever. With `listen.idle_timeout_ms` 1500, both are closed within about that,
    and a request that completes in time is served."""
    config = json.loads((tmp_path / "gateway.json").read_text())
    port = harness.free_port()
    config["listen"] |= {"port": port, "idle_timeout_ms": 1500}
    (tmp_path / "gateway-idle.json").write_text(json.dumps(config))
    gateway = swift.start("gateway-idle", "switchboard-gateway", "serve", "--config", tmp_path / "gateway-idle.json")
    harness.wait_until(lambda: gateway_healthy(port), 20, "the second gateway to serve", gateway.tail, gateway)
    for dribble in (False, True):
        with socket.create_connection((LOCAL, port), timeout=10) as s:
            start, closed = time.monotonic(), None
            head = iter(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100)
            while closed is None and time.monotonic() - start < 10:
                if dribble:
                    try:
                        s.send(bytes([next(head)]))
                    except OSError:
                        closed = time.monotonic() - start
                        break
                readable, _, _ = select.select([s], [], [], 0.25)
                if readable:
                    try:
                        gone = s.recv(4096) == b""
                    except OSError:
                        gone = True
                    if gone:
                        closed = time.monotonic() - start
        assert closed is not None and 1.2 <= closed <= 4, (dribble, closed)
    assert gateway_healthy(port)

