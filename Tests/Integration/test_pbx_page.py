"""The operator page's PBX section (operator-pbx.js) in headless Chromium, over the gateway's /api/v1/pbx on the
database the running `switchboard-worker pbx` reads: an admin creates a busy forward with the form and a call
through the real Kamailio follows it; edits and deletes it; creates a hunt group. A user who is no admin never
sees the section."""
import json
import subprocess
import time

import pytest

import phones
from harness import DOMAIN
from test_b2bua import finished
from test_pbx import pbx, user_uri  # noqa: F401  (Kamailio, the bridge and the pbx worker)
from test_provisioning import OPERATOR, OPERATOR_PASSWORD, Gateway
from test_web_gateway import browser, wait_for, log_in as submit_login  # noqa: F401  (the headless Chromium fixture)

VIEWER, VIEWER_PASSWORD = "viewer", "viewer pass phrase"


@pytest.fixture
def pbx_gateway(monkeypatch, swift, tmp_path):
    """start(kamailio, db) → a gateway (test_provisioning's) whose pbx_database is `db`, set through the
    environment (SWITCHBOARD_GATEWAY_PBX_DATABASE) on top of the config file that Gateway writes."""
    def start(kamailio, db):
        monkeypatch.setenv("SWITCHBOARD_GATEWAY_PBX_DATABASE", str(db))
        return Gateway(swift, tmp_path, kamailio)
    return start


def log_in(driver, gateway, user, password):
    from selenium.webdriver.common.by import By
    submit_login(driver, gateway.base + "/operator.html", user, password)
    wait_for(driver, lambda d: d.find_element(By.ID, "who").is_displayed(), 10, "the login")


def fill(form, **values):
    from selenium.webdriver.common.by import By
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def rows(driver, table):
    """Each row's text, read in one script: the tables are rebuilt after every change (stale handles)."""
    return driver.execute_script(f"return [...document.querySelectorAll('#{table} tbody tr')].map(r => r.innerText)")


def delete(driver, label):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    driver.find_element(By.CSS_SELECTOR, f"#pbx-section button[aria-label='{label}']").click()
    WebDriverWait(driver, 5).until(expected_conditions.alert_is_present()).accept()


