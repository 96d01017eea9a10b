"""SIP accounts provisioned through switchboard-gateway (REST API and CLI) and authenticated by the real
Kamailio running openser-cfg/kamailio.cfg, which reads them from its SQLite database on every request:
no reload, no restart. sipp phones register and call with the passwords the API was given.

The gateway here has no bridge (provisioning needs none; its bus endpoints are unused free ports);
a sipp stand-in bridge checks the billing account header Kamailio adds."""
import json
import subprocess
import urllib.error
import urllib.request

import pytest

import harness
import phones
from harness import DOMAIN, LOCAL
from test_web_gateway import browser, log_in, wait_for  # noqa: F401  (the headless Chromium fixture)

CAROL_PASSWORD = "kx9-Tm2v-Qa7p"
OPERATOR, OPERATOR_PASSWORD = "operator", "correct horse battery"


class Gateway:
    """switchboard-gateway serve over a Kamailio's database, with an admin key and a plain one."""

    def __init__(self, swift, tmp_path, kamailio):
        db = tmp_path / "gateway.sqlite"
        self.swift, self.kamailio = swift, kamailio

        def key(*flags):
            out = swift.run("switchboard-gateway", "keys", "create", "--db", db, "--name", "test", "--rate", "50", "--burst", "100", *flags)
            return out.strip().splitlines()[-1]
        self.admin, self.plain = key("--admin"), key()
        # a page user who is an operator (admin)
        added = subprocess.run([str(swift.binary("switchboard-gateway")), "users", "add", "--db", str(db), "--name", OPERATOR,
                                "--admin", "--password-stdin", "--rate", "50", "--burst", "100"],
                               input=OPERATOR_PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        port = harness.free_port()
        commands, events, replay = (f"tcp://{LOCAL}:{p}" for p in harness.free_ports(3))
        config = tmp_path / "gateway.json"
        config.write_text(json.dumps({
            "listen": {"host": LOCAL, "port": port}, "database": str(db), "kamailio_database": str(kamailio.db),
            "bridges": {"ids": ["bridge-1"], "bridge-1": {"commands": commands, "events": events, "replay": replay}},
            "limits": {"source": {"rate_per_second": 200, "burst": 400}}, "sip": {"domain": DOMAIN}}))
        self.proc = swift.start("gateway", "switchboard-gateway", "serve", "--config", config)
        self.base = f"http://{LOCAL}:{port}"
        # No bridge answers, so health is "down" (503); it answers all the same once it listens.
        harness.wait_until(self._listening, 20, "the gateway to listen", self.proc.tail, self.proc)

    def _listening(self):
        try:
            urllib.request.urlopen(self.base + "/api/v1/health", timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def request(self, method, path, body=None, key=None):
        """(status, JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method, headers={
            "Authorization": f"Bearer {key or self.admin}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else None


@pytest.fixture
def gateway(swift, tmp_path, start_kamailio):
    """Kamailio with bob (make-db.sh) and a gateway provisioning into its database."""
    kamailio = start_kamailio(subscribers={"bob": phones.USERS["bob"]})
    return Gateway(swift, tmp_path, kamailio)


def register(sipp, gateway, user, password, status=None, name=None):
    """One REGISTER through Kamailio (401, credentials, then 200 or `status`); the sipp result."""
    scenario = "register_auth.xml" if status is None else "register_auth_status.xml"
    return sipp.run(name or f"register-{user}", scenario, gateway.kamailio.port, status=status, timeout=10,
                    keys={"user": user, "domain": DOMAIN, "contact_port": "5999"}, extra=["-au", user, "-ap", password])


def test_an_account_created_by_the_api_registers_calls_and_is_reached_by_its_did(gateway, sipp):
    status, carol = gateway.request("POST", "/sip-accounts", {
        "user": "carol", "password": CAROL_PASSWORD, "display_name": "Carol", "aliases": ["12025550199"],
        "billing_account": "acme"})
    assert status == 201, carol
    assert carol == {"user": "carol", "domain": DOMAIN, "uri": f"sip:carol@{DOMAIN}", "display_name": "Carol",
                     "aliases": ["12025550199"], "billing_account": "acme", "enabled": True}
    bob = phones.start(sipp, gateway.kamailio, "bob", "answer", ring_ms=100)
    # carol's phone registers with the password the API was given, then calls bob
    caller = phones.call(sipp, gateway.kamailio, "carol", "bob", password=CAROL_PASSWORD, hangup_after_ms=300)
    assert caller.finish() == 0, caller.report()
    assert bob.wait_for("BYE")
    # bob calls carol's DID: alias_db makes it carol, whose phone answers
    callee = phones.start(sipp, gateway.kamailio, "carol", "answer", password=CAROL_PASSWORD, name="phone-carol")
    did_call = phones.call(sipp, gateway.kamailio, "bob", "12025550199", hangup_after_ms=300, name="caller-bob")
    assert did_call.finish() == 0, did_call.report()
    invite = callee.wait_for("INVITE")[0]
    assert invite.first_line.startswith(f"INVITE sip:carol@"), invite.first_line
    # the password never reached Kamailio's database, only its HA1 values
    rows = subprocess.run(["sqlite3", str(gateway.kamailio.db), "SELECT password, ha1, ha1b FROM subscriber WHERE username = 'carol'"],
                          capture_output=True, text=True, check=True).stdout.strip().split("|")
    assert rows[0] == "" and len(rows[1]) == 32 and len(rows[2]) == 32, rows


def test_a_disabled_account_gets_403_on_register_and_invite_and_enabling_restores_it(gateway, sipp):
    assert gateway.request("POST", "/sip-accounts", {"user": "carol", "password": CAROL_PASSWORD})[0] == 201
    ok = register(sipp, gateway, "carol", CAROL_PASSWORD)
    assert ok.code == 0, ok.report()

    status, disabled = gateway.request("PATCH", "/sip-accounts/carol", {"enabled": False})
    assert status == 200 and disabled["enabled"] is False, disabled
    refused = register(sipp, gateway, "carol", CAROL_PASSWORD, status=403, name="register-disabled")
    assert refused.code == 0, refused.report()
    invite = sipp.run("invite-disabled", "uac_auth_status.xml", gateway.kamailio.port, status=403, timeout=10,
                      keys={"user": "carol", "domain": DOMAIN}, extra=["-s", "bob", "-au", "carol", "-ap", CAROL_PASSWORD])
    assert invite.code == 0, invite.report()
    # and nobody reaches it meanwhile, though its earlier registration lasts
    to_carol = sipp.run("to-disabled", "uac_auth_status.xml", gateway.kamailio.port, status=403, timeout=10,
                        keys={"user": "bob", "domain": DOMAIN}, extra=["-s", "carol", "-au", "bob", "-ap", phones.USERS["bob"]])
    assert to_carol.code == 0, to_carol.report()
    assert "Account Disabled" in (sipp.dir / "invite-disabled.messages").read_text()

    assert gateway.request("PATCH", "/sip-accounts/carol", {"enabled": True})[0] == 200
    again = register(sipp, gateway, "carol", CAROL_PASSWORD, name="register-enabled")
    assert again.code == 0, again.report()


def test_weak_and_reused_passwords_are_refused_by_name_and_a_new_one_counts_at_once(gateway, sipp):
    for password, rule in (("short", "password_too_short"), ("Password2024!", "password_common"),
                           ("carol-at-home-2024", "password_contains_user")):
        status, problem = gateway.request("POST", "/sip-accounts", {"user": "carol", "password": password})
        assert status == 422 and problem["rule"] == rule, problem
    assert gateway.request("POST", "/sip-accounts", {"user": "carol", "password": CAROL_PASSWORD})[0] == 201
    status, problem = gateway.request("PATCH", "/sip-accounts/carol", {"password": CAROL_PASSWORD})
    assert status == 422 and problem["rule"] == "password_reused", problem

    assert gateway.request("PATCH", "/sip-accounts/carol", {"password": "Zq4-wide-Lake-81"})[0] == 200
    new = register(sipp, gateway, "carol", "Zq4-wide-Lake-81")
    assert new.code == 0, new.report()
    old = sipp.run("register-old", "register_auth.xml", gateway.kamailio.port, timeout=5,
                   keys={"user": "carol", "domain": DOMAIN, "contact_port": "5999"}, extra=["-au", "carol", "-ap", CAROL_PASSWORD])
    assert old.code != 0, old.report()
    # back to the first password: still remembered
    status, problem = gateway.request("PATCH", "/sip-accounts/carol", {"password": CAROL_PASSWORD})
    assert status == 422 and problem["rule"] == "password_reused", problem


def test_a_non_admin_key_gets_403_and_a_deleted_account_cannot_register(gateway, sipp):
    status, problem = gateway.request("POST", "/sip-accounts", {"user": "carol", "password": CAROL_PASSWORD}, key=gateway.plain)
    assert status == 403 and problem["type"].endswith("/admin-required"), problem
    assert gateway.request("GET", "/sip-accounts", key=gateway.plain)[0] == 403
    assert gateway.request("POST", "/sip-accounts", {"user": "carol", "password": CAROL_PASSWORD})[0] == 201
    assert gateway.request("DELETE", "/sip-accounts/carol")[0] == 204
    gone = sipp.run("register-deleted", "register_auth.xml", gateway.kamailio.port, timeout=5,
                    keys={"user": "carol", "domain": DOMAIN, "contact_port": "5999"}, extra=["-au", "carol", "-ap", CAROL_PASSWORD])
    assert gone.code != 0, gone.report()


def test_the_cli_provisions_the_same_database(gateway, sipp, swift):
    def cli(*args, stdin=None):
        return subprocess.run([str(swift.binary("switchboard-gateway")), "sip-accounts", *args, "--kamailio-db", str(gateway.kamailio.db)],
                              input=stdin, capture_output=True, text=True, timeout=60)
    weak = cli("add", "--user", "erin", "--password-stdin", stdin="erin12345678\n")
    assert weak.returncode != 0 and "password_contains_user" in weak.stderr, weak.stderr
    added = cli("add", "--user", "erin", "--alias", "2000", "--password-stdin", stdin=CAROL_PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert f"sip:erin@{DOMAIN}" in added.stdout and "aliases=2000" in added.stdout, added.stdout
    assert register(sipp, gateway, "erin", CAROL_PASSWORD).code == 0
    assert cli("disable", "--user", "erin").returncode == 0
    refused = register(sipp, gateway, "erin", CAROL_PASSWORD, status=403, name="register-erin-disabled")
    assert refused.code == 0, refused.report()
    # the REST API sees what the CLI wrote
    status, erin = gateway.request("GET", "/sip-accounts/erin")
    assert status == 200 and erin["enabled"] is False and erin["aliases"] == ["2000"], erin
    listed = cli("list")
    assert "DISABLED" in listed.stdout and "bob" in listed.stdout, listed.stdout


def test_the_bridge_gets_the_billing_account_and_never_a_spoofed_one(swift, tmp_path, start_kamailio, sipp):
    gw_port, gw = sipp.start("trunk", "uas_answer.xml")
    bridge_port, bridge = sipp.start("bridge", "uas_redirect.xml", keys={"target": f"sip:12025550100@{LOCAL}:{gw_port}"})
    kamailio = start_kamailio(bridge_ports=[bridge_port])
    gateway = Gateway(swift, tmp_path, kamailio)
    assert gateway.request("POST", "/sip-accounts", {"user": "carol", "password": CAROL_PASSWORD, "billing_account": "acme"})[0] == 201
    (sipp.dir / "spoof.xml").write_text((harness.SCENARIOS / "uac_auth_call.xml").read_text().replace(
        "X-Switchboard-Auth-User: mallory", "X-Switchboard-Auth-User: mallory\n      X-Switchboard-Billing-Account: mallory"))
    res = sipp.run("carol", sipp.dir / "spoof.xml", kamailio.port, keys={"user": "carol", "domain": DOMAIN},
                   extra=["-s", "12025550100", "-au", "carol", "-ap", CAROL_PASSWORD])
    assert res.code == 0, res.report()
    assert bridge.finish() == 0, bridge.report()
    invite = bridge.received("INVITE")[0]
    assert harness.header_values(invite, "X-Switchboard-Billing-Account") == ["acme"], invite
    assert harness.header_values(invite, "X-Switchboard-Auth-User") == ["carol"], invite
    assert "mallory" not in invite, invite


def test_an_admin_creates_and_disables_an_account_on_the_operator_page(gateway, sipp, browser):
    from selenium.webdriver.common.by import By
    driver = browser
    log_in(driver, gateway.base + "/operator.html", OPERATOR, OPERATOR_PASSWORD)
    wait_for(driver, lambda d: d.find_element(By.ID, "accounts-section").is_displayed(), 15, "the SIP accounts section")
    form = driver.find_element(By.ID, "account-form")

    def submit(user, password, aliases=""):
        for name, value in (("user", user), ("password", password), ("aliases", aliases)):
            field = form.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    submit("carol", "Password2024!")
    wait_for(driver, lambda d: "well known" in d.find_element(By.ID, "account-error").text, 10, "the policy's refusal")
    submit("carol", CAROL_PASSWORD, "12025550199")
    # read in one script: the table is rebuilt after every change, so element handles go stale
    rows = lambda d: d.execute_script("return [...document.querySelectorAll('#accounts tbody tr')].map(r => r.innerText)")  # noqa: E731
    wait_for(driver, lambda d: any("carol" in r and "Enabled" in r for r in rows(d)), 10, "carol in the list")
    assert any("12025550199" in r for r in rows(driver)), rows(driver)
    assert register(sipp, gateway, "carol", CAROL_PASSWORD).code == 0

    driver.find_element(By.CSS_SELECTOR, "#accounts button[aria-label^='Disable sip:carol@']").click()
    wait_for(driver, lambda d: any("carol" in r and "Disabled" in r for r in rows(d)), 10, "carol disabled")
    refused = register(sipp, gateway, "carol", CAROL_PASSWORD, status=403, name="register-page-disabled")
    assert refused.code == 0, refused.report()