def test_an_admin_forwards_a_busy_extension_from_the_page_and_the_worker_follows_it(pbx, pbx_gateway, swift, sipp, browser):
    from selenium.webdriver.common.by import By
    s = pbx([])
    gateway = pbx_gateway(s.kamailio, s.db)
    driver = browser
    log_in(driver, gateway, OPERATOR, OPERATOR_PASSWORD)
    wait_for(driver, lambda d: d.find_element(By.ID, "pbx-section").is_displayed(), 10, "the PBX section")
    assert driver.find_element(By.ID, "pbx-extensions-empty").is_displayed()
    form = driver.find_element(By.ID, "pbx-extension-form")
    error = driver.find_element(By.ID, "pbx-extension-error")

    # The API's refusal (422 problem+json detail) shows beside the form, and nothing is saved.
    fill(form, user="5000", contact=user_uri("bob"), forward_busy="voice mail")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: "forward_busy" in error.text and "voice mail" in error.text, 10, "the 422 detail")
    assert gateway.request("GET", "/pbx") == (200, {"extensions": [], "groups": []})

    fill(form, forward_busy="carol")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: any(r.startswith("5000") and "Busy: forward to carol" in r for r in rows(d, "pbx-extensions")),
             10, "5000 in the list")
    assert error.text == ""
    assert gateway.request("GET", "/pbx") == (200, {"extensions": [
        {"user": "5000", "contact": user_uri("bob"), "dnd": False, "forward_busy": "carol"}], "groups": []})

    # The worker (reloading every 0.2 s) routes by it: bob is busy, carol answers.
    time.sleep(0.6)
    bob = phones.start(sipp, s.kamailio, "bob", "busy")
    carol = phones.start(sipp, s.kamailio, "carol", "answer", ring_ms=200)
    alice = phones.call(sipp, s.kamailio, "alice", "5000", hangup_after_ms=300)
    finished(alice, carol)
    assert alice.final_status() == 200, alice.report()
    assert [m.status for m in bob.responses("INVITE", direction="sent") if m.status >= 200] == [486], bob.report()

    # Edit: the form comes back filled; add a no-answer forward and open hours in Paris (Mon-Fri 09:00-17:00 preset).
    driver.find_element(By.CSS_SELECTOR, "#pbx-section button[aria-label='Edit extension 5000']").click()
    wait_for(driver, lambda d: form.find_element(By.TAG_NAME, "h3").text == "Edit extension 5000", 5, "the edit form")
    assert form.find_element(By.NAME, "user").get_attribute("readonly") is not None
    assert form.find_element(By.NAME, "forward_busy").get_attribute("value") == "carol"
    fill(form, forward_no_answer="sip:vm@voicemail.example", no_answer_seconds="15")
    form.find_element(By.NAME, "scheduled").click()
    fill(form, time_zone="Europe/Paris", closed_reason="Closed")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: any("No answer after 15 s: forward to sip:vm@voicemail.example" in r for r in rows(d, "pbx-extensions")),
             10, "the edited rule")
    listed = rows(driver, "pbx-extensions")
    assert len(listed) == 1 and "Mon–Fri 09:00–17:00" in listed[0] and "Europe/Paris" in listed[0] \
        and "Closed: answer 480 Closed" in listed[0], listed
    status, rules = gateway.request("GET", "/pbx")
    assert status == 200 and rules["extensions"] == [{
        "user": "5000", "contact": user_uri("bob"), "dnd": False, "forward_busy": "carol",
        "forward_no_answer": "sip:vm@voicemail.example", "no_answer_seconds": 15,
        "schedule": {"time_zone": "Europe/Paris", "days": ["mon", "tue", "wed", "thu", "fri"], "opens": "09:00",
                     "closes": "17:00", "closed": {"status": 480, "reason": "Closed"}}}], rules
    # the worker's own CLI reads the same rule from its database
    listed_by_worker = json.loads(swift.run("switchboard-worker", "pbx-rules", "list", "--json", "--db", s.db))
    assert listed_by_worker == rules, listed_by_worker

    # A hunt group through its form; a name already taken is refused before any request.
    groups = driver.find_element(By.ID, "pbx-group-form")
    fill(groups, name="5000", members="bob")
    groups.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: "5000 is an extension already" in d.find_element(By.ID, "pbx-group-error").text, 5, "the name clash")
    fill(groups, name="sales", members="alice, bob, carol", ring_seconds="10", overflow="5000")
    groups.find_element(By.CSS_SELECTOR, "select[name=strategy] option[value=round_robin]").click()
    groups.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: any(r.startswith("sales") and "Round robin" in r and "alice → bob → carol" in r
                                   and "10 s each" in r and "Forward to 5000" in r for r in rows(d, "pbx-groups")),
             10, "the group in the list")
    assert gateway.request("GET", "/pbx")[1]["groups"] == [
        {"name": "sales", "strategy": "round_robin", "members": ["alice", "bob", "carol"], "ring_seconds": 10, "overflow": "5000"}]

    delete(driver, "Delete group sales")
    wait_for(driver, lambda d: rows(d, "pbx-groups") == [], 10, "the group gone")
    delete(driver, "Delete extension 5000")
    wait_for(driver, lambda d: rows(d, "pbx-extensions") == [], 10, "the extension gone")
    assert driver.find_element(By.ID, "pbx-extensions-empty").is_displayed()
    assert gateway.request("GET", "/pbx") == (200, {"extensions": [], "groups": []})


def test_a_user_who_is_no_admin_sees_no_pbx_section(swift, tmp_path, start_kamailio, pbx_gateway, browser):
    from selenium.webdriver.common.by import By
    db = tmp_path / "pbx.sqlite"
    swift.run("switchboard-worker", "pbx-rules", "extension", "--user", "5000", "--busy", "carol", "--db", db)
    gateway = pbx_gateway(start_kamailio(), db)
    # a plain user: `users add` without --admin
    gateway_db = tmp_path / "gateway.sqlite"
    added = subprocess.run([str(swift.binary("switchboard-gateway")), "users", "add", "--db", str(gateway_db), "--name", VIEWER,
                            "--password-stdin"], input=VIEWER_PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr

    driver = browser
    log_in(driver, gateway, VIEWER, VIEWER_PASSWORD)
    # The page asked and was refused; only then is the section's absence worth anything.
    asked = "return performance.getEntriesByType('resource').some(e => e.name.endsWith('/api/v1/pbx'))"
    wait_for(driver, lambda d: d.execute_script(asked), 10, "the page to ask for the PBX rules")
    refused = driver.execute_script("return fetch('/api/v1/pbx').then(r => r.status)")
    assert refused == 403
    time.sleep(0.5)
    assert not driver.find_element(By.ID, "pbx-section").is_displayed()
    assert "5000" not in driver.execute_script("return document.body.innerText")
    # the same page shows it to an operator
    driver.find_element(By.ID, "logout").click()
    from selenium.common.exceptions import WebDriverException

    def logged_out(d):
        try:
            return d.find_element(By.ID, "login-section").is_displayed()
        except WebDriverException:  # the page reloads after the logout: for a moment it has no elements
            return False
    wait_for(driver, logged_out, 10, "the logout")
    log_in(driver, gateway, OPERATOR, OPERATOR_PASSWORD)
    wait_for(driver, lambda d: any(r.startswith("5000") for r in rows(d, "pbx-extensions")), 10, "the operator's PBX section")
